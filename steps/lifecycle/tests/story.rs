//! The lifecycle story end to end, with the real step binaries, on each kind of store (a local
//! store, the Artifactory test server, Debian's real `docker-registry`): a chain of three
//! layers is published, promoted and imported into a VCSP library and govmomi's vCenter
//! simulator; a
//! rescan in place finds a new critical advisory in the base; the base is revoked with its
//! descendants; the revoked items leave both libraries; a build on the revoked parent and an
//! import of a revoked version are refused; a build on a fixed parent goes past the parent
//! check.
//!
//! It runs `imagepipe-build`, `imagepipe-import`, `imagepipe-scan` and `imagepipe-replicate-check`
//! beside this step's binary, which
//! `cargo test --workspace` builds (or `cargo build -p imagepipe-build -p imagepipe-import`).

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, registry, step, vcsim};

use std::path::Path;
use std::process::{Command, Output};

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::image::ImageRef;
use imagepipe::record::{GateStatus, ParentId, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{Store, StoreUrl};
use serde_json::Value;
use step::{assert_exit, command, sibling_bin, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-lifecycle");

/// An OVA of a small ext4 disk of a Debian 12 system with openssh-server installed, made as the
/// example pipeline makes it (mke2fs -d, then qemu-img and tar in `make-ova`).
fn ova(dir: &Path, marker: &str) -> Vec<u8> {
    let work = dir.join(format!("ova-{marker}"));
    std::fs::create_dir_all(work.join("tree/etc")).unwrap();
    std::fs::create_dir_all(work.join("tree/var/lib/dpkg")).unwrap();
    std::fs::write(work.join("tree/etc/marker"), marker).unwrap();
    std::fs::write(
        work.join("tree/etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    std::fs::write(
        work.join("tree/var/lib/dpkg/status"),
        "Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nSource: openssh\nVersion: 1:9.2p1-2+deb12u3\n\n",
    )
    .unwrap();
    let disk = work.join("disk.raw");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("truncate").args(["-s", "8M"]).arg(&disk));
    ok(Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(work.join("tree"))
        .arg(&disk));
    ok(Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/synthetic-pipeline/scripts/make-ova"
    ))
    .arg(&disk)
    .arg("image")
    .arg(&work));
    std::fs::read(work.join("image.ova")).unwrap()
}

/// What `imagepipe-build --dry-run` of the middle layer needs: a template that takes the
/// parent's disk.
const TEMPLATE: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
variable "imagepipe_parent_artifact" {
  type = string
}
source "file" "disk" {
  source = var.imagepipe_parent_artifact
  target = "${var.imagepipe_output_dir}/disk.raw"
}
build {
  sources = ["source.file.disk"]
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#;

struct Story {
    dir: tempfile::TempDir,
    /// The primary store (and every site's): `file:primary`, the Artifactory test server or a
    /// real registry.
    url: String,
}

impl Story {
    fn new() -> Self {
        Self::on("file:primary")
    }

    fn on(url: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            url: url.to_string(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `[store]` table of imagepipe.toml (and of each site).
    fn store_toml(&self) -> String {
        let token = if self.url.starts_with("artifactory+") {
            "token_env = \"ART_TOKEN\"\n"
        } else {
            ""
        };
        format!("url = \"{}\"\n{token}", self.url)
    }

    fn store(&self) -> Box<dyn Store> {
        let token = self.path().join("token");
        std::fs::write(&token, artifactory::TOKEN).unwrap();
        imagepipe::store::open(&StoreSpec {
            url: StoreUrl::parse(&self.url, self.path()).unwrap(),
            credentials: Credentials {
                token_file: self.url.starts_with("artifactory+").then_some(token),
                ..Credentials::default()
            },
            tls: TlsSpec::default(),
        })
        .unwrap()
    }

    async fn publish(&self, image: &str, version: &str, parent: Option<&str>) {
        let store = self.store();
        let store = store.as_ref();
        let parent = match parent {
            Some(p) => {
                let pid: ImageRef = p.parse().unwrap();
                let loaded = store.fetch_record(&pid).await.unwrap();
                Some(ParentId {
                    name: pid.name,
                    version: pid.version,
                    record_sha256: loaded.sha256,
                })
            }
            None => None,
        };
        let bytes = ova(self.path(), &format!("{image}-{version}").replace('/', "-"));
        let record = built::built_as(
            &self.path().join("out").join(image).join(version),
            image,
            version,
            parent,
            &[("image.ova", &bytes)],
            Some(GateStatus::Passed),
        );
        let loaded = Record::read(&record).unwrap();
        imagepipe::publish::publish(
            store,
            &loaded,
            &record,
            None,
            None,
            false,
            &Ui::new("test", false, ProgressMode::None),
        )
        .await
        .unwrap();
    }

    fn run(&self, binary: &Path, args: &[&str]) -> Output {
        command(binary.to_str().unwrap(), self.path(), args)
            .env("VC_USER", vcsim::USER)
            .env("VC_PASS", vcsim::PASSWORD)
            .env("GITHUB_ACTOR", "security-team")
            .env("ART_TOKEN", artifactory::TOKEN)
            .output()
            .unwrap()
    }

    fn lifecycle(&self, args: &[&str]) -> Output {
        self.run(Path::new(BIN), args)
    }
}

fn vcsp_items(lib: &Path) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(lib.join("items.json")) else {
        return Vec::new();
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let mut items: Vec<(String, String)> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["properties"]["imagepipe.image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                i["properties"]["imagepipe.version"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_on_a_local_store() {
    the_story(Story::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_on_artifactory() {
    let (url, _art) = artifactory::start("os-images");
    the_story(Story::on(&format!("artifactory+{url}/os-images"))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_on_a_real_registry() {
    let reg = tokio::task::block_in_place(registry::Registry::start);
    the_story(Story::on(&reg.url())).await;
}

/// Promote a chain, find a CVE by rescanning in place, revoke with the cascade, see the
/// revoked items leave every library and every build and import refuse them, rebuild on a
/// fixed parent: the issue's story, with every step's real binary.
async fn the_story(story: Story) {
    let build_bin = sibling_bin(BIN, "imagepipe-build");
    let import_bin = sibling_bin(BIN, "imagepipe-import");
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let vc_library = vc.create_library("images").await;
    std::fs::create_dir_all(story.path().join("images/global")).unwrap();
    std::fs::write(story.path().join("images/global/global.pkr.hcl"), TEMPLATE).unwrap();
    std::fs::write(
        story.path().join("imagepipe.toml"),
        format!(
            r#"[pipeline]
output_dir = "out"

[store]
{store}
[[image]]
name = "vendor/base"
template = "images/vendor"

[[image]]
name = "global/hardened"
template = "images/global/global.pkr.hcl"
parent = "vendor/base"
parent_version = "channel:prod"

[[image]]
name = "service/app"
template = "images/service"
parent = "global/hardened"

[[site]]
name = "dc1"
[site.store]
{store}[site.library]
url = "vcsp:library-dc1"

[[site]]
name = "dc2"
[site.store]
{store}[site.library]
url = "{}"
library = "images"
username_env = "VC_USER"
password_env = "VC_PASS"
"#,
            vc.url,
            store = story.store_toml(),
        ),
    )
    .unwrap();

    // 1. A chain, published and promoted, and in both sites' libraries.
    story.publish("vendor/base", "1.0.0", None).await;
    story
        .publish("global/hardened", "2.0.0", Some("vendor/base@1.0.0"))
        .await;
    story
        .publish("service/app", "3.0.0", Some("global/hardened@2.0.0"))
        .await;
    for (image, version) in [
        ("vendor/base", "1.0.0"),
        ("global/hardened", "2.0.0"),
        ("service/app", "3.0.0"),
    ] {
        let out = tokio::task::block_in_place(|| {
            story.lifecycle(&[
                "promote",
                "--image",
                image,
                "--version",
                version,
                "--channel",
                "prod",
            ])
        });
        assert_exit(&out, 0);
        // Imported by channel.
        let out = tokio::task::block_in_place(|| {
            story.run(
                &import_bin,
                &["--image", image, "--version", "channel:prod"],
            )
        });
        assert_exit(&out, 0);
        assert!(stderr(&out).contains(&format!("channel `prod` of {image} is {version}")));
    }
    let dc1 = story.path().join("library-dc1");
    assert_eq!(vcsp_items(&dc1).len(), 3);
    assert_eq!(vc.items(&vc_library).await.len(), 3);
    // The middle layer's build plan follows its parent's channel.
    let out = tokio::task::block_in_place(|| {
        story.run(
            &build_bin,
            &[
                "--image",
                "global/hardened",
                "--version",
                "2.0.1",
                "--dry-run",
            ],
        )
    });
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("parent    vendor/base 1.0.0"),
        "{}",
        stderr(&out)
    );

    // 2. Today's advisories, rescanned in place from the store (no download): the base has a
    // new critical finding, which fails the rescan's gate.
    let osv = story.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("DEBIAN-CVE-2026-0001.json"),
        format!(
            r#"{{"id":"DEBIAN-CVE-2026-0001","modified":"{}","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"openssh"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1:9.2p1-2+deb12u9"}}]}}]}}]}}"#,
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    let scan_bin = sibling_bin(BIN, "imagepipe-scan");
    let out = tokio::task::block_in_place(|| {
        story.run(
            &scan_bin,
            &[
                "--published",
                "vendor/base@1.0.0",
                "--osv-db",
                osv.to_str().unwrap(),
                "--fail-on-new",
                "high",
                "--json",
            ],
        )
    });
    assert_exit(&out, 1);
    let rescan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let base = &rescan["rescans"][0];
    assert_eq!(
        base["new_ids"],
        serde_json::json!(["DEBIAN-CVE-2026-0001"]),
        "{rescan}"
    );
    assert_eq!(base["new_max_severity"], "critical");

    // 3. Revoke the base with its descendants, for the advisory the rescan found.
    let out = tokio::task::block_in_place(|| {
        story.lifecycle(&[
            "revoke",
            "--image",
            "vendor/base",
            "--version",
            "1.0.0",
            "--reason",
            "CVE-2026-0001: remote root in openssh",
            "--cascade",
        ])
    });
    assert_exit(&out, 0);

    // replicate-check still checks a revoked version, and says it is revoked.
    let replicate_bin = sibling_bin(BIN, "imagepipe-replicate-check");
    let out = tokio::task::block_in_place(|| {
        story.run(
            &replicate_bin,
            &["--image", "service/app", "--version", "3.0.0"],
        )
    });
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("service/app@3.0.0 is revoked ")
            && stderr(&out).contains(" by security-team: ")
            && stderr(&out).contains("CVE-2026-0001"),
        "{}",
        stderr(&out)
    );

    // 4. The revoked items leave every library: the plan first, then --apply.
    let out = tokio::task::block_in_place(|| story.lifecycle(&["prune"]));
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("plan only"), "{}", stderr(&out));
    assert_eq!(vcsp_items(&dc1).len(), 3, "a plan changes nothing");
    let out = tokio::task::block_in_place(|| story.lifecycle(&["prune", "--apply", "--json"]));
    assert_exit(&out, 0);
    assert_eq!(vcsp_items(&dc1), Vec::<(String, String)>::new());
    assert_eq!(vc.items(&vc_library).await, Vec::new());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["sites"].as_array().unwrap().len(), 2);
    // Again: nothing left to remove.
    let out = tokio::task::block_in_place(|| story.lifecycle(&["prune", "--apply"]));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("site dc1: nothing to remove"),
        "{}",
        stderr(&out)
    );

    // Every build and import refuses them, with the reason.
    let out = tokio::task::block_in_place(|| {
        story.run(
            &build_bin,
            &[
                "--image",
                "global/hardened",
                "--version",
                "2.0.1",
                "--dry-run",
            ],
        )
    });
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("vendor/base@1.0.0 is revoked")
            && stderr(&out).contains("CVE-2026-0001: remote root in openssh")
            && stderr(&out).contains("by security-team"),
        "{}",
        stderr(&out)
    );
    for (image, version) in [
        ("global/hardened", "channel:prod"),
        ("service/app", "3.0.0"),
    ] {
        let out = tokio::task::block_in_place(|| {
            story.run(&import_bin, &["--image", image, "--version", version])
        });
        assert_exit(&out, 2);
        assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));
    }
    assert_eq!(
        vc.items(&vc_library).await,
        Vec::new(),
        "nothing was imported"
    );

    // 5. A fixed base, promoted: the middle layer's build goes past the parent check, on the
    // channel's version (not the newest: 1.1.0 is not promoted).
    story.publish("vendor/base", "1.0.1", None).await;
    story.publish("vendor/base", "1.1.0", None).await;
    let out = tokio::task::block_in_place(|| {
        story.lifecycle(&[
            "promote",
            "--image",
            "vendor/base",
            "--version",
            "1.0.1",
            "--channel",
            "prod",
        ])
    });
    assert_exit(&out, 0);
    let out = tokio::task::block_in_place(|| {
        story.run(
            &build_bin,
            &[
                "--image",
                "global/hardened",
                "--version",
                "2.0.1",
                "--dry-run",
            ],
        )
    });
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("parent    vendor/base 1.0.1"),
        "{}",
        stderr(&out)
    );
}

/// Every file an item of a VCSP library names is there.
fn assert_vcsp_consistent(lib: &Path) {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(lib.join("items.json")).unwrap()).unwrap();
    for item in doc["items"].as_array().unwrap() {
        for f in item["files"].as_array().unwrap() {
            let href = f["hrefs"][0].as_str().unwrap();
            assert!(lib.join(href).is_file(), "{href} is named but missing");
        }
    }
}

/// A prune killed at every change it makes to a VCSP library leaves a library whose every
/// item is whole, and the next prune finishes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_prune_killed_at_any_point_leaves_a_whole_vcsp_library() {
    use std::os::unix::process::ExitStatusExt as _;
    let import_bin = sibling_bin(BIN, "imagepipe-import");
    let story = Story::new();
    std::fs::write(
        story.path().join("imagepipe.toml"),
        "[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"vendor/base\"\ntemplate = \"t\"\n\n[[image]]\nname = \"global/hardened\"\ntemplate = \"t\"\nparent = \"vendor/base\"\n\n[[site]]\nname = \"dc1\"\n[site.store]\nurl = \"file:primary\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    )
    .unwrap();
    story.publish("vendor/base", "1.0.0", None).await;
    story
        .publish("global/hardened", "2.0.0", Some("vendor/base@1.0.0"))
        .await;
    for (image, version) in [("vendor/base", "1.0.0"), ("global/hardened", "2.0.0")] {
        let out = tokio::task::block_in_place(|| {
            story.run(&import_bin, &["--image", image, "--version", version])
        });
        assert_exit(&out, 0);
    }
    let out = tokio::task::block_in_place(|| {
        story.lifecycle(&[
            "revoke",
            "--image",
            "global/hardened",
            "--version",
            "2.0.0",
            "--reason",
            "bad",
        ])
    });
    assert_exit(&out, 0);
    let lib = story.path().join("lib");
    let start = story.path().join("start");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("cp").arg("-a").arg(&lib).arg(&start));
    let mut kills = 0;
    for at in 1.. {
        let _ = std::fs::remove_dir_all(&lib);
        ok(Command::new("cp").arg("-a").arg(&start).arg(&lib));
        let out = tokio::task::block_in_place(|| {
            command(BIN, story.path(), &["prune", "--apply"])
                .env("IMAGEPIPE_FAULT_KILL_AT", at.to_string())
                .output()
                .unwrap()
        });
        if out.status.success() {
            assert_vcsp_consistent(&lib);
            break;
        }
        assert_eq!(out.status.signal(), Some(9), "at {at}: {}", stderr(&out));
        kills += 1;
        assert_vcsp_consistent(&lib);
        let again = tokio::task::block_in_place(|| story.lifecycle(&["prune", "--apply"]));
        assert_exit(&again, 0);
        assert_vcsp_consistent(&lib);
        assert_eq!(
            vcsp_items(&lib),
            [("vendor/base".to_string(), "1.0.0".to_string())],
            "at {at}: the re-run finished"
        );
        assert!(
            !lib.join("global-hardened").exists(),
            "at {at}: its folder went"
        );
    }
    assert!(kills >= 3, "{kills} points");
    eprintln!("vcsp prune: killed at {kills} points, each whole, each finished by a re-run");
}

/// A version requirement resolves to the newest version that is not revoked, and a parent
/// named by a record file is looked up in the store too.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_skips_revoked_versions_of_a_range_and_refuses_a_revoked_record_file() {
    let build_bin = sibling_bin(BIN, "imagepipe-build");
    let story = Story::new();
    std::fs::create_dir_all(story.path().join("images/global")).unwrap();
    std::fs::write(story.path().join("images/global/global.pkr.hcl"), TEMPLATE).unwrap();
    std::fs::write(
        story.path().join("imagepipe.toml"),
        "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"vendor/base\"\ntemplate = \"images/vendor\"\n\n[[image]]\nname = \"global/hardened\"\ntemplate = \"images/global/global.pkr.hcl\"\nparent = \"vendor/base\"\nparent_version = \"^1\"\n",
    )
    .unwrap();
    for v in ["1.0.0", "1.1.0"] {
        story.publish("vendor/base", v, None).await;
    }
    let revoke = |version: &str| {
        let out = story.lifecycle(&[
            "revoke",
            "--image",
            "vendor/base",
            "--version",
            version,
            "--reason",
            "CVE-2026-0002",
        ]);
        assert_exit(&out, 0);
    };
    let dry_run = |extra: &[&str]| {
        let mut args = vec![
            "--image",
            "global/hardened",
            "--version",
            "2.0.1",
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        story.run(&build_bin, &args)
    };
    tokio::task::block_in_place(|| revoke("1.1.0"));
    let out = tokio::task::block_in_place(|| dry_run(&[]));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("parent    vendor/base 1.0.0"),
        "the newest unrevoked version: {}",
        stderr(&out)
    );

    // A record file of a revoked version (here the one its publish left) is refused.
    let record = story
        .path()
        .join("out/vendor/base/1.1.0/imagepipe-record.json");
    let record = record.to_str().unwrap();
    let out = tokio::task::block_in_place(|| dry_run(&["--parent-record", record]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("vendor/base@1.1.0 is revoked")
            && stderr(&out).contains("CVE-2026-0002"),
        "{}",
        stderr(&out)
    );

    // With every accepted version revoked, nothing is built, and the list says why.
    tokio::task::block_in_place(|| revoke("1.0.0"));
    let out = tokio::task::block_in_place(|| dry_run(&[]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("(published: 1.0.0 (revoked), 1.1.0 (revoked))"),
        "{}",
        stderr(&out)
    );
}

/// A rescan with `--revoke-on-new` revokes an affected version with its descendants, naming
/// the advisory; one below the bar is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_rescan_revokes_what_it_finds_at_or_above_the_bar_with_its_descendants() {
    let scan_bin = sibling_bin(BIN, "imagepipe-scan");
    let story = Story::new();
    std::fs::write(
        story.path().join("imagepipe.toml"),
        "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"vendor/base\"\ntemplate = \"t\"\n\n[[image]]\nname = \"global/hardened\"\ntemplate = \"t\"\nparent = \"vendor/base\"\n",
    )
    .unwrap();
    story.publish("vendor/base", "1.0.0", None).await;
    story
        .publish("global/hardened", "2.0.0", Some("vendor/base@1.0.0"))
        .await;
    let osv = story.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    // openssh in every layer, high (CVSS 7.5).
    std::fs::write(
        osv.join("DEBIAN-CVE-2026-0003.json"),
        format!(
            r#"{{"id":"DEBIAN-CVE-2026-0003","modified":"{}","severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"openssh"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1:9.2p1-2+deb12u9"}}]}}]}}]}}"#,
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    let rescan = |bar: &str| {
        story.run(
            &scan_bin,
            &[
                "--published",
                "vendor/base@1.0.0",
                "--osv-db",
                osv.to_str().unwrap(),
                "--revoke-on-new",
                bar,
                "--json",
            ],
        )
    };
    let revoked = |image: &str| {
        let dir = story.path().join("primary").join(image).join("_lifecycle");
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("revoked-"))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    };

    // Below the bar: reported, nothing revoked, exit 0.
    let out = tokio::task::block_in_place(|| rescan("critical"));
    assert_exit(&out, 0);
    assert_eq!(revoked("vendor/base"), Vec::<String>::new());

    // At the bar: the version and its child are revoked, the rescan fails.
    let out = tokio::task::block_in_place(|| rescan("high"));
    assert_exit(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = doc["revoked"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{doc}");
    assert_eq!(
        (&list[0]["image"], &list[0]["version"], &list[0]["changed"]),
        (
            &Value::from("vendor/base"),
            &Value::from("1.0.0"),
            &Value::from(true)
        )
    );
    assert_eq!(list[1]["cascaded_from"], "vendor/base@1.0.0");
    assert!(
        stderr(&out).contains("vendor/base@1.0.0: revoked with 1 descendant (rescan found DEBIAN-CVE-2026-0003 (high, openssh-server)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(revoked("vendor/base"), ["revoked-1.0.0.json"]);
    assert_eq!(revoked("global/hardened"), ["revoked-2.0.0.json"]);
    let store = story.store();
    let r = imagepipe::lifecycle::revocation(
        store.as_ref(),
        &"global/hardened".parse().unwrap(),
        &semver::Version::new(2, 0, 0),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(r.reason.contains("DEBIAN-CVE-2026-0003"), "{}", r.reason);
    assert_eq!(r.by, "security-team");

    // The next night: revoked already, so nothing is revoked again and the job is green (a
    // nightly job fails once, on the night it revokes).
    let out = tokio::task::block_in_place(|| rescan("high"));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("vendor/base@1.0.0: revoked ")
            && stderr(&out).contains("by security-team: rescan found DEBIAN-CVE-2026-0003"),
        "{}",
        stderr(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["revoked"], serde_json::json!([]));

    // A revocation goes where builds and imports look: not into another store.
    let out = tokio::task::block_in_place(|| {
        story.run(
            &scan_bin,
            &[
                "--all-published",
                "--store",
                "file:replica",
                "--osv-db",
                osv.to_str().unwrap(),
                "--revoke-on-new",
                "high",
            ],
        )
    });
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is not imagepipe.toml's primary store"),
        "{}",
        stderr(&out)
    );
}
