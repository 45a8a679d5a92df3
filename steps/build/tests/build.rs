//! `imagepipe-build` against real Packer (Debian's 1.6.6: `file` and `null` builders,
//! `shell-local` provisioners, the `manifest` post-processor), in throwaway repositories.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imagepipe::hash::Sha256Hex;
use imagepipe::image::ImageRef;
use imagepipe::record::{ArtifactKind, Format, Record};
use imagepipe::store::{LocalStore, Store};

use imagepipe_testkit::repo::git;
use imagepipe_testkit::{github, step};

use step::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-build");

/// A pipeline repository with the build step's commands.
struct Repo(imagepipe_testkit::repo::Repo);

impl std::ops::Deref for Repo {
    type Target = imagepipe_testkit::repo::Repo;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Repo {
    fn new(config: &str) -> Self {
        Self(imagepipe_testkit::repo::Repo::new(config))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        step::command(BIN, self.path(), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn store(&self) -> LocalStore {
        LocalStore::new(self.path().join(".imagepipe/store"))
    }

    fn output_dir(&self, image: &str, version: &str) -> PathBuf {
        self.path()
            .join(".imagepipe/build")
            .join(image)
            .join(version)
    }

    fn record(&self, image: &str, version: &str) -> PathBuf {
        self.output_dir(image, version)
            .join("imagepipe-record.json")
    }

    /// Puts a built version into the local store, artifacts first and the record last, as
    /// publishing does.
    fn publish(&self, image: &str, version: &str) -> Sha256Hex {
        let rt = tokio_runtime();
        let store = self.store();
        let record_path = self.record(image, version);
        let loaded = Record::read(&record_path).unwrap();
        let id: ImageRef = format!("{image}@{version}").parse().unwrap();
        rt.block_on(async {
            for a in &loaded.record.artifacts {
                if let ArtifactKind::File(f) = &a.kind {
                    let src = record_path.parent().unwrap().join(&f.path);
                    store
                        .put_artifact(&id, &src, f, &[], &|_| {})
                        .await
                        .unwrap();
                }
            }
            store
                .put_record(&id, &std::fs::read(&record_path).unwrap(), &[])
                .await
                .unwrap();
        });
        loaded.sha256
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Normalises what differs between runs, for snapshots.
fn filters(repo: &Repo) -> Vec<(String, String)> {
    vec![
        (
            regex_escape(&repo.path().display().to_string()),
            "[REPO]".into(),
        ),
        (r"/tmp/packer-shell\d+".into(), "[SHELL]".into()),
        (r"[0-9a-f]{64}".into(), "[SHA256]".into()),
        (r"[0-9a-f]{40}".into(), "[COMMIT]".into()),
        (r"\d+ (milli|micro|nano)seconds?".into(), "[T]".into()),
        (
            r"(after|in) \d+(\.\d+)?(ms|s|m)\b".into(),
            "$1 [DURATION]".into(),
        ),
        (
            r"(after|in) [0-9a-z ]+seconds?( [0-9a-z ]+)?".into(),
            "$1 [DURATION]".into(),
        ),
    ]
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn snapshot_settings(repo: &Repo) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (re, with) in filters(repo) {
        s.add_filter(&re, with);
    }
    s
}

const LAYERS: &str = r#"
[[image]]
name = "vendor/base"
template = "images/vendor"

[[image]]
name = "global/hardened"
template = "images/global/hardened.pkr.hcl"
parent = "vendor/base"
parent_version = "^1"
"#;

const VENDOR: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
variable "imagepipe_version" {
  type = string
}
source "file" "disk" {
  content = "vendor ${var.imagepipe_version}\n"
  target  = "${var.imagepipe_output_dir}/vendor.raw"
}
build {
  sources = ["source.file.disk"]
  provisioner "shell-local" {
    inline = ["echo 'layer,one' && echo patched >> ${var.imagepipe_output_dir}/vendor.raw"]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#;

const GLOBAL: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
variable "imagepipe_parent_artifact" {
  type = string
}
variable "imagepipe_parent_artifacts" {
  type = map(string)
}
variable "imagepipe_parent_version" {
  type = string
}
source "file" "disk" {
  source = var.imagepipe_parent_artifact
  target = "${var.imagepipe_output_dir}/hardened.raw"
}
build {
  sources = ["source.file.disk"]
  provisioner "shell-local" {
    inline = ["echo 'hardened on ${var.imagepipe_parent_version} from ${var.imagepipe_parent_artifacts["disk"]}' >> ${var.imagepipe_output_dir}/hardened.raw"]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#;

fn layered_repo() -> Repo {
    let repo = Repo::new(LAYERS);
    repo.write("images/vendor/vendor.pkr.hcl", VENDOR);
    repo.write("images/global/hardened.pkr.hcl", GLOBAL);
    repo
}

#[test]
fn two_layers_child_builds_on_the_parent_resolved_from_the_store() {
    let repo = layered_repo();
    for v in ["1.0.0", "1.1.0", "2.0.0"] {
        assert_exit(&repo.run(&["--image", "vendor/base", "--version", v]), 0);
    }
    let vendor_sha = repo.publish("vendor/base", "1.0.0");
    let newest_sha = repo.publish("vendor/base", "1.1.0");
    repo.publish("vendor/base", "2.0.0"); // outside `^1`
    assert_ne!(vendor_sha, newest_sha);

    let out = repo.run(&["--image", "global/hardened", "--version", "0.3.0"]);
    assert_exit(&out, 0);
    let child = Record::read(&repo.record("global/hardened", "0.3.0"))
        .unwrap()
        .record;
    let parent = child.parent.as_ref().unwrap();
    assert_eq!(
        (parent.name.as_str(), parent.version.to_string().as_str()),
        ("vendor/base", "1.1.0")
    );
    assert_eq!(
        parent.record_sha256, newest_sha,
        "the child pins the parent record it was built on"
    );

    // The child's disk is the parent's disk plus what its template added.
    let stored_parent = repo
        .store()
        .version_dir(&"vendor/base@1.1.0".parse().unwrap())
        .join("vendor.raw");
    let disk = std::fs::read_to_string(
        repo.output_dir("global/hardened", "0.3.0")
            .join("hardened.raw"),
    )
    .unwrap();
    assert_eq!(
        disk,
        format!(
            "vendor 1.1.0\npatched\nhardened on 1.1.0 from {}\n",
            stored_parent.display()
        )
    );
    let a = &child.artifacts[0];
    let f = a.file().unwrap();
    assert_eq!(
        (a.name.as_str(), a.build.as_str(), f.path.as_str(), f.format),
        ("disk", "file.disk", "hardened.raw", Format::Raw)
    );
    assert_eq!(
        (f.size, f.sha256),
        (disk.len() as u64, Sha256Hex::digest(disk.as_bytes()))
    );
    assert_eq!(child.build.packer_version, "1.6.6");
    assert!(!child.build.run_id.is_empty());
    assert_eq!(child.build.template, "images/global/hardened.pkr.hcl");

    // An exact pin wins over the newest match; the record file route works too.
    let out = repo.run(&[
        "--image",
        "global/hardened",
        "--version",
        "0.3.1",
        "--parent",
        "vendor/base@1.0.0",
    ]);
    assert_exit(&out, 0);
    let pinned = Record::read(&repo.record("global/hardened", "0.3.1"))
        .unwrap()
        .record;
    assert_eq!(pinned.parent.unwrap().record_sha256, vendor_sha);
    let rec = repo.record("vendor/base", "2.0.0");
    let out = repo.run(&[
        "--image",
        "global/hardened",
        "--version",
        "0.3.2",
        "--parent-record",
        rec.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("the parent vendor/base@2.0.0 does not satisfy global/hardened's `parent_version = \"^1\"`"), "{}", stderr(&out));
}

#[test]
fn parent_problems_stop_before_packer_starts() {
    let repo = layered_repo();
    let out = repo.run(&["--image", "global/hardened", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no published version of parent `vendor/base` satisfies `^1`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("(published: none)"));
    assert!(
        !repo.output_dir("global/hardened", "1.0.0").exists(),
        "Packer must not have started"
    );

    let out = repo.run(&[
        "--image",
        "global/hardened",
        "--version",
        "1.0.0",
        "--parent",
        "vendor/base@1.0.0",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("vendor/base@1.0.0 is not in store file:"),
        "{}",
        stderr(&out)
    );

    let out = repo.run(&[
        "--image",
        "global/hardened",
        "--version",
        "1.0.0",
        "--parent",
        "other/x@1.0.0",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("names a different image than global/hardened's parent `vendor/base`")
    );

    let out = repo.run(&[
        "--image",
        "vendor/base",
        "--version",
        "1.0.0",
        "--parent",
        "x/y@1.0.0",
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("vendor/base has no parent in"));

    // A parent whose stored bytes were changed after publishing is refused.
    assert_exit(
        &repo.run(&["--image", "vendor/base", "--version", "1.0.0"]),
        0,
    );
    repo.publish("vendor/base", "1.0.0");
    let stored = repo
        .store()
        .version_dir(&"vendor/base@1.0.0".parse().unwrap())
        .join("vendor.raw");
    std::fs::write(&stored, "tampered").unwrap();
    let out = repo.run(&["--image", "global/hardened", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("does not have the expected content"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn multiple_builders_in_one_template() {
    let repo = Repo::new("[[image]]\nname = \"multi\"\ntemplate = \"t\"\n");
    repo.write(
        "t/multi.pkr.hcl",
        r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
source "file" "first" {
  content = "first disk"
  target  = "${var.imagepipe_output_dir}/disk-a"
}
source "file" "second" {
  content = "an ova"
  target  = "${var.imagepipe_output_dir}/disk-b.ova"
}
source "null" "check" {
  communicator = "none"
}
build {
  sources = ["source.file.first", "source.file.second", "source.null.check"]
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#,
    );
    let out = repo.run(&["--image", "multi", "--version", "1.0.0", "--json"]);
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    let record = Record::read(&repo.record("multi", "1.0.0")).unwrap();
    assert_eq!(json["record_sha256"], record.sha256.to_string());
    let mut arts: Vec<_> = record
        .record
        .artifacts
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                a.file().unwrap().format,
                a.file().unwrap().size,
            )
        })
        .collect();
    arts.sort_by(|a, b| a.0.cmp(&b.0));
    // Without magic bytes or an extension the format is `other`. The null build produced nothing
    // and is not recorded.
    assert_eq!(
        arts,
        [
            ("first".into(), Format::Other, 10),
            ("second".into(), Format::Ova, 6)
        ]
    );
    assert!(stderr(&out).contains("null.check produced no artifact"));
}

#[test]
fn packer_failure_exits_2_and_writes_no_record() {
    let repo = Repo::new("[[image]]\nname = \"broken\"\ntemplate = \"t\"\n");
    repo.write(
        "t/broken.pkr.hcl",
        r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
source "file" "disk" {
  content = "x"
  target  = "${var.imagepipe_output_dir}/disk.raw"
}
build {
  sources = ["source.file.disk"]
  provisioner "shell-local" {
    inline = ["echo 'step one, done'", "echo 'disk full, giving up' >&2", "exit 3"]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#,
    );
    // A record left by an earlier run must not survive a failed one.
    repo.write(".imagepipe/stale/imagepipe-record.json", "{}");
    let record = repo.path().join(".imagepipe/stale/imagepipe-record.json");
    let out = repo.run(&[
        "--image",
        "broken",
        "--version",
        "1.0.0",
        "--record",
        record.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("error: Packer build failed:"), "{err}");
    assert!(
        err.contains("disk full, giving up"),
        "Packer's own error is shown: {err}"
    );
    assert!(
        err.contains("Script exited with non-zero exit status: 3"),
        "{err}"
    );
    // Machine-readable escapes are undone in what the user sees.
    assert!(err.contains("step one, done"), "{err}");
    assert!(!err.contains("PACKER_COMMA"), "{err}");
    assert!(!record.exists());
    assert!(!repo.record("broken", "1.0.0").exists());
}

#[test]
fn validate_errors_are_shown() {
    let repo = Repo::new("[[image]]\nname = \"bad\"\ntemplate = \"t\"\n");
    repo.write("t/bad.pkr.hcl", "source \"file\" \"x\" {\n  content = \"x\"\n  target = \"y\"\n}\nbuild {\n  sources = [\"source.file.nonsense\"]\n}\n");
    let out = repo.run(&["--image", "bad", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("packer validate") && err.contains("failed"),
        "{err}"
    );
    assert!(
        err.contains("nonsense"),
        "Packer's message names the bad argument: {err}"
    );
}

#[test]
fn a_manifest_with_earlier_runs_yields_only_this_runs_artifacts() {
    let repo =
        Repo::new("[[image]]\nname = \"app\"\ntemplate = \"t\"\nmanifest = \"t/manifest.json\"\n");
    repo.write(
        "t/app.pkr.hcl",
        r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_version" {
  type = string
}
source "file" "disk" {
  content = "app ${var.imagepipe_version}"
  target  = "${var.imagepipe_output_dir}/app-${var.imagepipe_version}.raw"
}
build {
  sources = ["source.file.disk"]
  post-processor "manifest" {
    output = "${path.root}/manifest.json"
  }
}
"#,
    );
    for v in ["1.0.0", "1.0.1"] {
        assert_exit(&repo.run(&["--image", "app", "--version", v]), 0);
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join("t/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["builds"].as_array().unwrap().len(),
        2,
        "Packer appended"
    );
    let r = Record::read(&repo.record("app", "1.0.1")).unwrap().record;
    assert_eq!(r.artifacts.len(), 1);
    assert_eq!(r.artifacts[0].file().unwrap().path, "app-1.0.1.raw");
    assert_eq!(r.build.run_id, manifest["last_run_uuid"].as_str().unwrap());
}

#[test]
fn missing_manifest_says_what_to_add() {
    let repo = Repo::new("[[image]]\nname = \"nomf\"\ntemplate = \"t\"\n");
    repo.write(
        "t/t.pkr.hcl",
        "variable \"imagepipe_output_dir\" {\n  type = string\n}\nsource \"file\" \"d\" {\n  content = \"x\"\n  target  = \"${var.imagepipe_output_dir}/d.raw\"\n}\nbuild {\n  sources = [\"source.file.d\"]\n}\n",
    );
    let out = repo.run(&["--image", "nomf", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("post-processor \"manifest\" { output = var.imagepipe_manifest }"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.record("nomf", "1.0.0").exists());
}

/// A build whose provisioner sleeps; the sleep's argument is unique to it, so that the test
/// can find it among the machine's processes.
fn sleeper_repo(timeout: &str) -> (Repo, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let sleep = format!("sleep 600.{}{nanos}", std::process::id());
    let repo = Repo::new(&format!(
        "[[image]]\nname = \"slow\"\ntemplate = \"t\"\nbuild_timeout = \"{timeout}\"\n"
    ));
    repo.write(
        "t/slow.pkr.hcl",
        &r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
source "file" "disk" {
  content = "x"
  target  = "${var.imagepipe_output_dir}/disk.raw"
}
build {
  sources = ["source.file.disk"]
  provisioner "shell-local" {
    inline = ["echo provisioning-started", "SLEEP"]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#
        .replace("SLEEP", &sleep),
    );
    (repo, sleep)
}

#[test]
fn sigint_is_forwarded_to_packer_and_no_record_is_written() {
    let (repo, sleep) = sleeper_repo("1h");
    let mut child = repo
        .cmd(&["--image", "slow", "--version", "1.0.0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait for the provisioner to be running, then interrupt the step (not Packer).
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("provisioning-started") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let err = seen.join("\n");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("Cancelling build after receiving terminated"),
        "Packer got the signal: {err}"
    );
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(!repo.record("slow", "1.0.0").exists());
    // Packer left its provisioner's `sleep 600` running; the step stopped it with the group.
    assert!(
        !running(&sleep),
        "the provisioner's `{sleep}` is left running"
    );
}

/// Whether a process with exactly this command line runs.
fn running(args: &str) -> bool {
    let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == args)
}

#[test]
fn build_timeout_interrupts_packer() {
    let (repo, sleep) = sleeper_repo("1s");
    let out = repo.run(&["--image", "slow", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the build did not finish within 1s"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.record("slow", "1.0.0").exists());
    assert!(
        !running(&sleep),
        "the provisioner's `{sleep}` is left running"
    );
}

#[test]
fn output_dir_is_not_overwritten_without_force() {
    let repo = layered_repo();
    assert_exit(
        &repo.run(&["--image", "vendor/base", "--version", "1.0.0"]),
        0,
    );
    let out = repo.run(&["--image", "vendor/base", "--version", "1.0.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("is not empty; pass --force"),
        "{}",
        stderr(&out)
    );
    assert_exit(
        &repo.run(&["--image", "vendor/base", "--version", "1.0.0", "--force"]),
        0,
    );
}

#[test]
fn tag_selects_the_version_and_its_parent_pin() {
    let repo = layered_repo();
    repo.write(".gitignore", ".imagepipe/\n");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "layers"]);
    for v in ["1.0.0", "1.2.0"] {
        assert_exit(&repo.run(&["--image", "vendor/base", "--version", v]), 0);
        repo.publish("vendor/base", v);
    }
    git(
        repo.path(),
        &[
            "tag",
            "-a",
            "global/hardened/v0.4.1",
            "-m",
            "global/hardened v0.4.1\n\nRebuild on vendor/base 1.0.0.\n\nparent: vendor/base@1.0.0",
        ],
    );
    let out = repo.run(&["--tag", "global/hardened/v0.4.1"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out)
            .contains("the tag global/hardened/v0.4.1 pins the parent to vendor/base@1.0.0")
    );
    let r = Record::read(&repo.record("global/hardened", "0.4.1"))
        .unwrap()
        .record;
    assert_eq!(r.parent.unwrap().version.to_string(), "1.0.0");
    assert_eq!(r.source.tag.as_deref(), Some("global/hardened/v0.4.1"));
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(r.source.commit.as_deref(), Some(head.trim()));
    assert!(!r.source.dirty);

    // A malformed pin in the annotation stops the build rather than being ignored.
    git(
        repo.path(),
        &[
            "tag",
            "-a",
            "global/hardened/v0.4.2",
            "-m",
            "rebuild\n\nparent: vendor/base",
        ],
    );
    let out = repo.run(&["--tag", "global/hardened/v0.4.2"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "the annotation of tag global/hardened/v0.4.2 has a `parent:` line that is not valid"
        ),
        "{}",
        stderr(&out)
    );

    // Tags that are not image tags are refused with the format.
    let out = repo.run(&["--tag", "v1.2.3"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("tag `v1.2.3` does not match the tag format `{image}/v{version}`")
    );
    let out = repo.run(&["--tag", "nope/v1.2.3"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("image `nope` is not defined"));
}

#[test]
fn github_outputs_summary_and_annotations() {
    let repo = layered_repo();
    let gh = imagepipe_testkit::on_github!(
        repo.cmd(&["--image", "vendor/base", "--version", "1.0.0"]),
        repo.path(),
    );
    let out = &gh.out;
    assert_exit(out, 0);
    let outputs = &gh.outputs;
    let declared = step::check_action(
        concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"),
        BIN,
        &["IMAGEPIPE_GITHUB_TOKEN"],
    );
    assert_eq!(
        outputs.keys().cloned().collect::<Vec<_>>(),
        declared,
        "action.yml declares what the step writes"
    );
    assert_eq!(outputs["image"], "vendor/base");
    assert_eq!(outputs["version"], "1.0.0");
    let record = Record::read(Path::new(&outputs["record"])).unwrap();
    assert_eq!(outputs["record-sha256"], record.sha256.to_string());
    let arts: serde_json::Value = serde_json::from_str(&outputs["artifacts"]).unwrap();
    assert_eq!(arts[0]["name"], "disk");
    let summary = gh.summary.clone();
    assert!(
        summary.contains("### imagepipe-build: `vendor/base` 1.0.0"),
        "{summary}"
    );
    assert!(summary.contains("| `disk` | raw |"), "{summary}");
    // Packer's build log is folded into a group.
    assert!(stderr(out).contains("::group::packer build vendor/base 1.0.0"));

    let out = repo
        .cmd(&["--image", "nope"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("::error title=imagepipe-build::image `nope` is not defined"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_config_names_file_line_and_key() {
    let repo = Repo::new("[[image]]\nname = \"a\"\ntemplate = \"t\"\nparent = \"ghost\"\n");
    let out = repo.run(&["--image", "a"]);
    assert_exit(&out, 2);
    let want = format!(
        "error: {}:4: `image.a.parent`: parent `ghost` is not defined",
        repo.path().join("imagepipe.toml").display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));

    let repo = Repo::new("[[image]]\nname = \"a\"\ntemplat = \"t\"\n");
    let out = repo.run(&["--image", "a"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("imagepipe.toml:3:1: unknown field `templat`"),
        "{}",
        stderr(&out)
    );

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--image", "a"])
        .current_dir(empty.path())
        .env_remove("IMAGEPIPE_CONFIG")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no imagepipe.toml found in"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let repo = layered_repo();
    let out = repo.run(&["--version", "1.0.0"]);
    assert_exit(&out, 2);
    let out = repo.run(&["--image", "vendor/base", "--tag", "vendor/base/v1.0.0"]);
    assert_exit(&out, 2);
    let out = repo.run(&["--image", "vendor/base", "--version", "one"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("version `one` is not semver"));
    let out = repo.run(&["--image", "vendor/base", "--timeout", "soon"]);
    assert_exit(&out, 2);
}

#[test]
fn dry_run_prints_the_plan_and_runs_nothing() {
    let repo = layered_repo();
    assert_exit(
        &repo.run(&["--image", "vendor/base", "--version", "1.0.0"]),
        0,
    );
    repo.publish("vendor/base", "1.0.0");
    let out = repo.run(&[
        "--image",
        "global/hardened",
        "--version",
        "2.0.0",
        "--dry-run",
    ]);
    assert_exit(&out, 0);
    assert!(!repo.output_dir("global/hardened", "2.0.0").exists());
    snapshot_settings(&repo).bind(|| insta::assert_snapshot!("dry_run", stderr(&out)));
}

#[test]
fn human_output_of_a_build() {
    let repo = layered_repo();
    let out = repo.run(&["--image", "vendor/base", "--version", "1.0.0"]);
    assert_exit(&out, 0);
    snapshot_settings(&repo).bind(|| insta::assert_snapshot!("build_output", stderr(&out)));
}

#[test]
fn help() {
    let repo = Repo::new("");
    insta::assert_snapshot!("help", step::help(BIN, repo.path()));
}

#[test]
fn the_synthetic_example_pipeline_builds() {
    // The fast synthetic pipeline, on a copy: vendor disk from a root tree with mke2fs, then
    // the global layer hardens that disk in place with debugfs.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/synthetic-pipeline");
    let repo = Repo::new("");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(repo.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let _ = std::fs::remove_dir_all(repo.path().join(".imagepipe"));
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = repo
        .cmd(&["--image", "vendor/debian-12", "--version", "12.8.0"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let vendor = repo.record("vendor/debian-12", "12.8.0");
    let out = repo
        .cmd(&[
            "--image",
            "global/debian-12",
            "--version",
            "1.0.0",
            "--parent-record",
            vendor.to_str().unwrap(),
        ])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let global = Record::read(&repo.record("global/debian-12", "1.0.0"))
        .unwrap()
        .record;
    assert_eq!(
        global.parent.unwrap().record_sha256,
        Record::read(&vendor).unwrap().sha256
    );
    let disk = repo
        .output_dir("global/debian-12", "1.0.0")
        .join("global-debian-12.raw");
    let cat = |file: &str| {
        let out = Command::new("debugfs")
            .args(["-R", &format!("cat {file}")])
            .arg(&disk)
            .env("PATH", &path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        cat("/etc/global-release"),
        "GLOBAL_VERSION=1.0.0\nBUILT_ON_VENDOR=12.8.0\n"
    );
    assert_eq!(cat("/etc/vendor-release"), "VENDOR_VERSION=12.8.0\n");
    assert!(cat("/etc/ssh/sshd_config.d/99-hardening.conf").contains("PermitRootLogin no"));
    assert_eq!(
        cat("/usr/bin/telnetd"),
        "",
        "the global layer removed telnetd"
    );
}

/// A pipeline repository with two published vendor versions, pushed to a bare remote that
/// serves by-commit fetches as GitHub does, and an annotated tag there that pins the older one.
fn tagged_remote() -> (Repo, tempfile::TempDir, String) {
    let repo = layered_repo();
    repo.write(".gitignore", ".imagepipe/\n");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "layers"]);
    for v in ["1.0.0", "1.2.0"] {
        assert_exit(&repo.run(&["--image", "vendor/base", "--version", v]), 0);
        repo.publish("vendor/base", v);
    }
    let tag = "global/hardened/v0.4.1";
    git(
        repo.path(),
        &[
            "tag",
            "-a",
            tag,
            "-m",
            "global/hardened v0.4.1\n\nparent: vendor/base@1.0.0",
        ],
    );
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    git(
        remote.path(),
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
    );
    let url = format!("file://{}", remote.path().display());
    git(repo.path(), &["remote", "add", "origin", &url]);
    git(repo.path(), &["push", "-q", "origin", "main", "--tags"]);
    (repo, remote, url)
}

/// A checkout of `tag` as `actions/checkout` makes it for a tag push: the tag arrives as a
/// lightweight ref, whatever it is on the remote.
fn cd_checkout(url: &str, commit: &str, tag: &str) -> tempfile::TempDir {
    let cd = tempfile::tempdir().unwrap();
    git(cd.path(), &["init", "-q"]);
    git(cd.path(), &["remote", "add", "origin", url]);
    git(
        cd.path(),
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--depth=1",
            "origin",
            &format!("+{commit}:refs/tags/{tag}"),
        ],
    );
    git(cd.path(), &["checkout", "-q", tag]);
    cd
}

/// The CD job's store is the one the parents were published to.
fn share_store(repo: &Repo, cd: &Path) {
    std::fs::create_dir_all(cd.join(".imagepipe")).unwrap();
    std::os::unix::fs::symlink(
        repo.path().join(".imagepipe/store"),
        cd.join(".imagepipe/store"),
    )
    .unwrap();
}

#[test]
fn a_tag_checked_out_as_a_lightweight_ref_builds_on_its_pin() {
    let (repo, _remote, url) = tagged_remote();
    let tag = "global/hardened/v0.4.1";
    let commit = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cd = cd_checkout(&url, commit.trim(), tag);
    share_store(&repo, cd.path());
    let build = |args: &[&str]| step::command(BIN, cd.path(), args).output().unwrap();

    // The pin is read from the remote's annotated tag, not from the commit's message, and not
    // replaced by the newest parent (1.2.0).
    let out = build(&["--tag", tag]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("read the annotated tag global/hardened/v0.4.1 from `origin`"),
        "{}",
        stderr(&out)
    );
    let record = cd
        .path()
        .join(".imagepipe/build/global/hardened/0.4.1/imagepipe-record.json");
    let r = Record::read(&record).unwrap().record;
    assert_eq!(r.parent.unwrap().version.to_string(), "1.0.0");
    let refs = Command::new("git")
        .args(["for-each-ref", "--format=%(refname) %(objecttype)"])
        .current_dir(cd.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&refs.stdout).trim(),
        format!("refs/tags/{tag} commit"),
        "reading the tag changed no ref of the checkout"
    );

    // A pin that contradicts what the build is asked to use stops it.
    let out = build(&["--tag", tag, "--force", "--parent", "vendor/base@1.2.0"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("the tag global/hardened/v0.4.1 pins the parent to vendor/base@1.0.0, but the build was asked to use vendor/base@1.2.0"),
        "{}",
        stderr(&out)
    );

    // Without the remote the tag object cannot be read: no build, never another parent.
    git(cd.path(), &["remote", "remove", "origin"]);
    std::fs::remove_file(&record).unwrap();
    let out = build(&["--tag", tag, "--force"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("cannot read the annotated tag global/hardened/v0.4.1"),
        "{err}"
    );
    assert!(err.contains("lightweight ref"), "{err}");
    assert!(err.contains("--via github"), "{err}");
    assert!(!record.exists());
}

#[test]
fn a_lightweight_tag_on_the_remote_pins_nothing() {
    let (repo, _remote, url) = tagged_remote();
    // Made by hand, lightweight everywhere: it pins no parent, so the newest one is used.
    let tag = "global/hardened/v0.4.2";
    git(repo.path(), &["tag", tag]);
    git(repo.path(), &["push", "-q", "origin", tag]);
    let commit = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cd = cd_checkout(&url, commit.trim(), tag);
    share_store(&repo, cd.path());
    let out = step::command(BIN, cd.path(), &["--tag", tag])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out)
            .contains("the tag global/hardened/v0.4.2 is a lightweight tag, which pins no parent"),
        "{}",
        stderr(&out)
    );
    let r = Record::read(
        &cd.path()
            .join(".imagepipe/build/global/hardened/0.4.2/imagepipe-record.json"),
    )
    .unwrap()
    .record;
    assert_eq!(r.parent.unwrap().version.to_string(), "1.2.0");
}

#[test]
fn via_github_reads_the_pin_through_the_api() {
    let (repo, _remote, _url) = tagged_remote();
    let (api, state) = github::start("acme", "images");
    let tag = "global/hardened/v0.4.1";
    {
        let mut s = state.lock().unwrap();
        s.refs
            .insert(format!("refs/tags/{tag}"), ("tag".into(), "a".repeat(40)));
        s.tag_objects.insert(
            "a".repeat(40),
            serde_json::json!({
                "sha": "a".repeat(40), "tag": tag,
                "message": "global/hardened v0.4.1\n\nparent: vendor/base@1.0.0\n",
                "object": {"type": "commit", "sha": "c".repeat(40)},
            }),
        );
    }
    // A checkout without the tag at all, as a CD job that builds from a tarball would have.
    git(repo.path(), &["tag", "-d", tag]);
    let out = repo
        .cmd(&[
            "--tag",
            tag,
            "--via",
            "github",
            "--repository",
            "acme/images",
        ])
        .env("GITHUB_API_URL", &api)
        .env("IMAGEPIPE_GITHUB_TOKEN", github::TOKEN)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let r = Record::read(&repo.record("global/hardened", "0.4.1"))
        .unwrap()
        .record;
    assert_eq!(r.parent.unwrap().version.to_string(), "1.0.0");
    assert!(
        state
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|l| l.contains("/git/tags/")),
        "the tag object was read through the API"
    );
    assert!(!stderr(&out).contains(github::TOKEN));
}

#[test]
fn validate_checks_templates_with_placeholders_and_writes_nothing() {
    // A fresh repository: nothing built, nothing published, no store.
    let repo = layered_repo();
    let out = repo.run(&["validate", "--json"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("valid    vendor/base  (images/vendor)"),
        "{err}"
    );
    assert!(
        err.contains("valid    global/hardened  (images/global/hardened.pkr.hcl)"),
        "the child's lookup of its parent's `disk` artifact is given a placeholder: {err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["validated"].as_array().unwrap().len(), 2);
    assert!(
        !repo.path().join(".imagepipe").exists(),
        "validation writes nothing into the repository"
    );

    // A broken template fails the check (exit 1) with Packer's own words.
    repo.write(
        "images/global/hardened.pkr.hcl",
        &GLOBAL.replace("var.imagepipe_parent_version", "var.no_such_variable"),
    );
    let out = repo.run(&["validate", "--image", "global/hardened"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("INVALID  global/hardened"), "{err}");
    assert!(err.contains("no_such_variable"), "{err}");
    assert!(
        !err.contains("vendor/base"),
        "only the image asked for: {err}"
    );
}

#[test]
fn validate_changed_since_checks_what_a_pull_request_changes() {
    let repo = layered_repo();
    repo.write(".gitignore", ".imagepipe/\n");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "layers"]);
    git(repo.path(), &["checkout", "-q", "-b", "pr"]);
    let out = repo.run(&["validate", "--changed-since", "main"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("no image's paths changed since main: nothing to validate"),
        "{}",
        stderr(&out)
    );
    repo.write("images/global/extra.txt", "x\n");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "global: extra"]);
    let out = repo.run(&["validate", "--changed-since", "main"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("valid    global/hardened"), "{err}");
    assert!(!err.contains("vendor/base"), "{err}");
    let out = repo.run(&["validate", "--changed-since", "no-such-branch"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--changed-since no-such-branch"),
        "{}",
        stderr(&out)
    );
}
