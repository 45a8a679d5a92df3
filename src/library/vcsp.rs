//! A VMware Content Subscription Protocol (version 2) library: `lib.json`, `items.json` and
//! `<item>/item.json`, with each version's OVF and disks unpacked under `<item>/<version>-<id>/`,
//! in a directory (which any web server can publish) or in an Artifactory generic repository
//! (which is one). Either is a library a vCenter can subscribe to.
//!
//! The protocol's rules: ids never change; a file's etag changes exactly when its content does
//! (here: its sha256); an item's `version` rises when the item changes, and the library's when
//! any item does. A re-import of the same record changes nothing.
//!
//! Crash safety: the files of an import go into a folder of their own, named for this import,
//! that nothing points at until the import is complete, so no file a subscriber can reach is
//! ever rewritten. The three documents are then written in an order where every prefix is a
//! consistent library (`item.json`, `items.json`, `lib.json`, each replaced whole), and the old
//! version's folder goes last. Before the documents, a journal holding all three (and the
//! folders to remove) is written; a run that finds a journal finishes it first, so a killed
//! import is completed by the next one, whatever it had done. Each run also sweeps what killed
//! runs left: temporary files and the folders of imports that never finished.

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// What an import is about to write: the documents, and the folders no document will point
/// at afterwards. Kept in the library while the documents are written.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// The item an import writes; `None` for a removal, which writes no item.
    #[serde(default)]
    item: Option<Item>,
    items: Items,
    lib: Lib,
    obsolete: Vec<String>,
}

/// The journal's name: hidden, and not a temporary file's (`.imagepipe-…`), which sweeps take.
const JOURNAL: &str = ".imagepipe.journal.json";

/// A version folder of an item: `<version>-<8 hex digits>`.
fn is_version_folder(name: &str) -> bool {
    name.rsplit_once('-').is_some_and(|(v, id)| {
        semver::Version::parse(v).is_ok()
            && id.len() == 8
            && id.bytes().all(|b| b.is_ascii_hexdigit())
    })
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
        let text = resp.text().await.unwrap_or_default();
        let message = crate::store::error_message(&text)
            .unwrap_or_else(|| crate::secret::scrub_and_cut(text.trim(), 300));
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            // A 403 names the missing permission (an index document rewritten without Delete:
            // "Not enough permissions to delete/overwrite artifact …").
            let message = if status == reqwest::StatusCode::FORBIDDEN && !message.is_empty() {
                format!(": {message}")
            } else {
                String::new()
            };
            return Err(LibraryError::Unauthorized {
                library: self.name(),
                method: method.into(),
                url: url.into(),
                status: status.as_u16(),
                message,
            });
        }
        Err(LibraryError::Remote {
            library: self.name(),
            method: method.into(),
            url: url.into(),
            status: status.as_u16(),
            message,
            error_type: None,
        })
    }

    /// `rel` inside a directory library, refused when it could reach outside the root: a `..`
    /// or absolute part, or a symbolic link on the way (which a web server would follow).
    fn inside(&self, root: &Path, rel: &str) -> Result<PathBuf, LibraryError> {
        let mut path = root.to_path_buf();
        for part in rel.split('/') {
            if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
                return Err(self.failed(format!("`{rel}` is not a path inside the library")));
            }
            path.push(part);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(self.failed(format!(
                    "{} is a symbolic link; a library's files are its own: remove the link",
                    path.display()
                )));
            }
        }
        Ok(path)
    }

    async fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LibraryError> {
        match &self.tree {
            Tree::Dir(root) => {
                let path = self.inside(root, rel)?;
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
                let path = self.inside(root, rel)?;
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
            Tree::Dir(root) => Ok(std::fs::metadata(self.inside(root, rel)?)
                .ok()
                .map(|m| m.len())),
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

    /// Removes a file, or a directory and what is in it. A failure leaves garbage that the
    /// next run sweeps, never a wrong library; a path that could reach outside the library is
    /// never removed.
    async fn remove(&self, rel: &str) {
        match &self.tree {
            Tree::Dir(root) => {
                let Ok(path) = self.inside(root, rel) else {
                    return;
                };
                crate::fsutil::crash_point();
                let _ = match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                    Ok(_) => std::fs::remove_file(&path),
                    Err(_) => Ok(()),
                };
            }
            Tree::Artifactory { .. } => {
                let url = self.url(rel);
                let _ = self.send(reqwest::Method::DELETE, &url, None, None).await;
            }
        }
    }

    /// The entries of a folder of the library, with whether each is a folder; empty when it is
    /// not there.
    async fn children(&self, rel: &str) -> Result<Vec<(String, bool)>, LibraryError> {
        match &self.tree {
            Tree::Dir(root) => {
                let path = if rel.is_empty() {
                    root.clone()
                } else {
                    self.inside(root, rel)?
                };
                let entries = match std::fs::read_dir(&path) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(self.io(&path)(e)),
                };
                let mut out = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(self.io(&path))?;
                    let dir = entry.file_type().is_ok_and(|t| t.is_dir());
                    out.push((entry.file_name().to_string_lossy().into_owned(), dir));
                }
                Ok(out)
            }
            Tree::Artifactory {
                base, repo, prefix, ..
            } => {
                // Folder Info lists a folder's children.
                let url = format!("{base}/api/storage/{repo}/{}", under(prefix, rel));
                let resp = self.send(reqwest::Method::GET, &url, None, None).await?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(Vec::new());
                }
                let info: serde_json::Value = self
                    .check("GET", &url, resp)
                    .await?
                    .json()
                    .await
                    .map_err(|e| self.failed(format!("{url}: {e}")))?;
                Ok(info["children"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        let name = c["uri"].as_str()?.trim_start_matches('/').to_string();
                        Some((name, c["folder"].as_bool().unwrap_or(false)))
                    })
                    .collect())
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
                let path = self.inside(root, rel)?;
                std::fs::create_dir_all(crate::fsutil::parent_dir(&path))
                    .map_err(self.io(&path))?;
                let mut out = std::fs::File::create(&path).map_err(self.io(&path))?;
                let mut sent = 0;
                let sha =
                    super::copy_member(&self.name(), reader, package, member, true, |chunk| {
                        sent += chunk.len() as u64;
                        progress(sent);
                        crate::fsutil::crash_point();
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
                let resp = self.check("PUT", &url, resp?).await?;
                let sha = sha?.ok_or_else(unhashed)?;
                // A repository that trusts server checksums keeps damaged bytes with 201: the
                // reply says what it stored, and wrong bytes are deleted, never served.
                let stored = resp
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["checksums"]["sha256"].as_str().map(String::from));
                if stored.as_deref() != Some(sha.to_string().as_str()) {
                    let _ = self.send(reqwest::Method::DELETE, &url, None, None).await;
                    return Err(self.failed(format!(
                        "{url}: the repository stored other bytes than were sent (sha256 {}, \
                         sent {sha}); they were deleted: import again",
                        stored.as_deref().unwrap_or("not given")
                    )));
                }
                Ok(sha)
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

    /// Writes what a journal says, in the order that keeps every prefix consistent, then
    /// removes the folders it names and the journal itself.
    async fn apply(&self, journal: &Journal) -> Result<(), LibraryError> {
        if let Some(item) = &journal.item {
            self.write_json(&item.self_href, item).await?;
        }
        self.write_json("items.json", &journal.items).await?;
        self.write_json("lib.json", &journal.lib).await?;
        for dir in &journal.obsolete {
            self.remove(dir).await;
        }
        self.remove(JOURNAL).await;
        Ok(())
    }

    /// Finishes an import a killed run left half done, then, in a directory, sweeps what
    /// killed runs left: temporary files, and version folders that no document points at.
    async fn recover(&self) -> Result<(), LibraryError> {
        if let Some(journal) = self.read_json::<Journal>(JOURNAL).await? {
            self.apply(&journal).await?;
        }
        // Only where imports hold a lock: in a repository, another import's folder that is not
        // pointed at yet looks exactly like a dead one's.
        if !matches!(self.tree, Tree::Dir(_)) {
            return Ok(());
        }
        let items = self
            .read_json::<Items>("items.json")
            .await?
            .unwrap_or_default();
        let referenced: std::collections::BTreeSet<String> = items
            .items
            .iter()
            .flat_map(|i| &i.files)
            .filter_map(|f| f.hrefs.first().map(|h| dir_of(h).to_string()))
            .collect();
        for (name, dir) in self.children("").await? {
            if name.starts_with(".imagepipe-") {
                self.remove(&name).await;
                continue;
            }
            if !dir || name.starts_with('.') {
                continue;
            }
            for (child, child_dir) in self.children(&name).await? {
                let rel = format!("{name}/{child}");
                let stale = if child_dir {
                    is_version_folder(&child) && !referenced.contains(&rel)
                } else {
                    child.starts_with(".imagepipe-")
                };
                if stale {
                    self.remove(&rel).await;
                }
            }
        }
        Ok(())
    }

    /// One change at a time per directory: the JSON documents are read, changed and
    /// replaced. (A repository has no lock: let CI run one change per library at a time.)
    ///
    /// The wait happens on a blocking thread: sites are imported as futures of one task, and two
    /// sites sharing a directory would otherwise block the thread the holder needs to finish.
    async fn lock(&self) -> Result<Option<std::fs::File>, LibraryError> {
        match &self.tree {
            Tree::Dir(root) => {
                std::fs::create_dir_all(root).map_err(self.io(root))?;
                let path = root.join(".imagepipe.lock");
                let lock = std::fs::File::create(&path).map_err(self.io(&path))?;
                let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(self.io(&path))?;
                Ok(Some(lock))
            }
            Tree::Artifactory { .. } => Ok(None),
        }
    }

    /// Removes the items that hold these versions of an image (items imagepipe made, known by
    /// their `imagepipe.image` and `imagepipe.version` properties); returns their names. Crash
    /// safe as an import is: a journal first, then `items.json` without them, `lib.json`, and
    /// their folders last, so a subscriber never sees an item whose files are gone, and a
    /// killed run is finished by the next change.
    pub async fn remove_versions(
        &self,
        image: &crate::image::ImageName,
        versions: &std::collections::BTreeSet<semver::Version>,
    ) -> Result<Vec<String>, LibraryError> {
        let _lock = self.lock().await?;
        self.recover().await?;
        let Some(mut lib) = self.read_json::<Lib>("lib.json").await? else {
            return Ok(Vec::new());
        };
        let mut items = self
            .read_json::<Items>("items.json")
            .await?
            .unwrap_or_default();
        let image = image.to_string();
        let (gone, kept): (Vec<Item>, Vec<Item>) = items.items.into_iter().partition(|i| {
            i.properties.get(PROP_IMAGE) == Some(&image)
                && i.properties
                    .get(PROP_VERSION)
                    .and_then(|v| v.parse::<semver::Version>().ok())
                    .is_some_and(|v| versions.contains(&v))
        });
        items.items = kept;
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        lib.version = bump(&lib.version);
        let mut obsolete: Vec<String> = gone.iter().map(|i| i.name.replace(' ', "_")).collect();
        obsolete.sort();
        obsolete.dedup();
        let journal = Journal {
            item: None,
            items,
            lib,
            obsolete,
        };
        self.write_json(JOURNAL, &journal).await?;
        self.apply(&journal).await?;
        Ok(gone.into_iter().map(|i| i.name).collect())
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
        let _lock = self.lock().await?;
        self.recover().await?;
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
                    deploy: None,
                    library: self.name(),
                    item: item.name.clone(),
                    item_id: item.id.clone(),
                    item_version: item.version.clone(),
                    changed: false,
                    removed: Vec::new(),
                    synced: Vec::new(),
                    manifest: package.manifest.is_some(),
                    warnings: Vec::new(),
                });
            }
        }

        // Folder names are the item's name, which VCSP wants without spaces. This import's
        // files go into a folder of its own, which nothing points at until item.json does.
        let folder = request.item_name.replace(' ', "_");
        let version_dir = format!(
            "{folder}/{}-{}",
            request.image.version,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
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
                    self.remove(&version_dir).await;
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

        // The whole OVA is checked against the record before anything points at its files.
        if let Err(e) = reader.verify_whole().await {
            self.remove(&version_dir).await;
            return Err(self.failed(format!("the site's copy of the OVA: {e}")));
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
        match items.items.iter_mut().find(|i| i.name == item.name) {
            Some(slot) => *slot = item.clone(),
            None => items.items.push(item.clone()),
        }
        let removed = if request.layout == Layout::ItemPerVersion {
            retain(&mut items.items, request)
        } else {
            Vec::new()
        };
        lib.version = bump(&lib.version);

        // What no document will point at: the previous version's folder of this item and the
        // folders of items retention removed.
        let mut obsolete: Vec<String> = existing
            .iter()
            .flat_map(|i| &i.files)
            .filter_map(|f| f.hrefs.first().map(|h| dir_of(h).to_string()))
            .filter(|d| *d != version_dir)
            .collect();
        obsolete.extend(removed.iter().map(|name| name.replace(' ', "_")));
        obsolete.sort();
        obsolete.dedup();
        let journal = Journal {
            item: Some(item.clone()),
            items,
            lib,
            obsolete,
        };
        self.write_json(JOURNAL, &journal).await?;
        self.apply(&journal).await?;
        Ok(Imported {
            deploy: None,
            library: self.name(),
            item: item.name,
            item_id: item.id,
            item_version: item.version,
            changed: true,
            removed,
            synced: Vec::new(),
            manifest: package.manifest.is_some(),
            warnings: Vec::new(),
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
