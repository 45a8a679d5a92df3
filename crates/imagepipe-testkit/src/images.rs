//! Disk images for the scan's tests, made with the tools that make them in production:
//! `mke2fs -d` fills an ext4 filesystem from a tree, `qemu-img convert` makes qcow2 and VMDK,
//! and the example pipeline's `make-ova` an OVA.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The os-release of a Debian 12 system.
pub const DEBIAN_12_OS_RELEASE: &str =
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

/// Runs `cmd` and returns its standard output; a failure panics with its standard error.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A system tool, wherever this distribution keeps it.
pub fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// An ext4 filesystem of `size` (`16M`) at `out`, labelled `label`, holding `tree`.
pub fn ext4(tree: &Path, out: &Path, label: &str, size: &str) {
    run(Command::new("truncate").args(["-s", size]).arg(out));
    run(Command::new(sbin("mke2fs"))
        .args(["-q", "-t", "ext4", "-L", label, "-d"])
        .arg(tree)
        .arg(out));
}

/// `raw` as qcow2 beside it; with `compressed`, every cluster compressed.
pub fn qcow2(raw: &Path, compressed: bool) -> PathBuf {
    let out = raw.with_extension(if compressed { "c.qcow2" } else { "qcow2" });
    let mut cmd = Command::new("qemu-img");
    cmd.args(["convert", "-q", "-f", "raw", "-O", "qcow2"]);
    if compressed {
        cmd.arg("-c");
    }
    run(cmd.arg(raw).arg(&out));
    out
}

/// `raw` as a VMDK of `subformat` (`streamOptimized`, `monolithicSparse`) beside it.
pub fn vmdk(raw: &Path, subformat: &str) -> PathBuf {
    let out = raw.with_extension(format!("{subformat}.vmdk"));
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "vmdk", "-o"])
        .arg(format!("subformat={subformat}"))
        .arg(raw)
        .arg(&out));
    out
}

/// An OVA named `name` beside `raw`, as the example pipeline packages one (stream-optimized
/// disk, OVF, manifest, tar).
pub fn ova(raw: &Path, name: &str) -> PathBuf {
    let dir = raw.parent().unwrap();
    // The workspace's, from the root crate's tests and the steps' alike.
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("examples/synthetic-pipeline/scripts/make-ova"))
        .find(|p| p.exists())
        .unwrap();
    run(Command::new(script).arg(raw).arg(name).arg(dir));
    dir.join(format!("{name}.ova"))
}
