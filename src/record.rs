//! The image record: one JSON document per image version that every step reads and adds to.
//!
//! Readers are strict (unknown fields and unknown schema versions are refused) because a record
//! is the contract between loosely coupled CI and CD jobs that may run different imagepipe
//! releases: silently dropping a field would let a later step act on a half-understood record.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use semver::Version;
use serde::{Deserialize, Serialize};

pub use crate::format::Format;
use crate::hash::Sha256Hex;
use crate::image::{ImageName, ImageRef};

/// The schema version this release writes and the only one it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// File name of the record beside the artifacts in a store.
pub const FILE_NAME: &str = "imagepipe-record.json";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read image record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write image record {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "image record {origin} has schema version {found}, but this imagepipe reads version \
         {SCHEMA_VERSION}; use the imagepipe release that wrote it, or rebuild the image"
    )]
    SchemaVersion {
        origin: String,
        found: serde_json::Value,
    },
    #[error("image record {origin} is not valid: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "imagepipe image record",
    description = "One image version: what was built, from what, and what each step did with it."
)]
pub struct Record {
    /// Always 1 for this release.
    pub schema_version: u32,
    pub image: ImageId,
    /// The image this one was built on; absent for a root (vendor) image.
    pub parent: Option<ParentId>,
    pub source: Source,
    pub build: BuildInfo,
    pub artifacts: Vec<Artifact>,
    /// Written by `imagepipe-scan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSection>,
    /// Written by `imagepipe-publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSection>,
    /// Written by `imagepipe-replicate-check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationSection>,
    /// Written by `imagepipe-import`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportSection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageId {
    pub name: ImageName,
    #[schemars(with = "String")]
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentId {
    pub name: ImageName,
    #[schemars(with = "String")]
    pub version: Version,
    /// SHA-256 of the parent's record as the store held it when this image was built.
    pub record_sha256: Sha256Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Full git commit id of the build code, when it was built from a git checkout.
    pub commit: Option<String>,
    /// The git tag that named this version, when built from one.
    pub tag: Option<String>,
    /// True when the work tree had uncommitted changes: such a build is not reproducible.
    #[serde(default)]
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildInfo {
    pub packer_version: String,
    /// Packer's `packer_run_uuid` for this build.
    pub run_id: String,
    /// Template path relative to `imagepipe.toml`.
    pub template: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Version of the imagepipe that built it.
    pub imagepipe_version: String,
}

/// One thing Packer produced: a file with its digest, or an identifier for artifacts that are
/// not files (an AMI, a managed image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "RawArtifact", into = "RawArtifact")]
#[schemars(with = "RawArtifact")]
pub struct Artifact {
    pub name: String,
    pub build: String,
    pub kind: ArtifactKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactKind {
    File(FileArtifact),
    /// Not a file, e.g. `us-east-1:ami-0abc` for an AMI.
    Remote {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArtifact {
    /// Path relative to the record's directory (or absolute when outside it).
    pub path: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    pub format: Format,
    pub role: Role,
}

/// What a file is to the image: the disk (what a child builds on, a scan reads and a library
/// imports), or a file beside it.
// Declared in the order a record lists its artifacts: the derived `Ord` ranks them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The image itself: a disk image (raw, qcow2, VMDK, VHD), an OVA, a box, an ISO, or a
    /// root filesystem tarball.
    Disk,
    /// An OVF descriptor (`.ovf`) of a loose OVF export.
    Descriptor,
    /// An OVF manifest (`.mf`) of a loose OVF export.
    Manifest,
    /// UEFI variable store: the qemu plugin's `efivars.fd`, vSphere's `.nvram`.
    Nvram,
    /// Anything else a builder left in its output (a log).
    Other,
}

impl Role {
    /// What a file a build produced is, from its name, its format and the builder type.
    ///
    /// - `efivars.fd` (the qemu plugin copies the firmware's variable store there when
    ///   `efi_boot` is on), any `*.fd` and `*.nvram` (vSphere's `image_files`): NVRAM;
    /// - OVF descriptors and manifests by format;
    /// - disk and package formats: the disk;
    /// - a qemu build's file without an extension: the disk (its `vm_name` defaults to
    ///   `packer-<name>`, and a raw disk has no magic bytes to tell it by);
    /// - the rest: other.
    pub fn classify(builder_type: &str, file_name: &str, format: Format) -> Self {
        let lower = file_name.to_ascii_lowercase();
        let ext = Path::new(&lower).extension().and_then(|e| e.to_str());
        if lower == "efivars.fd" || matches!(ext, Some("fd" | "nvram")) {
            return Self::Nvram;
        }
        match format {
            Format::Ovf => Self::Descriptor,
            Format::Mf => Self::Manifest,
            Format::Ova
            | Format::Vmdk
            | Format::Qcow2
            | Format::Raw
            | Format::Vhd
            | Format::Vhdx
            | Format::Iso
            | Format::Tar
            | Format::Box => Self::Disk,
            Format::Other if builder_type == "qemu" && ext.is_none() => Self::Disk,
            Format::Other => Self::Other,
        }
    }
}

impl FileArtifact {
    /// The file's name: how stores, which keep a version's files side by side, name it.
    pub fn file_name(&self) -> &str {
        Path::new(&self.path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.path)
    }
}

impl Artifact {
    pub fn file(&self) -> Option<&FileArtifact> {
        match &self.kind {
            ArtifactKind::File(f) => Some(f),
            ArtifactKind::Remote { .. } => None,
        }
    }

    /// The file's role; `None` for an artifact that is not a file.
    pub fn role(&self) -> Option<Role> {
        self.file().map(|f| f.role)
    }

    /// Where the artifact comes in a record, in [`Role`]'s declaration order: the disk first,
    /// so that a child's `imagepipe_parent_artifact` (the first artifact) is the disk. An
    /// artifact that is not a file (an AMI) is the image as much as a disk is.
    pub fn rank(&self) -> Role {
        self.role().unwrap_or(Role::Disk)
    }
}

/// An artifact as written: flat, so `jq .artifacts[].sha256` works, with either the file fields
/// or `id`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["path", "size", "sha256", "format"], "not": { "required": ["id"] } },
    { "required": ["id"], "not": { "anyOf": [{ "required": ["path"] }, { "required": ["sha256"] }, { "required": ["role"] }] } }
]))]
struct RawArtifact {
    /// Logical name, unique within the record: the Packer build's name, plus the file name when
    /// the build produced several files.
    name: String,
    /// Packer build that produced it (`<builder type>.<name>`).
    build: String,
    /// File artifacts: path relative to the record's directory (absolute when outside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<Sha256Hex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
    /// File artifacts: `disk`, `descriptor`, `manifest`, `nvram` or `other`. Records written
    /// before roles existed lack it; it is then worked out from the file's name and format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// Artifacts that are not files: the builder's id, e.g. `us-east-1:ami-0abc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

impl TryFrom<RawArtifact> for Artifact {
    type Error = String;
    fn try_from(r: RawArtifact) -> Result<Self, String> {
        let kind = match (r.path, r.size, r.sha256, r.format, r.role, r.id) {
            (Some(path), Some(size), Some(sha256), Some(format), role, None) => {
                let role = role.unwrap_or_else(|| {
                    let file = Path::new(&path)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(&path);
                    // `build` was `<type>.<source>` before roles existed.
                    let builder_type = r.build.split('.').next().unwrap_or_default();
                    Role::classify(builder_type, file, format)
                });
                ArtifactKind::File(FileArtifact {
                    path,
                    size,
                    sha256,
                    format,
                    role,
                })
            }
            (None, None, None, None, None, Some(id)) if !id.is_empty() => {
                ArtifactKind::Remote { id }
            }
            _ => {
                return Err(format!(
                    "artifact `{}` needs either all of `path`, `size`, `sha256`, `format` (and optionally `role`) or only `id`",
                    r.name
                ));
            }
        };
        Ok(Artifact {
            name: r.name,
            build: r.build,
            kind,
        })
    }
}

impl From<Artifact> for RawArtifact {
    fn from(a: Artifact) -> Self {
        let mut raw = RawArtifact {
            name: a.name,
            build: a.build,
            path: None,
            size: None,
            sha256: None,
            format: None,
            role: None,
            id: None,
        };
        match a.kind {
            ArtifactKind::File(f) => {
                raw.path = Some(f.path);
                raw.size = Some(f.size);
                raw.sha256 = Some(f.sha256);
                raw.format = Some(f.format);
                raw.role = Some(f.role);
            }
            ArtifactKind::Remote { id } => raw.id = Some(id),
        }
        raw
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateStatus {
    Passed,
    Failed,
    /// Failed, but let through by an explicit override that is recorded.
    Overridden,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub unknown: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanSection {
    pub status: GateStatus,
    pub scanned_at: DateTime<Utc>,
    /// Vulnerabilities (advisories) that count, not waived, per severity: each once, at its
    /// highest severity, however many installed packages it affects.
    pub vulnerabilities: SeverityCounts,
    pub policy_failures: u32,
    /// Vulnerabilities whose every finding is waived.
    pub waived: u32,
    pub reports: Vec<Report>,
    /// Every finding of this scan, by advisory and package: what a later rescan of the
    /// published version compares with to tell new findings from known ones. Absent in records
    /// written before rescans existed (a rescan then knows no earlier findings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<ScanFinding>>,
}

/// One finding of a scan, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanFinding {
    /// The advisory's OSV id.
    pub id: String,
    /// The installed (binary) package it affects.
    pub package: String,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    pub severity: String,
    /// Accepted by a waiver at the time of the scan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// `json`, `sarif`, `junit`, `cyclonedx`, `spdx`, `markdown`.
    pub kind: String,
    pub path: String,
    pub sha256: Sha256Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    /// The store, without credentials.
    pub store: String,
    pub published_at: DateTime<Utc>,
    pub artifacts: Vec<PublishedArtifact>,
    /// Set when the scan gate was overridden to publish; says who asked and why.
    pub gate_override: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedArtifact {
    pub name: String,
    pub url: String,
    pub sha256: Sha256Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    pub checked_at: DateTime<Utc>,
    pub sites: Vec<SiteReplication>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteReplication {
    pub site: String,
    /// `present`, `missing`, `mismatched`, `unreachable`, `unauthorised` or `stale`.
    pub verdict: String,
    /// Seconds from the end of the build to the check that found the site complete.
    pub age_seconds: Option<u64>,
    pub sla_breached: bool,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    pub sites: Vec<SiteImport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteImport {
    pub site: String,
    pub library: String,
    pub item: String,
    pub item_version: String,
    pub imported_at: DateTime<Utc>,
    /// Whether the OVA's manifest checked each of its files; without one (imported with
    /// `--allow-missing-manifest`) only the whole OVA's digest was checked.
    #[serde(default = "yes")]
    pub manifest: bool,
    /// The deploy check of this import (`imagepipe-import --deploy-check`), when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_check: Option<DeployCheck>,
}

/// A deploy check: a throw-away VM deployed from the imported library item, powered on,
/// watched until it ran, and deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployCheck {
    pub result: DeployResult,
    /// The throw-away VM's name (`imagepipe-deploy-check-…`).
    pub vm_name: String,
    pub checked_at: DateTime<Utc>,
    /// vCenter's reason when the check did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployResult {
    /// The VM deployed and was powered on; it is deleted again.
    Running,
    /// vCenter refused to deploy the item (the descriptor, or what it asks for).
    Refused,
    /// The VM deployed but did not run within the wait.
    NotRunning,
    /// The check could not be carried out (vCenter unreachable, interrupted, the VM could not
    /// be deleted); the reason says which.
    Error,
}

impl DeployResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Refused => "refused",
            Self::NotRunning => "not_running",
            Self::Error => "error",
        }
    }
}

fn yes() -> bool {
    true
}

/// A record together with the exact bytes it was read from, whose digest ancestry uses.
#[derive(Debug, Clone)]
pub struct LoadedRecord {
    pub record: Record,
    pub sha256: Sha256Hex,
}

impl Record {
    pub fn id(&self) -> ImageRef {
        ImageRef {
            name: self.image.name.clone(),
            version: self.image.version.clone(),
        }
    }

    /// Parses and checks a record; `origin` names it in errors (a path or a URL).
    pub fn from_slice(bytes: &[u8], origin: &str) -> Result<Self, RecordError> {
        let invalid = |message: String| RecordError::Invalid {
            origin: origin.to_string(),
            message,
        };
        // Look at the version first, so that a future record fails on its version and not on the
        // first field this release does not know.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            Some(v) if !v.is_u64() => {
                return Err(invalid(format!(
                    "`schema_version` is {v}, not a number; imagepipe records have \
                     `\"schema_version\": {SCHEMA_VERSION}`"
                )));
            }
            Some(v) => {
                return Err(RecordError::SchemaVersion {
                    origin: origin.to_string(),
                    found: v.clone(),
                });
            }
            None => {
                return Err(invalid(
                    "`schema_version` is missing; this is not an imagepipe record".into(),
                ));
            }
        }
        let record: Record = serde_path_to_error(bytes).map_err(invalid)?;
        record.check().map_err(invalid)?;
        Ok(record)
    }

    pub fn read(path: &Path) -> Result<LoadedRecord, RecordError> {
        let bytes = std::fs::read(path).map_err(|source| RecordError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let record = Self::from_slice(&bytes, &path.display().to_string())?;
        Ok(LoadedRecord {
            record,
            sha256: Sha256Hex::digest(&bytes),
        })
    }

    /// The canonical serialisation: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a record always serialises");
        out.push(b'\n');
        out
    }

    /// Writes the record atomically (temp file, then rename) and returns its digest. The
    /// fields that hold text from outside (a server's message, a URL, a reason) are scrubbed of
    /// secrets first; the rest is imagepipe's own vocabulary, which a short secret must not
    /// mangle.
    pub fn write(&self, path: &Path) -> Result<Sha256Hex, RecordError> {
        let mut clean = self.clone();
        clean.scrub();
        let bytes = clean.to_bytes();
        crate::fsutil::write_atomic(path, &bytes).map_err(|source| RecordError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Sha256Hex::digest(&bytes))
    }

    /// Updates the local record at `path` with `change`, when it is there and is the record of
    /// `image` (a step pointed at another version's record leaves it alone). Returns whether
    /// the record was written. The steps that add their part to the record after working on
    /// the published version (import, replicate-check) go through here.
    pub fn update_local(
        path: &Path,
        image: &ImageRef,
        change: impl FnOnce(&mut Record),
    ) -> Result<bool, RecordError> {
        if !path.is_file() {
            return Ok(false);
        }
        let mut local = Self::read(path)?.record;
        if &local.id() != image {
            return Ok(false);
        }
        change(&mut local);
        local.write(path)?;
        Ok(true)
    }

    /// Masks registered secrets in the fields that can carry text from outside.
    fn scrub(&mut self) {
        let scrub = |s: &mut String| {
            if let std::borrow::Cow::Owned(clean) = crate::secret::scrub(s) {
                *s = clean;
            }
        };
        if let Some(p) = &mut self.publish {
            scrub(&mut p.store);
            p.gate_override.iter_mut().for_each(scrub);
            p.artifacts.iter_mut().for_each(|a| scrub(&mut a.url));
        }
        if let Some(r) = &mut self.replication {
            for site in &mut r.sites {
                site.detail.iter_mut().for_each(scrub);
            }
        }
        if let Some(i) = &mut self.import {
            for s in &mut i.sites {
                scrub(&mut s.library);
                if let Some(d) = &mut s.deploy_check {
                    d.reason.iter_mut().for_each(scrub);
                }
            }
        }
    }

    /// Rules the types cannot express.
    fn check(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for a in &self.artifacts {
            if a.name.is_empty() {
                return Err("an artifact has an empty `name`".into());
            }
            if !names.insert(a.name.as_str()) {
                return Err(format!("artifact name `{}` appears twice", a.name));
            }
        }
        if self.build.finished_at < self.build.started_at {
            return Err("`build.finished_at` is before `build.started_at`".into());
        }
        if self
            .parent
            .as_ref()
            .is_some_and(|p| p.name == self.image.name)
        {
            return Err("an image cannot be its own parent".into());
        }
        Ok(())
    }

    /// The JSON Schema of the record, as published in `docs/record.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        let mut schema =
            serde_json::to_value(schemars::schema_for!(Record)).expect("schema serialises");
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                "https://imagepipe.dev/schemas/record-v1.json".into(),
            );
            // Pin the version in the schema so validators refuse other versions too.
            if let Some(p) = obj
                .get_mut("properties")
                .and_then(|p| p.get_mut("schema_version"))
            {
                *p = serde_json::json!({ "const": SCHEMA_VERSION, "description": "Always 1 for this release." });
            }
        }
        schema
    }
}

/// Deserialises with the JSON path of the first bad field in the message.
fn serde_path_to_error(bytes: &[u8]) -> Result<Record, String> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let result = Record::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
    result.map_err(|e| {
        let path = track.path().to_string();
        if path == "." {
            e.to_string()
        } else {
            format!("at `{path}`: {e}")
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Record {
            schema_version: SCHEMA_VERSION,
            image: ImageId {
                name: "global/debian-12".parse().unwrap(),
                version: Version::new(1, 4, 0),
            },
            parent: Some(ParentId {
                name: "vendor/debian-12".parse().unwrap(),
                version: Version::new(12, 8, 0),
                record_sha256: Sha256Hex::digest(b"parent"),
            }),
            source: Source {
                commit: Some("a".repeat(40)),
                tag: Some("global/debian-12/v1.4.0".into()),
                dirty: false,
            },
            build: BuildInfo {
                packer_version: "1.6.6".into(),
                run_id: "429189a4-5eb0-0f42-c802-afc01f8bf2f4".into(),
                template: "images/global".into(),
                started_at: t,
                finished_at: t,
                imagepipe_version: "0.1.0".into(),
            },
            artifacts: vec![
                Artifact {
                    name: "disk".into(),
                    build: "qemu.disk".into(),
                    kind: ArtifactKind::File(FileArtifact {
                        path: "disk.qcow2".into(),
                        size: 3,
                        sha256: Sha256Hex::digest(b"abc"),
                        format: Format::Qcow2,
                        role: Role::Disk,
                    }),
                },
                Artifact {
                    name: "ami".into(),
                    build: "amazon-ebs.x".into(),
                    kind: ArtifactKind::Remote {
                        id: "us-east-1:ami-0abc".into(),
                    },
                },
            ],
            scan: None,
            publish: None,
            replication: None,
            import: None,
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let back = Record::from_slice(&r.to_bytes(), "test").unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(v["artifacts"][0]["format"], "qcow2");
        assert_eq!(v["artifacts"][0]["role"], "disk");
        assert_eq!(v["artifacts"][1]["id"], "us-east-1:ami-0abc");
        assert!(v["artifacts"][1].get("role").is_none());
    }

    #[test]
    fn records_without_roles_get_them_from_name_and_format() {
        // A qemu build's record from before roles: the manifest listed efivars.fd first.
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        let file = |name: &str, format: &str| {
            serde_json::json!({"name": format!("vm/{name}"), "build": "qemu.vm", "path": name,
                "size": 3, "sha256": Sha256Hex::digest(b"abc").to_string(), "format": format})
        };
        v["artifacts"] = serde_json::json!([
            file("efivars.fd", "other"),
            file("packer-vm", "other"),
            file("vm.ovf", "ovf"),
            file("vm.mf", "mf"),
            file("vm.log", "other"),
        ]);
        let r = Record::from_slice(v.to_string().as_bytes(), "old.json").unwrap();
        let roles: Vec<_> = r.artifacts.iter().map(|a| a.role().unwrap()).collect();
        assert_eq!(
            roles,
            [
                Role::Nvram,
                Role::Disk,
                Role::Descriptor,
                Role::Manifest,
                Role::Other
            ]
        );
        let mut ranked = r.artifacts.clone();
        ranked.sort_by_key(Artifact::rank);
        assert_eq!(ranked[0].name, "vm/packer-vm");
        // A role on an artifact that is not a file is refused.
        v["artifacts"] = serde_json::json!([{"name": "ami", "build": "amazon-ebs.x", "id": "ami-1", "role": "disk"}]);
        let err = Record::from_slice(v.to_string().as_bytes(), "r.json").unwrap_err();
        assert!(err.to_string().contains("only `id`"), "{err}");
    }

    #[test]
    fn roles_by_builder_name_and_format() {
        let c = Role::classify;
        assert_eq!(c("qemu", "efivars.fd", Format::Other), Role::Nvram);
        assert_eq!(c("qemu", "efivars.fd", Format::Qcow2), Role::Nvram);
        assert_eq!(c("vsphere-iso", "vm.nvram", Format::Other), Role::Nvram);
        assert_eq!(c("qemu", "packer-vm", Format::Other), Role::Disk);
        assert_eq!(c("qemu", "vm.log", Format::Other), Role::Other);
        assert_eq!(c("file", "disk-a", Format::Other), Role::Other);
        assert_eq!(c("vsphere-iso", "vm-disk-0.vmdk", Format::Vmdk), Role::Disk);
        assert_eq!(c("vsphere-iso", "vm.ovf", Format::Ovf), Role::Descriptor);
        assert_eq!(c("vsphere-iso", "vm.mf", Format::Mf), Role::Manifest);
        assert_eq!(c("file", "x.ova", Format::Ova), Role::Disk);
    }

    #[test]
    fn refuses_other_schema_versions() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["schema_version"] = "1".into();
        let err = Record::from_slice(v.to_string().as_bytes(), "r.json").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image record r.json is not valid: `schema_version` is \"1\", not a number; imagepipe records have `\"schema_version\": 1`"
        );
        v["schema_version"] = 2.into();
        v["new_field"] = true.into();
        let err = Record::from_slice(v.to_string().as_bytes(), "r.json").unwrap_err();
        assert!(matches!(err, RecordError::SchemaVersion { .. }), "{err}");
        assert!(err.to_string().contains("schema version 2"), "{err}");
    }

    #[test]
    fn refuses_bad_fields_with_their_path() {
        let good: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        type Mutation<'a> = (&'a dyn Fn(&mut serde_json::Value), &'a str);
        let cases: [Mutation; 6] = [
            (
                &|v| v["image"]["version"] = "1.4".into(),
                "at `image.version`",
            ),
            (
                &|v| v["artifacts"][0]["sha256"] = "xyz".into(),
                "at `artifacts[0]",
            ),
            (&|v| v["surprise"] = 1.into(), "unknown field `surprise`"),
            (
                &|v| v["image"]["name"] = "Bad Name".into(),
                "at `image.name`",
            ),
            (
                &|v| v["artifacts"][1]["name"] = "disk".into(),
                "artifact name `disk` appears twice",
            ),
            (
                &|v| {
                    v.as_object_mut().unwrap().remove("schema_version");
                },
                "`schema_version` is missing",
            ),
        ];
        for (mutate, want) in cases {
            let mut v = good.clone();
            mutate(&mut v);
            let err = Record::from_slice(v.to_string().as_bytes(), "r.json")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "want {want:?} in {err}");
        }
        assert!(
            Record::from_slice(b"\x00garbage", "r.json")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }

    #[test]
    fn schema_in_docs_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/record.schema.json");
        let want = serde_json::to_string_pretty(&Record::json_schema()).unwrap() + "\n";
        if std::env::var_os("IMAGEPIPE_UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/record.schema.json is out of date; run with IMAGEPIPE_UPDATE_SCHEMA=1"
        );
    }
}
