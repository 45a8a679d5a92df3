//! `imagepipe-scan PATH`: the standalone scan, with no imagepipe.toml and no record, on every
//! format the scanner reads (raw, qcow2, stream-optimized VMDK, OVA, a directory, a tarball),
//! each made by the tools that make them in production.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{images, step};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use images::{DEBIAN_12_OS_RELEASE, run};
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-scan");

const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n";

/// A Debian 12 tree with a vulnerable openssl and zlib.
fn tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
    std::fs::write(tree.join("etc/os-release"), DEBIAN_12_OS_RELEASE).unwrap();
    std::fs::write(tree.join("var/lib/dpkg/status"), STATUS).unwrap();
    tree
}

/// An OSV database: openssl critical (CVSS), zlib medium (no vector: the database's word).
fn osv(dir: &Path, with_critical: bool) -> PathBuf {
    let db = dir.join(if with_critical { "osv" } else { "osv-medium" });
    std::fs::create_dir_all(&db).unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    if with_critical {
        std::fs::write(
            db.join("DSA-5001-1.json"),
            format!(r#"{{"id":"DSA-5001-1","modified":"{now}","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"openssl"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"3.0.11-1~deb12u2"}}]}}]}}]}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        db.join("DEBIAN-CVE-2026-0002.json"),
        format!(r#"{{"id":"DEBIAN-CVE-2026-0002","modified":"{now}","affected":[{{"package":{{"ecosystem":"Debian:12","name":"zlib"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1:1.2.13.dfsg-2"}}]}}],"ecosystem_specific":{{"urgency":"medium"}}}}]}}"#),
    )
    .unwrap();
    db
}

/// Every format, by the name the snapshots use.
fn inputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let tree = tree(dir);
    let raw = dir.join("disk.raw");
    images::ext4(&tree, &raw, "root", "16M");
    let tarball = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    vec![
        ("raw", raw.clone()),
        ("qcow2", images::qcow2(&raw, true)),
        ("vmdk", images::vmdk(&raw, "streamOptimized")),
        ("ova", images::ova(&raw, "disk")),
        ("dir", tree),
        ("tarball", tarball),
    ]
}

/// A scan in a directory with no imagepipe.toml anywhere above it.
fn scan(dir: &Path, args: &[&str]) -> Output {
    command(BIN, dir, args).output().unwrap()
}

/// The human output with what differs from run to run replaced: the bytes read of compressed
/// formats, the database's date, and the temporary directory.
fn redacted(text: &str, dir: &Path) -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    text.replace(&dir.display().to_string(), "[DIR]")
        .replace(&today, "[DATE]")
        .replace(&yesterday, "[DATE]")
        .lines()
        .map(|l| match l.split_once("; read ") {
            Some((head, _)) => format!("{head}; read [N] of [SIZE] bytes"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_format_is_scanned_with_no_configuration_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let db = osv(dir.path(), true);
    let medium = osv(dir.path(), false);
    for (name, input) in inputs(dir.path()) {
        let path = input.to_str().unwrap();
        // Critical openssl: the default threshold (high) fails.
        let out = scan(&work, &[path, "--osv-db", db.to_str().unwrap(), "--json"]);
        assert_exit(&out, 1);
        let text = stderr(&out);
        assert!(
            text.contains("findings at or above `high`"),
            "{name}: {text}"
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<&str> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, ["DEBIAN-CVE-2026-0002", "DSA-5001-1"], "{name}");
        assert_eq!(doc["passed"], false);
        assert_eq!(doc["os"]["ecosystem"], "Debian:12");
        insta::assert_snapshot!(format!("table_{name}"), redacted(&text, dir.path()));

        // Only a medium finding: passes at the default threshold, fails at `medium`.
        let out = scan(&work, &[path, "--osv-db", medium.to_str().unwrap()]);
        assert_exit(&out, 0);
        assert!(out.stdout.is_empty(), "table output stays on stderr");
        let out = scan(
            &work,
            &[
                path,
                "--osv-db",
                medium.to_str().unwrap(),
                "--fail-on",
                "medium",
            ],
        );
        assert_exit(&out, 1);
    }
    assert!(
        !work.join("imagepipe-record.json").exists()
            && std::fs::read_dir(&work).unwrap().count() == 0,
        "a standalone scan without --output-dir writes nothing"
    );
}

#[test]
fn formats_print_each_document_and_the_output_dir_holds_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = osv(dir.path(), true);
    let raw = dir.path().join("disk.raw");
    images::ext4(&tree(dir.path()), &raw, "root", "16M");
    let qcow2 = images::qcow2(&raw, false);
    let path = qcow2.to_str().unwrap();
    let base = ["--osv-db", db.to_str().unwrap(), "--fail-on", "critical"];

    let doc = |format: &str| -> Value {
        let mut args = vec![path, "--format", format];
        args.extend(base);
        let out = scan(dir.path(), &args);
        assert_exit(&out, 1);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("--format {format}: {e}: {}", stderr(&out)))
    };
    assert_eq!(doc("json")["findings"].as_array().unwrap().len(), 2);
    let sarif = doc("sarif");
    assert_eq!(sarif["version"], "2.1.0");
    // Findings are located at the scanned file, as given.
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        path
    );
    let cdx = doc("cyclonedx");
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert!(
        cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "libssl3")
    );
    assert_eq!(doc("spdx")["spdxVersion"], "SPDX-2.3");

    let reports = dir.path().join("reports");
    let mut args = vec![path, "--output-dir", reports.to_str().unwrap()];
    args.extend(base);
    let out = scan(dir.path(), &args);
    assert_exit(&out, 1);
    let mut files: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "sbom.cdx.json",
            "sbom.spdx.json",
            "scan.json",
            "scan.junit.xml",
            "scan.md",
            "scan.sarif"
        ]
    );
    assert!(!dir.path().join("imagepipe-record.json").exists());

    // --json and a document format would both print on stdout.
    let mut args = vec![path, "--format", "sarif", "--json"];
    args.extend(base);
    let out = scan(dir.path(), &args);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("choose one"), "{}", stderr(&out));
}

#[test]
fn a_policy_file_adds_rules_and_no_database_still_gives_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree(dir.path());
    std::fs::write(
        dir.path().join("extra.toml"),
        "[[rule]]\nid = \"org-no-zlib\"\ntitle = \"zlib is not installed\"\nlevel = \"error\"\nkind = \"package_absent\"\nnames = [\"zlib1g\"]\n",
    )
    .unwrap();
    let out = scan(dir.path(), &[tree.to_str().unwrap(), "--json"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("no --osv-db"), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["packages"].as_array().unwrap().len(), 2);
    let out = scan(
        dir.path(),
        &[tree.to_str().unwrap(), "--policy", "extra.toml"],
    );
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("org-no-zlib"), "{}", stderr(&out));
}

#[test]
fn bad_input_is_exit_2_naming_the_file_and_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let db = osv(dir.path(), true);
    let db = db.to_str().unwrap();

    let out = scan(dir.path(), &["missing.qcow2", "--osv-db", db]);
    assert_exit(&out, 2);
    let text = stderr(&out);
    assert!(
        text.contains("missing.qcow2: no such file or directory")
            && text.contains("give a disk image (raw, qcow2, VMDK or OVA)"),
        "{text}"
    );

    std::fs::write(dir.path().join("notes.txt"), "just some text\n".repeat(100)).unwrap();
    let out = scan(dir.path(), &["notes.txt", "--osv-db", db]);
    assert_exit(&out, 2);
    let text = stderr(&out);
    assert!(
        text.contains("notes.txt: cannot be scanned")
            && text.contains("give a disk image (raw, qcow2, VMDK or OVA)"),
        "{text}"
    );

    // Hostile: a qcow2 header whose L1 table points far past the file.
    let mut hostile = b"QFI\xfb\0\0\0\x03".to_vec();
    hostile.resize(512, 0);
    hostile[20..24].copy_from_slice(&16u32.to_be_bytes());
    hostile[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes());
    hostile[36..40].copy_from_slice(&2048u32.to_be_bytes());
    hostile[40..48].copy_from_slice(&(1u64 << 50).to_be_bytes());
    std::fs::write(dir.path().join("hostile.qcow2"), &hostile).unwrap();
    let out = scan(dir.path(), &["hostile.qcow2", "--osv-db", db]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("hostile.qcow2: cannot be scanned"),
        "{}",
        stderr(&out)
    );

    // Flags of the other forms do not mix with a path.
    let out = scan(dir.path(), &["notes.txt", "--record", "r.json"]);
    assert_exit(&out, 2);
    let out = scan(dir.path(), &["notes.txt", "--all-published"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--all-published"), "{}", stderr(&out));
    // Standalone flags need a path.
    let out = scan(dir.path(), &["--fail-on", "low", "--osv-db", db]);
    assert_exit(&out, 2);
}
