//! JFrog Artifactory generic repositories, over REST, as JFrog documents them and, where the
//! documentation is silent, as JFrog's own client (jfrog-client-go, which `jf rt u` runs) does:
//!
//! - Deploy (`PUT /<repo>/<path>;k=v`, `X-Checksum-Sha256`), deploy by checksum
//!   (`X-Checksum-Deploy: true`, no body): <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact>,
//!   <https://jfrog.com/help/r/jfrog-rest-apis/deploy-artifact-by-checksum>
//! - Multipart upload (Artifactory 7.82.2+ on cloud storage), finished by a checksum deploy
//!   with the `checksumToken` of the assembled file, as jfrog-client-go's `doUpload` does:
//!   <https://jfrog.com/help/r/jfrog-rest-apis/multipart-upload>
//! - File Info (`GET /api/storage/<repo>/<path>`): <https://jfrog.com/help/r/jfrog-rest-apis/file-info>
//! - Update Item Properties (`PATCH /api/metadata/…`, JSON, so values need no escaping):
//!   <https://jfrog.com/help/r/jfrog-rest-apis/update-item-properties>
//! - AQL (`POST /api/search/aql`), with the `repo`, `path` and `name` fields a non-admin token
//!   must include: <https://jfrog.com/help/r/jfrog-rest-apis/artifactory-query-language>
//! - Errors are `{"errors":[{"status":…,"message":…}]}`, or plain text from some resources; the
//!   message is shown as is.
//!
//! A version is `<prefix>/<image>/<version>/` with the record written last. Before any deploy the
//! path is looked up with File Info, so a deploy never replaces other bytes; and a deploy is
//! checked after, by this step's own digest whatever the repository's checksum policy: bytes that
//! are not the record's are deleted again, never left at the path.

use std::collections::BTreeMap;
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
    /// Whether the server offers multipart upload, asked once.
    multipart: Arc<tokio::sync::OnceCell<bool>>,
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
    /// The token of the finished, assembled file, for the checksum deploy that saves it.
    #[serde(default, rename = "checksumToken")]
    checksum_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SystemVersion {
    version: String,
}

#[derive(Debug, Deserialize)]
struct AqlAnswer {
    results: Vec<AqlItem>,
    #[serde(default)]
    range: AqlRange,
}

#[derive(Debug, Default, Deserialize)]
struct AqlRange {
    /// "AQL query reached the search hard limit, results are trimmed."
    #[serde(default)]
    notification: Option<String>,
}

/// The lifecycle document key a file `<key>.json` of a `_lifecycle` folder holds.
fn lifecycle_key(file: &str) -> Option<&str> {
    file.strip_suffix(".json")
        .filter(|k| super::check_lifecycle_key("", k).is_ok())
}

/// Records asked for per AQL page of the whole-repository listing. Far below the SaaS hard
/// limit (500,000), and a self-managed server's own lower one is noticed by its notification.
const AQL_PAGE: usize = 10_000;

#[derive(Debug, Deserialize)]
struct AqlItem {
    path: String,
    #[serde(default)]
    name: Option<String>,
    /// With `.include("property.*")`: one key/value pair per value.
    #[serde(default)]
    properties: Vec<AqlProperty>,
}

#[derive(Debug, Deserialize)]
struct AqlProperty {
    key: String,
    #[serde(default)]
    value: String,
}

/// `;k=v` matrix parameters for a deploy. Artifactory 6.x splits the raw parameters at `;`
/// and decodes only the values (`ArtifactoryRequestBase.processMatrixParams`); 7.x decodes
/// first and splits after, so no encoding carries a `;` through both, and `+` turns into a
/// space. So only values made of characters every version reads the same way
/// (`A-Za-z0-9-._~/@:`) go as matrix parameters; the others are set right after the deploy
/// with Update Item Properties, whose JSON body needs no escaping ([`ArtifactoryStore::
/// ensure_properties`]). Keys are imagepipe's own plain ASCII names.
fn matrix(props: &Properties) -> String {
    props
        .iter()
        .filter(|(_, v)| matrix_safe(v))
        .map(|(k, v)| format!(";{k}={v}"))
        .collect()
}

fn matrix_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/@:".contains(&b))
}

/// Percent-encodes every byte outside the unreserved set (query parameters, path segments).
fn encode_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The multipart part size.
fn part_size() -> u64 {
    crate::env::var(crate::env::MULTIPART_PART_MIB)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(20)
        << 20
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
            multipart: Arc::default(),
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

    /// `<prefix>/`, or nothing without a prefix.
    fn root(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// Every item (folder path and name) an AQL `items.find(criteria)` finds, paged with `sort`,
    /// `offset` and `limit` (which JFrog documents for includes of item fields only, as here:
    /// <https://jfrog.com/help/r/jfrog-artifactory-documentation/display-limits-and-pagination>).
    /// A page trimmed by the server's search hard limit says so in `range.notification`
    /// (<https://docs.jfrog.com/artifactory/docs/aql-performance>); the next page goes on from
    /// what arrived.
    async fn aql_items(&self, criteria: &str) -> Result<Vec<AqlItem>, StoreError> {
        let mut items = Vec::new();
        // A server that never stops answering full pages is not believed past ten million
        // items: the listing ends in an error instead of growing without bound.
        for _ in 0..1000 {
            let query = format!(
                r#"items.find({criteria}).include("repo","path","name").sort({{"$asc":["path","name"]}}).offset({}).limit({AQL_PAGE})"#,
                items.len()
            );
            let answer = self.aql(query).await?;
            let n = answer.results.len();
            items.extend(answer.results);
            if n == 0 || (n < AQL_PAGE && answer.range.notification.is_none()) {
                return Ok(items);
            }
        }
        Err(StoreError::BadAnswer {
            store: self.location(),
            url: format!("{}/api/search/aql", self.base),
            message: format!(
                "the AQL listing went on past {} items; check the repository",
                items.len()
            ),
        })
    }

    /// One AQL query (`POST /api/search/aql`, the query as plain text) and its answer.
    async fn aql(&self, query: String) -> Result<AqlAnswer, StoreError> {
        let url = format!("{}/api/search/aql", self.base);
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
        Ok(answer)
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

    /// A POST of a multipart session, authorised by the session token, answered with exactly
    /// `want` (jfrog-client-go checks each call's status exactly); the response is returned for
    /// any status when `want` is `None`.
    async fn session_post(
        &self,
        url: &str,
        session: &crate::secret::Secret,
        want: Option<StatusCode>,
    ) -> Result<Response, StoreError> {
        let resp = self
            .client
            .send(|c| c.post(url).bearer_auth(session.expose()))
            .await
            .map_err(|source| StoreError::Http {
                store: self.location(),
                source,
            })?;
        match want {
            Some(w) if resp.status() != w => Err(self.fail("POST", url, resp).await),
            _ => Ok(resp),
        }
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

    /// Whether the server offers multipart upload, as jfrog-client-go's `IsSupported` decides
    /// it: Artifactory 7.82.2 or later (`GET /api/system/version`), and `supported` in
    /// `GET /api/v1/uploads/config`. Asked once per store; a server that cannot say gets the
    /// single PUT every server takes.
    async fn multipart_supported(&self) -> bool {
        *self
            .multipart
            .get_or_init(|| async {
                let version = format!("{}/api/system/version", self.base);
                let new_enough = match self.send(|c| c.get(&version)).await {
                    Ok(r) if r.status() == StatusCode::OK => r
                        .json::<SystemVersion>()
                        .await
                        .ok()
                        .and_then(|v| {
                            let numbers: Vec<u64> = v
                                .version
                                .split(['.', '-'])
                                .take(3)
                                .map_while(|n| n.parse().ok())
                                .collect();
                            (numbers.len() == 3).then_some(numbers)
                        })
                        .is_some_and(|n| n.as_slice() >= [7, 82, 2].as_slice()),
                    _ => false,
                };
                if !new_enough {
                    return false;
                }
                let config = format!("{}/api/v1/uploads/config", self.base);
                match self.send(|c| c.get(&config)).await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.json::<UploadsConfig>().await.is_ok_and(|c| c.supported)
                    }
                    _ => false,
                }
            })
            .await
    }

    /// Sends a file in parts, has the server assemble them, and saves the assembled file at
    /// `path` with the checksum deploy jfrog-client-go finishes with ("Once the file is uploaded
    /// to the storage, we finalize the multipart upload by performing a checksum deployment to
    /// save the file in Artifactory"); until then, nothing is at the path. Each part is read
    /// once, hashed (sha256, and the sha1 `complete` asks for) and sent; only one part is in
    /// memory. Any failure after `create` aborts the upload.
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
            encode_value(&self.repo),
            encode_value(path),
            part >> 20
        );
        let resp = self.send(|c| c.post(&create)).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.fail("POST", &create, resp).await);
        }
        let token: UploadToken = self.decode(&create, resp).await?;
        let session = crate::secret::Secret::new(token.token);
        let result = async {
            let sha1 = self
                .send_parts(source, expected, part, &session, progress)
                .await?;
            let checksum_token = self.complete_upload(&session, &sha1).await?;
            self.deploy_assembled(path, props, &sha1, expected, &checksum_token)
                .await
        }
        .await;
        if let Err(e) = result {
            let abort = format!("{}/api/v1/uploads/abort", self.base);
            let _ = self.session_post(&abort, &session, None).await;
            return Err(e);
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
            // A fresh part URL for each attempt, as jfrog-client-go takes one.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let url_part = format!("{}/api/v1/uploads/urlPart?partNumber={number}", self.base);
                let resp = self
                    .session_post(&url_part, session, Some(StatusCode::OK))
                    .await?;
                let target: PartUrl = self.decode(&url_part, resp).await?;
                // A pre-signed URL's query is a credential for as long as it lives.
                if let Some((_, query)) = target.url.split_once('?') {
                    crate::secret::register(query);
                }
                // The part goes to the object store's pre-signed URL, with no credentials; a
                // failed attempt is retried here, with a fresh URL, not by the HTTP client.
                let sent = self
                    .client
                    .client()
                    .put(&target.url)
                    .body(bytes.clone())
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == StatusCode::OK => break,
                    Ok(resp) if attempt > self.retry.retries => {
                        return Err(self.fail("PUT", &target.url, resp).await);
                    }
                    Err(e) if attempt > self.retry.retries => {
                        return Err(StoreError::Transport {
                            store: self.location(),
                            url: format!("part {number}"),
                            message: crate::http::explain(&target.url, &e),
                        });
                    }
                    _ => {}
                }
                tokio::time::sleep(self.retry.delay(attempt, None)).await;
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

    /// `complete`, then `status` until the assembly is done, as jfrog-client-go's
    /// `completeAndPollForStatus` does: `RETRYABLE_ERROR` (or a 503 on `status`, which it
    /// reads the same way) calls `complete` again, up to the retries; `NON_RETRYABLE_ERROR`,
    /// `ABORTED` and anything unknown fail. Returns the assembled file's checksum token.
    async fn complete_upload(
        &self,
        session: &crate::secret::Secret,
        sha1: &str,
    ) -> Result<String, StoreError> {
        let complete = format!("{}/api/v1/uploads/complete?sha1={sha1}", self.base);
        let status_url = format!("{}/api/v1/uploads/status", self.base);
        let failed = |message: String| StoreError::BadAnswer {
            store: self.location(),
            url: status_url.clone(),
            message,
        };
        // Assembling a multi-GiB file in cloud storage takes a while (jfrog-client-go waits up
        // to a week); a day is well beyond any real assembly.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(24 * 3600);
        let mut completes = 0;
        'complete: loop {
            completes += 1;
            if completes > self.retry.retries + 1 {
                return Err(failed(format!(
                    "multipart upload failed after {} attempts to complete it",
                    completes - 1
                )));
            }
            self.session_post(&complete, session, Some(StatusCode::ACCEPTED))
                .await?;
            let mut wait = std::time::Duration::from_millis(100);
            loop {
                // Not through the retrying client: a 503 here means "complete again".
                let resp = self
                    .client
                    .client()
                    .post(&status_url)
                    .bearer_auth(session.expose())
                    .send()
                    .await
                    .map_err(|e| StoreError::Transport {
                        store: self.location(),
                        url: status_url.clone(),
                        message: crate::http::explain(&status_url, &e),
                    })?;
                if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
                    continue 'complete;
                }
                if resp.status() != StatusCode::OK {
                    return Err(self.fail("POST", &status_url, resp).await);
                }
                let status: UploadStatus = self.decode(&status_url, resp).await?;
                match status.status.as_str() {
                    "FINISHED" => {
                        return status.checksum_token.ok_or_else(|| {
                            failed("the finished upload has no checksumToken".into())
                        });
                    }
                    "RETRYABLE_ERROR" => continue 'complete,
                    "QUEUED" | "PROCESSING" if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                    "QUEUED" | "PROCESSING" => {
                        return Err(failed(
                            "the multipart assembly did not finish within a day".into(),
                        ));
                    }
                    other => {
                        return Err(failed(format!(
                            "multipart upload {other}: {}",
                            status.error.unwrap_or_default()
                        )));
                    }
                }
            }
        }
    }

    /// The checksum deploy that saves an assembled multipart upload at its path, with its
    /// properties (jfrog-client-go `doChecksumDeploy` with `X-Checksum-Deploy-Token`).
    async fn deploy_assembled(
        &self,
        path: &str,
        props: &Properties,
        sha1: &str,
        sha256: &Sha256Hex,
        token: &str,
    ) -> Result<(), StoreError> {
        let url = format!("{}/{}/{path}{}", self.base, self.repo, matrix(props));
        let resp = self
            .send(|c| {
                c.put(&url)
                    .header("X-Checksum-Deploy", "true")
                    .header("X-Checksum-Sha1", sha1)
                    .header("X-Checksum-Sha256", sha256.to_string())
                    .header("X-Checksum-Deploy-Token", token)
            })
            .await?;
        match resp.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED => Ok(()),
            _ => Err(self.fail("PUT", &url, resp).await),
        }
    }

    /// Makes the file's properties what they should be. Values with characters matrix
    /// parameters cannot carry were left out of the deploy, and properties sent as matrix
    /// parameters are dropped without a word when the token lacks Annotate permission; so they
    /// are read back, and put right with Update Item Properties (a JSON body: no value needs
    /// escaping) when they differ.
    async fn ensure_properties(&self, path: &str, props: &Properties) -> Result<(), StoreError> {
        if props.is_empty() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct ItemProperties {
            #[serde(default)]
            properties: std::collections::BTreeMap<String, Vec<String>>,
        }
        let url = format!("{}/api/storage/{}/{path}?properties", self.base, self.repo);
        let resp = self.send(|c| c.get(&url)).await?;
        // An item with no properties at all is a 404 "No properties could be found".
        let stored = match resp.status() {
            StatusCode::OK => self.decode::<ItemProperties>(&url, resp).await?.properties,
            StatusCode::NOT_FOUND => Default::default(),
            _ => return Err(self.fail("GET", &url, resp).await),
        };
        if props
            .iter()
            .all(|(k, v)| stored.get(k).is_some_and(|s| s.len() == 1 && &s[0] == v))
        {
            return Ok(());
        }
        let url = format!(
            "{}/api/metadata/{}/{path}?recursiveProperties=0",
            self.base, self.repo
        );
        let body: serde_json::Map<String, serde_json::Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect();
        let body = serde_json::json!({ "props": body });
        let resp = self.send(|c| c.patch(&url).json(&body)).await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            StatusCode::FORBIDDEN => Err(StoreError::BadAnswer {
                store: self.location(),
                url,
                message: "the token may deploy but not annotate: give it Annotate permission on \
                          the repository, which the image properties (image.name, …) need"
                    .into(),
            }),
            _ => Err(self.fail("PATCH", &url, resp).await),
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
        let sha256 = Sha256Hex::from_hasher(std::mem::take(
            &mut *hasher.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        let source_changed = StoreError::SourceMismatch {
            path: source.to_path_buf(),
            expected: *expected,
            actual: sha256,
            expected_size: size,
            actual_size: sent.load(std::sync::atomic::Ordering::Relaxed),
        };
        if resp.status() != StatusCode::CREATED {
            // Under "verify against client checksums" a wrong file is refused with 409; what
            // was wrong is known here: the file changed, or bytes were damaged on the way.
            return Err(match resp.status() {
                StatusCode::CONFLICT if &sha256 != expected => source_changed,
                StatusCode::CONFLICT => StoreError::Transport {
                    store: self.location(),
                    url,
                    message: "the server received other bytes than were sent, and refused them"
                        .into(),
                },
                _ => self.fail("PUT", &url, resp).await,
            });
        }
        // A repository that trusts server checksums stores whatever arrived, with 201. So this
        // step's own hash decides: bytes that are not the record's are deleted again at once.
        let reply: FileInfo = self.decode(&url, resp).await?;
        let stored = reply.checksums.sha256.unwrap_or_default();
        if &sha256 != expected || stored != expected.to_string() {
            self.remove_wrong(path).await?;
            if &sha256 != expected {
                return Err(source_changed);
            }
            return Err(StoreError::Transport {
                store: self.location(),
                url,
                message: format!(
                    "the server stored other bytes than were sent (sha256 {stored}); they were \
                     deleted"
                ),
            });
        }
        Ok(())
    }

    /// What a deploy does when the path already holds a file: the same file is already
    /// published (its properties made right, in case a killed run left them out); other bytes
    /// are a conflict, never overwritten.
    async fn existing(
        &self,
        path: &str,
        existing: super::StoredFile,
        expected: &FileArtifact,
        props: &Properties,
    ) -> Result<PutOutcome, StoreError> {
        if !existing.is(expected) {
            return Err(StoreError::Conflict {
                store: self.location(),
                path: path.into(),
                existing: existing.sha256,
                new: expected.sha256,
            });
        }
        self.ensure_properties(path, props).await?;
        Ok(PutOutcome::AlreadyPresent)
    }

    /// Deletes bytes this step deployed that are not the record's. When the token may not
    /// delete, the error names the path so that someone who may can.
    async fn remove_wrong(&self, path: &str) -> Result<(), StoreError> {
        let url = format!("{}/{}/{path}", self.base, self.repo);
        let resp = self.send(|c| c.delete(&url)).await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(StoreError::BadAnswer {
                store: self.location(),
                url,
                message: format!(
                    "wrong bytes were stored there and could not be deleted ({}): delete the \
                     file, or give the token Delete permission; the repository trusts server \
                     checksums, so it does not refuse them itself",
                    resp.status()
                ),
            }),
        }
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
        let dir = self.path(image, "", "");
        let query = format!(
            r#"items.find({{"repo":{},"path":{{"$match":{}}},"name":{}}}).include("repo","path","name")"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(format!("{dir}/*")),
            serde_json::Value::from(record::FILE_NAME)
        );
        let answer = self.aql(query).await?;

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

    /// One AQL query for every record under the store's prefix, paged (`aql_items`).
    async fn list_held(&self, images: &[ImageName]) -> Result<super::Held, StoreError> {
        let mut held: BTreeMap<ImageName, Vec<Version>> =
            images.iter().map(|i| (i.clone(), Vec::new())).collect();
        let root = self.root();
        let criteria = format!(
            r#"{{"repo":{},"path":{{"$match":{}}},"name":{}}}"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(format!("{root}*")),
            serde_json::Value::from(record::FILE_NAME)
        );
        for AqlItem { path, .. } in self.aql_items(&criteria).await? {
            // `<prefix>/<image>/<version>`; an image name has slashes of its own.
            let Some((image, version)) = path.strip_prefix(&root).and_then(|p| p.rsplit_once('/'))
            else {
                continue;
            };
            let (Ok(image), Ok(version)) = (image.parse::<ImageName>(), Version::parse(version))
            else {
                continue;
            };
            if let Some(list) = held.get_mut(&image) {
                list.push(version);
            }
        }
        Ok(held.into_iter().map(|(i, v)| (i, Ok(v))).collect())
    }

    /// One AQL query (paged) for every `_lifecycle` folder's documents under the prefix.
    async fn lifecycle_held(
        &self,
        images: &[ImageName],
    ) -> Result<Option<BTreeMap<ImageName, Vec<String>>>, StoreError> {
        let root = self.root();
        let criteria = format!(
            r#"{{"repo":{},"path":{{"$match":{}}}}}"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(format!("{root}*/{}", super::LIFECYCLE_DIR)),
        );
        let wanted: std::collections::BTreeSet<&ImageName> = images.iter().collect();
        let mut held: BTreeMap<ImageName, Vec<String>> = BTreeMap::new();
        for item in self.aql_items(&criteria).await? {
            let image = item
                .path
                .strip_prefix(&root)
                .and_then(|p| p.strip_suffix(&format!("/{}", super::LIFECYCLE_DIR)))
                .and_then(|p| p.parse::<ImageName>().ok());
            if let (Some(image), Some(key)) = (image, item.name.as_deref().and_then(lifecycle_key))
                && wanted.contains(&image)
            {
                held.entry(image).or_default().push(key.to_string());
            }
        }
        Ok(Some(held))
    }

    /// One AQL query for every record under the prefix with its properties. JFrog's sort,
    /// offset and limit do not work with an include of another domain's fields, so this one
    /// is not paged: an answer trimmed by the search hard limit gives what it has, and the
    /// versions it lacks are read from their records.
    async fn record_properties(
        &self,
        images: &[ImageName],
    ) -> Result<Option<BTreeMap<(ImageName, Version), BTreeMap<String, String>>>, StoreError> {
        let root = self.root();
        let query = format!(
            r#"items.find({{"repo":{},"path":{{"$match":{}}},"name":{}}}).include("repo","path","name","property.*")"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(format!("{root}*")),
            serde_json::Value::from(record::FILE_NAME)
        );
        let answer = self.aql(query).await?;

        let mut out = BTreeMap::new();
        for item in answer.results {
            let Some((image, version)) = item
                .path
                .strip_prefix(&root)
                .and_then(|p| p.rsplit_once('/'))
            else {
                continue;
            };
            let (Ok(image), Ok(version)) = (image.parse::<ImageName>(), Version::parse(version))
            else {
                continue;
            };
            if images.contains(&image) {
                out.insert(
                    (image, version),
                    item.properties
                        .into_iter()
                        .map(|p| (p.key, p.value))
                        .collect(),
                );
            }
        }
        Ok(Some(out))
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
        if let Some(existing) = self.stored_file(&path).await? {
            return self.existing(&path, existing, expected_file, props).await;
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
        let deployed = match resp.status() {
            StatusCode::CREATED | StatusCode::OK => Ok(PutOutcome::ByChecksum),
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
                        .await
                } else {
                    self.upload(&path, source, expected, props, progress).await
                }
                .map(|()| PutOutcome::Stored)
            }
            _ => Err(self.fail("PUT", &url, resp).await),
        };
        match deployed {
            Ok(outcome) => {
                // The server's own word on what the path now holds: another publisher may
                // have deployed over it in the meantime (a token with Delete may overwrite).
                match self.stored_file(&path).await? {
                    Some(f) if f.is(expected_file) => {}
                    Some(f) => {
                        return Err(StoreError::Conflict {
                            store: self.location(),
                            path: path.into(),
                            existing: f.sha256,
                            new: *expected,
                        });
                    }
                    None => {
                        return Err(StoreError::BadAnswer {
                            store: self.location(),
                            url: path,
                            message: "the deploy succeeded, yet File Info finds nothing there"
                                .into(),
                        });
                    }
                }
                self.ensure_properties(&path, props).await?;
                Ok(outcome)
            }
            // A token without Delete may not deploy onto an existing path (403 "Not enough
            // permissions to delete/overwrite artifact"): another publisher got there first.
            Err(e @ StoreError::Unauthorized { status: 403, .. }) => {
                match self.stored_file(&path).await? {
                    Some(existing) => self.existing(&path, existing, expected_file, props).await,
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Folder Info of the repository's root, which any reader may see. With "Hide Existence of
    /// Unauthorized Resources" on, a token that may not read gets 404 for everything instead of
    /// 403 (JFrog doc of that title), so a 404 here is a permission (or a repository name)
    /// problem, not a version that has not arrived.
    async fn check_access(&self) -> Result<(), StoreError> {
        let url = format!("{}/api/storage/{}", self.base, self.repo);
        let resp = self.send(|c| c.get(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(StoreError::Unauthorized {
                store: self.location(),
                method: "GET".into(),
                url,
                status: 404,
                message: format!(
                    ": repository {} is not there for this token: it does not exist, or the \
                     token may not read it and Artifactory hides it (\"Hide Existence of \
                     Unauthorized Resources\")",
                    self.repo
                ),
            }),
            _ => Err(self.fail("GET", &url, resp).await),
        }
    }

    async fn remove_artifact(&self, image: &ImageRef, name: &str) -> Result<bool, StoreError> {
        let url = format!(
            "{}/{}/{}",
            self.base,
            self.repo,
            self.path(&image.name, &image.version.to_string(), name)
        );
        let resp = self.send(|c| c.delete(&url)).await?;
        Ok(matches!(
            resp.status(),
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND
        ))
    }

    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        props: &Properties,
    ) -> Result<(), StoreError> {
        let path = self.path(&image.name, &image.version.to_string(), record::FILE_NAME);
        let sha = Sha256Hex::digest(bytes);
        // A record is never replaced, even by a token that could: the caller compares what is
        // there with what it publishes.
        if let Some(existing) = self.file_sha256(&path).await? {
            return Err(StoreError::Conflict {
                store: self.location(),
                path: path.into(),
                existing,
                new: sha,
            });
        }
        let url = format!("{}{}", self.record_location(image), matrix(props));
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
        // Trusting server checksums, the repository keeps damaged bytes with 201: its reply
        // says what it stored, and a wrong record is never left where consumers read it.
        let reply: FileInfo = self.decode(&url, resp).await?;
        if reply.checksums.sha256.as_deref() != Some(sha.to_string().as_str()) {
            self.remove_wrong(&path).await?;
            return Err(StoreError::Transport {
                store: self.location(),
                url,
                message: "the record arrived damaged and was deleted again; publish again".into(),
            });
        }
        match self.file_sha256(&path).await? {
            Some(stored) if stored == sha => {}
            Some(stored) => {
                return Err(StoreError::Conflict {
                    store: self.location(),
                    path: path.into(),
                    existing: stored,
                    new: sha,
                });
            }
            None => {
                return Err(StoreError::BadAnswer {
                    store: self.location(),
                    url: path,
                    message: "the record was deployed, yet File Info finds nothing there".into(),
                });
            }
        }
        self.ensure_properties(&path, props).await
    }

    async fn trigger_replication(&self, image: &ImageRef) -> Result<(), StoreError> {
        // "Pull/Push Replication" (<https://jfrog.com/help/r/jfrog-rest-apis/pull/push-replication>):
        // `POST /api/replication/execute/{repoPath}` "schedules immediate content replication"
        // of the path by the repository's configured replications. It is asynchronous: the
        // status goes through `incomplete` until the copy is done. A non-admin user's run
        // copies at most `artifactory.search.userQueryLimit` files (1000 by default), far
        // more than a version holds.
        let path = self.path(&image.name, &image.version.to_string(), "");
        let url = format!(
            "{}/api/replication/execute/{}/{}",
            self.base,
            self.repo,
            path.split('/')
                .map(encode_value)
                .collect::<Vec<_>>()
                .join("/")
        );
        let resp = self.send(|c| c.post(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(StoreError::BadAnswer {
                store: self.location(),
                url,
                message: format!(
                    "no enabled replication is configured for repository {}: configure push \
                     replication to the sites, or leave out --trigger-replication",
                    self.repo
                ),
            }),
            _ => Err(self.fail("POST", &url, resp).await),
        }
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

    /// Build-info: <https://jfrog.com/help/r/jfrog-rest-apis/build-upload>. The files' sha1 and
    /// md5 come from File Info, so the server's own reading is what the build lists.
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

    /// `<prefix>/<image>/_lifecycle/<key>.json`, a plain file of the repository.
    async fn read_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        super::check_lifecycle_key(&self.location(), key)?;
        let path = self.path(image, super::LIFECYCLE_DIR, &format!("{key}.json"));
        let url = format!("{}/{}/{path}", self.base, self.repo);
        let resp = self.send(|c| c.get(&url)).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                resp.bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| StoreError::Transport {
                        store: self.location(),
                        url,
                        message: e.to_string(),
                    })
            }
            _ => Err(self.fail("GET", &url, resp).await),
        }
    }

    /// One AQL query for the files of `<prefix>/<image>/_lifecycle` (a `$match` without
    /// wildcards is the folder itself, not its subfolders).
    async fn list_lifecycle(&self, image: &ImageName) -> Result<Vec<String>, StoreError> {
        let dir = self.path(image, super::LIFECYCLE_DIR, "");
        let query = format!(
            r#"items.find({{"repo":{},"path":{{"$match":{}}}}}).include("repo","path","name")"#,
            serde_json::Value::from(self.repo.clone()),
            serde_json::Value::from(dir.clone()),
        );
        let answer = self.aql(query).await?;

        Ok(answer
            .results
            .into_iter()
            .filter(|r| r.path == dir)
            .filter_map(|r| {
                r.name
                    .as_deref()
                    .and_then(lifecycle_key)
                    .map(str::to_string)
            })
            .collect())
    }

    /// One deploy, which replaces the file whole (Deploy Artifact; overwriting takes the
    /// token's Delete/Overwrite permission), checked against the reply's sha256 like a record.
    async fn write_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        super::check_lifecycle_key(&self.location(), key)?;
        let path = self.path(image, super::LIFECYCLE_DIR, &format!("{key}.json"));
        let url = format!("{}/{}/{path}", self.base, self.repo);
        let sha = Sha256Hex::digest(bytes);
        let resp = self
            .send(|c| {
                c.put(&url)
                    .header("X-Checksum-Sha256", sha.to_string())
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.to_vec())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, resp).await);
        }
        let reply: FileInfo = self.decode(&url, resp).await?;
        if reply.checksums.sha256.as_deref() != Some(sha.to_string().as_str()) {
            return Err(StoreError::Transport {
                store: self.location(),
                url,
                message: "the lifecycle document arrived damaged; run the command again".into(),
            });
        }
        Ok(())
    }

    /// Set Item Properties on the version's folder (`imagepipe.channel.<name>`, not
    /// recursive), and Delete Item Properties on the previous version's:
    /// <https://jfrog.com/help/r/jfrog-rest-apis/set-item-properties>,
    /// <https://jfrog.com/help/r/jfrog-rest-apis/delete-item-properties>. Both need the
    /// token's Annotate permission.
    async fn mark_channel(
        &self,
        image: &ImageRef,
        channel: &str,
        previous: Option<&Version>,
    ) -> Result<(), StoreError> {
        let key = format!("imagepipe.channel.{channel}");
        if let Some(prev) = previous.filter(|p| **p != image.version) {
            let path = self.path(&image.name, &prev.to_string(), "");
            let url = format!(
                "{}/api/storage/{}/{path}?properties={}&recursive=0",
                self.base,
                self.repo,
                encode_value(&key)
            );
            let resp = self.send(|c| c.delete(&url)).await?;
            // The previous version may be gone already (pruned): nothing to unmark.
            if !resp.status().is_success() && resp.status() != StatusCode::NOT_FOUND {
                return Err(self.fail("DELETE", &url, resp).await);
            }
        }
        let path = self.path(&image.name, &image.version.to_string(), "");
        let url = format!(
            "{}/api/storage/{}/{path}?properties={}&recursive=0",
            self.base,
            self.repo,
            encode_value(&format!("{key}={}", image.version))
        );
        let resp = self.send(|c| c.put(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    /// Delete Item of the record, then of the version's folder (which takes everything in it):
    /// <https://jfrog.com/help/r/jfrog-rest-apis/delete-item>. 404 counts as done.
    async fn delete_version(&self, image: &ImageRef) -> Result<(), StoreError> {
        let version = image.version.to_string();
        for path in [
            self.path(&image.name, &version, record::FILE_NAME),
            self.path(&image.name, &version, ""),
        ] {
            let url = format!("{}/{}/{path}", self.base, self.repo);
            let resp = self.send(|c| c.delete(&url)).await?;
            if !resp.status().is_success() && resp.status() != StatusCode::NOT_FOUND {
                return Err(self.fail("DELETE", &url, resp).await);
            }
        }
        Ok(())
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
