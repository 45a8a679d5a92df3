//! `imagepipe-publish` into the local directory store.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, step};

use std::path::{Path, PathBuf};
use std::process::Output;

use imagepipe::hash::{Sha256Hex, hash_file};
use imagepipe::record::{self, GateStatus, Record};
use step::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-publish");

/// A pipeline repository of one image, with the publish step's commands.
struct Repo(imagepipe_testkit::repo::Repo);

impl std::ops::Deref for Repo {
    type Target = imagepipe_testkit::repo::Repo;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Repo {
    fn new() -> Self {
        Self(imagepipe_testkit::repo::Repo::new(
            "[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n",
        ))
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
        built::built(&self.out(version), version, files, scan)
    }

    fn run(&self, args: &[&str]) -> Output {
        step::command(BIN, self.path(), args).output().unwrap()
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
        stderr(&out).contains("with different content (artifact `disk` (disk.raw) differs"),
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
    // An artifact that changed after the build is caught on the way in, and nothing is visible:
    // by its size before anything is copied, or by its digest while it is.
    let disk = repo.out("4.0.0").join("disk.raw");
    std::fs::write(&disk, b"tampered").unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!(
            "artifact `disk`: {} is 8 bytes, but the record says 4",
            disk.display()
        )),
        "{}",
        stderr(&out)
    );
    std::fs::write(&disk, b"DISK").unwrap();
    let out = repo.run(&["--record", record.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!(
            "{} is not the file its record describes",
            disk.display()
        )),
        "{}",
        stderr(&out)
    );
    let left: Vec<_> = std::fs::read_dir(repo.store_dir("4.0.0"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no partial file is left: {left:?}");
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
    insta::assert_snapshot!("help", step::help(BIN, repo.path()));
}

#[test]
fn action_yml_matches_the_cli_and_the_outputs() {
    let declared = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    let repo = Repo::new();
    repo.built("5.0.0", &[("disk.raw", b"disk")], Some(GateStatus::Passed));
    let gh = imagepipe_testkit::on_github!(
        step::command(
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

/// The store's invariant: a visible record's files are all there with its sizes and digests,
/// and nothing else is in the version's directory.
fn assert_consistent(store: &Path) {
    assert_consistent_with(store, false);
}

/// [`assert_consistent`], allowing the temporary files a killed writer leaves (until the next
/// run sweeps them).
fn assert_consistent_with(store: &Path, temps_allowed: bool) {
    let rec = store.join(record::FILE_NAME);
    let mut names: Vec<String> = std::fs::read_dir(store)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if temps_allowed {
        names.retain(|n| !n.starts_with(".imagepipe-"));
    }
    if !rec.exists() {
        assert!(
            names.iter().all(|n| !n.starts_with(".imagepipe-")),
            "{names:?}"
        );
        return;
    }
    let record = Record::read(&rec).unwrap().record;
    let mut want = vec![record::FILE_NAME.to_string()];
    for f in record.artifacts.iter().filter_map(|a| a.file()) {
        let d = hash_file(&store.join(&f.path), &|_| {}).unwrap();
        assert_eq!((d.size, d.sha256), (f.size, f.sha256), "{}", f.path);
        want.push(f.path.clone());
    }
    want.sort();
    assert_eq!(names, want, "only the record's files are in the version");
}

#[test]
fn two_publishes_of_one_version_race_and_exactly_one_wins() {
    let bin = BIN;
    // Big enough that the two copies overlap.
    let size = 4 << 20;
    for round in 0..12 {
        let repo = Repo::new();
        // Same file name in the first half of the rounds, different names in the second.
        let names = if round % 2 == 0 {
            ["disk.raw", "disk.raw"]
        } else {
            ["disk-a.raw", "disk-b.raw"]
        };
        let mut records = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let dir = repo.path().join(format!("build-{i}"));
            let bytes: Vec<u8> = (0..size).map(|b| (b as u8) ^ (i as u8 + 1)).collect();
            records.push(built::built(
                &dir,
                "5.0.0",
                &[(name, &bytes)],
                Some(GateStatus::Passed),
            ));
        }
        let children: Vec<_> = records
            .iter()
            .map(|r| {
                step::command(bin, repo.path(), &["--record", r.to_str().unwrap()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let mut codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap()).collect();
        codes.sort();
        assert_eq!(
            codes,
            [0, 1],
            "round {round}: {}",
            outs.iter().map(stderr).collect::<Vec<_>>().join("\n---\n")
        );
        let loser = outs.iter().find(|o| o.status.code() == Some(1)).unwrap();
        assert!(
            stderr(loser).contains("with different content"),
            "{}",
            stderr(loser)
        );
        let winner = records[outs.iter().position(|o| o.status.success()).unwrap()].clone();
        let store = repo.store_dir("5.0.0");
        assert_consistent(&store);
        let stored = Record::read(&store.join(record::FILE_NAME)).unwrap().record;
        let built = Record::read(&winner).unwrap().record;
        assert_eq!(
            stored.artifacts, built.artifacts,
            "round {round}: the winner's record"
        );
    }
}

#[test]
fn a_publish_killed_at_any_write_leaves_a_consistent_store_that_a_rerun_completes() {
    use std::os::unix::process::ExitStatusExt as _;
    let disk: Vec<u8> = (0..(3u32 << 20) + 17).map(|i| (i % 251) as u8).collect();
    let mut kills = 0;
    for at in 1.. {
        let repo = Repo::new();
        let record = repo.built(
            "6.0.0",
            &[("disk.raw", &disk), ("meta.json", b"{}")],
            Some(GateStatus::Passed),
        );
        let out = step::command(BIN, repo.path(), &["--record", record.to_str().unwrap()])
            .env("IMAGEPIPE_FAULT_KILL_AT", at.to_string())
            .output()
            .unwrap();
        let store = repo.store_dir("6.0.0");
        if out.status.success() {
            // No write was left to stop at.
            assert_consistent(&store);
            break;
        }
        assert_eq!(out.status.signal(), Some(9), "at {at}: {}", stderr(&out));
        kills += 1;
        assert_consistent_with(&store, true);
        let again = repo.run(&["--record", record.to_str().unwrap()]);
        assert_exit(&again, 0);
        assert_consistent(&store);
        let stored = Record::read(&store.join(record::FILE_NAME)).unwrap().record;
        assert_eq!(stored.artifacts.len(), 2, "at {at}");
    }
    assert!(kills >= 6, "{kills} points");
    eprintln!("publish: killed at {kills} points, each consistent, each completed by a re-run");
}
