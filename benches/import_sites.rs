//! `imagepipe-import` into many far-away vCenters at once: 8 vCenter simulators
//! (`tests/vcsim`), each answering every request after its own latency (the slowest after
//! IMAGEPIPE_BENCH_DELAY_MS, the others a little sooner), each importing the same OVA from its
//! site's store. Importing into all of them is measured against importing into the slowest one
//! alone, in the same run: with sites run concurrently, the whole takes about as long as the
//! slowest site (target: at most 1.3x).
//!
//! For scale, the same sites one at a time (`--concurrency 1`, the step's old behaviour) are
//! measured once.
//!
//! `cargo bench --bench import_sites` (IMAGEPIPE_BENCH_SITES, default 8;
//! IMAGEPIPE_BENCH_DELAY_MS, default 50; IMAGEPIPE_BENCH_MIB, default 8;
//! IMAGEPIPE_BENCH_ROUNDS, default 3). Needs the simulator (scripts/vcsim).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, built, vcsim};

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use imagepipe::config::Config;
use imagepipe::import::{self, ImportOptions};
use imagepipe::library::Layout;
use imagepipe::library::vsphere::Generation;
use imagepipe::record::{GateStatus, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::LocalStore;

const OVF: &str = r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="bench-disk1.vmdk" ovf:size="SIZE"/></References>
</Envelope>
"#;

/// An OVA holding a disk of `mib` MiB that compresses poorly, with its manifest.
fn make_ova(dir: &Path, mib: usize) -> Vec<u8> {
    let disk = dir.join("bench-disk1.vmdk");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&disk).unwrap());
    let mut rng = fastrand::Rng::with_seed(1);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rng.fill(&mut block);
        f.write_all(&block).unwrap();
    }
    drop(f);
    let size = std::fs::metadata(&disk).unwrap().len();
    std::fs::write(
        dir.join("bench.ovf"),
        OVF.replace("SIZE", &size.to_string()),
    )
    .unwrap();
    let sha = |p: &Path| imagepipe::hash::hash_file(p, &|_| {}).unwrap().sha256;
    std::fs::write(
        dir.join("bench.mf"),
        format!(
            "SHA256(bench.ovf)= {}\nSHA256(bench-disk1.vmdk)= {}\n",
            sha(&dir.join("bench.ovf")),
            sha(&disk)
        ),
    )
    .unwrap();
    let ova = dir.join("bench.ova");
    assert!(
        Command::new("tar")
            .args(["--format=ustar", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(&ova)
            .args(["bench.ovf", "bench.mf", "bench-disk1.vmdk"])
            .status()
            .unwrap()
            .success()
    );
    std::fs::read(ova).unwrap()
}

fn main() {
    // The sites' credentials come from the environment, as in production; the benchmark runs
    // itself again with them set rather than changing its own environment.
    if std::env::var_os("VC_USER").is_none() {
        let status = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env("VC_USER", vcsim::USER)
            .env("VC_PASS", vcsim::PASSWORD)
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(2));
    }
    let n = bench::env_num("IMAGEPIPE_BENCH_SITES", 8).max(2);
    let delay_ms = bench::env_num("IMAGEPIPE_BENCH_DELAY_MS", 50);
    let mib = bench::env_num("IMAGEPIPE_BENCH_MIB", 8);
    let rounds = bench::env_num("IMAGEPIPE_BENCH_ROUNDS", 3);
    let dir = bench::scratch();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Site i answers after delay * (i + 1) / n: the last one is the slowest.
    let sims: Vec<vcsim::Vcsim> = (0..n)
        .map(|i| {
            let d = format!("{}ms", delay_ms * (i + 1) / n);
            vcsim::Vcsim::start_with(&["-delay", &d])
        })
        .collect();
    for vc in &sims {
        rt.block_on(vc.create_library("images"));
    }
    let mut toml = String::from(
        "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n",
    );
    for (i, vc) in sims.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[site]]\nname = \"dc{i:02}\"\n[site.store]\nurl = \"file:dc{i:02}\"\n[site.library]\nurl = \"{}\"\nlibrary = \"images\"\nusername_env = \"VC_USER\"\npassword_env = \"VC_PASS\"\n",
            vc.url
        ));
    }
    let root = dir.path();
    std::fs::write(root.join("imagepipe.toml"), &toml).unwrap();
    let config = Config::load(&root.join("imagepipe.toml")).unwrap();
    let sites = config.select_sites(&[]).unwrap();

    let ova = make_ova(root, mib);
    let record = built::built(
        &root.join("out/global/debian-12/1.0.0"),
        "1.0.0",
        &[("global-debian-12.ova", &ova)],
        Some(GateStatus::Passed),
    );
    let loaded = Record::read(&record).unwrap();
    let ui = Ui::new("bench", false, ProgressMode::None);
    for i in 0..n {
        let store = LocalStore::new(root.join(format!("dc{i:02}")));
        rt.block_on(imagepipe::publish::publish(
            &store, &loaded, &record, None, None, false, &ui,
        ))
        .unwrap();
    }
    let image = loaded.record.id();

    // Each measured import makes a new item (its own name), so every one sends the whole OVA.
    let mut run = 0;
    let mut import = |sites: &[imagepipe::config::Site], concurrency: usize| {
        run += 1;
        let options = ImportOptions {
            item_name: format!("{{image}}-r{run}"),
            layout: Layout::ItemPerImage,
            keep: 1,
            pull: false,
            generation: Generation::Rest,
            artifact: None,
            sync_deadline: Duration::from_secs(60),
            keep_alive: Duration::from_secs(60),
            allow_missing_manifest: false,
            deploy_check: None,
        };
        let t = Instant::now();
        let outcomes = rt.block_on(import::run(
            sites,
            &image,
            &loaded.record,
            &options,
            concurrency,
            &ui,
        ));
        let took = t.elapsed();
        for o in &outcomes {
            assert!(
                o.result.as_ref().is_ok_and(|i| i.changed),
                "{}: {:?}",
                o.site,
                o.result
            );
        }
        took
    };
    let slowest = &sites[n - 1..];
    let (mut one, mut all) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        one = one.min(import(slowest, n));
        all = all.min(import(&sites, n));
    }
    // For scale: the same sites one after the other, as the step imported before.
    let sequential = import(&sites, 1);
    println!(
        "import of a {mib} MiB OVA into {n} vCenter simulators answering after up to {delay_ms} ms, best of {rounds}"
    );
    println!("the slowest site alone: {:>8.2} s", one.as_secs_f64());
    println!(
        "all {n} sites:           {:>8.2} s  ({:.2}x the slowest alone; target <= 1.3x)",
        all.as_secs_f64(),
        all.as_secs_f64() / one.as_secs_f64()
    );
    println!(
        "all {n}, one at a time:    {:>8.2} s  ({:.2}x the slowest alone; one run)",
        sequential.as_secs_f64(),
        sequential.as_secs_f64() / one.as_secs_f64()
    );
}
