//! `imagepipe-import`'s PUSH into govmomi's vCenter simulator against `curl -T` of the same disk
//! to an upload endpoint of the same simulator, measured in the same run. Both stream over
//! loopback HTTP into the simulator's datastore; imagepipe also reads the disk out of the OVA
//! in place and checks it against the manifest while it streams.
//!
//! `cargo bench --bench import_push` (IMAGEPIPE_BENCH_MIB, default 1024; IMAGEPIPE_BENCH_ROUNDS,
//! default 3). Needs curl and the simulator (scripts/vcsim).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, vcsim};

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imagepipe::hash::Sha256Hex;
use imagepipe::library::vsphere::{Generation, Transfer, VSphere};
use imagepipe::library::{ImportRequest, Layout};
use imagepipe::secret::Secret;
use imagepipe::store::FileReader;

const OVF: &str = r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="bench-disk1.vmdk" ovf:size="SIZE"/></References>
</Envelope>
"#;

/// A disk of `mib` MiB that compresses poorly, and an OVA holding it.
fn make(dir: &Path, mib: usize) -> (std::path::PathBuf, std::path::PathBuf) {
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
    (disk, ova)
}

fn main() {
    let mib = bench::env_num("IMAGEPIPE_BENCH_MIB", 1024);
    let rounds = bench::env_num("IMAGEPIPE_BENCH_ROUNDS", 3);
    let dir = bench::scratch();
    let (disk, ova) = make(dir.path(), mib);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vc = vcsim::Vcsim::start();
    rt.block_on(vc.create_library("images"));

    // Baseline: curl -T of the disk to an upload endpoint of an update session.
    let curl_once = || {
        let item = rt.block_on(vc.rest(
            reqwest::Method::POST,
            "/content/library/item",
            Some(serde_json::json!({ "create_spec": {
                "library_id": rt.block_on(vc.rest(reqwest::Method::POST, "/content/library?~action=find", Some(serde_json::json!({"spec": {"name": "images"}}))))[0],
                "name": format!("curl-{}", fastrand::u32(..)), "type": "ovf" } })),
        ));
        let session = rt.block_on(vc.rest(
            reqwest::Method::POST,
            "/content/library/item/update-session",
            Some(serde_json::json!({ "create_spec": { "library_item_id": item } })),
        ));
        let file = rt.block_on(vc.rest(
            reqwest::Method::POST,
            &format!(
                "/content/library/item/updatesession/file/id:{}?~action=add",
                session.as_str().unwrap()
            ),
            Some(serde_json::json!({ "file_spec": { "name": "bench-disk1.vmdk", "source_type": "PUSH" } })),
        ));
        let uri = file["upload_endpoint"]["uri"].as_str().unwrap().to_string();
        let sid = rt.block_on(vc.session(&reqwest::Client::new()));
        let status = Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null", "-H"])
            .arg(format!("vmware-api-session-id: {sid}"))
            .arg("-T")
            .arg(&disk)
            .arg(&uri)
            .status()
            .unwrap();
        assert!(status.success());
    };

    let client =
        imagepipe::http::HttpClient::new(&imagepipe::http::HttpOptions::default()).unwrap();
    let vsphere = VSphere::new(
        client,
        &vc.url,
        "images",
        vcsim::USER.into(),
        Secret::new(vcsim::PASSWORD.into()),
        Generation::Rest,
    );
    let reader = FileReader::open(ova.clone()).unwrap();
    let package = rt.block_on(imagepipe::ova::read(&reader)).unwrap();
    let mut version = 0;
    let mut ours_once = || {
        version += 1;
        let image = imagepipe::image::ImageRef {
            name: "bench/disk".parse().unwrap(),
            version: semver::Version::new(1, 0, version),
        };
        let request = ImportRequest::new(
            &image,
            Sha256Hex::digest(&version.to_le_bytes()),
            "{image}-{version}",
            Layout::ItemPerImage,
            1,
        )
        .unwrap();
        let imported = rt
            .block_on(vsphere.import(&request, &reader, &package, &Transfer::Push, &|_| {}))
            .unwrap();
        assert!(imported.changed);
    };

    // Alternate the two, each after the simulator's writes of the last one reached the disk,
    // so neither pays for the other's writeback.
    let (mut curl, mut ours) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let settle = || assert!(Command::new("sync").status().unwrap().success());
        settle();
        curl = curl.min(bench::best(1, &curl_once));
        settle();
        ours = ours.min(bench::best(1, &mut ours_once));
    }

    let bytes = std::fs::metadata(&disk).unwrap().len() as f64;
    let rate = |d: Duration| bytes / d.as_secs_f64() / (1 << 20) as f64;
    println!("PUSH of a {mib} MiB disk into the vCenter simulator, best of {rounds}");
    println!(
        "curl -T (disk only):            {:>8.2} s  {:>7.0} MiB/s",
        curl.as_secs_f64(),
        rate(curl)
    );
    println!(
        "imagepipe import (OVA in place): {:>8.2} s  {:>7.0} MiB/s  ({:.2}x curl; target >= 0.9x)",
        ours.as_secs_f64(),
        rate(ours),
        curl.as_secs_f64() / ours.as_secs_f64()
    );
}
