//! Scanning built images offline (`imagepipe-scan`, in progress): what is installed, which
//! known vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! So far: reading disk images in place (raw, qcow2, VMDK, OVA; GPT and MBR; ext2/3/4 with
//! fstab mounts), the inventory of a root filesystem (the OS and the dpkg and apk packages),
//! the version orderings every vulnerability range is evaluated with, and matching against an
//! offline OSV database with CVSS v3 scores, waivers, the gate, the reports (JSON, SARIF,
//! JUnit, Markdown), SBOMs (CycloneDX, SPDX) and the hardening policy. Not yet: LVM,
//! tarballs, rpm databases and CVSS v4.

pub mod disk;
pub mod inventory;
pub mod osv;
pub mod policy;
pub mod report;
pub mod rootfs;
pub mod sbom;
pub mod waiver;

use std::path::{Path, PathBuf};

use crate::hash::Sha256Hex;
use crate::record::{Format, GateStatus, Record, Report, ScanSection, SeverityCounts};
pub mod version;

/// A finding's severity, and the gate's threshold (`fail_on`); `Unknown` when neither a CVSS
/// vector nor the database says, never "none".
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    #[default]
    High,
    Critical,
}

impl Severity {
    /// CVSS's qualitative rating of a base score.
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Unknown,
        }
    }

    /// A database's own word (GHSA `severity`, Debian `urgency`, …).
    pub fn from_word(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "critical" => Some(Self::Critical),
            "high" | "important" => Some(Self::High),
            "medium" | "moderate" => Some(Self::Medium),
            "low" | "negligible" | "unimportant" => Some(Self::Low),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Usage(String),
    #[error("{image}: {source}")]
    Image {
        image: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    #[error(transparent)]
    Osv(#[from] osv::OsvError),
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error(transparent)]
    Waiver(#[from] waiver::WaiverError),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to scan and how to judge it.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub osv_db: PathBuf,
    pub fail_on: Severity,
    /// The artifact to scan, by name; default: the record's one disk image.
    pub artifact: Option<String>,
    /// The image's template, relative to the repository, for SARIF locations.
    pub template: String,
    /// The image's waivers file.
    pub waivers: Option<PathBuf>,
    /// The image's own policy rule files, and the baseline rules it switches off.
    pub policy: Vec<PathBuf>,
    pub disable_rules: Vec<String>,
}

/// Scans the disk image of the record at `record_path`, writes the reports beside it and the
/// result into the record. Returns the scan and the reports written.
pub fn scan_record(
    record_path: &Path,
    options: &ScanOptions,
) -> Result<(report::Scan, Vec<Report>), ScanError> {
    let mut record = Record::read(record_path)?.record;
    let dir = crate::fsutil::parent_dir(record_path).to_path_buf();
    let disks: Vec<_> = record
        .artifacts
        .iter()
        .filter(|a| match &options.artifact {
            Some(name) => &a.name == name,
            None => a.file().is_some_and(|f| {
                matches!(
                    f.format,
                    Format::Raw | Format::Qcow2 | Format::Vmdk | Format::Ova
                )
            }),
        })
        .filter_map(|a| a.file().map(|f| (a.name.clone(), f.path.clone(), f.sha256)))
        .collect();
    let (name, file, sha256) = match disks.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(ScanError::Usage(format!(
                "{} has no disk image artifact (raw, qcow2, VMDK or OVA){}; name one with --artifact",
                record.id(),
                options
                    .artifact
                    .as_ref()
                    .map(|a| format!(" named `{a}`"))
                    .unwrap_or_default()
            )));
        }
        // Disk images of one build hold the same system: the first is as good as any.
        [first, ..] => first.clone(),
    };
    let image_path = dir.join(&file);
    let tree = rootfs::ImageTree::open(&image_path).map_err(|source| ScanError::Image {
        image: image_path.clone(),
        source,
    })?;
    let (os, packages) = inventory::from_tree(&tree)?;
    let ecosystem = os.ecosystem.clone().ok_or_else(|| {
        ScanError::Usage(format!(
            "{}: the OS `{}` {} has no OSV ecosystem this release knows (Debian, Ubuntu, Alpine, AlmaLinux, Rocky Linux, RHEL)",
            image_path.display(),
            os.id,
            os.version_id
        ))
    })?;
    let db = osv::Database::load_dir(&options.osv_db)?;
    let rules = policy::rules(&options.policy, &options.disable_rules)?;
    let policy_results = policy::evaluate(&rules, &tree, &packages)?;
    let mut findings = db.matches(&ecosystem, &packages);
    let waivers = match &options.waivers {
        Some(path) => waiver::load(path)?,
        None => Vec::new(),
    };
    let expired = waiver::apply(&waivers, &mut findings, chrono::Utc::now().date_naive());
    let mut scan = report::Scan {
        image: record.image.name.to_string(),
        version: record.image.version.to_string(),
        artifact: name,
        template: options.template.clone(),
        os,
        packages,
        findings,
        fail_on: options.fail_on,
        passed: true,
        database_records: db.records,
        database_newest: db.newest,
        bytes_read: tree.bytes_read(),
        disk_size: tree.disk_len(),
        dir: dir.clone(),
        expired_waivers: expired,
        policy: policy_results,
    };
    scan.passed = !scan.findings.iter().any(|f| scan.gates(f)) && scan.policy_failures() == 0;

    let mut counts = SeverityCounts::default();
    for f in scan.findings.iter().filter(|f| f.waived.is_none()) {
        match f.severity {
            Severity::Critical => counts.critical += 1,
            Severity::High => counts.high += 1,
            Severity::Medium => counts.medium += 1,
            Severity::Low => counts.low += 1,
            Severity::Unknown => counts.unknown += 1,
        }
    }
    let pretty = |v: &serde_json::Value| {
        let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
        b.push(b'\n');
        b
    };
    let sha256 = sha256.to_string();
    let subject = sbom::Subject {
        name: &scan.image,
        version: &scan.version,
        file: &file,
        sha256: &sha256,
    };
    let outputs: [(&str, &str, Vec<u8>); 6] = [
        (
            "json",
            "scan.json",
            pretty(&serde_json::to_value(&scan).unwrap_or_default()),
        ),
        (
            "cyclonedx",
            "sbom.cdx.json",
            pretty(&sbom::cyclonedx(&subject, &scan.os, &scan.packages)),
        ),
        (
            "spdx",
            "sbom.spdx.json",
            pretty(&sbom::spdx(&subject, &scan.os, &scan.packages)),
        ),
        ("sarif", "scan.sarif", pretty(&report::sarif(&scan))),
        ("junit", "scan.junit.xml", report::junit(&scan).into_bytes()),
        ("markdown", "scan.md", report::markdown(&scan).into_bytes()),
    ];
    let mut reports = Vec::new();
    for (kind, file, bytes) in outputs {
        let path = dir.join(file);
        crate::fsutil::write_atomic(&path, &bytes).map_err(|source| ScanError::Write {
            path: path.clone(),
            source,
        })?;
        reports.push(Report {
            kind: kind.into(),
            path: file.into(),
            sha256: Sha256Hex::digest(&bytes),
        });
    }
    record.scan = Some(ScanSection {
        status: if scan.passed {
            GateStatus::Passed
        } else {
            GateStatus::Failed
        },
        scanned_at: chrono::Utc::now(),
        vulnerabilities: counts,
        policy_failures: scan.policy_failures() as u32,
        waived: scan.findings.iter().filter(|f| f.waived.is_some()).count() as u32,
        reports: reports.clone(),
    });
    record.write(record_path)?;
    Ok((scan, reports))
}
