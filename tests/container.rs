//! The container image (`scripts/container-image`), built here from the workspace's binaries
//! with umoci, pushed to a real registry (Debian's `docker-registry`) with skopeo, pulled back
//! and unpacked: its configuration is what Run Job stages expect, and each step in it runs.
//! There is no container runtime on the test machine, so the steps run from the unpacked root
//! filesystem.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARIES: [&str; 8] = [
    "imagepipe-build",
    "imagepipe-tag",
    "imagepipe-scan",
    "imagepipe-publish",
    "imagepipe-replicate-check",
    "imagepipe-import",
    "imagepipe-fleet",
    "imagepipe-lifecycle",
];

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The workspace's binaries, stripped (the image is about them, not their debug info).
fn binaries(dir: &Path) -> PathBuf {
    let built = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let stage = dir.join("bin");
    std::fs::create_dir_all(&stage).unwrap();
    for b in BINARIES {
        assert!(
            built.join(b).exists(),
            "{} is missing: run the workspace's tests (`cargo test --workspace`), which build every step",
            built.join(b).display()
        );
        std::fs::copy(built.join(b), stage.join(b)).unwrap();
    }
    run(Command::new("strip").args(BINARIES.map(|b| stage.join(b))));
    stage
}

#[test]
fn the_image_holds_every_step_runs_them_and_goes_through_a_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = binaries(tmp.path());
    let layout = tmp.path().join("layout");
    run(Command::new(format!("{ROOT}/scripts/container-image"))
        .arg(&bin)
        .arg(VERSION)
        .arg(&layout));

    let registry = registry::Registry::start();
    let remote = format!("docker://{}/imagepipe/imagepipe:{VERSION}", registry.addr);
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{VERSION}", layout.display()))
        .arg(&remote));
    let pulled = tmp.path().join("pulled");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &remote])
        .arg(format!("oci:{}:{VERSION}", pulled.display())));

    let config =
        run(Command::new("skopeo").args(["inspect", "--config", "--tls-verify=false", &remote]));
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no image is built for {other}"),
    };
    assert_eq!(config["architecture"], arch);
    assert_eq!(config["os"], "linux");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "not root");
    assert_eq!(c["WorkingDir"], "/work");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"PATH=/usr/local/bin"), "{env:?}");
    assert!(env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"));
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"], VERSION,
        "{c}"
    );
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        1,
        "one layer on nothing"
    );

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{VERSION}", pulled.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let mut entries: Vec<String> = std::fs::read_dir(rootfs.join("usr/local/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    let mut want = BINARIES.map(String::from).to_vec();
    want.sort();
    assert_eq!(entries, want, "the six steps and nothing else");
    assert!(
        std::fs::metadata(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
            .unwrap()
            .len()
            > 0
    );
    assert!(!rootfs.join("bin/sh").exists(), "no shell, no distribution");
    for b in BINARIES {
        let path = rootfs.join("usr/local/bin").join(b);
        let out = run(Command::new(&path)
            .arg("--imagepipe-version")
            .env_clear()
            .current_dir(tmp.path()));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            format!("{b} {VERSION}")
        );
        // A usage error is the contract's exit code 2, as a Run Job stage would report it.
        let out = Command::new(&path)
            .arg("--no-such-option")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{b}");
    }
}
