//! `imagepipe-fleet`'s gathering at scale: 200 images × 20 versions published in a primary
//! Artifactory and held by 40 sites' Artifactories (the test server of `imagepipe-testkit`),
//! every answer of every server delayed by 50 ms. The whole view is measured against one round
//! trip to one of those servers, in the same run.
//!
//! `cargo bench --bench fleet` (IMAGEPIPE_BENCH_IMAGES, default 200; IMAGEPIPE_BENCH_VERSIONS,
//! default 20; IMAGEPIPE_BENCH_SITES, default 40; IMAGEPIPE_BENCH_DELAY_MS, default 50;
//! IMAGEPIPE_BENCH_CONCURRENCY, default 16, the step's default).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{artifactory, bench, built};

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use imagepipe::config::Config;
use imagepipe::fleet::Presence;
use imagepipe::record::{GateStatus, Record};
use imagepipe::store;

fn main() {
    let images = bench::env_num("IMAGEPIPE_BENCH_IMAGES", 200);
    let versions = bench::env_num("IMAGEPIPE_BENCH_VERSIONS", 20);
    let sites = bench::env_num("IMAGEPIPE_BENCH_SITES", 40);
    let delay = Duration::from_millis(bench::env_num("IMAGEPIPE_BENCH_DELAY_MS", 50) as u64);
    let concurrency = bench::env_num("IMAGEPIPE_BENCH_CONCURRENCY", 16);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = bench::scratch();

    // One real record, renamed for every image version; each site's copy of a record is an
    // empty item (a site is only asked which records it has), so 40 sites × 4,000 records stay
    // small in memory.
    let template = Record::read(&built::built(
        &dir.path().join("out"),
        "1.0.0",
        &[("disk.qcow2", b"disk")],
        Some(GateStatus::Passed),
    ))
    .unwrap()
    .record;
    let name = |i: usize| format!("team{}/image-{i:03}", i % 10);
    let version = |v: usize| format!("1.{v}.0");
    let (primary_url, primary) = artifactory::start("images");
    {
        let mut s = primary.lock().unwrap();
        for i in 0..images {
            for v in 0..versions {
                let mut r = template.clone();
                r.image.name = name(i).parse().unwrap();
                r.image.version = version(v).parse().unwrap();
                // With the properties imagepipe-publish sets on it.
                let mut item = artifactory::Item::new(r.to_bytes());
                for (k, val) in imagepipe::publish::properties(&r, None, None) {
                    item.properties.insert(k, vec![val]);
                }
                s.items.insert(
                    format!("{}/{}/imagepipe-record.json", name(i), version(v)),
                    item,
                );
            }
        }
        s.delay = delay;
    }
    let empty = artifactory::Item::new(Vec::new());
    let mut site_urls = Vec::new();
    let mut site_states = Vec::new();
    for n in 0..sites {
        let (url, state) = artifactory::start("images");
        {
            let mut s = state.lock().unwrap();
            for i in 0..images {
                for v in 0..versions {
                    // The last site has not received the newest version of the first image.
                    if n + 1 == sites && i == 0 && v + 1 == versions {
                        continue;
                    }
                    s.items.insert(
                        format!("{}/{}/imagepipe-record.json", name(i), version(v)),
                        empty.clone(),
                    );
                }
            }
            s.delay = delay;
        }
        site_urls.push(url);
        site_states.push(state);
    }

    let token = dir.path().join("token");
    std::fs::write(&token, artifactory::TOKEN).unwrap();
    let mut toml = format!(
        "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"artifactory+{primary_url}/images\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    for i in 0..images {
        let _ = write!(
            toml,
            "\n[[image]]\nname = \"{}\"\ntemplate = \"t\"\n",
            name(i)
        );
    }
    for (n, url) in site_urls.iter().enumerate() {
        let _ = write!(
            toml,
            "\n[[site]]\nname = \"site{n:02}\"\nstore = {{ url = \"artifactory+{url}/images\", token_file = \"{}\" }}\n",
            token.display()
        );
    }
    let path = dir.path().join("imagepipe.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(&path).unwrap();

    // One round trip: one AQL listing of one image at a site, on a warm connection.
    let rtt = {
        let site = store::open(&config.sites[0].store).unwrap();
        let image = config.images[1].name.clone();
        rt.block_on(site.list_versions(&image)).unwrap();
        bench::best(5, || {
            assert_eq!(
                rt.block_on(site.list_versions(&image)).unwrap().len(),
                versions
            );
        })
    };

    let requests = |states: &[&artifactory::Shared]| -> usize {
        states.iter().map(|s| s.lock().unwrap().log.len()).sum()
    };
    let sites_before = requests(&site_states.iter().collect::<Vec<_>>());
    let primary_before = requests(&[&primary]);
    let mut view_time = Duration::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        let fleet = rt.block_on(imagepipe::fleet::gather(&config, concurrency));
        view_time = view_time.min(t.elapsed());
        // The view is the truth, not just fast.
        assert_eq!(fleet.images.len(), images);
        let first = &fleet.images[0];
        assert_eq!(first.versions.len(), versions, "{:?}", first.error);
        let newest = &first.versions[0];
        assert_eq!(newest.scan.as_deref(), Some("passed"));
        let last = format!("site{:02}", sites - 1);
        assert_eq!(newest.sites[&last], Presence::Absent);
        assert_eq!(newest.sites["site00"], Presence::Present);
        assert!(fleet.images.iter().all(|i| i.error.is_none()));
    }
    let site_requests = (requests(&site_states.iter().collect::<Vec<_>>()) - sites_before) / 2;
    let primary_requests = (requests(&[&primary]) - primary_before) / 2;

    println!(
        "{images} images x {versions} versions x {sites} sites, every answer delayed {} ms, --concurrency {concurrency}",
        delay.as_millis()
    );
    println!("one round trip:  {:>9.1} ms", ms(rtt));
    println!(
        "the whole view:  {:>9.1} ms  ({:.1}x one round trip)",
        ms(view_time),
        view_time.as_secs_f64() / rtt.as_secs_f64()
    );
    println!(
        "requests per view: {site_requests} to the {sites} sites, {primary_requests} to the primary"
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
