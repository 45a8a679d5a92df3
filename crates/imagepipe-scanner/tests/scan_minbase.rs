//! The scan on a real Debian 12 minbase system (mmdebstrap, `scripts/debian-minbase`): its
//! inventory from the root filesystem tarball and from disk images made of it (qcow2,
//! stream-optimized VMDK, OVA) is exactly what `dpkg-query -W` lists, read from a small part of
//! each image, and the hardening baseline judges every form of it alike.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use imagepipe_testkit::images;

use imagepipe_scanner::rootfs;
use imagepipe_scanner::{inventory, policy};
use images::{ext4, ova, qcow2, run, vmdk};

fn minbase() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/debian-minbase");
    PathBuf::from(run(&mut Command::new(script)).trim())
}

/// `name version arch source source-version` per package, sorted.
fn lines(packages: &[inventory::Package]) -> Vec<String> {
    let mut out: Vec<String> = packages
        .iter()
        .map(|p| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                p.name, p.version, p.arch, p.source, p.source_version
            )
        })
        .collect();
    out.sort();
    out
}

/// The inventory, the baseline's verdicts, and the bytes the inventory read of the file's size.
fn scan(path: &Path) -> (Vec<String>, Vec<String>, u64, u64) {
    let tree = rootfs::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (os, packages) = inventory::from_tree(tree.as_ref()).unwrap();
    assert_eq!(
        os.ecosystem.as_deref(),
        Some("Debian:12"),
        "{}",
        path.display()
    );
    // What the inventory alone read; the policy then walks every system directory.
    let read = tree.bytes_read();
    let rules = policy::rules(&[], &[]).unwrap();
    let verdicts = policy::evaluate(&rules, tree.as_ref(), &packages)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|r| format!("{} {} {}", r.id, r.passed, r.detail))
        .collect();
    (
        lines(&packages),
        verdicts,
        read,
        std::fs::metadata(path).unwrap().len(),
    )
}

#[test]
fn debian_minbase_inventory_matches_what_dpkg_has_installed_in_every_format() {
    let tar = minbase();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    run(Command::new("tar")
        .args(["-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .arg("--numeric-owner"));
    let mut want: Vec<String> = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            tree.join("var/lib/dpkg").display()
        ))
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n",
        ]))
    .lines()
    // `-W` lists packages that only left configuration files too: the installed ones are those
    // whose state (the abbreviation's second letter) says their files are on disk.
    .filter_map(|l| {
        let (abbrev, rest) = l.split_once('\t').unwrap();
        match abbrev.chars().nth(1) {
            Some('i' | 't' | 'W' | 'F' | 'U') => Some(rest.to_string()),
            Some('c' | 'n') => None,
            _ => panic!("a minbase has no half-installed package: {l}"),
        }
    })
    .collect();
    want.sort();
    assert!(want.len() > 80, "a minbase system: {} packages", want.len());

    // The tarball, read in place. The baseline's verdicts on a real system (merged /usr:
    // /bin, /sbin and /lib are links) are the reference for the images made of it.
    let (got, baseline, _, _) = scan(&tar);
    assert_eq!(got, want, "the tarball");
    assert!(
        baseline
            .iter()
            .any(|v| v.starts_with("no-world-writable-system-files true")),
        "{baseline:#?}"
    );

    let raw = dir.path().join("disk.raw");
    ext4(&tree, &raw, "root", "512M");
    for image in [
        qcow2(&raw, true),
        vmdk(&raw, "streamOptimized"),
        ova(&raw, "minbase"),
    ] {
        let (got, verdicts, read, size) = scan(&image);
        assert_eq!(got, want, "{}", image.display());
        assert_eq!(verdicts, baseline, "{}", image.display());
        // Only the blocks the inventory needs: well under 5% of the image file.
        assert!(
            read * 20 < size,
            "{}: read {read} of {size} bytes",
            image.display()
        );
    }
}
