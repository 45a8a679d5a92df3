//! `imagepipe-scan` on the other inputs: a RHEL-family image whose rpm database rpm itself
//! wrote, matched against an osv.dev-style `all.zip`; root filesystem directories and tarballs
//! given with `--input`; and a stale database.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, images, rpmdb, step};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use images::{DEBIAN_12_OS_RELEASE, run};
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-scan");

/// An `imagepipe.toml` for `global/debian-12` (whatever the tree holds) in a new directory.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("images/global.pkr.hcl"), "").unwrap();
    std::fs::write(
        dir.path().join("imagepipe.toml"),
        "[pipeline]\noutput_dir = \"out\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"images/global.pkr.hcl\"\n[image.scan]\nfail_on = \"high\"\n",
    )
    .unwrap();
    dir
}

/// A qcow2 image of `tree`.
fn qcow2(tree: &Path, dir: &Path) -> Vec<u8> {
    let raw = dir.join("disk.raw");
    images::ext4(tree, &raw, "root", "16M");
    std::fs::read(images::qcow2(&raw, false)).unwrap()
}

/// An OSV record affecting `name` in `ecosystem` until `fixed`.
fn osv_record(
    id: &str,
    ecosystem: &str,
    name: &str,
    fixed: &str,
    modified: &str,
    extra: &str,
) -> String {
    format!(
        r#"{{"id":"{id}","modified":"{modified}","summary":"{id} in {name}",{extra}"affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

fn ids(doc: &Value) -> Vec<String> {
    let mut ids: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["id"].as_str().unwrap(),
                f["package"].as_str().unwrap()
            )
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_rocky_image_s_rpm_database_is_matched_with_rpm_ordering_from_an_all_zip() {
    let dir = project();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(
        tree.join("etc/os-release"),
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
    )
    .unwrap();
    let s = |name, epoch, version, release, binaries| rpmdb::Source {
        name,
        epoch,
        version,
        release,
        arch: "x86_64",
        binaries,
    };
    rpmdb::install(
        &tree,
        dir.path(),
        &[
            s(
                "openssl",
                Some(1),
                "3.0.7",
                "27.el9",
                &["openssl", "openssl-libs"],
            ),
            s("bash", None, "5.1.8", "6.el9_1", &["bash"]),
            s("glibc", None, "2.34", "83.el9", &["glibc"]),
            // The baseline's RHEL-family name for a telnet server.
            s("telnet", Some(1), "0.17", "85.el9", &["telnet-server"]),
        ],
    );
    let bytes = qcow2(&tree, dir.path());
    built::built(
        &dir.path().join("out/global/debian-12/1.0.0"),
        "1.0.0",
        &[("disk.qcow2", &bytes)],
        None,
    );

    // osv.dev's dump layout: one all.zip per ecosystem.
    let now = chrono::Utc::now().to_rfc3339();
    let eco = "Rocky Linux:9";
    let db = dir.path().join("osv/Rocky Linux");
    std::fs::create_dir_all(&db).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(db.join("all.zip")).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (id, body) in [
        // Affects both binaries of openssl (epoch 1 compared), critical by its CVSS v4 vector.
        (
            "RLSA-2024:0001",
            osv_record(
                "RLSA-2024:0001",
                eco,
                "openssl",
                "1:3.0.7-28.el9",
                &now,
                r#""severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],"#,
            ),
        ),
        // rpm ordering: 6.el9_1 is newer than 6.el9, so this one is fixed already.
        (
            "RLSA-2024:0002",
            osv_record("RLSA-2024:0002", eco, "bash", "5.1.8-6.el9", &now, ""),
        ),
        // Moderate by the database's own rating.
        (
            "RLSA-2024:0003",
            osv_record(
                "RLSA-2024:0003",
                eco,
                "glibc",
                "2.34-83.el9_3.7",
                &now,
                r#""database_specific":{"severity":"Moderate"},"#,
            ),
        ),
        // Another ecosystem's record for the same name never matches.
        (
            "ALSA-2024:0001",
            osv_record("ALSA-2024:0001", "AlmaLinux:9", "glibc", "2.35", &now, ""),
        ),
    ] {
        zip.start_file(format!("{id}.json"), options).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();

    let scan = |db: &Path| {
        command(
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
        .env("IMAGEPIPE_OSV_DB", db)
        .output()
        .unwrap()
    };
    let out = scan(&dir.path().join("osv"));
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["os"]["ecosystem"], eco);
    assert_eq!(doc["packages"].as_array().unwrap().len(), 5);
    let failing: Vec<&str> = doc["policy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["no-telnet-server"]);
    assert_eq!(
        ids(&doc),
        [
            "RLSA-2024:0001 openssl",
            "RLSA-2024:0001 openssl-libs",
            "RLSA-2024:0003 glibc"
        ]
    );
    let libs = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "openssl-libs")
        .unwrap();
    assert_eq!(
        (
            libs["severity"].as_str(),
            libs["score"].as_f64(),
            libs["installed"].as_str()
        ),
        (Some("critical"), Some(9.3), Some("1:3.0.7-27.el9"))
    );
    let glibc = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "glibc")
        .unwrap();
    assert_eq!(glibc["severity"], "medium");
    let sbom: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/global/debian-12/1.0.0/sbom.cdx.json")).unwrap(),
    )
    .unwrap();
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(
        purls.contains(&"pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rocky-9.3&upstream=openssl"),
        "{purls:#?}"
    );

    // The zip named directly is the same database; a corrupt zip is exit 2, named.
    assert_exit(&scan(&db.join("all.zip")), 1);
    std::fs::write(db.join("all.zip"), b"PK\x03\x04 not really").unwrap();
    let out = scan(&dir.path().join("osv"));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("all.zip: not a zip of OSV records"),
        "{}",
        stderr(&out)
    );
}

/// A Debian tree whose `etc/os-release` and dpkg database are symbolic links, one of them
/// absolute: inside the root they resolve; on the scanning machine they would not.
fn debian_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("rootfs");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
    std::fs::create_dir_all(tree.join("var/lib/dpkg")).unwrap();
    std::fs::write(tree.join("usr/lib/os-release"), DEBIAN_12_OS_RELEASE).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", tree.join("etc/os-release")).unwrap();
    std::fs::write(
        tree.join("var/lib/dpkg/status.imagepipe-test"),
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/var/lib/dpkg/status.imagepipe-test",
        tree.join("var/lib/dpkg/status"),
    )
    .unwrap();
    tree
}

#[test]
fn root_filesystem_directories_and_tarballs_are_scanned_in_place() {
    let dir = project();
    let tree = debian_tree(dir.path());
    let osv = dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("DSA-5001-1.json"),
        osv_record(
            "DSA-5001-1",
            "Debian:12",
            "openssl",
            "3.0.11-1~deb12u2",
            &chrono::Utc::now().to_rfc3339(),
            r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
        ),
    )
    .unwrap();
    // The record holds a rootfs tarball (as Packer's docker builder exports one).
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["-cf"])
        .arg(dir.path().join("rootfs.tar"))
        .arg("."));
    let tar = std::fs::read(dir.path().join("rootfs.tar")).unwrap();
    let record = built::built(
        &dir.path().join("out/global/debian-12/1.0.0"),
        "1.0.0",
        &[("rootfs.tar", &tar)],
        None,
    );
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["-czf"])
        .arg(dir.path().join("rootfs.tar.gz"))
        .args(["./etc", "./usr", "./var"]));

    let scan = |extra: &[&str]| {
        let mut args = vec!["--record", record.to_str().unwrap(), "--json"];
        args.extend(extra);
        command(BIN, dir.path(), &args)
            .env("IMAGEPIPE_OSV_DB", &osv)
            .output()
            .unwrap()
    };
    for input in [None, Some("rootfs"), Some("rootfs.tar.gz")] {
        let out = scan(&input.map_or(vec![], |i| vec!["--input", i]));
        assert_exit(&out, 1);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ids(&doc), ["DSA-5001-1 libssl3"], "{input:?}");
        assert_eq!(doc["os"]["ecosystem"], "Debian:12", "{input:?}");
    }
    // A directory has no digest; a tarball's is in the SBOM.
    let sbom = |out: &std::process::Output| -> Value {
        assert_exit(out, 1);
        serde_json::from_slice(
            &std::fs::read(record.parent().unwrap().join("sbom.cdx.json")).unwrap(),
        )
        .unwrap()
    };
    let doc = sbom(&scan(&["--input", "rootfs"]));
    assert!(doc["metadata"]["component"].get("hashes").is_none());
    let doc = sbom(&scan(&["--input", "rootfs.tar.gz"]));
    assert_eq!(
        doc["metadata"]["component"]["hashes"][0]["content"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // A tarball reaching out of its root with `..` is refused, by name, exit 2.
    let hostile = dir.path().join("hostile.tar");
    tar_with_dotdot(&hostile);
    let out = scan(&["--input", hostile.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("climbs out of the root"),
        "{}",
        stderr(&out)
    );
    // --artifact and --input exclude each other: usage, exit 2.
    let out = scan(&["--input", "rootfs", "--artifact", "rootfs"]);
    assert_exit(&out, 2);
}

/// A tarball whose one member climbs out with `..`, which tar(1) would not write.
fn tar_with_dotdot(path: &Path) {
    let data = b"ID=debian\n";
    let mut h = tar::Header::new_ustar();
    let name = b"../etc/os-release";
    h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    builder.append(&h, &data[..]).unwrap();
    builder.finish().unwrap();
}

#[test]
fn a_stale_database_warns_or_fails_before_scanning() {
    let dir = project();
    let tree = debian_tree(dir.path());
    let record = built::built(
        &dir.path().join("out/global/debian-12/1.0.0"),
        "1.0.0",
        &[("disk.qcow2", &qcow2(&tree, dir.path()))],
        None,
    );
    let osv = dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("DSA-1-1.json"),
        osv_record(
            "DSA-1-1",
            "Debian:12",
            "zlib",
            "1",
            "2024-01-01T00:00:00Z",
            "",
        ),
    )
    .unwrap();
    let scan = |stale: &str| {
        command(BIN, dir.path(), &["--record", record.to_str().unwrap()])
            .env("IMAGEPIPE_OSV_DB", &osv)
            .env("IMAGEPIPE_STALE_DB", stale)
            .output()
            .unwrap()
    };
    let out = scan("warn");
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("newest from 2024-01-01") && stderr(&out).contains("refresh it"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(record.parent().unwrap().join("scan.json")).unwrap();
    let out = scan("fail");
    assert_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("newest record is 2024-01-01, older than 7days; refresh the database"),
        "{}",
        stderr(&out)
    );
    assert!(
        !record.parent().unwrap().join("scan.json").exists(),
        "nothing is written when the database is refused"
    );
}
