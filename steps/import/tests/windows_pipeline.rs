//! A Windows image through the whole pipeline, with the real step binaries and real tools:
//! `imagepipe-build` runs Packer 1.6.6 on the local example's Windows template
//! (`examples/local-pipeline/images/vendor/windows-2022`: a file builder, `make-disk` writing a
//! Windows Server 2022 GPT disk with mkntfs, ntfs-3g and hivex, `make-ova` packaging it), then
//! `imagepipe-scan` judges it against the example's Microsoft CVRF and CSAF documents
//! (`examples/local-pipeline/msrc`) and the Windows baseline, `imagepipe-publish` refuses it
//! while the verdict fails and publishes it once the example's configuration (one rule left to
//! a layer above, two findings waived) passes it, a copy fills the second site's store,
//! `imagepipe-replicate-check` proves both sites hold it, and `imagepipe-import` puts the OVA
//! into a VCSP library and a content library of govmomi's vCenter simulator. A month later, a
//! rescan in place with a new Microsoft document finds the CVE it adds.
//!
//! Needs root and /dev/fuse (ntfs-3g), as the scan's Windows tests do, and the other steps'
//! binaries beside this one, which `cargo test --workspace` builds (or `cargo build -p
//! imagepipe-build -p imagepipe-scan -p imagepipe-publish -p imagepipe-replicate-check`).

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{step, vcsim};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagepipe::record::{GateStatus, Record};
use serde_json::Value;
use step::{assert_exit, command, sibling_bin, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-import");
const IMAGE: &str = "vendor/windows-2022";
const VERSION: &str = "20348.2849.0";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/local-pipeline")
}

/// The example's own `[[image]]` table of the Windows image (the last in its imagepipe.toml),
/// with `drop` lines left out.
fn example_image(drop: &[&str]) -> String {
    let text = std::fs::read_to_string(example().join("imagepipe.toml")).unwrap();
    let at = text
        .find(&format!("name = \"{IMAGE}\""))
        .expect("the example configures the Windows image");
    let start = text[..at].rfind("[[image]]").unwrap();
    text[start..]
        .lines()
        .filter(|l| !drop.iter().any(|d| l.starts_with(d)))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Pipeline {
    dir: tempfile::TempDir,
    vc_url: String,
}

impl Pipeline {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Two sites: dc1 reads the primary store and has a VCSP library; dc2 has its own store (a
    /// copy of the primary: its replication) and the simulator's content library `images`.
    fn configure(&self, image: &str) {
        std::fs::write(
            self.path().join("imagepipe.toml"),
            format!(
                r#"[pipeline]
output_dir = "out"

[store]
url = "file:primary"

[[site]]
name = "dc1"
[site.store]
url = "file:primary"
[site.library]
url = "vcsp:library-dc1"

[[site]]
name = "dc2"
[site.store]
url = "file:dc2-store"
[site.library]
url = "{}"
library = "images"
username_env = "VC_USER"
password_env = "VC_PASS"

{image}
"#,
                self.vc_url
            ),
        )
        .unwrap();
    }

    /// `step` on the Windows image's version.
    fn run(&self, step: &str, args: &[&str]) -> Output {
        let mut full = args.to_vec();
        full.extend(["--image", IMAGE, "--version", VERSION]);
        self.run_as_is(step, &full)
    }

    fn run_as_is(&self, step: &str, full: &[&str]) -> Output {
        let bin = sibling_bin(BIN, step);
        let path = format!(
            "{}:/usr/sbin:/sbin",
            std::env::var("PATH").unwrap_or_default()
        );
        tokio::task::block_in_place(|| {
            command(bin.to_str().unwrap(), self.path(), full)
                .env("PATH", path)
                // Microsoft's documents only: a Windows image needs no OSV database, to be
                // scanned or rescanned.
                .env("IMAGEPIPE_MSRC_DB", self.path().join("msrc"))
                // The example's documents carry Microsoft's release dates, months old.
                .env("IMAGEPIPE_MAX_DB_AGE", "100years")
                .env("VC_USER", vcsim::USER)
                .env("VC_PASS", vcsim::PASSWORD)
                .output()
                .unwrap()
        })
    }

    fn record_path(&self) -> PathBuf {
        self.path()
            .join(format!("out/{IMAGE}/{VERSION}/imagepipe-record.json"))
    }
}

/// `(id, severity, waived)` of every finding of a scan's `--json`.
fn findings(doc: &Value) -> Vec<(String, String, bool)> {
    let mut out: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                !f["waived"].is_null(),
            )
        })
        .collect();
    out.sort();
    out
}

fn failed_rules(doc: &Value) -> Vec<String> {
    doc["policy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_image_goes_through_build_scan_publish_replicate_check_and_import() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let vc_library = vc.create_library("images").await;
    let pipeline = Pipeline {
        dir: tempfile::tempdir().unwrap(),
        vc_url: vc.url.clone(),
    };
    // The example's Windows template, its scripts, documents and waivers, where they lie in it.
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    for rel in [
        "images/vendor/windows-2022",
        "scripts/make-ova",
        "msrc",
        "waivers.toml",
    ] {
        let to = pipeline.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        ok(Command::new("cp")
            .arg("-a")
            .arg(example().join(rel))
            .arg(&to));
    }

    // 1. Build: Packer runs the template; the record names the qcow2 disk and the OVA.
    pipeline.configure(&example_image(&[]));
    let out = pipeline.run("imagepipe-build", &[]);
    assert_exit(&out, 0);
    let rec = Record::read(&pipeline.record_path()).unwrap().record;
    assert!(rec.build.packer_version.contains("1.6.6"), "{rec:?}");
    let mut files: Vec<String> = rec
        .artifacts
        .iter()
        .filter_map(|a| match &a.kind {
            imagepipe::record::ArtifactKind::File(f) => Some(f.path.clone()),
            _ => None,
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["vendor-windows-2022.ova", "vendor-windows-2022.qcow2"],
        "{rec:?}"
    );

    // 2. Scanned without the example's waivers and with every Windows rule: the verdict fails,
    // on exactly the findings the documents imply for 10.0.20348.2849 and on LLMNR, which
    // Windows leaves on.
    pipeline.configure(&example_image(&["disable_rules", "waivers"]));
    let out = pipeline.run("imagepipe-scan", &["--json"]);
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&doc),
        [
            ("CVE-2024-49112".into(), "critical".into(), false),
            ("CVE-2025-21333".into(), "high".into(), false),
        ]
    );
    assert_eq!(failed_rules(&doc), ["win-llmnr-off"]);
    assert_eq!(
        doc["policy"].as_array().unwrap().len(),
        9,
        "the nine Windows rules judged it: {}",
        doc["policy"]
    );
    let out = pipeline.run("imagepipe-publish", &[]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !pipeline.path().join("primary").join(IMAGE).exists()
            || std::fs::read_dir(pipeline.path().join("primary").join(IMAGE))
                .unwrap()
                .next()
                .is_none(),
        "a failed scan publishes nothing"
    );

    // 3. The example's configuration: LLMNR is a layer above's, the two findings are waived.
    pipeline.configure(&example_image(&[]));
    let out = pipeline.run("imagepipe-scan", &["--json"]);
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&doc),
        [
            ("CVE-2024-49112".into(), "critical".into(), true),
            ("CVE-2025-21333".into(), "high".into(), true),
        ]
    );
    assert_eq!(failed_rules(&doc), Vec::<String>::new());
    assert_eq!(doc["policy"].as_array().unwrap().len(), 8);

    // The record and its inventory: the release, its programs in both views, its updates.
    let rec = Record::read(&pipeline.record_path()).unwrap().record;
    let scan = rec.scan.as_ref().unwrap();
    assert_eq!(scan.status, GateStatus::Passed);
    assert_eq!(scan.waived, 2);
    assert_eq!(scan.policy_failures, 0);
    let mut recorded: Vec<(String, String, bool)> = scan
        .findings
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| (f.id.clone(), f.severity.clone(), f.waived))
        .collect();
    recorded.sort();
    assert_eq!(recorded, findings(&doc));
    let report = scan.reports.iter().find(|r| r.kind == "json").unwrap();
    let report: Value = serde_json::from_slice(
        &std::fs::read(pipeline.record_path().parent().unwrap().join(&report.path)).unwrap(),
    )
    .unwrap();
    assert_eq!(report["os"]["id"], "windows");
    assert_eq!(report["os"]["version_id"], "10.0.20348.2849");
    assert!(
        report["os"]["pretty_name"]
            .as_str()
            .unwrap()
            .contains("Windows Server 2022"),
        "{}",
        report["os"]
    );
    let mut programs: Vec<(String, String)> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    programs.sort();
    assert_eq!(
        programs,
        [
            ("Notepad++ (32-bit x86)".into(), "8.6.9".into()),
            ("PowerShell 7-x64".into(), "7.4.6.0".into()),
            ("VMware Tools".into(), "12.4.0.23259341".into()),
        ]
    );
    let kbs: Vec<&str> = report["windows"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kb"].as_str().unwrap())
        .collect();
    assert_eq!(kbs, ["KB5012170", "KB5046616"]);

    // 4. Published; dc2's store filled by its replication (a copy); both sites checked.
    let out = pipeline.run("imagepipe-publish", &[]);
    assert_exit(&out, 0);
    let out = pipeline.run("imagepipe-replicate-check", &[]);
    assert_ne!(out.status.code(), Some(0), "dc2 holds nothing yet");
    ok(Command::new("cp")
        .arg("-a")
        .arg(pipeline.path().join("primary"))
        .arg(pipeline.path().join("dc2-store")));
    let out = pipeline.run("imagepipe-replicate-check", &[]);
    assert_exit(&out, 0);

    // 5. Imported into both sites' libraries.
    let out = pipeline.run("imagepipe-import", &[]);
    assert_exit(&out, 0);
    let rec = Record::read(&pipeline.record_path()).unwrap().record;
    let import = rec.import.as_ref().expect("the import section");
    let sites: Vec<&str> = import.sites.iter().map(|s| s.site.as_str()).collect();
    assert_eq!(sites, ["dc1", "dc2"]);
    for site in &import.sites {
        assert_eq!(site.item, "vendor-windows-2022", "{site:?}");
        assert!(site.manifest, "the OVA's manifest was checked: {site:?}");
    }
    let items = vc.items(&vc_library).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].0, "vendor-windows-2022");
    // The descriptor the library holds says which system the VM runs: Windows Server 2022.
    let ovf = walk(&pipeline.path().join("library-dc1"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "ovf"))
        .expect("dc1's library holds the descriptor");
    let ovf = std::fs::read_to_string(ovf).unwrap();
    assert!(
        ovf.contains(r#"vmw:osType="windows2019srvNext_64Guest""#),
        "{ovf}"
    );

    // 6. February's update guide arrives: a rescan of the published version, in place in the
    // store, finds the CVE it fixes new (the two the publish-time scan knew are not).
    let month = serde_json::json!({
        "DocumentTitle": {"Value": "February 2025 Security Updates"},
        "DocumentTracking": {"Identification": {"ID": {"Value": "2025-Feb"}}, "Status": 2, "Version": "1.0",
                             "InitialReleaseDate": "2025-02-11T08:00:00Z", "CurrentReleaseDate": "2025-02-11T08:00:00Z"},
        "ProductTree": {"FullProductName": [{"ProductID": "11923", "Value": "Windows Server 2022"}]},
        "Vulnerability": [{
            "CVE": "CVE-2025-21418",
            "Title": {"Value": "Windows Ancillary Function Driver for WinSock Elevation of Privilege Vulnerability"},
            "CVSSScoreSets": [{"BaseScore": 7.8, "Vector": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "ProductID": ["11923"]}],
            "Remediations": [{"Description": {"Value": "5051979"}, "ProductID": ["11923"], "Type": 2, "FixedBuild": "10.0.20348.3207"}],
        }],
    });
    std::fs::write(
        pipeline.path().join("msrc/cvrf/2025-Feb.json"),
        month.to_string(),
    )
    .unwrap();
    let published = format!("{IMAGE}@{VERSION}");
    let out = pipeline.run_as_is(
        "imagepipe-scan",
        &["--published", &published, "--fail-on-new", "high", "--json"],
    );
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rescan = &doc["rescans"][0];
    assert_eq!(
        rescan["new_ids"],
        serde_json::json!(["CVE-2025-21418"]),
        "{doc}"
    );
    assert_eq!(rescan["new_max_severity"], "high");
    assert_eq!(rescan["findings"].as_array().unwrap().len(), 3);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The example's `minimal-hive` (Perl, for a build host without Rust) writes the bytes the
/// tests' generator writes, which hivex opens and the scan's tests check.
#[test]
fn the_example_s_minimal_hive_is_the_tests_minimal_hive() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["CMI-CreateHive{SOFTWARE}", "CMI-CreateHive{SAM}", "x"] {
        let out = dir.path().join("hive");
        let status = Command::new(example().join("images/vendor/windows-2022/minimal-hive"))
            .arg(name)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read(&out).unwrap(),
            imagepipe_testkit::windows::minimal_hive(name),
            "{name}"
        );
    }
}
