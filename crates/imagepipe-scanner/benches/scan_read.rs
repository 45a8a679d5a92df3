//! The scan's inventory of a disk image read in place, from qcow2, stream-optimized VMDK and
//! OVA, against the time `qemu-img convert` alone takes to make a raw copy of the same image (the
//! first thing a scanner that needs a raw or mounted image does), in the same run; with the
//! bytes of each image file read and the peak memory.
//!
//! `cargo bench --bench scan_read` (IMAGEPIPE_BENCH_FS_MIB, default 512: the filesystem's
//! size). The system is a real Debian 12 minbase tree (mmdebstrap, `scripts/debian-minbase`),
//! with incompressible files filling half of the rest, so that the image is mostly data.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, images};

use std::process::Command;

use imagepipe_scanner::rootfs::{ImageTree, Tree as _};
use imagepipe_scanner::{inventory, policy};
use images::run;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mib = bench::env_num("IMAGEPIPE_BENCH_FS_MIB", 512);
    let dir = bench::scratch();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let minbase = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/debian-minbase"
    ))
    .output()
    .unwrap();
    assert!(minbase.status.success(), "scripts/debian-minbase failed");
    let minbase = String::from_utf8(minbase.stdout).unwrap();
    run(Command::new("tar")
        .arg("-xpf")
        .arg(minbase.trim())
        .arg("-C")
        .arg(&tree)
        .arg("--numeric-owner"));
    std::fs::create_dir_all(tree.join("usr/share/filler")).unwrap();
    let used_mib = String::from_utf8(
        Command::new("du")
            .args(["-sm"])
            .arg(&tree)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .next()
    .and_then(|n| n.parse::<usize>().ok())
    .unwrap_or(0);
    let mut rng = fastrand::Rng::with_seed(3);
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib.saturating_sub(used_mib) / 2 {
        rng.fill(&mut block);
        std::fs::write(tree.join(format!("usr/share/filler/{i}.bin")), &block).unwrap();
    }
    let raw = dir.path().join("disk.raw");
    images::ext4(&tree, &raw, "root", &format!("{mib}M"));
    let qcow2 = images::qcow2(&raw, true);
    let vmdk = images::vmdk(&raw, "streamOptimized");
    let ova = images::ova(&raw, "bench");

    let want = inventory::from_dir(&tree).unwrap().1.len();
    println!("a {mib} MiB ext4 image of Debian 12 minbase, {want} packages");
    for (name, image) in [
        ("raw", &raw),
        ("qcow2 (compressed)", &qcow2),
        ("VMDK stream-optimized", &vmdk),
        ("OVA", &ova),
    ] {
        let file_size = std::fs::metadata(image).unwrap().len();
        let baseline = bench::qemu_img_convert(image, dir.path());
        let mut read = 0;
        let ours = bench::best(5, || {
            let t = ImageTree::open(image).unwrap();
            let (_, packages) = inventory::from_tree(&t).unwrap();
            assert_eq!(packages.len(), want);
            read = t.bytes_read();
        });
        println!(
            "{name:<24} inventory {:>7.1} ms, qemu-img convert to raw {:>8.1} ms ({:.0}x the inventory's time); read {} of {} bytes ({:.2}%)",
            ours.as_secs_f64() * 1e3,
            baseline.as_secs_f64() * 1e3,
            baseline.as_secs_f64() / ours.as_secs_f64(),
            read,
            file_size,
            read as f64 * 100.0 / file_size as f64
        );
        // The whole judgement: the baseline walks every system directory's inodes too.
        let rules = policy::rules(&[], &[]).unwrap();
        let mut full_read = 0;
        let full = bench::best(3, || {
            let t = ImageTree::open(image).unwrap();
            let (_, packages) = inventory::from_tree(&t).unwrap();
            policy::evaluate(&rules, &t, &packages).unwrap();
            full_read = t.bytes_read();
        });
        println!(
            "{:<24} with the hardening baseline {:>7.1} ms ({:.0}x); read {} bytes ({:.2}%)",
            "",
            full.as_secs_f64() * 1e3,
            baseline.as_secs_f64() / full.as_secs_f64(),
            full_read,
            full_read as f64 * 100.0 / file_size as f64
        );
    }
    println!(
        "peak memory of this process: {} KiB (the image is never held in memory)",
        peak_rss_kib()
    );
}
