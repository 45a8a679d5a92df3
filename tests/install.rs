//! `scripts/install.sh`, which the actions run to install a release, against a local mirror
//! serving a release laid out as GitHub's `releases/download`, packed by
//! `scripts/package-release` (as the release workflow packs it) from the workspace's real
//! binaries. The server counts every request, so a cache hit is seen to download nothing.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, Uri};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
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
const TOKEN: &str = "mirror-token-5f1c9a7e2b";

/// The version every binary of the workspace reports, and so the release the test serves.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This machine's architecture as release asset names spell it, and the other one.
fn arches() -> (&'static str, &'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("x86_64", "x64", "aarch64"),
        "aarch64" => ("aarch64", "arm64", "x86_64"),
        other => panic!("no release is built for {other}"),
    }
}

/// The workspace's binaries, which `cargo test --workspace` builds beside this test.
fn bin_dir() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for b in BINARIES {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run the workspace's tests (`cargo test --workspace`), which build every step",
            dir.join(b).display()
        );
    }
    dir
}

/// Every request the mirror answered: path and whether it carried the token.
type Log = Arc<Mutex<Vec<(String, bool)>>>;

/// A static file server over `root`; paths under `/private/` need the bearer token.
fn mirror(root: PathBuf) -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let root = root.clone();
        let seen = seen.clone();
        async move {
            let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(&format!("Bearer {TOKEN}"));
            seen.lock()
                .unwrap()
                .push((uri.path().to_string(), authorized));
            if uri.path().starts_with("/private/") && !authorized {
                return (StatusCode::UNAUTHORIZED, Vec::new());
            }
            let rel = uri.path().trim_start_matches('/');
            assert!(!rel.contains(".."));
            match std::fs::read(root.join(rel)) {
                Ok(bytes) => (StatusCode::OK, bytes),
                Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
            }
        }
    });
    let addr = server::serve(app);
    (format!("http://{addr}"), log)
}

/// Packs the real binaries into `<dir>/v<VERSION>/` as a release: one archive for this
/// machine's architecture and SHA256SUMS. Debug binaries are stripped first, and packed with
/// fast compression, so that the test does not spend its time in gzip.
fn release(dir: &Path) {
    let (arch, _, _) = arches();
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    for b in BINARIES {
        std::fs::copy(bin_dir().join(b), stage.join(b)).unwrap();
    }
    let strip = Command::new("strip")
        .args(BINARIES.map(|b| stage.join(b)))
        .status()
        .unwrap();
    assert!(strip.success());
    let out = dir.join(format!("v{VERSION}"));
    let script = format!("{ROOT}/scripts/package-release");
    let packed = Command::new(&script)
        .args(["archive", VERSION, &format!("{arch}-unknown-linux-musl")])
        .arg(&stage)
        .arg(&out)
        .env("IMAGEPIPE_GZIP_LEVEL", "1")
        .output()
        .unwrap();
    assert!(packed.status.success(), "{}", stderr(&packed));
    let sums = Command::new(&script)
        .arg("sums")
        .arg(&out)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", stderr(&sums));
    std::fs::remove_dir_all(&stage).unwrap();
}

fn asset(arch: &str) -> String {
    format!("imagepipe-{VERSION}-{arch}-unknown-linux-musl.tar.gz")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The install script as an action step runs it: on GitHub, with a tool cache and no version
/// given (so the checkout's own version is installed).
fn install(url: &str, cache: &Path, github_path: &Path) -> Command {
    let mut cmd = Command::new(format!("{ROOT}/scripts/install.sh"));
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGEPIPE_") || k.starts_with("GITHUB_") || k.starts_with("RUNNER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("IMAGEPIPE_DOWNLOAD_URL", url)
        .env("IMAGEPIPE_TOOL_CACHE", cache)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_PATH", github_path);
    cmd
}

fn downloads(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().map(|(p, _)| p.clone()).collect()
}

#[test]
fn installs_a_release_from_a_mirror_checked_and_cached() {
    let (arch, cache_arch, _) = arches();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    release(&site.join("releases/download"));
    let (base, log) = mirror(site);
    let url = format!("{base}/releases/download");
    let cache = tmp.path().join("toolcache");
    let github_path = tmp.path().join("github-path");

    // A clean install downloads SHA256SUMS and this architecture's archive, once each.
    let started = Instant::now();
    let out = install(&url, &cache, &github_path).output().unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = cache.join(format!("imagepipe/{VERSION}/{cache_arch}"));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        dir.display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(&github_path).unwrap().trim(),
        dir.display().to_string(),
        "later steps find the binaries on PATH"
    );
    assert!(
        cache
            .join(format!("imagepipe/{VERSION}/{cache_arch}.complete"))
            .exists()
    );
    assert_eq!(
        downloads(&log),
        [
            format!("/releases/download/v{VERSION}/SHA256SUMS"),
            format!("/releases/download/v{VERSION}/{}", asset(arch)),
        ]
    );
    for b in BINARIES {
        let v = Command::new(dir.join(b))
            .arg("--imagepipe-version")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(v.stdout).unwrap().trim(),
            format!("{b} {VERSION}")
        );
    }
    eprintln!(
        "install of {} from a local mirror: {} ms",
        asset(arch),
        took.as_millis()
    );

    // Another job on the same runner: the tool cache answers, nothing is downloaded.
    let out = install(&url, &cache, &github_path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("from the tool cache"),
        "{}",
        stderr(&out)
    );
    assert_eq!(downloads(&log).len(), 2, "a cache hit downloads nothing");

    // A step action on a runner that has the binaries on PATH installs nothing either.
    let out = install(&url, &tmp.path().join("other-cache"), &github_path)
        .arg("--if-missing")
        .env(
            "PATH",
            format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(downloads(&log).len(), 2);
    assert!(!tmp.path().join("other-cache").exists());
}

#[test]
fn a_corrupt_download_is_refused_naming_the_file_and_nothing_is_installed() {
    let (arch, cache_arch, _) = arches();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    release(&site.join("releases/download"));
    // The mirror holds other bytes than the release's SHA256SUMS names.
    let archive = site.join(format!("releases/download/v{VERSION}/{}", asset(arch)));
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let (base, _log) = mirror(site);
    let cache = tmp.path().join("toolcache");

    let out = install(
        &format!("{base}/releases/download"),
        &cache,
        &tmp.path().join("github-path"),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "::error title=imagepipe install::{}: its SHA-256 is ",
            asset(arch)
        )) && err.contains("but the release's SHA256SUMS says"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no directory is handed to PATH");
    let version_dir = cache.join(format!("imagepipe/{VERSION}"));
    assert!(!version_dir.join(cache_arch).exists());
    assert!(!version_dir.join(format!("{cache_arch}.complete")).exists());
    assert!(!tmp.path().join("github-path").exists());
}

#[test]
fn an_architecture_without_an_asset_is_named_with_what_the_release_has() {
    let (arch, _, other) = arches();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    release(&site.join("releases/download"));
    let (base, log) = mirror(site);

    let out = install(
        &format!("{base}/releases/download"),
        &tmp.path().join("toolcache"),
        &tmp.path().join("github-path"),
    )
    .env("IMAGEPIPE_INSTALL_ARCH", other)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "release v{VERSION} has no {} for {other} Linux: its SHA256SUMS lists {}",
            asset(other),
            asset(arch)
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(downloads(&log).len(), 1, "only SHA256SUMS was fetched");

    // A release that does not exist on the mirror says which URL it tried.
    let out = install(
        &format!("{base}/releases/download"),
        &tmp.path().join("toolcache"),
        &tmp.path().join("github-path"),
    )
    .env("IMAGEPIPE_INSTALL_VERSION", "v9.9.9")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "cannot download {base}/releases/download/v9.9.9/SHA256SUMS: "
        )) && stderr(&out).contains("404"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_mirror_that_needs_a_token_gets_it_and_no_log_shows_it() {
    let (arch, cache_arch, _) = arches();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    // An Artifactory generic remote of GitHub's releases, behind authentication.
    release(
        &site.join("private/artifactory/github-releases/imagepipe/imagepipe/releases/download"),
    );
    let (base, log) = mirror(site);
    let url =
        format!("{base}/private/artifactory/github-releases/imagepipe/imagepipe/releases/download");
    let cache = tmp.path().join("toolcache");

    let out = install(&url, &cache, &tmp.path().join("github-path"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let out = install(&url, &cache, &tmp.path().join("github-path"))
        .env("IMAGEPIPE_DOWNLOAD_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        cache
            .join(format!("imagepipe/{VERSION}/{cache_arch}/imagepipe-scan"))
            .exists()
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen[seen.len() - 2..],
        [
            (
                format!(
                    "/private/artifactory/github-releases/imagepipe/imagepipe/releases/download/v{VERSION}/SHA256SUMS"
                ),
                true
            ),
            (
                format!(
                    "/private/artifactory/github-releases/imagepipe/imagepipe/releases/download/v{VERSION}/{}",
                    asset(arch)
                ),
                true
            ),
        ]
    );
    // The runner masks it; apart from asking for that, it is printed nowhere.
    let err = stderr(&out).replace(&format!("::add-mask::{TOKEN}\n"), "");
    assert!(!err.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    assert!(stderr(&out).contains(&format!("::add-mask::{TOKEN}")));
}

#[test]
fn bad_versions_and_platforms_are_refused_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, log) = mirror(tmp.path().to_path_buf());
    for (env, value, says) in [
        (
            "IMAGEPIPE_INSTALL_VERSION",
            "v1",
            "version '1' is not a release version X.Y.Z",
        ),
        (
            "IMAGEPIPE_INSTALL_ARCH",
            "riscv64",
            "no imagepipe release is built for the architecture 'riscv64'",
        ),
    ] {
        let out = install(&base, &tmp.path().join("c"), &tmp.path().join("p"))
            .env(env, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert!(downloads(&log).is_empty());
}

/// The release workflow builds, packs and publishes exactly the assets `install.sh` downloads:
/// for each target of its build matrix, the archive `package-release` names is the one
/// `install.sh` asks for on that architecture, and the release carries SHA256SUMS beside them.
#[test]
fn the_release_workflow_publishes_what_install_sh_downloads() {
    use yaml_rust2::YamlLoader;
    let text = std::fs::read_to_string(format!("{ROOT}/.github/workflows/release.yml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let build = &doc["jobs"]["build"];
    let matrix = build["strategy"]["matrix"]["include"].as_vec().unwrap();
    let targets: Vec<(&str, &str)> = matrix
        .iter()
        .map(|m| (m["target"].as_str().unwrap(), m["runner"].as_str().unwrap()))
        .collect();
    assert_eq!(
        targets,
        [
            ("x86_64-unknown-linux-musl", "ubuntu-24.04"),
            ("aarch64-unknown-linux-musl", "ubuntu-24.04-arm"),
        ],
        "static binaries for both architectures, each built on its own"
    );
    let runs: Vec<&str> = build["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(runs.iter().any(|r| r.contains(
        r#"scripts/package-release archive "$GITHUB_REF_NAME" "$TARGET" "target/$TARGET/release" dist"#
    )));

    // What install.sh asks for on each architecture, read from its own complaint about a
    // release that lists nothing, against what package-release names for the target.
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("v1.2.3")).unwrap();
    std::fs::write(site.join("v1.2.3/SHA256SUMS"), "").unwrap();
    let (base, _log) = mirror(site);
    for (target, _) in &targets {
        let bin = tmp.path().join(format!("bin-{target}"));
        std::fs::create_dir_all(&bin).unwrap();
        for b in BINARIES {
            std::fs::write(bin.join(b), "#!/bin/sh\n").unwrap();
            Command::new("chmod")
                .arg("+x")
                .arg(bin.join(b))
                .status()
                .unwrap();
        }
        let packed = Command::new(format!("{ROOT}/scripts/package-release"))
            .args(["archive", "v1.2.3", target])
            .arg(&bin)
            .arg(tmp.path().join("dist"))
            .env("IMAGEPIPE_GZIP_LEVEL", "1")
            .output()
            .unwrap();
        assert!(packed.status.success(), "{}", stderr(&packed));
        let archive = String::from_utf8(packed.stdout).unwrap();
        let archive = Path::new(archive.trim())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let arch = target.split('-').next().unwrap();
        let out = install(&base, &tmp.path().join("cache"), &tmp.path().join("p"))
            .env("IMAGEPIPE_INSTALL_VERSION", "1.2.3")
            .env("IMAGEPIPE_INSTALL_ARCH", arch)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains(&format!("release v1.2.3 has no {archive} for {arch} Linux")),
            "install.sh asks for another asset than {archive}: {}",
            stderr(&out)
        );
    }

    let release = &doc["jobs"]["release"];
    for (scope, level) in [
        ("contents", "write"),
        ("id-token", "write"),
        ("attestations", "write"),
    ] {
        assert_eq!(
            release["permissions"][scope].as_str(),
            Some(level),
            "{scope}"
        );
    }
    let steps = release["steps"].as_vec().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("scripts/package-release sums dist"))
    );
    assert!(runs
        .iter()
        .any(|r| r.contains("gh release create") && r.contains("dist/*.tar.gz dist/SHA256SUMS")));
    assert!(steps.iter().any(|s| {
        s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("actions/attest-build-provenance@"))
            && s["with"]["subject-path"].as_str() == Some("dist/*.tar.gz")
    }));
}
