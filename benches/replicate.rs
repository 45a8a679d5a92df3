//! `imagepipe-replicate-check` across many far-away sites: 40 Artifactory sites (the test
//! server of `imagepipe-testkit`) holding 10 artifacts and the record, each answer delayed by
//! 100 ms. The concurrent check is measured against one round trip and against a sequential
//! check (one site, one request at a time), all in the same run.
//!
//! `cargo bench --bench replicate` (IMAGEPIPE_BENCH_SITES, default 40;
//! IMAGEPIPE_BENCH_ARTIFACTS, default 10; IMAGEPIPE_BENCH_DELAY_MS, default 100;
//! IMAGEPIPE_BENCH_SEQUENTIAL=0 skips the slow sequential baseline).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{artifactory, bench, built};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imagepipe::config::{Credentials, Site, StoreSpec, TlsSpec};
use imagepipe::image::ImageRef;
use imagepipe::record::{GateStatus, Record};
use imagepipe::replicate::{self, CheckOptions, Reference, Target, Verdict};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{self, LocalStore, Store, StoreUrl};
use sha2::Digest as _;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn item(bytes: Vec<u8>) -> artifactory::Item {
    artifactory::Item {
        sha256: hex(&sha2::Sha256::digest(&bytes)),
        sha1: hex(&sha1::Sha1::digest(&bytes)),
        md5: String::new(),
        properties: Default::default(),
        bytes,
    }
}

fn main() {
    let sites = bench::env_num("IMAGEPIPE_BENCH_SITES", 40);
    let artifacts = bench::env_num("IMAGEPIPE_BENCH_ARTIFACTS", 10);
    let delay = Duration::from_millis(bench::env_num("IMAGEPIPE_BENCH_DELAY_MS", 100) as u64);
    let sequential = bench::env_num("IMAGEPIPE_BENCH_SEQUENTIAL", 1) != 0;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = bench::scratch();
    let ui = Ui::new("bench", false, ProgressMode::None);

    // One published version in a local primary store.
    let files: Vec<(String, Vec<u8>)> = (0..artifacts)
        .map(|i| (format!("part{i}.vmdk"), vec![i as u8; 4096]))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let record_path = built::built(
        &dir.path().join("out"),
        "1.0.0",
        &refs,
        Some(GateStatus::Passed),
    );
    let primary = LocalStore::new(dir.path().join("primary"));
    let loaded = Record::read(&record_path).unwrap();
    rt.block_on(imagepipe::publish::publish(
        &primary,
        &loaded,
        &record_path,
        None,
        None,
        false,
        &ui,
    ))
    .unwrap();
    let image = ImageRef {
        name: "global/debian-12".parse().unwrap(),
        version: "1.0.0".parse().unwrap(),
    };
    let record_bytes = std::fs::read(primary.record_location(&image)).unwrap();

    // The sites, each holding the same bytes.
    let token = dir.path().join("token");
    std::fs::write(&token, artifactory::TOKEN).unwrap();
    let mut urls = Vec::new();
    for _ in 0..sites {
        let (url, state) = artifactory::start("os-images");
        let mut s = state.lock().unwrap();
        for (name, bytes) in &files {
            s.items.insert(
                format!("global/debian-12/1.0.0/{name}"),
                item(bytes.clone()),
            );
        }
        s.items.insert(
            "global/debian-12/1.0.0/imagepipe-record.json".into(),
            item(record_bytes.clone()),
        );
        s.delay = delay;
        urls.push(url);
    }
    let targets: Vec<Target> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let spec = StoreSpec {
                url: StoreUrl::parse(&format!("artifactory+{url}/os-images"), Path::new("/"))
                    .unwrap(),
                credentials: Credentials {
                    token_file: Some(PathBuf::from(&token)),
                    ..Credentials::default()
                },
                tls: TlsSpec::default(),
            };
            Target {
                store: store::open(&spec).unwrap(),
                site: Site {
                    name: format!("site{i:02}"),
                    store: spec,
                    library: None,
                    sla: None,
                },
            }
        })
        .collect();
    let reference = rt.block_on(Reference::fetch(&primary, &image)).unwrap();

    // One round trip: a File Info request to one site, on a warm connection.
    let rtt = {
        let store = &targets[0].store;
        let f = loaded.record.artifacts[0].file().unwrap().clone();
        rt.block_on(store.artifact_digest(&image, &f)).unwrap();
        bench::best(5, || {
            rt.block_on(store.artifact_digest(&image, &f)).unwrap();
        })
    };

    let check = |options: &CheckOptions| {
        let results = rt.block_on(replicate::check_all(
            &targets,
            &reference,
            options,
            || async { Vec::new() },
            |_| {},
        ));
        assert_eq!(results.len(), sites);
        assert!(results.iter().all(|r| r.verdict == Verdict::Present));
    };
    let options = CheckOptions::default();
    check(&options); // warm the connections
    let concurrent = bench::best(3, || check(&options));

    println!(
        "{sites} sites x {artifacts} artifacts + record, every answer delayed {} ms",
        delay.as_millis()
    );
    println!("one round trip:       {:>9.1} ms", ms(rtt));
    println!(
        "concurrent check:     {:>9.1} ms  ({:.2}x one round trip; target <= 3x; --concurrency {} --requests-per-site {})",
        ms(concurrent),
        concurrent.as_secs_f64() / rtt.as_secs_f64(),
        options.concurrency,
        options.requests_per_site,
    );
    if sequential {
        let t = Instant::now();
        check(&CheckOptions {
            concurrency: 1,
            requests_per_site: 1,
            ..CheckOptions::default()
        });
        let seq = t.elapsed();
        println!(
            "sequential baseline:  {:>9.1} ms  (concurrent is {:.1}x faster)",
            ms(seq),
            seq.as_secs_f64() / concurrent.as_secs_f64()
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
