//! `imagepipe-scan` on a Windows Server 2022 image built by the tests' Windows support (mkntfs,
//! ntfscp, hivex; `imagepipe_testkit::windows`), against Microsoft security update documents the
//! test writes in the formats Microsoft publishes:
//!
//! - a monthly CVRF document as the Security Update Guide's CVRF API serves it as JSON
//!   (`https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2024-Dec`; schema in
//!   `https://api.msrc.microsoft.com/cvrf/v3.0/swagger/v3/swagger.json`, structure of CVRF 1.2,
//!   `https://docs.oasis-open.org/csaf/csaf-cvrf/v1.2/csaf-cvrf-v1.2.html`): `ProductTree.
//!   FullProductName[]`, per `Vulnerability` its `CVSSScoreSets`, `Threats` and `Remediations`
//!   (`Type` 2, vendor fix, with the KB in `Description` and the `FixedBuild`);
//! - a CSAF 2.0 advisory as Microsoft publishes them under `https://msrc.microsoft.com/csaf/`
//!   (`https://docs.oasis-open.org/csaf/csaf/v2.0/os/csaf-v2.0-os.html`: §3.1.3 branches with
//!   `product_version_range` names, §3.2.3.9 `product_status.known_affected`, §3.2.3.12
//!   `remediations` of category `vendor_fix`, §3.2.3.13 `scores` with `cvss_v3`).

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, images, step, windows};

use std::path::{Path, PathBuf};

use imagepipe::record::{GateStatus, Record};
use serde_json::{Value, json};
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-scan");
const IMAGE: &str = "global/windows-2022";

const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const HIGH_LOCAL: &str = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H";
const MEDIUM: &str = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N";

/// The December 2024 CVRF document: which of its CVEs apply to 10.0.20348.2849 is the point.
fn cvrf() -> Value {
    let fix = |kb: &str, build: &str, products: &[&str]| {
        json!({"Description": {"Value": kb}, "URL": format!("https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{kb}"),
               "Supercedence": "5046616", "ProductID": products, "Type": 2, "DateSpecified": false,
               "AffectedFiles": [], "RestartRequired": {"Value": "Yes"}, "SubType": "Security Update", "FixedBuild": build})
    };
    let vuln = |cve: &str, title: &str, vector: Option<&str>, remediations: Vec<Value>| {
        let products: Vec<Value> = remediations
            .iter()
            .flat_map(|r| r["ProductID"].as_array().unwrap().clone())
            .collect();
        json!({"Title": {"Value": title}, "Notes": [], "DiscoveryDateSpecified": false, "ReleaseDateSpecified": false,
               "CVE": cve, "ProductStatuses": [{"ProductID": products, "Type": 3}],
               "Threats": [{"Description": {"Value": "Important"}, "ProductID": products, "Type": 3, "DateSpecified": false}],
               "CVSSScoreSets": vector.map(|v| vec![json!({"BaseScore": 0.0, "TemporalScore": 0.0, "Vector": v, "ProductID": products})]).unwrap_or_default(),
               "Remediations": remediations, "Acknowledgments": [], "RevisionHistory": []})
    };
    json!({
        "DocumentTitle": {"Value": "December 2024 Security Updates"},
        "DocumentType": {"Value": "Security Update"},
        "DocumentPublisher": {"ContactDetails": {"Value": "secure@microsoft.com"}, "IssuingAuthority": {"Value": "Microsoft"}, "Type": 0},
        "DocumentTracking": {"Identification": {"ID": {"Value": "2024-Dec"}, "Alias": {"Value": "2024-Dec"}},
                             "Status": 2, "Version": "1.0", "RevisionHistory": [],
                             "InitialReleaseDate": "2024-12-10T08:00:00Z",
                             "CurrentReleaseDate": chrono::Utc::now().to_rfc3339()},
        "DocumentNotes": [],
        "ProductTree": {"Branch": [], "FullProductName": [
            {"ProductID": "11923", "Value": "Windows Server 2022"},
            {"ProductID": "11924", "Value": "Windows Server 2022 (Server Core installation)"},
            {"ProductID": "11571", "Value": "Windows Server 2019"},
        ]},
        "Vulnerability": [
            // Fixed in December's update, above the image's build: a finding.
            vuln("CVE-2024-49112", "Windows Lightweight Directory Access Protocol (LDAP) Remote Code Execution Vulnerability", Some(CRITICAL),
                 vec![fix("5048654", "10.0.20348.2966", &["11923", "11924"]), fix("5048661", "10.0.17763.6659", &["11571"])]),
            // Only Server Core's product: not this image's.
            vuln("CVE-2024-49138", "Windows Common Log File System Driver Elevation of Privilege Vulnerability", Some(HIGH_LOCAL),
                 vec![fix("5048654", "10.0.20348.2966", &["11924"])]),
            // Fixed at exactly the image's build: not a finding.
            vuln("CVE-2024-43451", "NTLM Hash Disclosure Spoofing Vulnerability", Some(MEDIUM),
                 vec![fix("5046616", "10.0.20348.2849", &["11923"])]),
            // Fixed at .900, which sorts after .2849 as text: builds compare as numbers.
            vuln("CVE-2024-38063", "Windows TCP/IP Remote Code Execution Vulnerability", Some(CRITICAL),
                 vec![fix("5041160", "10.0.20348.900", &["11923"])]),
            // ... and .10010 before .2849 as text; a workaround and a fix without a build do
            // not count; the severity from the vector.
            vuln("CVE-2026-0001", "Windows Example Spoofing Vulnerability", Some(MEDIUM),
                 vec![fix("5099999", "10.0.20348.10010", &["11923"]),
                      json!({"Description": {"Value": "Disable the service"}, "ProductID": ["11923"], "Type": 0, "FixedBuild": "10.0.20348.99999"}),
                      json!({"Description": {"Value": "Release Notes"}, "ProductID": ["11923"], "Type": 2, "FixedBuild": ""})]),
        ],
    })
}

/// A CSAF 2.0 advisory for one CVE, with Windows Server 2022 before `build` affected.
fn csaf(cve: &str, build: &str, kb: &str, vector: &str) -> Value {
    let pid = format!("CSAFPID-{}", &cve[9..]);
    json!({
        "document": {
            "category": "csaf_vex", "csaf_version": "2.0", "title": format!("{cve} advisory"),
            "publisher": {"category": "vendor", "name": "Microsoft", "namespace": "https://msrc.microsoft.com"},
            "tracking": {"id": format!("msrc_{}", cve.to_lowercase()), "status": "final", "version": "1",
                         "initial_release_date": "2025-01-14T08:00:00.000Z",
                         "current_release_date": chrono::Utc::now().to_rfc3339(),
                         "revision_history": [{"date": "2025-01-14T08:00:00.000Z", "number": "1", "summary": "Information published."}]},
        },
        "product_tree": {"branches": [{"category": "vendor", "name": "Microsoft", "branches": [
            {"category": "product_family", "name": "Windows", "branches": [
                {"category": "product_name", "name": "Windows Server 2022", "branches": [
                    {"category": "product_version_range", "name": format!("<{build}"),
                     "product": {"name": format!("Windows Server 2022 <{build}"), "product_id": pid}}]}]}]}]},
        "vulnerabilities": [{
            "cve": cve, "title": "Windows Hyper-V NT Kernel Integration VSP Elevation of Privilege Vulnerability",
            "product_status": {"fixed": [], "known_affected": [pid]},
            "remediations": [{"category": "vendor_fix", "details": kb, "product_ids": [pid],
                              "url": format!("https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{kb}")}],
            "scores": [{"products": [pid], "cvss_v3": {"version": "3.1", "vectorString": vector, "baseScore": 7.8, "baseSeverity": "HIGH"}}],
        }],
    })
}

struct Case {
    dir: tempfile::TempDir,
    record: PathBuf,
    msrc: PathBuf,
}

impl Case {
    /// A Windows image (as qcow2) of version 1.0.0 and its record; `patch` may change the
    /// raw disk first.
    fn new(scan: &str, patch: impl FnOnce(&mut Vec<u8>)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/global")).unwrap();
        std::fs::write(dir.path().join("images/global/windows.pkr.hcl"), "").unwrap();
        std::fs::write(
            dir.path().join("imagepipe.toml"),
            format!("[pipeline]\noutput_dir = \"out\"\n\n[[image]]\nname = \"{IMAGE}\"\ntemplate = \"images/global/windows.pkr.hcl\"\n[image.scan]\n{scan}"),
        )
        .unwrap();
        let work = dir.path().join("work");
        let hives = windows::server_2022_hives(&work.join("hives"), 0);
        let raw = windows::gpt_disk(&work, &hives, windows::GPT_BASIC_DATA);
        let mut bytes = std::fs::read(&raw).unwrap();
        patch(&mut bytes);
        std::fs::write(&raw, &bytes).unwrap();
        let qcow2 = std::fs::read(images::qcow2(&raw, true)).unwrap();
        std::fs::remove_dir_all(&work).unwrap();
        let record = built::built_as(
            &dir.path().join(format!("out/{IMAGE}/1.0.0")),
            IMAGE,
            "1.0.0",
            None,
            &[("disk.qcow2", &qcow2)],
            None,
        );
        let msrc = dir.path().join("msrc");
        std::fs::create_dir_all(msrc.join("cvrf")).unwrap();
        std::fs::create_dir_all(msrc.join("csaf/2025")).unwrap();
        std::fs::write(msrc.join("cvrf/2024-Dec.json"), cvrf().to_string()).unwrap();
        for (cve, build, kb) in [
            // Fixed in January 2025: a finding.
            ("CVE-2025-21333", "10.0.20348.3091", "5049983"),
            // Fixed in September 2024: the image has it.
            ("CVE-2024-38014", "10.0.20348.2700", "5042881"),
        ] {
            std::fs::write(
                msrc.join(format!("csaf/2025/msrc_{}.json", cve.to_lowercase())),
                csaf(cve, build, kb, HIGH_LOCAL).to_string(),
            )
            .unwrap();
        }
        Self { dir, record, msrc }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn scan(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["--image", IMAGE, "--version", "1.0.0"];
        args.extend_from_slice(extra);
        command(BIN, self.path(), &args)
            .env("IMAGEPIPE_MSRC_DB", &self.msrc)
            .output()
            .unwrap()
    }
}

#[test]
fn a_windows_image_gets_its_inventory_findings_and_baseline_verdict() {
    let case = Case::new("fail_on = \"high\"\n", |_| {});
    let out = case.scan(&["--json"]);
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Exactly the CVEs whose fixed build for Windows Server 2022 is above 10.0.20348.2849.
    let mut found: Vec<(String, String, String, Vec<String>)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["fixed"].as_str().unwrap().to_string(),
                f["aliases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    found.sort();
    let row = |id: &str, sev: &str, fixed: &str, kb: &str| {
        (
            id.to_string(),
            sev.to_string(),
            fixed.to_string(),
            vec![kb.to_string()],
        )
    };
    assert_eq!(
        found,
        [
            row("CVE-2024-49112", "critical", "10.0.20348.2966", "KB5048654"),
            row("CVE-2025-21333", "high", "10.0.20348.3091", "KB5049983"),
            row("CVE-2026-0001", "medium", "10.0.20348.10010", "KB5099999"),
        ]
    );
    for f in doc["findings"].as_array().unwrap() {
        assert_eq!(f["installed"], "10.0.20348.2849");
        assert_eq!(f["package"], "Windows Server 2022");
    }

    // The inventory: the release and its programs.
    assert_eq!(doc["os"]["id"], "windows");
    assert_eq!(doc["os"]["version_id"], "10.0.20348.2849");
    assert_eq!(
        doc["packages"].as_array().unwrap().len(),
        windows::PROGRAMS.len()
    );
    let kbs: Vec<&str> = doc["windows"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kb"].as_str().unwrap())
        .collect();
    assert_eq!(kbs, windows::KBS);

    // The baseline's Windows rules, and no Linux rule, judged the image.
    let failed: Vec<&str> = doc["policy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "win-smb1-server-disabled",
            "win-guest-disabled",
            "win-rdp-nla",
            "win-firewall-public",
            "win-no-autologon-password",
        ]
    );
    assert!(
        doc["policy"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_str().unwrap().starts_with("win-"))
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(!text.contains("Winter2024"), "the stored password leaked");

    // The record and the reports, as for Linux.
    let rec = Record::read(&case.record).unwrap().record;
    let scan = rec.scan.as_ref().unwrap();
    assert_eq!(scan.status, GateStatus::Failed);
    assert_eq!(
        (
            scan.vulnerabilities.critical,
            scan.vulnerabilities.high,
            scan.vulnerabilities.medium
        ),
        (1, 1, 1)
    );
    let dir = case.record.parent().unwrap();
    let cdx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("sbom.cdx.json")).unwrap()).unwrap();
    let components = cdx["components"].as_array().unwrap();
    let os = components
        .iter()
        .find(|c| c["type"] == "operating-system")
        .unwrap();
    assert_eq!(
        os["cpe"],
        "cpe:2.3:o:microsoft:windows_server_2022:10.0.20348.2849:*:*:*:*:*:*:*"
    );
    let purls: Vec<&str> = components
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(
        purls.contains(&"pkg:generic/7-Zip%2023.01%20%28x64%29@23.01?arch=x64"),
        "{purls:?}"
    );
    for kb in windows::KBS {
        assert!(
            purls
                .iter()
                .any(|p| p.starts_with(&format!("pkg:generic/microsoft/{kb}@"))),
            "{kb}: {purls:?}"
        );
    }
    let spdx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("sbom.spdx.json")).unwrap()).unwrap();
    let names: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for (_, name, ..) in windows::PROGRAMS {
        assert!(names.contains(name), "{name}: {names:?}");
    }
    let sarif = std::fs::read_to_string(dir.join("scan.sarif")).unwrap();
    assert!(sarif.contains("https://msrc.microsoft.com/update-guide/vulnerability/CVE-2024-49112"));
    let junit = std::fs::read_to_string(dir.join("scan.junit.xml")).unwrap();
    assert!(junit.contains("name=\"win-rdp-nla: "), "{junit}");
}

#[test]
fn without_microsoft_s_documents_or_readable_volumes_the_scan_is_exit_2() {
    let case = Case::new("fail_on = \"critical\"\n", |_| {});
    // Only an OSV database, as for a Linux image.
    let osv = case.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    let out = command(BIN, case.path(), &["--image", IMAGE, "--version", "1.0.0"])
        .env("IMAGEPIPE_OSV_DB", &osv)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--msrc-db"), "{}", stderr(&out));

    // A BitLocker-encrypted OS volume.
    let locked = Case::new("", |disk| {
        let at = windows::gpt_os_offset() as usize + 3;
        disk[at..at + 8].copy_from_slice(b"-FVE-FS-");
    });
    let out = locked.scan(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("BitLocker-encrypted"),
        "{}",
        stderr(&out)
    );
    assert!(Record::read(&locked.record).unwrap().record.scan.is_none());
}
