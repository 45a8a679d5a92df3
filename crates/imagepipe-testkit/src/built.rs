//! Build outputs for the publish tests, written as imagepipe-build writes them.

use std::path::{Path, PathBuf};

use imagepipe::hash::hash_file;
use imagepipe::record::{
    self, Artifact, ArtifactKind, BuildInfo, FileArtifact, GateStatus, ImageId, Record,
    ScanSection, SeverityCounts, Source,
};

/// Writes `files` and their record under `dir`, as version `version` of `global/debian-12`.
pub fn built(
    dir: &Path,
    version: &str,
    files: &[(&str, &[u8])],
    scan: Option<GateStatus>,
) -> PathBuf {
    let parent = record::ParentId {
        name: "vendor/debian-12".parse().unwrap(),
        version: "12.8.0".parse().unwrap(),
        record_sha256: imagepipe::hash::Sha256Hex::digest(b"parent"),
    };
    built_as(dir, "global/debian-12", version, Some(parent), files, scan)
}

/// [`built`] for any image and parent.
pub fn built_as(
    dir: &Path,
    image: &str,
    version: &str,
    parent: Option<record::ParentId>,
    files: &[(&str, &[u8])],
    scan: Option<GateStatus>,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut artifacts = Vec::new();
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let d = hash_file(&p, &|_| {}).unwrap();
        // Named by stem, as a build of one file each would be; files sharing a stem (an OVF
        // export's `.ovf` and `.mf`) keep their whole names.
        let stem = name.split('.').next().unwrap();
        let shared = files
            .iter()
            .filter(|(n, _)| n.split('.').next() == Some(stem))
            .count()
            > 1;
        artifacts.push(Artifact {
            name: if shared {
                name.to_string()
            } else {
                stem.to_string()
            },
            build: "file.disk".into(),
            kind: ArtifactKind::File(FileArtifact {
                path: name.to_string(),
                size: d.size,
                sha256: d.sha256,
                format: d.format,
                role: record::Role::classify("file", name, d.format),
            }),
        });
    }
    let now = chrono::Utc::now();
    let record = Record {
        schema_version: record::SCHEMA_VERSION,
        image: ImageId {
            name: image.parse().unwrap(),
            version: version.parse().unwrap(),
        },
        parent,
        source: Source {
            commit: Some("c".repeat(40)),
            tag: None,
            dirty: false,
        },
        build: BuildInfo {
            packer_version: "1.6.6".into(),
            run_id: "r".into(),
            template: "t".into(),
            started_at: now,
            finished_at: now,
            imagepipe_version: "0.1.0".into(),
        },
        artifacts,
        scan: scan.map(|status| ScanSection {
            status,
            scanned_at: now,
            vulnerabilities: SeverityCounts::default(),
            policy_failures: 0,
            waived: 0,
            reports: vec![],
            findings: None,
        }),
        publish: None,
        replication: None,
        import: None,
    };
    let path = dir.join(record::FILE_NAME);
    record.write(&path).unwrap();
    path
}
