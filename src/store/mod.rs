//! Artifact stores: where published image versions live.
//!
//! Every backend lays an image version out the same way, `<image>/<version>/<file>` plus the
//! record, and writes the record last: a version is visible exactly when its record is, so a
//! reader that finds a record finds every artifact it names.

mod artifactory;
mod local;
mod oci;
mod reader;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};

pub use artifactory::ArtifactoryStore;
pub use local::LocalStore;
pub use oci::OciStore;
pub use reader::{
    ArtifactReader, ByteStream, Expected, FileReader, HttpReader, MemoryReader, Verifying,
};

pub use crate::endpoint::{StoreSpec, StoreUrl, StoreUrlError};
use crate::hash::Sha256Hex;
use crate::image::{ImageName, ImageRef};
use crate::record::{FileArtifact, LoadedRecord, Record, RecordError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{image} is not in store {store}")]
    VersionNotFound { image: ImageRef, store: String },
    #[error("{store}: {path}: {source}")]
    Io {
        store: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{store}: {path} does not have the expected content ({actual_size} bytes, sha256 \
         {actual}; the record says {expected_size} bytes, sha256 {expected}); the store's copy is \
         corrupt or was changed after publishing"
    )]
    Integrity {
        store: String,
        path: PathBuf,
        expected: Sha256Hex,
        actual: Sha256Hex,
        expected_size: u64,
        actual_size: u64,
    },
    #[error(
        "{store}: {path} already holds different bytes (sha256 {existing}, publishing {new}); \
         a published version is never overwritten: publish a new version"
    )]
    Conflict {
        store: String,
        path: PathBuf,
        existing: Sha256Hex,
        new: Sha256Hex,
    },
    #[error(
        "{path} is not the file its record describes ({actual_size} bytes, sha256 {actual}; the \
         record says {expected_size} bytes, sha256 {expected}): it changed after the build, or \
         the record was edited; rebuild it"
    )]
    SourceMismatch {
        path: PathBuf,
        expected: Sha256Hex,
        actual: Sha256Hex,
        expected_size: u64,
        actual_size: u64,
    },
    #[error("{store}: {location} is missing although the version's record names it")]
    MissingArtifact { store: String, location: String },
    #[error("{store}: the record of {image} names {record_image}")]
    WrongRecord {
        store: String,
        image: ImageRef,
        record_image: ImageRef,
    },
    #[error("{store}: `{name}` cannot be stored: {reason}")]
    BadName {
        store: String,
        name: String,
        reason: &'static str,
    },
    #[error(
        "store {0} is not supported by this imagepipe release; the local directory store \
         (file:PATH), OCI registries (oci://) and Artifactory (artifactory+https://) are"
    )]
    Unsupported(String),
    #[error("{store}: {method} {url}: {status} {message}")]
    Remote {
        store: String,
        method: String,
        url: String,
        status: u16,
        message: String,
        /// The server's `Retry-After`, for 429 and 503 answers.
        retry_after: Option<std::time::Duration>,
    },
    #[error(
        "{store}: {method} {url}: {status}{message}: not authorised; check the store's \
         credentials in imagepipe.toml and the permissions they carry"
    )]
    Unauthorized {
        store: String,
        method: String,
        url: String,
        status: u16,
        /// The server's reason, after ": ", when it gave one (a 403 names the permission).
        message: String,
    },
    #[error("{store}: {source}")]
    Http {
        store: String,
        source: crate::http::HttpError,
    },
    #[error("{store}: {url}: {message}")]
    BadAnswer {
        store: String,
        url: String,
        message: String,
    },
    #[error("{store}: {url}: the connection failed: {message}")]
    Transport {
        store: String,
        url: String,
        message: String,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// What a store holds of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFile {
    pub sha256: Sha256Hex,
    pub size: u64,
}

impl StoredFile {
    /// Whether this is exactly the file a record describes.
    pub fn is(&self, artifact: &FileArtifact) -> bool {
        self.sha256 == artifact.sha256 && self.size == artifact.size
    }
}

/// Whether a put transferred bytes or found them already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    AlreadyPresent,
    /// The store had the bytes elsewhere and linked them (Artifactory checksum deploy).
    ByChecksum,
}

/// One target of a store's replication, as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ReplicationTarget {
    /// The target repository's URL.
    pub url: String,
    #[serde(default, rename = "repoKey")]
    pub repo_key: Option<String>,
    /// Artifactory's word: `never_run`, `incomplete`, `error`, `warn`, `ok`, `inconsistent`.
    pub status: String,
    #[serde(default, rename = "lastCompleted")]
    pub last_completed: Option<String>,
}

impl ReplicationTarget {
    /// Whether this target is the store at `url`.
    pub fn is(&self, url: &StoreUrl) -> bool {
        let StoreUrl::Artifactory { base, repo, .. } = url else {
            return false;
        };
        let target = self.url.trim_end_matches('/');
        target == format!("{base}/{repo}")
            || (target == base && self.repo_key.as_deref() == Some(repo.as_str()))
    }
}

/// A held lock on one version of a store; released when dropped.
#[derive(Debug)]
pub struct VersionLock {
    _file: std::fs::File,
}

impl VersionLock {
    pub(crate) fn new(file: std::fs::File) -> Self {
        Self { _file: file }
    }
}

/// Metadata stores that support it attach to what they store (Artifactory properties).
pub type Properties = [(String, String)];

/// The operations every backend offers. Methods take image references so that backends decide
/// their own layout and addressing.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The store's address without credentials, for messages and records.
    fn location(&self) -> String;

    /// Published versions of an image (those whose record is present), in no particular order.
    async fn list_versions(&self, image: &ImageName) -> Result<Vec<Version>, StoreError>;

    /// The published versions of each of `images` (every one of them is a key), in as few
    /// requests as the store has a way to: the fleet view's "what do you hold". By default one
    /// listing per image, eight at once: a registry has no cheaper honest query (its catalog
    /// names repositories, not tags, so each repository's tag list is still one request) and a
    /// local store's listing is a directory walk. Artifactory answers for the whole repository
    /// with one AQL query (paged). Each image has its own answer: one repository a registry
    /// refuses fails that image only; an error for the whole store is the outer one.
    async fn list_held(&self, images: &[ImageName]) -> Result<Held, StoreError> {
        use futures_util::StreamExt as _;
        // Made up front: a closure in the stream would need a bound the compiler cannot show
        // for the trait's boxed futures.
        let queries: Vec<_> = images.iter().map(|i| self.list_versions(i)).collect();
        let lists: Vec<Result<Vec<Version>, StoreError>> = futures_util::stream::iter(queries)
            .buffered(8)
            .collect()
            .await;
        Ok(images.iter().cloned().zip(lists).collect())
    }

    /// The keys of the lifecycle documents of each of `images` that has any (channels,
    /// revocations), where the store can tell for all of them in one query (Artifactory's
    /// AQL); `None` where it cannot, and each image's documents are listed to find out.
    async fn lifecycle_held(
        &self,
        images: &[ImageName],
    ) -> Result<Option<BTreeMap<ImageName, Vec<String>>>, StoreError> {
        let _ = images;
        Ok(None)
    }

    /// The properties stored with the published records of `images`, by image and version,
    /// where the store keeps properties and can give them all in one query (Artifactory's
    /// AQL); `None` where it cannot. Versions the answer lacks are simply not in it.
    async fn record_properties(
        &self,
        images: &[ImageName],
    ) -> Result<Option<BTreeMap<(ImageName, Version), BTreeMap<String, String>>>, StoreError> {
        let _ = images;
        Ok(None)
    }

    /// The record of a published version, with the digest of its stored bytes.
    async fn fetch_record(&self, image: &ImageRef) -> Result<LoadedRecord, StoreError>;

    /// Where a build reads an artifact of a published version: a local path or a URL.
    fn artifact_location(&self, image: &ImageRef, artifact: &FileArtifact) -> String;

    /// Where a version's record is (or will be), as a path or URL.
    fn record_location(&self, image: &ImageRef) -> String;

    /// Stores one artifact file, checking its size and digest against the record's on the way
    /// in. `progress` receives the bytes of this file sent so far. An artifact the store
    /// already holds with other bytes is a [`StoreError::Conflict`], never overwritten.
    async fn put_artifact(
        &self,
        image: &ImageRef,
        source: &Path,
        expected: &FileArtifact,
        properties: &Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PutOutcome, StoreError>;

    /// Holds off other writers of one version until the guard is dropped, where the store has a
    /// way to (a lock file in a local store); `None` where it has none, and conflicts are then
    /// caught by comparing before and after each write.
    async fn lock_version(&self, image: &ImageRef) -> Result<Option<VersionLock>, StoreError> {
        let _ = image;
        Ok(None)
    }

    /// Whether these credentials may read the store at all. A store that hides what a token
    /// may not read answers "not found" to everything, which would read as a version that has
    /// not arrived; this tells the two apart. `Ok` where the store cannot tell.
    async fn check_access(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Removes one artifact file this run stored, when a publish that lost a race undoes its
    /// own writes; `Ok(false)` where the store cannot.
    async fn remove_artifact(&self, image: &ImageRef, name: &str) -> Result<bool, StoreError> {
        let _ = (image, name);
        Ok(false)
    }

    /// Stores the record; call it after every artifact is stored.
    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        properties: &Properties,
    ) -> Result<(), StoreError>;

    /// The digest and size of the stored copy of one artifact of a version, or `None` when the
    /// store does not hold it. Remote backends answer from what the server computed itself
    /// (Artifactory's File Info, a registry's content addressing); the local store hashes.
    async fn artifact_digest(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Option<StoredFile>, StoreError>;

    /// Random access to a stored artifact, to read parts of it in place.
    async fn open_artifact(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Box<dyn ArtifactReader>, StoreError>;

    /// Checks that every file artifact of the record is present with its recorded digest.
    async fn verify(&self, image: &ImageRef, record: &LoadedRecord) -> Result<(), StoreError> {
        for f in record.record.artifacts.iter().filter_map(|a| a.file()) {
            match self.artifact_digest(image, f).await? {
                Some(stored) if stored.is(f) => {}
                Some(stored) => {
                    return Err(StoreError::Integrity {
                        store: self.location(),
                        path: self.artifact_location(image, f).into(),
                        expected: f.sha256,
                        actual: stored.sha256,
                        expected_size: f.size,
                        actual_size: stored.size,
                    });
                }
                None => {
                    return Err(StoreError::MissingArtifact {
                        store: self.location(),
                        location: self.artifact_location(image, f),
                    });
                }
            }
        }
        Ok(())
    }

    /// Asks the store to replicate a version to its targets now (Artifactory push
    /// replication); the replication itself runs on the server.
    async fn trigger_replication(&self, image: &ImageRef) -> Result<(), StoreError> {
        let _ = image;
        Err(StoreError::Unsupported(format!(
            "triggering replication on {}",
            self.location()
        )))
    }

    /// The store's replication targets and how their last replication went.
    async fn replication_status(&self) -> Result<Vec<ReplicationTarget>, StoreError> {
        Err(StoreError::Unsupported(format!(
            "replication status on {}",
            self.location()
        )))
    }

    /// One lifecycle document of an image (a channel with its history, a revocation; see
    /// `crate::lifecycle`), or `None` when the store holds none under `key`. Keys are plain
    /// names (`channels`, `revoked-1.2.0`) that never parse as a version, so no listing
    /// takes them for one.
    async fn read_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (image, key);
        Err(StoreError::Unsupported(format!(
            "lifecycle documents (channels, revocations) on {}",
            self.location()
        )))
    }

    /// The keys of an image's lifecycle documents, in no order (empty when it has none): one
    /// query however many there are (a directory read, an AQL query, the tag list).
    async fn list_lifecycle(&self, image: &ImageName) -> Result<Vec<String>, StoreError> {
        let _ = image;
        Err(StoreError::Unsupported(format!(
            "lifecycle documents (channels, revocations) on {}",
            self.location()
        )))
    }

    /// Replaces one lifecycle document whole, in one atomic step: a reader sees the old
    /// document or the new one, never a part (a rename in a local store, one deploy in
    /// Artifactory, one manifest push in a registry).
    async fn write_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let _ = (image, key, bytes);
        Err(StoreError::Unsupported(format!(
            "lifecycle documents (channels, revocations) on {}",
            self.location()
        )))
    }

    /// Holds off other lifecycle writers of an image until the guard is dropped, where the
    /// store has a way to (a lock file in a local store); `None` elsewhere, where a writer
    /// reads its document back to learn whether it won.
    async fn lock_lifecycle(&self, image: &ImageName) -> Result<Option<VersionLock>, StoreError> {
        let _ = image;
        Ok(None)
    }

    /// Marks a channel on the version itself the store's own way, after the channel document
    /// was written: an item property in Artifactory, a tag in a registry. `previous` is the
    /// version the channel pointed at before, whose mark goes. Stores whose channel document
    /// is the whole story (a local store) do nothing.
    async fn mark_channel(
        &self,
        image: &ImageRef,
        channel: &str,
        previous: Option<&Version>,
    ) -> Result<(), StoreError> {
        let _ = (image, channel, previous);
        Ok(())
    }

    /// Removes a published version: its record first, so that the version stops being
    /// visible before any of its files goes, then the rest of the version. A run that fails
    /// half way leaves files of a version nobody sees (no record), never a visible version
    /// with files missing.
    async fn delete_version(&self, image: &ImageRef) -> Result<(), StoreError> {
        let _ = image;
        Err(StoreError::Unsupported(format!(
            "deleting versions from {}",
            self.location()
        )))
    }

    /// Publishes build-info linking the version's files to a CI build (Artifactory only).
    async fn publish_build_info(
        &self,
        image: &ImageRef,
        record: &Record,
        build: (&str, &str),
    ) -> Result<(), StoreError> {
        let _ = (image, record, build);
        Err(StoreError::Unsupported(format!(
            "build-info on {}",
            self.location()
        )))
    }
}

/// The newest published version that satisfies `req`. Pre-releases are only chosen when the
/// requirement names one, following semver's own matching rules.
pub async fn resolve(
    store: &dyn Store,
    image: &ImageName,
    req: &VersionReq,
) -> Result<Option<Version>, StoreError> {
    let versions = store.list_versions(image).await?;
    Ok(versions.into_iter().filter(|v| req.matches(v)).max())
}

/// Opens the store a spec names; its credentials are read (and registered as secrets).
pub fn open(spec: &StoreSpec) -> Result<Box<dyn Store>, StoreError> {
    open_with(spec, crate::http::HttpOptions::default())
}

/// [`open`] with the HTTP timeouts and retries of the caller; TLS comes from the spec.
pub fn open_with(
    spec: &StoreSpec,
    http: crate::http::HttpOptions,
) -> Result<Box<dyn Store>, StoreError> {
    // Remote stores share the credentials and the one HTTP client factory.
    let remote = || {
        let location = spec.url.to_string();
        let auth = spec
            .credentials
            .resolve()
            .map_err(|e| StoreError::BadAnswer {
                store: location.clone(),
                url: String::new(),
                message: e.to_string(),
            })?;
        let options = crate::http::HttpOptions {
            tls: spec.tls.clone(),
            ..http.clone()
        };
        let client = crate::http::HttpClient::new(&options).map_err(|source| StoreError::Http {
            store: location,
            source,
        })?;
        Ok::<_, StoreError>((client, options.retry, auth))
    };
    match &spec.url {
        StoreUrl::Local(root) => Ok(Box::new(LocalStore::new(root.clone()))),
        StoreUrl::Oci {
            registry,
            namespace,
            plain_http,
        } => {
            let (client, retry, auth) = remote()?;
            Ok(Box::new(OciStore::new(
                client,
                retry,
                registry,
                namespace,
                *plain_http,
                auth,
            )))
        }
        StoreUrl::Artifactory { base, repo, prefix } => {
            let (client, retry, auth) = remote()?;
            Ok(Box::new(ArtifactoryStore::new(
                client, retry, base, repo, prefix, auth,
            )))
        }
    }
}

/// Runs a streamed upload, and runs it again with the shared backoff when the connection drops
/// or the server answers 429 or 5xx, honouring its `Retry-After`: stores keep nothing of a
/// broken upload, and a streamed body cannot be replayed by the HTTP client's own retries.
pub(crate) async fn retry_upload<F, Fut>(
    policy: crate::http::RetryPolicy,
    mut once: F,
) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = match once().await {
            Err(StoreError::Remote {
                status,
                retry_after,
                ..
            }) if (status == 429 || status >= 500) && attempt <= policy.retries => retry_after,
            Err(StoreError::Transport { .. }) if attempt <= policy.retries => None,
            other => return other,
        };
        tokio::time::sleep(policy.delay(attempt, wait)).await;
    }
}

/// A record read from a store: valid, and the one of the version asked for; with the digest of
/// its stored bytes, which children pin.
pub(crate) fn stored_record(
    store: String,
    image: &ImageRef,
    bytes: &[u8],
    origin: &str,
) -> Result<LoadedRecord, StoreError> {
    let record = crate::record::Record::from_slice(bytes, origin)?;
    if record.id() != *image {
        return Err(StoreError::WrongRecord {
            store,
            image: image.clone(),
            record_image: record.id(),
        });
    }
    Ok(LoadedRecord {
        record,
        sha256: Sha256Hex::digest(bytes),
    })
}

/// Registries and Artifactory both answer errors as `{"errors":[{"code"?, "message"}]}`.
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: String,
}

/// Turns a non-success HTTP answer of a remote store into an error carrying the server's own
/// message (or the start of its body when it sent no error document).
pub(crate) async fn http_failure(
    store: String,
    method: &str,
    url: &str,
    resp: reqwest::Response,
) -> StoreError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::http::parse_retry_after(v, std::time::SystemTime::now()));
    // A server may echo the request, credentials included: scrubbed before it is kept.
    let text = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        // 401 says only "Bad credentials"; a 403 says which permission is missing.
        let message = if status == reqwest::StatusCode::FORBIDDEN {
            let m = error_message(&text)
                .unwrap_or_else(|| crate::secret::scrub_and_cut(text.trim(), 300));
            if m.is_empty() { m } else { format!(": {m}") }
        } else {
            String::new()
        };
        return StoreError::Unauthorized {
            store,
            method: method.into(),
            url: url.into(),
            status: status.as_u16(),
            message,
        };
    }
    let message = error_message(&text).unwrap_or_else(|| crate::secret::scrub_and_cut(&text, 300));
    StoreError::Remote {
        store,
        method: method.into(),
        url: url.into(),
        status: status.as_u16(),
        message,
        retry_after,
    }
}

/// The message of an `{"errors":[…]}` body, scrubbed of secrets; plain text cut short.
pub(crate) fn error_message(text: &str) -> Option<String> {
    serde_json::from_str::<ErrorBody>(text)
        .ok()
        .and_then(|b| b.errors.into_iter().next())
        .map(|e| match e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message,
        })
        .map(|m| crate::secret::scrub(&m).into_owned())
}

/// What [`Store::list_held`] answers: each image's published versions, or why that image
/// could not be listed.
pub type Held = BTreeMap<ImageName, Result<Vec<Version>, StoreError>>;

/// The folder of an image that holds its lifecycle documents (never a version).
pub const LIFECYCLE_DIR: &str = "_lifecycle";

/// A lifecycle document's key must be a plain name every store can hold as a file name and a
/// registry as a tag: ASCII letters, digits, `.`, `_` and `-`, not starting with `.` or `-`.
pub(crate) fn check_lifecycle_key(store: &str, key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 100
        && !key.starts_with(['.', '-'])
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            store: store.to_string(),
            name: key.to_string(),
            reason: "lifecycle names are ASCII letters, digits, `.`, `_` and `-`",
        })
    }
}

/// The file name an artifact gets in a store: its base name, which must be a plain file name.
pub fn stored_file_name(store: &str, source: &Path) -> Result<String, StoreError> {
    let bad = |reason| StoreError::BadName {
        store: store.to_string(),
        name: source.display().to_string(),
        reason,
    };
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad("the file name is not UTF-8"))?;
    if name == crate::record::FILE_NAME {
        return Err(bad("the name is reserved for the image record"));
    }
    if name.starts_with('.') {
        return Err(bad("hidden files are not stored"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let base = Path::new("/repo");
        assert_eq!(
            StoreUrl::parse("file:.imagepipe/store", base).unwrap(),
            StoreUrl::Local("/repo/.imagepipe/store".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///srv/images", base).unwrap(),
            StoreUrl::Local("/srv/images".into())
        );
        let a = StoreUrl::parse(
            "artifactory+https://art.example/artifactory/os-images/prod/",
            base,
        )
        .unwrap();
        assert_eq!(
            a,
            StoreUrl::Artifactory {
                base: "https://art.example/artifactory".into(),
                repo: "os-images".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(
            a.to_string(),
            "artifactory+https://art.example/artifactory/os-images/prod"
        );
        let o = StoreUrl::parse("oci://registry.example:5000/images", base).unwrap();
        assert_eq!(o.to_string(), "oci://registry.example:5000/images");
        for bad in [
            "s3://b",
            "file:",
            "artifactory+ftp://x/artifactory/r",
            "artifactory+https://x/r",
            "oci:///x",
        ] {
            assert!(StoreUrl::parse(bad, base).is_err(), "{bad}");
        }
    }
}
