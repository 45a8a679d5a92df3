//! The scan's readings against the tools that define them: the version orderings against
//! `dpkg --compare-versions` and rpm's own `rpm.vercmp` (rpm 4.18, Debian's `rpm` package) on
//! the same generated versions, and the dpkg inventory against `dpkg-query -W`. apk-tools has no
//! Debian 12 package; its ordering is tested by the cases in the module.

#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::process::Command;

use imagepipe_testkit::rpmdb;

use imagepipe_scanner::version::Scheme;

fn pick<'a>(rng: &mut fastrand::Rng, from: &'a [&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

/// Versions built from the pieces real packages use, so that pairs often share prefixes and
/// the interesting rules (`~`, letters after numbers, leading zeros, epochs) meet.
fn version(rng: &mut fastrand::Rng, parts: &[&str], seps: &[&str]) -> String {
    let mut v = String::new();
    for k in 0..rng.usize(1..5) {
        if k > 0 {
            v.push_str(pick(rng, seps));
        }
        v.push_str(pick(rng, parts));
    }
    v
}

#[test]
fn dpkg_matches_dpkg_compare_versions() {
    let mut rng = fastrand::Rng::with_seed(12);
    let parts = [
        "0", "1", "2", "10", "01", "9", "a", "b", "rc1", "1a", "2b3", "beta",
    ];
    let mut disagreements = Vec::new();
    for _ in 0..600 {
        let make = |rng: &mut fastrand::Rng| {
            let mut v = String::new();
            if rng.u8(..8) == 0 {
                v.push_str(&format!("{}:", rng.u8(..3)));
            }
            // dpkg wants the upstream version to start with a digit.
            v.push_str(&rng.u8(..10).to_string());
            v.push_str(&version(rng, &parts, &[".", "+", "~", ""]));
            if rng.bool() {
                v.push('-');
                v.push_str(&version(rng, &parts, &[".", "+", "~"]));
            }
            v
        };
        let (a, b) = (make(&mut rng), make(&mut rng));
        let dpkg = |op: &str| {
            Command::new("dpkg")
                .args(["--compare-versions", &a, op, &b])
                .status()
                .unwrap()
                .success()
        };
        let want = if dpkg("lt") {
            Ordering::Less
        } else if dpkg("eq") {
            Ordering::Equal
        } else {
            Ordering::Greater
        };
        if Scheme::Dpkg.compare(&a, &b) != want {
            disagreements.push(format!("{a} {want:?} {b}"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[test]
fn rpm_matches_rpm_vercmp() {
    let mut rng = fastrand::Rng::with_seed(34);
    let parts = [
        "0", "1", "2", "10", "001", "a", "b", "rc", "git", "el9", "fc39", "p1",
    ];
    let seps = [".", "_", "~", "^", "+", ""];
    let pairs: Vec<(String, String)> = (0..1500)
        .map(|_| {
            let make = |rng: &mut fastrand::Rng| {
                let mut v = String::new();
                if rng.u8(..8) == 0 {
                    v.push_str(&format!("{}:", rng.u8(..3)));
                }
                v.push_str(&version(rng, &parts, &seps));
                if rng.bool() {
                    v.push('-');
                    v.push_str(&version(rng, &parts, &seps));
                }
                v
            };
            (make(&mut rng), make(&mut rng))
        })
        .collect();
    // One rpm process for every pair: a Lua script printing one verdict per line.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pairs.lua");
    let lua: String = pairs
        .iter()
        .map(|(a, b)| format!("print(rpm.vercmp({a:?}, {b:?}) .. \"\\n\")\n"))
        .collect();
    std::fs::write(&script, lua).unwrap();
    let out = Command::new("rpm")
        .arg("--eval")
        .arg(format!(
            "%{{lua: dofile({:?})}}",
            script.display().to_string()
        ))
        .output()
        .expect("rpm is installed (apt-get install rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<i32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(verdicts.len(), pairs.len());
    let disagreements: Vec<String> = pairs
        .iter()
        .zip(verdicts)
        .filter(|((a, b), v)| Scheme::Rpm.compare(a, b) != v.cmp(&0))
        .map(|((a, b), v)| format!("{a} vs {b}: rpm says {v}"))
        .collect();
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

/// The inventory of this machine's own root filesystem (a real Debian tree) against
/// `dpkg-query -W` on it.
#[test]
fn dpkg_inventory_matches_dpkg_query() {
    let (os, packages) = imagepipe_scanner::inventory::from_dir(std::path::Path::new("/")).unwrap();
    assert!(!os.id.is_empty());
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut want: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut got: Vec<String> = packages
        .iter()
        .filter(|p| p.scheme == Scheme::Dpkg)
        .map(|p| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                p.name, p.version, p.arch, p.source, p.source_version
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert!(want.len() > 50, "a real package database");
    assert_eq!(got, want);
}

/// The inventory of a tree whose rpm database `rpm` itself wrote (RHEL 9's SQLite backend)
/// against `rpm -qa` on it: epochs, subpackages of one source, noarch.
#[test]
fn rpm_inventory_matches_rpm_query() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
    )
    .unwrap();
    let s = |name, epoch, version, release, arch, binaries| rpmdb::Source {
        name,
        epoch,
        version,
        release,
        arch,
        binaries,
    };
    rpmdb::install(
        &root,
        dir.path(),
        &[
            s(
                "openssl",
                Some(1),
                "3.0.7",
                "27.el9",
                "x86_64",
                &["openssl", "openssl-libs"],
            ),
            s(
                "glibc",
                None,
                "2.34",
                "83.el9_3.7",
                "x86_64",
                &["glibc", "glibc-common", "glibc-minimal-langpack"],
            ),
            s("bash", None, "5.1.8", "6.el9_1", "x86_64", &["bash"]),
            s("tzdata", None, "2023c", "1.el9", "noarch", &["tzdata"]),
            s(
                "shadow-utils",
                Some(2),
                "4.9",
                "8.el9",
                "x86_64",
                &["shadow-utils"],
            ),
            s(
                "rocky-release",
                None,
                "9.3",
                "1.2.el9",
                "noarch",
                &["rocky-release", "rocky-gpg-keys"],
            ),
        ],
    );
    let (os, packages) = imagepipe_scanner::inventory::from_dir(&root).unwrap();
    assert_eq!(os.ecosystem.as_deref(), Some("Rocky Linux:9"));
    assert!(packages.iter().all(|p| p.scheme == Scheme::Rpm));
    let got = rpmdb::as_query(&packages);
    let want = rpmdb::query(&root);
    assert_eq!(want.len(), 10, "{want:#?}");
    assert_eq!(got, want);
    let libs = packages.iter().find(|p| p.name == "openssl-libs").unwrap();
    assert_eq!(
        (libs.source.as_str(), libs.source_version.as_str()),
        ("openssl", "1:3.0.7-27.el9")
    );
}
