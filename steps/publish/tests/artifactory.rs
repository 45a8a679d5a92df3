//! `imagepipe-publish` into Artifactory (the test server in `artifactory/`), with faults: after
//! every scenario the version is either fully published and verified, or not visible at all.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/support/artifactory.rs"]
mod artifactory;
#[path = "../../../tests/support/built.rs"]
mod common;
#[path = "../../../tests/support/server.rs"]
mod server;
#[path = "../../../tests/support/step.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use artifactory::{Fault, TOKEN};
use imagepipe::record::{GateStatus, Record};
use support::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-publish");
const RECORD: &str = "images/global/debian-12/1.0.0/imagepipe-record.json";

struct Case {
    dir: tempfile::TempDir,
    url: String,
    server: artifactory::Shared,
    record: PathBuf,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, server) = artifactory::start("os-images");
        std::fs::write(
            dir.path().join("imagepipe.toml"),
            format!("[store]\nurl = \"artifactory+{url}/os-images/images\"\ntoken_env = \"ART_TOKEN\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n"),
        )
        .unwrap();
        let disk: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let record = common::built(
            &dir.path().join("out"),
            "1.0.0",
            &[
                ("disk.qcow2", &disk),
                ("manifest.mf", b"SHA256(disk.qcow2)= x\n"),
            ],
            Some(GateStatus::Passed),
        );
        Self {
            dir,
            url,
            server,
            record,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn publish(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--record", self.record.to_str().unwrap()];
        args.extend(extra);
        support::command(BIN, self.path(), &args)
            .env("ART_TOKEN", TOKEN)
            .output()
            .unwrap()
    }

    fn visible(&self) -> bool {
        self.server.lock().unwrap().items.contains_key(RECORD)
    }

    /// Published and verified: the record is there, and every artifact it names has its bytes.
    fn assert_complete(&self) {
        let s = self.server.lock().unwrap();
        let stored = Record::from_slice(&s.items[RECORD].bytes, "server").unwrap();
        for a in stored.artifacts.iter().filter_map(|a| a.file()) {
            let item = &s.items[&format!("images/global/debian-12/1.0.0/{}", a.path)];
            assert_eq!(item.sha256, a.sha256.to_string());
        }
    }
}

#[test]
fn publishes_with_properties_and_the_record_last() {
    let case = Case::new();
    let out = case.publish(&[
        "--build-name",
        "images-cd",
        "--build-number",
        "42",
        "--build-info",
    ]);
    assert_exit(&out, 0);
    case.assert_complete();
    let s = case.server.lock().unwrap();
    let build = &s.builds[0];
    assert_eq!(
        (build["name"].as_str(), build["number"].as_str()),
        (Some("images-cd"), Some("42"))
    );
    let listed = build["modules"][0]["artifacts"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let disk_item = &s.items["images/global/debian-12/1.0.0/disk.qcow2"];
    let disk_entry = listed.iter().find(|a| a["name"] == "disk.qcow2").unwrap();
    assert_eq!(
        disk_entry["sha1"],
        disk_item.sha1.as_str(),
        "build-info lists the server's own sha1"
    );
    let disk = &s.items["images/global/debian-12/1.0.0/disk.qcow2"];
    let props: Vec<(&str, &str)> = disk
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        props,
        [
            ("build.name", "images-cd"),
            ("build.number", "42"),
            ("git.commit", "c".repeat(40).as_str()),
            ("image.name", "global/debian-12"),
            ("image.parent", "vendor/debian-12@12.8.0"),
            ("image.version", "1.0.0"),
            ("scan.status", "passed"),
        ]
    );
    let puts: Vec<&String> = s
        .log
        .iter()
        .filter(|l| l.starts_with("PUT /artifactory/os-images/"))
        .collect();
    assert!(
        puts.last().unwrap().contains("imagepipe-record.json"),
        "the record goes last: {puts:?}"
    );
    drop(s);
    // The build side reads it back: list (AQL) and fetch.
    let out = case.publish(&[]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("was already published"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rerun_sends_nothing_and_known_bytes_deploy_by_checksum() {
    let case = Case::new();
    assert_exit(&case.publish(&[]), 0);
    let sent = case.server.lock().unwrap().received;
    assert_exit(&case.publish(&[]), 0);
    assert_eq!(
        case.server.lock().unwrap().received,
        sent,
        "nothing was uploaded again"
    );

    // The same disk under a new version: the server has the bytes, so none travel.
    let disk = std::fs::read(case.path().join("out/disk.qcow2")).unwrap();
    let v2 = common::built(
        &case.path().join("v2"),
        "1.0.1",
        &[("disk.qcow2", &disk)],
        Some(GateStatus::Passed),
    );
    let before = case.server.lock().unwrap().received;
    let out = support::command(BIN, case.path(), &["--record", v2.to_str().unwrap()])
        .env("ART_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("by checksum"), "{}", stderr(&out));
    let after = case.server.lock().unwrap().received;
    assert!(
        after - before < 2000,
        "only the record was uploaded ({} bytes)",
        after - before
    );
}

#[test]
fn recovers_from_dropped_connections_5xx_and_429() {
    let case = Case::new();
    case.server.lock().unwrap().faults.extend([
        Fault::Drop,
        Fault::Status(503),
        Fault::Status(500),
        Fault::TooMany(1),
    ]);
    let out = case.publish(&[]);
    assert_exit(&out, 0);
    case.assert_complete();
    assert!(case.server.lock().unwrap().faults.is_empty());
}

#[test]
fn persistent_failures_leave_nothing_visible_and_a_rerun_completes() {
    let case = Case::new();
    case.server
        .lock()
        .unwrap()
        .faults
        .extend(std::iter::repeat_n(Fault::Drop, 10));
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("upload failed"), "{}", stderr(&out));
    assert!(!case.visible(), "no record without its artifacts");
    case.server.lock().unwrap().faults.clear();
    assert_exit(&case.publish(&[]), 0);
    case.assert_complete();
}

#[test]
fn auth_policy_and_checksum_rejections() {
    let case = Case::new();
    let out = support::command(
        BIN,
        case.path(),
        &["--record", case.record.to_str().unwrap()],
    )
    .env("ART_TOKEN", "wrong")
    .output()
    .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("401: not authorised"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("wrong"),
        "the token is never printed"
    );
    assert!(!case.visible());

    // A repository policy refusing the record: the artifacts are stored, the version is not visible.
    case.server
        .lock()
        .unwrap()
        .refuse
        .push("imagepipe-record.json".into());
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("409 Deploy rejected by the repository's policy"),
        "{}",
        stderr(&out)
    );
    assert!(!case.visible());
    case.server.lock().unwrap().refuse.clear();

    // A file of another size than the record says is refused before anything is sent.
    let case = Case::new();
    let manifest = case.path().join("out/manifest.mf");
    let original = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"changed after the build").unwrap();
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!(
            "artifact `manifest`: {} is 23 bytes, but the record says {}",
            manifest.display(),
            original.len()
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        case.server.lock().unwrap().items.is_empty(),
        "nothing was sent"
    );
    // Bytes of the same size that no longer match are refused while they are sent (on a fresh
    // server: one that already holds the recorded bytes rightly publishes those).
    let mut same_size = original.clone();
    same_size[0] ^= 0x20;
    std::fs::write(&manifest, &same_size).unwrap();
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("manifest.mf"), "{}", stderr(&out));
    assert!(!case.visible());
    let _ = &case.url;
}

#[test]
fn large_files_go_up_in_parts_where_the_server_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = artifactory::start("os-images");
    server.lock().unwrap().multipart = true;
    std::fs::write(
        dir.path().join("imagepipe.toml"),
        format!("[store]\nurl = \"artifactory+{url}/os-images\"\ntoken_env = \"ART_TOKEN\"\n"),
    )
    .unwrap();
    let disk: Vec<u8> = (0..(12u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let record = common::built(
        &dir.path().join("out"),
        "2.0.0",
        &[("disk.vmdk", &disk)],
        Some(GateStatus::Passed),
    );
    // A failed part is retried.
    server.lock().unwrap().faults.push_back(Fault::Status(503));
    let out = support::command(BIN, dir.path(), &["--record", record.to_str().unwrap()])
        .env("ART_TOKEN", TOKEN)
        .env("IMAGEPIPE_MULTIPART_PART_MIB", "1")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let s = server.lock().unwrap();
    let parts = s
        .log
        .iter()
        .filter(|l| l.contains("/api/v1/uploads/urlPart"))
        .count();
    assert_eq!(parts, 12, "{:?}", s.log);
    let item = &s.items["global/debian-12/2.0.0/disk.vmdk"];
    assert!(item.bytes == disk, "the parts assemble to the file");
    assert_eq!(
        item.properties.get("image.version").map(String::as_str),
        Some("2.0.0")
    );
    assert_eq!(
        item.properties.get("image.parent").map(String::as_str),
        Some("vendor/debian-12@12.8.0")
    );
    assert!(
        s.items
            .contains_key("global/debian-12/2.0.0/imagepipe-record.json")
    );
}
