//! Secrets: read from environment variables or files only, never printed.
//!
//! Every secret read is registered here, process-wide, in every form it can take on the wire:
//! as it is, JSON-escaped, percent-encoded, and for basic authentication the base64 of
//! `user:password` that the `Authorization` header carries. [`scrub`] masks all of them; every
//! sink a step writes to (stderr, GitHub's workflow commands, `--json`, `$GITHUB_OUTPUT`, the
//! step summary, the image record) and every server message that is kept passes through it,
//! before anything is cut short, so not even part of a secret survives a truncation.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};

/// Credentials are referenced by the name of the environment variable (or file) that holds
/// them. A secret written inline is refused with a pointer to the right key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Variable holding a bearer/access token.
    pub token_env: Option<String>,
    /// File holding a bearer/access token (a mounted secret).
    pub token_file: Option<PathBuf>,
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers a secret.
    pub fn new(value: String) -> Self {
        register(&value);
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

/// The forms of every secret registered so far, longest first.
static FORMS: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// A callback told of every new form.
type Announcer = Box<dyn Fn(&str) + Send + Sync>;
/// The step's UI masks each form in GitHub's log (`::add-mask::`).
static ANNOUNCER: OnceLock<Announcer> = OnceLock::new();

/// The replacement of a secret in every sink.
pub const MASK: &str = "***";

/// Values this short would turn ordinary words into `***`; they are not masked.
const MIN_LEN: usize = 4;

/// Installs the callback told of each new form (once per process; later calls are ignored).
pub fn announce_with(f: impl Fn(&str) + Send + Sync + 'static) {
    let _ = ANNOUNCER.set(Box::new(f));
}

/// The forms a secret takes in text a server or a sink may hold.
fn forms_of(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_start_matches('"').trim_end_matches('"');
    forms.push(json.to_string());
    forms.push(json.replace('/', "\\/"));
    // Percent-encoded as URLs and form bodies carry it, with either case of hex digits.
    for upper in [true, false] {
        forms.push(
            value
                .bytes()
                .map(|b| match b {
                    b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => {
                        (b as char).to_string()
                    }
                    b if upper => format!("%{b:02X}"),
                    b => format!("%{b:02x}"),
                })
                .collect(),
        );
    }
    forms
}

/// Registers a secret (all its forms) so that [`scrub`] masks it everywhere.
pub fn register(value: &str) {
    add_forms(forms_of(value));
}

/// Registers basic-authentication credentials: the password, and the base64 of
/// `user:password` that the `Authorization: Basic` header carries.
pub fn register_basic(username: &str, password: &str) {
    use base64::Engine as _;
    register(password);
    let pair = format!("{username}:{password}");
    add_forms(vec![
        base64::engine::general_purpose::STANDARD.encode(&pair),
        base64::engine::general_purpose::URL_SAFE.encode(&pair),
    ]);
}

fn add_forms(new: Vec<String>) {
    let mut forms = FORMS.write().unwrap_or_else(|p| p.into_inner());
    for f in new {
        if f.len() < MIN_LEN || forms.contains(&f) {
            continue;
        }
        if let Some(announce) = ANNOUNCER.get() {
            announce(&f);
        }
        forms.push(f);
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// `text` with every form of every registered secret replaced by [`MASK`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let forms = FORMS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Cow::Borrowed(text);
    for f in forms.iter() {
        if out.contains(f.as_str()) {
            out = Cow::Owned(out.replace(f.as_str(), MASK));
        }
    }
    out
}

/// `text` scrubbed, then cut to at most `max` characters: the order matters, since a cut can
/// leave a part of a secret that no longer matches it.
pub fn scrub_and_cut(text: &str, max: usize) -> String {
    scrub(text).chars().take(max).collect()
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

fn from_env(name: &str, what: &'static str) -> Result<Secret, SecretError> {
    let value =
        crate::env::var(name).ok_or_else(|| SecretError::MissingEnv(name.to_string(), what))?;
    Ok(Secret::new(value))
}

fn from_file(path: &Path, what: &'static str) -> Result<Secret, SecretError> {
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
    Ok(Secret::new(value))
}

impl Credentials {
    /// Reads the credentials the config names, registering them for [`scrub`]. Nothing named
    /// means no authentication.
    pub fn resolve(&self) -> Result<Auth, SecretError> {
        if let Some(path) = &self.token_file {
            return Ok(Auth::Bearer(from_file(path, "access token")?));
        }
        if let Some(name) = &self.token_env {
            return Ok(Auth::Bearer(from_env(name, "access token")?));
        }
        if let Some(user_var) = &self.username_env {
            let username = crate::env::var(user_var)
                .ok_or_else(|| SecretError::MissingEnv(user_var.clone(), "user name"))?;
            let password = match (&self.password_file, &self.password_env) {
                (Some(path), _) => from_file(path, "password")?,
                (None, Some(name)) => from_env(name, "password")?,
                (None, None) => Secret(String::new()),
            };
            register_basic(&username, password.expose());
            return Ok(Auth::Basic { username, password });
        }
        Ok(Auth::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_form_is_scrubbed() {
        use base64::Engine as _;
        let token = r#"tok/en\"q+1 xyz"#;
        register(token);
        register_basic("ci-user", "pa:ss/w0rd");
        let basic = base64::engine::general_purpose::STANDARD.encode("ci-user:pa:ss/w0rd");
        for text in [
            format!("Bearer {token}"),
            serde_json::json!({ "echo": format!("Bearer {token}") }).to_string(),
            "Authorization: Bearer tok%2Fen%5C%22q%2B1%20xyz".to_string(),
            format!("Authorization: Basic {basic}"),
            "pass=pa%3Ass%2Fw0rd".to_string(),
        ] {
            let clean = scrub(&text);
            assert!(clean.contains(MASK), "{text} -> {clean}");
            for part in ["en\\", "en%5C", "q+1", "q%2B1", "w0rd", &basic[..12]] {
                assert!(!clean.contains(part), "{text} -> {clean}");
            }
        }
        // Cut after scrubbing: no prefix of the token is left at the cut.
        let long = format!("{}{token}", "x".repeat(295));
        assert_eq!(scrub_and_cut(&long, 300), format!("{}***", "x".repeat(295)));
        register("ab");
        assert_eq!(scrub("ab cd"), "ab cd", "too short to mask");
    }

    #[test]
    fn files_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc123\n").unwrap();
        let c = Credentials {
            token_file: Some(p.clone()),
            ..Default::default()
        };
        assert_eq!(c.resolve().unwrap(), Auth::Bearer(Secret("abc123".into())));
        assert_eq!(scrub("the token abc123"), "the token ***");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(c.resolve(), Err(SecretError::EmptyFile(_))));
        let c = Credentials {
            token_env: Some("IMAGEPIPE_TEST_SURELY_UNSET".into()),
            ..Default::default()
        };
        let err = c.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            "environment variable IMAGEPIPE_TEST_SURELY_UNSET is not set or empty; it should hold the access token"
        );
        assert_eq!(Credentials::default().resolve().unwrap(), Auth::None);
    }
}
