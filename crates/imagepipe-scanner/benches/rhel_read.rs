//! The inventory of a RHEL-family image read in place, against `qemu-img convert` of the same
//! image to raw, in the same run: GPT, `/boot` on XFS, LVM with `root` linear and `var` striped
//! on XFS, and a BerkeleyDB rpm database (RHEL 7/8) of 400 packages that rpm itself installed
//! (40 source packages of 10 binary packages each, built with rpmbuild), with incompressible
//! files filling about half of each filesystem.
//!
//! `cargo bench -p imagepipe-scanner --bench rhel_read` (IMAGEPIPE_BENCH_SOURCES, default 40).
//! Targets (issue 20): under 100 ms, reading under 5% of the image.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_scanner::inventory;
use imagepipe_scanner::rootfs::{ImageTree, Tree as _};
use imagepipe_testkit::images;
use imagepipe_testkit::{bench, rhel, rpmdb};

const ROCKY_8: &str = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.9\"\nPRETTY_NAME=\"Rocky Linux 8.9 (Green Obsidian)\"\n";

fn main() {
    let count = bench::env_num("IMAGEPIPE_BENCH_SOURCES", 40);
    let dir = bench::scratch();
    // Names live as long as the run: the sources borrow them.
    let names: Vec<(String, Vec<String>)> = (0..count)
        .map(|i| {
            let source = format!("bench-src{i:03}");
            let binaries = (0..10).map(|b| format!("{source}-bin{b}")).collect();
            (source, binaries)
        })
        .collect();
    let binaries: Vec<Vec<&str>> = names
        .iter()
        .map(|(_, b)| b.iter().map(String::as_str).collect())
        .collect();
    let sources: Vec<rpmdb::Source<'_>> = names
        .iter()
        .zip(&binaries)
        .map(|((name, _), binaries)| rpmdb::Source {
            name,
            epoch: None,
            version: "1.0",
            release: "1.el8",
            arch: "x86_64",
            binaries,
        })
        .collect();
    // Incompressible files fill about half of `/` and of the striped `/var`, so that the image
    // is mostly data, as a real one is, and not a sparse file that compresses to nothing.
    let mut rng = fastrand::Rng::with_seed(4);
    let mut block = vec![0u8; 1 << 20];
    for (at, mib) in [("tree/usr/share/filler", 48), ("tree/var/lib/filler", 24)] {
        let at = dir.path().join(at);
        std::fs::create_dir_all(&at).unwrap();
        for i in 0..mib {
            rng.fill(&mut block);
            std::fs::write(at.join(format!("{i}.bin")), &block).unwrap();
        }
    }
    let image = rhel::build(dir.path(), rhel::Db::Bdb, ROCKY_8, &sources);
    let want = image.rpm_qa.len();
    println!("a RHEL 8-style image (XFS on striped LVM, BerkeleyDB), {want} packages");
    let qcow2 = images::qcow2(&image.raw, true);
    let vmdk = images::vmdk(&image.raw, "streamOptimized");
    for (name, path) in [
        ("raw", &image.raw),
        ("qcow2 (compressed)", &qcow2),
        ("VMDK stream-optimized", &vmdk),
    ] {
        let size = std::fs::metadata(path).unwrap().len();
        let baseline = bench::qemu_img_convert(path, dir.path());
        let mut read = 0;
        let ours = bench::best(5, || {
            let t = ImageTree::open(path).unwrap();
            let (_, packages) = inventory::from_tree(&t).unwrap();
            assert_eq!(packages.len(), want);
            read = t.bytes_read();
        });
        println!(
            "{name:<24} inventory {:>7.1} ms, qemu-img convert to raw {:>8.1} ms ({:.1}x the inventory's time); read {} of {} bytes ({:.2}%)",
            ours.as_secs_f64() * 1e3,
            baseline.as_secs_f64() * 1e3,
            baseline.as_secs_f64() / ours.as_secs_f64(),
            read,
            size,
            read as f64 * 100.0 / size as f64
        );
    }
}
