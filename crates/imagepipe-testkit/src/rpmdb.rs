//! A root tree with a real rpm database (`var/lib/rpm/rpmdb.sqlite`), made by building empty
//! packages with `rpmbuild` and installing them with `rpm --root`, as RHEL 9 keeps it.

use std::path::Path;
use std::process::Command;

/// One source package and the binary packages built from it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub epoch: Option<u32>,
    pub version: &'a str,
    pub release: &'a str,
    /// `x86_64` or `noarch`.
    pub arch: &'a str,
    pub binaries: &'a [&'a str],
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (apt-get install rpm)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs `sources` into `root`'s rpm database, in order.
pub fn install(root: &Path, work: &Path, sources: &[Source<'_>]) {
    install_with_labels(root, work, sources, &[]);
}

/// [`install`], the sources named in `labels` built for a module stream: with that
/// `ModularityLabel` (`name:stream:version:context`), as RHEL 8+ builds a module's packages.
pub fn install_with_labels(
    root: &Path,
    work: &Path,
    sources: &[Source<'_>],
    labels: &[(&str, &str)],
) {
    let top = work.join("rpmbuild");
    for s in sources {
        let mut spec = format!(
            "Name: {}\nVersion: {}\nRelease: {}\nSummary: s\nLicense: MIT\nBuildArch: {}\n",
            s.name, s.version, s.release, s.arch
        );
        if let Some(e) = s.epoch {
            spec.push_str(&format!("Epoch: {e}\n"));
        }
        if let Some((_, label)) = labels.iter().find(|(n, _)| *n == s.name) {
            spec.push_str(&format!("ModularityLabel: {label}\n"));
        }
        spec.push_str("%description\nd\n");
        for b in s.binaries {
            if *b == s.name {
                spec.push_str("%files\n");
            } else {
                spec.push_str(&format!(
                    "%package -n {b}\nSummary: s\n%description -n {b}\nd\n%files -n {b}\n"
                ));
            }
        }
        let path = work.join(format!("{}.spec", s.name));
        std::fs::write(&path, spec).unwrap();
        run(Command::new("rpmbuild")
            .args(["-bb", "--quiet"])
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "debug_package %{nil}", "--target", s.arch])
            .arg(&path));
    }
    let mut rpms = Vec::new();
    for s in sources {
        for b in s.binaries {
            rpms.push(top.join(format!(
                "RPMS/{arch}/{b}-{}-{}.{arch}.rpm",
                s.version,
                s.release,
                arch = s.arch
            )));
        }
    }
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "--define",
            "_db_backend sqlite",
            "--nodeps",
            "--noscripts",
            "--ignorearch",
            "-i",
        ])
        .args(&rpms));
}

/// What `rpm -qa` says of `root`: `name evr arch sourcerpm` per line, sorted.
pub fn query(root: &Path) -> Vec<String> {
    query_backend(root, "sqlite")
}

/// [`query`] with rpm's database backend `backend` (`sqlite`, or `bdb_ro` to read a
/// BerkeleyDB `Packages`).
pub fn query_backend(root: &Path, backend: &str) -> Vec<String> {
    let out = Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--define", &format!("_db_backend {backend}")])
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
            "--qf",
            "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}%|MODULARITYLABEL?{ %{MODULARITYLABEL}}|\\n",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpm -qa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// An inventory's packages in [`query`]'s form, to compare with it (a module stream's label
/// last). SOURCERPM carries no epoch; the package's own applies to its source.
pub fn as_query(packages: &[imagepipe_scanner::inventory::Package]) -> Vec<String> {
    let mut lines: Vec<String> = packages
        .iter()
        .map(|p| {
            let vr = p
                .source_version
                .split_once(':')
                .map_or(p.source_version.as_str(), |(_, vr)| vr);
            let label = p
                .modularity_label
                .as_deref()
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            format!(
                "{} {} {} {}-{vr}.src.rpm{label}",
                p.name, p.version, p.arch, p.source
            )
        })
        .collect();
    lines.sort();
    lines
}
