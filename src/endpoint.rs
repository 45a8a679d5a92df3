//! Where imagepipe reads and writes: a store's typed address and the settings of one endpoint
//! (credentials and TLS), as `imagepipe.toml` gives them. Parsing only: opening an endpoint is
//! the business of `store` and `library`.

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::http::TlsSpec;
pub use crate::secret::Credentials;

/// A store's address, as written in `imagepipe.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:PATH`: a local or mounted directory; the embedded default.
    Local(PathBuf),
    /// `artifactory+https://HOST/artifactory/REPO[/PREFIX]`: a generic repository.
    Artifactory {
        base: String,
        repo: String,
        prefix: String,
    },
    /// `oci://HOST[:PORT]/NAMESPACE` (`oci+http://` for a plain-HTTP registry).
    Oci {
        registry: String,
        namespace: String,
        plain_http: bool,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{url}` is not a store URL: {reason}; use file:PATH, artifactory+https://HOST/artifactory/REPO or oci://HOST/NAMESPACE"
)]
pub struct StoreUrlError {
    url: String,
    reason: &'static str,
}

impl StoreUrl {
    /// Parses a store URL; relative `file:` paths are taken from `base`.
    pub fn parse(url: &str, base: &Path) -> Result<Self, StoreUrlError> {
        let err = |reason| StoreUrlError {
            url: url.to_string(),
            reason,
        };
        if let Some(path) = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
        {
            if path.is_empty() {
                return Err(err("the path is empty"));
            }
            return Ok(Self::Local(base.join(path)));
        }
        if let Some(rest) = url.strip_prefix("artifactory+") {
            let (scheme, after) = rest
                .split_once("://")
                .ok_or_else(|| err("missing https://"))?;
            if scheme != "https" && scheme != "http" {
                return Err(err("Artifactory is reached over https"));
            }
            let after = after.trim_end_matches('/');
            let idx = after
                .find("/artifactory/")
                .ok_or_else(|| err("the path must contain /artifactory/<repo>"))?;
            let (host_part, repo_path) = (&after[..idx], &after[idx + "/artifactory/".len()..]);
            let (repo, prefix) = repo_path.split_once('/').unwrap_or((repo_path, ""));
            if host_part.is_empty() || repo.is_empty() {
                return Err(err("the host or the repository is missing"));
            }
            // Paths are built from these: no part may climb out of the repository.
            if repo_path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".." || p.contains(['\\', '?', '#', ';']))
            {
                return Err(err(
                    "the repository and path may not hold empty, `.` or `..` parts, `\\`, `?`, `#` or `;`",
                ));
            }
            return Ok(Self::Artifactory {
                base: format!("{scheme}://{host_part}/artifactory"),
                repo: repo.to_string(),
                prefix: prefix.to_string(),
            });
        }
        for (scheme, plain_http) in [("oci://", false), ("oci+http://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let (registry, namespace) = rest
                    .trim_end_matches('/')
                    .split_once('/')
                    .unwrap_or((rest, ""));
                if registry.is_empty() {
                    return Err(err("the registry host is missing"));
                }
                return Ok(Self::Oci {
                    registry: registry.into(),
                    namespace: namespace.into(),
                    plain_http,
                });
            }
        }
        Err(err("unknown scheme"))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "file:{}", p.display()),
            Self::Artifactory { base, repo, prefix } if prefix.is_empty() => {
                write!(f, "artifactory+{base}/{repo}")
            }
            Self::Artifactory { base, repo, prefix } => {
                write!(f, "artifactory+{base}/{repo}/{prefix}")
            }
            Self::Oci {
                registry,
                namespace,
                plain_http,
            } => {
                let scheme = if *plain_http { "oci+http" } else { "oci" };
                write!(f, "{scheme}://{registry}/{namespace}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    pub url: StoreUrl,
    pub credentials: Credentials,
    pub tls: TlsSpec,
}

/// Where a site's library is, checked when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibraryUrl {
    /// `vcsp:PATH`: a VCSP library in a directory (absolute once loaded).
    VcspDir(PathBuf),
    /// `vcsp:artifactory+https://HOST/artifactory/REPO[/PATH]`: a VCSP library in an
    /// Artifactory generic repository.
    VcspArtifactory {
        base: String,
        repo: String,
        prefix: String,
    },
    /// `https://HOST`: a vCenter, whose content library is named apart.
    VCenter(String),
}

impl fmt::Display for LibraryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VcspDir(p) => write!(f, "vcsp:{}", p.display()),
            Self::VcspArtifactory { base, repo, prefix } => write!(
                f,
                "vcsp:{}",
                StoreUrl::Artifactory {
                    base: base.clone(),
                    repo: repo.clone(),
                    prefix: prefix.clone(),
                }
            ),
            Self::VCenter(url) => f.write_str(url),
        }
    }
}
