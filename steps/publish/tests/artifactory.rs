//! `imagepipe-publish` into Artifactory (the test server in `artifactory/`), with faults: after
//! every scenario the version is either fully published and verified, or not visible at all.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, step};

use std::path::{Path, PathBuf};
use std::process::Output;

use artifactory::{Fault, TOKEN};
use imagepipe::record::{GateStatus, Record};
use step::{assert_exit, stderr};

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
        let record = built::built(
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
        step::command(BIN, self.path(), &args)
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
        .keys()
        .map(|k| (k.as_str(), disk.prop(k).unwrap()))
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
    let v2 = built::built(
        &case.path().join("v2"),
        "1.0.1",
        &[("disk.qcow2", &disk)],
        Some(GateStatus::Passed),
    );
    let before = case.server.lock().unwrap().received;
    let out = step::command(BIN, case.path(), &["--record", v2.to_str().unwrap()])
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
    let out = step::command(
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
    let record = built::built(
        &dir.path().join("out"),
        "2.0.0",
        &[("disk.vmdk", &disk)],
        Some(GateStatus::Passed),
    );
    // A failed part is retried.
    server.lock().unwrap().faults.push_back(Fault::Status(503));
    let out = step::command(BIN, dir.path(), &["--record", record.to_str().unwrap()])
        .env("ART_TOKEN", TOKEN)
        .env("IMAGEPIPE_MULTIPART_PART_MIB", "1")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let s = server.lock().unwrap();
    let parts = s
        .log
        .iter()
        .filter(|l| l.starts_with("PUT /artifactory/objectstore/"))
        .count();
    assert_eq!(parts, 13, "12 parts, one of them twice: {:?}", s.log);
    let item = &s.items["global/debian-12/2.0.0/disk.vmdk"];
    assert!(item.bytes == disk, "the parts assemble to the file");
    assert_eq!(item.prop("image.version"), Some("2.0.0"));
    assert_eq!(item.prop("image.parent"), Some("vendor/debian-12@12.8.0"));
    // The file exists only once the assembled upload is saved by a checksum deploy.
    let complete = s
        .log
        .iter()
        .position(|l| l.ends_with("/uploads/complete"))
        .unwrap_or_else(|| panic!("{:?}", s.log));
    let deploy = s
        .log
        .iter()
        .rposition(|l| {
            l.starts_with("PUT /artifactory/os-images/global/debian-12/2.0.0/disk.vmdk;")
        })
        .unwrap();
    assert!(complete < deploy, "{:?}", s.log);
    assert!(
        s.items
            .contains_key("global/debian-12/2.0.0/imagepipe-record.json")
    );
}

/// A 12 MiB disk in 1 MiB parts on a server that offers multipart upload.
struct Multipart {
    dir: tempfile::TempDir,
    server: artifactory::Shared,
    record: PathBuf,
    disk: Vec<u8>,
}

const MULTIPART_DISK: &str = "global/debian-12/2.0.0/disk.vmdk";

impl Multipart {
    fn new() -> Self {
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
        let record = built::built(
            &dir.path().join("out"),
            "2.0.0",
            &[("disk.vmdk", &disk)],
            Some(GateStatus::Passed),
        );
        Self {
            dir,
            server,
            record,
            disk,
        }
    }

    fn publish(&self) -> Output {
        step::command(
            BIN,
            self.dir.path(),
            &["--record", self.record.to_str().unwrap()],
        )
        .env("ART_TOKEN", TOKEN)
        .env("IMAGEPIPE_MULTIPART_PART_MIB", "1")
        .output()
        .unwrap()
    }

    fn calls(&self, op: &str) -> usize {
        let suffix = format!("/api/v1/uploads/{op}");
        self.server
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.ends_with(&suffix))
            .count()
    }
}

#[test]
fn a_multipart_upload_whose_assembly_fails_is_retried_or_aborted_as_jfrogs_client_does() {
    use artifactory::MultipartFault::{NonRetryable, Retryable, Unavailable};
    // RETRYABLE_ERROR, and 503s from `status`: `complete` is called again, and the upload
    // finishes (jfrog-client-go `completeAndPollForStatus`).
    let case = Multipart::new();
    {
        let mut s = case.server.lock().unwrap();
        s.assembly_polls = 2;
        s.multipart_faults.extend([Retryable, Unavailable(1)]);
    }
    let out = case.publish();
    assert_exit(&out, 0);
    assert_eq!(
        case.calls("complete"),
        3,
        "once, after RETRYABLE_ERROR, after 503"
    );
    assert_eq!(case.calls("abort"), 0);
    assert!(case.server.lock().unwrap().items[MULTIPART_DISK].bytes == case.disk);

    // NON_RETRYABLE_ERROR: the upload is aborted and nothing is published.
    let case = Multipart::new();
    case.server
        .lock()
        .unwrap()
        .multipart_faults
        .push_back(NonRetryable);
    let out = case.publish();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("multipart upload NON_RETRYABLE_ERROR"),
        "{}",
        stderr(&out)
    );
    assert_eq!(case.calls("abort"), 1);
    {
        let s = case.server.lock().unwrap();
        assert!(s.items.is_empty(), "{:?}", s.items.keys());
        assert!(s.uploads.values().all(|u| u.status == "ABORTED"));
    }

    // RETRYABLE_ERROR every time: `complete` is tried a bounded number of times, then aborted.
    let case = Multipart::new();
    case.server
        .lock()
        .unwrap()
        .multipart_faults
        .extend(std::iter::repeat_n(Retryable, 20));
    let out = case.publish();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("attempts to complete it"),
        "{}",
        stderr(&out)
    );
    assert!(case.calls("complete") < 20);
    assert_eq!(case.calls("abort"), 1);
    assert!(case.server.lock().unwrap().items.is_empty());

    // A part the object store keeps refusing: aborted as well.
    let case = Multipart::new();
    case.server
        .lock()
        .unwrap()
        .faults
        .extend(std::iter::repeat_n(Fault::Status(500), 20));
    let out = case.publish();
    assert_exit(&out, 2);
    assert_eq!(case.calls("abort"), 1);
    assert_eq!(case.calls("complete"), 0);
    assert!(case.server.lock().unwrap().items.is_empty());
}

#[test]
fn property_values_survive_every_character() {
    let case = Case::new();
    let name = r"images; cd=1,2 \ | + % ü 東";
    let out = case.publish(&["--build-name", name, "--build-number", "7;8"]);
    assert_exit(&out, 0);
    let s = case.server.lock().unwrap();
    for file in ["disk.qcow2", "imagepipe-record.json"] {
        let item = &s.items[&format!("images/global/debian-12/1.0.0/{file}")];
        assert_eq!(item.properties["build.name"], [name], "{file}");
        assert_eq!(item.properties["build.number"], ["7;8"], "{file}");
        assert_eq!(item.prop("image.name"), Some("global/debian-12"));
    }
}

#[test]
fn a_token_that_may_not_annotate_is_told_so_rather_than_leaving_files_unlabelled() {
    let case = Case::new();
    case.server.lock().unwrap().deployer_cannot_annotate = true;
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("Annotate permission"),
        "{}",
        stderr(&out)
    );
    assert!(!case.visible(), "no record of unlabelled files");
}

#[test]
fn a_repository_trusting_server_checksums_never_keeps_wrong_bytes() {
    use artifactory::ChecksumPolicy::Server;
    // Damaged on the way: stored with 201 by the server, found by this step, deleted, sent again.
    let case = Case::new();
    {
        let mut s = case.server.lock().unwrap();
        s.checksum_policy = Server;
        s.faults.push_back(Fault::Corrupt);
    }
    let out = case.publish(&[]);
    assert_exit(&out, 0);
    case.assert_complete();
    assert!(
        case.server
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|l| l.starts_with("DELETE /artifactory/os-images/images/global/debian-12/1.0.0/")),
        "the damaged copy was deleted"
    );

    // The same under the default policy, which refuses damaged bytes with 409 itself.
    let case = Case::new();
    case.server.lock().unwrap().faults.push_back(Fault::Corrupt);
    assert_exit(&case.publish(&[]), 0);
    case.assert_complete();

    // A file that changed after the build (same size): refused, and nothing left at its path.
    let case = Case::new();
    case.server.lock().unwrap().checksum_policy = Server;
    let manifest = case.path().join("out/manifest.mf");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&manifest, &bytes).unwrap();
    let out = case.publish(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("changed after the build"),
        "{}",
        stderr(&out)
    );
    let s = case.server.lock().unwrap();
    assert!(
        !s.items
            .contains_key("images/global/debian-12/1.0.0/manifest.mf"),
        "wrong bytes left at the path"
    );
    assert!(!s.items.contains_key(RECORD));
}

#[test]
fn another_publisher_first_at_the_path_is_a_conflict_not_an_overwrite() {
    let case = Case::new();
    {
        let mut s = case.server.lock().unwrap();
        s.deployer_cannot_delete = true;
        // Another run's file lands between this run's look and its deploy.
        s.sneak = Some((
            "images/global/debian-12/1.0.0/disk.qcow2".into(),
            artifactory::Item::new(b"another build's disk".to_vec()),
        ));
    }
    let out = case.publish(&[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("already holds different bytes"),
        "{}",
        stderr(&out)
    );
    let s = case.server.lock().unwrap();
    assert_eq!(
        s.items["images/global/debian-12/1.0.0/disk.qcow2"].bytes,
        b"another build's disk"
    );
    assert!(!s.items.contains_key(RECORD));
}
