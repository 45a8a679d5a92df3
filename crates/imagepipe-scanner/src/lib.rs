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
mod guard;
pub mod inventory;
pub mod lvm;
pub mod osv;
pub mod policy;
pub mod remote;
pub mod report;
pub mod rescan;
pub mod rootfs;
pub mod rpm;
pub mod sbom;
pub mod version;
pub mod waiver;
pub mod windows;

use std::path::{Path, PathBuf};

use imagepipe::hash::Sha256Hex;
use imagepipe::record::{
    FileArtifact, Format, GateStatus, Record, Report, Role, ScanFinding, ScanSection,
    SeverityCounts,
};

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
    Store(#[from] imagepipe::store::StoreError),
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

/// Loads the OSV database, refusing a stale one before anything is scanned when asked to.
pub fn load_database(
    path: &Path,
    max_db_age: std::time::Duration,
    stale_db_fails: bool,
) -> Result<osv::Database, ScanError> {
    let db = osv::Database::load(path)?;
    fresh("OSV", path, db.newest, max_db_age, stale_db_fails)?;
    Ok(db)
}

/// Loads Microsoft's security update documents, refusing a stale set as the OSV database is.
pub fn load_msrc(
    path: &Path,
    max_db_age: std::time::Duration,
    stale_db_fails: bool,
) -> Result<windows::msrc::Database, ScanError> {
    let db = windows::msrc::Database::load(path)?;
    fresh("MSRC", path, db.newest, max_db_age, stale_db_fails)?;
    Ok(db)
}

/// The OSV database and Microsoft's documents, those given.
type Databases = (Option<osv::Database>, Option<windows::msrc::Database>);

fn load_databases(
    osv_db: Option<&Path>,
    msrc_db: Option<&Path>,
    max_db_age: std::time::Duration,
    stale_db_fails: bool,
) -> Result<Databases, ScanError> {
    Ok((
        osv_db
            .map(|p| load_database(p, max_db_age, stale_db_fails))
            .transpose()?,
        msrc_db
            .map(|p| load_msrc(p, max_db_age, stale_db_fails))
            .transpose()?,
    ))
}

fn fresh(
    name: &str,
    path: &Path,
    newest: Option<chrono::DateTime<chrono::Utc>>,
    max_db_age: std::time::Duration,
    stale_db_fails: bool,
) -> Result<(), ScanError> {
    if !stale_db_fails {
        return Ok(());
    }
    let age = newest.map(|n| (chrono::Utc::now() - n).to_std().unwrap_or_default());
    if age.is_none_or(|a| a > max_db_age) {
        return Err(ScanError::StaleDatabase(format!(
            "{}: the {name} database's newest record is {}, older than {}; refresh the database (or let a stale one only warn: --stale-db warn)",
            path.display(),
            newest
                .map(|n| n.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "missing (no records)".into()),
            humantime::format_duration(max_db_age)
        )));
    }
    Ok(())
}

/// What a scan is of, as the reports name it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub image: String,
    pub version: String,
    /// The artifact (or input) scanned, by name.
    pub artifact: String,
    /// Where findings are located in SARIF: the image's template, or the scanned file.
    pub template: String,
    /// Where the reports are written.
    pub dir: PathBuf,
}

/// How a scan judges what it finds.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// The advisories for Linux images; `None`: none given.
    pub db: Option<&'a osv::Database>,
    /// Microsoft's security update documents, for Windows images; `None`: none given.
    pub msrc: Option<&'a windows::msrc::Database>,
    /// Whether an image whose advisories were not given is an error (the CI form) or is
    /// judged on its inventory and policy alone (a standalone scan, which warns).
    pub advisories_required: bool,
    pub fail_on: Severity,
    pub waivers: &'a [waiver::Waiver],
    /// The hardening rules; `None` leaves the policy out (a rescan: the advisories changed,
    /// the image did not).
    pub rules: Option<&'a [policy::Rule]>,
}

/// Scans an opened image: inventory, advisories, waivers and the hardening policy. `what`
/// names the input in errors.
pub fn evaluate(
    tree: &dyn rootfs::Tree,
    what: &Path,
    subject: Subject,
    judge: Judge<'_>,
) -> Result<report::Scan, ScanError> {
    // The hives are read once: for the inventory here, and for the Windows rules below.
    let (windows, hives) = match windows::inventory(tree)? {
        Some((inventory, hives)) => (Some(inventory), Some(hives)),
        None => (None, None),
    };
    let (os, packages, mut findings, database, records, newest) = match &windows {
        Some(inv) => {
            let (os, packages) = inv.as_os_and_packages();
            let (findings, records, newest) = match judge.msrc {
                Some(db) => {
                    let product = inv.os.product.clone().ok_or_else(|| {
                        ScanError::Usage(format!(
                            "{}: `{}` build {} ({}) is not a Windows release this scan knows the security update product of",
                            what.display(),
                            inv.os.product_name,
                            inv.os.build,
                            inv.os.installation_type
                        ))
                    })?;
                    (db.matches(&product, &inv.os.build), db.records, db.newest)
                }
                None if judge.advisories_required => {
                    return Err(ScanError::Usage(format!(
                        "{} is a Windows image: say where Microsoft's security update documents are: --msrc-db PATH (a directory of CVRF or CSAF 2.0 JSON documents)",
                        what.display()
                    )));
                }
                None => (Vec::new(), 0, None),
            };
            (os, packages, findings, "MSRC", records, newest)
        }
        None => {
            let (os, packages) = inventory::from_tree(tree)?;
            let (findings, records, newest) = match judge.db {
                Some(db) => {
                    let ecosystem = os.ecosystem.clone().ok_or_else(|| {
                        ScanError::Usage(format!(
                            "{}: the OS `{}` {} has no OSV ecosystem this release knows (Debian, Ubuntu, Alpine, AlmaLinux, Rocky Linux, RHEL, SUSE, openSUSE)",
                            what.display(),
                            os.id,
                            os.version_id
                        ))
                    })?;
                    (db.matches(&ecosystem, &packages), db.records, db.newest)
                }
                None if judge.advisories_required => {
                    return Err(ScanError::Usage(format!(
                        "{} is a Linux image: say where the OSV database is: --osv-db PATH (a directory of OSV JSON records or all.zip dumps)",
                        what.display()
                    )));
                }
                None => (Vec::new(), 0, None),
            };
            (os, packages, findings, "OSV", records, newest)
        }
    };
    let platform = if windows.is_some() {
        policy::Platform::Windows
    } else {
        policy::Platform::Linux
    };
    let policy_results = match judge.rules {
        Some(rules) => {
            let rules: Vec<policy::Rule> =
                rules.iter().filter(|r| r.os == platform).cloned().collect();
            policy::evaluate_with_hives(&rules, tree, &packages, Some(hives))?
        }
        None => Vec::new(),
    };
    let expired = waiver::apply(
        judge.waivers,
        &mut findings,
        chrono::Utc::now().date_naive(),
    );
    let mut scan = report::Scan {
        image: subject.image,
        version: subject.version,
        artifact: subject.artifact,
        template: subject.template,
        os,
        packages,
        findings,
        fail_on: judge.fail_on,
        passed: true,
        database: database.into(),
        database_records: records,
        database_newest: newest,
        bytes_read: tree.bytes_read(),
        disk_size: tree.size(),
        dir: subject.dir,
        expired_waivers: expired,
        policy: policy_results,
        windows,
    };
    scan.passed = !scan.findings.iter().any(|f| scan.gates(f)) && scan.policy_failures() == 0;
    Ok(scan)
}

/// One report as bytes: its kind (`json`, `sarif`, …), its file name and its content.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub kind: &'static str,
    pub file: &'static str,
    pub bytes: Vec<u8>,
}

/// Every report and SBOM of a scan. `sha256` is the scanned file's, for the SBOMs.
pub fn render(scan: &report::Scan, sha256: Option<&str>) -> Vec<Rendered> {
    let pretty = |v: &serde_json::Value| {
        let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
        b.push(b'\n');
        b
    };
    let subject = sbom::Subject {
        name: &scan.image,
        version: &scan.version,
        file: &scan.artifact,
        sha256,
    };
    let outputs: [(&'static str, &'static str, Vec<u8>); 6] = [
        (
            "json",
            "scan.json",
            pretty(&serde_json::to_value(scan).unwrap_or_default()),
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
        ("sarif", "scan.sarif", pretty(&report::sarif(scan))),
        ("junit", "scan.junit.xml", report::junit(scan).into_bytes()),
        ("markdown", "scan.md", report::markdown(scan).into_bytes()),
    ];
    outputs
        .into_iter()
        .map(|(kind, file, bytes)| Rendered { kind, file, bytes })
        .collect()
}

/// Writes rendered reports into `dir`, each atomically.
pub fn write_reports(dir: &Path, rendered: &[Rendered]) -> Result<Vec<Report>, ScanError> {
    let mut reports = Vec::new();
    for r in rendered {
        let path = dir.join(r.file);
        imagepipe::fsutil::write_atomic(&path, &r.bytes).map_err(|source| ScanError::Write {
            path: path.clone(),
            source,
        })?;
        reports.push(Report {
            kind: r.kind.into(),
            path: r.file.into(),
            sha256: Sha256Hex::digest(&r.bytes),
        });
    }
    Ok(reports)
}

/// The record's scan section for a scan and the reports written of it.
pub fn section(scan: &report::Scan, reports: Vec<Report>) -> ScanSection {
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
    ScanSection {
        status: if scan.passed {
            GateStatus::Passed
        } else {
            GateStatus::Failed
        },
        scanned_at: chrono::Utc::now(),
        vulnerabilities: counts,
        policy_failures: scan.policy_failures() as u32,
        waived: waived.len() as u32,
        reports,
        findings: Some(
            scan.findings
                .iter()
                .map(|f| ScanFinding {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    severity: f.severity.as_str().into(),
                    waived: f.waived.is_some(),
                })
                .collect(),
        ),
    }
}

/// A scanned path's name in the reports (its file name) and, for a file, its sha256 for the
/// SBOMs (a directory has none).
fn identify(input: &Path) -> Result<(String, Option<String>), ScanError> {
    let sha256 = if input.is_file() {
        let digest =
            imagepipe::hash::hash_file(input, &|_| {}).map_err(|source| ScanError::Image {
                image: input.to_path_buf(),
                source,
            })?;
        Some(digest.sha256.to_string())
    } else {
        None
    };
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| input.display().to_string());
    Ok((name, sha256))
}

/// Opens what a path holds for scanning, naming the path and what it should be when it is
/// not something the scan reads.
fn open_input(input: &Path) -> Result<Box<dyn rootfs::Tree>, ScanError> {
    const WANTED: &str = "give a disk image (raw, qcow2, VMDK or OVA), a root filesystem directory, or a root filesystem tarball (plain or gzip)";
    if !input.exists() {
        return Err(ScanError::Usage(format!(
            "{}: no such file or directory; {WANTED}",
            input.display()
        )));
    }
    rootfs::open(input).map_err(|e| {
        ScanError::Usage(format!(
            "{}: cannot be scanned: {e}; {WANTED}",
            input.display()
        ))
    })
}

/// Scans the disk image of the record at `record_path`, writes the reports beside it and the
/// result into the record. Returns the scan and the reports written.
pub fn scan_record(
    record_path: &Path,
    options: &ScanOptions,
) -> Result<(report::Scan, Vec<Report>), ScanError> {
    let mut record = Record::read(record_path)?.record;
    let dir = imagepipe::fsutil::parent_dir(record_path).to_path_buf();
    let (db, msrc) = load_databases(
        options.osv_db.as_deref(),
        options.msrc_db.as_deref(),
        options.max_db_age,
        options.stale_db_fails,
    )?;
    let (name, image_path, sha256) = match &options.input {
        Some(input) => {
            let (name, sha256) = identify(input)?;
            (name, input.clone(), sha256)
        }
        None => {
            let (name, file) = artifact(&record, options.artifact.as_deref())?;
            (name, dir.join(&file.path), Some(file.sha256.to_string()))
        }
    };
    let tree = rootfs::open(&image_path).map_err(|source| ScanError::Image {
        image: image_path.clone(),
        source,
    })?;
    let rules = policy::rules(&options.policy, &options.disable_rules)?;
    let waivers = match &options.waivers {
        Some(path) => waiver::load(path)?,
        None => Vec::new(),
    };
    let scan = evaluate(
        tree.as_ref(),
        &image_path,
        Subject {
            image: record.image.name.to_string(),
            version: record.image.version.to_string(),
            artifact: name,
            template: options.template.clone(),
            dir: dir.clone(),
        },
        Judge {
            db: db.as_ref(),
            msrc: msrc.as_ref(),
            advisories_required: true,
            fail_on: options.fail_on,
            waivers: &waivers,
            rules: Some(&rules),
        },
    )?;
    let reports = write_reports(&dir, &render(&scan, sha256.as_deref()))?;
    record.scan = Some(section(&scan, reports.clone()));
    record.write(record_path)?;
    Ok((scan, reports))
}

/// A scan of a path with no configuration and no record.
#[derive(Debug, Clone)]
pub struct StandaloneOptions {
    /// A disk image, a root filesystem directory or tarball.
    pub input: PathBuf,
    /// Without a database, the inventory and the policy only.
    pub osv_db: Option<PathBuf>,
    /// Microsoft's security update documents, for a Windows image.
    pub msrc_db: Option<PathBuf>,
    pub max_db_age: std::time::Duration,
    pub stale_db_fails: bool,
    pub fail_on: Severity,
    /// Rule files added to the baseline.
    pub policy: Vec<PathBuf>,
    /// Where to write every report; none are written without it.
    pub output_dir: Option<PathBuf>,
}

/// What a standalone scan found and wrote.
#[derive(Debug, Clone)]
pub struct Standalone {
    pub scan: report::Scan,
    /// Every report, rendered.
    pub rendered: Vec<Rendered>,
    /// The reports written into the output directory.
    pub written: Vec<Report>,
}

/// Scans a path on its own: the image named after its file, findings located at the path in
/// SARIF, reports in `output_dir` if one is given.
pub fn scan_path(options: &StandaloneOptions) -> Result<Standalone, ScanError> {
    let input = &options.input;
    let tree = open_input(input)?;
    let (db, msrc) = load_databases(
        options.osv_db.as_deref(),
        options.msrc_db.as_deref(),
        options.max_db_age,
        options.stale_db_fails,
    )?;
    let (name, sha256) = identify(input)?;
    let rules = policy::rules(&options.policy, &[])?;
    let dir = options.output_dir.clone().unwrap_or_default();
    let scan = evaluate(
        tree.as_ref(),
        input,
        Subject {
            image: name.clone(),
            version: String::new(),
            artifact: name,
            template: input.display().to_string(),
            dir: dir.clone(),
        },
        Judge {
            db: db.as_ref(),
            msrc: msrc.as_ref(),
            advisories_required: false,
            fail_on: options.fail_on,
            waivers: &[],
            rules: Some(&rules),
        },
    )?;
    let rendered = render(&scan, sha256.as_deref());
    let written = match &options.output_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| ScanError::Write {
                path: dir.clone(),
                source,
            })?;
            write_reports(dir, &rendered)?
        }
        None => Vec::new(),
    };
    Ok(Standalone {
        scan,
        rendered,
        written,
    })
}

/// The record's artifact to scan: the one named, or its disk image or root filesystem tarball.
pub fn artifact<'r>(
    record: &'r Record,
    wanted: Option<&str>,
) -> Result<(String, &'r FileArtifact), ScanError> {
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
        .find_map(|a| a.file().map(|f| (a.name.clone(), f)));
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
