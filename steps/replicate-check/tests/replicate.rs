//! `imagepipe-replicate-check` against several stores at once: local directories, Artifactory
//! test servers (with replication status and push replication) and a real `docker-registry`.
//! Sites are "replicated" by copying the primary's bytes through the store API, as
//! replication does: the record a site holds is byte for byte the primary's.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, echo, registry, step};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::image::ImageRef;
use imagepipe::record::{GateStatus, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{self, LocalStore, Store, StoreUrl};
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-replicate-check");

fn ui() -> Ui {
    Ui::new("test", false, ProgressMode::None)
}

fn image(version: &str) -> ImageRef {
    ImageRef {
        name: "global/debian-12".parse().unwrap(),
        version: version.parse().unwrap(),
    }
}

/// A built version published into the primary (local) store of a pipeline in `dir`.
struct Case {
    dir: tempfile::TempDir,
    record: PathBuf,
    sites: Vec<String>,
}

impl Case {
    /// A build of 1.0.0 that finished `age` ago, published into `primary/`.
    async fn new(age: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out/global/debian-12/1.0.0");
        let record = built(&out, "1.0.0", age).await;
        let case = Self {
            dir,
            record,
            sites: Vec::new(),
        };
        case.publish(&case.primary(), &case.record).await;
        case
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn primary(&self) -> LocalStore {
        LocalStore::new(self.path().join("primary"))
    }

    async fn publish(&self, store: &dyn Store, record: &Path) {
        let loaded = Record::read(record).unwrap();
        imagepipe::publish::publish(store, &loaded, record, None, None, false, &ui())
            .await
            .unwrap();
    }

    /// Copies version 1.0.0 from the primary into `to`: artifacts first, the record last.
    async fn replicate(&self, to: &dyn Store, with_record: bool) {
        let id = image("1.0.0");
        let from = self.primary();
        let loaded = from.fetch_record(&id).await.unwrap();
        for f in loaded.record.artifacts.iter().filter_map(|a| a.file()) {
            let path = PathBuf::from(from.artifact_location(&id, f));
            to.put_artifact(&id, &path, f, &[], &|_| {}).await.unwrap();
        }
        if with_record {
            let bytes = std::fs::read(from.record_location(&id)).unwrap();
            to.put_record(&id, &bytes, &[]).await.unwrap();
        }
    }

    /// Adds a `[[site]]` table; Artifactory stores read the right token from `ART_TOKEN`.
    fn site(&mut self, name: &str, store: &str, extra: &str) {
        let token = if store.starts_with("artifactory") {
            "ART_TOKEN"
        } else {
            ""
        };
        self.site_with_token(name, store, extra, token);
    }

    fn site_with_token(&mut self, name: &str, store: &str, extra: &str, token_env: &str) {
        let token = if token_env.is_empty() {
            String::new()
        } else {
            format!("token_env = \"{token_env}\"\n")
        };
        self.sites.push(format!(
            "[[site]]\nname = \"{name}\"\n{extra}[site.store]\nurl = \"{store}\"\n{token}"
        ));
    }

    fn write_config(&self, primary: &str) {
        std::fs::write(
            self.path().join("imagepipe.toml"),
            format!(
                "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"{primary}\"\n{}\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n\n{}",
                if primary.starts_with("artifactory") {
                    "token_env = \"ART_TOKEN\"\n"
                } else {
                    ""
                },
                self.sites.join("\n")
            ),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        command(BIN, self.path(), args)
            .env("ART_TOKEN", artifactory::TOKEN)
            .env("WRONG_TOKEN", "not-the-token")
            .output()
            .unwrap()
    }
}

/// Writes build output of `version` under `out`, finished `age` ago.
async fn built(out: &Path, version: &str, age: Duration) -> PathBuf {
    let disk: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let record = built::built(
        out,
        version,
        &[("disk.qcow2", &disk), ("image.ovf", b"<Envelope/>\n")],
        Some(GateStatus::Passed),
    );
    let mut loaded = Record::read(&record).unwrap().record;
    loaded.build.finished_at = chrono::Utc::now() - age;
    loaded.build.started_at = loaded.build.finished_at - chrono::Duration::minutes(20);
    loaded.write(&record).unwrap();
    record
}

/// The store of an Artifactory test server, as the tests' own client (token from a file).
fn artifactory_store(url: &str) -> Box<dyn Store> {
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), artifactory::TOKEN).unwrap();
    let spec = StoreSpec {
        url: StoreUrl::parse(&format!("artifactory+{url}/os-images"), Path::new("/")).unwrap(),
        credentials: Credentials {
            token_file: Some(token.path().to_path_buf()),
            ..Credentials::default()
        },
        tls: TlsSpec::default(),
    };
    store::open(&spec).unwrap()
}

fn verdicts(out: &Output) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["site"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn site<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_verdict_from_real_and_test_stores() {
    let mut case = Case::new(Duration::from_secs(2 * 3600)).await;
    let dir = case.path().to_path_buf();
    let local = |name: &str| LocalStore::new(dir.join(name));

    // east: replicated, but past its one-hour SLA.
    case.replicate(&local("east"), true).await;
    case.site("east", "file:east", "sla = \"1h\"\n");
    // west: nothing arrived; SLA 8h not yet breached.
    case.site("west", "file:west", "sla = \"8h\"\n");
    // north: replicated, then a disk changed on the site.
    case.replicate(&local("north"), true).await;
    std::fs::write(
        dir.join("north/global/debian-12/1.0.0/disk.qcow2"),
        b"tampered",
    )
    .unwrap();
    case.site("north", "file:north", "");
    // south: only 0.9.0 is there.
    let old = built(
        &dir.join("out/global/debian-12/0.9.0"),
        "0.9.0",
        Duration::ZERO,
    )
    .await;
    case.publish(&local("south"), &old).await;
    case.site("south", "file:south", "");
    // partial: the artifacts arrived, the record has not.
    case.replicate(&local("partial"), false).await;
    case.site("partial", "file:partial", "");

    // Artifactory: replicated; and one whose token is refused.
    let (art_url, _art) = artifactory::start("os-images");
    case.replicate(artifactory_store(&art_url).as_ref(), true)
        .await;
    case.site("art", &format!("artifactory+{art_url}/os-images"), "");
    case.site_with_token(
        "denied",
        &format!("artifactory+{art_url}/os-images"),
        "",
        "WRONG_TOKEN",
    );
    // dead: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    case.site(
        "dead",
        &format!("artifactory+http://127.0.0.1:{port}/artifactory/os-images"),
        "",
    );
    // oci: a real registry, replicated.
    let registry = registry::Registry::start();
    let oci = store::open(&StoreSpec {
        url: StoreUrl::parse(&registry.url(), Path::new("/")).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    })
    .unwrap();
    case.replicate(oci.as_ref(), true).await;
    case.site("oci", &registry.url(), "");
    case.write_config("file:primary");

    let record = case.record.display().to_string();
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            command(BIN, &dir, &["--record", &record, "--json"])
                .env("ART_TOKEN", artifactory::TOKEN)
                .env("WRONG_TOKEN", "not-the-token")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_exit(&out, 1);
    let mut got = verdicts(&out);
    got.sort();
    let want = [
        ("art", "present"),
        ("dead", "unreachable"),
        ("denied", "unauthorised"),
        ("east", "present"),
        ("north", "mismatched"),
        ("oci", "present"),
        ("partial", "missing"),
        ("south", "stale"),
        ("west", "missing"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );

    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["complete"], false);
    assert_eq!(
        doc["files"],
        serde_json::json!(["imagepipe-record.json", "disk.qcow2", "image.ovf"])
    );
    let north = site(&doc, "north");
    assert_eq!(north["files"][0]["state"], "verified");
    assert_eq!(north["files"][1]["state"], "mismatched");
    assert_eq!(
        north["files"][1]["sha256"],
        imagepipe::hash::Sha256Hex::digest(b"tampered").to_string()
    );
    assert_eq!(site(&doc, "south")["newest"], "0.9.0");
    assert_eq!(
        site(&doc, "partial")["detail"],
        "2 of 2 artifacts arrived, the record has not"
    );
    assert_eq!(site(&doc, "east")["sla_breached"], true);
    assert_eq!(site(&doc, "west")["sla_breached"], false);
    assert!(site(&doc, "east")["verified_at"].is_string());
    assert!(site(&doc, "west")["verified_at"].is_null());

    let err = stderr(&out);
    for (name, verdict) in want.iter().filter(|(_, v)| *v != "present") {
        assert!(
            err.contains(&format!("error: site {name}: {verdict}")),
            "{name} is named with its reason:\n{err}"
        );
    }
    assert!(err.contains("warning: site east: complete 2h"), "{err}");
    let table: String = err
        .lines()
        .skip_while(|l| !l.starts_with("site "))
        .take_while(|l| !l.is_empty() && !l.starts_with("warning"))
        .collect::<Vec<_>>()
        .join("\n");
    // Ages move with the clock, and the age column's width with them.
    insta::with_settings!({ filters => vec![
        (r"age +sla", "age  sla"),
        (r"\b(\d+h\d\dm|\d+m|\d+s) +", "[AGE]  "),
    ]}, {
        insta::assert_snapshot!("table", table);
    });

    // The local record now holds every site's result.
    let rec = Record::read(&case.record).unwrap().record;
    let section = rec.replication.unwrap();
    assert_eq!(section.sites.len(), 9);
    let east = section.sites.iter().find(|s| s.site == "east").unwrap();
    assert_eq!(east.verdict, "present");
    assert!(east.sla_breached && east.age_seconds.unwrap() >= 7200);
    let west = section.sites.iter().find(|s| s.site == "west").unwrap();
    assert_eq!((west.verdict.as_str(), west.age_seconds), ("missing", None));
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_sites_pass_and_selection_works() {
    let mut case = Case::new(Duration::from_secs(60)).await;
    let east = LocalStore::new(case.path().join("east"));
    case.replicate(&east, true).await;
    case.site("east", "file:east", "sla = \"8h\"\n");
    case.site("west", "file:west", "");
    case.write_config("file:primary");

    // By tag, as CD runs it, on GitHub: only the selected site counts.
    let run = imagepipe_testkit::on_github!(
        {
            let mut c = command(
                BIN,
                case.path(),
                &["--tag", "global/debian-12/v1.0.0", "--site", "east"],
            );
            c.env("ART_TOKEN", artifactory::TOKEN);
            c
        },
        case.path(),
    );
    assert_exit(&run.out, 0);
    assert_eq!(run.outputs["complete"], "true");
    assert_eq!(run.outputs["failed-sites"], "");
    assert!(
        run.summary.contains("| east | present | ok | ok | ok |"),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("Every site (1) holds the same bytes."));

    // Both sites, with the other inputs at their action.yml defaults: west fails, and the record keeps east's earlier result.
    let mut cmd = command(BIN, case.path(), &[]);
    cmd.env("IMAGEPIPE_IMAGE", "global/debian-12")
        .env("IMAGEPIPE_VERSION", "1.0.0");
    let run = imagepipe_testkit::on_github!(cmd, case.path());
    assert_exit(&run.out, 1);
    assert_eq!(run.outputs["failed-sites"], "west");
    assert!(
        stderr(&run.out).contains("::error title=imagepipe-replicate-check::site west: missing")
    );
    let rec = Record::read(&case.record).unwrap().record;
    assert_eq!(rec.replication.unwrap().sites.len(), 2);

    // Usage and configuration errors are exit 2, naming what to do.
    let out = case.run(&[
        "--record",
        &case.record.display().to_string(),
        "--site",
        "nowhere",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("site `nowhere` is not defined in imagepipe.toml; defined sites: east, west"),
        "{}",
        stderr(&out)
    );
    let out = case.run(&["--image", "global/debian-12", "--version", "2.0.0"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("is not in store"), "{err}");
    assert!(
        err.contains("publish the version before checking its replication"),
        "{err}"
    );
    let out = case.run(&[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("say which image version"));
    let out = case.run(&["--tag", "global/debian-12/v1.0.0", "--wait", "soon"]);
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_site_is_waited_for_and_a_stuck_one_times_out_alone() {
    let mut case = Case::new(Duration::from_secs(60)).await;
    let (url, art) = artifactory::start("os-images");
    case.replicate(artifactory_store(&url).as_ref(), true).await;
    art.lock().unwrap().delay = Duration::from_millis(1500);
    case.site("far", &format!("artifactory+{url}/os-images"), "");
    case.replicate(&LocalStore::new(case.path().join("near")), true)
        .await;
    case.site("near", "file:near", "");
    case.write_config("file:primary");
    let record = case.record.display().to_string();

    let out = tokio::task::block_in_place(|| case.run(&["--record", &record, "--json"]));
    assert_exit(&out, 0);
    assert_eq!(
        verdicts(&out),
        [
            ("far".into(), "present".into()),
            ("near".into(), "present".into())
        ]
    );

    let out = tokio::task::block_in_place(|| {
        case.run(&["--record", &record, "--json", "--site-timeout", "200ms"])
    });
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(site(&doc, "far")["verdict"], "unreachable");
    assert_eq!(
        site(&doc, "far")["detail"],
        "no complete answer within 200ms"
    );
    assert_eq!(site(&doc, "near")["verdict"], "present");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_turns_sites_green_as_they_arrive() {
    let mut case = Case::new(Duration::from_secs(60)).await;
    case.replicate(&LocalStore::new(case.path().join("east")), true)
        .await;
    case.site("east", "file:east", "");
    case.site("west", "file:west", "");
    case.write_config("file:primary");
    let record = case.record.display().to_string();

    let mut child = command(
        BIN,
        case.path(),
        &[
            "--record",
            &record,
            "--wait",
            "5m",
            "--poll-interval",
            "50ms",
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The first round reports west missing and starts waiting for it.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("waiting for west") {
            break;
        }
    }
    case.replicate(&LocalStore::new(case.path().join("west")), true)
        .await;
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{text}");
    let west: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("west ") && l.contains(" complete"))
        .collect();
    assert!(west[0].contains("missing"), "{text}");
    assert!(
        west.last().unwrap().contains("present") && west.last().unwrap().contains("2/2 complete"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_artifactory_push_replication_and_shows_its_status() {
    let mut case = Case::new(Duration::from_secs(60)).await;
    // The primary is Artifactory A, which push-replicates to B, the site's own Artifactory.
    let (site_url, dc2) = artifactory::start("os-images");
    let (primary_url, primary) = artifactory::start("os-images");
    primary.lock().unwrap().targets.push(artifactory::Target {
        url: format!("{site_url}/os-images"),
        repo_key: "os-images".into(),
        status: "never_run".into(),
        last_completed: None,
        peer: dc2.clone(),
    });
    let primary_store = artifactory_store(&primary_url);
    case.publish(primary_store.as_ref(), &case.record).await;
    case.site("dc2", &format!("artifactory+{site_url}/os-images"), "");
    case.write_config(&format!("artifactory+{primary_url}/os-images"));
    let record = case.record.display().to_string();

    // Without a nudge the site is missing, and the status says replication never ran.
    let out = tokio::task::block_in_place(|| case.run(&["--record", &record, "--json"]));
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(site(&doc, "dc2")["verdict"], "missing");
    assert_eq!(site(&doc, "dc2")["replication"], "never_run");

    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "--record",
            &record,
            "--json",
            "--trigger-replication",
            "--wait",
            "1m",
            "--poll-interval",
            "50ms",
        ])
    });
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(site(&doc, "dc2")["verdict"], "present");
    let status = site(&doc, "dc2")["replication"].as_str().unwrap();
    assert!(status.starts_with("ok (last completed 20"), "{status}");
    assert!(primary.lock().unwrap().log.contains(
        &"POST /artifactory/api/replication/execute/os-images/global/debian-12/1.0.0".to_string()
    ));
    assert!(stderr(&out).contains("asked artifactory+"));

    // Replication runs in the background, `incomplete` for a while: a trigger without --wait
    // follows it to its end before checking the site.
    let out = tokio::task::block_in_place(|| {
        dc2.lock().unwrap().items.clear();
        primary.lock().unwrap().replication_polls = 3;
        case.run(&[
            "--record",
            &record,
            "--json",
            "--trigger-replication",
            "--poll-interval",
            "50ms",
        ])
    });
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(site(&doc, "dc2")["verdict"], "present");
    let statuses = primary
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| *l == "GET /artifactory/api/replication/os-images")
        .count();
    assert!(
        statuses >= 4,
        "the status was followed through `incomplete`"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn artifactory_sites_under_real_permissions_and_settings() {
    let mut case = Case::new(Duration::from_secs(60)).await;
    // hidden: "Hide Existence of Unauthorized Resources" is on, and the token may not read.
    let (hidden_url, hidden) = artifactory::start("os-images");
    hidden.lock().unwrap().hide_unauthorized = true;
    case.replicate(artifactory_store(&hidden_url).as_ref(), true)
        .await;
    case.site_with_token(
        "hidden",
        &format!("artifactory+{hidden_url}/os-images"),
        "",
        "OUTSIDER_TOKEN",
    );
    // anonymous: anonymous read is on, but a wrong token is still refused.
    let (anon_url, anon) = artifactory::start("os-images");
    anon.lock().unwrap().anonymous_read = true;
    case.replicate(artifactory_store(&anon_url).as_ref(), true)
        .await;
    case.site_with_token(
        "anonymous",
        &format!("artifactory+{anon_url}/os-images"),
        "",
        "WRONG_TOKEN",
    );
    // stale: only 0.9.0 there, listed by AQL with an ordinary (non-admin) token.
    let (stale_url, _stale) = artifactory::start("os-images");
    let old = built(
        &case.path().join("out/global/debian-12/0.9.0"),
        "0.9.0",
        Duration::ZERO,
    )
    .await;
    case.publish(artifactory_store(&stale_url).as_ref(), &old)
        .await;
    case.site("stale", &format!("artifactory+{stale_url}/os-images"), "");
    // reader: a read-only token on a replicated site.
    case.site_with_token(
        "reader",
        &format!("artifactory+{anon_url}/os-images"),
        "",
        "READ_TOKEN",
    );
    case.write_config("file:primary");
    let record = case.record.display().to_string();
    let out = tokio::task::block_in_place(|| {
        command(BIN, case.path(), &["--record", &record, "--json"])
            .env("OUTSIDER_TOKEN", artifactory::OUTSIDER_TOKEN)
            .env("WRONG_TOKEN", "not-the-token")
            .env("READ_TOKEN", artifactory::READ_TOKEN)
            .env("ART_TOKEN", artifactory::TOKEN)
            .output()
            .unwrap()
    });
    assert_exit(&out, 1);
    let mut got = verdicts(&out);
    got.sort();
    assert_eq!(
        got,
        [
            ("anonymous", "unauthorised"),
            ("hidden", "unauthorised"),
            ("reader", "present"),
            ("stale", "stale"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = site(&doc, "hidden")["detail"].as_str().unwrap();
    assert!(
        detail.contains("Hide Existence of Unauthorized Resources"),
        "{detail}"
    );
    assert_eq!(site(&doc, "stale")["newest"], "0.9.0");
}

#[test]
fn action_and_help() {
    let outputs = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    assert_eq!(outputs, ["complete", "failed-sites"]);
    let dir = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("help", step::help(BIN, dir.path()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_of_another_size_is_mismatched_even_with_the_right_digest() {
    let mut case = Case::new(Duration::ZERO).await;
    let (art_url, art) = artifactory::start("os-images");
    case.replicate(artifactory_store(&art_url).as_ref(), true)
        .await;
    // A server whose File Info gives the recorded sha256 but another size: the bytes are not
    // the record's, whatever the checksum field says.
    {
        let mut s = art.lock().unwrap();
        let item = s
            .items
            .iter_mut()
            .find(|(p, _)| p.ends_with("disk.qcow2"))
            .unwrap()
            .1;
        item.bytes.push(0);
    }
    case.site("art", &format!("artifactory+{art_url}/os-images"), "");
    case.write_config("file:primary");
    let record = case.record.display().to_string();
    let out = tokio::task::block_in_place(|| case.run(&["--record", &record, "--json"]));
    assert_exit(&out, 1);
    assert_eq!(
        verdicts(&out),
        [("art".to_string(), "mismatched".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_echoed_by_a_server_reach_no_sink() {
    let mut case = Case::new(Duration::ZERO).await;
    let url = echo::start();
    // Tokens with characters that JSON and URLs escape.
    let token = r#"tok"en\Zq81-Hv4m-0c7Fe2"#;
    let from_file = "file-tok/en+Qx82Lm9Rt5";
    let password = "pa:ss/w0rd-Kq2P8z";
    std::fs::write(case.path().join("token"), format!("{from_file}\n")).unwrap();
    let art = format!("artifactory+{url}/artifactory/os-images");
    case.site_with_token("env", &art, "", "ECHO_TOKEN");
    case.sites.push(format!(
        "[[site]]\nname = \"file\"\n[site.store]\nurl = \"{art}\"\ntoken_file = \"token\"\n"
    ));
    case.sites.push(format!(
        "[[site]]\nname = \"basic\"\n[site.store]\nurl = \"{art}\"\nusername_env = \"ECHO_USER\"\npassword_env = \"ECHO_PASS\"\n"
    ));
    case.write_config("file:primary");
    let record = case.record.display().to_string();
    let gh = tokio::task::block_in_place(|| {
        let mut cmd = command(BIN, case.path(), &["--record", &record, "--json"]);
        cmd.env("ECHO_TOKEN", token)
            .env("ECHO_USER", "ci-user")
            .env("ECHO_PASS", password);
        imagepipe_testkit::on_github!(cmd, case.path())
    });
    assert_exit(&gh.out, 1);
    let sinks = [
        ("stderr", stderr(&gh.out)),
        (
            "stdout",
            String::from_utf8_lossy(&gh.out.stdout).into_owned(),
        ),
        ("$GITHUB_OUTPUT", format!("{:?}", gh.outputs)),
        ("the step summary", gh.summary.clone()),
        ("the record", std::fs::read_to_string(&case.record).unwrap()),
    ];
    // The servers' words are kept: each site's detail says what it answered.
    assert!(sinks[4].1.contains("echo: xxxx"), "{}", sinks[4].1);
    let mut forbidden = echo::forbidden(token, None);
    forbidden.extend(echo::forbidden(from_file, None));
    forbidden.extend(echo::forbidden(password, Some("ci-user")));
    forbidden.push(
        serde_json::to_string(token)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    );
    echo::assert_clean(&sinks, &forbidden);
}
