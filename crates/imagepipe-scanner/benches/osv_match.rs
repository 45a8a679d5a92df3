//! Matching an image's packages against an offline OSV database of generated records: loading
//! (parsing and indexing) and matching, against the time plain JSON parsing of the same records
//! takes (`serde_json::Value`), measured in the same run.
//!
//! `cargo bench --bench osv_match` (IMAGEPIPE_BENCH_RECORDS, default 100000;
//! IMAGEPIPE_BENCH_PACKAGES, default 100).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::bench;

use imagepipe_scanner::inventory::Package;
use imagepipe_scanner::osv::Database;
use imagepipe_scanner::version::Scheme;

fn main() {
    let records = bench::env_num("IMAGEPIPE_BENCH_RECORDS", 100_000);
    let packages = bench::env_num("IMAGEPIPE_BENCH_PACKAGES", 100);
    let mut rng = fastrand::Rng::with_seed(5);
    // Records spread over 2,000 source packages, a few per package affecting the image.
    let docs: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let pkg = rng.usize(..2000);
            let fixed = format!("{}.{}-{}", rng.u8(..5), rng.u8(..20), rng.u8(1..9));
            format!(
                r#"{{"id":"DEBIAN-CVE-2026-{i}","modified":"2026-11-01T00:00:00Z","summary":"generated","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"src{pkg}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
            )
            .into_bytes()
        })
        .collect();
    let image: Vec<Package> = (0..packages)
        .map(|i| Package {
            name: format!("bin{i}"),
            version: "2.10-3".into(),
            arch: "amd64".into(),
            source: format!("src{}", i * 20),
            source_version: "2.10-3".into(),
            modularity_label: None,
            scheme: Scheme::Dpkg,
        })
        .collect();

    let parse = bench::best(3, || {
        for d in &docs {
            let _: serde_json::Value = serde_json::from_slice(d).unwrap();
        }
    });
    let mut db = Database::default();
    let load = bench::best(3, || {
        db = Database::default();
        for (i, d) in docs.iter().enumerate() {
            db.add(d, &i.to_string()).unwrap();
        }
    });
    let mut findings = Vec::new();
    let matching = bench::best(3, || findings = db.matches("Debian:12", &image));
    let total = load + matching;
    println!(
        "{records} OSV records, {packages} packages, {} findings",
        findings.len()
    );
    println!(
        "plain JSON parse (baseline): {:>8.1} ms",
        parse.as_secs_f64() * 1e3
    );
    println!(
        "load and index:              {:>8.1} ms",
        load.as_secs_f64() * 1e3
    );
    println!(
        "match:                       {:>8.1} ms",
        matching.as_secs_f64() * 1e3
    );
    println!(
        "load + match:                {:>8.1} ms  ({:.2}x the plain parse; target < 1 s)",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() / parse.as_secs_f64()
    );
}
