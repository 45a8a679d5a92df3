//! Artifact hashing against `openssl dgst -sha256`, measured in the same run.
//!
//! `cargo bench --bench hashing` (sizes: IMAGEPIPE_BENCH_FILE_MIB, default 1024, and
//! IMAGEPIPE_BENCH_FILES, default 2). Prints throughput ratios, best of several rounds each,
//! with the files in the page cache for both sides, as they are right after a Packer build.
//! Also prints the peak RSS after hashing a small and then the large set: it must not grow
//! with artifact size.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::bench;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imagepipe::hash::{default_workers, hash_file, hash_files};

fn make_file(path: &Path, mib: u64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut block = vec![0u8; 1 << 20];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..mib {
        rng.fill(&mut block);
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn openssl(paths: &[PathBuf]) {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256"])
        .args(paths)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success());
}

fn main() {
    // `cargo bench` passes --bench; this binary takes no arguments.
    let mib = bench::env_num("IMAGEPIPE_BENCH_FILE_MIB", 1024) as u64;
    let count = bench::env_num("IMAGEPIPE_BENCH_FILES", 2);
    let rounds = 3;
    let dir = bench::scratch();

    // Peak memory: a small set first, then the large one.
    let small: Vec<PathBuf> = (0..count)
        .map(|i| dir.path().join(format!("small{i}")))
        .collect();
    for (i, p) in small.iter().enumerate() {
        make_file(p, 16, i as u64);
    }
    let before = peak_rss_kib();
    for r in hash_files(&small, default_workers(), &|_| {}) {
        r.unwrap();
    }
    let rss_small = peak_rss_kib();

    let files: Vec<PathBuf> = (0..count)
        .map(|i| dir.path().join(format!("artifact{i}.raw")))
        .collect();
    for (i, p) in files.iter().enumerate() {
        make_file(p, mib, 100 + i as u64);
    }
    let total_bytes = mib * count as u64 * (1 << 20);
    // Warm the page cache for both sides.
    openssl(&files);

    let ossl_one = bench::best(rounds, || openssl(&files[..1]));
    let ours_one = bench::best(rounds, || {
        hash_file(&files[0], &|_| {}).unwrap();
    });
    let ossl_all = bench::best(rounds, || openssl(&files));
    let ours_all = bench::best(rounds, || {
        for r in hash_files(&files, default_workers(), &|_| {}) {
            r.unwrap();
        }
    });
    let rss_large = peak_rss_kib();

    let gib_s = |bytes: u64, d: Duration| bytes as f64 / d.as_secs_f64() / (1u64 << 30) as f64;
    let one = mib * (1 << 20);
    println!(
        "hashing benchmark: {count} files x {mib} MiB, best of {rounds}, {} workers",
        default_workers()
    );
    println!(
        "  one file        imagepipe {:.2} GiB/s   openssl {:.2} GiB/s   ratio {:.2}x",
        gib_s(one, ours_one),
        gib_s(one, ossl_one),
        ossl_one.as_secs_f64() / ours_one.as_secs_f64()
    );
    println!(
        "  build's set     imagepipe {:.2} GiB/s   openssl {:.2} GiB/s   ratio {:.2}x  (target >= 0.9x)",
        gib_s(total_bytes, ours_all),
        gib_s(total_bytes, ossl_all),
        ossl_all.as_secs_f64() / ours_all.as_secs_f64()
    );
    println!(
        "  peak RSS        {before} KiB at start, {rss_small} KiB after {} MiB, {rss_large} KiB after {} MiB (growth {} KiB)",
        16 * count,
        mib * count as u64,
        rss_large.saturating_sub(rss_small)
    );
}
