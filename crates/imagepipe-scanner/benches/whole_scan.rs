//! The whole scan of a GPT raw disk of a real Debian 12 minbase (issue 20's benchmark): the
//! inventory, the whole hardening baseline, and matching against 100,000 advisories, warm (the
//! image in the page cache), with the bytes of the disk read; and the same disk read the way a
//! rescan in place reads a published version (inventory and matching only, through the ranged
//! reader and its 64 KiB chunks), with the bytes it fetches and its requests.
//!
//! `cargo bench --bench whole_scan` (IMAGEPIPE_BENCH_DISK_MIB, default 1024: the disk's size;
//! IMAGEPIPE_BENCH_RECORDS, default 100000). The partition is filled like `scan_read`'s: the
//! minbase tree plus incompressible files filling half of the rest.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, images};

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use imagepipe_scanner::osv::Database;
use imagepipe_scanner::remote::{Counters, RemoteSource};
use imagepipe_scanner::rootfs::{ImageTree, Tree as _};
use imagepipe_scanner::{disk, inventory, policy};
use images::run;

fn main() {
    let mib = bench::env_num("IMAGEPIPE_BENCH_DISK_MIB", 1024);
    let records = bench::env_num("IMAGEPIPE_BENCH_RECORDS", 100_000);
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
    let used_mib = String::from_utf8(
        Command::new("du")
            .arg("-sm")
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
    std::fs::create_dir_all(tree.join("usr/share/filler")).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib.saturating_sub(used_mib + 2) / 2 {
        rng.fill(&mut block);
        std::fs::write(tree.join(format!("usr/share/filler/{i}.bin")), &block).unwrap();
    }

    // A GPT disk with one Linux root partition from 1 MiB to the end, the filesystem written
    // into it in place (mke2fs -E offset), as a cloud image is laid out.
    let disk_path = dir.path().join("disk.raw");
    run(Command::new("truncate")
        .args(["-s", &format!("{mib}M")])
        .arg(&disk_path));
    let mut sfdisk = Command::new(images::sbin("sfdisk"));
    sfdisk
        .args(["-q", "-X", "gpt"])
        .arg(&disk_path)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"start=2048, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    let part_kib = (mib - 2) * 1024;
    run(Command::new(images::sbin("mke2fs"))
        .args([
            "-q",
            "-t",
            "ext4",
            "-L",
            "root",
            "-E",
            "offset=1048576",
            "-d",
        ])
        .arg(&tree)
        .arg(&disk_path)
        .arg(format!("{part_kib}k")));

    let (os, packages) = inventory::from_dir(&tree).unwrap();
    let sources: Vec<String> = {
        let mut s: Vec<String> = packages.iter().map(|p| p.source.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    // Advisories over 2,000 source names, the image's real ones among them, so that some
    // affect it; each is fixed in a version above or below the installed one at random.
    let docs: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let pkg = rng.usize(..2000);
            let name = sources
                .get(pkg)
                .cloned()
                .unwrap_or_else(|| format!("src{pkg}"));
            let fixed = if rng.bool() { "0.1-1" } else { "999:1-1" };
            format!(
                r#"{{"id":"DEBIAN-CVE-2026-{i}","modified":"2026-11-01T00:00:00Z","summary":"generated","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
            )
            .into_bytes()
        })
        .collect();
    let mut db = Database::default();
    let load = bench::best(3, || {
        db = Database::default();
        for (i, d) in docs.iter().enumerate() {
            db.add(d, &i.to_string()).unwrap();
        }
    });
    let ecosystem = os.ecosystem.clone().unwrap();
    let rules = policy::rules(&[], &[]).unwrap();
    println!(
        "a {mib} MiB GPT raw disk of Debian 12 minbase ({} packages, {} source packages), {records} advisories",
        packages.len(),
        sources.len()
    );

    // Warm: one untimed pass fills the page cache.
    let whole = |with_baseline: bool| {
        let t = Instant::now();
        let tree = ImageTree::open(&disk_path).unwrap();
        let (_, pkgs) = inventory::from_tree(&tree).unwrap();
        let inventory_done = t.elapsed();
        let failing = if with_baseline {
            policy::evaluate(&rules, &tree, &pkgs)
                .unwrap()
                .iter()
                .filter(|r| !r.passed)
                .count()
        } else {
            0
        };
        let findings = db.matches(&ecosystem, &pkgs).len();
        (
            t.elapsed(),
            inventory_done,
            tree.bytes_read(),
            findings,
            failing,
            pkgs.len(),
        )
    };
    let _ = whole(true);
    let best = |with_baseline: bool| {
        (0..3)
            .map(|_| whole(with_baseline))
            .min_by_key(|r| r.0)
            .unwrap()
    };
    let (total, inv, read, findings, failing, n) = best(true);
    assert_eq!(n, packages.len(), "the disk's inventory is the tree's");
    println!(
        "whole scan (inventory {:.1} ms, baseline, matching): {:>8.1} ms warm, {findings} findings, {failing} failing rules; read {read} of {} bytes ({:.2}%)",
        inv.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        (mib as u64) << 20,
        read as f64 * 100.0 / ((mib as u64) << 20) as f64
    );
    let (total, _, read, _, _, _) = best(false);
    println!(
        "inventory and matching only:                       {:>8.1} ms warm; read {read} bytes ({:.2}%)",
        total.as_secs_f64() * 1e3,
        read as f64 * 100.0 / ((mib as u64) << 20) as f64
    );
    println!(
        "loading the {records} advisories (once per scan):  {:>8.1} ms",
        load.as_secs_f64() * 1e3
    );

    // As a rescan reads it: through the ranged reader, in 64 KiB chunks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let reader = imagepipe::store::FileReader::open(disk_path.clone()).unwrap();
    let counters = Arc::new(Counters::default());
    let t = Instant::now();
    let source = Arc::new(RemoteSource::new(
        Arc::new(reader),
        runtime.handle().clone(),
        counters.clone(),
    ));
    let slice = disk::Slice::whole_of(source).unwrap();
    let tree = ImageTree::from_disk(disk::open_slice(slice).unwrap()).unwrap();
    let (_, pkgs) = inventory::from_tree(&tree).unwrap();
    let findings = db.matches(&ecosystem, &pkgs).len();
    println!(
        "as a rescan reads it (ranged reads, 64 KiB chunks): {:>8.1} ms, {findings} findings; fetched {} bytes ({:.2}%) in {} requests",
        t.elapsed().as_secs_f64() * 1e3,
        counters.bytes(),
        counters.bytes() as f64 * 100.0 / ((mib as u64) << 20) as f64,
        counters.requests()
    );
}
