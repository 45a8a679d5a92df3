//! Secrets: read from environment variables or files only, masked on GitHub, never printed.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Credentials;
use crate::step::Ui;

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or empty; it should hold the {1}")]
    MissingEnv(String, &'static str),
    #[error("cannot read the {what} from {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    EmptyFile(PathBuf),
}

/// How to authenticate to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

impl Auth {
    /// Adds the credentials to a request.
    pub fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => rb,
            Auth::Bearer(t) => rb.bearer_auth(t.expose()),
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password.expose())),
        }
    }
}

fn from_env(name: &str, what: &'static str, ui: &Ui) -> Result<Secret, SecretError> {
    let value =
        crate::env::var(name).ok_or_else(|| SecretError::MissingEnv(name.to_string(), what))?;
    ui.mask(&value);
    Ok(Secret(value))
}

fn from_file(path: &Path, what: &'static str, ui: &Ui) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    // Mounted secrets usually end with a newline that is not part of the value.
    let value = text.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(SecretError::EmptyFile(path.to_path_buf()));
    }
    ui.mask(&value);
    Ok(Secret(value))
}

impl Credentials {
    /// Reads the credentials the config names. Nothing named means no authentication.
    pub fn resolve(&self, ui: &Ui) -> Result<Auth, SecretError> {
        if let Some(path) = &self.token_file {
            return Ok(Auth::Bearer(from_file(path, "access token", ui)?));
        }
        if let Some(name) = &self.token_env {
            return Ok(Auth::Bearer(from_env(name, "access token", ui)?));
        }
        if let Some(user_var) = &self.username_env {
            let username = crate::env::var(user_var)
                .ok_or_else(|| SecretError::MissingEnv(user_var.clone(), "user name"))?;
            let password = match (&self.password_file, &self.password_env) {
                (Some(path), _) => from_file(path, "password", ui)?,
                (None, Some(name)) => from_env(name, "password", ui)?,
                (None, None) => Secret(String::new()),
            };
            return Ok(Auth::Basic { username, password });
        }
        Ok(Auth::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::ProgressMode;

    #[test]
    fn never_shown() {
        let s = Secret("hunter2-hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let a = Auth::Basic {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn files_are_trimmed_and_empty_ones_refused() {
        let ui = Ui::new("test", false, ProgressMode::None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc123\n").unwrap();
        let c = Credentials {
            token_file: Some(p.clone()),
            ..Default::default()
        };
        assert_eq!(
            c.resolve(&ui).unwrap(),
            Auth::Bearer(Secret("abc123".into()))
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(c.resolve(&ui), Err(SecretError::EmptyFile(_))));
        let c = Credentials {
            token_env: Some("IMAGEPIPE_TEST_SURELY_UNSET".into()),
            ..Default::default()
        };
        let err = c.resolve(&ui).unwrap_err().to_string();
        assert_eq!(
            err,
            "environment variable IMAGEPIPE_TEST_SURELY_UNSET is not set or empty; it should hold the access token"
        );
        assert_eq!(Credentials::default().resolve(&ui).unwrap(), Auth::None);
    }
}
