//! A VMware Content Subscription Protocol (version 2) library: `lib.json`, `items.json` and
//! `<item>/item.json`, with each version's OVF and disks unpacked under `<item>/<version>/`,
//! in a directory (which any web server can publish) or in an Artifactory generic repository
//! (which is one). Either is a library a vCenter can subscribe to.
//!
//! The protocol's rules: ids never change; a file's etag changes exactly when its content does
//! (here: its sha256); an item's `version` rises when the item changes, and the library's when
//! any item does. A re-import of the same record changes nothing. Files of a new version go
//! into a new directory before the JSON that points at them is replaced, and the old version's
//! directory goes last, so a subscriber reading mid-import sees the old version whole or the
//! new one whole.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{ImportRequest, Imported, Layout, LibraryError, PROP_IMAGE, PROP_VERSION};
use crate::hash::Sha256Hex;
use crate::http::HttpClient;
use crate::ova::Package;
use crate::secret::Auth;
use crate::store::ArtifactReader;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lib {
    #[serde(rename = "vcspVersion")]
    vcsp_version: String,
    version: String,
    #[serde(rename = "contentVersion", default)]
    content_version: String,
    name: String,
    id: String,
    created: String,
    #[serde(default)]
    capabilities: serde_json::Value,
    #[serde(rename = "itemsHref")]
    items_href: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Items {
    items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    created: String,
    #[serde(default)]
    description: String,
    version: String,
    files: Vec<File>,
    id: String,
    name: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(rename = "selfHref")]
    self_href: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "contentVersion", default)]
    content_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    name: String,
    size: u64,
    etag: String,
    #[serde(default)]
    generated: bool,
    hrefs: Vec<String>,
}

/// Where the library's files live.
#[derive(Debug, Clone)]
enum Tree {
    Dir(PathBuf),
    Artifactory {
        client: HttpClient,
        auth: Auth,
        base: String,
        repo: String,
        prefix: String,
    },
}

/// A VCSP library.
#[derive(Debug, Clone)]
pub struct VcspLibrary {
    tree: Tree,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn bump(version: &str) -> String {
    (version.parse::<u64>().unwrap_or(0) + 1).to_string()
}

/// `rel` under the repository prefix.
fn under(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// The directory part of an href (`item/1.0.0/x.vmdk` → `item/1.0.0`).
fn dir_of(href: &str) -> &str {
    href.rsplit_once('/').map_or("", |(d, _)| d)
}

impl VcspLibrary {
    /// A library in a directory.
    pub fn dir(root: PathBuf) -> Self {
        Self {
            tree: Tree::Dir(root),
        }
    }

    /// A library in an Artifactory generic repository, under `prefix`.
    pub fn artifactory(
        client: HttpClient,
        auth: Auth,
        base: &str,
        repo: &str,
        prefix: &str,
    ) -> Self {
        Self {
            tree: Tree::Artifactory {
                client,
                auth,
                base: base.trim_end_matches('/').into(),
                repo: repo.into(),
                prefix: prefix.trim_matches('/').into(),
            },
        }
    }

    fn name(&self) -> String {
        match &self.tree {
            Tree::Dir(root) => format!("vcsp:{}", root.display()),
            Tree::Artifactory { .. } => format!(
                "vcsp:{}",
                self.url("lib.json").trim_end_matches("/lib.json")
            ),
        }
    }

    fn failed(&self, message: String) -> LibraryError {
        LibraryError::Failed {
            library: self.name(),
            message,
        }
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError {
        let (library, path) = (self.name(), path.to_path_buf());
        move |source| LibraryError::Io {
            library,
            path,
            source,
        }
    }

    /// A file's URL in the repository (Artifactory only).
    fn url(&self, rel: &str) -> String {
        match &self.tree {
            Tree::Dir(root) => root.join(rel).display().to_string(),
            Tree::Artifactory {
                base, repo, prefix, ..
            } => format!("{base}/{repo}/{}", under(prefix, rel)),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<reqwest::Body>,
        sha256: Option<String>,
    ) -> Result<reqwest::Response, LibraryError> {
        let Tree::Artifactory { client, auth, .. } = &self.tree else {
            return Err(self.failed("not an Artifactory library".into()));
        };
        let http = |source| LibraryError::Http {
            library: self.name(),
            source,
        };
        match body {
            // A streamed body is sent once: the client cannot replay it.
            Some(body) => {
                let mut rb = auth.apply(client.client().request(method, url));
                if let Some(sha) = &sha256 {
                    rb = rb.header("X-Checksum-Sha256", sha);
                }
                rb.body(body)
                    .send()
                    .await
                    .map_err(|e| self.failed(format!("{url}: {e}")))
            }
            None => client
                .send(|c| auth.apply(c.request(method.clone(), url)))
                .await
                .map_err(http),
        }
    }

    async fn check(
        &self,
        method: &str,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, LibraryError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(LibraryError::Unauthorized {
                library: self.name(),
                method: method.into(),
                url: url.into(),
                status: status.as_u16(),
            });
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.chars().take(300).collect());
        Err(LibraryError::Remote {
            library: self.name(),
            method: method.into(),
            url: url.into(),
            status: status.as_u16(),
            message,
        })
    }

    async fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LibraryError> {
        match &self.tree {
            Tree::Dir(root) => {
                let path = root.join(rel);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(self.io(&path)(e)),
                }
            }
            Tree::Artifactory { .. } => {
                let url = self.url(rel);
                let resp = self.send(reqwest::Method::GET, &url, None, None).await?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let resp = self.check("GET", &url, resp).await?;
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| self.failed(format!("{url}: {e}")))?;
                Ok(Some(bytes.to_vec()))
            }
        }
    }

    async fn write(&self, rel: &str, bytes: Vec<u8>) -> Result<(), LibraryError> {
        match &self.tree {
            Tree::Dir(root) => {
                let path = root.join(rel);
                crate::fsutil::write_atomic(&path, &bytes).map_err(self.io(&path))
            }
            Tree::Artifactory { .. } => {
                let url = self.url(rel);
                let sha = Sha256Hex::digest(&bytes).to_string();
                let resp = self
                    .send(reqwest::Method::PUT, &url, Some(bytes.into()), Some(sha))
                    .await?;
                self.check("PUT", &url, resp).await.map(|_| ())
            }
        }
    }

    /// The size of a file, or `None` when it is not there.
    async fn size(&self, rel: &str) -> Result<Option<u64>, LibraryError> {
        match &self.tree {
            Tree::Dir(root) => Ok(std::fs::metadata(root.join(rel)).ok().map(|m| m.len())),
            Tree::Artifactory {
                base, repo, prefix, ..
            } => {
                let url = format!("{base}/api/storage/{repo}/{}", under(prefix, rel));
                let resp = self.send(reqwest::Method::GET, &url, None, None).await?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                let info: serde_json::Value = self
                    .check("GET", &url, resp)
                    .await?
                    .json()
                    .await
                    .map_err(|e| self.failed(format!("{url}: {e}")))?;
                // File Info gives the size as a string.
                Ok(info["size"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or(info["size"].as_u64()))
            }
        }
    }

    /// Removes a directory and what is in it; a failure leaves garbage, never a wrong library.
    async fn remove(&self, rel: &str) {
        match &self.tree {
            Tree::Dir(root) => {
                let _ = std::fs::remove_dir_all(root.join(rel));
            }
            Tree::Artifactory { .. } => {
                let url = self.url(rel);
                let _ = self.send(reqwest::Method::DELETE, &url, None, None).await;
            }
        }
    }

    /// Streams one member into the library; returns its sha256, checked against the manifest.
    async fn put_member(
        &self,
        rel: &str,
        reader: &dyn ArtifactReader,
        package: &Package,
        member: &crate::ova::Member,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Sha256Hex, LibraryError> {
        let unhashed = || self.failed(format!("`{}` was not hashed", member.name));
        match &self.tree {
            Tree::Dir(root) => {
                let path = root.join(rel);
                std::fs::create_dir_all(crate::fsutil::parent_dir(&path))
                    .map_err(self.io(&path))?;
                let mut out = std::fs::File::create(&path).map_err(self.io(&path))?;
                let mut sent = 0;
                let sha =
                    super::copy_member(&self.name(), reader, package, member, true, |chunk| {
                        sent += chunk.len() as u64;
                        progress(sent);
                        std::future::ready(out.write_all(&chunk))
                    })
                    .await?;
                out.sync_all().map_err(self.io(&path))?;
                sha.ok_or_else(unhashed)
            }
            Tree::Artifactory { .. } => {
                // Artifactory checks the manifest's SHA-256 itself when it is given; the stream is
                // hashed too, for the etag and for manifests of other algorithms.
                let known = package
                    .checksums
                    .get(&member.name)
                    .filter(|c| c.algorithm == "SHA256")
                    .map(|c| c.hex.clone());
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
                let body = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                let url = self.url(rel);
                let request = self.send(
                    reqwest::Method::PUT,
                    &url,
                    Some(reqwest::Body::wrap_stream(body)),
                    known,
                );
                let sent = std::sync::atomic::AtomicU64::new(0);
                let feed = async {
                    let r =
                        super::copy_member(&self.name(), reader, package, member, true, |chunk| {
                            let n = sent.fetch_add(
                                chunk.len() as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            progress(n + chunk.len() as u64);
                            let tx = tx.clone();
                            async move {
                                tx.send(Ok(chunk)).await.map_err(|_| {
                                    std::io::Error::other("the upload connection closed")
                                })
                            }
                        })
                        .await;
                    drop(tx);
                    r
                };
                let (resp, sha) = tokio::join!(request, feed);
                self.check("PUT", &url, resp?).await?;
                sha?.ok_or_else(unhashed)
            }
        }
    }

    async fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        rel: &str,
    ) -> Result<Option<T>, LibraryError> {
        let Some(bytes) = self.read(rel).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            self.failed(format!(
                "{rel}: not a VCSP document ({e}); point the site at an empty directory or a VCSP library"
            ))
        })
    }

    async fn write_json(&self, rel: &str, value: &impl Serialize) -> Result<(), LibraryError> {
        let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
        bytes.push(b'\n');
        self.write(rel, bytes).await
    }

    /// Imports the package as the request's item.
    pub async fn import(
        &self,
        request: &ImportRequest,
        reader: &dyn ArtifactReader,
        package: &Package,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Imported, LibraryError> {
        // One import at a time per directory: the JSON documents are read, changed and
        // replaced. (A repository has no lock: let CI run one import per library at a time.)
        let _lock = match &self.tree {
            Tree::Dir(root) => {
                std::fs::create_dir_all(root).map_err(self.io(root))?;
                let path = root.join(".imagepipe.lock");
                let lock = std::fs::File::create(&path).map_err(self.io(&path))?;
                lock.lock().map_err(self.io(&path))?;
                Some(lock)
            }
            Tree::Artifactory { .. } => None,
        };
        let lib_name = match &self.tree {
            Tree::Dir(root) => root.file_name().map(|n| n.to_string_lossy().into_owned()),
            Tree::Artifactory { repo, prefix, .. } => Some(
                prefix
                    .rsplit('/')
                    .next()
                    .filter(|p| !p.is_empty())
                    .unwrap_or(repo)
                    .to_string(),
            ),
        }
        .unwrap_or_else(|| "imagepipe".into());
        let mut lib = self.read_json::<Lib>("lib.json").await?.unwrap_or_else(|| Lib {
            vcsp_version: "2".into(),
            version: "0".into(),
            content_version: "1".into(),
            name: lib_name,
            id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            created: now(),
            capabilities: serde_json::json!({ "transferIn": ["httpGet"], "transferOut": ["httpGet"] }),
            items_href: "items.json".into(),
        });
        let mut items = self
            .read_json::<Items>("items.json")
            .await?
            .unwrap_or_default();
        let existing = items
            .items
            .iter()
            .find(|i| i.name == request.item_name)
            .cloned();

        if let Some(item) = &existing
            && item.properties.get(super::PROP_RECORD) == Some(&request.record_sha256.to_string())
        {
            let mut whole = true;
            for f in &item.files {
                let size = match f.hrefs.first() {
                    Some(h) => self.size(h).await?,
                    None => None,
                };
                whole &= size == Some(f.size);
            }
            if whole {
                return Ok(Imported {
                    library: self.name(),
                    item: item.name.clone(),
                    item_id: item.id.clone(),
                    item_version: item.version.clone(),
                    changed: false,
                    removed: Vec::new(),
                    synced: Vec::new(),
                });
            }
        }

        // Folder names are the item's name, which VCSP wants without spaces. Nothing points at
        // the new version's folder until item.json does.
        let folder = request.item_name.replace(' ', "_");
        let version_dir = format!("{folder}/{}", request.image.version);
        let mut files = Vec::new();
        let mut done = 0u64;
        for member in package.parts() {
            let rel = format!("{version_dir}/{}", member.name);
            let base = done;
            let result = self
                .put_member(&rel, reader, package, member, &|n| progress(base + n))
                .await;
            let sha = match result {
                Ok(sha) => sha,
                Err(e) => {
                    if existing.as_ref().is_none_or(|i| {
                        i.files
                            .iter()
                            .all(|f| f.hrefs.first().is_none_or(|h| dir_of(h) != version_dir))
                    }) {
                        self.remove(&version_dir).await;
                    }
                    return Err(e);
                }
            };
            done += member.size;
            files.push(File {
                name: member.name.clone(),
                size: member.size,
                etag: sha.to_string(),
                generated: false,
                hrefs: vec![rel],
            });
        }

        let item = Item {
            created: existing.as_ref().map_or_else(now, |i| i.created.clone()),
            description: request.description.clone(),
            version: existing
                .as_ref()
                .map_or_else(|| "1".into(), |i| bump(&i.version)),
            files,
            id: existing.as_ref().map_or_else(
                || format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                |i| i.id.clone(),
            ),
            name: request.item_name.clone(),
            properties: request.properties(),
            self_href: format!("{folder}/item.json"),
            kind: "vcsp.ovf".into(),
            content_version: "1".into(),
        };
        self.write_json(&item.self_href, &item).await?;
        match items.items.iter_mut().find(|i| i.name == item.name) {
            Some(slot) => *slot = item.clone(),
            None => items.items.push(item.clone()),
        }
        let removed = if request.layout == Layout::ItemPerVersion {
            retain(&mut items.items, request)
        } else {
            Vec::new()
        };
        self.write_json("items.json", &items).await?;
        lib.version = bump(&lib.version);
        self.write_json("lib.json", &lib).await?;

        // What no document points at any more: the previous version's folder of this item and
        // the folders of items retention removed.
        let old_dirs: std::collections::BTreeSet<&str> = existing
            .iter()
            .flat_map(|i| &i.files)
            .filter_map(|f| f.hrefs.first().map(|h| dir_of(h)))
            .filter(|d| *d != version_dir)
            .collect();
        for dir in old_dirs {
            self.remove(dir).await;
        }
        for name in &removed {
            self.remove(&name.replace(' ', "_")).await;
        }
        Ok(Imported {
            library: self.name(),
            item: item.name,
            item_id: item.id,
            item_version: item.version,
            changed: true,
            removed,
            synced: Vec::new(),
        })
    }
}

/// Drops the image's oldest items beyond `keep`, newest version first; returns their names.
fn retain(items: &mut Vec<Item>, request: &ImportRequest) -> Vec<String> {
    let image = request.image.name.to_string();
    let mut mine: Vec<(semver::Version, String)> = items
        .iter()
        .filter(|i| i.properties.get(PROP_IMAGE) == Some(&image))
        .filter_map(|i| {
            let v = i.properties.get(PROP_VERSION)?.parse().ok()?;
            request.is_item_of(&i.name, &v).then(|| (v, i.name.clone()))
        })
        .collect();
    mine.sort_by(|a, b| b.0.cmp(&a.0));
    let drop: Vec<String> = mine
        .into_iter()
        .skip(request.keep.max(1))
        .map(|(_, n)| n)
        .collect();
    items.retain(|i| !drop.contains(&i.name));
    drop
}
