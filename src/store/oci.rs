//! OCI registries (the distribution spec): Artifactory, Harbor, GHCR, `docker-registry`.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>
//!
//! An image version is an OCI image manifest tagged with the version, in the repository
//! `<namespace>/<image>`. Its config has imagepipe's own media type; every artifact is a layer
//! with a media type naming its format and its file name as `org.opencontainers.image.title`;
//! the record is a layer too. The manifest is pushed last, so the tag appears only when every
//! blob is there. Semver build metadata (`+…`) is written `_` in tags, which cannot hold `+`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use semver::Version;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{PutOutcome, Store, StoreError, stored_file_name};
use crate::hash::Sha256Hex;
use crate::http::HttpClient;
use crate::image::{ImageName, ImageRef};
use crate::record::{self, FileArtifact, LoadedRecord, Record};
use crate::secret::Auth;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const ARTIFACT_TYPE: &str = "application/vnd.imagepipe.image.v1";
const CONFIG_TYPE: &str = "application/vnd.imagepipe.config.v1+json";
const RECORD_TYPE: &str = "application/vnd.imagepipe.record.v1+json";
const TITLE: &str = "org.opencontainers.image.title";
const LIFECYCLE_TYPE: &str = "application/vnd.imagepipe.lifecycle.v1+json";

/// The tag of a lifecycle document: `_` first, which no version tag has.
fn lifecycle_tag(key: &str) -> String {
    format!("_lifecycle.{key}")
}

#[derive(Debug, Clone)]
pub struct OciStore {
    client: HttpClient,
    retry: crate::http::RetryPolicy,
    base: String,
    registry: String,
    namespace: String,
    auth: Auth,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    /// Required by the OCI image spec for every descriptor.
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// A version as a tag, and back.
pub(crate) fn version_tag(v: &Version) -> String {
    v.to_string().replace('+', "_")
}

fn tag_version(tag: &str) -> Option<Version> {
    Version::parse(&tag.replace('_', "+")).ok()
}

impl OciStore {
    pub fn new(
        client: HttpClient,
        retry: crate::http::RetryPolicy,
        registry: &str,
        namespace: &str,
        plain_http: bool,
        auth: Auth,
    ) -> Self {
        let scheme = if plain_http { "http" } else { "https" };
        Self {
            client,
            retry,
            base: format!("{scheme}://{registry}"),
            registry: registry.into(),
            namespace: namespace.into(),
            auth,
        }
    }

    fn repo(&self, image: &ImageName) -> String {
        if self.namespace.is_empty() {
            image.to_string()
        } else {
            format!("{}/{image}", self.namespace)
        }
    }

    fn url(&self, image: &ImageName, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repo(image))
    }

    /// A request with the shared retries (bodies here are small and can be sent again).
    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response, StoreError> {
        let resp = self
            .client
            .send(|c| {
                let mut rb = self.auth.apply(c.request(method.clone(), url));
                if let Some(a) = accept {
                    rb = rb.header(ACCEPT, a);
                }
                if let Some((ct, bytes)) = &body {
                    rb = rb.header(CONTENT_TYPE, *ct).body(bytes.clone());
                }
                rb
            })
            .await
            .map_err(|source| StoreError::Http {
                store: self.location(),
                source,
            })?;
        Ok(resp)
    }

    /// Turns a non-success answer into an error with the registry's own message.
    async fn fail(&self, method: &Method, url: &str, resp: Response) -> StoreError {
        super::http_failure(self.location(), method.as_ref(), url, resp).await
    }

    fn resolve_location(&self, resp: &Response, url: &str) -> Result<String, StoreError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| StoreError::BadAnswer {
                store: self.location(),
                url: url.into(),
                message: "no Location header in the upload answer".into(),
            })?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{}{loc}", self.base)
            },
        )
    }

    async fn blob_exists(&self, image: &ImageName, digest: &Sha256Hex) -> Result<bool, StoreError> {
        let url = self.url(image, &format!("blobs/sha256:{digest}"));
        let resp = self.send(Method::HEAD, &url, None, None).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(&Method::HEAD, &url, resp).await),
        }
    }

    async fn start_upload(&self, image: &ImageName) -> Result<String, StoreError> {
        let url = self.url(image, "blobs/uploads/");
        let resp = self.send(Method::POST, &url, None, None).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&Method::POST, &url, resp).await);
        }
        self.resolve_location(&resp, &url)
    }

    async fn finish_upload(
        &self,
        location: &str,
        digest: &Sha256Hex,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest=sha256:{digest}");
        let resp = self
            .send(
                Method::PUT,
                &url,
                None,
                Some(("application/octet-stream", body)),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(&Method::PUT, &url, resp).await);
        }
        Ok(())
    }

    /// A small blob: POST, then one PUT with the bytes (a monolithic POST stores nothing on
    /// some registries).
    async fn push_bytes(&self, image: &ImageName, bytes: &[u8]) -> Result<Sha256Hex, StoreError> {
        let digest = Sha256Hex::digest(bytes);
        if !self.blob_exists(image, &digest).await? {
            let location = self.start_upload(image).await?;
            self.finish_upload(&location, &digest, bytes.to_vec())
                .await?;
        }
        Ok(digest)
    }

    /// A file blob, streamed in one PATCH and hashed in the same pass; the upload is committed
    /// only when the bytes sent have the expected digest, and cancelled otherwise.
    async fn push_file(
        &self,
        image: &ImageName,
        path: &Path,
        expected: &Sha256Hex,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        super::retry_upload(self.retry, || {
            self.push_file_once(image, path, expected, progress)
        })
        .await
    }

    async fn push_file_once(
        &self,
        image: &ImageName,
        path: &Path,
        expected: &Sha256Hex,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Io {
            store: self.location(),
            path: path.to_path_buf(),
            source: e,
        };
        let location = self.start_upload(image).await?;
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = crate::hash::hashing_body(file, hasher.clone(), sent.clone());
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        let request = self
            .auth
            .apply(self.client.client().patch(&location))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body)
            .send();
        let resp = crate::hash::with_progress(request, &sent, progress)
            .await
            .map_err(|e| StoreError::Transport {
                store: self.location(),
                url: location.clone(),
                message: crate::http::explain(&location, &e),
            })?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&Method::PATCH, &location, resp).await);
        }
        let location = self.resolve_location(&resp, &location)?;
        let actual = Sha256Hex::from_hasher(std::mem::take(
            &mut *hasher.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        if &actual != expected {
            let _ = self.send(Method::DELETE, &location, None, None).await;
            return Err(StoreError::SourceMismatch {
                path: path.to_path_buf(),
                expected: *expected,
                actual,
                expected_size: size,
                actual_size: sent.load(std::sync::atomic::Ordering::Relaxed),
            });
        }
        self.finish_upload(&location, expected, Vec::new()).await
    }

    /// Every tag of the image's repository, page by page (`Link` headers); none when the
    /// repository does not exist yet.
    async fn tags(&self, image: &ImageName) -> Result<Vec<String>, StoreError> {
        let mut tags = Vec::new();
        let mut url = self.url(image, "tags/list?n=1000");
        for _ in 0..1000 {
            let resp = self.send(Method::GET, &url, None, None).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(tags);
            }
            if !resp.status().is_success() {
                return Err(self.fail(&Method::GET, &url, resp).await);
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::http::next_link);
            let list: TagList = resp.json().await.map_err(|e| StoreError::BadAnswer {
                store: self.location(),
                url: url.clone(),
                message: e.to_string(),
            })?;
            tags.extend(list.tags.unwrap_or_default());
            match next {
                Some(path) => url = format!("{}{path}", self.base),
                None => break,
            }
        }
        Ok(tags)
    }

    /// A manifest's bytes by tag or digest, as the registry stores them, with its media type;
    /// `None` when the reference names nothing.
    async fn raw_manifest(
        &self,
        image: &ImageName,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let url = self.url(image, &format!("manifests/{reference}"));
        let resp = self
            .send(Method::GET, &url, Some(MANIFEST_TYPE), None)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let media = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(MANIFEST_TYPE)
                    .to_string();
                let bytes = resp.bytes().await.map_err(|e| StoreError::Transport {
                    store: self.location(),
                    url: url.clone(),
                    message: e.to_string(),
                })?;
                Ok(Some((bytes.to_vec(), media)))
            }
            _ => Err(self.fail(&Method::GET, &url, resp).await),
        }
    }

    /// Pushes a manifest under a tag; a registry moves a tag in one step.
    async fn put_manifest(
        &self,
        image: &ImageName,
        tag: &str,
        media: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let url = self.url(image, &format!("manifests/{tag}"));
        let resp = self
            .send(Method::PUT, &url, None, Some((media, bytes)))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(&Method::PUT, &url, resp).await);
        }
        Ok(())
    }

    async fn get_blob(&self, image: &ImageName, digest: &str) -> Result<Vec<u8>, StoreError> {
        let url = self.url(image, &format!("blobs/{digest}"));
        let resp = self.send(Method::GET, &url, None, None).await?;
        if !resp.status().is_success() {
            return Err(self.fail(&Method::GET, &url, resp).await);
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| StoreError::Transport {
                store: self.location(),
                url,
                message: e.to_string(),
            })
    }

    async fn manifest(&self, image: &ImageRef) -> Result<Option<Manifest>, StoreError> {
        let url = self.url(
            &image.name,
            &format!("manifests/{}", version_tag(&image.version)),
        );
        let resp = self
            .send(Method::GET, &url, Some(MANIFEST_TYPE), None)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let text = resp.text().await.map_err(|e| StoreError::BadAnswer {
                    store: self.location(),
                    url: url.clone(),
                    message: e.to_string(),
                })?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::BadAnswer {
                        store: self.location(),
                        url,
                        message: format!("not an OCI manifest: {e}"),
                    })
            }
            _ => Err(self.fail(&Method::GET, &url, resp).await),
        }
    }
}

#[async_trait::async_trait]
impl Store for OciStore {
    fn location(&self) -> String {
        let scheme = if self.base.starts_with("http://") {
            "oci+http"
        } else {
            "oci"
        };
        format!("{scheme}://{}/{}", self.registry, self.namespace)
    }

    async fn list_versions(&self, image: &ImageName) -> Result<Vec<Version>, StoreError> {
        Ok(self
            .tags(image)
            .await?
            .iter()
            .filter_map(|t| tag_version(t))
            .collect())
    }

    async fn fetch_record(&self, image: &ImageRef) -> Result<LoadedRecord, StoreError> {
        let manifest = self
            .manifest(image)
            .await?
            .ok_or_else(|| StoreError::VersionNotFound {
                image: image.clone(),
                store: self.location(),
            })?;
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == RECORD_TYPE)
            .ok_or_else(|| StoreError::BadAnswer {
                store: self.location(),
                url: image.to_string(),
                message: "the manifest has no imagepipe record layer; was it pushed by imagepipe?"
                    .into(),
            })?;
        let url = self.url(&image.name, &format!("blobs/{}", layer.digest));
        let resp = self.send(Method::GET, &url, None, None).await?;
        if !resp.status().is_success() {
            return Err(self.fail(&Method::GET, &url, resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| StoreError::BadAnswer {
            store: self.location(),
            url: url.clone(),
            message: e.to_string(),
        })?;
        let sha256 = Sha256Hex::digest(&bytes);
        if format!("sha256:{sha256}") != layer.digest {
            return Err(StoreError::BadAnswer {
                store: self.location(),
                url,
                message: format!("the record blob does not have its digest {}", layer.digest),
            });
        }
        super::stored_record(self.location(), image, &bytes, &url)
    }

    fn artifact_location(&self, image: &ImageRef, artifact: &FileArtifact) -> String {
        self.url(&image.name, &format!("blobs/sha256:{}", artifact.sha256))
    }

    fn record_location(&self, image: &ImageRef) -> String {
        format!(
            "{}/{}:{}",
            self.registry,
            self.repo(&image.name),
            version_tag(&image.version)
        )
    }

    async fn put_artifact(
        &self,
        image: &ImageRef,
        source: &Path,
        expected_file: &FileArtifact,
        _properties: &super::Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PutOutcome, StoreError> {
        let expected = &expected_file.sha256;
        stored_file_name(&self.location(), source)?;
        if self.blob_exists(&image.name, expected).await? {
            return Ok(PutOutcome::AlreadyPresent);
        }
        self.push_file(&image.name, source, expected, progress)
            .await?;
        Ok(PutOutcome::Stored)
    }

    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        _properties: &super::Properties,
    ) -> Result<(), StoreError> {
        let record = Record::from_slice(bytes, "the record to publish")?;
        let mut layers: Vec<serde_json::Value> = record
            .artifacts
            .iter()
            .filter_map(|a| a.file().map(|f| (a, f)))
            .map(|(a, f)| {
                serde_json::json!({
                    "mediaType": format!("application/vnd.imagepipe.artifact.v1.{}", f.format),
                    "digest": format!("sha256:{}", f.sha256),
                    "size": f.size,
                    "annotations": { TITLE: f.path, "dev.imagepipe.artifact.name": a.name },
                })
            })
            .collect();
        let record_digest = self.push_bytes(&image.name, bytes).await?;
        layers.push(serde_json::json!({
            "mediaType": RECORD_TYPE,
            "digest": format!("sha256:{record_digest}"),
            "size": bytes.len(),
            "annotations": { TITLE: record::FILE_NAME },
        }));
        let config = serde_json::to_vec(
            &serde_json::json!({ "image": image.name, "version": image.version.to_string() }),
        )
        .unwrap_or_default();
        let config_digest = self.push_bytes(&image.name, &config).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": format!("sha256:{config_digest}"), "size": config.len() },
            "layers": layers,
            "annotations": {
                "org.opencontainers.image.version": image.version.to_string(),
                "org.opencontainers.image.revision": record.source.commit.unwrap_or_default(),
                "org.opencontainers.image.created": record.build.finished_at.to_rfc3339(),
            },
        });
        let url = self.url(
            &image.name,
            &format!("manifests/{}", version_tag(&image.version)),
        );
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        let resp = self
            .send(Method::PUT, &url, None, Some((MANIFEST_TYPE, body)))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(&Method::PUT, &url, resp).await);
        }
        Ok(())
    }

    /// A manifest tagged `_lifecycle.<key>` whose one layer is the document (tags that never
    /// parse as a version). Pushing the manifest moves the tag in one step.
    async fn read_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        super::check_lifecycle_key(&self.location(), key)?;
        let Some((bytes, _)) = self.raw_manifest(image, &lifecycle_tag(key)).await? else {
            return Ok(None);
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadAnswer {
                store: self.location(),
                url: self.url(image, &format!("manifests/{}", lifecycle_tag(key))),
                message: format!("not an OCI manifest: {e}"),
            })?;
        let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| l.media_type == LIFECYCLE_TYPE)
        else {
            return Err(StoreError::BadAnswer {
                store: self.location(),
                url: self.url(image, &format!("manifests/{}", lifecycle_tag(key))),
                message: "the lifecycle manifest holds no lifecycle document".into(),
            });
        };
        self.get_blob(image, &layer.digest).await.map(Some)
    }

    /// The `_lifecycle.<key>` tags of the repository's tag list.
    async fn list_lifecycle(&self, image: &ImageName) -> Result<Vec<String>, StoreError> {
        Ok(self
            .tags(image)
            .await?
            .into_iter()
            .filter_map(|t| t.strip_prefix(&lifecycle_tag("")).map(str::to_string))
            .filter(|k| super::check_lifecycle_key("", k).is_ok())
            .collect())
    }

    async fn write_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        super::check_lifecycle_key(&self.location(), key)?;
        let doc = self.push_bytes(image, bytes).await?;
        let config = b"{}".to_vec();
        let config_digest = self.push_bytes(image, &config).await?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": format!("sha256:{config_digest}"), "size": config.len() },
            "layers": [{
                "mediaType": LIFECYCLE_TYPE,
                "digest": format!("sha256:{doc}"),
                "size": bytes.len(),
                "annotations": { TITLE: format!("{key}.json") },
            }],
        });
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        self.put_manifest(image, &lifecycle_tag(key), MANIFEST_TYPE, body)
            .await
    }

    /// The tag `channel-<name>` is moved onto the version's own manifest, so that a registry
    /// client pulls the channel's version by it. A tag has one target: the previous one's
    /// mark goes by itself.
    async fn mark_channel(
        &self,
        image: &ImageRef,
        channel: &str,
        _previous: Option<&Version>,
    ) -> Result<(), StoreError> {
        let Some((bytes, media)) = self
            .raw_manifest(&image.name, &version_tag(&image.version))
            .await?
        else {
            return Err(StoreError::VersionNotFound {
                image: image.clone(),
                store: self.location(),
            });
        };
        self.put_manifest(&image.name, &format!("channel-{channel}"), &media, bytes)
            .await
    }

    /// The version's manifest is deleted by its digest (the record is one of its layers, so
    /// the version goes in one step); the registry's garbage collection frees the blobs.
    async fn delete_version(&self, image: &ImageRef) -> Result<(), StoreError> {
        let url = self.url(
            &image.name,
            &format!("manifests/{}", version_tag(&image.version)),
        );
        let resp = self
            .send(Method::HEAD, &url, Some(MANIFEST_TYPE), None)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !resp.status().is_success() {
            return Err(self.fail(&Method::HEAD, &url, resp).await);
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| StoreError::BadAnswer {
                store: self.location(),
                url: url.clone(),
                message: "no Docker-Content-Digest header: cannot delete by digest".into(),
            })?;
        let url = self.url(&image.name, &format!("manifests/{digest}"));
        let resp = self.send(Method::DELETE, &url, None, None).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.fail(&Method::DELETE, &url, resp).await),
        }
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
        // The version's manifest says which blob holds the file; a registry checks a blob's
        // digest on upload, so a present blob has exactly the bytes its digest names.
        let Some(manifest) = self.manifest(image).await? else {
            return Ok(None);
        };
        let name = artifact.file_name();
        let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| l.annotations.get(TITLE).map(String::as_str) == Some(name))
        else {
            return Ok(None);
        };
        let digest = layer
            .digest
            .strip_prefix("sha256:")
            .and_then(|d| d.parse::<Sha256Hex>().ok())
            .ok_or_else(|| StoreError::BadAnswer {
                store: self.location(),
                url: image.to_string(),
                message: format!("layer `{name}` has digest {}, not a sha256", layer.digest),
            })?;
        Ok(self
            .blob_exists(&image.name, &digest)
            .await?
            .then_some(super::StoredFile {
                sha256: digest,
                size: layer.size,
            }))
    }
}
