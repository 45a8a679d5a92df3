//! `imagepipe-build` against what Debian's Packer 1.6.6 cannot show: Packer 1.9–1.12's
//! `init`, plugins, `validate -evaluate-datasources`, HCP Packer skipping builds, the vSphere
//! plugin's export and lost manifest entries. `fake-packer/packer` speaks that CLI as those
//! releases document it (see its header for sources); the builds around it are imagepipe's own.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imagepipe::record::{Format, Record, Role};

use imagepipe_testkit::step;

use step::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-build");

fn fake_packer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-packer/packer")
}

struct Repo {
    dir: tempfile::TempDir,
    plugins: tempfile::TempDir,
    log: PathBuf,
}

const VARIABLES: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
"#;

const REQUIRED: &str = r#"
packer {
  required_plugins {
    vsphere = {
      source  = "github.com/vmware/vsphere"
      version = ">= 1.4.0"
    }
  }
}
"#;

/// A vSphere clone template; `output_directory` is the export's, when given.
fn template(required_plugins: bool, output_directory: Option<&str>) -> String {
    let export = output_directory
        .map(|d| {
            format!(
                "  export {{\n    output_directory = \"${{var.imagepipe_output_dir}}/{d}\"\n  }}\n"
            )
        })
        .unwrap_or_default();
    format!(
        "{}{VARIABLES}\nsource \"vsphere-clone\" \"debian\" {{\n  template = \"debian-12\"\n{export}}}\n\
         build {{\n  sources = [\"source.vsphere-clone.debian\"]\n  post-processor \"manifest\" {{\n    output = var.imagepipe_manifest\n  }}\n}}\n",
        if required_plugins { REQUIRED } else { "" }
    )
}

impl Repo {
    fn new(config: &str, template: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imagepipe.toml"), config).unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/vm.pkr.hcl"), template).unwrap();
        let log = dir.path().join("packer.log");
        Self {
            dir,
            plugins: tempfile::tempdir().unwrap(),
            log,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = step::command(BIN, self.path(), args);
        cmd.env("IMAGEPIPE_PACKER", fake_packer())
            .env("PACKER_PLUGIN_PATH", self.plugins.path())
            .env("FAKE_PACKER_LOG", &self.log)
            .env_remove("HCP_PACKER_BUCKET_NAME")
            .env_remove("HCP_PACKER_REGISTRY");
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.cmd(args);
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    }

    /// A plugin release `packer init` can "download": a binary that describes itself.
    fn releases(&self) -> PathBuf {
        let dir = self.path().join("releases");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("packer-plugin-vsphere_v1.4.2_x5.0_linux_amd64");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho '{\"version\":\"1.4.2\",\"api_version\":\"x5.0\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        dir
    }

    fn record_path(&self) -> PathBuf {
        self.path()
            .join(".imagepipe/build/vm/1.0.0/imagepipe-record.json")
    }

    fn packer_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

const CONFIG: &str = "[[image]]\nname = \"vm\"\ntemplate = \"t\"\n";
const BUILD: &[&str] = &["--image", "vm", "--version", "1.0.0"];

#[test]
fn init_installs_declared_plugins_and_the_export_is_recorded_by_role() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let releases = repo.releases();
    let out = repo.run(
        BUILD,
        &[("FAKE_PACKER_RELEASES", releases.to_str().unwrap())],
    );
    assert_exit(&out, 0);
    let log = repo.packer_log();
    let calls: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        calls,
        ["-machine-readable", "init", "validate", "build"],
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("validate -evaluate-datasources ")),
        "Packer 1.11 validates data sources too: {log}"
    );
    assert!(
        repo.plugins
            .path()
            .join(
                "github.com/vmware/vsphere/packer-plugin-vsphere_v1.4.2_x5.0_linux_amd64_SHA256SUM"
            )
            .exists()
    );
    let record = Record::read(&repo.record_path()).unwrap().record;
    let files: Vec<(String, Format, Role)> = record
        .artifacts
        .iter()
        .map(|a| {
            let f = a.file().unwrap();
            (f.path.clone(), f.format, f.role)
        })
        .collect();
    assert_eq!(
        files,
        [
            (
                "export/debian-disk-0.vmdk".to_string(),
                Format::Vmdk,
                Role::Disk
            ),
            (
                "export/debian.ovf".to_string(),
                Format::Ovf,
                Role::Descriptor
            ),
            ("export/debian.mf".to_string(), Format::Mf, Role::Manifest),
        ]
    );
}

#[test]
fn an_export_into_imagepipes_own_directory_records_only_the_builders_files() {
    // No `export.output_directory`: the plugin exports into, and lists, the whole output
    // directory, where imagepipe's var file and the manifest are.
    let repo = Repo::new(CONFIG, &template(true, None));
    let releases = repo.releases();
    let out = repo.run(
        BUILD,
        &[("FAKE_PACKER_RELEASES", releases.to_str().unwrap())],
    );
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("lists imagepipe's own file"),
        "{}",
        stderr(&out)
    );
    let record = Record::read(&repo.record_path()).unwrap().record;
    let paths: Vec<&str> = record
        .artifacts
        .iter()
        .map(|a| a.file().unwrap().path.as_str())
        .collect();
    assert_eq!(paths, ["debian-disk-0.vmdk", "debian.ovf", "debian.mf"]);
}

#[test]
fn a_missing_plugin_without_required_plugins_says_how_to_declare_or_install_it() {
    let repo = Repo::new(CONFIG, &template(false, Some("export")));
    let out = repo.run(BUILD, &[]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("Unknown source type vsphere-clone"), "{err}");
    assert!(err.contains("required_plugins"), "{err}");
    assert!(err.contains("packer plugins install --path"), "{err}");
    assert!(!repo.record_path().exists());
}

#[test]
fn init_without_network_fails_with_packers_error() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let out = repo.run(BUILD, &[]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("packer") && err.contains(" init "), "{err}");
    assert!(
        err.contains("Failed getting the \"github.com/vmware/vsphere\" plugin"),
        "{err}"
    );
    assert!(!repo.record_path().exists());
}

#[test]
fn a_plugin_path_of_several_directories_is_explained() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let out = repo.run(BUILD, &[("PACKER_PLUGIN_PATH", "/a:/b")]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("Multiple paths are no longer supported"),
        "{err}"
    );
    assert!(err.contains("names one directory"), "{err}");
}

#[test]
fn an_hcp_packer_skip_builds_nothing_and_writes_no_record() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let releases = repo.releases();
    let out = repo.run(
        BUILD,
        &[
            ("FAKE_PACKER_RELEASES", releases.to_str().unwrap()),
            ("FAKE_PACKER_BUILD", "hcp-done"),
            ("HCP_PACKER_BUCKET_NAME", "debian"),
        ],
    );
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("built nothing"), "{err}");
    assert!(err.contains("HCP Packer skipped"), "{err}");
    assert!(err.contains("HCP_PACKER_BUCKET_NAME"), "{err}");
    assert!(!repo.record_path().exists());
}

#[test]
fn a_kept_manifest_from_an_earlier_run_is_not_taken_for_this_one() {
    // The template keeps its own appending manifest, which holds a build of an earlier run.
    let config = format!("{CONFIG}manifest = \"kept-manifest.json\"\n");
    let tpl =
        template(true, Some("export")).replace("var.imagepipe_manifest", "\"kept-manifest.json\"");
    let repo = Repo::new(&config, &tpl);
    let releases = repo.releases();
    let rel = releases.to_str().unwrap();
    let first = repo.run(BUILD, &[("FAKE_PACKER_RELEASES", rel)]);
    assert_exit(&first, 0);
    std::fs::remove_dir_all(repo.path().join(".imagepipe/build")).unwrap();
    // The fake reads the manifest path from the var file; the kept one is given by the config.
    let out = repo.run(
        BUILD,
        &[
            ("FAKE_PACKER_RELEASES", rel),
            ("FAKE_PACKER_BUILD", "hcp-done"),
        ],
    );
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("still names the earlier run"), "{err}");
    assert!(err.contains("HCP Packer skipped"), "{err}");
    assert!(!repo.record_path().exists());
}

#[test]
fn a_build_whose_manifest_entry_was_lost_writes_no_record() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let releases = repo.releases();
    let out = repo.run(
        BUILD,
        &[
            ("FAKE_PACKER_RELEASES", releases.to_str().unwrap()),
            ("FAKE_PACKER_PARALLEL", "1"),
        ],
    );
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("`other.vsphere-clone.debian`"), "{err}");
    assert!(err.contains("has no entry for it"), "{err}");
    assert!(!repo.record_path().exists());
}

/// Whether any process still runs with `marker` in its command line.
fn running(marker: &str) -> bool {
    let out = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(marker) && !l.starts_with("ps "))
}

#[test]
fn an_interrupt_reaches_packer_alone_and_the_grace_ends_in_a_kill() {
    let repo = Repo::new(CONFIG, &template(true, Some("export")));
    let releases = repo.releases();
    let mut child = repo
        .cmd(&[
            "--image",
            "vm",
            "--version",
            "1.0.0",
            "--interrupt-grace",
            "2s",
        ])
        .env("FAKE_PACKER_RELEASES", &releases)
        .env("FAKE_PACKER_BUILD", "trap")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("waiting (ignoring signals)") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let err = seen.join("\n");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("was killed"), "{err}");
    assert!(err.contains("interrupt grace of 2s"), "{err}");
    let log = repo.packer_log();
    // Packer got one SIGTERM; the plugin-like child in its group got nothing from us.
    assert_eq!(log.matches("packer got TERM").count(), 1, "{log}");
    assert!(!log.contains("child got"), "{log}");
    assert!(!log.contains("packer got INT"), "{log}");
    // ... and the kill took the whole group, child included.
    assert!(
        !running(&repo.log.display().to_string()),
        "a process of the build is left"
    );
    assert!(!repo.record_path().exists());
}
