//! `imagepipe-lifecycle` against a local store, the Artifactory test server (with faults) and
//! Debian's real `docker-registry`: channels with their history, rollbacks, races, revocation
//! with cascade and schedule, and retention.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, registry, step};

use std::path::Path;
use std::process::Output;

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::image::ImageRef;
use imagepipe::lifecycle::{self, LifecycleError};
use imagepipe::record::{GateStatus, ParentId, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{self, LocalStore, Store, StoreUrl};
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-lifecycle");

fn ui() -> Ui {
    Ui::new("test", false, ProgressMode::None)
}

fn id(s: &str) -> ImageRef {
    s.parse().unwrap()
}

/// A pipeline of three layers whose primary store is `primary` (a URL).
struct Case {
    dir: tempfile::TempDir,
}

const LAYERS: &str = "[[image]]\nname = \"vendor/base\"\ntemplate = \"t\"\n\n[[image]]\nname = \"global/hardened\"\ntemplate = \"t\"\nparent = \"vendor/base\"\n\n[[image]]\nname = \"service/app\"\ntemplate = \"t\"\nparent = \"global/hardened\"\n";

impl Case {
    fn new(primary: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token = if primary.starts_with("artifactory") {
            "token_env = \"ART_TOKEN\"\n"
        } else {
            ""
        };
        std::fs::write(
            dir.path().join("imagepipe.toml"),
            format!("[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"{primary}\"\n{token}\n{LAYERS}\n{extra}"),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn local(&self) -> LocalStore {
        LocalStore::new(self.path().join("primary"))
    }

    /// Builds `image@version` (built on `parent`, as published in `store`) and publishes it.
    async fn publish(&self, store: &dyn Store, image: &str, version: &str, parent: Option<&str>) {
        let parent = match parent {
            Some(p) => {
                let pid = id(p);
                let loaded = store.fetch_record(&pid).await.unwrap();
                Some(ParentId {
                    name: pid.name,
                    version: pid.version,
                    record_sha256: loaded.sha256,
                })
            }
            None => None,
        };
        let out = self.path().join("out").join(image).join(version);
        let disk = format!("{image} {version}\n");
        let record = built::built_as(
            &out,
            image,
            version,
            parent,
            &[("disk.raw", disk.as_bytes())],
            Some(GateStatus::Passed),
        );
        let loaded = Record::read(&record).unwrap();
        imagepipe::publish::publish(store, &loaded, &record, None, None, false, &ui())
            .await
            .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        command(BIN, self.path(), args)
            .env("ART_TOKEN", artifactory::TOKEN)
            .env("USER", "tester")
            .env_remove("BUILD_USER")
            .env_remove("BUILD_USER_ID")
            .output()
            .unwrap()
    }

    fn config(&self) -> imagepipe::config::Config {
        imagepipe::config::Config::load(&self.path().join("imagepipe.toml")).unwrap()
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn artifactory_store(dir: &Path, url: &str) -> Box<dyn Store> {
    let token = dir.join("token");
    std::fs::write(&token, artifactory::TOKEN).unwrap();
    store::open(&StoreSpec {
        url: StoreUrl::parse(&format!("artifactory+{url}/os-images"), Path::new("/")).unwrap(),
        credentials: Credentials {
            token_file: Some(token),
            ..Credentials::default()
        },
        tls: TlsSpec::default(),
    })
    .unwrap()
}

fn open(url: &str) -> Box<dyn Store> {
    store::open(&StoreSpec {
        url: StoreUrl::parse(url, Path::new("/")).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_keep_their_history_and_roll_back_in_a_local_store() {
    let case = Case::new("file:primary", "");
    let store = case.local();
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        case.publish(&store, "vendor/base", v, None).await;
    }
    let promote = |v: &str, ch: &str| {
        case.run(&[
            "promote",
            "--image",
            "vendor/base",
            "--version",
            v,
            "--channel",
            ch,
            "--json",
        ])
    };
    let out = tokio::task::block_in_place(|| promote("1.0.0", "prod"));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["changed"], true);
    let out = tokio::task::block_in_place(|| promote("1.1.0", "prod"));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["previous"], "1.0.0");
    assert!(
        stderr(&out).contains("1.0.0 → 1.1.0 (by tester)"),
        "{}",
        stderr(&out)
    );
    // The same version again changes nothing.
    let out = tokio::task::block_in_place(|| promote("1.1.0", "prod"));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["changed"], false);
    // A channel names a version where a version can be named.
    let out = tokio::task::block_in_place(|| promote("channel:prod", "dev"));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["image"]["version"], "1.1.0");

    // The channel file is in the store, whole.
    let doc: Value = serde_json::from_slice(
        &std::fs::read(
            case.path()
                .join("primary/vendor/base/_lifecycle/channels.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["channels"]["prod"]["version"], "1.1.0");
    let history = doc["channels"]["prod"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["previous"], "1.0.0");
    assert_eq!(history[1]["by"], "tester");
    // No listing takes the lifecycle folder for a version.
    let mut versions = store
        .list_versions(&"vendor/base".parse().unwrap())
        .await
        .unwrap();
    versions.sort();
    assert_eq!(versions.len(), 3);

    // Rollback is one command, and is itself in the history.
    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "rollback",
            "--image",
            "vendor/base",
            "--channel",
            "prod",
            "--json",
        ])
    });
    assert_exit(&out, 0);
    assert_eq!(json(&out)["image"]["version"], "1.0.0");
    let out = tokio::task::block_in_place(|| {
        case.run(&["history", "--image", "vendor/base", "--channel", "prod"])
    });
    assert_exit(&out, 0);
    let text = stderr(&out);
    assert!(text.contains("channel prod: 1.0.0"), "{text}");
    assert!(
        text.contains("1.0.0 (rollback) by tester (before: 1.1.0)"),
        "{text}"
    );
    assert!(text.contains("1.1.0 by tester (before: 1.0.0)"), "{text}");

    // The same thing driven by environment variables alone, as an action or Jenkins does.
    let out = tokio::task::block_in_place(|| {
        command(BIN, case.path(), &["--json"])
            .env("IMAGEPIPE_LIFECYCLE_COMMAND", "promote")
            .env("IMAGEPIPE_IMAGE", "vendor/base")
            .env("IMAGEPIPE_VERSION", "1.2.0")
            .env("IMAGEPIPE_CHANNEL", "prod")
            .env("GITHUB_ACTOR", "octocat")
            .output()
            .unwrap()
    });
    assert_exit(&out, 0);
    let doc = lifecycle::channels(&store, &"vendor/base".parse().unwrap())
        .await
        .unwrap();
    let last = doc.channels["prod"].history.last().unwrap().clone();
    assert_eq!(
        (last.version.to_string(), last.by),
        ("1.2.0".into(), "octocat".into())
    );

    // Bad input: exit 2, naming the problem.
    for (args, says) in [
        (
            vec![
                "promote",
                "--image",
                "vendor/base",
                "--version",
                "9.9.9",
                "--channel",
                "prod",
            ],
            "vendor/base@9.9.9 is not in store",
        ),
        (
            vec![
                "promote",
                "--image",
                "vendor/base",
                "--version",
                "1.0.0",
                "--channel",
                "../x",
            ],
            "is not a channel name",
        ),
        (
            vec![
                "promote",
                "--image",
                "vendor/base",
                "--version",
                "channel:nope",
                "--channel",
                "prod",
            ],
            "has no channel `nope`",
        ),
        (
            vec!["rollback", "--image", "vendor/base", "--channel", "dev"],
            "no earlier version to roll back to",
        ),
        (
            vec![
                "promote",
                "--image",
                "nope/x",
                "--version",
                "1.0.0",
                "--channel",
                "prod",
            ],
            "nope/x",
        ),
        (vec!["history"], "--image NAME"),
        (vec![], "say what to do"),
    ] {
        let out = tokio::task::block_in_place(|| case.run(&args));
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_in_artifactory_are_a_document_and_a_property_on_the_version() {
    let (url, art) = artifactory::start("os-images");
    let case = Case::new(&format!("artifactory+{url}/os-images"), "");
    let store = artifactory_store(case.path(), &url);
    for v in ["1.0.0", "1.1.0"] {
        case.publish(store.as_ref(), "vendor/base", v, None).await;
    }
    let promote = |v: &str| {
        case.run(&[
            "promote",
            "--image",
            "vendor/base",
            "--version",
            v,
            "--channel",
            "prod",
        ])
    };
    assert_exit(&tokio::task::block_in_place(|| promote("1.0.0")), 0);
    let prop = |folder: &str| {
        art.lock()
            .unwrap()
            .folder_properties
            .get(folder)
            .and_then(|p| p.get("imagepipe.channel.prod").cloned())
    };
    assert_eq!(prop("vendor/base/1.0.0"), Some(vec!["1.0.0".to_string()]));
    assert_exit(&tokio::task::block_in_place(|| promote("1.1.0")), 0);
    assert_eq!(
        prop("vendor/base/1.0.0"),
        None,
        "the previous version's mark goes"
    );
    assert_eq!(prop("vendor/base/1.1.0"), Some(vec!["1.1.0".to_string()]));
    // Not recursive: the version's files carry no channel.
    assert!(
        art.lock().unwrap().items["vendor/base/1.1.0/disk.raw"]
            .prop("imagepipe.channel.prod")
            .is_none()
    );
    let doc: Value = serde_json::from_slice(
        &art.lock().unwrap().items["vendor/base/_lifecycle/channels.json"].bytes,
    )
    .unwrap();
    assert_eq!(doc["channels"]["prod"]["version"], "1.1.0");
    assert_eq!(
        lifecycle::resolve_channel(store.as_ref(), &"vendor/base".parse().unwrap(), "prod")
            .await
            .unwrap()
            .to_string(),
        "1.1.0"
    );
    let mut versions = store
        .list_versions(&"vendor/base".parse().unwrap())
        .await
        .unwrap();
    versions.sort();
    assert_eq!(versions.len(), 2, "the lifecycle folder is no version");

    let channel = || async {
        lifecycle::resolve_channel(store.as_ref(), &"vendor/base".parse().unwrap(), "prod")
            .await
            .unwrap()
            .to_string()
    };
    // A token that may deploy but not annotate: the step stops with Artifactory's reason, and
    // nothing changed.
    art.lock().unwrap().deployer_cannot_annotate = true;
    let out = tokio::task::block_in_place(|| promote("1.0.0"));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("annotate"), "{}", stderr(&out));
    art.lock().unwrap().deployer_cannot_annotate = false;
    assert_eq!(channel().await, "1.1.0");

    // A deploy of the document damaged on the way is refused by the repository's checksum
    // policy; the channel stays whole.
    art.lock()
        .unwrap()
        .faults
        .push_back(artifactory::Fault::Corrupt);
    let out = tokio::task::block_in_place(|| promote("1.0.0"));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("Checksum policy"), "{}", stderr(&out));
    assert_eq!(channel().await, "1.1.0");
    // A failing server (503, after the client's retries) likewise.
    for _ in 0..5 {
        art.lock()
            .unwrap()
            .faults
            .push_back(artifactory::Fault::Status(503));
    }
    let out = tokio::task::block_in_place(|| promote("1.0.0"));
    assert_exit(&out, 2);
    assert_eq!(channel().await, "1.1.0");
    art.lock().unwrap().faults.clear();
    let out = tokio::task::block_in_place(|| promote("1.0.0"));
    assert_exit(&out, 0);
    assert_eq!(channel().await, "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_in_a_real_registry_are_tags_on_the_version() {
    let reg = tokio::task::block_in_place(registry::Registry::start);
    let case = Case::new(&reg.url(), "");
    let store = open(&reg.url());
    for v in ["1.0.0", "1.1.0"] {
        case.publish(store.as_ref(), "vendor/base", v, None).await;
    }
    for v in ["1.0.0", "1.1.0"] {
        let out = tokio::task::block_in_place(|| {
            case.run(&[
                "promote",
                "--image",
                "vendor/base",
                "--version",
                v,
                "--channel",
                "prod",
            ])
        });
        assert_exit(&out, 0);
    }
    assert_eq!(
        manifest_digest(&reg.addr, "channel-prod").await,
        manifest_digest(&reg.addr, "1.1.0").await,
        "the channel tag is the version's own manifest"
    );
    let name = "vendor/base".parse().unwrap();
    let mut versions = store.list_versions(&name).await.unwrap();
    versions.sort();
    assert_eq!(
        versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["1.0.0", "1.1.0"],
        "neither the lifecycle nor the channel tags are versions"
    );
    let doc = lifecycle::channels(store.as_ref(), &name).await.unwrap();
    assert_eq!(doc.channels["prod"].history.len(), 2);

    // Revocation and retention in the registry too.
    let config = case.config();
    let now = chrono::Utc::now();
    let how = lifecycle::RevokeOptions {
        reason: "CVE-2026-1",
        by: "t",
        now,
        effective: now,
        cascade: false,
    };
    lifecycle::revoke(store.as_ref(), &config, &id("vendor/base@1.0.0"), &how)
        .await
        .unwrap();
    let err = lifecycle::ensure_not_revoked(store.as_ref(), &id("vendor/base@1.0.0"), now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CVE-2026-1"), "{err}");
    // Listed from the registry's tag list, not taken for a version.
    let listed = lifecycle::revocations(store.as_ref(), &name).await.unwrap();
    assert_eq!(listed.versions.keys().collect::<Vec<_>>(), ["1.0.0"]);
    assert_eq!(store.list_versions(&name).await.unwrap().len(), 2);
    case.publish(store.as_ref(), "vendor/base", "1.2.0", None)
        .await;
    let (plan, _) = lifecycle::apply_retention(store.as_ref(), &config, &[], &name, 1, now)
        .await
        .unwrap();
    assert_eq!(
        plan.delete
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["1.0.0"],
        "1.1.0 stays: the channel points at it"
    );
    let mut versions = store.list_versions(&name).await.unwrap();
    versions.sort();
    assert_eq!(
        versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["1.1.0", "1.2.0"]
    );
}

/// Concurrent promotions end in one channel whose history agrees with it.
#[tokio::test(flavor = "multi_thread")]
async fn racing_promotions_and_revocations_end_in_one_consistent_state() {
    // A local store serialises them: every promotion lands, in some order.
    let case = Case::new("file:primary", "");
    let store = case.local();
    let versions: Vec<String> = (0..6).map(|i| format!("1.{i}.0")).collect();
    for v in &versions {
        case.publish(&store, "vendor/base", v, None).await;
    }
    let path = case.path().to_path_buf();
    let children: Vec<_> = versions
        .iter()
        .map(|v| {
            command(
                BIN,
                &path,
                &[
                    "promote",
                    "--image",
                    "vendor/base",
                    "--version",
                    v,
                    "--channel",
                    "prod",
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let name = "vendor/base".parse().unwrap();
    let doc = lifecycle::channels(&store, &name).await.unwrap();
    let ch = &doc.channels["prod"];
    assert_eq!(ch.history.len(), 6, "no promotion is lost");
    assert_eq!(ch.version, ch.history.last().unwrap().version);
    for pair in ch.history.windows(2) {
        assert_eq!(
            pair[1].previous.as_ref(),
            Some(&pair[0].version),
            "one chain"
        );
    }
    // Revocations of different versions racing all land.
    let children: Vec<_> = versions
        .iter()
        .map(|v| {
            command(
                BIN,
                &path,
                &[
                    "revoke",
                    "--image",
                    "vendor/base",
                    "--version",
                    v,
                    "--reason",
                    v,
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let revoked = lifecycle::revocations(&store, &name).await.unwrap();
    assert_eq!(revoked.versions.len(), 6);

    // Artifactory takes no lock: with every answer slowed down, promotions overlap. Each ends
    // done or told it lost, and the channel is exactly one writer's whole document.
    let (url, art) = artifactory::start("os-images");
    let store = artifactory_store(case.path(), &url);
    for v in &versions {
        case.publish(store.as_ref(), "vendor/base", v, None).await;
    }
    art.lock().unwrap().delay = std::time::Duration::from_millis(30);
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::from(store);
    let tasks: Vec<_> = versions
        .iter()
        .map(|v| {
            let store = store.clone();
            let v = id(&format!("vendor/base@{v}"));
            tokio::spawn(async move {
                lifecycle::promote(store.as_ref(), &v, "prod", "t", chrono::Utc::now()).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for (t, v) in tasks.into_iter().zip(&versions) {
        match t.await.unwrap() {
            Ok(_) => won.push(v.clone()),
            Err(LifecycleError::LostRace { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    art.lock().unwrap().delay = std::time::Duration::ZERO;
    let doc = lifecycle::channels(store.as_ref(), &name).await.unwrap();
    let ch = &doc.channels["prod"];
    assert_eq!(
        ch.version,
        ch.history.last().unwrap().version,
        "one whole document"
    );
    assert!(
        won.contains(&ch.version.to_string()),
        "the channel is a winner's: {won:?}"
    );
    // Concurrent revocations merge: every one is there at the end.
    art.lock().unwrap().delay = std::time::Duration::from_millis(30);
    let config = std::sync::Arc::new(case.config());
    let tasks: Vec<_> = versions
        .iter()
        .map(|v| {
            let (store, config) = (store.clone(), config.clone());
            let v = id(&format!("vendor/base@{v}"));
            tokio::spawn(async move {
                let now = chrono::Utc::now();
                let how = lifecycle::RevokeOptions {
                    reason: "cve",
                    by: "t",
                    now,
                    effective: now,
                    cascade: false,
                };
                lifecycle::revoke(store.as_ref(), &config, &v, &how).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    art.lock().unwrap().delay = std::time::Duration::ZERO;
    let revoked = lifecycle::revocations(store.as_ref(), &name).await.unwrap();
    assert_eq!(revoked.versions.len(), 6, "{revoked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_cascades_to_descendants_and_can_be_scheduled() {
    let case = Case::new("file:primary", "");
    let store = case.local();
    case.publish(&store, "vendor/base", "1.0.0", None).await;
    case.publish(&store, "vendor/base", "1.1.0", None).await;
    case.publish(
        &store,
        "global/hardened",
        "2.0.0",
        Some("vendor/base@1.0.0"),
    )
    .await;
    case.publish(
        &store,
        "global/hardened",
        "2.1.0",
        Some("vendor/base@1.1.0"),
    )
    .await;
    case.publish(
        &store,
        "service/app",
        "3.0.0",
        Some("global/hardened@2.0.0"),
    )
    .await;
    case.publish(
        &store,
        "service/app",
        "3.1.0",
        Some("global/hardened@2.1.0"),
    )
    .await;

    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "revoke",
            "--image",
            "vendor/base",
            "--version",
            "1.0.0",
            "--reason",
            "CVE-2026-0001 in openssl",
            "--cascade",
            "--json",
        ])
    });
    assert_exit(&out, 0);
    let mut revoked: Vec<String> = json(&out)["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}@{}",
                r["image"]["name"].as_str().unwrap(),
                r["image"]["version"].as_str().unwrap()
            )
        })
        .collect();
    revoked.sort();
    assert_eq!(
        revoked,
        [
            "global/hardened@2.0.0",
            "service/app@3.0.0",
            "vendor/base@1.0.0"
        ],
        "the descendants, and only those"
    );
    let now = chrono::Utc::now();
    for v in [
        "vendor/base@1.0.0",
        "global/hardened@2.0.0",
        "service/app@3.0.0",
    ] {
        let err = lifecycle::ensure_not_revoked(&store, &id(v), now)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("CVE-2026-0001 in openssl") && text.contains("by tester"),
            "{text}"
        );
    }
    for v in [
        "vendor/base@1.1.0",
        "global/hardened@2.1.0",
        "service/app@3.1.0",
    ] {
        lifecycle::ensure_not_revoked(&store, &id(v), now)
            .await
            .unwrap();
    }
    let doc = lifecycle::revocations(&store, &"service/app".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        doc.versions["3.0.0"].cascaded_from.as_deref(),
        Some("vendor/base@1.0.0")
    );

    // Scheduled: recorded now, effective from the date.
    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "revoke",
            "--image",
            "vendor/base",
            "--version",
            "1.1.0",
            "--reason",
            "end of life",
            "--at",
            "2099-01-31",
        ])
    });
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("scheduled for 2099-01-31T00:00:00+00:00"),
        "{}",
        stderr(&out)
    );
    lifecycle::ensure_not_revoked(&store, &id("vendor/base@1.1.0"), now)
        .await
        .unwrap();
    let later = "2099-02-01T00:00:00Z".parse().unwrap();
    assert!(
        lifecycle::ensure_not_revoked(&store, &id("vendor/base@1.1.0"), later)
            .await
            .is_err()
    );
    let out = tokio::task::block_in_place(|| case.run(&["history", "--image", "vendor/base"]));
    assert!(
        stderr(&out).contains("to be revoked 1.1.0: end of life"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("revoked 1.0.0: CVE-2026-0001"),
        "{}",
        stderr(&out)
    );
    // A revoked version cannot be promoted.
    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "promote",
            "--image",
            "vendor/base",
            "--version",
            "1.0.0",
            "--channel",
            "prod",
        ])
    });
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));
    // Bad input.
    for (args, says) in [
        (
            vec!["revoke", "--image", "vendor/base", "--version", "1.0.0"],
            "--reason",
        ),
        (
            vec![
                "revoke",
                "--image",
                "vendor/base",
                "--version",
                "1.0.0",
                "--reason",
                "x",
                "--at",
                "soon",
            ],
            "--at `soon` is not a date",
        ),
    ] {
        let out = tokio::task::block_in_place(|| case.run(&args));
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_channels_and_live_parents_and_is_idempotent() {
    let case = Case::new("file:primary", "");
    let store = case.local();
    for v in ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"] {
        case.publish(&store, "vendor/base", v, None).await;
    }
    case.publish(
        &store,
        "global/hardened",
        "2.0.0",
        Some("vendor/base@1.0.0"),
    )
    .await;
    let promote = case.run(&[
        "promote",
        "--image",
        "vendor/base",
        "--version",
        "1.1.0",
        "--channel",
        "prod",
    ]);
    assert_exit(&promote, 0);

    // The plan first: nothing changes.
    let out = tokio::task::block_in_place(|| {
        case.run(&["retain", "--image", "vendor/base", "--keep", "2"])
    });
    assert_exit(&out, 0);
    let text = stderr(&out);
    assert!(
        text.contains("keep    1.4.0  (one of the newest 2)"),
        "{text}"
    );
    assert!(text.contains("keep    1.1.0  (channel `prod`)"), "{text}");
    assert!(
        text.contains("keep    1.0.0  (parent of global/hardened@2.0.0)"),
        "{text}"
    );
    assert!(text.contains("delete  1.2.0"), "{text}");
    assert!(text.contains("plan only"), "{text}");
    let name = "vendor/base".parse().unwrap();
    assert_eq!(store.list_versions(&name).await.unwrap().len(), 5);

    let out = tokio::task::block_in_place(|| {
        case.run(&["retain", "--image", "vendor/base", "--keep", "2", "--apply"])
    });
    assert_exit(&out, 0);
    let mut left: Vec<String> = store
        .list_versions(&name)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    left.sort();
    assert_eq!(left, ["1.0.0", "1.1.0", "1.3.0", "1.4.0"]);
    assert!(
        !case.path().join("primary/vendor/base/1.2.0").exists(),
        "the files go too"
    );
    // Idempotent.
    let out = tokio::task::block_in_place(|| {
        case.run(&[
            "retain",
            "--image",
            "vendor/base",
            "--keep",
            "2",
            "--apply",
            "--json",
        ])
    });
    assert_exit(&out, 0);
    assert_eq!(
        json(&out)["images"][0]["plan"]["delete"],
        serde_json::json!([])
    );
    // Once the child is revoked, its parent is no longer needed.
    let out = case.run(&[
        "revoke",
        "--image",
        "global/hardened",
        "--version",
        "2.0.0",
        "--reason",
        "cve",
    ]);
    assert_exit(&out, 0);
    let out = tokio::task::block_in_place(|| {
        case.run(&["retain", "--image", "vendor/base", "--keep", "2", "--apply"])
    });
    assert_exit(&out, 0);
    let mut left: Vec<String> = store
        .list_versions(&name)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    left.sort();
    assert_eq!(left, ["1.1.0", "1.3.0", "1.4.0"]);
    let out = case.run(&["retain", "--image", "vendor/base"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--keep N"), "{}", stderr(&out));
}

/// A store that fails half way through deleting a version leaves no visible version with
/// missing files, and the next run finishes the deletion.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_failing_mid_prune_leaves_no_visible_version_with_missing_files() {
    let (url, art) = artifactory::start("os-images");
    let case = Case::new(&format!("artifactory+{url}/os-images"), "");
    let store = artifactory_store(case.path(), &url);
    for v in ["1.0.0", "1.1.0"] {
        case.publish(store.as_ref(), "vendor/base", v, None).await;
    }
    // The record's delete succeeds; the version folder's fails.
    art.lock()
        .unwrap()
        .fail_deletes
        .push("vendor/base/1.0.0".into());
    let out = tokio::task::block_in_place(|| {
        case.run(&["retain", "--image", "vendor/base", "--keep", "1", "--apply"])
    });
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("Injected failure"),
        "{}",
        stderr(&out)
    );
    let name = "vendor/base".parse().unwrap();
    let versions = store.list_versions(&name).await.unwrap();
    assert_eq!(versions.len(), 1, "1.0.0 is no longer visible");
    assert!(matches!(
        store.fetch_record(&id("vendor/base@1.0.0")).await,
        Err(imagepipe::store::StoreError::VersionNotFound { .. })
    ));
    assert!(
        art.lock()
            .unwrap()
            .items
            .contains_key("vendor/base/1.0.0/disk.raw"),
        "its files are still there, invisible"
    );
    // Once the store works again, the next run removes them.
    art.lock().unwrap().fail_deletes.clear();
    let out = tokio::task::block_in_place(|| {
        case.run(&["retain", "--image", "vendor/base", "--keep", "1", "--apply"])
    });
    assert_exit(&out, 0);
    let s = art.lock().unwrap();
    assert!(
        !s.items.keys().any(|p| p.starts_with("vendor/base/1.0.0/")),
        "{:?}",
        s.items.keys().collect::<Vec<_>>()
    );
    assert!(s.items.contains_key("vendor/base/1.1.0/disk.raw"));
}

#[test]
fn action_and_help() {
    let outputs = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    assert_eq!(outputs, ["previous", "removed", "revoked", "version"]);
    let dir = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("help", step::help(BIN, dir.path()));
}

/// The digest a registry gives a tag of `images/vendor/base`.
async fn manifest_digest(addr: &str, tag: &str) -> String {
    let resp = reqwest::Client::new()
        .head(format!(
            "http://{addr}/v2/images/vendor/base/manifests/{tag}"
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{tag}: {}", resp.status());
    resp.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Retention killed at every change it makes to a local store leaves only whole versions
/// visible, and the next run finishes it.
#[tokio::test(flavor = "multi_thread")]
async fn retention_killed_at_any_point_leaves_only_whole_versions_and_is_finished_next_time() {
    use std::os::unix::process::ExitStatusExt as _;
    let case = Case::new("file:primary", "");
    let store = case.local();
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        case.publish(&store, "vendor/base", v, None).await;
    }
    let start = case.path().join("start");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(case.path().join("primary"))
        .arg(&start)
        .status()
        .unwrap();
    assert!(copied.success());
    let name = "vendor/base".parse().unwrap();
    let mut kills = 0;
    for at in 1.. {
        let _ = std::fs::remove_dir_all(case.path().join("primary"));
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&start)
            .arg(case.path().join("primary"))
            .status()
            .unwrap();
        assert!(copied.success());
        let out = tokio::task::block_in_place(|| {
            command(
                BIN,
                case.path(),
                &["retain", "--image", "vendor/base", "--keep", "1", "--apply"],
            )
            .env("IMAGEPIPE_FAULT_KILL_AT", at.to_string())
            .output()
            .unwrap()
        });
        let check_visible = || async {
            for v in store.list_versions(&name).await.unwrap() {
                let id = ImageRef {
                    name: name.clone(),
                    version: v,
                };
                let loaded = store.fetch_record(&id).await.unwrap();
                store.verify(&id, &loaded).await.unwrap();
            }
        };
        if out.status.success() {
            check_visible().await;
            break;
        }
        assert_eq!(out.status.signal(), Some(9), "at {at}: {}", stderr(&out));
        kills += 1;
        check_visible().await;
        let again = tokio::task::block_in_place(|| {
            case.run(&["retain", "--image", "vendor/base", "--keep", "1", "--apply"])
        });
        assert_exit(&again, 0);
        let left: Vec<_> = std::fs::read_dir(case.path().join("primary/vendor/base"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('1'))
            .collect();
        assert_eq!(left, ["1.2.0"], "at {at}: the re-run finished");
    }
    assert!(kills >= 4, "{kills} points");
    eprintln!("retention: killed at {kills} points, each left only whole versions");
}

/// A local store that takes no lock (as Artifactory and registries offer none), and whose
/// first lifecycle read can be held back: the read is made at once, its answer returned only
/// when the test says so. That stages the interleaving a read-back cannot see: one revoker
/// reads, another writes and checks its write, then the first writes on what it read.
#[derive(Debug)]
struct Unlocked {
    inner: LocalStore,
    hold: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
}

#[async_trait::async_trait]
impl Store for Unlocked {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn list_versions(
        &self,
        image: &imagepipe::image::ImageName,
    ) -> Result<Vec<semver::Version>, store::StoreError> {
        self.inner.list_versions(image).await
    }
    async fn fetch_record(
        &self,
        image: &ImageRef,
    ) -> Result<imagepipe::record::LoadedRecord, store::StoreError> {
        self.inner.fetch_record(image).await
    }
    fn artifact_location(&self, image: &ImageRef, a: &imagepipe::record::FileArtifact) -> String {
        self.inner.artifact_location(image, a)
    }
    fn record_location(&self, image: &ImageRef) -> String {
        self.inner.record_location(image)
    }
    async fn put_artifact(
        &self,
        image: &ImageRef,
        path: &Path,
        a: &imagepipe::record::FileArtifact,
        p: &store::Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<store::PutOutcome, store::StoreError> {
        self.inner.put_artifact(image, path, a, p, progress).await
    }
    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        p: &store::Properties,
    ) -> Result<(), store::StoreError> {
        self.inner.put_record(image, bytes, p).await
    }
    async fn artifact_digest(
        &self,
        image: &ImageRef,
        a: &imagepipe::record::FileArtifact,
    ) -> Result<Option<store::StoredFile>, store::StoreError> {
        self.inner.artifact_digest(image, a).await
    }
    async fn open_artifact(
        &self,
        image: &ImageRef,
        a: &imagepipe::record::FileArtifact,
    ) -> Result<Box<dyn store::ArtifactReader>, store::StoreError> {
        self.inner.open_artifact(image, a).await
    }
    async fn read_lifecycle(
        &self,
        image: &imagepipe::image::ImageName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, store::StoreError> {
        let read = self.inner.read_lifecycle(image, key).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some((said, resume)) = hold {
            said.send(()).unwrap();
            resume.await.unwrap();
        }
        read
    }
    async fn list_lifecycle(
        &self,
        image: &imagepipe::image::ImageName,
    ) -> Result<Vec<String>, store::StoreError> {
        self.inner.list_lifecycle(image).await
    }
    async fn write_lifecycle(
        &self,
        image: &imagepipe::image::ImageName,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), store::StoreError> {
        self.inner.write_lifecycle(image, key, bytes).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_is_never_replaced_by_a_racing_revocation_of_another_version() {
    let case = Case::new("file:primary", "");
    let local = case.local();
    case.publish(&local, "vendor/base", "1.0.0", None).await;
    case.publish(&local, "vendor/base", "1.1.0", None).await;
    let config = case.config();
    let now = chrono::Utc::now();
    let how = lifecycle::RevokeOptions {
        reason: "cve",
        by: "t",
        now,
        effective: now,
        cascade: false,
    };
    let (said, read_made) = tokio::sync::oneshot::channel();
    let (resume, resumed) = tokio::sync::oneshot::channel();
    let slow = std::sync::Arc::new(Unlocked {
        inner: case.local(),
        hold: std::sync::Mutex::new(Some((said, resumed))),
    });
    let fast = Unlocked {
        inner: case.local(),
        hold: std::sync::Mutex::new(None),
    };
    // The slow revoker reads what is revoked (nothing), and waits.
    let task = {
        let (slow, config) = (slow.clone(), config.clone());
        tokio::spawn(async move {
            lifecycle::revoke(slow.as_ref(), &config, &id("vendor/base@1.1.0"), &how).await
        })
    };
    read_made.await.unwrap();
    // The other revokes 1.0.0, checks its write, and is done.
    let done = lifecycle::revoke(&fast, &config, &id("vendor/base@1.0.0"), &how)
        .await
        .unwrap();
    assert!(done[0].changed);
    // Then the slow one writes on what it read.
    resume.send(()).unwrap();
    task.await.unwrap().unwrap();
    let name = "vendor/base".parse().unwrap();
    let revoked = lifecycle::revocations(&local, &name).await.unwrap();
    assert_eq!(
        revoked.versions.keys().collect::<Vec<_>>(),
        ["1.0.0", "1.1.0"],
        "both revocations hold"
    );
    lifecycle::ensure_not_revoked(&local, &id("vendor/base@1.0.0"), chrono::Utc::now())
        .await
        .unwrap_err();
}

/// `retain --keep-history N` shortens each channel's history to its newest N assignments (a
/// plan first, then --apply, idempotent), in a local store and in Artifactory; a rollback
/// still works over the shortened history.
#[tokio::test(flavor = "multi_thread")]
async fn retention_shortens_channel_histories_and_rollback_still_works() {
    let (url, _art) = artifactory::start("os-images");
    for primary in [
        "file:primary".to_string(),
        format!("artifactory+{url}/os-images"),
    ] {
        let case = Case::new(&primary, "");
        let store: Box<dyn Store> = if primary.starts_with("file:") {
            Box::new(case.local())
        } else {
            artifactory_store(case.path(), &url)
        };
        let versions = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"];
        for v in versions {
            case.publish(store.as_ref(), "vendor/base", v, None).await;
        }
        let name = "vendor/base".parse().unwrap();
        for v in versions {
            lifecycle::promote(
                store.as_ref(),
                &id(&format!("vendor/base@{v}")),
                "prod",
                "t",
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        }
        let history_len = |doc: &lifecycle::Channels| doc.channels["prod"].history.len();

        let out = tokio::task::block_in_place(|| case.run(&["retain", "--keep-history", "2"]));
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("vendor/base: channel prod history 4 → 2 assignments"),
            "{primary}: {}",
            stderr(&out)
        );
        let doc = lifecycle::channels(store.as_ref(), &name).await.unwrap();
        assert_eq!(history_len(&doc), 4, "{primary}: a plan changes nothing");

        let out = tokio::task::block_in_place(|| {
            case.run(&["retain", "--keep-history", "2", "--apply", "--json"])
        });
        assert_exit(&out, 0);
        assert_eq!(
            json(&out)["images"][0]["history"][0]["after"],
            2,
            "{primary}"
        );
        let doc = lifecycle::channels(store.as_ref(), &name).await.unwrap();
        let kept: Vec<String> = doc.channels["prod"]
            .history
            .iter()
            .map(|a| a.version.to_string())
            .collect();
        assert_eq!(kept, ["1.2.0", "1.3.0"], "{primary}");
        assert_eq!(doc.channels["prod"].version.to_string(), "1.3.0");
        // Again: nothing to do.
        let out = tokio::task::block_in_place(|| {
            case.run(&["retain", "--keep-history", "2", "--apply", "--json"])
        });
        assert_exit(&out, 0);
        assert_eq!(json(&out)["images"][0]["history"], serde_json::json!([]));
        // Two rollbacks: back to 1.2.0, then to 1.1.0 (the shortened history's first
        // `previous`), each one undoing one promotion.
        for to in ["1.2.0", "1.1.0"] {
            let out = tokio::task::block_in_place(|| {
                case.run(&[
                    "rollback",
                    "--image",
                    "vendor/base",
                    "--channel",
                    "prod",
                    "--json",
                ])
            });
            assert_exit(&out, 0);
            assert_eq!(json(&out)["image"]["version"], to, "{primary}");
        }
    }
}
