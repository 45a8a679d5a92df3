//! `imagepipe-build` booting real VMs: the real example's vendor layer (examples/local-pipeline:
//! a bootable Debian 12 disk from mmdebstrap), then a layer whose shell provisioner fails inside
//! the booted VM under Packer's qemu builder (TCG). And the example's preflight, which names
//! what the host lacks.
//!
//! The vendor disk is made by the example's own make-disk from the Debian tree it caches where
//! scripts/local-pipeline caches it (IMAGEPIPE_CACHE_DIR, else ~/.cache/imagepipe): after a
//! pipeline run (CI runs it before the tests) the disk takes about 20 s and the whole test about
//! 35 s on 2 cores; with no cached tree, make-disk first runs mmdebstrap against deb.debian.org
//! (about 2 minutes more) and caches it.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagepipe_testkit::step;

use step::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-build");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/local-pipeline")
}

/// Where scripts/local-pipeline caches the vendor tree, so a test after a pipeline run (as in
/// CI) reuses it.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("IMAGEPIPE_CACHE_DIR") {
        return d.into();
    }
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d).join("imagepipe"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/imagepipe"),
    }
}

fn path_with_sbin() -> String {
    format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    )
}

fn on_path(program: &str) -> Option<PathBuf> {
    path_with_sbin()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Processes whose command line mentions `needle`, as "pid: command line".
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid}: {}", cmdline.trim_end()));
        }
    }
    found
}

/// A layer that boots the vendor disk and fails in its first provisioner, inside the guest.
const FAILING: &str = r#"
variable "imagepipe_output_dir" {
  type = string
}
variable "imagepipe_manifest" {
  type = string
}
variable "imagepipe_parent_artifact" {
  type = string
}
variable "build_key" {
  type = string
}
source "qemu" "debian" {
  iso_url          = var.imagepipe_parent_artifact
  iso_checksum     = "none"
  disk_image       = true
  skip_resize_disk = true
  format           = "qcow2"
  output_directory = "${var.imagepipe_output_dir}/qemu"
  vm_name          = "broken.qcow2"
  accelerator      = "tcg"
  headless         = true
  disable_vnc      = true
  cpus             = 2
  memory           = 1024
  qemuargs         = [["-serial", "file:${var.imagepipe_output_dir}/console.log"]]
  communicator         = "ssh"
  ssh_username         = "packer"
  ssh_private_key_file = var.build_key
  ssh_timeout          = "5m"
  shutdown_command     = "sudo systemctl poweroff"
}
build {
  sources = ["source.qemu.debian"]
  provisioner "shell" {
    inline = [
      "echo \"in the guest: $(cat /etc/vendor-release)\"",
      "echo 'the provisioner fails on purpose' >&2",
      "exit 3",
    ]
  }
  post-processor "manifest" {
    output = var.imagepipe_manifest
  }
}
"#;

#[test]
fn a_provisioner_failing_inside_the_vm_stops_the_build_and_leaves_no_qemu_behind() {
    assert!(
        on_path("qemu-system-x86_64").is_some(),
        "qemu-system-x86_64 is needed (scripts/deps installs qemu-system-x86)"
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(example())
        .arg(&repo)
        .status()
        .unwrap();
    assert!(copy.success());
    let _ = std::fs::remove_dir_all(repo.join(".imagepipe"));
    std::fs::write(
        repo.join("imagepipe.toml"),
        "[[image]]\nname = \"vendor/debian-12\"\ntemplate = \"images/vendor/debian-12\"\n\n\
         [[image]]\nname = \"global/broken\"\ntemplate = \"images/broken\"\n\
         parent = \"vendor/debian-12\"\nbuild_timeout = \"10m\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("images/broken")).unwrap();
    std::fs::write(repo.join("images/broken/broken.pkr.hcl"), FAILING).unwrap();
    let key = dir.path().join("build-key");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let build = |args: &[&str]| -> Output {
        step::command(BIN, &repo, args)
            .env("PATH", path_with_sbin())
            .env("PKR_VAR_build_key", &key)
            .env("PKR_VAR_cache_dir", cache_dir())
            .output()
            .unwrap()
    };

    let out = build(&["--image", "vendor/debian-12", "--version", "12.0.0"]);
    assert_exit(&out, 0);
    let vendor = repo.join(".imagepipe/build/vendor/debian-12/12.0.0/imagepipe-record.json");

    let out = build(&[
        "--image",
        "global/broken",
        "--version",
        "1.0.0",
        "--parent-record",
        vendor.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_exit(&out, 2);
    // The provisioner ran in the booted guest, and its failure is Packer's error, shown.
    assert!(err.contains("in the guest: VENDOR_VERSION=12.0.0"), "{err}");
    assert!(err.contains("the provisioner fails on purpose"), "{err}");
    assert!(
        err.contains("Script exited with non-zero exit status: 3"),
        "{err}"
    );
    let output = repo.join(".imagepipe/build/global/broken/1.0.0");
    assert!(
        !output.join("imagepipe-record.json").exists(),
        "a failed build writes no record"
    );
    // The VM's disk is in this test's directory: a QEMU still running names it.
    let left: Vec<String> = processes_mentioning(&repo.display().to_string())
        .into_iter()
        .filter(|p| p.contains("qemu-system"))
        .collect();
    assert!(left.is_empty(), "QEMU outlived the failed build: {left:#?}");
}

fn preflight(path: &str, ports: Option<u16>) -> Output {
    let mut cmd = Command::new("/bin/bash");
    cmd.arg(example().join("scripts/preflight"))
        .env("PATH", path);
    if let Some(p) = ports {
        cmd.env("PKR_VAR_ssh_port_min", p.to_string())
            .env("PKR_VAR_ssh_port_max", p.to_string());
    } else {
        cmd.env_remove("PKR_VAR_ssh_port_min")
            .env_remove("PKR_VAR_ssh_port_max");
    }
    cmd.output().unwrap()
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn preflight_names_a_missing_qemu_and_how_to_install_it() {
    // Everything the pipeline needs is on this PATH, but QEMU.
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "id",
        "qemu-img",
        "packer",
        "mmdebstrap",
        "mke2fs",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
        "syslinux",
        "ssh-keygen",
        "jq",
        "fakeroot",
        // The Windows image's, checked as root with /dev/fuse.
        "mkntfs",
        "ntfs-3g",
        "fusermount",
        "hivexregedit",
    ] {
        if let Some(p) = on_path(tool) {
            std::os::unix::fs::symlink(p, bin.path().join(tool)).unwrap();
        }
    }
    let out = preflight(bin.path().to_str().unwrap(), None);
    assert_exit(&out, 2);
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("error: qemu-system-x86_64 is not installed:")
            && errors[0].contains("`apt-get install qemu-system-x86 qemu-utils`"),
        "{}",
        errors[0]
    );
}

#[test]
fn preflight_names_an_ssh_port_range_with_no_free_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = preflight(&path_with_sbin(), Some(port));
    assert_exit(&out, 2);
    assert_eq!(
        error_lines(&out),
        [format!(
            "error: no free TCP port on 127.0.0.1 in {port}-{port} for Packer's SSH forward to the \
             VM: stop what listens there, or choose a range with PKR_VAR_ssh_port_min and \
             PKR_VAR_ssh_port_max, then run again."
        )]
    );
    // With the port free again, nothing is missing.
    drop(taken);
    let out = preflight(&path_with_sbin(), Some(port));
    assert_exit(&out, 0);
}
