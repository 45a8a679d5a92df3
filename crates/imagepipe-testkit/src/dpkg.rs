//! dpkg databases made by dpkg itself: packages built with `dpkg-deb`, installed, removed and
//! broken with `dpkg --root` (no chroot, no root privileges needed), and `dpkg-query` as the
//! oracle of which packages are installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::images::run;

/// A root filesystem that dpkg manages.
#[derive(Debug)]
pub struct Root {
    pub root: PathBuf,
    debs: PathBuf,
    home: PathBuf,
}

/// One package to build.
#[derive(Debug, Default)]
pub struct Deb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// `Source: …` field, when it differs from the name.
    pub source: Option<&'a str>,
    /// Maintainer scripts (`preinst`, `postinst`, `prerm`, `postrm`) as shell bodies.
    pub scripts: &'a [(&'a str, &'a str)],
    /// A conffile at `/etc/<name>.conf`, which survives removal (`config-files`).
    pub conffile: bool,
    /// The `DEBIAN/triggers` file.
    pub triggers: Option<&'a str>,
}

impl Root {
    /// An empty dpkg database under `dir/root`.
    pub fn new(dir: &Path) -> Self {
        let root = dir.join("root");
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(root.join("var/lib/dpkg").join(d)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        let debs = dir.join("debs");
        let home = dir.join("home");
        std::fs::create_dir_all(&debs).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        Self { root, debs, home }
    }

    /// The file every package installs: present exactly when its files are.
    pub fn marker(name: &str) -> String {
        format!("usr/share/{name}/installed")
    }

    /// Builds a package and returns its `.deb`.
    pub fn build(&self, deb: &Deb) -> PathBuf {
        let dir = self.debs.join(format!("{}_{}", deb.name, deb.version));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("DEBIAN")).unwrap();
        let marker = dir.join(Self::marker(deb.name));
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(&marker, deb.version).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: t <t@example.com>\nDescription: test\n",
            deb.name, deb.version
        );
        if let Some(s) = deb.source {
            control.push_str(&format!("Source: {s}\n"));
        }
        std::fs::write(dir.join("DEBIAN/control"), control).unwrap();
        if deb.conffile {
            std::fs::create_dir_all(dir.join("etc")).unwrap();
            std::fs::write(dir.join(format!("etc/{}.conf", deb.name)), "x\n").unwrap();
            std::fs::write(
                dir.join("DEBIAN/conffiles"),
                format!("/etc/{}.conf\n", deb.name),
            )
            .unwrap();
        }
        if let Some(t) = deb.triggers {
            std::fs::write(dir.join("DEBIAN/triggers"), t).unwrap();
        }
        for (script, body) in deb.scripts {
            use std::os::unix::fs::PermissionsExt as _;
            let p = dir.join("DEBIAN").join(script);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = self.debs.join(format!("{}_{}.deb", deb.name, deb.version));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&dir)
            .arg(&out));
        out
    }

    /// `dpkg --root` with `args`; returns whether dpkg succeeded (failures are part of the
    /// states these tests make).
    pub fn dpkg(&self, args: &[&str]) -> bool {
        self.dpkg_cmd(args).status().unwrap().success()
    }

    pub fn dpkg_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("dpkg");
        cmd.arg(format!("--root={}", self.root.display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--log=/dev/null",
            ])
            .args(args)
            .env("HOME", &self.home)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// `dpkg -i` of one package.
    pub fn install(&self, deb: &Deb) -> bool {
        let file = self.build(deb);
        self.dpkg(&["-i", file.to_str().unwrap()])
    }

    /// `package version state-abbreviation` of every package dpkg-query knows.
    pub fn states(&self) -> Vec<(String, String, String)> {
        states(&self.root.join("var/lib/dpkg"))
    }
}

/// `(package, version, ${db:Status-Abbrev})` of every package in a dpkg database, as
/// dpkg-query reads it (status and the `updates` journal).
pub fn states(admindir: &Path) -> Vec<(String, String, String)> {
    run(Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args(["-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"]))
    .lines()
    .map(|l| {
        let mut f = l.split('\t');
        (
            f.next().unwrap().to_string(),
            f.next().unwrap().to_string(),
            f.next().unwrap().to_string(),
        )
    })
    .collect()
}

/// Whether dpkg's status letter (the second of `${db:Status-Abbrev}`) says the package's files
/// are on disk: installed, triggers-pending, triggers-awaited, half-configured, unpacked. Not
/// config-files or not-installed; half-installed (`H`) cannot tell, and the caller decides.
pub fn files_present(abbrev: &str) -> Option<bool> {
    match abbrev.chars().nth(1) {
        Some('i' | 't' | 'W' | 'F' | 'U') => Some(true),
        Some('c' | 'n') => Some(false),
        _ => None,
    }
}
