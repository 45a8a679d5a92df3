//! Scanning built images offline (`imagepipe-scan`): what is installed, which known
//! vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! The image is read in place ([`disk`], [`lvm`], [`rootfs`]): raw, qcow2, VMDK, OVA; GPT and
//! MBR; LVM linear and striped volumes; ext2/3/4 and XFS (`imagepipe-xfs`) with fstab mounts;
//! or a root filesystem directory or tarball. The [`inventory`] (the OS and the dpkg, [`rpm`]
//! and apk packages) is matched against an offline [`osv`] database with the distributions'
//! own [`version`] orderings; the gate, [`waiver`]s, the hardening [`policy`], the [`report`]s and [`sbom`]s follow.
//!
//! A Windows image ([`windows`]) is read the same way up to its NTFS OS volume; its inventory
//! comes from the registry, its advisories from Microsoft's CVRF and CSAF documents, and its
//! hardening rules are the baseline's Windows ones.

pub mod disk;
mod filesystem;
pub mod inventory;
pub mod lvm;
pub mod osv;
pub mod policy;
pub mod report;
pub mod rootfs;
pub mod rpm;
pub mod sbom;
pub mod version;
pub mod waiver;
pub mod windows;

use std::path::{Path, PathBuf};

use imagepipe::hash::Sha256Hex;
use imagepipe::record::{Format, GateStatus, Record, Report, Role, ScanSection, SeverityCounts};

pub use imagepipe::severity::Severity;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    StaleDatabase(String),
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
    Msrc(#[from] windows::msrc::MsrcError),
    #[error(transparent)]
    Record(#[from] imagepipe::record::RecordError),
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
    /// A directory of OSV JSON records and `all.zip` dumps, or one zip (Linux images).
    pub osv_db: Option<PathBuf>,
    /// A directory of Microsoft's CVRF and CSAF 2.0 documents (Windows images).
    pub msrc_db: Option<PathBuf>,
    /// A database whose newest record is older is stale: a warning, or with `stale_db_fails`
    /// an error before anything is scanned.
    pub max_db_age: std::time::Duration,
    pub stale_db_fails: bool,
    pub fail_on: Severity,
    /// The artifact to scan, by name; default: the record's one disk image.
    pub artifact: Option<String>,
    /// Scan this instead of an artifact: a disk image, a root filesystem directory or tarball.
    pub input: Option<PathBuf>,
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
    let dir = imagepipe::fsutil::parent_dir(record_path).to_path_buf();
    let fresh = |name: &str, path: &Path, newest: Option<chrono::DateTime<chrono::Utc>>| {
        if !options.stale_db_fails {
            return Ok(());
        }
        let age = newest.map(|n| (chrono::Utc::now() - n).to_std().unwrap_or_default());
        if age.is_none_or(|a| a > options.max_db_age) {
            return Err(ScanError::StaleDatabase(format!(
                "{}: the {name} database's newest record is {}, older than {}; refresh the database (or let a stale one only warn: --stale-db warn)",
                path.display(),
                newest
                    .map(|n| n.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| "missing (no records)".into()),
                humantime::format_duration(options.max_db_age)
            )));
        }
        Ok(())
    };
    let db = match &options.osv_db {
        Some(path) => {
            let db = osv::Database::load(path)?;
            fresh("OSV", path, db.newest)?;
            Some(db)
        }
        None => None,
    };
    let (name, image_path, sha256) = match &options.input {
        Some(input) => {
            let sha256 = if input.is_file() {
                let digest = imagepipe::hash::hash_file(input, &|_| {}).map_err(|source| {
                    ScanError::Image {
                        image: input.clone(),
                        source,
                    }
                })?;
                Some(digest.sha256.to_string())
            } else {
                None
            };
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| input.display().to_string());
            (name, input.clone(), sha256)
        }
        None => {
            let (name, file, sha256) = artifact(&record, options.artifact.as_deref())?;
            (name, dir.join(file), Some(sha256.to_string()))
        }
    };
    let tree = rootfs::open(&image_path).map_err(|source| ScanError::Image {
        image: image_path.clone(),
        source,
    })?;
    let windows = windows::inventory(tree.as_ref())?.map(|(inventory, _)| inventory);
    let (os, packages, mut findings, database, records, newest) = match &windows {
        Some(inv) => {
            let path = options.msrc_db.as_ref().ok_or_else(|| {
                ScanError::Usage(format!(
                    "{} is a Windows image: say where Microsoft's security update documents are: --msrc-db PATH (a directory of CVRF or CSAF 2.0 JSON documents)",
                    image_path.display()
                ))
            })?;
            let db = windows::msrc::Database::load(path)?;
            fresh("MSRC", path, db.newest)?;
            let product = inv.os.product.clone().ok_or_else(|| {
                ScanError::Usage(format!(
                    "{}: `{}` build {} ({}) is not a Windows release this scan knows the security update product of",
                    image_path.display(),
                    inv.os.product_name,
                    inv.os.build,
                    inv.os.installation_type
                ))
            })?;
            let (os, packages) = inv.as_os_and_packages();
            let findings = db.matches(&product, &inv.os.build);
            (os, packages, findings, "MSRC", db.records, db.newest)
        }
        None => {
            let (os, packages) = inventory::from_tree(tree.as_ref())?;
            let db = db.ok_or_else(|| {
                ScanError::Usage(format!(
                    "{} is a Linux image: say where the OSV database is: --osv-db PATH (a directory of OSV JSON records or all.zip dumps)",
                    image_path.display()
                ))
            })?;
            let ecosystem = os.ecosystem.clone().ok_or_else(|| {
                ScanError::Usage(format!(
                    "{}: the OS `{}` {} has no OSV ecosystem this release knows (Debian, Ubuntu, Alpine, AlmaLinux, Rocky Linux, RHEL)",
                    image_path.display(),
                    os.id,
                    os.version_id
                ))
            })?;
            let findings = db.matches(&ecosystem, &packages);
            (os, packages, findings, "OSV", db.records, db.newest)
        }
    };
    let platform = if windows.is_some() {
        policy::Platform::Windows
    } else {
        policy::Platform::Linux
    };
    let mut rules = policy::rules(&options.policy, &options.disable_rules)?;
    rules.retain(|r| r.os == platform);
    let policy_results = policy::evaluate(&rules, tree.as_ref(), &packages)?;
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
        database: database.into(),
        database_records: records,
        database_newest: newest,
        windows,
        bytes_read: tree.bytes_read(),
        disk_size: tree.size(),
        dir: dir.clone(),
        expired_waivers: expired,
        policy: policy_results,
    };
    scan.passed = !scan.findings.iter().any(|f| scan.gates(f)) && scan.policy_failures() == 0;

    // A vulnerability is counted once, however many installed packages it affects: per
    // advisory id, at the highest severity it has among its findings.
    let mut by_id: std::collections::BTreeMap<&str, Severity> = Default::default();
    for f in scan.findings.iter().filter(|f| f.waived.is_none()) {
        let s = by_id.entry(&f.id).or_insert(f.severity);
        *s = (*s).max(f.severity);
    }
    let waived: std::collections::BTreeSet<&str> = scan
        .findings
        .iter()
        .filter(|f| f.waived.is_some() && !by_id.contains_key(f.id.as_str()))
        .map(|f| f.id.as_str())
        .collect();
    let mut counts = SeverityCounts::default();
    for severity in by_id.values() {
        match severity {
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
    let subject = sbom::Subject {
        name: &scan.image,
        version: &scan.version,
        file: &scan.artifact,
        sha256: sha256.as_deref(),
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
            pretty(&match &scan.windows {
                Some(inv) => windows::sbom::cyclonedx(&subject, inv),
                None => sbom::cyclonedx(&subject, &scan.os, &scan.packages),
            }),
        ),
        (
            "spdx",
            "sbom.spdx.json",
            pretty(&match &scan.windows {
                Some(inv) => windows::sbom::spdx(&subject, inv),
                None => sbom::spdx(&subject, &scan.os, &scan.packages),
            }),
        ),
        ("sarif", "scan.sarif", pretty(&report::sarif(&scan))),
        ("junit", "scan.junit.xml", report::junit(&scan).into_bytes()),
        ("markdown", "scan.md", report::markdown(&scan).into_bytes()),
    ];
    let mut reports = Vec::new();
    for (kind, file, bytes) in outputs {
        let path = dir.join(file);
        imagepipe::fsutil::write_atomic(&path, &bytes).map_err(|source| ScanError::Write {
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
        waived: waived.len() as u32,
        reports: reports.clone(),
    });
    record.write(record_path)?;
    Ok((scan, reports))
}

/// The record's artifact to scan: the one named, or its disk image or root filesystem tarball.
fn artifact(
    record: &Record,
    wanted: Option<&str>,
) -> Result<(String, String, Sha256Hex), ScanError> {
    let first = record
        .artifacts
        .iter()
        .filter(|a| match wanted {
            Some(name) => a.name == name,
            // The disk by role, so not an NVRAM file or an OVF descriptor beside it; the disk
            // of a loose OVF export is a VMDK, and a qemu build's raw disk without an extension
            // has no format of its own.
            None => a.file().is_some_and(|f| {
                f.role == Role::Disk
                    && matches!(
                        f.format,
                        Format::Raw
                            | Format::Qcow2
                            | Format::Vmdk
                            | Format::Ova
                            | Format::Tar
                            | Format::Other
                    )
            }),
        })
        .find_map(|a| a.file().map(|f| (a.name.clone(), f.path.clone(), f.sha256)));
    match first {
        // Disk images of one build hold the same system: the first is as good as any.
        Some(one) => Ok(one),
        None => Err(ScanError::Usage(format!(
            "{} has no disk image or root filesystem artifact (raw, qcow2, VMDK, OVA or tar){}; name one with --artifact, or scan a path with --input",
            record.id(),
            wanted.map(|a| format!(" named `{a}`")).unwrap_or_default()
        ))),
    }
}
