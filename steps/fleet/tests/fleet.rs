//! `imagepipe-fleet` on a scripted fleet: three layers of images published into a primary
//! store and three sites' stores (one missing a version), a fourth site that does not answer
//! and a fifth that refuses the token, an out-of-date child, and a record that does not parse.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{built, step};

use std::path::Path;

use imagepipe::hash::Sha256Hex;
use imagepipe::record::{GateStatus, ParentId, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::LocalStore;
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-fleet");

/// A server that answers every request with 401, as an Artifactory that refuses the token.
async fn refusing_server() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 51\r\nconnection: close\r\n\r\n{\"errors\":[{\"status\":401,\"message\":\"Bad token\"}]}")
                    .await;
            });
        }
    });
    url
}

/// Publishes `image@version` (built on `parent`) into each of `stores`.
async fn publish(
    dir: &Path,
    image: &str,
    version: &str,
    parent: Option<(&str, &str)>,
    stores: &[&LocalStore],
) {
    let ui = Ui::new("test", false, ProgressMode::None);
    let parent = parent.map(|(n, v)| ParentId {
        name: n.parse().unwrap(),
        version: v.parse().unwrap(),
        record_sha256: Sha256Hex::digest(n.as_bytes()),
    });
    let record = built::built_as(
        &dir.join(format!("out/{image}/{version}")),
        image,
        version,
        parent,
        &[("disk.qcow2", format!("{image} {version}").as_bytes())],
        Some(GateStatus::Passed),
    );
    let loaded = Record::read(&record).unwrap();
    for store in stores {
        imagepipe::publish::publish(*store, &loaded, &record, None, None, false, &ui)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_view_shows_what_is_where() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let refusing = refusing_server().await;
    std::fs::write(
        p.join("imagepipe.toml"),
        format!(
            r#"[pipeline]
output_dir = "out"

[store]
url = "file:primary"

[[image]]
name = "vendor/debian-12"
template = "t"

[[image]]
name = "global/debian-12"
template = "t"
parent = "vendor/debian-12"
parent_version = "^12"

[[image]]
name = "product/debian-12-python"
template = "t"
parent = "global/debian-12"
parent_version = "^1"

[[image]]
name = "service/hello-api"
template = "t"
parent = "global/debian-12"
parent_version = "^1"

[[site]]
name = "dc1"
store = {{ url = "file:dc1" }}

[[site]]
name = "dc2"
store = {{ url = "file:dc2" }}

[[site]]
name = "dc3-down"
store = {{ url = "artifactory+http://127.0.0.1:1/artifactory/images" }}

[[site]]
name = "dc4-denied"
store = {{ url = "artifactory+{refusing}/artifactory/images", token_env = "FLEET_TOKEN" }}
"#
        ),
    )
    .unwrap();
    let primary = LocalStore::new(p.join("primary"));
    let dc1 = LocalStore::new(p.join("dc1"));
    let dc2 = LocalStore::new(p.join("dc2"));
    let all = [&primary, &dc1, &dc2];
    publish(p, "vendor/debian-12", "12.8.0", None, &all).await;
    publish(p, "vendor/debian-12", "12.9.0", None, &all).await;
    publish(
        p,
        "global/debian-12",
        "1.0.0",
        Some(("vendor/debian-12", "12.8.0")),
        &all,
    )
    .await;
    // dc2 has not received global 1.1.0.
    publish(
        p,
        "global/debian-12",
        "1.1.0",
        Some(("vendor/debian-12", "12.9.0")),
        &[&primary, &dc1],
    )
    .await;
    publish(
        p,
        "product/debian-12-python",
        "0.1.0",
        Some(("global/debian-12", "1.1.0")),
        &all,
    )
    .await;
    // The service was built on global 1.0.0; 1.1.0 is newer and its requirement accepts it.
    publish(
        p,
        "service/hello-api",
        "2.0.0",
        Some(("global/debian-12", "1.0.0")),
        &all,
    )
    .await;
    publish(
        p,
        "service/hello-api",
        "1.9.0",
        Some(("global/debian-12", "1.0.0")),
        &all,
    )
    .await;
    // A record in the primary store that does not parse.
    publish(p, "vendor/debian-12", "12.7.0", None, &all).await;
    std::fs::write(
        p.join("primary/vendor/debian-12/12.7.0/imagepipe-record.json"),
        "{ not json",
    )
    .unwrap();

    // The lifecycle: vendor 12.9.0 is in `prod`, product 0.1.0 is to be revoked (scheduled, so
    // that the dates in the table are fixed).
    let lifecycle_bin = step::sibling_bin(BIN, "imagepipe-lifecycle");
    for args in [
        &[
            "promote",
            "--image",
            "vendor/debian-12",
            "--version",
            "12.9.0",
            "--channel",
            "prod",
        ][..],
        &[
            "revoke",
            "--image",
            "product/debian-12-python",
            "--version",
            "0.1.0",
            "--reason",
            "CVE-2026-0002 in python3",
            "--at",
            "2099-01-01",
        ],
    ] {
        let out = tokio::task::block_in_place(|| {
            command(lifecycle_bin.to_str().unwrap(), p, args)
                .env("GITHUB_ACTOR", "security-team")
                .output()
                .unwrap()
        });
        assert_exit(&out, 0);
    }

    let out = tokio::task::block_in_place(|| {
        command(BIN, p, &["--json"])
            .env("FLEET_TOKEN", "wrong-token")
            .output()
            .unwrap()
    });
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = |name: &str| {
        json["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()
            .clone()
    };
    let version = |name: &str, v: &str| {
        image(name)["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["version"] == v)
            .unwrap()
            .clone()
    };
    assert_eq!(
        json["sites"],
        serde_json::json!(["dc1", "dc2", "dc3-down", "dc4-denied"])
    );
    // Versions, newest first, with their scan state and parent.
    let global = image("global/debian-12");
    let versions: Vec<&str> = global["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    let g11 = version("global/debian-12", "1.1.0");
    assert_eq!(g11["scan"], "passed");
    assert_eq!(g11["parent"], "vendor/debian-12@12.9.0");
    // Per site: present, absent, and the two sites that could not say.
    assert_eq!(g11["sites"]["dc1"]["state"], "present");
    assert_eq!(g11["sites"]["dc2"]["state"], "absent");
    assert_eq!(g11["sites"]["dc3-down"]["state"], "unreachable");
    assert_eq!(g11["sites"]["dc4-denied"]["state"], "unauthorised");
    assert_eq!(
        version("global/debian-12", "1.0.0")["sites"]["dc2"]["state"],
        "present"
    );
    // The out-of-date child, and only its newest version; its up-to-date sibling is not.
    assert_eq!(
        version("service/hello-api", "2.0.0")["out_of_date"],
        "global/debian-12@1.1.0"
    );
    assert!(version("service/hello-api", "1.9.0")["out_of_date"].is_null());
    assert!(version("product/debian-12-python", "0.1.0")["out_of_date"].is_null());
    assert!(version("global/debian-12", "1.1.0")["out_of_date"].is_null());
    // The unreadable record is named; the rest of its image still renders.
    let broken = version("vendor/debian-12", "12.7.0");
    assert!(
        broken["record_error"].as_str().unwrap().contains("12.7.0"),
        "{broken}"
    );
    assert_eq!(version("vendor/debian-12", "12.9.0")["scan"], "passed");
    // Channels and revocations, from the primary store's lifecycle documents.
    assert_eq!(
        version("vendor/debian-12", "12.9.0")["channels"],
        serde_json::json!(["prod"])
    );
    assert_eq!(g11["channels"], serde_json::json!([]));
    assert!(g11["revoked"].is_null());
    assert_eq!(
        version("product/debian-12-python", "0.1.0")["revoked"],
        "to be revoked 2099-01-01 by security-team: CVE-2026-0002 in python3"
    );

    // On GitHub: the out-of-date output, and the summary's table and lineage graph.
    let gh = tokio::task::block_in_place(|| {
        let mut cmd = command(BIN, p, &[]);
        cmd.env("FLEET_TOKEN", "wrong-token");
        imagepipe_testkit::on_github!(cmd, p)
    });
    assert_exit(&gh.out, 0);
    assert_eq!(gh.outputs["out-of-date"], "service/hello-api@2.0.0");
    assert!(gh.summary.contains("| `global/debian-12` | 1.1.0 | passed | vendor/debian-12@12.9.0 | yes | ABSENT | unreachable | unauthorised |"), "{}", gh.summary);
    assert!(
        gh.summary.contains("```mermaid\ngraph LR\n"),
        "{}",
        gh.summary
    );
    assert!(
        gh.summary
            .contains("n_global_debian_12_1_0_0 --> n_service_hello_api_2_0_0"),
        "{}",
        gh.summary
    );
    assert!(
        gh.summary.contains("class n_service_hello_api_2_0_0 stale"),
        "{}",
        gh.summary
    );

    let table = stderr(&out).replace(&p.display().to_string(), "[dir]");
    let port = refusing.rsplit(':').next().unwrap();
    insta::assert_snapshot!("table", table.replace(port, "[port]"));
}

#[test]
fn help_and_action() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    assert_eq!(outputs, ["out-of-date"]);
    insta::assert_snapshot!("help", step::help(BIN, dir.path()));
    // A configuration that does not parse is a configuration error.
    std::fs::write(dir.path().join("imagepipe.toml"), "[[image]]\nname = 1\n").unwrap();
    let out = command(BIN, dir.path(), &[]).output().unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("imagepipe.toml"), "{}", stderr(&out));
}
