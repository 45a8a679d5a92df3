//! `imagepipe-scan --published` and `--all-published`: versions scanned and published as CD
//! does (the record-driven scan, then imagepipe's publish) into a local store, the Artifactory
//! test server and the real `docker-registry`, then rescanned in place against a database with
//! a new advisory. Only the new finding is new, and only a small part of each artifact is read.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, images, registry, step};

use std::path::{Path, PathBuf};
use std::process::Output;

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::record::{GateStatus, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{self, LocalStore, Store, StoreUrl};
use images::DEBIAN_12_OS_RELEASE;
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-scan");

const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n";

/// The advisory the publish-time scan knew (zlib, medium).
const OLD: &str = "DEBIAN-CVE-2026-0002";
/// The advisory published after it (openssl, critical).
const NEW: &str = "DSA-5001-1";

fn advisory(db: &Path, id: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let (package, fixed, extra) = if id == NEW {
        (
            "openssl",
            "3.0.11-1~deb12u2",
            r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
        )
    } else {
        ("zlib", "1:1.2.13.dfsg-2", "")
    };
    std::fs::create_dir_all(db).unwrap();
    std::fs::write(
        db.join(format!("{id}.json")),
        format!(r#"{{"id":"{id}","modified":"{now}",{extra}"affected":[{{"package":{{"ecosystem":"Debian:12","name":"{package}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}],"ecosystem_specific":{{"urgency":"medium"}}}}]}}"#),
    )
    .unwrap();
}

/// Incompressible bytes, as most of a real image is (binaries, compressed data).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A Debian 12 system of 48 MiB holding 32 MiB of program data, as raw ext4.
fn raw_disk(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(tree.join("usr/lib/app")).unwrap();
    std::fs::write(tree.join("etc/os-release"), DEBIAN_12_OS_RELEASE).unwrap();
    std::fs::write(tree.join("var/lib/dpkg/status"), STATUS).unwrap();
    for i in 0..8u64 {
        std::fs::write(
            tree.join(format!("usr/lib/app/lib{i}.so")),
            noise(4 << 20, 0x9e37_79b9_7f4a_7c15 ^ i),
        )
        .unwrap();
    }
    let raw = dir.join("disk.raw");
    images::ext4(&tree, &raw, "root", "48M");
    raw
}

fn ui() -> Ui {
    Ui::new("test", false, ProgressMode::None)
}

struct Case {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("osv");
        advisory(&db, OLD);
        Self { dir, db }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, store: &str) {
        let token = if store.starts_with("artifactory") {
            "token_env = \"ART_TOKEN\"\n"
        } else {
            ""
        };
        std::fs::write(
            self.path().join("imagepipe.toml"),
            format!("[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"{store}\"\n{token}\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"images/global.pkr.hcl\"\n[image.scan]\nfail_on = \"critical\"\n"),
        )
        .unwrap();
    }

    /// Builds `version` with `file` as its disk, scans it as CD does (today's database knows
    /// only the old advisory), and publishes it into `store`.
    async fn publish(&self, store: &dyn Store, version: &str, name: &str, file: &Path) -> u64 {
        let bytes = std::fs::read(file).unwrap();
        let out = self.path().join(format!("out/global/debian-12/{version}"));
        let record = built::built(&out, version, &[(name, &bytes)], None);
        let scanned = self.run(&[
            "--record",
            record.to_str().unwrap(),
            "--osv-db",
            self.db.to_str().unwrap(),
        ]);
        assert_exit(&scanned, 0);
        let loaded = Record::read(&record).unwrap();
        let scan = loaded.record.scan.clone().unwrap();
        assert_eq!(scan.status, GateStatus::Passed);
        assert_eq!(
            scan.findings
                .unwrap()
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>(),
            [OLD]
        );
        imagepipe::publish::publish(store, &loaded, &record, None, None, false, &ui())
            .await
            .unwrap();
        bytes.len() as u64
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = command(BIN, self.path(), args);
        cmd.env("ART_TOKEN", artifactory::TOKEN);
        cmd.output().unwrap()
    }

    async fn rescan(&self, args: &[&str]) -> Output {
        let mut all = vec!["--osv-db", self.db.to_str().unwrap(), "--json"];
        all.extend_from_slice(args);
        let all: Vec<String> = all.into_iter().map(String::from).collect();
        let dir = self.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            command(BIN, &dir, &args)
                .env("ART_TOKEN", artifactory::TOKEN)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }
}

/// The one rescan of a `--json` answer, checked: the new advisory and only it is new, at
/// critical, and little of the artifact was read.
fn check_new(out: &Output, version: &str, size: u64) -> Value {
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(out)));
    let rescans = doc["rescans"].as_array().unwrap();
    let r = rescans
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("no rescan of {version}: {doc}"));
    assert_eq!(r["image"], "global/debian-12");
    assert_eq!(r["new_ids"], serde_json::json!([NEW]), "{r}");
    assert_eq!(r["new_max_severity"], "critical");
    assert_eq!(r["last_scan"]["findings_known"], true);
    let mut all: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, [OLD, NEW]);
    assert_eq!(r["artifact_size"], size);
    let read = r["bytes_read"].as_u64().unwrap();
    assert!(
        read > 0 && read * 20 < size,
        "{version}: read {read} of {size} bytes, not under 5%"
    );
    eprintln!(
        "{version} from {}: read {read} of {size} bytes ({:.2}%) in {} requests, {:.3} s",
        r["store"],
        read as f64 * 100.0 / size as f64,
        r["requests"],
        r["seconds"].as_f64().unwrap()
    );
    r.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_store_s_versions_are_rescanned_in_place_and_new_findings_gate() {
    let case = Case::new();
    let raw = raw_disk(case.path());
    let qcow2 = images::qcow2(&raw, false);
    let vmdk = images::vmdk(&raw, "streamOptimized");
    let store = LocalStore::new(case.path().join("store"));
    case.config("file:store");
    let qcow2_size = case.publish(&store, "1.0.0", "disk.qcow2", &qcow2).await;
    let vmdk_size = case.publish(&store, "1.1.0", "disk.vmdk", &vmdk).await;

    // Nothing new yet: the rescan agrees with the publish-time scan.
    let out = case
        .rescan(&[
            "--published",
            "global/debian-12@1.0.0",
            "--fail-on-new",
            "low",
        ])
        .await;
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rescans"][0]["new_ids"], serde_json::json!([]));
    assert_eq!(doc["rescans"][0]["findings"][0]["id"], OLD);

    advisory(&case.db, NEW);
    let out = case
        .rescan(&["--published", "global/debian-12@1.0.0"])
        .await;
    assert_exit(&out, 0);
    check_new(&out, "1.0.0", qcow2_size);
    assert!(
        stderr(&out).contains(&format!("new critical {NEW}")),
        "{}",
        stderr(&out)
    );

    // Every version, and a gate on new findings at or above high.
    let out = case
        .rescan(&["--all-published", "--fail-on-new", "high"])
        .await;
    assert_exit(&out, 1);
    check_new(&out, "1.0.0", qcow2_size);
    check_new(&out, "1.1.0", vmdk_size);
    let text = stderr(&out);
    assert!(
        text.contains("global/debian-12@1.1.0: new findings up to critical (DSA-5001-1)"),
        "{text}"
    );

    // As the action runs it: every input at its default (all-published "false") and the
    // version in `published`.
    let dir = case.path().to_path_buf();
    let db = case.db.clone();
    let gh = tokio::task::spawn_blocking(move || {
        let mut cmd = command(BIN, &dir, &[]);
        cmd.env("IMAGEPIPE_PUBLISHED", "global/debian-12@1.0.0")
            .env("IMAGEPIPE_OSV_DB", &db);
        imagepipe_testkit::on_github!(cmd, &dir)
    })
    .await
    .unwrap();
    assert_exit(&gh.out, 0);
    assert!(
        stderr(&gh.out).contains(&format!("new critical {NEW}")),
        "{}",
        stderr(&gh.out)
    );

    // A version the store does not hold, and a name that is not IMAGE@VERSION: exit 2.
    let out = case
        .rescan(&["--published", "global/debian-12@9.9.9"])
        .await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("9.9.9"), "{}", stderr(&out));
    let out = case.rescan(&["--published", "global/debian-12"]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("IMAGE@VERSION"), "{}", stderr(&out));

    // A database nobody refreshed finds nothing new: the rescan says so, or with
    // --stale-db fail stops before reading anything.
    for entry in std::fs::read_dir(&case.db).unwrap() {
        let path = entry.unwrap().path();
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        doc["modified"] = "2020-01-01T00:00:00Z".into();
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    }
    let out = case
        .rescan(&["--published", "global/debian-12@1.0.0"])
        .await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("OSV database: 2 records, newest from 2020-01-01")
            && stderr(&out).contains("older than 7days; refresh it"),
        "{}",
        stderr(&out)
    );
    let out = case
        .rescan(&[
            "--published",
            "global/debian-12@1.0.0",
            "--stale-db",
            "fail",
        ])
        .await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifactory_and_a_registry_are_read_with_ranges_and_a_dead_store_is_exit_2() {
    let case = Case::new();
    let raw = raw_disk(case.path());
    let ova = images::ova(&raw, "disk");
    let qcow2 = images::qcow2(&raw, true);

    // Artifactory: an OVA, read inside the tar through Range requests (206).
    let (url, art) = artifactory::start("os-images");
    let token = case.path().join("token");
    std::fs::write(&token, artifactory::TOKEN).unwrap();
    let art_url = format!("artifactory+{url}/os-images");
    let art_store = store::open(&StoreSpec {
        url: StoreUrl::parse(&art_url, Path::new("/")).unwrap(),
        credentials: Credentials {
            token_file: Some(token),
            ..Credentials::default()
        },
        tls: TlsSpec::default(),
    })
    .unwrap();
    case.config(&art_url);
    let ova_size = case
        .publish(art_store.as_ref(), "2.0.0", "disk.ova", &ova)
        .await;
    advisory(&case.db, NEW);
    let before = art.lock().unwrap().log.len();
    let out = case
        .rescan(&[
            "--published",
            "global/debian-12@2.0.0",
            "--fail-on-new",
            "critical",
        ])
        .await;
    assert_exit(&out, 1);
    let r = check_new(&out, "2.0.0", ova_size);
    let gets = art.lock().unwrap().log[before..]
        .iter()
        .filter(|l| l.starts_with("GET ") && l.ends_with("disk.ova"))
        .count() as u64;
    assert_eq!(
        gets,
        r["requests"].as_u64().unwrap(),
        "every read is one ranged GET"
    );

    // The real docker-registry: a compressed qcow2 blob.
    std::fs::remove_file(case.db.join(format!("{NEW}.json"))).unwrap();
    let registry = registry::Registry::start();
    let oci = store::open(&StoreSpec {
        url: StoreUrl::parse(&registry.url(), Path::new("/")).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    })
    .unwrap();
    case.config(&registry.url());
    let qcow2_size = case
        .publish(oci.as_ref(), "3.0.0", "disk.qcow2", &qcow2)
        .await;
    advisory(&case.db, NEW);
    let out = case.rescan(&["--all-published"]).await;
    assert_exit(&out, 0);
    check_new(&out, "3.0.0", qcow2_size);

    // Nothing listens there: exit 2, naming the store.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("artifactory+http://127.0.0.1:{port}/artifactory/os-images");
    case.config(&dead);
    let out = case
        .rescan(&["--published", "global/debian-12@2.0.0"])
        .await;
    assert_exit(&out, 2);
    let text = stderr(&out);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    let out = case.rescan(&["--all-published"]).await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_windows_image_is_rescanned_against_microsoft_s_documents() {
    let case = Case::new();
    case.config("file:primary");
    let store = LocalStore::new(case.path().join("primary"));
    let work = case.path().join("work");
    let hives = imagepipe_testkit::windows::server_2022_hives(&work.join("hives"), 0);
    let raw = imagepipe_testkit::windows::gpt_disk(
        &work,
        &hives,
        imagepipe_testkit::windows::GPT_BASIC_DATA,
    );
    let bytes = std::fs::read(images::qcow2(&raw, true)).unwrap();
    let size = bytes.len() as u64;
    // Published as if scanned, before records listed findings: every finding counts as new.
    let out = case.path().join("out/global/debian-12/3.0.0");
    let record = built::built(
        &out,
        "3.0.0",
        &[("disk.qcow2", &bytes)],
        Some(GateStatus::Passed),
    );
    let loaded = Record::read(&record).unwrap();
    imagepipe::publish::publish(&store, &loaded, &record, None, None, false, &ui())
        .await
        .unwrap();

    // Without Microsoft's documents, refused by name.
    let out = case
        .rescan(&["--published", "global/debian-12@3.0.0"])
        .await;
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "is a Windows image: say where Microsoft's security update documents are: --msrc-db"
        ),
        "{}",
        stderr(&out)
    );

    // With them (a CVRF document as the Security Update Guide's API serves it, cut down to
    // what the scan reads): the CVE fixed above 10.0.20348.2849 is new, the one fixed at it
    // is not a finding.
    let msrc = case.path().join("msrc");
    std::fs::create_dir_all(&msrc).unwrap();
    let vuln = |cve: &str, build: &str, kb: &str| {
        serde_json::json!({"CVE": cve, "Title": {"Value": cve},
            "CVSSScoreSets": [{"BaseScore": 9.8, "Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "ProductID": ["11923"]}],
            "Remediations": [{"Description": {"Value": kb}, "ProductID": ["11923"], "Type": 2, "FixedBuild": build}]})
    };
    std::fs::write(
        msrc.join("2024-Dec.json"),
        serde_json::json!({
            "DocumentTitle": {"Value": "December 2024 Security Updates"},
            "DocumentTracking": {"Identification": {"ID": {"Value": "2024-Dec"}}, "Status": 2, "Version": "1.0",
                                 "InitialReleaseDate": "2024-12-10T08:00:00Z",
                                 "CurrentReleaseDate": chrono::Utc::now().to_rfc3339()},
            "ProductTree": {"FullProductName": [{"ProductID": "11923", "Value": "Windows Server 2022"}]},
            "Vulnerability": [vuln("CVE-2024-49112", "10.0.20348.2966", "5048654"),
                              vuln("CVE-2024-43451", "10.0.20348.2849", "5046616")],
        })
        .to_string(),
    )
    .unwrap();
    let out = case
        .rescan(&[
            "--published",
            "global/debian-12@3.0.0",
            "--msrc-db",
            msrc.to_str().unwrap(),
            "--fail-on-new",
            "high",
        ])
        .await;
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &doc["rescans"][0];
    assert_eq!(r["new_ids"], serde_json::json!(["CVE-2024-49112"]), "{doc}");
    assert_eq!(r["new_max_severity"], "critical");
    assert_eq!(r["packages"], imagepipe_testkit::windows::PROGRAMS.len());
    assert_eq!(r["artifact_size"], size);

    // A store of both kinds, rescanned with Microsoft's documents alone: the Windows version
    // is rescanned, the Linux one is refused by name (it needs --osv-db), and the step fails.
    let raw = raw_disk(case.path());
    case.publish(&store, "1.0.0", "disk.qcow2", &images::qcow2(&raw, false))
        .await;
    let dir = case.path().to_path_buf();
    let msrc_arg = msrc.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        command(
            BIN,
            &dir,
            &["--all-published", "--msrc-db", &msrc_arg, "--json"],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_exit(&out, 2);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rescanned: Vec<&str> = doc["rescans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(rescanned, ["3.0.0"], "{doc}");
    assert_eq!(doc["errors"][0]["version"], "1.0.0");
    assert!(
        doc["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("is a Linux image: say where the OSV database is: --osv-db"),
        "{doc}"
    );
}
