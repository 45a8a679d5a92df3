//! Publishing a large artifact to an Artifactory-like server against `curl -T` of the same file
//! to the same server, measured in the same run.
//!
//! `cargo bench --bench upload` (IMAGEPIPE_BENCH_FILE_MIB, default 2048;
//! IMAGEPIPE_BENCH_SPARSE_MIB, default 8192). The server is a sink in this process that answers
//! like Artifactory's deploy and File Info, hashes what arrives (sha256 and sha1, as Artifactory
//! does) and keeps no bytes, so both clients pay the same server cost. Prints the throughput
//! ratio, the time of a checksum deploy of bytes the server already has, and the peak RSS
//! growth while publishing a 2 GiB file and a sparse 8 GiB file.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use imagepipe_testkit::{bench, server};

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use futures_util::StreamExt as _;
use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::record::{
    self, Artifact, ArtifactKind, BuildInfo, FileArtifact, GateStatus, ImageId, Record,
    ScanSection, SeverityCounts, Source,
};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::StoreUrl;
use sha2::Digest;

/// What the sink knows of each stored path: its sha256, size and properties.
#[derive(Clone, Default)]
struct Item {
    sha256: String,
    size: u64,
    props: BTreeMap<String, Vec<String>>,
}

type Known = Arc<Mutex<HashMap<String, Item>>>;

fn json(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn not_found(message: &str) -> Response {
    json(
        404,
        serde_json::json!({ "errors": [{ "status": 404, "message": message }] }),
    )
}

/// Matrix parameters of a deploy path (`…/file;k=v;k2=v2`), as Artifactory stores them.
fn matrix(path: &str) -> BTreeMap<String, Vec<String>> {
    path.split(';')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect()
}

async fn sink(State(known): State<Known>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let sha_header = req
        .headers()
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let by_checksum = req.headers().contains_key("x-checksum-deploy");
    if req.method() == Method::GET {
        // File Info and Get Item Properties, as Artifactory answers them.
        let key = path.replace("/api/storage/os-images/", "/os-images/");
        let item = known.lock().unwrap().get(&key).cloned();
        return match item {
            Some(i) if query.contains("properties") && i.props.is_empty() => {
                not_found("No properties could be found.")
            }
            Some(i) if query.contains("properties") => {
                json(200, serde_json::json!({ "properties": i.props }))
            }
            Some(i) => json(
                200,
                serde_json::json!({ "size": i.size.to_string(), "checksums": { "sha256": i.sha256 } }),
            ),
            None => not_found("Not Found"),
        };
    }
    if req.method() == Method::PATCH {
        // Update Item Properties.
        let key = path.replace("/api/metadata/os-images/", "/os-images/");
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut known = known.lock().unwrap();
        let Some(item) = known.get_mut(&key) else {
            return not_found("Not Found");
        };
        for (k, val) in v["props"].as_object().into_iter().flatten() {
            item.props.insert(
                k.clone(),
                vec![val.as_str().unwrap_or_default().to_string()],
            );
        }
        return Response::builder().status(204).body(Body::empty()).unwrap();
    }
    let key = path.split(';').next().unwrap().to_string();
    let props = matrix(&path);
    if by_checksum {
        let sha = sha_header.unwrap_or_default();
        let have = known
            .lock()
            .unwrap()
            .values()
            .find(|v| v.sha256 == sha)
            .cloned();
        let Some(have) = have else {
            return not_found("Checksum deploy failed");
        };
        known.lock().unwrap().insert(key, Item { props, ..have });
        return json(201, serde_json::json!({ "checksums": { "sha256": sha } }));
    }
    let mut body = req.into_body().into_data_stream();
    let (mut s256, mut s1) = (sha2::Sha256::new(), sha1::Sha1::new());
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        size += chunk.len() as u64;
        s256.update(&chunk);
        s1.update(&chunk);
    }
    let (sha256, sha1) = (hex::encode(s256.finalize()), hex::encode(s1.finalize()));
    known.lock().unwrap().insert(
        key,
        Item {
            sha256: sha256.clone(),
            size,
            props,
        },
    );
    json(
        201,
        serde_json::json!({ "checksums": { "sha256": sha256, "sha1": sha1 } }),
    )
}

fn serve() -> (String, Known) {
    let known: Known = Arc::default();
    let app = Router::new().fallback(sink).with_state(known.clone());
    let url = format!("http://{}/artifactory", server::serve(app));
    (url, known)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A build output: the file and its record (hashed here, as imagepipe-build would).
fn record_for(dir: &std::path::Path, version: &str, file: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join(version);
    std::fs::create_dir_all(&out).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let target = out.join(name);
    std::fs::hard_link(file, &target).unwrap();
    let d = imagepipe::hash::hash_file(&target, &|_| {}).unwrap();
    let now = chrono::Utc::now();
    let record = Record {
        schema_version: record::SCHEMA_VERSION,
        image: ImageId {
            name: "bench/image".parse().unwrap(),
            version: version.parse().unwrap(),
        },
        parent: None,
        source: Source {
            commit: None,
            tag: None,
            dirty: false,
        },
        build: BuildInfo {
            packer_version: "-".into(),
            run_id: "-".into(),
            template: "-".into(),
            started_at: now,
            finished_at: now,
            imagepipe_version: "-".into(),
        },
        artifacts: vec![Artifact {
            name: "disk".into(),
            build: "bench".into(),
            kind: ArtifactKind::File(FileArtifact {
                path: name.into(),
                size: d.size,
                sha256: d.sha256,
                format: d.format,
                role: imagepipe::record::Role::Disk,
            }),
        }],
        scan: Some(ScanSection {
            status: GateStatus::Passed,
            scanned_at: now,
            vulnerabilities: SeverityCounts::default(),
            policy_failures: 0,
            waived: 0,
            reports: vec![],
            findings: None,
        }),
        publish: None,
        replication: None,
        import: None,
    };
    let path = out.join(record::FILE_NAME);
    record.write(&path).unwrap();
    path
}

fn main() {
    let mib = bench::env_num("IMAGEPIPE_BENCH_FILE_MIB", 2048) as u64;
    let sparse_mib = bench::env_num("IMAGEPIPE_BENCH_SPARSE_MIB", 8192) as u64;
    let dir = bench::scratch();
    let (url, known) = serve();

    let file = dir.path().join("disk.raw");
    {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut block = vec![0u8; 1 << 20];
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for _ in 0..mib {
            rng.fill(&mut block);
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    let sparse = dir.path().join("sparse.raw");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(sparse_mib << 20)
        .unwrap();

    let spec = StoreSpec {
        url: StoreUrl::parse(&format!("artifactory+{url}/os-images"), dir.path()).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ui = Ui::new("bench", false, ProgressMode::None);
    let store = imagepipe::store::open(&spec).unwrap();
    let mut version = 0;
    let mut publish = |file: &std::path::Path, forget: bool| {
        if forget {
            known.lock().unwrap().clear();
        }
        version += 1;
        let record = record_for(&dir.path().join("records"), &format!("1.0.{version}"), file);
        let loaded = Record::read(&record).unwrap();
        let t = Instant::now();
        rt.block_on(imagepipe::publish::publish(
            store.as_ref(),
            &loaded,
            &record,
            None,
            None,
            false,
            &ui,
        ))
        .unwrap();
        t.elapsed()
    };

    // Warm the page cache for both sides.
    let _ = publish(&file, true);
    let rss_start = peak_rss_kib();
    let rounds = 3;
    let ours = (0..rounds).map(|_| publish(&file, true)).min().unwrap();
    let rss_2g = peak_rss_kib();
    let curl = bench::best(rounds, || {
        let status = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-T"])
            .arg(&file)
            .arg(format!("{url}/os-images/curl/disk.raw"))
            .status()
            .expect("curl is installed");
        assert!(status.success());
    });
    let by_checksum = publish(&file, false);
    let hash_time = bench::best(1, || {
        imagepipe::hash::hash_file(&file, &|_| {}).unwrap();
    });
    let _ = publish(&sparse, true);
    let rss_8g = peak_rss_kib();

    let gib_s = |d: std::time::Duration| (mib as f64 / 1024.0) / d.as_secs_f64();
    println!(
        "upload benchmark: {mib} MiB artifact to an Artifactory-like sink on loopback, best of {rounds}"
    );
    println!(
        "  imagepipe-publish   {:.2} GiB/s  (sha256 in the same pass, File Info before and after)",
        gib_s(ours)
    );
    println!("  curl -T             {:.2} GiB/s", gib_s(curl));
    println!(
        "  ratio               {:.2}x  (target >= 0.9x)",
        curl.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  checksum deploy of the stored {mib} MiB: {:.0} ms (hashing it takes {:.0} ms; the record already carries the digest)",
        by_checksum.as_secs_f64() * 1000.0,
        hash_time.as_secs_f64() * 1000.0
    );
    println!(
        "  peak RSS growth: {} KiB for {mib} MiB, {} KiB more for a sparse {sparse_mib} MiB file (target: under 64 MiB, flat)",
        rss_2g.saturating_sub(rss_start),
        rss_8g.saturating_sub(rss_2g)
    );
}
