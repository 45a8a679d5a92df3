//! A VMware Content Subscription Protocol (version 2) library in a directory: `lib.json`,
//! `items.json` and `<item>/item.json`, with each version's OVF and disks unpacked under
//! `<item>/<version>/`. Any web server (or an Artifactory generic repository) that serves the
//! directory is a library a vCenter can subscribe to.
//!
//! The protocol's rules: ids never change; a file's etag changes exactly when its content does
//! (here: its sha256); an item's `version` rises when the item changes, and the library's when
//! any item does. A re-import of the same record changes nothing. Files of a new version go
//! into a new directory before the JSON that points at them is replaced, so a subscriber
//! reading mid-import sees the old version whole or the new one whole.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{ImportRequest, Imported, Layout, LibraryError, PROP_IMAGE, PROP_VERSION};
use crate::ova::Package;
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

/// A VCSP library rooted at a directory.
#[derive(Debug, Clone)]
pub struct VcspLibrary {
    root: PathBuf,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn bump(version: &str) -> String {
    (version.parse::<u64>().unwrap_or(0) + 1).to_string()
}

impl VcspLibrary {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn name(&self) -> String {
        format!("vcsp:{}", self.root.display())
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError {
        let (library, path) = (self.name(), path.to_path_buf());
        move |source| LibraryError::Io {
            library,
            path,
            source,
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, LibraryError> {
        let path = self.root.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                LibraryError::Failed {
                    library: self.name(),
                    message: format!(
                        "{}: not a VCSP document ({e}); point the site at an empty directory or a VCSP library",
                        path.display()
                    ),
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    fn write_json(&self, name: &str, value: &impl Serialize) -> Result<(), LibraryError> {
        let path = self.root.join(name);
        let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
        bytes.push(b'\n');
        crate::fsutil::write_atomic(&path, &bytes).map_err(self.io(&path))
    }

    /// Imports the package as the request's item.
    pub async fn import(
        &self,
        request: &ImportRequest,
        reader: &dyn ArtifactReader,
        package: &Package,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Imported, LibraryError> {
        std::fs::create_dir_all(&self.root).map_err(self.io(&self.root))?;
        // One import at a time per library: the JSON documents are read, changed and replaced.
        let lock_path = self.root.join(".imagepipe.lock");
        let lock = std::fs::File::create(&lock_path).map_err(self.io(&lock_path))?;
        lock.lock().map_err(self.io(&lock_path))?;

        let lib_name = self
            .root
            .file_name()
            .map_or_else(|| "imagepipe".into(), |n| n.to_string_lossy().into_owned());
        let mut lib = self.read_json::<Lib>("lib.json")?.unwrap_or_else(|| Lib {
            vcsp_version: "2".into(),
            version: "0".into(),
            content_version: "1".into(),
            name: lib_name,
            id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            created: now(),
            capabilities: serde_json::json!({ "transferIn": ["httpGet"], "transferOut": ["httpGet"] }),
            items_href: "items.json".into(),
        });
        let mut items = self.read_json::<Items>("items.json")?.unwrap_or_default();
        let existing = items
            .items
            .iter()
            .find(|i| i.name == request.item_name)
            .cloned();

        if let Some(item) = &existing
            && item.properties.get(super::PROP_RECORD) == Some(&request.record_sha256.to_string())
            && item.files.iter().all(|f| {
                f.hrefs.first().is_some_and(|h| {
                    std::fs::metadata(self.root.join(h)).is_ok_and(|m| m.len() == f.size)
                })
            })
        {
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

        // Folder names are the item's name, which VCSP wants without spaces.
        let folder = request.item_name.replace(' ', "_");
        let version_dir = format!("{folder}/{}", request.image.version);
        let staging = self.root.join(format!("{version_dir}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(self.io(&staging))?;
        let result = self
            .copy_parts(reader, package, &staging, &version_dir, progress)
            .await;
        let files = match result {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let final_dir = self.root.join(&version_dir);
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&staging, &final_dir).map_err(self.io(&final_dir))?;

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
        self.write_json(&item.self_href, &item)?;
        match items.items.iter_mut().find(|i| i.name == item.name) {
            Some(slot) => *slot = item.clone(),
            None => items.items.push(item.clone()),
        }

        let removed = if request.layout == Layout::ItemPerVersion {
            retain(&mut items.items, request)
        } else {
            Vec::new()
        };
        self.write_json("items.json", &items)?;
        lib.version = bump(&lib.version);
        self.write_json("lib.json", &lib)?;

        // What no document points at any more: older version folders of this item and the
        // folders of items retention removed.
        if let Ok(entries) = std::fs::read_dir(self.root.join(&folder)) {
            for entry in entries.flatten() {
                if entry.path().is_dir() && entry.path() != final_dir {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        for name in &removed {
            let _ = std::fs::remove_dir_all(self.root.join(name.replace(' ', "_")));
        }
        drop(lock);
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

    async fn copy_parts(
        &self,
        reader: &dyn ArtifactReader,
        package: &Package,
        staging: &Path,
        version_dir: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<File>, LibraryError> {
        let mut files = Vec::new();
        let done = std::sync::atomic::AtomicU64::new(0);
        for member in package.parts() {
            let path = staging.join(&member.name);
            let mut out = std::fs::File::create(&path).map_err(self.io(&path))?;
            let sha = super::copy_member(&self.name(), reader, package, member, true, |chunk| {
                let r = out.write_all(&chunk);
                let n = done.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                progress(n + chunk.len() as u64);
                std::future::ready(r)
            })
            .await?;
            out.sync_all().map_err(self.io(&path))?;
            let sha = sha.ok_or_else(|| LibraryError::Failed {
                library: self.name(),
                message: format!("`{}` was not hashed", member.name),
            })?;
            files.push(File {
                name: member.name.clone(),
                size: member.size,
                etag: sha.to_string(),
                generated: false,
                hrefs: vec![format!("{version_dir}/{}", member.name)],
            });
        }
        Ok(files)
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
