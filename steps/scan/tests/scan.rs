//! `imagepipe-scan` on a qcow2 image built by the test (mke2fs, qemu-img) with planted
//! vulnerable packages, against an OSV database of records the test writes.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, groovy, images, step};

use std::path::{Path, PathBuf};

use imagepipe::record::{GateStatus, Record};
use images::DEBIAN_12_OS_RELEASE;
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-scan");

const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n";

/// A qcow2 image of a Debian 12 tree with the packages above, and `extra` files
/// (path, content, mode).
fn image(dir: &Path, extra: &[(&str, &str, u32)]) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt as _;
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
    std::fs::write(tree.join("etc/os-release"), DEBIAN_12_OS_RELEASE).unwrap();
    std::fs::write(tree.join("var/lib/dpkg/status"), STATUS).unwrap();
    for (path, content, mode) in extra {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let raw = dir.join("disk.raw");
    images::ext4(&tree, &raw, "root", "16M");
    std::fs::read(images::qcow2(&raw, true)).unwrap()
}

fn osv(dir: &Path) -> PathBuf {
    let db = dir.join("osv/Debian");
    std::fs::create_dir_all(&db).unwrap();
    let record = |id: &str, pkg: &str, events: &str, extra: &str| {
        std::fs::write(
            db.join(format!("{id}.json")),
            format!(r#"{{"id":"{id}","modified":"{}","summary":"{id} in {pkg}",{extra}"affected":[{{"package":{{"ecosystem":"Debian:12","name":"{pkg}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{events}]}}]}}]}}"#, chrono::Utc::now().to_rfc3339()),
        )
        .unwrap();
    };
    // Planted: openssl before its fix (critical by CVSS), and zlib (medium by urgency).
    record(
        "DSA-5001-1",
        "openssl",
        r#"{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}"#,
        r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
    );
    record(
        "DEBIAN-CVE-2026-0002",
        "zlib",
        r#"{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-2"}"#,
        "",
    );
    // Not affecting: fixed before the installed version, another package, withdrawn.
    record(
        "DSA-4000-1",
        "glibc",
        r#"{"introduced":"0"},{"fixed":"2.36-9+deb12u3"}"#,
        "",
    );
    record("DSA-4001-1", "curl", r#"{"introduced":"0"}"#, "");
    record(
        "DSA-4002-1",
        "openssl",
        r#"{"introduced":"0"}"#,
        r#""withdrawn":"2026-01-01T00:00:00Z","#,
    );
    dir.join("osv")
}

/// The finding `id` of a JSON report.
fn finding<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap()
}

struct Case {
    dir: tempfile::TempDir,
    record: PathBuf,
    osv: PathBuf,
}

impl Case {
    fn new(fail_on: &str) -> Self {
        Self::with_scan(&format!("fail_on = \"{fail_on}\"\n"))
    }

    fn with_scan(scan: &str) -> Self {
        Self::with_image(scan, &[])
    }

    fn with_image(scan: &str, extra: &[(&str, &str, u32)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/global")).unwrap();
        std::fs::write(dir.path().join("images/global/global.pkr.hcl"), "").unwrap();
        std::fs::write(
            dir.path().join("imagepipe.toml"),
            format!("[pipeline]\noutput_dir = \"out\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"images/global/global.pkr.hcl\"\n[image.scan]\n{scan}"),
        )
        .unwrap();
        let bytes = image(dir.path(), extra);
        let record = built::built(
            &dir.path().join("out/global/debian-12/1.0.0"),
            "1.0.0",
            &[("disk.qcow2", &bytes)],
            None,
        );
        let osv = osv(dir.path());
        Self { dir, record, osv }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Scans version 1.0.0 with the case's database.
    fn scan(&self) -> std::process::Output {
        command(
            BIN,
            self.path(),
            &["--image", "global/debian-12", "--version", "1.0.0"],
        )
        .env("IMAGEPIPE_OSV_DB", &self.osv)
        .output()
        .unwrap()
    }
}

#[test]
fn finds_the_planted_vulnerabilities_and_only_those_and_gates() {
    let case = Case::new("high");
    let gh = imagepipe_testkit::on_github!(
        {
            let mut c = command(
                BIN,
                case.path(),
                &["--tag", "global/debian-12/v1.0.0", "--json"],
            );
            c.env("IMAGEPIPE_OSV_DB", &case.osv);
            c
        },
        case.path(),
    );
    assert_exit(&gh.out, 1);
    let doc: Value = serde_json::from_slice(&gh.out.stdout).unwrap();
    let mut ids: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["DEBIAN-CVE-2026-0002", "DSA-5001-1"]);
    let openssl = finding(&doc, "DSA-5001-1");
    assert_eq!(
        (openssl["severity"].as_str(), openssl["score"].as_f64()),
        (Some("critical"), Some(9.8))
    );
    assert_eq!(openssl["fixed"], "3.0.11-1~deb12u2");
    assert_eq!(openssl["package"], "libssl3");
    let zlib = finding(&doc, "DEBIAN-CVE-2026-0002");
    assert_eq!(
        zlib["severity"], "unknown",
        "no vector and no rating: unknown, never none"
    );
    assert_eq!(doc["packages"].as_array().unwrap().len(), 3);
    assert!(stderr(&gh.out).contains(
        "::error title=imagepipe-scan::global/debian-12@1.0.0: 1 findings at or above `high` and 0 failing policy rules"
    ));

    // The record holds the result and the reports' digests; publish would refuse it.
    let rec = Record::read(&case.record).unwrap().record;
    let scan = rec.scan.as_ref().unwrap();
    assert_eq!(scan.status, GateStatus::Failed);
    assert_eq!(
        (scan.vulnerabilities.critical, scan.vulnerabilities.unknown),
        (1, 1)
    );
    let dir = case.record.parent().unwrap();
    for r in &scan.reports {
        let bytes = std::fs::read(dir.join(&r.path)).unwrap();
        assert_eq!(
            imagepipe::hash::Sha256Hex::digest(&bytes),
            r.sha256,
            "{}",
            r.path
        );
    }
    assert!(imagepipe::publish::gate(&rec, None).is_err());
    // The JSON result names the record and every report the scan wrote, for CI systems to
    // archive and publish.
    assert_eq!(doc["record"], case.record.display().to_string());
    let listed: Vec<(String, String)> = doc["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(
                r["sha256"].as_str().unwrap(),
                imagepipe::hash::Sha256Hex::digest(
                    &std::fs::read(r["path"].as_str().unwrap()).unwrap()
                )
                .to_string()
            );
            (
                r["kind"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut written: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| !p.ends_with("imagepipe-record.json") && !p.ends_with("disk.qcow2"))
        .collect();
    written.sort();
    let mut paths: Vec<String> = listed.iter().map(|(_, p)| p.clone()).collect();
    paths.sort();
    assert_eq!(paths, written, "every file the scan wrote, and only those");
    for (kind, path) in &listed {
        assert_eq!(gh.outputs[&format!("{kind}-report")], *path);
    }
    // The Jenkins step, given this very result and exit code, archives exactly the files the
    // scan wrote and the record, and publishes its JUnit and SARIF reports.
    let result = case.path().join("scan-result.json");
    std::fs::write(&result, &gh.out.stdout).unwrap();
    let workspace = case.path().display().to_string();
    let out = groovy::harness(&[
        "archived",
        "imagepipeScan",
        result.to_str().unwrap(),
        &workspace,
        "1",
    ]);
    let jenkins: Value = serde_json::from_slice(&out.stdout).unwrap();
    let relative = |p: &str| {
        p.strip_prefix(&format!("{workspace}/"))
            .unwrap()
            .to_string()
    };
    let mut archived: Vec<String> = jenkins["archived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    archived.sort();
    let mut expected: Vec<String> = written.iter().map(|p| relative(p)).collect();
    expected.push(relative(&case.record.display().to_string()));
    expected.sort();
    assert_eq!(archived, expected);
    let report = |kind: &str| relative(&gh.outputs[&format!("{kind}-report")]);
    assert_eq!(jenkins["junit"], serde_json::json!([report("junit")]));
    assert_eq!(jenkins["sarif"], serde_json::json!([report("sarif")]));
    assert!(
        jenkins["error"].as_str().unwrap().contains("exit code 1"),
        "a failed gate stops the pipeline: {jenkins}"
    );

    // SARIF as GitHub code scanning takes it: the template file as location, security-severity.
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(dir.join("scan.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["automationDetails"]["id"],
        "imagepipe-scan/global/debian-12/"
    );
    let rule = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "DSA-5001-1")
        .unwrap();
    assert_eq!(rule["properties"]["security-severity"], "9.8");
    for result in run["results"].as_array().unwrap() {
        assert_eq!(
            result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "images/global/global.pkr.hcl"
        );
    }
    // JUnit: a case that the scan ran, one per finding, the gating one failed.
    let junit = std::fs::read_to_string(dir.join("scan.junit.xml")).unwrap();
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(
        junit.contains("name=\"ssh-no-root-login: "),
        "every rule is a test case"
    );
    assert!(junit.contains("<failure type=\"critical\""));
    assert_eq!(gh.outputs["status"], "failed");
    assert_eq!(
        gh.outputs["sarif-report"],
        dir.join("scan.sarif").display().to_string()
    );
    assert!(
        gh.summary
            .contains("| critical | DSA-5001-1 | libssl3 | 3.0.11-1~deb12u1 | 3.0.11-1~deb12u2 |"),
        "{}",
        gh.summary
    );
}

#[test]
fn a_threshold_above_the_findings_passes_and_bad_input_is_exit_2() {
    let case = Case::new("critical");
    // Raise the bar past critical findings by removing the critical one.
    std::fs::remove_file(case.osv.join("Debian/DSA-5001-1.json")).unwrap();
    let out = case.scan();
    assert_exit(&out, 0);
    let rec = Record::read(&case.record).unwrap().record;
    assert_eq!(rec.scan.unwrap().status, GateStatus::Passed);

    let out = command(
        BIN,
        case.path(),
        &["--image", "global/debian-12", "--version", "1.0.0"],
    )
    .output()
    .unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--osv-db PATH"));
    std::fs::write(case.osv.join("Debian/broken.json"), "{").unwrap();
    let out = case.scan();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("broken.json: not an OSV record"),
        "{}",
        stderr(&out)
    );
    // A disk that is not an image.
    std::fs::remove_file(case.osv.join("Debian/broken.json")).unwrap();
    std::fs::write(
        case.record.parent().unwrap().join("disk.qcow2"),
        b"QFI\xfb garbage",
    )
    .unwrap();
    let out = case.scan();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("disk.qcow2: "), "{}", stderr(&out));
}

#[test]
fn action_and_help() {
    let outputs = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    assert_eq!(
        outputs,
        [
            "cyclonedx-report",
            "findings",
            "json-report",
            "junit-report",
            "markdown-report",
            "sarif-report",
            "spdx-report",
            "status"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("help", step::help(BIN, dir.path()));
}

#[test]
fn waivers_accept_findings_until_they_expire_and_sboms_list_every_package() {
    let case = Case::with_scan("fail_on = \"high\"\nwaivers = \"waivers.toml\"\n");
    std::fs::write(
        case.path().join("waivers.toml"),
        "[[waiver]]\nid = \"DSA-5001-1\"\npackage = \"openssl\"\nreason = \"the TLS server is never started\"\nexpires = \"2999-12-31\"\n\n[[waiver]]\nid = \"DEBIAN-CVE-2026-0002\"\nreason = \"was accepted last year\"\nexpires = \"2020-01-01\"\n",
    )
    .unwrap();
    let out = case.scan();
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("(waived until 2999-12-31: the TLS server is never started)"),
        "{err}"
    );
    assert!(
        err.contains("warning: the waiver of DEBIAN-CVE-2026-0002 expired on 2020-01-01"),
        "{err}"
    );
    let rec = Record::read(&case.record).unwrap().record;
    let section = rec.scan.unwrap();
    assert_eq!(section.status, GateStatus::Passed);
    assert_eq!(
        (
            section.waived,
            section.vulnerabilities.critical,
            section.vulnerabilities.unknown
        ),
        (1, 0, 1)
    );

    let dir = case.record.parent().unwrap();
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap()
    };
    // The waived finding stays visible: in the JSON, and suppressed in the SARIF.
    let json = read("scan.json");
    let waived = finding(&json, "DSA-5001-1");
    assert_eq!(
        waived["waived"]["reason"],
        "the TLS server is never started"
    );
    let sarif = read("scan.sarif");
    let result = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "DSA-5001-1")
        .unwrap();
    assert_eq!(result["suppressions"][0]["kind"], "external");

    // SBOMs: every package with its purl, the image as the described component.
    let artifact_sha = Record::read(&case.record).unwrap().record.artifacts[0]
        .file()
        .unwrap()
        .sha256
        .to_string();
    let cdx = read("sbom.cdx.json");
    assert_eq!(
        (cdx["bomFormat"].as_str(), cdx["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.5"))
    );
    assert!(
        cdx["serialNumber"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );
    assert_eq!(cdx["metadata"]["component"]["name"], "global/debian-12");
    assert_eq!(
        cdx["metadata"]["component"]["hashes"][0]["content"],
        artifact_sha.as_str()
    );
    let purls: Vec<&str> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
            "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib",
        ]
    );
    let spdx = read("sbom.spdx.json");
    assert_eq!(
        (spdx["spdxVersion"].as_str(), spdx["dataLicense"].as_str()),
        (Some("SPDX-2.3"), Some("CC0-1.0"))
    );
    let rels = spdx["relationships"].as_array().unwrap();
    assert_eq!(
        rels.iter()
            .filter(|r| r["relationshipType"] == "DESCRIBES")
            .count(),
        1
    );
    assert_eq!(
        rels.iter()
            .filter(|r| r["relationshipType"] == "CONTAINS")
            .count(),
        3
    );
    assert!(
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .all(|p| p["externalRefs"][0]["referenceType"] == "purl")
    );

    // A waivers file that is not one says what each waiver needs.
    std::fs::write(case.path().join("waivers.toml"), "[[waiver]]\nid = \"X\"\n").unwrap();
    let out = case.scan();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("needs id, reason and expires"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_hardening_baseline_gates_and_rules_can_be_switched_off() {
    let breaches: &[(&str, &str, u32)] = &[
        (
            "etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n",
            0o644,
        ),
        (
            "etc/ssh/sshd_config.d/50-cloud.conf",
            "PermitEmptyPasswords no\n",
            0o644,
        ),
        (
            "etc/shadow",
            "root:$y$j9T$abc:19000:0:99999:7:::\nbackdoor::19000:0:99999:7:::\n",
            0o644,
        ),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644),
        ("etc/cron.d/open", "* * * * * root true\n", 0o666),
    ];
    let case = Case::with_image("fail_on = \"critical\"\n", breaches);
    std::fs::remove_file(case.osv.join("Debian/DSA-5001-1.json")).unwrap();
    let out = case.scan();
    assert_exit(&out, 1);
    let json: Value = serde_json::from_slice(
        &std::fs::read(case.record.parent().unwrap().join("scan.json")).unwrap(),
    )
    .unwrap();
    let failing: Vec<(&str, &str)> = json["policy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| (r["id"].as_str().unwrap(), r["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        failing,
        [
            ("ssh-no-root-login", "PermitRootLogin is `yes`, not `no`"),
            (
                "shadow-no-empty-password",
                "/etc/shadow has a forbidden line starting `backdoor`"
            ),
            ("shadow-mode", "/etc/shadow: mode 0644 exceeds 0640"),
            ("no-world-writable-system-files", "/etc/cron.d/open"),
        ]
    );
    // The secret part of a shadow line never reaches a report.
    assert!(!stderr(&out).contains("$y$"));
    let rec = Record::read(&case.record).unwrap().record;
    assert_eq!(rec.scan.unwrap().policy_failures, 4);

    // Switched off, and one rule of the image's own added.
    std::fs::write(
        case.path().join("policy.toml"),
        "[[rule]]\nid = \"motd-present\"\ntitle = \"the login banner is set\"\nlevel = \"warning\"\nkind = \"file_present\"\npaths = [\"/etc/motd\"]\n",
    )
    .unwrap();
    let config = std::fs::read_to_string(case.path().join("imagepipe.toml")).unwrap();
    std::fs::write(
        case.path().join("imagepipe.toml"),
        config.replace(
            "fail_on = \"critical\"\n",
            "fail_on = \"critical\"\npolicy = [\"policy.toml\"]\ndisable_rules = [\"ssh-no-root-login\", \"shadow-no-empty-password\", \"shadow-mode\", \"no-world-writable-system-files\"]\n",
        ),
    )
    .unwrap();
    let out = case.scan();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("motd-present"),
        "a warning-level rule is shown but does not gate"
    );
}

/// Every report against its format's own definition: SARIF 2.1.0 through the types generated
/// from its JSON schema (objects with `additionalProperties: false` refuse unknown fields),
/// CycloneDX 1.5 through cyclonedx-bom's parser and validator, SPDX 2.3 through spdx-rs's
/// document model (unknown fields refused), and the JUnit XML Jenkins' `junit` step reads.
#[test]
fn every_report_validates_against_its_format() {
    use cyclonedx_bom::validation::Validate as _;
    // Findings fixed and not fixed, waived and gating, and policy failures.
    let case = Case::with_image(
        "fail_on = \"high\"\n",
        &[("etc/ssh/sshd_config", "PermitRootLogin yes\n", 0o644)],
    );
    std::fs::write(
        case.osv.join("Debian/DEBIAN-CVE-2026-0003.json"),
        format!(
            r#"{{"id":"DEBIAN-CVE-2026-0003","modified":"{}","affected":[{{"package":{{"ecosystem":"Debian:12","name":"glibc"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}}]}}]}}]}}"#,
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    let out = case.scan();
    assert_exit(&out, 1);
    let dir = case.record.parent().unwrap();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();

    let sarif: serde_sarif::sarif::Sarif = serde_json::from_slice(&read("scan.sarif"))
        .unwrap_or_else(|e| panic!("SARIF 2.1.0 schema: {e}"));
    // The types keep only what the schema defines: a field it does not know would not survive
    // the round trip.
    let original: Value = serde_json::from_slice(&read("scan.sarif")).unwrap();
    assert_eq!(
        serde_json::to_value(&sarif).unwrap(),
        original,
        "SARIF fields outside the schema"
    );
    let results = sarif.runs[0].results.as_ref().unwrap();
    assert!(
        results.len() >= 4,
        "3 findings and a policy failure: {}",
        results.len()
    );

    let bom = cyclonedx_bom::prelude::Bom::parse_from_json_v1_5(&read("sbom.cdx.json")[..])
        .unwrap_or_else(|e| panic!("CycloneDX 1.5: {e}"));
    let validation = bom.validate_version(cyclonedx_bom::models::bom::SpecVersion::V1_5);
    assert!(validation.passed(), "CycloneDX 1.5: {validation:?}");
    assert_eq!(
        bom.components.as_ref().unwrap().0.len(),
        4,
        "the OS and 3 packages"
    );

    let spdx: spdx_rs::models::SPDX =
        serde_json::from_slice(&read("sbom.spdx.json")).unwrap_or_else(|e| panic!("SPDX 2.3: {e}"));
    assert_eq!(
        spdx.package_information.len(),
        4,
        "the image and 3 packages"
    );

    let junit = String::from_utf8(read("scan.junit.xml")).unwrap();
    let xml = roxmltree::Document::parse(&junit).unwrap();
    let suites = xml.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    let cases: Vec<_> = suites
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    for c in &cases {
        assert!(c.attribute("classname").is_some() && c.attribute("name").is_some());
        assert_eq!(c.parent().unwrap().tag_name().name(), "testsuite");
    }
    let failures = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .count();
    let declared: usize = suites
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|s| s.attribute("failures").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(failures, declared);
    assert!(failures >= 2, "the critical finding and the sshd rule fail");
}

#[test]
fn a_record_naming_a_package_twice_is_one_vulnerability() {
    let case = Case::new("high");
    // One advisory whose two entries both name openssl: for the release, and for every
    // release (no `:12`), with a fix the first range has and the second reopens.
    std::fs::write(
        case.osv.join("Debian/DSA-5003-1.json"),
        format!(
            r#"{{"id":"DSA-5003-1","modified":"{}","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}],"affected":[
              {{"package":{{"ecosystem":"Debian:12","name":"openssl"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"3.0.11-1~deb12u2"}}]}}]}},
              {{"package":{{"ecosystem":"Debian","name":"openssl"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"3.0.0"}},{{"fixed":"3.0.11-1"}}]}}]}}]}}"#,
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    let out = case.scan();
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(
        &std::fs::read(case.record.parent().unwrap().join("scan.json")).unwrap(),
    )
    .unwrap();
    let found: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "DSA-5003-1")
        .collect();
    assert_eq!(found.len(), 1, "one finding for one package");
    // deb12u2 closes the first entry's range but is still in the second's: the fix is the
    // version where the advisory no longer applies at all.
    assert_eq!(found[0]["fixed"], "3.0.11-1");
    let rec = Record::read(&case.record).unwrap().record;
    let counts = rec.scan.unwrap().vulnerabilities;
    assert_eq!(
        (counts.critical, counts.unknown),
        (2, 1),
        "DSA-5001-1 and DSA-5003-1 once each"
    );
}

#[test]
fn a_loose_ovf_export_is_scanned_through_its_disk_not_its_side_files() {
    // The vSphere plugin's default export beside a UEFI variable store, listed first as the
    // qemu plugin lists `efivars.fd`: the scan must read the VMDK by its role.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images/global")).unwrap();
    std::fs::write(dir.path().join("images/global/global.pkr.hcl"), "").unwrap();
    std::fs::write(
        dir.path().join("imagepipe.toml"),
        "[pipeline]\noutput_dir = \"out\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"images/global/global.pkr.hcl\"\n[image.scan]\nfail_on = \"critical\"\n",
    )
    .unwrap();
    image(dir.path(), &[]);
    let vmdk = std::fs::read(images::vmdk(
        &dir.path().join("disk.raw"),
        "streamOptimized",
    ))
    .unwrap();
    let ovf = br#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:id="f1" ovf:href="vm-disk-0.vmdk"/></References></Envelope>"#;
    built::built(
        &dir.path().join("out/global/debian-12/1.0.0"),
        "1.0.0",
        &[
            ("efivars.fd", b"\0".repeat(4096).as_slice()),
            ("vm.ovf", ovf.as_slice()),
            ("vm-disk-0.vmdk", vmdk.as_slice()),
            ("vm.mf", b"".as_slice()),
        ],
        None,
    );
    let out = command(
        BIN,
        dir.path(),
        &[
            "--image",
            "global/debian-12",
            "--version",
            "1.0.0",
            "--json",
        ],
    )
    .env("IMAGEPIPE_OSV_DB", osv(dir.path()))
    .output()
    .unwrap();
    // The planted critical openssl advisory fails the gate: the disk was read.
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["artifact"], "vm-disk-0", "{doc}");
    let mut packages: Vec<&str> = doc["packages"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    packages.sort();
    assert_eq!(packages, ["libc6", "libssl3", "zlib1g"], "{doc}");
}
