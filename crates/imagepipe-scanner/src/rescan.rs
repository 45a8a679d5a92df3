//! Rescanning a published version where its store keeps it, against today's advisories: the
//! disk is read through the store's ranged reader (a local file, or HTTP `Range` requests to
//! Artifactory or an OCI registry), so a multi-GiB artifact is never downloaded.
//!
//! Only the inventory is taken and matched: the image has not changed since its publish-time
//! scan judged the hardening policy, the advisory database has. What is new is told from the
//! findings the published record's scan section lists; a version scanned before records kept
//! them has no known findings, and every finding counts as new.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use imagepipe::image::ImageRef;
use imagepipe::record::Format;
use imagepipe::store::{ArtifactReader, Store};

use super::osv::{Database, Finding};
use super::remote::{Counted, Counters, RemoteSource};
use super::{Judge, ScanError, Severity, Subject, disk, report, rootfs, waiver};

/// How to rescan.
#[derive(Debug, Clone, Default)]
pub struct RescanOptions {
    /// The artifact to read, by name; default: the record's disk image.
    pub artifact: Option<String>,
    /// The image's waivers: a waived finding is not new.
    pub waivers: Vec<waiver::Waiver>,
    /// The image's gate threshold, for the reports.
    pub fail_on: Severity,
    /// Microsoft's security update documents, which a Windows image is matched against; without
    /// them a Windows image is refused by name.
    pub msrc: Option<Arc<super::windows::msrc::Database>>,
}

/// What the publish-time scan knew.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastScan {
    pub scanned_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the record lists that scan's findings; without them every finding is new.
    pub findings_known: bool,
    /// How many findings it listed.
    pub findings: usize,
}

/// One version rescanned.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rescan {
    pub image: String,
    pub version: String,
    /// The store it was read from, without credentials.
    pub store: String,
    pub artifact: String,
    /// Where the artifact is (a path or URL).
    pub location: String,
    pub artifact_size: u64,
    /// Bytes fetched from the store, and in how many reads.
    pub bytes_read: u64,
    pub requests: u64,
    pub seconds: f64,
    pub last_scan: LastScan,
    /// The scan as the reports present it (every finding, not only new ones).
    #[serde(skip)]
    pub scan: report::Scan,
    pub ecosystem: Option<String>,
    pub packages: usize,
    pub findings: Vec<Finding>,
    /// Findings (not waived) the last scan did not have, by advisory and package.
    pub new_findings: Vec<Finding>,
    /// The advisories of the new findings, each once: what a revocation names.
    pub new_ids: Vec<String>,
    /// The highest severity among the new findings.
    pub new_max_severity: Option<Severity>,
}

impl Rescan {
    /// Whether a new finding is at or above `threshold`.
    pub fn new_at_or_above(&self, threshold: Severity) -> bool {
        self.new_max_severity.is_some_and(|s| s >= threshold)
    }
}

/// Rescans `image` where `store` keeps it. Call it on a multi-threaded runtime: the disk
/// readers run on a blocking thread and wait for each ranged read there. `db` is the OSV
/// database; a Linux image without it is refused by name, as a Windows image is without
/// `options.msrc`.
pub async fn rescan(
    store: &dyn Store,
    image: &ImageRef,
    db: Option<Arc<Database>>,
    options: &RescanOptions,
) -> Result<Rescan, ScanError> {
    let started = std::time::Instant::now();
    let loaded = store.fetch_record(image).await?;
    let record = loaded.record;
    let (name, file) = super::artifact(&record, options.artifact.as_deref())?;
    let file = file.clone();
    if file.format == Format::Tar {
        return Err(ScanError::Usage(format!(
            "{image}: `{name}` is a root filesystem tarball, which cannot be read in place (its index is the whole file); download it and scan the file: imagepipe-scan FILE --osv-db DB"
        )));
    }
    let reader: Arc<dyn ArtifactReader> = Arc::from(store.open_artifact(image, &file).await?);
    let location = reader.location().to_string();
    let counters = Arc::new(Counters::default());
    let (start, len) = if file.format == Format::Ova {
        let counted = Counted {
            reader: reader.clone(),
            counters: counters.clone(),
        };
        let package = imagepipe::ova::read(&counted)
            .await
            .map_err(|e| ScanError::Usage(format!("{image}: {e}")))?;
        let disk = package.files.first().ok_or_else(|| {
            ScanError::Usage(format!("{image}: {location}: the OVA references no disk"))
        })?;
        (disk.offset, disk.size)
    } else {
        (0, reader.len())
    };
    let runtime = tokio::runtime::Handle::current();
    let subject = Subject {
        image: record.image.name.to_string(),
        version: record.image.version.to_string(),
        artifact: name.clone(),
        template: record.build.template.clone(),
        dir: PathBuf::new(),
    };
    let waivers = options.waivers.clone();
    let fail_on = options.fail_on;
    let what = PathBuf::from(&location);
    let source = Arc::new(RemoteSource::new(reader, runtime, counters.clone()));
    let db_for_scan = db.clone();
    let msrc = options.msrc.clone();
    let scan = tokio::task::spawn_blocking(move || {
        let image_err = |source: std::io::Error| ScanError::Image {
            image: what.clone(),
            source,
        };
        // A Windows image is read from its NTFS OS volume and matched against Microsoft's
        // documents; without them it is refused by name, rather than left to the Linux
        // reader's view of an NTFS disk.
        let probe = disk::open_slice(disk::Slice::part_of(source.clone(), start, len).map_err(image_err)?)
            .map_err(image_err)?;
        if let Some(windows) = super::windows::volume::open_disk(probe).map_err(image_err)? {
            let Some(msrc) = msrc.as_deref() else {
                return Err(ScanError::Usage(format!(
                    "{} is a Windows image: say where Microsoft's security update documents are: --msrc-db PATH (a directory of CVRF or CSAF 2.0 JSON documents)",
                    what.display()
                )));
            };
            return super::evaluate(
                &windows,
                &what,
                subject,
                Judge {
                    db: db_for_scan.as_deref(),
                    msrc: Some(msrc),
                    advisories_required: true,
                    fail_on,
                    waivers: &waivers,
                    rules: None,
                },
            );
        }
        let slice = disk::Slice::part_of(source, start, len).map_err(image_err)?;
        let disk = disk::open_slice(slice).map_err(image_err)?;
        let tree = rootfs::ImageTree::from_disk(disk).map_err(image_err)?;
        super::evaluate(
            &tree,
            &what,
            subject,
            Judge {
                db: db_for_scan.as_deref(),
                // Windows images were judged above.
                msrc: None,
                advisories_required: true,
                fail_on,
                waivers: &waivers,
                rules: None,
            },
        )
    })
    .await
    .map_err(|e| ScanError::Usage(format!("{image}: the scan stopped: {e}")))??;

    let known = record.scan.as_ref().and_then(|s| s.findings.as_ref());
    let last_scan = LastScan {
        scanned_at: record.scan.as_ref().map(|s| s.scanned_at),
        findings_known: known.is_some(),
        findings: known.map_or(0, Vec::len),
    };
    let known: BTreeSet<(&str, &str)> = known
        .into_iter()
        .flatten()
        .map(|f| (f.id.as_str(), f.package.as_str()))
        .collect();
    let new_findings: Vec<Finding> = scan
        .findings
        .iter()
        .filter(|f| f.waived.is_none() && !known.contains(&(f.id.as_str(), f.package.as_str())))
        .cloned()
        .collect();
    let new_ids: BTreeSet<String> = new_findings.iter().map(|f| f.id.clone()).collect();
    Ok(Rescan {
        image: scan.image.clone(),
        version: scan.version.clone(),
        store: store.location(),
        artifact: name,
        location,
        artifact_size: file.size,
        bytes_read: counters.bytes(),
        requests: counters.requests(),
        seconds: started.elapsed().as_secs_f64(),
        last_scan,
        ecosystem: scan.os.ecosystem.clone(),
        packages: scan.packages.len(),
        findings: scan.findings.clone(),
        new_max_severity: new_findings.iter().map(|f| f.severity).max(),
        new_ids: new_ids.into_iter().collect(),
        new_findings,
        scan,
    })
}
