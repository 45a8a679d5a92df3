//! A cascade run the way CD runs it: CI tags a vendor change from a shallow clone; then for each
//! tag, a fresh checkout of that tag (as a lightweight ref, as `actions/checkout` fetches it),
//! where real Packer builds it, imagepipe-scan scans it, imagepipe-publish publishes it, and
//! imagepipe-tag continues the cascade. Three levels, each pinned to its new parent.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::repo::git;
use imagepipe_testkit::step;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagepipe::record::Record;
use step::{assert_exit, stderr};

const TAG: &str = env!("CARGO_BIN_EXE_imagepipe-tag");

fn bin(name: &str) -> PathBuf {
    step::sibling_bin(TAG, name)
}

const PRODUCT: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
variable "imagepipe_version" {
  type = string
}
variable "imagepipe_parent_artifact" {
  type = string
}
variable "imagepipe_parent_version" {
  type = string
}
locals {
  disk = "${var.imagepipe_output_dir}/product-app.raw"
}
source "file" "disk" {
  source = var.imagepipe_parent_artifact
  target = local.disk
}
build {
  sources = ["source.file.disk"]
  provisioner "shell-local" {
    inline = [
      "export PATH=\"$PATH:/usr/sbin:/sbin\"",
      "printf 'PRODUCT_VERSION=%s\\nBUILT_ON_GLOBAL=%s\\n' '${var.imagepipe_version}' '${var.imagepipe_parent_version}' > '${var.imagepipe_output_dir}/.release'",
      "debugfs -w -R 'write ${var.imagepipe_output_dir}/.release /etc/product-release' '${local.disk}'",
      "rm '${var.imagepipe_output_dir}/.release'",
    ]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#;

struct Pipeline {
    _scratch: tempfile::TempDir,
    dev: PathBuf,
    remote: PathBuf,
    url: String,
    store: PathBuf,
    osv: PathBuf,
    path: String,
}

impl Pipeline {
    /// The example's two layers plus a product layer, in a repository pushed to a bare remote,
    /// with a store outside every checkout.
    fn new() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let dev = scratch.path().join("dev");
        let remote = scratch.path().join("remote.git");
        let store = scratch.path().join("store");
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/synthetic-pipeline");
        let copy = Command::new("cp")
            .arg("-a")
            .arg(&example)
            .arg(&dev)
            .status()
            .unwrap();
        assert!(copy.success());
        let _ = std::fs::remove_dir_all(dev.join(".imagepipe"));
        // The first release is 1.0.0 for every image, the vendor's too.
        let mut config = std::fs::read_to_string(dev.join("imagepipe.toml"))
            .unwrap()
            .replace("parent_version = \"^12\"", "parent_version = \"^1\"");
        config = format!(
            "[tag]\nfirst_version = \"1.0.0\"\n\n[store]\nurl = \"file:{}\"\n\n{config}\n\
             [[image]]\nname = \"product/app\"\ntemplate = \"images/product/app\"\n\
             parent = \"global/debian-12\"\nparent_version = \"^1\"\n\n\
             [image.scan]\nfail_on = \"high\"\n",
            store.display()
        );
        std::fs::write(dev.join("imagepipe.toml"), config).unwrap();
        std::fs::create_dir_all(dev.join("images/product/app")).unwrap();
        std::fs::write(dev.join("images/product/app/product.pkr.hcl"), PRODUCT).unwrap();
        std::fs::write(dev.join(".gitignore"), ".imagepipe/\n").unwrap();
        git(&dev, &["init", "-q", "-b", "main"]);
        git(&dev, &["add", "-A"]);
        git(&dev, &["commit", "-qm", "feat: three layers"]);
        git(
            scratch.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(
            &remote,
            &["config", "uploadpack.allowAnySHA1InWant", "true"],
        );
        let url = format!("file://{}", remote.display());
        git(&dev, &["remote", "add", "origin", &url]);
        git(&dev, &["push", "-q", "origin", "main"]);
        let osv = dev.join("osv");
        let path = format!(
            "{}:/usr/sbin:/sbin",
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            _scratch: scratch,
            dev,
            remote,
            url,
            store,
            osv,
            path,
        }
    }

    fn step(&self, binary: &Path, dir: &Path, args: &[&str]) -> Output {
        step::command(binary.to_str().unwrap(), dir, args)
            .env("PATH", &self.path)
            .env("IMAGEPIPE_OSV_DB", &self.osv)
            .env("IMAGEPIPE_MAX_DB_AGE", "100years")
            .output()
            .unwrap()
    }

    /// CI after a merge: a shallow, tag-less clone of main tags what changed and pushes it.
    fn ci(&self, scratch: &Path) -> Vec<String> {
        let ci = scratch.join("ci");
        git(
            scratch,
            &[
                "clone",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                &self.url,
                ci.to_str().unwrap(),
            ],
        );
        let out = self.step(&bin("imagepipe-tag"), &ci, &["--no-review-gate", "--push"]);
        assert_exit(&out, 0);
        std::fs::remove_dir_all(&ci).unwrap();
        created(&out)
    }

    /// CD on one tag: a fresh checkout of it, then build, scan, publish and the cascade.
    /// Returns the tags the cascade created.
    fn cd(&self, scratch: &Path, tag: &str) -> Vec<String> {
        let commit = git(&self.remote, &["rev-parse", &format!("{tag}^{{commit}}")]);
        let cd = scratch.join(format!("cd-{}", tag.replace('/', "-")));
        std::fs::create_dir_all(&cd).unwrap();
        git(&cd, &["init", "-q"]);
        git(&cd, &["remote", "add", "origin", &self.url]);
        git(
            &cd,
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--depth=1",
                "origin",
                &format!("+{commit}:refs/tags/{tag}"),
            ],
        );
        git(&cd, &["checkout", "-q", tag]);
        for step in ["imagepipe-build", "imagepipe-scan", "imagepipe-publish"] {
            let out = self.step(&bin(step), &cd, &["--tag", tag]);
            assert_exit(&out, 0);
        }
        let (image, version) = tag.rsplit_once("/v").unwrap();
        let out = self.step(
            &bin("imagepipe-tag"),
            &cd,
            &[
                "--no-review-gate",
                "--push",
                "--cascade-from",
                &format!("{image}@{version}"),
            ],
        );
        // A leaf has no descendants to cascade to.
        if out.status.code() == Some(2) && stderr(&out).contains("has no descendants") {
            return Vec::new();
        }
        assert_exit(&out, 0);
        created(&out)
    }

    fn record(&self, image: &str, version: &str) -> Record {
        Record::read(
            &self
                .store
                .join(image)
                .join(version)
                .join("imagepipe-record.json"),
        )
        .unwrap()
        .record
    }
}

fn created(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("created "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_three_level_cascade_as_cd_runs_it() {
    let p = Pipeline::new();
    let scratch = tempfile::tempdir().unwrap();

    // CD follows a tag and every tag its cascade creates, one published level at a time.
    let follow = |tag: &str| {
        let mut next = vec![tag.to_string()];
        let mut order = Vec::new();
        while let Some(tag) = next.pop() {
            order.push(tag.clone());
            next.extend(p.cd(scratch.path(), &tag));
        }
        order
    };

    // The first release: CI tags only the vendor image, whose children are tagged by the
    // cascade once it is published, then theirs.
    assert_eq!(p.ci(scratch.path()), ["vendor/debian-12/v1.0.0"]);
    assert_eq!(
        follow("vendor/debian-12/v1.0.0"),
        [
            "vendor/debian-12/v1.0.0",
            "global/debian-12/v1.0.0",
            "product/app/v1.0.0"
        ]
    );

    // A vendor fix with a product feature in the same merge: CI tags only the vendor image;
    // the product's own change reaches it through the cascade, as a minor release.
    std::fs::write(
        p.dev.join("images/vendor/debian-12/rootfs/etc/motd"),
        "patched\n",
    )
    .unwrap();
    git(&p.dev, &["add", "-A"]);
    git(&p.dev, &["commit", "-qm", "fix(vendor): motd"]);
    std::fs::write(p.dev.join("images/product/app/README"), "the app\n").unwrap();
    git(&p.dev, &["add", "-A"]);
    git(&p.dev, &["commit", "-qm", "feat(product): readme"]);
    git(&p.dev, &["push", "-q", "origin", "main"]);
    assert_eq!(p.ci(scratch.path()), ["vendor/debian-12/v1.0.1"]);
    assert_eq!(
        follow("vendor/debian-12/v1.0.1"),
        [
            "vendor/debian-12/v1.0.1",
            "global/debian-12/v1.0.1",
            "product/app/v1.1.0"
        ]
    );

    // Every level is built on, and pins, the parent version just published.
    let vendor =
        Record::read(&p.store.join("vendor/debian-12/1.0.1/imagepipe-record.json")).unwrap();
    let global = p.record("global/debian-12", "1.0.1");
    let gp = global.parent.as_ref().unwrap();
    assert_eq!(
        (gp.version.to_string(), gp.record_sha256),
        ("1.0.1".into(), vendor.sha256)
    );
    let global_sha = Record::read(&p.store.join("global/debian-12/1.0.1/imagepipe-record.json"))
        .unwrap()
        .sha256;
    let product = p.record("product/app", "1.1.0");
    let pp = product.parent.as_ref().unwrap();
    assert_eq!(
        (pp.version.to_string(), pp.record_sha256),
        ("1.0.1".into(), global_sha)
    );
    for (tag, pin) in [
        ("global/debian-12/v1.0.1", "vendor/debian-12@1.0.1"),
        ("product/app/v1.1.0", "global/debian-12@1.0.1"),
    ] {
        assert_eq!(git(&p.remote, &["cat-file", "-t", tag]), "tag");
        let message = git(
            &p.remote,
            &[
                "for-each-ref",
                "--format=%(contents)",
                &format!("refs/tags/{tag}"),
            ],
        );
        assert!(
            message.contains(&format!("\nparent: {pin}\n")),
            "{tag}: {message}"
        );
    }
    assert_eq!(git(&p.remote, &["tag", "-l"]).lines().count(), 6);
}
