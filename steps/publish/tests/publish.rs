//! `imagepipe-publish` into the local directory store.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/built.rs"]
mod common;
#[path = "../../../tests/support/step.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use imagepipe::hash::{Sha256Hex, hash_file};
use imagepipe::record::{self, GateStatus, Record};
use support::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-publish");

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("imagepipe.toml"),
            "[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn out(&self, version: &str) -> PathBuf {
        self.path()
            .join(".imagepipe/build/global/debian-12")
            .join(version)
    }

    fn store_dir(&self, version: &str) -> PathBuf {
        self.path()
            .join(".imagepipe/store/global/debian-12")
            .join(version)
    }

    /// Writes a build output as imagepipe-build would: files and their record.
    fn built(&self, version: &str, files: &[(&str, &[u8])], scan: Option<GateStatus>) -> PathBuf {
        common::built(&self.out(version), version, files, scan)
    }

    fn run(&self, args: &[&str]) -> Output {
        support::command(BIN, self.path(), args).output().unwrap()
    }
}

#[test]
fn publishes_artifacts_then_the_record() {
    let repo = Repo::new();
    repo.built(
        "1.0.0",
        &[("disk.qcow2", b"QFI\xfb disk"), ("meta.json", b"{}")],
        Some(GateStatus::Passed),
    );
    let out = repo.run(&[
        "--image",
        "global/debian-12",
        "--version",
        "1.0.0",
        "--json",
    ]);
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["already_published"], false);

    let stored = Record::read(&repo.store_dir("1.0.0").join(record::FILE_NAME)).unwrap();
    assert_eq!(json["record_sha256"], stored.sha256.to_string());
    let publish = stored.record.publish.as_ref().unwrap();
    assert_eq!(publish.artifacts.len(), 2);
    assert_eq!(publish.gate_override, None);
    for a in &publish.artifacts {
        let on_disk = hash_file(Path::new(&a.url), &|_| {}).unwrap();
        assert_eq!(on_disk.sha256, a.sha256);
    }
    // The local record learns where it went.
    let local = Record::read(&repo.out("1.0.0").join(record::FILE_NAME))
        .unwrap()
        .record;
    assert_eq!(local.publish, stored.record.publish);
}

#[test]
fn the_scan_gate_refuses_and_an_override_is_recorded() {
    let repo = Repo::new();
    repo.built("1.0.0", &[("disk.raw", b"disk")], None);
    let out = repo.run(&["--image", "global/debian-12", "--version", "1.0.0"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("has no scan result; run imagepipe-scan first"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.store_dir("1.0.0").exists(), "nothing was published");

    repo.built("1.0.1", &[("disk.raw", b"disk")], Some(GateStatus::Failed));
    let out = repo.run(&["--image", "global/debian-12", "--version", "1.0.1"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("failed its scan"), "{}", stderr(&out));

    let out = repo.run(&[
        "--image",
        "global/debian-12",
        "--version",
        "1.0.1",
        "--override-gate",
        "CVE-2026-1 has no fix; approved by sec-ops",
    ]);
    assert_exit(&out, 0);
    let stored = Record::read(&repo.store_dir("1.0.1").join(record::FILE_NAME))
        .unwrap()
        .record;
    assert_eq!(
        stored.publish.unwrap().gate_override.as_deref(),
        Some("CVE-2026-1 has no fix; approved by sec-ops")
    );
}

#[test]
fn a_rerun_completes_an_interrupted_publish_without_resending() {
    let repo = Repo::new();
    let record = repo.built(
        "2.0.0",
        &[("a.raw", b"aaaa"), ("b.raw", b"bbbb")],
        Some(GateStatus::Passed),
    );
    // An earlier run stored one artifact and died: no record, so the version is not visible.
    std::fs::create_dir_all(repo.store_dir("2.0.0")).unwrap();
    std::fs::copy(
        repo.out("2.0.0").join("a.raw"),
        repo.store_dir("2.0.0").join("a.raw"),
    )
    .unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("a            already present"), "{err}");
    assert!(err.contains("b            stored"), "{err}");
    // Again: nothing to do, and the stored record is unchanged.
    let before = std::fs::read(repo.store_dir("2.0.0").join(record::FILE_NAME)).unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("was already published"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(repo.store_dir("2.0.0").join(record::FILE_NAME)).unwrap(),
        before
    );
}

#[test]
fn republishing_other_bytes_is_refused_naming_the_file() {
    let repo = Repo::new();
    repo.built("3.0.0", &[("disk.raw", b"first")], Some(GateStatus::Passed));
    assert_exit(
        &repo.run(&["--image", "global/debian-12", "--version", "3.0.0"]),
        0,
    );
    std::fs::remove_dir_all(repo.out("3.0.0")).unwrap();
    repo.built(
        "3.0.0",
        &[("disk.raw", b"second build")],
        Some(GateStatus::Passed),
    );
    let out = repo.run(&["--image", "global/debian-12", "--version", "3.0.0"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("disk.raw already holds different bytes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(repo.store_dir("3.0.0").join("disk.raw")).unwrap(),
        b"first"
    );
}

#[test]
fn bad_input_exits_2() {
    let repo = Repo::new();
    let record = repo.built("4.0.0", &[("disk.raw", b"disk")], Some(GateStatus::Passed));
    // An artifact that changed after the build is caught on the way in, and nothing is visible.
    std::fs::write(repo.out("4.0.0").join("disk.raw"), b"tampered").unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("does not have the expected content"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.store_dir("4.0.0").join(record::FILE_NAME).exists());
    assert!(!repo.store_dir("4.0.0").join("disk.raw").exists());

    std::fs::remove_file(repo.out("4.0.0").join("disk.raw")).unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("artifact `disk` is not at"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&record, b"{\"schema_version\": 9}").unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("schema version 9"),
        "{}",
        stderr(&out)
    );

    let out = repo.run(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("say which image version"),
        "{}",
        stderr(&out)
    );
    let _ = Sha256Hex::digest(b"");
}

#[test]
fn help() {
    let repo = Repo::new();
    insta::assert_snapshot!("help", support::help(BIN, repo.path()));
}

#[test]
fn action_yml_matches_the_cli_and_the_outputs() {
    let declared =
        support::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    let repo = Repo::new();
    repo.built("5.0.0", &[("disk.raw", b"disk")], Some(GateStatus::Passed));
    let gh = support::on_github(
        support::command(
            BIN,
            repo.path(),
            &["--image", "global/debian-12", "--version", "5.0.0"],
        ),
        repo.path(),
    );
    let out = &gh.out;
    assert_exit(out, 0);
    let outputs = &gh.outputs;
    assert_eq!(outputs.keys().cloned().collect::<Vec<_>>(), declared);
    let stored = Record::read(Path::new(&outputs["record-url"])).unwrap();
    assert_eq!(outputs["record-sha256"], stored.sha256.to_string());
    assert!(
        gh.summary
            .clone()
            .contains("### imagepipe-publish: `global/debian-12` 5.0.0")
    );
}
