//! `imagepipe-import` into a VCSP library directory and into govmomi's vCenter simulator
//! (`/rest`), PUSH and PULL, from OVAs the tests build with real tools (mke2fs, qemu-img, tar).

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::{artifactory, built, echo, registry, step, tls_proxy, vcsim, vsphere_api};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagepipe::config::{Credentials, StoreSpec, TlsSpec};
use imagepipe::hash::Sha256Hex;
use imagepipe::record::{GateStatus, Record};
use imagepipe::step::{ProgressMode, Ui};
use imagepipe::store::{self, LocalStore, Store, StoreUrl};
use serde_json::Value;
use step::{assert_exit, command, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-import");

fn ui() -> Ui {
    Ui::new("test", false, ProgressMode::None)
}

/// An OVA of a small ext4 disk whose `/etc/marker` says `marker`, made as the example
/// pipeline makes it (mke2fs -d, then qemu-img and tar in `make-ova`).
fn ova(dir: &Path, marker: &str) -> Vec<u8> {
    let work = dir.join(format!("ova-{marker}"));
    std::fs::create_dir_all(work.join("tree/etc")).unwrap();
    std::fs::write(
        work.join("tree/etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    std::fs::write(work.join("tree/etc/marker"), marker).unwrap();
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
    .arg("global-debian-12")
    .arg(&work));
    std::fs::read(work.join("global-debian-12.ova")).unwrap()
}

/// The members of a tar, as `(name, bytes)`.
fn members(ova: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= ova.len() && ova[at] != 0 {
        let h = &ova[at..at + 512];
        let name =
            String::from_utf8_lossy(&h[..h.iter().position(|&b| b == 0).unwrap()]).into_owned();
        let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        out.push((name, ova[at + 512..at + 512 + size].to_vec()));
        at += 512 + size.next_multiple_of(512);
    }
    out
}

/// Where a member's bytes are in a tar.
fn member_range(ova: &[u8], suffix: &str) -> (usize, usize) {
    let mut at = 0;
    loop {
        let h = &ova[at..at + 512];
        let name =
            String::from_utf8_lossy(&h[..h.iter().position(|&b| b == 0).unwrap()]).into_owned();
        let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        if name.ends_with(suffix) {
            return (at + 512, size);
        }
        at += 512 + size.next_multiple_of(512);
    }
}

struct Pipeline {
    dir: tempfile::TempDir,
    sites: String,
}

impl Pipeline {
    fn new(sites: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = Self {
            dir,
            sites: sites.to_string(),
        };
        std::fs::write(
            p.path().join("imagepipe.toml"),
            format!(
                "[pipeline]\noutput_dir = \"out\"\n\n[store]\nurl = \"file:primary\"\n\n[[image]]\nname = \"global/debian-12\"\ntemplate = \"t\"\n\n{}",
                p.sites
            ),
        )
        .unwrap();
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Builds version `version` (an OVA whose disk says `marker`) and publishes it into `store`.
    async fn publish(&self, store: &dyn Store, version: &str, ova_bytes: &[u8]) -> PathBuf {
        let record = built::built(
            &self.path().join(format!("out/global/debian-12/{version}")),
            version,
            &[("global-debian-12.ova", ova_bytes)],
            Some(GateStatus::Passed),
        );
        let loaded = Record::read(&record).unwrap();
        imagepipe::publish::publish(store, &loaded, &record, None, None, false, &ui())
            .await
            .unwrap();
        record
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--image", "global/debian-12"];
        all.extend_from_slice(args);
        command(BIN, self.path(), &all)
            .env("VC_USER", vcsim::USER)
            .env("VC_PASS", vcsim::PASSWORD)
            .env("ART_TOKEN", artifactory::TOKEN)
            .output()
            .unwrap()
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vcsp_library_follows_the_protocol() {
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    let east = LocalStore::new(p.path().join("east"));
    let first = ova(p.path(), "one");
    let record = p.publish(&east, "1.0.0", &first).await;
    let lib = p.path().join("lib");

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["sites"][0]["changed"], true);
    let l = read_json(&lib.join("lib.json"));
    assert_eq!(l["vcspVersion"], "2");
    assert_eq!(l["version"], "1");
    assert_eq!(l["itemsHref"], "items.json");
    assert!(l["id"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_eq!(l["capabilities"]["transferIn"][0], "httpGet");
    let items = read_json(&lib.join("items.json"));
    let item = read_json(&lib.join("global-debian-12/item.json"));
    assert_eq!(items["items"][0], item, "items.json holds each item.json");
    assert_eq!(item["type"], "vcsp.ovf");
    assert_eq!(item["selfHref"], "global-debian-12/item.json");
    assert_eq!(item["version"], "1");
    let record_sha = Sha256Hex::digest(&std::fs::read(east.record_location(&id("1.0.0"))).unwrap());
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .contains(&record_sha.to_string())
    );
    // The files are the OVA's descriptor and disk, unpacked, each with its sha256 as etag.
    let parts = members(&first);
    let files = item["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let name = f["name"].as_str().unwrap();
        let (_, bytes) = parts.iter().find(|(n, _)| n == name).unwrap();
        let stored = std::fs::read(lib.join(f["hrefs"][0].as_str().unwrap())).unwrap();
        assert_eq!(&stored, bytes, "{name}");
        assert_eq!(f["size"], bytes.len());
        assert_eq!(f["etag"], Sha256Hex::digest(bytes).to_string());
    }
    assert!(files[0]["name"].as_str().unwrap().ends_with(".ovf"));
    // The local record says where the image went.
    let rec = Record::read(&record).unwrap().record;
    let section = rec.import.unwrap();
    assert_eq!(section.sites[0].site, "east");
    assert_eq!(section.sites[0].item, "global-debian-12");

    // The same record again, by tag on GitHub: nothing changes, not even the library's version.
    let before = std::fs::read(lib.join("lib.json")).unwrap();
    let gh = tokio::task::block_in_place(|| {
        imagepipe_testkit::on_github!(
            command(
                BIN,
                p.path(),
                &["--tag", "global/debian-12/v1.0.0", "--json"],
            ),
            p.path(),
        )
    });
    let out = gh.out;
    assert_exit(&out, 0);
    assert_eq!(json(&out)["sites"][0]["changed"], false);
    assert!(stderr(&out).contains("already there"));
    let items: Value = serde_json::from_str(&gh.outputs["items"]).unwrap();
    assert_eq!(items[0]["item"], "global-debian-12");
    assert_eq!(gh.outputs["failed-sites"], "");
    assert!(
        gh.summary.contains("| east | already there | `vcsp:"),
        "{}",
        gh.summary
    );
    assert_eq!(std::fs::read(lib.join("lib.json")).unwrap(), before);

    // A new version: the same item id, its version and the library's raised, new etags, the
    // old version's files gone.
    let second = ova(p.path(), "two");
    p.publish(&east, "1.1.0", &second).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.1.0"]));
    assert_exit(&out, 0);
    let item2 = read_json(&lib.join("global-debian-12/item.json"));
    assert_eq!(item2["id"], item["id"]);
    assert_eq!(item2["version"], "2");
    assert_eq!(read_json(&lib.join("lib.json"))["version"], "2");
    assert_ne!(item2["files"][1]["etag"], item["files"][1]["etag"]);
    // Each import's files are in a folder of their own (never rewritten in place), the old
    // version's folder is gone, and nothing else is left beside the item.
    let folder_of = |item: &Value| {
        let href = item["files"][0]["hrefs"][0].as_str().unwrap().to_string();
        href.rsplit_once('/').unwrap().0.to_string()
    };
    let (old_folder, new_folder) = (folder_of(&item), folder_of(&item2));
    assert!(
        old_folder.starts_with("global-debian-12/1.0.0-"),
        "{old_folder}"
    );
    assert!(
        new_folder.starts_with("global-debian-12/1.1.0-"),
        "{new_folder}"
    );
    assert!(!lib.join(&old_folder).exists());
    assert!(lib.join(&new_folder).is_dir());
    let mut beside: Vec<String> = std::fs::read_dir(lib.join("global-debian-12"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        [
            new_folder.rsplit_once('/').unwrap().1.to_string(),
            "item.json".to_string()
        ]
    );

    // An OVA whose disk does not match its manifest: refused, and the library is untouched.
    let mut bad = ova(p.path(), "three");
    let (at, size) = member_range(&bad, ".vmdk");
    bad[at + size / 2] ^= 0xff;
    p.publish(&east, "1.2.0", &bad).await;
    let before = std::fs::read(lib.join("items.json")).unwrap();
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.2.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("does not match the OVA manifest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(lib.join("items.json")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(lib.join("global-debian-12"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.contains("partial") || n == "1.2.0"),
        "{leftovers:?}"
    );
}

fn id(version: &str) -> imagepipe::image::ImageRef {
    imagepipe::image::ImageRef {
        name: "global/debian-12".parse().unwrap(),
        version: version.parse().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vcsp_library_in_an_artifactory_repository() {
    let (url, art) = artifactory::start("vcsp");
    let p = Pipeline::new(&format!(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:artifactory+{url}/vcsp/libs/east\"\ntoken_env = \"ART_TOKEN\"\n"
    ));
    let east = LocalStore::new(p.path().join("east"));
    let first = ova(p.path(), "one");
    p.publish(&east, "1.0.0", &first).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    let item_of = |path: &str| -> Value {
        serde_json::from_slice(&art.lock().unwrap().items[path].bytes).unwrap()
    };
    let lib = item_of("libs/east/lib.json");
    assert_eq!(
        (lib["vcspVersion"].as_str(), lib["name"].as_str()),
        (Some("2"), Some("east"))
    );
    let item = item_of("libs/east/global-debian-12/item.json");
    assert_eq!(item_of("libs/east/items.json")["items"][0], item);
    for f in item["files"].as_array().unwrap() {
        let stored = art.lock().unwrap().items
            [&format!("libs/east/{}", f["hrefs"][0].as_str().unwrap())]
            .clone();
        assert_eq!(
            f["etag"].as_str().unwrap(),
            stored.sha256,
            "the etag is the content's sha256"
        );
        let (_, bytes) = members(&first)
            .into_iter()
            .find(|(n, _)| n == f["name"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored.bytes, bytes);
    }

    // Again: nothing is deployed.
    let puts = |art: &artifactory::Shared| {
        art.lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.starts_with("PUT"))
            .count()
    };
    let before = puts(&art);
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 0);
    assert_eq!(puts(&art), before);

    // A new version replaces the old one's folder.
    p.publish(&east, "1.1.0", &ova(p.path(), "two")).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.1.0"]));
    assert_exit(&out, 0);
    let s = art.lock().unwrap();
    assert!(
        s.log
            .iter()
            .any(|l| l.starts_with("DELETE /artifactory/vcsp/libs/east/global-debian-12/1.0.0-")),
        "{:?}",
        s.log
    );
    assert!(!s.items.keys().any(|k| k.contains("/1.0.0-")));
    assert!(s.items.keys().any(|k| k.contains("/1.1.0-")));
    assert!(
        !s.items.keys().any(|k| k.contains(".imagepipe.journal")),
        "the journal is removed when the import is done"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vcsp_library_in_a_repository_that_trusts_server_checksums_serves_no_wrong_bytes() {
    let (url, art) = artifactory::start("vcsp");
    art.lock().unwrap().checksum_policy = artifactory::ChecksumPolicy::Server;
    let p = Pipeline::new(&format!(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:artifactory+{url}/vcsp/libs/east\"\ntoken_env = \"ART_TOKEN\"\n"
    ));
    let east = LocalStore::new(p.path().join("east"));
    let first = ova(p.path(), "one");
    p.publish(&east, "1.0.0", &first).await;
    // The first file arrives damaged; the repository keeps it with 201.
    art.lock()
        .unwrap()
        .faults
        .push_back(artifactory::Fault::Corrupt);
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("stored other bytes than were sent"),
        "{}",
        stderr(&out)
    );
    {
        let s = art.lock().unwrap();
        let members = members(&first);
        let bad: Vec<&String> = s
            .items
            .iter()
            .filter(|(k, i)| {
                let name = k.rsplit('/').next().unwrap();
                members.iter().any(|(n, b)| n == name && *b != i.bytes)
            })
            .map(|(k, _)| k)
            .collect();
        assert!(bad.is_empty(), "wrong bytes served: {bad:?}");
        assert!(
            !s.items.contains_key("libs/east/items.json"),
            "nothing listed"
        );
    }
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 0);

    // A token without Delete cannot rewrite the library's index documents: said so.
    art.lock().unwrap().deployer_cannot_delete = true;
    p.publish(&east, "1.1.0", &ova(p.path(), "two")).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.1.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("needs DELETE permission"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_the_ova_in_place_from_a_real_registry() {
    let registry = tokio::task::block_in_place(registry::Registry::start);
    let p = Pipeline::new(&format!(
        "[[site]]\nname = \"oci\"\n[site.store]\nurl = \"{}\"\n[site.library]\nurl = \"vcsp:lib\"\n",
        registry.url()
    ));
    let oci = store::open(&StoreSpec {
        url: StoreUrl::parse(&registry.url(), Path::new("/")).unwrap(),
        credentials: Credentials::default(),
        tls: TlsSpec::default(),
    })
    .unwrap();
    let bytes = ova(p.path(), "one");
    p.publish(oci.as_ref(), "1.0.0", &bytes).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 0);
    let item = read_json(&p.path().join("lib/global-debian-12/item.json"));
    for f in item["files"].as_array().unwrap() {
        let (_, want) = members(&bytes)
            .into_iter()
            .find(|(n, _)| n == f["name"].as_str().unwrap())
            .unwrap();
        let got =
            std::fs::read(p.path().join("lib").join(f["hrefs"][0].as_str().unwrap())).unwrap();
        assert_eq!(got, want, "{}", f["name"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item_per_version_keeps_the_newest() {
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    let east = LocalStore::new(p.path().join("east"));
    for (i, v) in ["1.0.0", "1.1.0", "2.0.0"].iter().enumerate() {
        p.publish(&east, v, &ova(p.path(), &format!("m{i}"))).await;
        let out = tokio::task::block_in_place(|| {
            p.run(&[
                "--version",
                v,
                "--layout",
                "item-per-version",
                "--keep",
                "2",
            ])
        });
        assert_exit(&out, 0);
    }
    let items = read_json(&p.path().join("lib/items.json"));
    let names: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["global-debian-12-1.1.0", "global-debian-12-2.0.0"]);
    assert!(!p.path().join("lib/global-debian-12-1.0.0").exists());
}

/// The tests' own client of an Artifactory test server's store (token from a file).
fn artifactory_store(dir: &Path, store_url: &str) -> Box<dyn Store> {
    let token = dir.join("token");
    std::fs::write(&token, artifactory::TOKEN).unwrap();
    store::open(&StoreSpec {
        url: StoreUrl::parse(store_url, Path::new("/")).unwrap(),
        credentials: Credentials {
            token_file: Some(token),
            ..Credentials::default()
        },
        tls: TlsSpec::default(),
    })
    .unwrap()
}

fn vcenter_site(name: &str, store: &str, vc: &vcsim::Vcsim) -> String {
    format!(
        "[[site]]\nname = \"{name}\"\n[site.store]\nurl = \"{store}\"\n{}[site.library]\nurl = \"{}\"\nlibrary = \"images\"\nusername_env = \"VC_USER\"\npassword_env = \"VC_PASS\"\n",
        if store.starts_with("artifactory") {
            "token_env = \"ART_TOKEN\"\n"
        } else {
            ""
        },
        vc.url
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn push_into_a_vcenter_is_idempotent_and_updates_in_place() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let library = vc.create_library("images").await;
    let p = Pipeline::new(&vcenter_site("dc1", "file:dc1", &vc));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    let first = ova(p.path(), "one");
    p.publish(&dc1, "1.0.0", &first).await;

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    let items = vc.items(&library).await;
    assert_eq!(items.len(), 1);
    let (name, item_id, description) = &items[0];
    assert_eq!(name, "global-debian-12");
    assert!(description.starts_with("global/debian-12 1.0.0 (imagepipe record sha256 "));
    assert_eq!(json(&out)["sites"][0]["item_id"], item_id.as_str());
    let mut want: Vec<(String, u64)> = members(&first)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mf"))
        .map(|(n, b)| (n, b.len() as u64))
        .collect();
    want.sort();
    assert_eq!(vc.files(item_id).await, want);

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    assert_eq!(json(&out)["sites"][0]["changed"], false);

    p.publish(&dc1, "1.1.0", &ova(p.path(), "two")).await;
    let out =
        tokio::task::block_in_place(|| p.run(&["--version", "1.1.0", "--vsphere-api", "rest"]));
    assert_exit(&out, 0);
    let items = vc.items(&library).await;
    assert_eq!(items.len(), 1);
    assert_eq!(&items[0].1, item_id, "the item keeps its id");
    assert!(items[0].2.starts_with("global/debian-12 1.1.0 "));

    // Forcing the /api generation on a server that only speaks /rest says so.
    let out =
        tokio::task::block_in_place(|| p.run(&["--version", "1.1.0", "--vsphere-api", "api"]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("/api/session"), "{}", stderr(&out));

    // Item per version, keeping one.
    for v in ["1.0.0", "1.1.0"] {
        let out = tokio::task::block_in_place(|| {
            p.run(&[
                "--version",
                v,
                "--layout",
                "item-per-version",
                "--keep",
                "1",
            ])
        });
        assert_exit(&out, 0);
    }
    let names: Vec<String> = vc.items(&library).await.into_iter().map(|i| i.0).collect();
    assert_eq!(names, ["global-debian-12", "global-debian-12-1.1.0"]);
}

/// The vSphere plugin's default export: the OVA's members as loose files of the record.
async fn publish_loose(p: &Pipeline, store: &dyn Store, version: &str, ova_bytes: &[u8]) {
    let parts = members(ova_bytes);
    let files: Vec<(&str, &[u8])> = parts
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let record = built::built(
        &p.path().join(format!("out/global/debian-12/{version}")),
        version,
        &files,
        Some(GateStatus::Passed),
    );
    let loaded = Record::read(&record).unwrap();
    imagepipe::publish::publish(store, &loaded, &record, None, None, false, &ui())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loose_ovf_export_is_imported_with_the_files_its_descriptor_names() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let library = vc.create_library("images").await;
    let sites = format!(
        "{}\n[[site]]\nname = \"dc2\"\n[site.store]\nurl = \"file:dc1\"\n[site.library]\nurl = \"vcsp:lib\"\n",
        vcenter_site("dc1", "file:dc1", &vc)
    );
    let p = Pipeline::new(&sites);
    let dc1 = LocalStore::new(p.path().join("dc1"));
    let bytes = ova(p.path(), "loose");
    publish_loose(&p, &dc1, "1.0.0", &bytes).await;

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    // vCenter holds the descriptor and the disk, byte for byte as the OVA would give them.
    let items = vc.items(&library).await;
    assert_eq!(items.len(), 1);
    let mut want: Vec<(String, u64)> = members(&bytes)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mf"))
        .map(|(n, b)| (n, b.len() as u64))
        .collect();
    want.sort();
    assert_eq!(vc.files(&items[0].1).await, want);
    // So does the VCSP library, with the manifest's checksums checked on the way.
    let lib = p.path().join("lib");
    assert_library_consistent(&lib, true);
    for (name, content) in members(&bytes)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mf"))
    {
        let found: Vec<_> = walkdir(&lib)
            .into_iter()
            .filter(|f| f.file_name().is_some_and(|n| n == name.as_str()))
            .collect();
        assert_eq!(found.len(), 1, "{name} in {found:?}");
        assert_eq!(std::fs::read(&found[0]).unwrap(), content, "{name}");
    }

    // PULL hands vCenter one URL: a loose export is refused with what to do.
    let out = tokio::task::block_in_place(|| {
        p.run(&["--version", "1.0.0", "--site", "dc1", "--transfer", "pull"])
    });
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("use --transfer push"),
        "{}",
        stderr(&out)
    );
}

/// Every file under `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribed_libraries_are_synced_until_they_show_the_item() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let (_, publish_url) = vc.create_published_library("images").await;
    let east = vc
        .create_subscribed_library("images-east", &publish_url)
        .await;
    let site = vcenter_site("dc1", "file:dc1", &vc).replace(
        "library = \"images\"\n",
        "library = \"images\"\nsubscribed = [\"images-east\"]\n",
    );
    let p = Pipeline::new(&site);
    p.publish(
        &LocalStore::new(p.path().join("dc1")),
        "1.0.0",
        &ova(p.path(), "one"),
    )
    .await;
    assert!(vc.library(&east).await["last_sync_time"].is_null());

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    assert_eq!(
        json(&out)["sites"][0]["synced"],
        serde_json::json!([{ "library": "images-east", "has_item": true }])
    );
    assert!(
        !vc.library(&east).await["last_sync_time"].is_null(),
        "a sync was asked for"
    );
    assert_eq!(vc.items(&east).await[0].0, "global-debian-12");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_from_the_site_store_and_a_failing_pull_leaves_nothing() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let library = vc.create_library("images").await;
    let (url, art) = artifactory::start("os-images");
    art.lock().unwrap().anonymous_read = true;
    let store_url = format!("artifactory+{url}/os-images");
    let p = Pipeline::new(&vcenter_site("dc2", &store_url, &vc));
    let site_store = artifactory_store(p.path(), &store_url);
    let first = ova(p.path(), "one");
    p.publish(site_store.as_ref(), "1.0.0", &first).await;

    let out = tokio::task::block_in_place(|| {
        p.run(&["--version", "1.0.0", "--transfer", "pull", "--json"])
    });
    assert_exit(&out, 0);
    let items = vc.items(&library).await;
    assert_eq!(items.len(), 1);
    // vCenter fetched the OVA itself: the step read only the tar's headers.
    assert!(
        art.lock()
            .unwrap()
            .log
            .iter()
            .any(|l| l == "GET /artifactory/os-images/global/debian-12/1.0.0/global-debian-12.ova")
    );
    assert!(!vc.files(&items[0].1).await.is_empty());

    // The source breaks while vCenter downloads: the session fails, the new item is removed.
    p.publish(site_store.as_ref(), "1.1.0", &ova(p.path(), "two"))
        .await;
    art.lock().unwrap().reset_full_gets = true;
    let out = tokio::task::block_in_place(|| {
        p.run(&[
            "--version",
            "1.1.0",
            "--transfer",
            "pull",
            "--layout",
            "item-per-version",
        ])
    });
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("vCenter could not fetch"),
        "{}",
        stderr(&out)
    );
    let names: Vec<String> = vc.items(&library).await.into_iter().map(|i| i.0).collect();
    assert_eq!(names, ["global-debian-12"], "no half-imported item remains");
}

fn api_site(url: &str) -> String {
    format!(
        "[[site]]\nname = \"dc7\"\n[site.store]\nurl = \"file:dc7\"\n[site.library]\nurl = \"{url}\"\nlibrary = \"{}\"\nusername_env = \"API_USER\"\npassword_env = \"API_PASS\"\n",
        vsphere_api::LIBRARY
    )
}

fn run_api(p: &Pipeline, args: &[&str]) -> Output {
    let mut all = vec!["--image", "global/debian-12"];
    all.extend_from_slice(args);
    tokio::task::block_in_place(|| {
        command(BIN, p.path(), &all)
            .env("API_USER", vsphere_api::USER)
            .env("API_PASS", vsphere_api::PASSWORD)
            .output()
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_generation_survives_an_expired_session_and_5xx() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    let bytes = ova(p.path(), "one");
    p.publish(&store, "1.0.0", &bytes).await;
    {
        let mut s = vc.lock().unwrap();
        s.expire_on_upload = true;
        s.unavailable = 2;
        s.upload_delay = std::time::Duration::from_millis(400);
    }
    let out = run_api(&p, &["--version", "1.0.0", "--keep-alive", "50ms"]);
    assert_exit(&out, 0);
    let s = vc.lock().unwrap();
    assert!(
        s.log.iter().any(|l| l.ends_with("?action=keep-alive")),
        "the update session was kept alive during the slow upload"
    );
    assert_eq!(
        s.logins, 2,
        "logged in again after the session expired mid-upload"
    );
    let (item_id, item) = s.items.iter().next().unwrap();
    assert_eq!(item.name, "global-debian-12");
    assert!(
        item.description
            .starts_with("global/debian-12 1.0.0 (imagepipe record sha256 ")
    );
    for (name, data) in members(&bytes)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mf"))
    {
        assert_eq!(item.files.get(&name), Some(&data), "{name}");
    }
    assert!(s.updates.values().all(|u| u.state == "DONE"));
    assert!(s.sessions.is_empty(), "the step logged out");
    assert!(
        s.log
            .iter()
            .any(|l| l == &format!("PATCH /api/content/library/item/{item_id}"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validation_error_fails_the_session_and_removes_the_new_item() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
    vc.lock().unwrap().invalid = Some((
        "global-debian-12-disk1.vmdk".into(),
        "The disk is not a stream-optimized VMDK".into(),
    ));
    let out = run_api(&p, &["--version", "1.0.0", "--vsphere-api", "api"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("vCenter refused the files: invalid global-debian-12-disk1.vmdk: The disk is not a stream-optimized VMDK"),
        "{err}"
    );
    let s = vc.lock().unwrap();
    assert!(s.items.is_empty(), "no empty item is left behind");
    let up = s.updates.values().next().unwrap();
    assert_eq!(up.state, "ERROR");
    assert!(up.error.as_deref().unwrap().contains("refused the files"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_into_the_api_generation() {
    let (vc_url, vc) = vsphere_api::start();
    let (url, art) = artifactory::start("os-images");
    art.lock().unwrap().anonymous_read = true;
    let store_url = format!("artifactory+{url}/os-images");
    let p = Pipeline::new(&api_site(&vc_url).replace(
        "url = \"file:dc7\"",
        &format!("url = \"{store_url}\"\ntoken_env = \"ART_TOKEN\""),
    ));
    let site_store = artifactory_store(p.path(), &store_url);
    let bytes = ova(p.path(), "one");
    p.publish(site_store.as_ref(), "1.0.0", &bytes).await;
    let out = tokio::task::block_in_place(|| {
        command(
            BIN,
            p.path(),
            &[
                "--image",
                "global/debian-12",
                "--version",
                "1.0.0",
                "--transfer",
                "pull",
            ],
        )
        .env("API_USER", vsphere_api::USER)
        .env("API_PASS", vsphere_api::PASSWORD)
        .env("ART_TOKEN", artifactory::TOKEN)
        .output()
        .unwrap()
    });
    assert_exit(&out, 0);
    let s = vc.lock().unwrap();
    let item = s.items.values().next().unwrap();
    assert_eq!(
        item.files.get("global-debian-12.ova"),
        Some(&bytes),
        "vCenter fetched the OVA"
    );
}

#[test]
fn bad_input_and_help() {
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    // The version is not published at all.
    let out = p.run(&["--version", "9.9.9"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("global/debian-12@9.9.9 is not in store file:"),
        "{}",
        stderr(&out)
    );
    // Published, but not (yet) in the site's store.
    let primary = LocalStore::new(p.path().join("primary"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(p.publish(&primary, "9.9.9", &ova(p.path(), "nine")));
    let out = p.run(&["--version", "9.9.9"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("site east: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not in store"), "{}", stderr(&out));
    let out = p.run(&["--version", "1.0.0", "--site", "west"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("site `west` is not defined"));

    let outputs = step::check_action(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"), BIN, &[]);
    assert_eq!(outputs, ["failed-sites", "items"]);
    insta::assert_snapshot!("help", step::help(BIN, p.path()));
}

/// The VCSP library's invariant: the three documents parse, and every file that items.json or
/// an item.json points at is there with its size and its etag's digest. `strict` (after a run
/// that completed) adds: item.json is items.json's entry, and nothing else is in the library:
/// no journal, no temporary file, no folder that no document points at.
fn assert_library_consistent(lib: &Path, strict: bool) {
    if !lib.join("lib.json").exists() {
        assert!(!lib.join("items.json").exists() || !strict);
        return;
    }
    read_json(&lib.join("lib.json"));
    let items = read_json(&lib.join("items.json"));
    let mut referenced = std::collections::BTreeSet::new();
    let mut check_files = |item: &Value| {
        for f in item["files"].as_array().unwrap() {
            let href = f["hrefs"][0].as_str().unwrap();
            let bytes = std::fs::read(lib.join(href)).unwrap_or_else(|e| panic!("{href}: {e}"));
            assert_eq!(bytes.len() as u64, f["size"].as_u64().unwrap(), "{href}");
            assert_eq!(Sha256Hex::digest(&bytes).to_string(), f["etag"], "{href}");
            referenced.insert(href.rsplit_once('/').unwrap().0.to_string());
        }
    };
    for item in items["items"].as_array().unwrap() {
        check_files(item);
        let own = read_json(&lib.join(item["selfHref"].as_str().unwrap()));
        check_files(&own);
        if strict {
            assert_eq!(&own, item, "item.json is items.json's entry");
        }
    }
    if strict {
        let mut found = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(lib).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if entry.file_type().unwrap().is_dir() {
                for child in std::fs::read_dir(entry.path()).unwrap() {
                    let child = child.unwrap().file_name().into_string().unwrap();
                    if child != "item.json" {
                        found.insert(format!("{name}/{child}"));
                    }
                }
            } else {
                assert!(
                    ["lib.json", "items.json", ".imagepipe.lock"].contains(&name.as_str()),
                    "left in the library: {name}"
                );
            }
        }
        assert_eq!(found, referenced, "only folders the documents point at");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_killed_at_any_write_leaves_a_consistent_library_that_a_rerun_completes() {
    use std::os::unix::process::ExitStatusExt as _;
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    let east = LocalStore::new(p.path().join("east"));
    p.publish(&east, "1.0.0", &ova(p.path(), "one")).await;
    p.publish(&east, "1.1.0", &ova(p.path(), "two")).await;
    let second_sha = Record::read(Path::new(&east.record_location(&id("1.1.0"))))
        .unwrap()
        .sha256;
    // Two starting points: an empty library, and one holding 1.0.0 that 1.1.0 replaces.
    let empty = p.path().join("empty");
    let holding = p.path().join("holding");
    std::fs::create_dir_all(&empty).unwrap();
    let lib = p.path().join("lib");
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 0);
    std::fs::rename(&lib, &holding).unwrap();

    let mut kills = 0;
    for start in [&empty, &holding] {
        for at in 1.. {
            let _ = std::fs::remove_dir_all(&lib);
            let copied = Command::new("cp")
                .arg("-a")
                .arg(start)
                .arg(&lib)
                .status()
                .unwrap();
            assert!(copied.success());
            let out = tokio::task::block_in_place(|| {
                command(
                    BIN,
                    p.path(),
                    &["--image", "global/debian-12", "--version", "1.1.0"],
                )
                .env("IMAGEPIPE_FAULT_KILL_AT", at.to_string())
                .output()
                .unwrap()
            });
            if out.status.success() {
                assert_library_consistent(&lib, true);
                break;
            }
            assert_eq!(out.status.signal(), Some(9), "at {at}: {}", stderr(&out));
            kills += 1;
            assert_library_consistent(&lib, false);
            let again = tokio::task::block_in_place(|| p.run(&["--version", "1.1.0"]));
            assert_exit(&again, 0);
            assert_library_consistent(&lib, true);
            let item = read_json(&lib.join("global-debian-12/item.json"));
            assert_eq!(
                item["properties"]["imagepipe.record_sha256"],
                second_sha.to_string(),
                "at {at}: the re-run finished the import"
            );
        }
    }
    assert!(kills >= 10, "{kills} points");
    eprintln!("vcsp: killed at {kills} points, each consistent, each completed by a re-run");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sites_copy_is_checked_against_the_published_record() {
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    let east = LocalStore::new(p.path().join("east"));
    let first = ova(p.path(), "one");
    let record = p.publish(&east, "1.0.0", &first).await;
    let stored = p
        .path()
        .join("east/global/debian-12/1.0.0/global-debian-12.ova");
    let lib = p.path().join("lib");

    // Another OVA put in place at the site, of another size: caught before anything is sent.
    let mut swapped = ova(p.path(), "swapped-in");
    swapped.extend_from_slice(&[0; 512]);
    std::fs::write(&stored, &swapped).unwrap();
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(&format!(
            "site east: the site's copy of the OVA: {} is {} bytes, but the record says {}",
            stored.display(),
            swapped.len(),
            first.len()
        )),
        "{}",
        stderr(&out)
    );
    // Of the same size: caught by its digest, before anything becomes visible.
    std::fs::write(&stored, ova(p.path(), "swapped-in")).unwrap();
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the site's copy of the OVA: ")
            && stderr(&out).contains("has sha256"),
        "{}",
        stderr(&out)
    );
    assert!(!lib.join("items.json").exists());

    // The same size, every member matching the manifest, one byte of the tar's padding other:
    // only the whole file's digest tells, and nothing becomes visible.
    let mut padded = first.clone();
    let last = padded.len() - 1;
    padded[last] ^= 0x01;
    std::fs::write(&stored, &padded).unwrap();
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("has sha256") && stderr(&out).contains("but the record says"),
        "{}",
        stderr(&out)
    );
    assert!(!lib.join("items.json").exists());
    assert_library_consistent(&lib, true);

    // The site's record names other bytes than were published.
    std::fs::write(&stored, &first).unwrap();
    let site_record = p
        .path()
        .join("east/global/debian-12/1.0.0/imagepipe-record.json");
    let mut r: Value = read_json(&site_record);
    r["artifacts"][0]["sha256"] = Value::String("0".repeat(64));
    std::fs::write(&site_record, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the site holds other bytes than were published"),
        "{}",
        stderr(&out)
    );
    let _ = record;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ova_without_a_manifest_needs_a_flag_and_the_record_says_so() {
    let p = Pipeline::new(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"vcsp:lib\"\n",
    );
    let east = LocalStore::new(p.path().join("east"));
    // The example's OVA, re-tarred without its .mf.
    let with = ova(p.path(), "one");
    let work = p.path().join("nomf");
    std::fs::create_dir_all(&work).unwrap();
    let mut names = Vec::new();
    for (name, bytes) in members(&with) {
        if !name.ends_with(".mf") {
            std::fs::write(work.join(&name), bytes).unwrap();
            names.push(name);
        }
    }
    let tarred = Command::new("tar")
        .args(["--format=ustar", "-cf", "../no-manifest.ova"])
        .args(&names)
        .current_dir(&work)
        .status()
        .unwrap();
    assert!(tarred.success());
    let bytes = std::fs::read(p.path().join("no-manifest.ova")).unwrap();
    let record = p.publish(&east, "1.0.0", &bytes).await;

    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0"]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("has no manifest (.mf)")
            && stderr(&out).contains("--allow-missing-manifest"),
        "{}",
        stderr(&out)
    );
    assert!(!p.path().join("lib/items.json").exists());
    let out =
        tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--allow-missing-manifest"]));
    assert_exit(&out, 0);
    let r = Record::read(&record).unwrap().record;
    assert!(!r.import.unwrap().sites[0].manifest, "the record notes it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vcenter_that_echoes_credentials_leaks_none() {
    let url = echo::start();
    let password = r#"vc"pa:ss/w0rd\Lm42Qz"#;
    let p = Pipeline::new(&format!(
        "[[site]]\nname = \"east\"\n[site.store]\nurl = \"file:east\"\n[site.library]\nurl = \"{url}\"\nlibrary = \"images\"\nusername_env = \"VC_USER\"\npassword_env = \"ECHO_PASS\"\n"
    ));
    let east = LocalStore::new(p.path().join("east"));
    let record = p.publish(&east, "1.0.0", &ova(p.path(), "one")).await;
    let gh = tokio::task::block_in_place(|| {
        let mut cmd = command(
            BIN,
            p.path(),
            &[
                "--image",
                "global/debian-12",
                "--version",
                "1.0.0",
                "--json",
            ],
        );
        cmd.env("VC_USER", "administrator@vsphere.local")
            .env("ECHO_PASS", password);
        imagepipe_testkit::on_github!(cmd, p.path())
    });
    assert_exit(&gh.out, 2);
    let sinks = [
        ("stderr", stderr(&gh.out)),
        (
            "stdout",
            String::from_utf8_lossy(&gh.out.stdout).into_owned(),
        ),
        ("$GITHUB_OUTPUT", format!("{:?}", gh.outputs)),
        ("the step summary", gh.summary.clone()),
        ("the record", std::fs::read_to_string(&record).unwrap()),
    ];
    assert!(sinks[0].1.contains("site east: "), "{}", sinks[0].1);
    let mut forbidden = echo::forbidden(password, Some("administrator@vsphere.local"));
    forbidden.push(
        serde_json::to_string(password)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    );
    echo::assert_clean(&sinks, &forbidden);
}

/// The update sessions of the `/api` double, as `(id, state)`.
fn sessions(vc: &vsphere_api::Shared) -> Vec<(String, String)> {
    vc.lock()
        .unwrap()
        .updates
        .iter()
        .map(|(k, u)| (k.clone(), u.state.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_killed_with_its_update_session_active_is_finished_by_the_next_run() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    let bytes = ova(p.path(), "one");
    p.publish(&store, "1.0.0", &bytes).await;

    // A slow vCenter: the first file add hangs, and the step is killed meanwhile, with the
    // item created and its update session ACTIVE.
    vc.lock().unwrap().add_delay = std::time::Duration::from_secs(30);
    let mut child = command(
        BIN,
        p.path(),
        &["--image", "global/debian-12", "--version", "1.0.0"],
    )
    .env("API_USER", vsphere_api::USER)
    .env("API_PASS", vsphere_api::PASSWORD)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let start = std::time::Instant::now();
    while !vc.lock().unwrap().log.iter().any(|l| l.ends_with("/file")) {
        assert!(
            start.elapsed().as_secs() < 60,
            "the step never added a file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    vc.lock().unwrap().add_delay = std::time::Duration::ZERO;
    let leftover = sessions(&vc);
    assert_eq!(leftover.len(), 1);
    let (leftover, state) = &leftover[0];
    assert_eq!(state, "ACTIVE", "the killed run left its session active");

    // vCenter refuses a second session on the item (RESOURCE_BUSY); the next run cancels and
    // deletes the leftover, says so, and imports.
    let out = run_api(&p, &["--version", "1.0.0", "--json"]);
    assert_exit(&out, 0);
    let warning = format!(
        "site dc7: cancelled update session {leftover} that an earlier run (killed, or still running) left active on item `"
    );
    assert!(stderr(&out).contains(&warning), "{}", stderr(&out));
    assert!(
        json(&out)["sites"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("cancelled update session {leftover} "))
    );
    let s = vc.lock().unwrap();
    let log = |l: &str| s.log.iter().any(|x| x == l);
    assert!(log(&format!(
        "POST /api/content/library/item/update-session/{leftover}?action=cancel"
    )));
    assert!(log(&format!(
        "DELETE /api/content/library/item/update-session/{leftover}"
    )));
    assert!(!s.updates.contains_key(leftover), "the leftover is deleted");
    assert_eq!(
        s.updates
            .values()
            .map(|u| u.state.as_str())
            .collect::<Vec<_>>(),
        ["DONE"]
    );
    let items = s.items_of(vsphere_api::LIBRARY_ID);
    assert_eq!(items.len(), 1, "the killed run's item is the one imported");
    for (name, data) in members(&bytes)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mf"))
    {
        assert_eq!(items[0].1.files.get(&name), Some(&data), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_was_lost_is_not_made_twice() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
    // vCenter creates the item, and then the session, but each answer is lost (500): the HTTP
    // layer sends each create again.
    {
        let mut s = vc.lock().unwrap();
        s.item_create_lost = 1;
        s.session_create_lost = 1;
    }
    let out = run_api(&p, &["--version", "1.0.0"]);
    assert_exit(&out, 0);
    let s = vc.lock().unwrap();
    let items = s.items_of(vsphere_api::LIBRARY_ID);
    assert_eq!(items.len(), 1, "one item, not a duplicate or an error");
    assert_eq!(items[0].1.name, "global-debian-12");
    assert_eq!(
        s.updates
            .values()
            .map(|u| u.state.as_str())
            .collect::<Vec<_>>(),
        ["DONE"],
        "one update session, not a second one or a cancelled first"
    );
    // Each create was sent twice with one token (a UUID), the two creates with different ones.
    let tokens = |path: &str| -> Vec<String> {
        s.create_tokens
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| t.clone().expect("a client token"))
            .collect()
    };
    let item_tokens = tokens("/api/content/library/item");
    let session_tokens = tokens("/api/content/library/item/update-session");
    assert_eq!(item_tokens.len(), 2, "{:?}", s.create_tokens);
    assert_eq!(item_tokens[0], item_tokens[1]);
    assert_eq!(session_tokens.len(), 2, "{:?}", s.create_tokens);
    assert_eq!(session_tokens[0], session_tokens[1]);
    assert_ne!(item_tokens[0], session_tokens[0]);
    assert_eq!(item_tokens[0].len(), 36);
}

/// A call to the `/api` double as a test's own client: `(status, body)`.
async fn api_call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let sid: String = client
        .post(format!("{url}/api/session"))
        .basic_auth(vsphere_api::USER, Some(vsphere_api::PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut rb = client
        .request(method, format!("{url}{path}"))
        .header("vmware-api-session-id", sid);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_double_refuses_what_vcenter_refuses() {
    use reqwest::Method;
    use serde_json::json;
    let (url, vc) = vsphere_api::start();
    let spec = json!({ "library_id": vsphere_api::LIBRARY_ID, "name": "n", "type": "ovf" });
    let item = "/api/content/library/item";
    let (status, id) = api_call(&url, Method::POST, item, Some(spec.clone())).await;
    assert_eq!(status, 201);
    let id = id.as_str().unwrap().to_string();
    // A second item of that name in the library.
    let (status, body) = api_call(&url, Method::POST, item, Some(spec)).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (400, Some("ALREADY_EXISTS"))
    );
    // Deleting an item that does not exist.
    let (status, body) = api_call(&url, Method::DELETE, &format!("{item}/item-404"), None).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    // One ACTIVE update session per item; what a session allows in each state.
    let sessions = "/api/content/library/item/update-session";
    let create = json!({ "library_item_id": id });
    let (status, first) = api_call(&url, Method::POST, sessions, Some(create.clone())).await;
    assert_eq!(status, 201);
    let first = first.as_str().unwrap().to_string();
    let (status, body) = api_call(&url, Method::POST, sessions, Some(create.clone())).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (500, Some("RESOURCE_BUSY"))
    );
    let (status, list) = api_call(
        &url,
        Method::GET,
        &format!("{sessions}?library_item_id={id}"),
        None,
    )
    .await;
    assert_eq!((status, list), (200, json!([first])));
    let at = |a: &str| format!("{sessions}/{first}{a}");
    let (status, body) = api_call(&url, Method::DELETE, &at(""), None).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (400, Some("NOT_ALLOWED_IN_CURRENT_STATE")),
        "an ACTIVE session cannot be deleted"
    );
    assert_eq!(
        api_call(&url, Method::POST, &at("?action=cancel"), None)
            .await
            .0,
        204
    );
    let (_, got) = api_call(&url, Method::GET, &at(""), None).await;
    assert_eq!(got["state"], "CANCELED");
    for a in ["cancel", "keep-alive", "complete"] {
        let (status, body) = api_call(&url, Method::POST, &at(&format!("?action={a}")), None).await;
        assert_eq!(
            (status, body["error_type"].as_str()),
            (400, Some("NOT_ALLOWED_IN_CURRENT_STATE")),
            "{a} on a CANCELED session"
        );
    }
    let fail = json!({ "client_error_message": "x" });
    assert_eq!(
        api_call(&url, Method::POST, &at("?action=fail"), Some(fail))
            .await
            .0,
        400
    );
    assert_eq!(api_call(&url, Method::DELETE, &at(""), None).await.0, 204);
    assert_eq!(api_call(&url, Method::GET, &at(""), None).await.0, 404);

    // The file add forms: the 7.0.2 spec's, and vSphere 9's.
    let (_, second) = api_call(&url, Method::POST, sessions, Some(create)).await;
    let second = second.as_str().unwrap().to_string();
    let files = format!("{sessions}/{second}/file");
    let add = json!({ "name": "a.ovf", "source_type": "PUSH", "size": 3 });
    assert_eq!(
        api_call(
            &url,
            Method::POST,
            &format!("{files}?action=add"),
            Some(add.clone())
        )
        .await
        .0,
        404
    );
    let (status, info) = api_call(&url, Method::POST, &files, Some(add.clone())).await;
    assert_eq!(
        (status, info["status"].as_str()),
        (201, Some("WAITING_FOR_TRANSFER"))
    );
    assert!(
        info["upload_endpoint"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/a.ovf")
    );
    vc.lock().unwrap().vsphere9 = true;
    assert_eq!(
        api_call(&url, Method::POST, &files, Some(add.clone()))
            .await
            .0,
        404
    );
    assert_eq!(
        api_call(
            &url,
            Method::POST,
            &format!("{files}?action=add"),
            Some(add)
        )
        .await
        .0,
        201
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_added_in_the_documented_form_or_in_vsphere_9s() {
    for vsphere9 in [false, true] {
        let (url, vc) = vsphere_api::start();
        vc.lock().unwrap().vsphere9 = vsphere9;
        let p = Pipeline::new(&api_site(&url));
        let store = LocalStore::new(p.path().join("dc7"));
        p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
        let out = run_api(&p, &["--version", "1.0.0"]);
        assert_exit(&out, 0);
        let s = vc.lock().unwrap();
        let adds: Vec<&str> = s
            .log
            .iter()
            .filter(|l| l.starts_with("POST ") && l.contains("/file") && !l.contains("validate"))
            .map(|l| l.rsplit('/').next().unwrap())
            .collect();
        // The OVF descriptor and the disk; on vSphere 9 the plain form is tried once, and the
        // form that works is kept.
        let want: &[&str] = if vsphere9 {
            &["file", "file?action=add", "file?action=add"]
        } else {
            &["file", "file"]
        };
        assert_eq!(adds, want, "vSphere 9: {vsphere9}");
        assert_eq!(s.items_of(vsphere_api::LIBRARY_ID)[0].1.files.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_that_does_not_match_its_checksum_is_refused_by_vcenter() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    let mut bad = ova(p.path(), "one");
    let (at, size) = member_range(&bad, ".vmdk");
    bad[at + size / 2] ^= 0xff;
    p.publish(&store, "1.0.0", &bad).await;
    let out = run_api(&p, &["--version", "1.0.0"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("File global-debian-12-disk1.vmdk was not received correctly (ERROR): checksum mismatch: file=global-debian-12-disk1.vmdk, alg=SHA256"),
        "{err}"
    );
    let s = vc.lock().unwrap();
    assert!(s.items.is_empty(), "the new item is removed");
    assert_eq!(
        s.updates
            .values()
            .map(|u| u.state.as_str())
            .collect::<Vec<_>>(),
        ["ERROR"],
        "the session is failed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_whose_fail_is_refused_is_cancelled() {
    let (url, vc) = vsphere_api::start();
    let p = Pipeline::new(&api_site(&url));
    let store = LocalStore::new(p.path().join("dc7"));
    p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
    {
        let mut s = vc.lock().unwrap();
        s.invalid = Some(("global-debian-12-disk1.vmdk".into(), "Not a VMDK".into()));
        s.refuse_fail = true;
    }
    let out = run_api(&p, &["--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("invalid global-debian-12-disk1.vmdk: Not a VMDK"));
    let s = vc.lock().unwrap();
    assert_eq!(
        s.updates
            .values()
            .map(|u| u.state.as_str())
            .collect::<Vec<_>>(),
        ["CANCELED"],
        "no ACTIVE session is left behind"
    );
    assert!(s.items.is_empty());
}

/// A site whose store is the Artifactory double behind a TLS front (`store_url`), trusted by
/// its certificate (`ca_bundle`), that the `/api` double imports from.
fn https_pull_site(vc_url: &str, store_url: &str) -> String {
    api_site(vc_url).replace(
        "url = \"file:dc7\"",
        &format!("url = \"{store_url}\"\ntoken_env = \"ART_TOKEN\"\nca_bundle = \"store.pem\""),
    )
}

fn run_pull(p: &Pipeline, version: &str) -> Output {
    tokio::task::block_in_place(|| {
        command(
            BIN,
            p.path(),
            &[
                "--image",
                "global/debian-12",
                "--version",
                version,
                "--transfer",
                "pull",
            ],
        )
        .env("API_USER", vsphere_api::USER)
        .env("API_PASS", vsphere_api::PASSWORD)
        .env("ART_TOKEN", artifactory::TOKEN)
        .output()
        .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_over_https_is_trusted_by_the_stores_thumbprint() {
    let (vc_url, vc) = vsphere_api::start();
    let (art_url, art) = artifactory::start("os-images");
    art.lock().unwrap().anonymous_read = true;
    let front = tls_proxy::start(&art_url);
    let p = Pipeline::new(&https_pull_site(
        &vc_url,
        &format!("artifactory+{}/artifactory/os-images", front.url),
    ));
    std::fs::write(p.path().join("store.pem"), &front.cert_pem).unwrap();
    // Published through the plain port; the site reads (and vCenter fetches) through https.
    let site_store = artifactory_store(p.path(), &format!("artifactory+{art_url}/os-images"));
    let bytes = ova(p.path(), "one");
    p.publish(site_store.as_ref(), "1.0.0", &bytes).await;

    let out = run_pull(&p, "1.0.0");
    assert_exit(&out, 0);
    {
        let s = vc.lock().unwrap();
        let items = s.items_of(vsphere_api::LIBRARY_ID);
        assert_eq!(
            items[0].1.files.get("global-debian-12.ova"),
            Some(&bytes),
            "vCenter fetched the OVA over https, trusting the store's certificate by its thumbprint"
        );
    }

    // vCenter's side: exactly that certificate is trusted, by that thumbprint; none without.
    let ova_url = format!(
        "{}/artifactory/os-images/global/debian-12/1.0.0/global-debian-12.ova",
        front.url
    );
    let wrong = front
        .sha1_thumbprint
        .replace(|c: char| c.is_ascii_hexdigit(), "0");
    for (thumbprint, why) in [
        (
            Some(wrong.as_str()),
            "certificate error: the server's certificate has SHA-1 thumbprint",
        ),
        (None, "certificate"),
    ] {
        let reason = pull_reason(&vc_url, &ova_url, thumbprint).await;
        assert!(
            reason.starts_with(&format!(
                "Error transferring file global-debian-12.ova from {ova_url}. Reason: "
            )) && reason.contains(why),
            "{reason}"
        );
    }
}

/// Adds `url` as a PULL file to a new item's update session on the `/api` double and waits for
/// the transfer to fail; returns the session's error message (after checking that the file says
/// the same).
async fn pull_reason(vc_url: &str, url: &str, thumbprint: Option<&str>) -> String {
    use reqwest::Method;
    use serde_json::json;
    let name = format!("pull-{}", thumbprint.is_some());
    let spec = json!({ "library_id": vsphere_api::LIBRARY_ID, "name": name, "type": "ovf" });
    let (_, item) = api_call(
        vc_url,
        Method::POST,
        "/api/content/library/item",
        Some(spec),
    )
    .await;
    let sessions = "/api/content/library/item/update-session";
    let (_, u) = api_call(
        vc_url,
        Method::POST,
        sessions,
        Some(json!({ "library_item_id": item })),
    )
    .await;
    let u = u.as_str().unwrap().to_string();
    let mut endpoint = json!({ "uri": url });
    if let Some(t) = thumbprint {
        endpoint["ssl_certificate_thumbprint"] = json!(t);
    }
    let add = json!({ "name": "global-debian-12.ova", "source_type": "PULL", "source_endpoint": endpoint });
    let (status, _) = api_call(
        vc_url,
        Method::POST,
        &format!("{sessions}/{u}/file"),
        Some(add),
    )
    .await;
    assert_eq!(status, 201);
    for _ in 0..100 {
        let (_, session) = api_call(vc_url, Method::GET, &format!("{sessions}/{u}"), None).await;
        if session["state"] == "ERROR" {
            let (_, files) =
                api_call(vc_url, Method::GET, &format!("{sessions}/{u}/file"), None).await;
            assert_eq!(files[0]["status"], "ERROR");
            let message = session["error_message"]["default_message"]
                .as_str()
                .unwrap();
            assert_eq!(files[0]["error_message"]["default_message"], message);
            return message.to_string();
        }
        assert_eq!(session["state"], "ACTIVE");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the PULL never failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pull_on_the_api_fails_with_vcenters_reason_and_leaves_nothing() {
    let (vc_url, vc) = vsphere_api::start();
    let (url, art) = artifactory::start("os-images");
    art.lock().unwrap().anonymous_read = true;
    let store_url = format!("artifactory+{url}/os-images");
    let p = Pipeline::new(&api_site(&vc_url).replace(
        "url = \"file:dc7\"",
        &format!("url = \"{store_url}\"\ntoken_env = \"ART_TOKEN\""),
    ));
    let site_store = artifactory_store(p.path(), &store_url);
    p.publish(site_store.as_ref(), "1.0.0", &ova(p.path(), "one"))
        .await;
    // The store breaks the connection when vCenter downloads the whole OVA.
    art.lock().unwrap().reset_full_gets = true;
    let out = run_pull(&p, "1.0.0");
    assert_exit(&out, 2);
    let s = vc.lock().unwrap();
    let up = s.updates.values().next().unwrap();
    assert_eq!(up.state, "ERROR", "vCenter ended the session");
    let reason = up.error.clone().unwrap();
    assert!(
        reason.starts_with("Error transferring file global-debian-12.ova from http://"),
        "{reason}"
    );
    assert!(
        stderr(&out).contains(&format!(
            "vCenter could not fetch `global-debian-12.ova`: {reason}"
        )),
        "{}",
        stderr(&out)
    );
    assert!(s.items.is_empty(), "the item this run created is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribed_libraries_on_the_api_are_waited_for_until_they_show_the_version() {
    let (url, vc) = vsphere_api::start();
    let east = vc.lock().unwrap().add_subscribed("images-east");
    let p = Pipeline::new(&api_site(&url).replace(
        "library = \"images\"\n",
        "library = \"images\"\nsubscribed = [\"images-east\"]\n",
    ));
    let store = LocalStore::new(p.path().join("dc7"));
    let sha = |v: &str| {
        Record::read(Path::new(&store.record_location(&id(v))))
            .unwrap()
            .sha256
            .to_string()
    };
    for (version, marker) in [("1.0.0", "one"), ("1.1.0", "two")] {
        p.publish(&store, version, &ova(p.path(), marker)).await;
        // The sync takes a while; the item of the earlier version is there meanwhile.
        vc.lock().unwrap().sync_delay = std::time::Duration::from_millis(1500);
        let out = run_api(&p, &["--version", version, "--json"]);
        assert_exit(&out, 0);
        assert_eq!(
            json(&out)["sites"][0]["synced"],
            serde_json::json!([{ "library": "images-east", "has_item": true }])
        );
        let s = vc.lock().unwrap();
        assert!(!s.libraries[&east].syncing, "the step waited for the sync");
        let copies = s.items_of(&east);
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].1.name, "global-debian-12");
        assert!(
            copies[0].1.description.contains(&sha(version)),
            "{version}: the subscribed library has the version just imported"
        );
    }
}

/// A vCenter site with a `library.deploy` placement on the simulator's resource pool.
fn deploy_site(name: &str, store: &str, vc: &vcsim::Vcsim) -> String {
    format!(
        "{}deploy = {{ resource_pool = \"{}\" }}\n",
        vcenter_site(name, store, vc),
        vc.resource_pool
    )
}

/// `ova`'s package with its descriptor changed by `edit`, the manifest made to match again.
fn ova_with_descriptor(dir: &Path, marker: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
    use sha2::Digest as _;
    let work = dir.join(format!("edited-{marker}"));
    std::fs::create_dir_all(&work).unwrap();
    let mut names = Vec::new();
    let mut bytes_of = std::collections::HashMap::new();
    for (name, bytes) in members(&ova(dir, marker)) {
        let bytes = if name.ends_with(".ovf") {
            edit(std::str::from_utf8(&bytes).unwrap()).into_bytes()
        } else {
            bytes
        };
        names.push(name.clone());
        bytes_of.insert(name, bytes);
    }
    let manifest: String = names
        .iter()
        .filter(|n| !n.ends_with(".mf"))
        .map(|n| format!("SHA256({n})= {:x}\n", sha2::Sha256::digest(&bytes_of[n])))
        .collect();
    for n in &names {
        let bytes = if n.ends_with(".mf") {
            manifest.clone().into_bytes()
        } else {
            bytes_of[n].clone()
        };
        std::fs::write(work.join(n), bytes).unwrap();
    }
    let out = work.join("package.ova");
    assert!(
        Command::new("tar")
            .args(["--format=ustar", "-C"])
            .arg(&work)
            .arg("-cf")
            .arg(&out)
            .args(&names)
            .status()
            .unwrap()
            .success()
    );
    std::fs::read(out).unwrap()
}

/// The VMs the deploy check made (by their name), on the simulator.
async fn check_vms(vc: &vcsim::Vcsim) -> Vec<(String, String)> {
    vc.vms()
        .await
        .into_iter()
        .filter(|(n, _)| n.starts_with("imagepipe-deploy-check-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_check_runs_a_vm_from_the_item_and_deletes_it() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    vc.create_library("images").await;
    let before = vc.vms().await;
    let p = Pipeline::new(&deploy_site("dc1", "file:dc1", &vc));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    let record = p.publish(&dc1, "1.0.0", &ova(p.path(), "one")).await;

    let out =
        tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--deploy-check", "--json"]));
    assert_exit(&out, 0);
    let check = &json(&out)["sites"][0]["deploy_check"];
    assert_eq!(check["result"], "running", "{check}");
    let vm_name = check["vm_name"].as_str().unwrap();
    assert!(vm_name.starts_with("imagepipe-deploy-check-"), "{vm_name}");
    assert!(
        stderr(&out).contains("deploy check: running"),
        "{}",
        stderr(&out)
    );
    // The record's import section says so; the VM is gone, and nothing else changed.
    let site = &read_json(&record)["import"]["sites"][0];
    assert_eq!(site["deploy_check"]["result"], "running");
    assert_eq!(site["deploy_check"]["vm_name"], vm_name);
    assert_eq!(vc.vms().await, before);

    // Without the flag, no check runs and the record's entry has none.
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--json"]));
    assert_exit(&out, 0);
    assert!(json(&out)["sites"][0]["deploy_check"].is_null());
    assert!(
        read_json(&record)["import"]["sites"][0]
            .get("deploy_check")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_descriptor_vcenter_cannot_deploy_fails_the_check_naming_the_site_and_reason() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    vc.create_library("images").await;
    let before = vc.vms().await;
    let p = Pipeline::new(&deploy_site("dc1", "file:dc1", &vc));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    // A device of a resource type vCenter has no virtual device for (DMTF CIM type 99): the
    // package imports, but vCenter's OVF import spec refuses it.
    let refused = ova_with_descriptor(p.path(), "refused", |ovf| {
        ovf.replace(
            "</VirtualHardwareSection>",
            "  <Item><rasd:ElementName>Mystery device</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>99</rasd:ResourceType></Item>\n    </VirtualHardwareSection>",
        )
    });
    let record = p.publish(&dc1, "1.0.0", &refused).await;

    let out =
        tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--deploy-check", "--json"]));
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("site dc1: vCenter cannot deploy global/debian-12@1.0.0")
            || err.contains("site dc1: vCenter cannot deploy"),
        "{err}"
    );
    assert!(err.contains("unsupported resource type: 99"), "{err}");
    let site = &read_json(&record)["import"]["sites"][0];
    assert_eq!(site["deploy_check"]["result"], "refused");
    assert!(
        site["deploy_check"]["reason"]
            .as_str()
            .unwrap()
            .contains("unsupported resource type: 99")
    );
    assert_eq!(vc.vms().await, before, "nothing is left behind");

    // A site without a placement is refused before anything is imported.
    let p = Pipeline::new(&vcenter_site("dc1", "file:dc1", &vc));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    p.publish(&dc1, "1.0.0", &ova(p.path(), "one")).await;
    let out = tokio::task::block_in_place(|| p.run(&["--version", "1.0.0", "--deploy-check"]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("resource_pool"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_deploy_check_deletes_its_vm() {
    // Every answer is slow, so the step is still working with its VM when the signal comes.
    let vc = tokio::task::block_in_place(|| vcsim::Vcsim::start_with(&["-delay", "300ms"]));
    vc.create_library("images").await;
    let p = Pipeline::new(&deploy_site("dc1", "file:dc1", &vc));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    p.publish(&dc1, "1.0.0", &ova(p.path(), "one")).await;

    let mut child = command(
        BIN,
        p.path(),
        &[
            "--image",
            "global/debian-12",
            "--version",
            "1.0.0",
            "--deploy-check",
            "--vsphere-api",
            "rest",
        ],
    )
    .env("VC_USER", vcsim::USER)
    .env("VC_PASS", vcsim::PASSWORD)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait (without a time limit on the step) until the check's VM exists, then interrupt.
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = check_vms(&vc).await;
        if !seen.is_empty() || child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!seen.is_empty(), "the deploy check's VM never appeared");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| child.wait_with_output().unwrap());
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(
        check_vms(&vc).await,
        [],
        "the VM was deleted before the step exited"
    );
}

/// Whether the simulator at `url` has an item `name` in `library`, asked with a client of its own.
async fn library_has(url: &str, library: &str, name: &str) -> bool {
    let client = reqwest::Client::new();
    let Ok(resp) = client
        .post(format!("{url}/rest/com/vmware/cis/session"))
        .basic_auth(vcsim::USER, Some(vcsim::PASSWORD))
        .send()
        .await
    else {
        return false;
    };
    let sid: Value = resp.json().await.unwrap();
    let found: Value = client
        .post(format!(
            "{url}/rest/com/vmware/content/library/item?~action=find"
        ))
        .header("vmware-api-session-id", sid["value"].as_str().unwrap())
        .json(&serde_json::json!({ "spec": { "library_id": library, "name": name } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    found["value"].as_array().is_some_and(|a| !a.is_empty())
}

/// A vCenter that holds its first login until `release` says so, then refuses it (401): a site
/// that is slow, then dead.
async fn held_vcenter(
    release: impl std::future::Future<Output = &'static str> + Send + 'static,
) -> (String, tokio::task::JoinHandle<&'static str>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = conn.read(&mut buf).await.unwrap();
        let why = release.await;
        // The step may have given up on this connection by now; what counts is `why`.
        let _ = conn
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        why
    });
    (url, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn sites_are_imported_concurrently_and_reported_in_order() {
    let vc = tokio::task::block_in_place(vcsim::Vcsim::start);
    let library = vc.create_library("images").await;
    let vc_url = vc.url.clone();
    // The first site's vCenter answers only once the second site holds the item: imported one
    // after the other, the second would never start and the first would wait for ever (it gives
    // up after a minute, and says so).
    let (held_url, held) = held_vcenter(async move {
        for _ in 0..600 {
            if library_has(&vc_url, &library, "global-debian-12").await {
                return "the second site imported";
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        "gave up waiting"
    })
    .await;
    let slow = format!(
        "[[site]]\nname = \"a-slow\"\n[site.store]\nurl = \"file:dc1\"\n[site.library]\nurl = \"{held_url}\"\nlibrary = \"images\"\nusername_env = \"VC_USER\"\npassword_env = \"VC_PASS\"\n"
    );
    let p = Pipeline::new(&format!(
        "{slow}\n{}",
        vcenter_site("b-fast", "file:dc1", &vc)
    ));
    let dc1 = LocalStore::new(p.path().join("dc1"));
    let record = p.publish(&dc1, "1.0.0", &ova(p.path(), "one")).await;

    let out = tokio::task::block_in_place(|| {
        p.run(&[
            "--version",
            "1.0.0",
            "--vsphere-api",
            "rest",
            "--concurrency",
            "2",
            "--json",
        ])
    });
    assert_eq!(held.await.unwrap(), "the second site imported");
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("site a-slow: "), "{err}");
    assert!(err.contains("not imported at: a-slow"), "{err}");
    assert_eq!(json(&out)["sites"][0]["site"], "b-fast");
    assert_eq!(json(&out)["failed"], serde_json::json!(["a-slow"]));
    let sites = &read_json(&record)["import"]["sites"];
    assert_eq!(sites.as_array().unwrap().len(), 1);
    assert_eq!(sites[0]["site"], "b-fast");
}

/// The deploy check on a vCenter of the `/api` generation (7.0U2 and later): deploy, power on,
/// wait for it to run, power off and delete; and a descriptor it refuses fails the step naming
/// the site and vCenter's reason. Nothing is left behind either way.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_generation_runs_the_deploy_check() {
    let (url, vc) = vsphere_api::start();
    let site = format!(
        "{}deploy = {{ resource_pool = \"resgroup-8\" }}\n",
        api_site(&url)
    );
    let p = Pipeline::new(&site);
    let store = LocalStore::new(p.path().join("dc7"));
    let record = p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
    let out = run_api(&p, &["--version", "1.0.0", "--deploy-check", "--json"]);
    assert_exit(&out, 0);
    let check = &json(&out)["sites"][0]["deploy_check"];
    assert_eq!(check["result"], "running", "{check}");
    assert_eq!(
        read_json(&record)["import"]["sites"][0]["deploy_check"]["result"],
        "running"
    );
    {
        let s = vc.lock().unwrap();
        assert!(s.vms.is_empty(), "the check's VM is gone: {:?}", s.vms);
        for call in [
            "/api/vcenter/ovf/library-item/",
            "/power?action=start",
            "/power?action=stop",
        ] {
            assert!(
                s.log.iter().any(|l| l.contains(call)),
                "{call}: {:#?}",
                s.log
            );
        }
    }

    let refused = ova_with_descriptor(p.path(), "refused", |ovf| {
        ovf.replace(
            "</VirtualHardwareSection>",
            "  <Item><rasd:ElementName>Mystery device</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>99</rasd:ResourceType></Item>\n    </VirtualHardwareSection>",
        )
    });
    let record = p.publish(&store, "1.1.0", &refused).await;
    let out = run_api(&p, &["--version", "1.1.0", "--deploy-check", "--json"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("site dc7: vCenter cannot deploy"), "{err}");
    assert!(
        err.contains("unsupported virtual hardware: resource type 99"),
        "{err}"
    );
    let site = &read_json(&record)["import"]["sites"][0];
    assert_eq!(site["deploy_check"]["result"], "refused");
    assert!(vc.lock().unwrap().vms.is_empty(), "nothing is left behind");
}

/// A deploy check whose VM cannot be deleted says so, naming the VM to delete by hand.
#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_check_vm_left_behind_is_named() {
    let (url, vc) = vsphere_api::start();
    vc.lock().unwrap().fail_vm_delete = true;
    let site = format!(
        "{}deploy = {{ resource_pool = \"resgroup-8\" }}\n",
        api_site(&url)
    );
    let p = Pipeline::new(&site);
    let store = LocalStore::new(p.path().join("dc7"));
    let record = p.publish(&store, "1.0.0", &ova(p.path(), "one")).await;
    let out = run_api(&p, &["--version", "1.0.0", "--deploy-check", "--json"]);
    let left: Vec<String> = vc
        .lock()
        .unwrap()
        .vms
        .values()
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the deploy check's VM {} (", left[0]))
            && err.contains("delete it by hand"),
        "{err}"
    );
    let check = &read_json(&record)["import"]["sites"][0]["deploy_check"];
    assert_eq!(check["result"], "error", "{check}");
    assert_eq!(check["vm_name"], left[0].as_str());
    assert_ne!(out.status.code(), Some(0));
}
