//! Publishing a built, scanned image version into a store: artifacts first, each checked
//! against its recorded digest on the way in, and the record last, so that a reader who finds
//! the record finds every artifact. A re-run completes an interrupted publish without sending
//! again what the store holds, and republishing a version with other bytes is refused.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::hash::Sha256Hex;
use crate::record::{
    self, ArtifactKind, GateStatus, LoadedRecord, PublishSection, PublishedArtifact, Record,
    RecordError,
};
use crate::step::Ui;
use crate::store::{PutOutcome, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "artifact `{name}` is not at {path}; publish from the directory the build wrote, or pass --record"
    )]
    MissingArtifact { name: String, path: PathBuf },
    #[error(
        "artifacts `{first}` and `{second}` would both be stored as `{file}`; a store keeps a \
         version's files side by side: give the builds' output files distinct names"
    )]
    SameFileName {
        first: String,
        second: String,
        file: String,
    },
    #[error(
        "artifact `{name}`: {path} is {actual} bytes, but the record says {recorded}; the file \
         changed after the build, or the record was edited: rebuild it"
    )]
    Size {
        name: String,
        path: PathBuf,
        actual: u64,
        recorded: u64,
    },
    #[error(
        "{image} is already in {store} with different content ({detail}); a published version is \
         never replaced: build and publish a new version"
    )]
    Republished {
        image: String,
        store: String,
        detail: String,
    },
}

impl PublishError {
    /// Whether this is the step's check failing (exit 1) rather than an error (exit 2).
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            Self::Republished { .. } | Self::Store(StoreError::Conflict { .. })
        )
    }
}

/// The scan gate: `Ok(override)` to go ahead, `Err(reason)` to refuse.
pub fn gate(record: &Record, override_reason: Option<&str>) -> Result<Option<String>, String> {
    let status = record.scan.as_ref().map(|s| s.status);
    match (status, override_reason) {
        (Some(GateStatus::Passed | GateStatus::Overridden), _) => Ok(None),
        (_, Some(reason)) => Ok(Some(reason.to_string())),
        (Some(GateStatus::Failed), None) => Err(format!(
            "{} failed its scan; fix the findings, or pass --override-gate REASON (recorded in the record)",
            record.id()
        )),
        (None, None) => Err(format!(
            "{} has no scan result; run imagepipe-scan first, or pass --override-gate REASON (recorded in the record)",
            record.id()
        )),
    }
}

/// The properties stored with every file (Artifactory `image.name`, `image.version`, …).
pub fn properties(
    record: &Record,
    gate_override: Option<&str>,
    build: Option<(&str, &str)>,
) -> Vec<(String, String)> {
    let scan = match record.scan.as_ref().map(|s| s.status) {
        Some(GateStatus::Passed) => "passed",
        Some(GateStatus::Failed) => "failed",
        Some(GateStatus::Overridden) => "overridden",
        None => "none",
    };
    let mut p = vec![
        ("image.name".to_string(), record.image.name.to_string()),
        (
            "image.version".to_string(),
            record.image.version.to_string(),
        ),
        (
            "image.parent".to_string(),
            record
                .parent
                .as_ref()
                .map_or_else(String::new, |p| format!("{}@{}", p.name, p.version)),
        ),
        (
            "git.commit".to_string(),
            record.source.commit.clone().unwrap_or_default(),
        ),
        ("scan.status".to_string(), scan.to_string()),
    ];
    if let Some(reason) = gate_override {
        p.push(("scan.override".to_string(), reason.to_string()));
    }
    if let Some((name, number)) = build {
        p.push(("build.name".to_string(), name.to_string()));
        p.push(("build.number".to_string(), number.to_string()));
    }
    p
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The record as stored.
    pub record: Record,
    pub record_url: String,
    pub record_sha256: Sha256Hex,
    /// Per file artifact: name, whether bytes were sent, and where it is.
    pub artifacts: Vec<(String, PutOutcome, String)>,
    /// The version was already completely published: nothing changed.
    pub already: bool,
}

/// Publishes the record read from `record_path` (artifacts relative to it) into `store`, and
/// adds the publish section to the local record too.
///
/// Every file is checked before anything is written: it is where the record says, once per
/// stored name, and of the recorded size; its digest is checked while it is copied. Writers of
/// the same version are serialised where the store can lock (a local store), and the stored
/// record is compared first: a version published with other content is refused (exit 1) with
/// nothing written. Where a store cannot lock, a publish that loses the race at the record
/// removes the files it stored, so the store never keeps a record whose files are not its own.
pub async fn publish(
    store: &dyn Store,
    loaded: &LoadedRecord,
    record_path: &Path,
    gate_override: Option<String>,
    build: Option<(&str, &str)>,
    build_info: bool,
    ui: &Ui,
) -> Result<Published, PublishError> {
    let local = &loaded.record;
    let id = local.id();
    let props = properties(local, gate_override.as_deref(), build);
    let files = local_files(local, record_path, &store.location())?;

    // The record as the store will hold it, worked out before anything is written.
    let mut stored = local.clone();
    let mut locations = Vec::new();
    for file in &files {
        if let Some(a) = stored.artifacts.iter_mut().find(|a| a.name == file.name)
            && let ArtifactKind::File(sf) = &mut a.kind
        {
            sf.path = file.stored_name.clone();
            locations.push(store.artifact_location(&id, sf));
        }
    }
    stored.publish = Some(PublishSection {
        store: store.location(),
        published_at: Utc::now(),
        artifacts: files
            .iter()
            .zip(&locations)
            .map(|(f, url)| PublishedArtifact {
                name: f.name.clone(),
                url: url.clone(),
                sha256: f.artifact.sha256,
            })
            .collect(),
        gate_override,
    });

    let _lock = store.lock_version(&id).await?;
    // A version whose record is already stored is complete: the same content (but for the time
    // it was published) is a no-op, anything else is refused before a byte is written.
    let already = match store.fetch_record(&id).await {
        Ok(existing) => {
            same_content(&stored, &existing.record, &id, store)?;
            // Published before: its files must still be what it says.
            store.verify(&id, &existing).await?;
            stored = existing.record;
            true
        }
        Err(StoreError::VersionNotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };

    let mut artifacts = Vec::new();
    if already {
        for (f, url) in files.iter().zip(&locations) {
            artifacts.push((f.name.clone(), PutOutcome::AlreadyPresent, url.clone()));
        }
    } else {
        let total: u64 = files.iter().map(|f| f.artifact.size).sum();
        let overall = ui.progress(&format!("publishing {id}"), Some(total));
        let mut done = 0u64;
        let mut stored_here = Vec::new();
        for (f, url) in files.iter().zip(&locations) {
            let base = done;
            let bar = ui.progress(&f.stored_name, Some(f.artifact.size));
            let outcome = store
                .put_artifact(&id, &f.path, f.artifact, &props, &|n| {
                    bar.set(n);
                    overall.set(base + n);
                })
                .await;
            bar.finish();
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    undo(store, &id, &stored_here).await;
                    return Err(e.into());
                }
            };
            if outcome == PutOutcome::Stored {
                stored_here.push(f.stored_name.clone());
            }
            done += f.artifact.size;
            overall.set(done);
            artifacts.push((f.name.clone(), outcome, url.clone()));
        }
        overall.finish();
        let bytes = stored.to_bytes();
        if let Err(e) = store.put_record(&id, &bytes, &props).await {
            // Another publish (of a store without a lock) stored a record meanwhile: the same
            // content is success; other content wins, and this run takes back its files.
            match store.fetch_record(&id).await {
                Ok(existing) => {
                    if let Err(lost) = same_content(&stored, &existing.record, &id, store) {
                        undo(store, &id, &stored_here).await;
                        return Err(lost);
                    }
                }
                Err(_) => {
                    undo(store, &id, &stored_here).await;
                    return Err(e.into());
                }
            }
        }
    }

    if build_info && let Some(build) = build {
        store.publish_build_info(&id, &stored, build).await?;
    }

    let mut updated = local.clone();
    updated.publish = stored.publish.clone();
    updated.write(record_path)?;
    Ok(Published {
        record_url: store.record_location(&id),
        record_sha256: if already {
            store.fetch_record(&id).await?.sha256
        } else {
            Sha256Hex::digest(&stored.to_bytes())
        },
        record: stored,
        artifacts,
        already,
    })
}

/// One file artifact to publish.
struct LocalFile<'a> {
    name: String,
    path: PathBuf,
    stored_name: String,
    artifact: &'a record::FileArtifact,
}

/// The record's files, checked before anything is written: present where the record says,
/// each stored name used once, and of the size the record gives.
fn local_files<'a>(
    local: &'a Record,
    record_path: &Path,
    store: &str,
) -> Result<Vec<LocalFile<'a>>, PublishError> {
    let dir = crate::fsutil::parent_dir(record_path);
    let mut files: Vec<LocalFile> = Vec::new();
    for a in &local.artifacts {
        let Some(f) = a.file() else { continue };
        let path = dir.join(&f.path);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
        let Some(meta) = meta else {
            return Err(PublishError::MissingArtifact {
                name: a.name.clone(),
                path,
            });
        };
        let stored_name = crate::store::stored_file_name(store, &path)?;
        if let Some(other) = files.iter().find(|o| o.stored_name == stored_name) {
            return Err(PublishError::SameFileName {
                first: other.name.clone(),
                second: a.name.clone(),
                file: stored_name,
            });
        }
        if meta.len() != f.size {
            return Err(PublishError::Size {
                name: a.name.clone(),
                path,
                actual: meta.len(),
                recorded: f.size,
            });
        }
        files.push(LocalFile {
            name: a.name.clone(),
            path,
            stored_name,
            artifact: f,
        });
    }
    Ok(files)
}

/// Whether `candidate` is what the store holds as `existing`, but for when it was published.
fn same_content(
    candidate: &Record,
    existing: &Record,
    id: &crate::image::ImageRef,
    store: &dyn Store,
) -> Result<(), PublishError> {
    let mut candidate = candidate.clone();
    if let (Some(p), Some(e)) = (candidate.publish.as_mut(), existing.publish.as_ref()) {
        p.published_at = e.published_at;
    }
    if &candidate == existing {
        return Ok(());
    }
    Err(PublishError::Republished {
        image: id.to_string(),
        store: store.location(),
        detail: describe_difference(existing, &candidate),
    })
}

/// Removes the files this publish stored, after it lost: nothing of it may stay beside another
/// publish's record. A store that cannot remove leaves them, unreferenced.
async fn undo(store: &dyn Store, id: &crate::image::ImageRef, names: &[String]) {
    for name in names {
        let _ = store.remove_artifact(id, name).await;
    }
}

fn describe_difference(existing: &Record, new: &Record) -> String {
    for a in &new.artifacts {
        match existing.artifacts.iter().find(|e| e.name == a.name) {
            None => return format!("artifact `{}` is new", a.name),
            Some(e) if e != a => {
                return match (e.file(), a.file()) {
                    (Some(ef), Some(af)) => format!(
                        "artifact `{}` ({}) differs: the store holds sha256 {}, this build {}",
                        a.name, af.path, ef.sha256, af.sha256
                    ),
                    _ => format!("artifact `{}` differs", a.name),
                };
            }
            Some(_) => {}
        }
    }
    "the records differ".to_string()
}

/// Reports a publish on every channel of the step contract.
pub fn report(ui: &Ui, p: &Published) -> std::io::Result<()> {
    let id = p.record.id();
    if p.already {
        ui.info(&format!(
            "{id} was already published in {}: nothing to do",
            p.record.publish.as_ref().map_or("", |s| s.store.as_str())
        ));
    }
    let mut rows = Vec::new();
    for (name, outcome, url) in &p.artifacts {
        let how = match outcome {
            PutOutcome::Stored => "stored",
            PutOutcome::AlreadyPresent => "already present",
            PutOutcome::ByChecksum => "by checksum",
        };
        ui.info(&format!("  {name:<12} {how:<15} {url}"));
        rows.push(format!("| `{name}` | {how} | `{url}` |"));
    }
    ui.info(&format!(
        "record {} (sha256 {})",
        p.record_url, p.record_sha256
    ));
    if let Some(reason) = p
        .record
        .publish
        .as_ref()
        .and_then(|s| s.gate_override.as_deref())
    {
        ui.warn(&format!("published without a passing scan: {reason}"));
    }
    ui.output("record-url", &p.record_url)?;
    ui.output("record-sha256", &p.record_sha256.to_string())?;
    let artifacts: Vec<serde_json::Value> = p
        .record
        .publish
        .iter()
        .flat_map(|s| &s.artifacts)
        .map(|a| serde_json::json!({ "name": a.name, "url": a.url, "sha256": a.sha256 }))
        .collect();
    ui.output(
        "artifacts",
        &serde_json::Value::Array(artifacts.clone()).to_string(),
    )?;
    ui.summary(&format!(
        "### imagepipe-publish: `{}` {}\n\nRecord: `{}`\n\n| artifact | transfer | location |\n| --- | --- | --- |\n{}\n",
        id.name,
        id.version,
        p.record_url,
        rows.join("\n")
    ))?;
    ui.json(&serde_json::json!({
        "image": id.name,
        "version": id.version.to_string(),
        "already_published": p.already,
        "record_url": p.record_url,
        "record_sha256": p.record_sha256,
        "artifacts": artifacts,
    }));
    Ok(())
}
