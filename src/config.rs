//! `imagepipe.toml`: the pipeline definition shared by every step.
//!
//! Parsing is strict: unknown keys, bad values, unknown parents and cycles are refused with the
//! file, line and key, because a typo in a pipeline definition otherwise shows up hours later as
//! an image built on the wrong parent.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::VersionReq;
use serde::{Deserialize, Deserializer, de::IgnoredAny};
use toml::Spanned;

pub use crate::endpoint::{Credentials, LibraryUrl, StoreSpec, StoreUrl, StoreUrlError, TlsSpec};
use crate::env;
use crate::image::{ImageName, TagFormat};

pub const FILE_NAME: &str = "imagepipe.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no {FILE_NAME} found in {start} or any parent directory; pass --config, set {}, \
         or run `imagepipe-build --help` for the file's format",
        env::CONFIG
    )]
    NotFound { start: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n{excerpt}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        excerpt: String,
    },
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("site `{name}` is not defined in imagepipe.toml; defined sites: {known}")]
    UnknownSite { name: String, known: String },
    #[error("image `{name}` is not defined in {path}; defined images: {known}")]
    UnknownImage {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// The host of a URL that goes over plain HTTP (`http://`, `artifactory+http://`,
/// `oci+http://`, `vcsp:artifactory+http://`).
fn plain_http_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("vcsp:").unwrap_or(url);
    let rest = ["http://", "artifactory+http://", "oci+http://"]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    Some(host.to_string())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a variable's name says it holds a secret.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// A human duration such as `90m` or `2h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!("`{s}` is not a duration like `90m` or `2h`: {e}"))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

/// One endpoint's table as written: a store or a library. Flat, because `serde(flatten)` would
/// switch off `deny_unknown_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    url: Spanned<String>,
    /// The content library's name on a vCenter (libraries only).
    library: Option<Spanned<String>>,
    /// Subscribed libraries to sync after an import (libraries only).
    subscribed: Option<Spanned<Vec<String>>>,
    /// Where `imagepipe-import --deploy-check` deploys its throw-away VM (vCenter libraries only).
    deploy: Option<Spanned<DeployTarget>>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    username_env: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_bundle: Option<PathBuf>,
    pin_sha256: Option<Spanned<Vec<String>>>,
    // Keys that must never hold a secret, captured so the error can say what to write instead.
    token: Option<Spanned<IgnoredAny>>,
    password: Option<Spanned<IgnoredAny>>,
    api_key: Option<Spanned<IgnoredAny>>,
}

/// Where a site's images end up: a vCenter content library or a VCSP library directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySpec {
    pub url: LibraryUrl,
    pub library: Option<String>,
    pub subscribed: Vec<String>,
    /// Where the deploy check's VM goes; needed by `--deploy-check` at a vCenter.
    pub deploy: Option<DeployTarget>,
    pub credentials: Credentials,
    pub tls: TlsSpec,
}

/// A site's `library.deploy` table: the vCenter placement of the deploy check's throw-away VM,
/// by managed object id (as `/rest/vcenter/resource-pool` and friends list them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployTarget {
    /// The resource pool, e.g. `resgroup-8` (a cluster's or host's root pool).
    pub resource_pool: String,
    pub folder: Option<String>,
    pub host: Option<String>,
    pub datastore: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    store: Spanned<RawEndpoint>,
    library: Option<Spanned<RawEndpoint>>,
    sla: Option<HumanDuration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub store: StoreSpec,
    pub library: Option<LibrarySpec>,
    pub sla: Option<Duration>,
}

pub use crate::severity::Severity;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScanSpec {
    /// Findings at or above this severity fail the gate.
    #[serde(default)]
    pub fail_on: Severity,
    /// Extra policy rule files, relative to `imagepipe.toml`.
    #[serde(default)]
    pub policy: Vec<PathBuf>,
    /// Baseline rule ids switched off for this image.
    #[serde(default)]
    pub disable_rules: Vec<String>,
    /// Waivers file, relative to `imagepipe.toml`.
    pub waivers: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: Spanned<ImageName>,
    template: PathBuf,
    #[serde(default)]
    var_files: Vec<PathBuf>,
    variables: Option<Spanned<BTreeMap<String, String>>>,
    parent: Option<Spanned<String>>,
    parent_version: Option<Spanned<String>>,
    paths: Option<Vec<String>>,
    #[serde(default)]
    only: Vec<String>,
    manifest: Option<PathBuf>,
    first_version: Option<semver::Version>,
    build_timeout: Option<HumanDuration>,
    #[serde(default)]
    scan: ScanSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: ImageName,
    /// Packer template, a directory or a file, absolute.
    pub template: PathBuf,
    /// Var files, absolute, passed in order.
    pub var_files: Vec<PathBuf>,
    /// Extra `-var` values.
    pub variables: BTreeMap<String, String>,
    pub parent: Option<ParentSpec>,
    /// Repository paths (globs, relative to the config directory) whose changes make a new version.
    pub paths: Vec<String>,
    /// Packer `-only` filters.
    pub only: Vec<String>,
    /// Where the template's manifest post-processor writes, when not `var.imagepipe_manifest`.
    pub manifest: Option<PathBuf>,
    /// Overrides `tag.first_version` for this image (a vendor image may start at 12.0.0).
    pub first_version: Option<semver::Version>,
    pub build_timeout: Option<Duration>,
    pub scan: ScanSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentSpec {
    pub name: ImageName,
    pub requirement: VersionReq,
    /// `parent_version = "channel:NAME"`: the version the parent's channel points at in the
    /// primary store (`requirement` is then `*`).
    pub channel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    tag_format: Option<Spanned<String>>,
    output_dir: Option<PathBuf>,
    packer: Option<PathBuf>,
    build_timeout: Option<HumanDuration>,
    interrupt_grace: Option<HumanDuration>,
}

/// How `imagepipe-tag` versions and tags images, and what review it requires.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TagSettings {
    /// The version of an image's first tag.
    pub first_version: semver::Version,
    /// The branch whose merged pull requests may be tagged.
    pub default_branch: String,
    /// Approving reviews a pull request needs before its commit is tagged.
    pub required_approvals: u32,
    /// The git remote tags are pushed to.
    pub remote: String,
    /// `owner/name` on GitHub; default: `GITHUB_REPOSITORY`, then the remote's URL.
    pub github_repository: Option<String>,
    /// Which approvals count once a pull request's head has moved past them.
    pub stale_approvals: StaleApprovals,
    /// An extra PEM CA bundle for the GitHub API (GitHub Enterprise behind a private CA),
    /// relative to `imagepipe.toml`.
    pub github_ca_bundle: Option<PathBuf>,
    /// SHA-256 certificate fingerprints the GitHub API may present (pinning).
    pub github_pin_sha256: Vec<String>,
}

impl TagSettings {
    /// The TLS settings of the GitHub API; `dir` is the directory of `imagepipe.toml`.
    pub fn github_tls(&self, dir: &Path) -> TlsSpec {
        TlsSpec {
            ca_bundle: self.github_ca_bundle.as_ref().map(|p| dir.join(p)),
            pin_sha256: self.github_pin_sha256.clone(),
        }
    }
}

/// `tag.stale_approvals`: which approvals the review gate counts after the pull request's
/// head moved on (new commits, or "Update branch").
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StaleApprovals {
    /// As GitHub counts them: approvals GitHub has not dismissed, with the branch's "most
    /// recent push" rule applied where the token can read it.
    #[default]
    Github,
    /// Only approvals of the pull request's final head commit.
    Head,
}

impl Default for TagSettings {
    fn default() -> Self {
        Self {
            first_version: semver::Version::new(0, 1, 0),
            default_branch: "main".into(),
            required_approvals: 1,
            remote: "origin".into(),
            github_repository: None,
            stale_approvals: StaleApprovals::default(),
            github_ca_bundle: None,
            github_pin_sha256: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    pipeline: Option<RawPipeline>,
    #[serde(default)]
    tag: TagSettings,
    store: Option<Spanned<RawEndpoint>>,
    #[serde(default, rename = "image")]
    images: Vec<RawImage>,
    #[serde(default, rename = "site")]
    sites: Vec<RawSite>,
}

/// A loaded, validated pipeline definition. Paths in it are absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub tag_format: TagFormat,
    /// Where builds write their outputs: `<output_dir>/<image>/<version>`.
    pub output_dir: PathBuf,
    pub packer: PathBuf,
    pub build_timeout: Duration,
    /// After an interrupt or the timeout, how long Packer gets to clean up before it and
    /// everything it started are killed.
    pub interrupt_grace: Duration,
    pub tag: TagSettings,
    pub store: StoreSpec,
    /// Images in the order the file defines them.
    pub images: Vec<Image>,
    pub sites: Vec<Site>,
    /// What is allowed but unwise, for the step to show: credentials sent over plain HTTP.
    pub warnings: Vec<String>,
}

/// Default build timeout; qemu builds under emulation and Windows updates are slow.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// Long enough for the vSphere plugin to power off and destroy a VM on a busy vCenter (its
/// teardown waits on tasks), short enough that a stuck CI job is not held for an hour.
pub const DEFAULT_INTERRUPT_GRACE: Duration = Duration::from_secs(10 * 60);

impl Config {
    /// Finds the config: an explicit path, `IMAGEPIPE_CONFIG`, or `imagepipe.toml` in the working
    /// directory or the nearest parent.
    pub fn discover(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(path) = explicit {
            return Self::load(path);
        }
        if let Some(path) = env::var(env::CONFIG) {
            return Self::load(Path::new(&path));
        }
        let start = std::env::current_dir().map_err(|source| ConfigError::Read {
            path: ".".into(),
            source,
        })?;
        let found = start
            .ancestors()
            .map(|d| d.join(FILE_NAME))
            .find(|p| p.is_file());
        match found {
            Some(path) => Self::load(&path),
            None => Err(ConfigError::NotFound { start }),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Self::parse(&text, &path)
    }

    /// Parses config text as if it were read from `path` (used for relative paths and errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
                excerpt: excerpt(text, line),
            }
        })?;
        Resolver {
            text,
            path,
            dir: path.parent().unwrap_or(Path::new(".")),
        }
        .resolve(raw)
    }

    /// The primary store, or the store at `url` (with the primary's credentials and TLS) when
    /// a step is told to use another; a relative `file:` path is taken from the working
    /// directory, as a command-line path would be.
    pub fn primary_store(&self, url: Option<&str>) -> Result<StoreSpec, StoreUrlError> {
        match url {
            Some(url) => Ok(StoreSpec {
                url: StoreUrl::parse(url, &std::env::current_dir().unwrap_or_default())?,
                ..self.store.clone()
            }),
            None => Ok(self.store.clone()),
        }
    }

    /// The sites named (all when none is), in the order of the file.
    pub fn select_sites(&self, names: &[String]) -> Result<Vec<Site>, ConfigError> {
        if let Some(unknown) = names
            .iter()
            .find(|n| !self.sites.iter().any(|s| &s.name == *n))
        {
            return Err(ConfigError::UnknownSite {
                name: unknown.clone(),
                known: self
                    .sites
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(self
            .sites
            .iter()
            .filter(|s| names.is_empty() || names.contains(&s.name))
            .cloned()
            .collect())
    }

    pub fn image(&self, name: &str) -> Result<&Image, ConfigError> {
        self.images
            .iter()
            .find(|i| i.name.as_str() == name)
            .ok_or_else(|| ConfigError::UnknownImage {
                name: name.to_string(),
                path: self.path.clone(),
                known: self.image_list(),
            })
    }

    fn image_list(&self) -> String {
        if self.images.is_empty() {
            return "none".into();
        }
        self.images
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every image that builds on `name`, directly or not, parents before children.
    pub fn descendants(&self, name: &ImageName) -> Vec<&Image> {
        self.topological()
            .into_iter()
            .filter(|img| self.ancestors(img).any(|a| &a.name == name))
            .collect()
    }

    /// The chain of parents of `image`, nearest first.
    pub fn ancestors<'a>(&'a self, image: &'a Image) -> impl Iterator<Item = &'a Image> + 'a {
        // Validation rejected cycles and unknown parents, so this terminates.
        std::iter::successors(Some(image), move |img| {
            let parent = img.parent.as_ref()?;
            self.images.iter().find(|i| i.name == parent.name)
        })
        .skip(1)
    }

    /// All images, every parent before its children; ties keep the file's order.
    pub fn topological(&self) -> Vec<&Image> {
        let mut depth: Vec<(usize, usize)> = self
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| (self.ancestors(img).count(), i))
            .collect();
        depth.sort();
        depth.into_iter().map(|(_, i)| &self.images[i]).collect()
    }
}

struct Resolver<'a> {
    text: &'a str,
    path: &'a Path,
    dir: &'a Path,
}

impl Resolver<'_> {
    fn invalid(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_col(self.text, span.start).0,
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn abs(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    fn resolve(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let pipeline = raw.pipeline.unwrap_or(RawPipeline {
            tag_format: None,
            output_dir: None,
            packer: None,
            build_timeout: None,
            interrupt_grace: None,
        });
        let tag_format = match &pipeline.tag_format {
            None => TagFormat::default(),
            Some(f) => TagFormat::parse(f.get_ref())
                .map_err(|e| self.invalid(f.span(), "pipeline.tag_format", e.to_string()))?,
        };
        let store = match raw.store {
            Some(s) => self.store(s, "store")?,
            None => StoreSpec {
                url: StoreUrl::Local(self.dir.join(".imagepipe/store")),
                credentials: Credentials::default(),
                tls: TlsSpec::default(),
            },
        };
        let images = self.images(raw.images)?;
        let mut sites = Vec::new();
        for site in raw.sites {
            let name = site.name.get_ref();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.invalid(
                    site.name.span(),
                    "site.name",
                    format!("`{name}` must be letters, digits, `-` or `_`"),
                ));
            }
            if sites.iter().any(|s: &Site| &s.name == name) {
                return Err(self.invalid(
                    site.name.span(),
                    "site.name",
                    format!("site `{name}` is defined twice"),
                ));
            }
            let key = format!("site.{name}");
            let library = match site.library {
                None => None,
                Some(lib) => Some(self.library(lib, &format!("{key}.library"))?),
            };
            sites.push(Site {
                name: name.clone(),
                store: self.store(site.store, &format!("{key}.store"))?,
                library,
                sla: site.sla.map(|d| d.0),
            });
        }
        if sites.is_empty() {
            // The embedded default: one local site that shares the primary store and keeps a
            // VCSP library beside it, so a laptop runs the whole pipeline with no servers.
            sites.push(Site {
                name: "local".into(),
                store: store.clone(),
                library: Some(LibrarySpec {
                    url: LibraryUrl::VcspDir(self.dir.join(".imagepipe/library")),
                    library: None,
                    subscribed: Vec::new(),
                    deploy: None,
                    credentials: Credentials::default(),
                    tls: TlsSpec::default(),
                }),
                sla: None,
            });
        }
        let mut warnings = Vec::new();
        let mut plain = |what: &str, url: &str, credentials: &Credentials| {
            if credentials != &Credentials::default()
                && let Some(host) = plain_http_host(url)
                && !is_loopback(&host)
            {
                warnings.push(format!(
                    "{what} ({url}) is reached over plain HTTP: its credentials cross the network \
                     unencrypted; use https"
                ));
            }
        };
        plain(
            "the primary store",
            &store.url.to_string(),
            &store.credentials,
        );
        for site in &sites {
            plain(
                &format!("site {}'s store", site.name),
                &site.store.url.to_string(),
                &site.store.credentials,
            );
            if let Some(l) = &site.library {
                plain(
                    &format!("site {}'s library", site.name),
                    &l.url.to_string(),
                    &l.credentials,
                );
            }
        }
        if let Some(pin) = raw
            .tag
            .github_pin_sha256
            .iter()
            .find(|p| crate::http::parse_fingerprint(p, 32).is_none())
        {
            let at = self.text.find("github_pin_sha256").unwrap_or(0);
            return Err(self.invalid(
                at..at,
                "tag.github_pin_sha256",
                format!("`{pin}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
            ));
        }
        Ok(Config {
            warnings,
            path: self.path.to_path_buf(),
            dir: self.dir.to_path_buf(),
            tag_format,
            output_dir: self.abs(
                pipeline
                    .output_dir
                    .as_deref()
                    .unwrap_or(Path::new(".imagepipe/build")),
            ),
            packer: pipeline.packer.unwrap_or_else(|| "packer".into()),
            build_timeout: pipeline
                .build_timeout
                .map_or(DEFAULT_BUILD_TIMEOUT, |d| d.0),
            interrupt_grace: pipeline
                .interrupt_grace
                .map_or(DEFAULT_INTERRUPT_GRACE, |d| d.0),
            tag: raw.tag,
            store,
            images,
            sites,
        })
    }

    /// Checks the parts every endpoint shares: no inline secrets, variable names that are names,
    /// well-formed pins; and makes file paths absolute.
    fn endpoint(
        &self,
        e: &RawEndpoint,
        span: Range<usize>,
        key: &str,
    ) -> Result<(Credentials, TlsSpec), ConfigError> {
        for (found, name) in [
            (&e.token, "token"),
            (&e.password, "password"),
            (&e.api_key, "api_key"),
        ] {
            if let Some(v) = found {
                let instead = if name == "password" {
                    "password_env` or `password_file"
                } else {
                    "token_env` or `token_file"
                };
                return Err(self.invalid(
                    v.span(),
                    &format!("{key}.{name}"),
                    format!(
                        "secrets are never written into {FILE_NAME}; name the environment \
                         variable or file that holds it with `{instead}`"
                    ),
                ));
            }
        }
        for name in [&e.token_env, &e.username_env, &e.password_env]
            .into_iter()
            .flatten()
        {
            let ok = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(self.invalid(
                    span,
                    key,
                    format!("`{name}` is not an environment variable name; give the variable's name, not its value"),
                ));
            }
        }
        if (e.password_env.is_some() || e.password_file.is_some()) && e.username_env.is_none() {
            return Err(self.invalid(span, key, "a password needs `username_env` too"));
        }
        let pins = e
            .pin_sha256
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        for pin in &pins {
            if crate::http::parse_fingerprint(pin, 32).is_none() {
                return Err(self.invalid(
                    e.pin_sha256.as_ref().map_or(span.clone(), Spanned::span),
                    &format!("{key}.pin_sha256"),
                    format!("`{pin}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
                ));
            }
        }
        let credentials = Credentials {
            token_env: e.token_env.clone(),
            token_file: e.token_file.as_deref().map(|p| self.abs(p)),
            username_env: e.username_env.clone(),
            password_env: e.password_env.clone(),
            password_file: e.password_file.as_deref().map(|p| self.abs(p)),
        };
        let tls = TlsSpec {
            ca_bundle: e.ca_bundle.as_deref().map(|p| self.abs(p)),
            pin_sha256: pins,
        };
        Ok((credentials, tls))
    }

    fn store(&self, s: Spanned<RawEndpoint>, key: &str) -> Result<StoreSpec, ConfigError> {
        let span = s.span();
        let s = s.into_inner();
        if let Some(l) = &s.library {
            return Err(self.invalid(
                l.span(),
                &format!("{key}.library"),
                "`library` belongs in a site's `library` table, not in a store",
            ));
        }
        if let Some(l) = &s.subscribed {
            return Err(self.invalid(
                l.span(),
                &format!("{key}.subscribed"),
                "`subscribed` belongs in a site's `library` table, not in a store",
            ));
        }
        if let Some(d) = &s.deploy {
            return Err(self.invalid(
                d.span(),
                &format!("{key}.deploy"),
                "`deploy` belongs in a site's `library` table, not in a store",
            ));
        }
        let (credentials, tls) = self.endpoint(&s, span, key)?;
        let url = StoreUrl::parse(s.url.get_ref(), self.dir)
            .map_err(|e| self.invalid(s.url.span(), &format!("{key}.url"), e.to_string()))?;
        Ok(StoreSpec {
            url,
            credentials,
            tls,
        })
    }

    fn library(&self, l: Spanned<RawEndpoint>, key: &str) -> Result<LibrarySpec, ConfigError> {
        let span = l.span();
        let l = l.into_inner();
        let (credentials, tls) = self.endpoint(&l, span.clone(), key)?;
        let url = l.url.get_ref();
        let url = if let Some(path) = url.strip_prefix("vcsp:").filter(|p| !p.contains("://")) {
            LibraryUrl::VcspDir(self.abs(Path::new(path)))
        } else if let Some(repo) = url.strip_prefix("vcsp:") {
            match StoreUrl::parse(repo, self.dir) {
                Ok(StoreUrl::Artifactory { base, repo, prefix }) => {
                    LibraryUrl::VcspArtifactory { base, repo, prefix }
                }
                _ => {
                    return Err(self.invalid(
                        l.url.span(),
                        &format!("{key}.url"),
                        format!("`{url}`: a VCSP library is a directory (vcsp:PATH) or an Artifactory generic repository (vcsp:artifactory+https://HOST/artifactory/REPO[/PATH])"),
                    ));
                }
            }
        } else if url.starts_with("https://") || url.starts_with("http://") {
            if l.library.is_none() {
                return Err(self.invalid(
                    span,
                    key,
                    "a vCenter library needs `library`, the content library's name",
                ));
            }
            LibraryUrl::VCenter(url.clone())
        } else {
            return Err(self.invalid(
                l.url.span(),
                &format!("{key}.url"),
                format!("`{url}` is neither a vCenter URL (https://…) nor a VCSP library (vcsp:PATH or vcsp:artifactory+https://…)"),
            ));
        };
        Ok(LibrarySpec {
            url,
            library: l.library.map(Spanned::into_inner),
            subscribed: l.subscribed.map(Spanned::into_inner).unwrap_or_default(),
            deploy: l.deploy.map(Spanned::into_inner),
            credentials,
            tls,
        })
    }

    fn images(&self, raw: Vec<RawImage>) -> Result<Vec<Image>, ConfigError> {
        let mut spans: HashMap<ImageName, Range<usize>> = HashMap::new();
        for img in &raw {
            if let Some(first) = spans.insert(img.name.get_ref().clone(), img.name.span()) {
                return Err(self.invalid(
                    img.name.span(),
                    "image.name",
                    format!(
                        "image `{}` is defined twice (first on line {})",
                        img.name.get_ref(),
                        line_col(self.text, first.start).0
                    ),
                ));
            }
        }
        let mut images = Vec::with_capacity(raw.len());
        let mut parent_spans = HashMap::new();
        for img in raw {
            let name = img.name.get_ref().clone();
            let key = |k: &str| format!("image.{name}.{k}");
            if let Some(v) = &img.parent_version
                && img.parent.is_none()
            {
                return Err(self.invalid(
                    v.span(),
                    &key("parent_version"),
                    "set `parent` too, or remove `parent_version`",
                ));
            }
            let parent = match &img.parent {
                None => None,
                Some(p) => {
                    let pname: ImageName =
                        p.get_ref().parse().map_err(|e: crate::image::NameError| {
                            self.invalid(p.span(), &key("parent"), e.to_string())
                        })?;
                    if !spans.contains_key(&pname) {
                        let mut known: Vec<_> = spans.keys().map(|n| n.as_str()).collect();
                        known.sort();
                        return Err(self.invalid(
                            p.span(),
                            &key("parent"),
                            format!(
                                "parent `{pname}` is not defined; defined images: {}",
                                known.join(", ")
                            ),
                        ));
                    }
                    if pname == name {
                        return Err(self.invalid(
                            p.span(),
                            &key("parent"),
                            "an image cannot be its own parent",
                        ));
                    }
                    let channel = img
                        .parent_version
                        .as_ref()
                        .and_then(|v| crate::image::channel_name(v.get_ref()).map(|c| (v, c)))
                        .map(|(v, c)| {
                            if crate::image::is_channel_name(c) {
                                Ok(c.to_string())
                            } else {
                                Err(self.invalid(
                                    v.span(),
                                    &key("parent_version"),
                                    format!("`{c}` is not a channel name: use ASCII letters, digits, `.`, `_` and `-`, as in `channel:prod`"),
                                ))
                            }
                        })
                        .transpose()?;
                    let requirement = match &img.parent_version {
                        None => VersionReq::STAR,
                        Some(_) if channel.is_some() => VersionReq::STAR,
                        Some(v) => VersionReq::parse(v.get_ref()).map_err(|e| {
                            self.invalid(
                                v.span(),
                                &key("parent_version"),
                                format!("`{}` is not a semver requirement such as `^1.2` or `>=1, <2`: {e}", v.get_ref()),
                            )
                        })?,
                    };
                    parent_spans.insert(name.clone(), p.span());
                    Some(ParentSpec {
                        name: pname,
                        requirement,
                        channel,
                    })
                }
            };
            let template = self.abs(&img.template);
            let default_paths = || {
                let rel = img.template.strip_prefix(self.dir).unwrap_or(&img.template);
                let dir = if img.template.extension().is_some() {
                    rel.parent().unwrap_or(rel)
                } else {
                    rel
                };
                vec![
                    format!("{}/**", dir.display())
                        .trim_start_matches('/')
                        .to_string(),
                ]
            };
            // Packer prints variables in its logs and keeps them in its state; the pipeline
            // file is reviewed and versioned. Neither is a place for a secret.
            if let Some(vars) = &img.variables
                && let Some(secret) = vars.get_ref().keys().find(|k| looks_secret(k))
            {
                return Err(self.invalid(
                    vars.span(),
                    &key("variables"),
                    format!(
                        "`{secret}` looks like a secret, and secrets are never written into \
                         {FILE_NAME}; let Packer read it from the environment (`PKR_VAR_{secret}`) \
                         and declare it `sensitive = true` in the template"
                    ),
                ));
            }
            images.push(Image {
                paths: img.paths.unwrap_or_else(default_paths),
                name,
                template,
                var_files: img.var_files.iter().map(|p| self.abs(p)).collect(),
                variables: img.variables.map(Spanned::into_inner).unwrap_or_default(),
                parent,
                only: img.only,
                manifest: img.manifest.as_deref().map(|p| self.abs(p)),
                first_version: img.first_version,
                build_timeout: img.build_timeout.map(|d| d.0),
                scan: ScanSpec {
                    policy: img.scan.policy.iter().map(|p| self.abs(p)).collect(),
                    waivers: img.scan.waivers.as_deref().map(|p| self.abs(p)),
                    ..img.scan
                },
            });
        }
        self.check_cycles(&images, &parent_spans)?;
        Ok(images)
    }

    fn check_cycles(
        &self,
        images: &[Image],
        parent_spans: &HashMap<ImageName, Range<usize>>,
    ) -> Result<(), ConfigError> {
        let parent_of: HashMap<&ImageName, &ImageName> = images
            .iter()
            .filter_map(|i| i.parent.as_ref().map(|p| (&i.name, &p.name)))
            .collect();
        for img in images {
            let mut chain = vec![&img.name];
            let mut cur = &img.name;
            while let Some(&p) = parent_of.get(cur) {
                if p == &img.name {
                    chain.push(p);
                    let path = chain
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ");
                    return Err(self.invalid(
                        parent_spans[&img.name].clone(),
                        &format!("image.{}.parent", img.name),
                        format!("the parent graph has a cycle: {path}"),
                    ));
                }
                if chain.contains(&p) {
                    break; // a cycle further up; reported when its own member is visited
                }
                chain.push(p);
                cur = p;
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

fn excerpt(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .map(|l| format!("  {line} | {l}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/repo/imagepipe.toml"))
    }

    const LAYERS: &str = r#"
[[image]]
name = "vendor/debian-12"
template = "images/vendor"

[[image]]
name = "service/web"
template = "images/web/web.pkr.hcl"
parent = "product/nginx"

[[image]]
name = "global/debian-12"
template = "images/global"
parent = "vendor/debian-12"
parent_version = "^1.2"

[[image]]
name = "product/nginx"
template = "images/nginx"
parent = "global/debian-12"
"#;

    #[test]
    fn embedded_defaults() {
        let c = parse("").unwrap();
        assert_eq!(
            c.store.url,
            StoreUrl::Local("/repo/.imagepipe/store".into())
        );
        assert_eq!(c.sites.len(), 1);
        assert_eq!(
            c.sites[0].library.as_ref().unwrap().url,
            LibraryUrl::VcspDir("/repo/.imagepipe/library".into())
        );
        assert_eq!(c.tag_format, TagFormat::default());
        assert_eq!(c.output_dir, Path::new("/repo/.imagepipe/build"));
    }

    #[test]
    fn layers_and_order() {
        let c = parse(LAYERS).unwrap();
        let order: Vec<_> = c.topological().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "vendor/debian-12",
                "global/debian-12",
                "product/nginx",
                "service/web"
            ]
        );
        let vendor: ImageName = "vendor/debian-12".parse().unwrap();
        let desc: Vec<_> = c
            .descendants(&vendor)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(desc, ["global/debian-12", "product/nginx", "service/web"]);
        let g = c.image("global/debian-12").unwrap();
        assert_eq!(
            g.parent.as_ref().unwrap().requirement,
            VersionReq::parse("^1.2").unwrap()
        );
        assert_eq!(g.paths, ["images/global/**"]);
        assert_eq!(c.image("service/web").unwrap().paths, ["images/web/**"]);
        assert!(matches!(
            c.image("nope"),
            Err(ConfigError::UnknownImage { .. })
        ));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err =
            parse("[[image]]\nname = \"a\"\ntemplate = \"t\"\ntemplat = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/repo/imagepipe.toml:4:1: unknown field `templat`"),
            "{msg}"
        );
        assert!(msg.contains("4 | templat = \"x\""), "{msg}");
    }

    #[test]
    fn cycle_is_refused() {
        let text = "[[image]]\nname = \"a\"\ntemplate = \"t\"\nparent = \"b\"\n\n[[image]]\nname = \"b\"\ntemplate = \"t\"\nparent = \"a\"\n";
        let msg = parse(text).unwrap_err().to_string();
        assert_eq!(
            msg,
            "/repo/imagepipe.toml:4: `image.a.parent`: the parent graph has a cycle: a → b → a"
        );
    }

    #[test]
    fn unknown_parent_is_refused() {
        let msg = parse("[[image]]\nname = \"a\"\ntemplate = \"t\"\nparent = \"ghost\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "/repo/imagepipe.toml:4: `image.a.parent`: parent `ghost` is not defined; defined images: a"
        );
    }

    #[test]
    fn bad_values() {
        let cases = [
            (
                "[[image]]\nname = \"A b\"\ntemplate = \"t\"\n",
                "imagepipe.toml:2:8: image name `A b` is not valid",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\nbuild_timeout = \"soon\"\n",
                "imagepipe.toml:4:17: `soon` is not a duration",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\n[[image]]\nname = \"b\"\ntemplate = \"t\"\nparent = \"a\"\nparent_version = \"one\"\n",
                "imagepipe.toml:8: `image.b.parent_version`: `one` is not a semver requirement",
            ),
            (
                "[pipeline]\ntag_format = \"{version}\"\n",
                "imagepipe.toml:2: `pipeline.tag_format`: tag format",
            ),
            (
                "[store]\nurl = \"ftp://x\"\n",
                "imagepipe.toml:2: `store.url`: ",
            ),
            (
                "[store]\nurl = \"file:/s\"\npassword = \"hunter2\"\n",
                "imagepipe.toml:3: `store.password`: secrets are never written",
            ),
            (
                "[store]\nurl = \"file:/s\"\ntoken_env = \"abc-def\"\n",
                "`store`: `abc-def` is not an environment variable name",
            ),
            (
                "[store]\nurl = \"file:/s\"\n\npin_sha256 = [\"zz\"]\n",
                "imagepipe.toml:4: `store.pin_sha256`: `zz` is not a SHA-256",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\nvariables = { region = \"x\", vcenter_password = \"hunter2\" }\n",
                "imagepipe.toml:4: `image.a.variables`: `vcenter_password` looks like a secret",
            ),
            (
                "[store]\nurl = \"artifactory+https://h/artifactory/repo/../etc\"\n",
                "`store.url`: ",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\n[[image]]\nname = \"a\"\ntemplate = \"u\"\n",
                "imagepipe.toml:5: `image.name`: image `a` is defined twice (first on line 2)",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\nparent = \"a\"\n",
                "an image cannot be its own parent",
            ),
            (
                "[[image]]\nname = \"a\"\ntemplate = \"t\"\n[image.scan]\nfail_on = \"severe\"\n",
                "imagepipe.toml:5:11: unknown variant `severe`",
            ),
            (
                "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:/e\"\n[site.library]\nurl = \"https://vc.example\"\n",
                "`site.east.library`: a vCenter library needs `library`",
            ),
        ];
        for (text, want) in cases {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text:?}\n  got: {msg}\n want: {want}");
        }
    }

    #[test]
    fn credentials_over_plain_http_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(
            &path,
            "[store]\nurl = \"artifactory+http://art.corp.example/artifactory/r\"\ntoken_env = \"T\"\n\n[[site]]\nname = \"lab\"\n[site.store]\nurl = \"artifactory+http://127.0.0.1:8081/artifactory/r\"\ntoken_env = \"T\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("the primary store (artifactory+http://art.corp.example/artifactory/r) is reached over plain HTTP"));
    }

    #[test]
    fn sites_and_credentials() {
        let c = parse(
            r#"
[store]
url = "artifactory+https://art.example/artifactory/os-images"
token_env = "ART_TOKEN"
ca_bundle = "certs/corp.pem"

[[site]]
name = "dc-east"
sla = "8h"
store = { url = "artifactory+https://art-east.example/artifactory/os-images", username_env = "U", password_env = "P" }
library = { url = "https://vc-east.example", library = "images", subscribed = ["east-a"], username_env = "VC_USER", password_env = "VC_PASS" }
"#,
        )
        .unwrap();
        assert_eq!(c.store.credentials.token_env.as_deref(), Some("ART_TOKEN"));
        assert_eq!(
            c.store.tls.ca_bundle.as_deref(),
            Some(Path::new("/repo/certs/corp.pem"))
        );
        assert_eq!(c.sites.len(), 1);
        assert_eq!(c.sites[0].sla, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(c.sites[0].library.as_ref().unwrap().subscribed, ["east-a"]);
    }
}
