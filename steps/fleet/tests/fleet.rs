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

/// What the refusing server says: a server's words are not trusted, and this one tries to put a
/// script into the HTML page.
const REFUSAL: &str =
    r#"{"errors":[{"status":403,"message":"Bad token <script>document.title=42</script>"}]}"#;

/// A server that answers every request with 403, as an Artifactory that refuses the token.
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
                    .write_all(
                        format!(
                            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{REFUSAL}",
                            REFUSAL.len()
                        )
                        .as_bytes(),
                    )
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

    // global 1.0.0 was imported into dc1's and dc2's libraries (its local record, which
    // imagepipe-import updates, says so); dc2's vCenter refused to deploy it.
    let local = p.join("out/global/debian-12/1.0.0/imagepipe-record.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
    let site = |name: &str, result: &str, reason: Option<&str>| {
        let mut check = serde_json::json!({
            "result": result,
            "vm_name": "imagepipe-deploy-check-1",
            "checked_at": "2026-01-02T00:00:00Z",
        });
        if let Some(r) = reason {
            check["reason"] = r.into();
        }
        serde_json::json!({
            "site": name,
            "library": "images",
            "item": "global-debian-12",
            "item_version": "2",
            "imported_at": "2026-01-02T00:00:00Z",
            "deploy_check": check,
        })
    };
    record["import"] = serde_json::json!({ "sites": [
        site("dc1", "running", None),
        site("dc2", "refused", Some("Invalid OVF descriptor: <Envelope> lacks a VirtualSystem")),
    ]});
    std::fs::write(&local, serde_json::to_vec(&record).unwrap()).unwrap();

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
        command(BIN, p, &["--json", "--html", "fleet.html"])
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
    // The imports the local record names, with the deploy checks.
    let g10 = version("global/debian-12", "1.0.0");
    assert_eq!(g10["imports"]["dc1"]["deploy_check"], "running");
    assert_eq!(g10["imports"]["dc2"]["deploy_check"], "refused");
    assert_eq!(
        g10["imports"]["dc2"]["deploy_reason"],
        "Invalid OVF descriptor: <Envelope> lacks a VirtualSystem"
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

    // The HTML page, in a real browser: the DOM Chromium builds from it, and a screenshot.
    check_html(&p.join("fleet.html"));

    let table = stderr(&out).replace(&p.display().to_string(), "[dir]");
    let port = refusing.rsplit(':').next().unwrap();
    insta::assert_snapshot!("table", table.replace(port, "[port]"));
}

/// The `<tr>` of `image@version` in the DOM Chromium built.
fn row<'a>(dom: &'a str, image: &str, version: &str) -> &'a str {
    let at = dom
        .find(&format!("<section class=\"image\" data-image=\"{image}\">"))
        .unwrap_or_else(|| panic!("no section for {image}:\n{dom}"));
    let section = &dom[at..at + dom[at..].find("</section>").unwrap()];
    let marker = format!("data-version=\"{version}\">");
    let end = section
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for {image}@{version}:\n{section}"));
    let start = section[..end].rfind("<tr ").unwrap();
    &section[start..end + section[end..].find("</tr>").unwrap()]
}

fn check_html(page: &Path) {
    use imagepipe_testkit::browser::{self, Png};
    let html = std::fs::read_to_string(page).unwrap();
    // Self-contained: nothing fetched, no script of its own (URLs in error texts are text).
    for banned in ["<script", "<link", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(banned), "the page has {banned}:\n{html}");
    }
    let dom = browser::dump_dom(page);
    // The refusing server's script is text on the page, and did not run.
    assert!(dom.contains("<title>imagepipe fleet</title>"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    assert!(
        dom.contains("Bad token &lt;script&gt;document.title=42&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        dom.contains(
            "<li class=\"unreachable\" data-site=\"dc3-down\"><b>dc3-down</b>: unreachable ("
        ),
        "{dom}"
    );
    assert!(
        dom.contains(
            "<li class=\"unauthorised\" data-site=\"dc4-denied\"><b>dc4-denied</b>: unauthorised ("
        ),
        "{dom}"
    );
    // Four images over three layers, each its own table.
    assert_eq!(dom.matches("<section class=\"image\"").count(), 4, "{dom}");
    // The version missing at dc2, present at dc1, and the two sites that could not say.
    let g11 = row(&dom, "global/debian-12", "1.1.0");
    for cell in [
        r#"<td class="site present" data-site="dc1">yes</td>"#,
        r#"<td class="site absent" data-site="dc2">ABSENT</td>"#,
        r#"<td class="site unreachable" data-site="dc3-down">unreachable</td>"#,
        r#"<td class="site unauthorised" data-site="dc4-denied">unauthorised</td>"#,
        r#"<td class="scan scan-passed">passed</td>"#,
        r#"<td class="parent">vendor/debian-12@12.9.0</td>"#,
    ] {
        assert!(g11.contains(cell), "{cell} not in {g11}");
    }
    assert!(g11.starts_with("<tr class=\"version\" "), "{g11}");
    // The imports of global 1.0.0 and their deploy checks, the refusal's reason escaped.
    let g10 = row(&dom, "global/debian-12", "1.0.0");
    assert!(
        g10.contains(r#"<td class="site present imported deploy-running" data-site="dc1">yes<span class="item" title="imported 2026-01-02T00:00:00+00:00">images / global-debian-12 · deploy running</span></td>"#),
        "{g10}"
    );
    assert!(
        g10.contains(r#"<td class="site present imported deploy-refused" data-site="dc2">yes<span class="item" title="imported 2026-01-02T00:00:00+00:00">images / global-debian-12 · deploy refused: Invalid OVF descriptor: &lt;Envelope&gt; lacks a VirtualSystem</span></td>"#),
        "{g10}"
    );
    // The out-of-date child, and only its newest version.
    let stale = row(&dom, "service/hello-api", "2.0.0");
    assert!(
        stale.starts_with("<tr class=\"version out-of-date\" "),
        "{stale}"
    );
    assert!(
        stale.contains("OUT OF DATE: global/debian-12@1.1.0 is newer"),
        "{stale}"
    );
    assert!(
        row(&dom, "service/hello-api", "1.9.0").starts_with("<tr class=\"version\" "),
        "{dom}"
    );
    // Channels, the revocation, the unreadable record.
    assert!(
        row(&dom, "vendor/debian-12", "12.9.0").contains(r#"<span class="channel">prod</span>"#)
    );
    let revoked = row(&dom, "product/debian-12-python", "0.1.0");
    assert!(
        revoked.starts_with("<tr class=\"version revocation\" "),
        "{revoked}"
    );
    assert!(revoked.contains("to be revoked 2099-01-01 by security-team"));
    let broken = row(&dom, "vendor/debian-12", "12.7.0");
    assert!(
        broken.starts_with("<tr class=\"version unreadable\" "),
        "{broken}"
    );
    assert!(broken.contains("record unreadable: "), "{broken}");

    // The screenshot, kept under target/tmp for people to look at: the size asked for, and the
    // page's colours actually drawn: present, absent, the out-of-date row and the blind sites.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-view.png");
    browser::screenshot(page, &png, 1400, 1000);
    let shot = Png::read(&png);
    assert_eq!((shot.width, shot.height), (1400, 1000));
    for (what, colour) in [
        ("a present cell", [0xcd, 0xec, 0xcd]),
        ("the absent cell", [0xff, 0xd2, 0x7f]),
        ("the out-of-date row", [0xff, 0x8a, 0x8a]),
        ("the unreachable and unauthorised cells", [0xc8, 0xc8, 0xc8]),
        ("the channel badge", [0x2a, 0x62, 0xc9]),
        ("the refused deploy check's outline", [0xcc, 0x00, 0x00]),
    ] {
        assert!(
            shot.count(colour) > 200,
            "{what} ({colour:02x?}) is not in the screenshot {}",
            png.display()
        );
    }
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

/// Each site's store is asked once for everything it holds: on Artifactory one AQL query for the
/// whole repository, whatever the number of images, and paged when the server's search hard
/// limit trims an answer (a trimmed page must not read as versions absent).
#[tokio::test(flavor = "multi_thread")]
async fn each_artifactory_site_is_asked_in_one_query() {
    use imagepipe_testkit::artifactory;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let (whole_url, whole) = artifactory::start("images");
    let (paged_url, paged) = artifactory::start("images");
    paged.lock().unwrap().aql_hard_limit = Some(2);
    std::fs::write(
        p.join("imagepipe.toml"),
        format!(
            r#"[store]
url = "file:primary"

[[image]]
name = "vendor/debian-12"
template = "t"

[[image]]
name = "global/debian-12"
template = "t"

[[image]]
name = "service/hello-api"
template = "t"

[[site]]
name = "whole"
store = {{ url = "artifactory+{whole_url}/images/os", token_env = "ART_TOKEN" }}

[[site]]
name = "paged"
store = {{ url = "artifactory+{paged_url}/images/os", token_env = "ART_TOKEN" }}
"#
        ),
    )
    .unwrap();
    let primary = LocalStore::new(p.join("primary"));
    let versions = [
        ("vendor/debian-12", "12.8.0"),
        ("vendor/debian-12", "12.9.0"),
        ("global/debian-12", "1.0.0"),
        ("global/debian-12", "1.1.0"),
        ("service/hello-api", "2.0.0"),
        ("service/hello-api", "2.1.0"),
    ];
    for (image, version) in versions {
        publish(p, image, version, None, &[&primary]).await;
        let record =
            std::fs::read(p.join(format!("primary/{image}/{version}/imagepipe-record.json")))
                .unwrap();
        // The paged site lacks service 2.1.0; another repository's and another prefix's
        // records are not the site's.
        for (server, held) in [
            (&whole, true),
            (&paged, (image, version) != ("service/hello-api", "2.1.0")),
        ] {
            let mut s = server.lock().unwrap();
            if held {
                s.items.insert(
                    format!("os/{image}/{version}/imagepipe-record.json"),
                    artifactory::Item::new(record.clone()),
                );
            }
            s.items.insert(
                format!("other/{image}/9.9.9/imagepipe-record.json"),
                artifactory::Item::new(record.clone()),
            );
        }
    }

    let out = tokio::task::block_in_place(|| {
        command(BIN, p, &["--json"])
            .env("ART_TOKEN", artifactory::TOKEN)
            .output()
            .unwrap()
    });
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = Vec::new();
    for image in json["images"].as_array().unwrap() {
        for v in image["versions"].as_array().unwrap() {
            seen.push(format!(
                "{}@{} whole={} paged={}",
                image["name"].as_str().unwrap(),
                v["version"].as_str().unwrap(),
                v["sites"]["whole"]["state"].as_str().unwrap(),
                v["sites"]["paged"]["state"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(
        seen,
        [
            "vendor/debian-12@12.9.0 whole=present paged=present",
            "vendor/debian-12@12.8.0 whole=present paged=present",
            "global/debian-12@1.1.0 whole=present paged=present",
            "global/debian-12@1.0.0 whole=present paged=present",
            "service/hello-api@2.1.0 whole=present paged=absent",
            "service/hello-api@2.0.0 whole=present paged=present",
        ]
    );
    let aql = |s: &artifactory::Shared| {
        s.lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.ends_with("api/search/aql"))
            .count()
    };
    // Three images, one query; five records two at a time, three pages.
    assert_eq!(aql(&whole), 1);
    assert_eq!(aql(&paged), 3);
}

/// On an Artifactory primary the records' properties come in one AQL query, and only a record
/// without them (published without the Annotate permission) is read; one more query says which
/// images have lifecycle documents, and only theirs are read.
#[tokio::test(flavor = "multi_thread")]
async fn an_artifactory_primary_gives_the_records_properties_in_one_query() {
    use imagepipe_testkit::artifactory;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let (url, primary) = artifactory::start("images");
    std::fs::write(
        p.join("imagepipe.toml"),
        format!(
            r#"[store]
url = "artifactory+{url}/images"
token_env = "ART_TOKEN"

[[image]]
name = "vendor/debian-12"
template = "t"

[[image]]
name = "global/debian-12"
template = "t"
parent = "vendor/debian-12"
parent_version = "^12"
"#
        ),
    )
    .unwrap();
    let scratch = LocalStore::new(p.join("scratch"));
    let versions = [
        ("vendor/debian-12", "12.8.0", None),
        ("vendor/debian-12", "12.9.0", None),
        (
            "global/debian-12",
            "1.0.0",
            Some(("vendor/debian-12", "12.8.0")),
        ),
        (
            "global/debian-12",
            "1.1.0",
            Some(("vendor/debian-12", "12.8.0")),
        ),
    ];
    for (image, version, parent) in versions {
        publish(p, image, version, parent, &[&scratch]).await;
        let path = p.join(format!("scratch/{image}/{version}/imagepipe-record.json"));
        let record = Record::read(&path).unwrap();
        let mut item = artifactory::Item::new(std::fs::read(&path).unwrap());
        // global 1.1.0 was published without Annotate: its record has no properties.
        if version != "1.1.0" {
            for (k, v) in imagepipe::publish::properties(&record.record, None, None) {
                item.properties.insert(k, vec![v]);
            }
        }
        primary
            .lock()
            .unwrap()
            .items
            .insert(format!("{image}/{version}/imagepipe-record.json"), item);
    }

    // vendor 12.9.0 is in `prod`: only vendor has lifecycle documents.
    let lifecycle_bin = step::sibling_bin(BIN, "imagepipe-lifecycle");
    let out = tokio::task::block_in_place(|| {
        command(
            lifecycle_bin.to_str().unwrap(),
            p,
            &[
                "promote",
                "--image",
                "vendor/debian-12",
                "--version",
                "12.9.0",
                "--channel",
                "prod",
            ],
        )
        .env("ART_TOKEN", artifactory::TOKEN)
        .output()
        .unwrap()
    });
    assert_exit(&out, 0);
    primary.lock().unwrap().log.clear();

    let out = tokio::task::block_in_place(|| {
        command(BIN, p, &["--json"])
            .env("ART_TOKEN", artifactory::TOKEN)
            .output()
            .unwrap()
    });
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = Vec::new();
    for image in json["images"].as_array().unwrap() {
        for v in image["versions"].as_array().unwrap() {
            seen.push(format!(
                "{}@{} scan={} parent={} out_of_date={} channels={}",
                image["name"].as_str().unwrap(),
                v["version"].as_str().unwrap(),
                v["scan"],
                v["parent"],
                v["out_of_date"],
                v["channels"]
            ));
        }
    }
    assert_eq!(
        seen,
        [
            "vendor/debian-12@12.9.0 scan=\"passed\" parent=null out_of_date=null channels=[\"prod\"]",
            "vendor/debian-12@12.8.0 scan=\"passed\" parent=null out_of_date=null channels=[]",
            "global/debian-12@1.1.0 scan=\"passed\" parent=\"vendor/debian-12@12.8.0\" out_of_date=\"vendor/debian-12@12.9.0\" channels=[]",
            "global/debian-12@1.0.0 scan=\"passed\" parent=\"vendor/debian-12@12.8.0\" out_of_date=null channels=[]",
        ]
    );
    let log = primary.lock().unwrap().log.clone();
    let record_reads: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET ") && l.ends_with("/imagepipe-record.json"))
        .collect();
    assert_eq!(
        record_reads,
        ["GET /artifactory/images/global/debian-12/1.1.0/imagepipe-record.json"],
        "{log:#?}"
    );
    // The lifecycle documents of vendor only: the query said global has none.
    let lifecycle_reads: Vec<&String> = log.iter().filter(|l| l.contains("/_lifecycle/")).collect();
    assert!(!lifecycle_reads.is_empty(), "{log:#?}");
    assert!(
        lifecycle_reads
            .iter()
            .all(|l| l.starts_with("GET /artifactory/images/vendor/debian-12/_lifecycle/")),
        "{log:#?}"
    );
}

/// One image a site's store cannot list (here a local store whose image folder is a file, as a
/// registry refusing one repository would be) is unreachable for that image only: the site's
/// other images are still shown as they are.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_a_site_cannot_list_fails_that_image_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("imagepipe.toml"),
        "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"vendor/debian-12\"\ntemplate = \"t\"\n\n[[image]]\nname = \"vendor/rocky-9\"\ntemplate = \"t\"\n\n[[site]]\nname = \"dc1\"\nstore = { url = \"file:dc1\" }\n",
    )
    .unwrap();
    let primary = LocalStore::new(p.join("primary"));
    let dc1 = LocalStore::new(p.join("dc1"));
    publish(p, "vendor/debian-12", "12.8.0", None, &[&primary, &dc1]).await;
    publish(p, "vendor/rocky-9", "9.4.0", None, &[&primary]).await;
    std::fs::create_dir_all(p.join("dc1/vendor")).unwrap();
    std::fs::write(p.join("dc1/vendor/rocky-9"), "not a folder").unwrap();

    let out = tokio::task::block_in_place(|| command(BIN, p, &["--json"]).output().unwrap());
    assert_exit(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let at_dc1 = |name: &str| {
        json["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["versions"][0]["sites"]["dc1"]["state"]
            .clone()
    };
    assert_eq!(at_dc1("vendor/debian-12"), "present", "{json}");
    assert_eq!(at_dc1("vendor/rocky-9"), "unreachable", "{json}");
}
