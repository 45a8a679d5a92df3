//! JFrog Artifactory generic repositories, over REST.
//!
//! - Deploy (`PUT /<repo>/<path>;k=v`, `X-Checksum-Sha256`), deploy by checksum
//!   (`X-Checksum-Deploy: true`, no body): <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact>,
//!   <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact-by-checksum>
//! - File Info (`GET /api/storage/<repo>/<path>`): <https://jfrog.com/help/r/jfrog-rest-apis/file-info>
//! - AQL (`POST /api/search/aql`): <https://jfrog.com/help/r/jfrog-rest-apis/artifactory-query-language>
//! - Errors are `{"errors":[{"status":…,"message":…}]}`; the message is shown as is.
//!
//! A version is `<prefix>/<image>/<version>/` with the record written last. Before any deploy the
//! path is looked up with File Info, so a checksum deploy can never replace other bytes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response, StatusCode};
use semver::Version;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Properties, PutOutcome, Store, StoreError, stored_file_name};
use crate::hash::Sha256Hex;
use crate::http::{HttpClient, RetryPolicy};
use crate::image::{ImageName, ImageRef};
use crate::record::{self, FileArtifact, LoadedRecord, Record};
use crate::secret::Auth;

#[derive(Debug, Clone)]
pub struct ArtifactoryStore {
    client: HttpClient,
    retry: RetryPolicy,
    base: String,
    repo: String,
    prefix: String,
    auth: Auth,
}

#[derive(Debug, Deserialize)]
struct FileInfo {
    #[serde(default)]
    checksums: Checksums,
    /// A string in File Info answers, a number in some others.
    #[serde(default)]
    size: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Checksums {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    sha1: Option<String>,
    #[serde(default)]
    md5: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UploadsConfig {
    #[serde(default)]
    supported: bool,
}

#[derive(Debug, Deserialize)]
struct UploadToken {
    token: String,
}

#[derive(Debug, Deserialize)]
struct PartUrl {
    url: String,
}

#[derive(Debug, Deserialize)]
struct UploadStatus {
    status: String,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AqlAnswer {
    results: Vec<AqlItem>,
}

#[derive(Debug, Deserialize)]
struct AqlItem {
    path: String,
}

/// `;k=v` matrix parameters; values are percent-encoded, so `,` `;` `=` `|` `\` survive.
fn matrix(props: &Properties) -> String {
    props
        .iter()
        .map(|(k, v)| format!(";{}={}", encode(k), encode(v)))
        .collect()
}

/// `k=v;k2=v2` for the Set Item Properties API: `,` `\\` `|` `=` `;` escaped with a backslash.
fn properties_query(props: &Properties) -> String {
    let esc = |s: &str| {
        s.chars()
            .flat_map(|c| {
                if ",\\|=;".contains(c) {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect::<String>()
    };
    let list: Vec<String> = props
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect();
    encode(&list.join(";"))
}

/// The multipart part size.
fn part_size() -> u64 {
    crate::env::var(crate::env::MULTIPART_PART_MIB)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(20)
        << 20
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl ArtifactoryStore {
    pub fn new(
        client: HttpClient,
        retry: RetryPolicy,
        base: &str,
        repo: &str,
        prefix: &str,
        auth: Auth,
    ) -> Self {
        Self {
            client,
            retry,
            base: base.trim_end_matches('/').into(),
            repo: repo.into(),
            prefix: prefix.trim_matches('/').into(),
            auth,
        }
    }

    fn path(&self, image: &ImageName, version: &str, file: &str) -> String {
        [self.prefix.as_str(), image.as_str(), version, file]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    }

    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, StoreError> {
        self.client
            .send(|c| self.auth.apply(build(c)))
            .await
            .map_err(|source| StoreError::Http {
                store: self.location(),
                source,
            })
    }

    async fn fail(&self, method: &str, url: &str, resp: Response) -> StoreError {
        super::http_failure(self.location(), method, url, resp).await
    }

    /// File Info of a path, or `None` when the path holds nothing.
    async fn file_info(&self, path: &str) -> Result<Option<FileInfo>, StoreError> {
        let url = format!("{}/api/storage/{}/{path}", self.base, self.repo);
        let resp = self.send(|c| c.get(&url)).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => self.decode(&url, resp).await.map(Some),
            _ => Err(self.fail("GET", &url, resp).await),
        }
    }

    /// The stored sha256 of a file, or `None` when the path holds nothing.
    async fn file_sha256(&self, path: &str) -> Result<Option<Sha256Hex>, StoreError> {
        Ok(self.stored_file(path).await?.map(|f| f.sha256))
    }

    /// What File Info says of a file: its sha256 and size.
    async fn stored_file(&self, path: &str) -> Result<Option<super::StoredFile>, StoreError> {
        let Some(info) = self.file_info(path).await? else {
            return Ok(None);
        };
        let bad = |what: &str| StoreError::BadAnswer {
            store: self.location(),
            url: path.to_string(),
            message: format!("File Info has no {what}"),
        };
        let sha256 = info
            .checksums
            .sha256
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("sha256 checksum"))?;
        let size = match &info.size {
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(v) => v.as_u64(),
            None => None,
        }
        .ok_or_else(|| bad("size"))?;
        Ok(Some(super::StoredFile { sha256, size }))
    }

    /// A POST of a multipart session, authorised by the session token; errors carry the
    /// server's message.
    async fn session_post(
        &self,
        url: &str,
        session: &crate::secret::Secret,
    ) -> Result<Response, StoreError> {
        let resp = self
            .client
            .send(|c| c.post(url).bearer_auth(session.expose()))
            .await
            .map_err(|source| StoreError::Http {
                store: self.location(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(self.fail("POST", url, resp).await);
        }
        Ok(resp)
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        resp: Response,
    ) -> Result<T, StoreError> {
        resp.json().await.map_err(|e| StoreError::BadAnswer {
            store: self.location(),
            url: url.into(),
            message: e.to_string(),
        })
    }

    /// Whether the server offers multipart upload (Artifactory 7.82.2+ on cloud storage).
    async fn multipart_supported(&self) -> bool {
        let url = format!("{}/api/v1/uploads/config", self.base);
        match self.send(|c| c.get(&url)).await {
            Ok(r) if r.status().is_success() => {
                r.json::<UploadsConfig>().await.is_ok_and(|c| c.supported)
            }
            _ => false,
        }
    }

    /// Sends a file in parts: each part is read once, hashed (sha256 and the sha1 that
    /// `complete` asks for) and sent with the shared retries; only one part is in memory. Any
    /// failure aborts the upload, so nothing half-assembled appears.
    async fn upload_multipart(
        &self,
        path: &str,
        source: &Path,
        expected: &Sha256Hex,
        props: &Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        let part = part_size();
        let create = format!(
            "{}/api/v1/uploads/create?repoKey={}&repoPath={}&partSizeMB={}",
            self.base,
            encode(&self.repo),
            encode(path),
            part >> 20
        );
        let resp = self.send(|c| c.post(&create)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("POST", &create, resp).await);
        }
        let token: UploadToken = self.decode(&create, resp).await?;
        let session = crate::secret::Secret::new(token.token);
        let result = self
            .send_parts(source, expected, part, &session, progress)
            .await;
        let result = match result {
            Ok(sha1) => self.complete_upload(&session, &sha1).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let abort = format!("{}/api/v1/uploads/abort", self.base);
            let _ = self
                .client
                .send(|c| c.post(&abort).bearer_auth(session.expose()))
                .await;
            return Err(e);
        }
        // Matrix parameters do not travel with parts: set the properties now.
        let url = format!(
            "{}/api/storage/{}/{path}?properties={}&recursive=0",
            self.base,
            self.repo,
            properties_query(props)
        );
        let resp = self.send(|c| c.put(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    async fn send_parts(
        &self,
        source: &Path,
        expected: &Sha256Hex,
        part: u64,
        session: &crate::secret::Secret,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<String, StoreError> {
        use tokio::io::AsyncReadExt as _;
        let io = |e: std::io::Error| StoreError::Io {
            store: self.location(),
            path: source.to_path_buf(),
            source: e,
        };
        let mut file = tokio::fs::File::open(source).await.map_err(io)?;
        let (mut s256, mut s1) = (Sha256::new(), sha1::Sha1::new());
        let mut done = 0u64;
        for number in 1u64.. {
            let mut buf = bytes::BytesMut::with_capacity(part as usize);
            while (buf.len() as u64) < part {
                if file.read_buf(&mut buf).await.map_err(io)? == 0 {
                    break;
                }
            }
            if buf.is_empty() && number > 1 {
                break;
            }
            s256.update(&buf);
            s1.update(&buf);
            let bytes = buf.freeze();
            let url_part = format!("{}/api/v1/uploads/urlPart?partNumber={number}", self.base);
            let resp = self.session_post(&url_part, session).await?;
            let target: PartUrl = self.decode(&url_part, resp).await?;
            let resp = self
                .client
                .send(|c| c.put(&target.url).body(bytes.clone()))
                .await
                .map_err(|source| StoreError::Http {
                    store: self.location(),
                    source,
                })?;
            if !resp.status().is_success() {
                return Err(self.fail("PUT", &target.url, resp).await);
            }
            done += bytes.len() as u64;
            progress(done);
            if (bytes.len() as u64) < part {
                break;
            }
        }
        let actual = Sha256Hex::from_hasher(s256);
        if &actual != expected {
            return Err(StoreError::SourceMismatch {
                path: source.to_path_buf(),
                expected: *expected,
                actual,
                expected_size: done,
                actual_size: done,
            });
        }
        Ok(hex::encode(s1.finalize()))
    }

    async fn complete_upload(
        &self,
        session: &crate::secret::Secret,
        sha1: &str,
    ) -> Result<(), StoreError> {
        let complete = format!("{}/api/v1/uploads/complete?sha1={sha1}", self.base);
        self.session_post(&complete, session).await?;
        let status_url = format!("{}/api/v1/uploads/status", self.base);
        let mut wait = std::time::Duration::from_millis(100);
        // Assembly of a multi-GiB file takes a while on the server; wait up to an hour.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        loop {
            let resp = self.session_post(&status_url, session).await?;
            let status: UploadStatus = self.decode(&status_url, resp).await?;
            match status.status.as_str() {
                "FINISHED" => return Ok(()),
                "NON_RETRYABLE_ERROR" | "ABORTED" => {
                    return Err(StoreError::BadAnswer {
                        store: self.location(),
                        url: status_url,
                        message: format!(
                            "multipart upload {}: {}",
                            status.status,
                            status.error.unwrap_or_default()
                        ),
                    });
                }
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(StoreError::BadAnswer {
                        store: self.location(),
                        url: status_url,
                        message: "multipart assembly did not finish within an hour".into(),
                    });
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    /// Streams a file in one PUT, hashing it in the same pass; a dropped connection, 429 or 5xx
    /// starts the upload again (Artifactory keeps nothing of a broken upload).
    async fn upload(
        &self,
        path: &str,
        source: &Path,
        expected: &Sha256Hex,
        props: &Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        super::retry_upload(self.retry, || {
            self.upload_once(path, source, expected, props, progress)
        })
        .await
    }

    async fn upload_once(
        &self,
        path: &str,
        source: &Path,
        expected: &Sha256Hex,
        props: &Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        let url = format!("{}/{}/{path}{}", self.base, self.repo, matrix(props));
        let io = |e: std::io::Error| StoreError::Io {
            store: self.location(),
            path: source.to_path_buf(),
            source: e,
        };
        let size = tokio::fs::metadata(source).await.map_err(io)?.len();
        let file = tokio::fs::File::open(source).await.map_err(io)?;
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = crate::hash::hashing_body(file, hasher.clone(), sent.clone());
        let request = self
            .auth
            .apply(self.client.client().put(&url))
            .header("X-Checksum-Sha256", expected.to_string())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body)
            .send();
        let resp = crate::hash::with_progress(request, &sent, progress)
            .await
            .map_err(|e| StoreError::Transport {
                store: self.location(),
                url: url.clone(),
                message: format!("upload failed: {}", crate::http::explain(&url, &e)),
            })?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail("PUT", &url, resp).await);
        }
        let sha256 = Sha256Hex::from_hasher(std::mem::take(
            &mut *hasher.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        if &sha256 != expected {
            return Err(StoreError::SourceMismatch {
                path: source.to_path_buf(),
                expected: *expected,
                actual: sha256,
                expected_size: size,
                actual_size: sent.load(std::sync::atomic::Ordering::Relaxed),
            });
        }
        // The reply's checksums are the server's own reading of what arrived. (A sha1 cannot
        // be sent up front without reading the file twice; the server checks our sha256.)
        let reply: FileInfo = self.decode(&url, resp).await?;
        if reply.checksums.sha256.as_deref() != Some(sha256.to_string().as_str()) {
            return Err(StoreError::BadAnswer {
                store: self.location(),
                url,
                message: "the server's checksums of the upload differ from the bytes sent".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for ArtifactoryStore {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("artifactory+{}/{}", self.base, self.repo)
        } else {
            format!("artifactory+{}/{}/{}", self.base, self.repo, self.prefix)
        }
    }

    async fn list_versions(&self, image: &ImageName) -> Result<Vec<Version>, StoreError> {
        let url = format!("{}/api/search/aql", self.base);
        let dir = self.path(image, "", "");
        let query = format!(
            r#"items.find({{"repo":{},"path":{{"$match":{}}},"name":{}}}).include("path")"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(format!("{dir}/*")),
            serde_json::Value::from(record::FILE_NAME)
        );
        let resp = self
            .send(|c| {
                c.post(&url)
                    .header(CONTENT_TYPE, "text/plain")
                    .body(query.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail("POST", &url, resp).await);
        }
        let answer: AqlAnswer = self.decode(&url, resp).await?;
        Ok(answer
            .results
            .iter()
            .filter_map(|r| {
                r.path
                    .strip_prefix(&format!("{dir}/"))
                    .and_then(|v| Version::parse(v).ok())
            })
            .collect())
    }

    async fn fetch_record(&self, image: &ImageRef) -> Result<LoadedRecord, StoreError> {
        let url = self.record_location(image);
        let resp = self.send(|c| c.get(&url)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(StoreError::VersionNotFound {
                image: image.clone(),
                store: self.location(),
            });
        }
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| StoreError::BadAnswer {
            store: self.location(),
            url: url.clone(),
            message: e.to_string(),
        })?;
        super::stored_record(self.location(), image, &bytes, &url)
    }

    fn artifact_location(&self, image: &ImageRef, artifact: &FileArtifact) -> String {
        let name = artifact.file_name();
        format!(
            "{}/{}/{}",
            self.base,
            self.repo,
            self.path(&image.name, &image.version.to_string(), name)
        )
    }

    fn record_location(&self, image: &ImageRef) -> String {
        format!(
            "{}/{}/{}",
            self.base,
            self.repo,
            self.path(&image.name, &image.version.to_string(), record::FILE_NAME)
        )
    }

    async fn put_artifact(
        &self,
        image: &ImageRef,
        source: &Path,
        expected_file: &FileArtifact,
        props: &Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PutOutcome, StoreError> {
        let expected = &expected_file.sha256;
        let name = stored_file_name(&self.location(), source)?;
        let path = self.path(&image.name, &image.version.to_string(), &name);
        match self.file_sha256(&path).await? {
            Some(existing) if &existing == expected => return Ok(PutOutcome::AlreadyPresent),
            Some(existing) => {
                return Err(StoreError::Conflict {
                    store: self.location(),
                    path: path.into(),
                    existing,
                    new: *expected,
                });
            }
            None => {}
        }
        // Bytes the server holds anywhere need not travel again.
        let url = format!("{}/{}/{path}{}", self.base, self.repo, matrix(props));
        let resp = self
            .send(|c| {
                c.put(&url)
                    .header("X-Checksum-Deploy", "true")
                    .header("X-Checksum-Sha256", expected.to_string())
            })
            .await?;
        let outcome = match resp.status() {
            StatusCode::CREATED | StatusCode::OK => PutOutcome::ByChecksum,
            StatusCode::NOT_FOUND => {
                let size = tokio::fs::metadata(source)
                    .await
                    .map_err(|e| StoreError::Io {
                        store: self.location(),
                        path: source.to_path_buf(),
                        source: e,
                    })?
                    .len();
                if size >= 10 * part_size() && self.multipart_supported().await {
                    self.upload_multipart(&path, source, expected, props, progress)
                        .await?;
                } else {
                    self.upload(&path, source, expected, props, progress)
                        .await?;
                }
                PutOutcome::Stored
            }
            _ => return Err(self.fail("PUT", &url, resp).await),
        };
        match self.file_sha256(&path).await? {
            Some(sha) if &sha == expected => Ok(outcome),
            found => Err(StoreError::BadAnswer {
                store: self.location(),
                url: path,
                message: format!(
                    "File Info after the deploy says sha256 {found:?}, expected {expected}"
                ),
            }),
        }
    }

    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        props: &Properties,
    ) -> Result<(), StoreError> {
        let url = format!("{}{}", self.record_location(image), matrix(props));
        let sha = Sha256Hex::digest(bytes);
        let resp = self
            .send(|c| {
                c.put(&url)
                    .header("X-Checksum-Sha256", sha.to_string())
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.to_vec())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    /// Build-info: <https://jfrog.com/help/r/jfrog-rest-apis/build-upload>. The files' sha1 and
    /// md5 come from File Info, so the server's own reading is what the build lists.
    async fn trigger_replication(&self, image: &ImageRef) -> Result<(), StoreError> {
        // <https://jfrog.com/help/r/jfrog-rest-apis/pull/push-replication-deprecated>: runs the
        // repository's configured replication for one path now.
        let path = self.path(&image.name, &image.version.to_string(), "");
        let url = format!(
            "{}/api/replication/execute/{}/{}",
            self.base,
            self.repo,
            encode(&path)
        );
        let resp = self.send(|c| c.post(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("POST", &url, resp).await);
        }
        Ok(())
    }

    async fn replication_status(&self) -> Result<Vec<super::ReplicationTarget>, StoreError> {
        // <https://jfrog.com/help/r/jfrog-rest-apis/scheduled-replication-status>
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            targets: Vec<super::ReplicationTarget>,
        }
        let url = format!("{}/api/replication/{}", self.base, self.repo);
        let resp = self.send(|c| c.get(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("GET", &url, resp).await);
        }
        Ok(self.decode::<Status>(&url, resp).await?.targets)
    }

    async fn publish_build_info(
        &self,
        image: &ImageRef,
        record: &Record,
        build: (&str, &str),
    ) -> Result<(), StoreError> {
        let mut artifacts = Vec::new();
        for f in record.artifacts.iter().filter_map(|a| a.file()) {
            let name = f.file_name();
            let path = self.path(&image.name, &image.version.to_string(), name);
            let info = self
                .file_info(&path)
                .await?
                .ok_or_else(|| StoreError::MissingArtifact {
                    store: self.location(),
                    location: path.clone(),
                })?;
            artifacts.push(serde_json::json!({
                "type": f.format.to_string(),
                "name": name,
                "sha256": f.sha256,
                "sha1": info.checksums.sha1,
                "md5": info.checksums.md5,
            }));
        }
        let body = serde_json::json!({
            "version": "1.0.1",
            "name": build.0,
            "number": build.1,
            "started": record.build.started_at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
            "agent": { "name": "imagepipe", "version": env!("CARGO_PKG_VERSION") },
            "modules": [{ "id": image.to_string(), "artifacts": artifacts }],
            "vcs": record.source.commit.iter().map(|c| serde_json::json!({ "revision": c })).collect::<Vec<_>>(),
        });
        let url = format!("{}/api/build", self.base);
        let resp = self.send(|c| c.put(&url).json(&body)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    async fn open_artifact(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Box<dyn super::ArtifactReader>, StoreError> {
        Ok(Box::new(super::HttpReader::new(
            self.client.clone(),
            self.auth.clone(),
            self.artifact_location(image, artifact),
            artifact.size,
        )))
    }

    async fn artifact_digest(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Option<super::StoredFile>, StoreError> {
        let path = self.path(
            &image.name,
            &image.version.to_string(),
            artifact.file_name(),
        );
        self.stored_file(&path).await
    }
}
