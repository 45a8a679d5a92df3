//! `imagepipe-publish` into a real OCI registry: Debian's `docker-registry` (distribution 2.8),
//! started on loopback by the test with its own configuration.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, registry, step};

use std::path::Path;

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::store::{self, StoreUrl};
use step::{assert_exit, stderr};

use registry::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-publish");

fn built(dir: &Path, version: &str, content: &[u8]) -> std::path::PathBuf {
    built::built(
        &dir.join(version),
        version,
        &[("disk.qcow2", content)],
        Some(imagepipe::record::GateStatus::Passed),
    )
}

#[test]
fn publishes_into_a_real_registry_and_reads_back() {
    let registry = Registry::start();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("imagepipe.toml"),
        "[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n",
    )
    .unwrap();
    // 3 MiB of varied bytes, so the upload streams several chunks.
    let content: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let record = built(repo.path(), "1.0.0", &content);
    let run = |args: &[&str]| step::command(BIN, repo.path(), args).output().unwrap();

    let out = run(&[
        "--record",
        record.to_str().unwrap(),
        "--store",
        &registry.url(),
        "--json",
    ]);
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Read it back through the store interface, as a build resolving a parent would.
    let spec = StoreSpec {
        url: StoreUrl::parse(&registry.url(), repo.path()).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = store::open(&spec).unwrap();
        let name = "global/debian-12".parse().unwrap();
        assert_eq!(
            store.list_versions(&name).await.unwrap(),
            [semver::Version::new(1, 0, 0)]
        );
        let id = "global/debian-12@1.0.0".parse().unwrap();
        let loaded = store.fetch_record(&id).await.unwrap();
        assert_eq!(json["record_sha256"], loaded.sha256.to_string());
        assert_eq!(
            loaded.record.publish.as_ref().unwrap().store,
            registry.url()
        );
        store.verify(&id, &loaded).await.unwrap();
        // The artifact blob is the file's bytes.
        let url = &loaded.record.publish.as_ref().unwrap().artifacts[0].url;
        let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        assert_eq!(body.len(), content.len());
        assert!(body[..] == content[..]);
    });

    // A re-run sends nothing.
    let out = run(&[
        "--record",
        record.to_str().unwrap(),
        "--store",
        &registry.url(),
    ]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("already present"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was already published"),
        "{}",
        stderr(&out)
    );

    // The same version with other bytes is refused, and the published version is unchanged.
    let other = built(&repo.path().join("rebuild"), "1.0.0", b"another build");
    let out = run(&[
        "--record",
        other.to_str().unwrap(),
        "--store",
        &registry.url(),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("is already in oci+http://")
            && stderr(&out).contains("artifact `disk` (disk.qcow2) differs"),
        "{}",
        stderr(&out)
    );

    // A file changed after its build (same size, other bytes) is caught during the upload,
    // and no tag appears.
    let tampered = built(&repo.path().join("t"), "2.0.0", b"original");
    std::fs::write(tampered.parent().unwrap().join("disk.qcow2"), b"Original").unwrap();
    let out = run(&[
        "--record",
        tampered.to_str().unwrap(),
        "--store",
        &registry.url(),
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is not the file its record describes"),
        "{}",
        stderr(&out)
    );
    rt.block_on(async {
        let store = store::open(&spec).unwrap();
        let versions = store
            .list_versions(&"global/debian-12".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            versions,
            [semver::Version::new(1, 0, 0)],
            "2.0.0 is not visible"
        );
    });
}

#[test]
fn an_unreachable_registry_is_an_infrastructure_error() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("imagepipe.toml"), "").unwrap();
    let record = built(repo.path(), "1.0.0", b"x");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = step::command(
        BIN,
        repo.path(),
        &[
            "--record",
            record.to_str().unwrap(),
            "--store",
            &format!("oci+http://127.0.0.1:{port}/images"),
            "--override-gate",
            "x",
        ],
    )
    .env("IMAGEPIPE_PROGRESS", "none")
    .output()
    .unwrap();
    assert_exit(&out, 2);
    // The first thing asked is whether the version is published already.
    assert!(stderr(&out).contains(&format!("oci+http://127.0.0.1:{port}/images: GET http://127.0.0.1:{port}/v2/images/global/debian-12/manifests/1.0.0")), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Connection refused"),
        "{}",
        stderr(&out)
    );
}
