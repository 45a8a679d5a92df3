//! What is installed: the OS from `os-release`, and the packages from the package managers'
//! own databases, read as files (no tool of the image runs).

use std::path::Path;

use super::version::Scheme;

/// The operating system, from `etc/os-release` (or `usr/lib/os-release`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Os {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
    /// `ID_LIKE`: the distributions this one derives from (`rhel centos fedora` on Rocky), which
    /// policy rules are scoped by. Not reported: the record's OS stays as it was.
    #[serde(skip)]
    pub id_like: Vec<String>,
    /// The OSV ecosystem its packages are published under (`Debian:12`, `Alpine:v3.19`, …).
    pub ecosystem: Option<String>,
}

impl Os {
    /// How reports name the OS: `PRETTY_NAME`, else `ID`.
    pub fn display_name(&self) -> &str {
        if self.pretty_name.is_empty() {
            &self.id
        } else {
            &self.pretty_name
        }
    }

    /// Whether the OS is `id` or derives from it (os-release's `ID` or `ID_LIKE`).
    pub fn is_like(&self, id: &str) -> bool {
        self.id == id || self.id_like.iter().any(|l| l == id)
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package it was built from (vulnerabilities are published per source).
    pub source: String,
    pub source_version: String,
    /// An rpm built for a module stream: its `MODULARITYLABEL` (`name:stream:version:context`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modularity_label: Option<String>,
    #[serde(skip)]
    pub scheme: Scheme,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{file}: {message}")]
    Bad { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// Parses `os-release` (shell-style `KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> Os {
    let mut fields = std::collections::BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            fields.insert(k.trim().to_string(), v.replace("\\\"", "\""));
        }
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let (id, version_id) = (get("ID"), get("VERSION_ID"));
    let major = version_id.split('.').next().unwrap_or("").to_string();
    let ecosystem = match id.as_str() {
        "debian" if !major.is_empty() => Some(format!("Debian:{major}")),
        "ubuntu" if !version_id.is_empty() => Some(if get("VERSION").contains("LTS") {
            format!("Ubuntu:{version_id}:LTS")
        } else {
            format!("Ubuntu:{version_id}")
        }),
        "almalinux" if !major.is_empty() => Some(format!("AlmaLinux:{major}")),
        "rocky" if !major.is_empty() => Some(format!("Rocky Linux:{major}")),
        "rhel" if !major.is_empty() => Some(format!("Red Hat:enterprise_linux:{major}")),
        // OSV's ecosystems list: "The SUSE ecosystem; The ecosystem string has a `:<RELEASE>`
        // suffix representing the marketing name of the SUSE product. `<RELEASE>` matches the
        // value in the /etc/os-release `PRETTY_NAME` field" (likewise openSUSE). SUSE's own
        // records write it without the vendor's name: `SUSE:Linux Enterprise Server 15 SP5`,
        // `openSUSE:Leap 15.5` (as osv-scalibr maps opensuse-leap).
        "sles" | "sled" | "sles_sap" => get("PRETTY_NAME")
            .strip_prefix("SUSE ")
            .map(|product| format!("SUSE:{product}")),
        "opensuse-leap" if !version_id.is_empty() => Some(format!("openSUSE:Leap {version_id}")),
        "opensuse-tumbleweed" => Some("openSUSE:Tumbleweed".into()),
        "alpine" => {
            let minor: Vec<&str> = version_id.split('.').take(2).collect();
            (minor.len() == 2).then(|| format!("Alpine:v{}", minor.join(".")))
        }
        _ => None,
    };
    Os {
        pretty_name: get("PRETTY_NAME"),
        id_like: get("ID_LIKE")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        id,
        version_id,
        ecosystem,
    }
}

/// The stanzas of a deb822 file (`status`, files in `status.d`): fields with continuation
/// lines, stanzas separated by blank lines.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What dpkg's `Status:` says about a package's files (the third word, dpkg(1) "Package
/// states"; the first word is only what the administrator wants, the second an error flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    /// `installed`, `triggers-pending`, `triggers-awaited`, `half-configured`, `unpacked`: the
    /// files of `Version` are on disk, configured or not. APT treats each as installed.
    Present,
    /// `half-installed`: an installation or removal stopped half way. The files may be there
    /// (a failed upgrade keeps the old version's) or gone (a failed fresh install, a failed
    /// removal): only the file list can tell.
    Unknown,
    /// `config-files` (removed, configuration left) and `not-installed`.
    Absent,
}

/// One stanza of a dpkg database.
#[derive(Debug, Clone)]
struct DpkgEntry {
    package: Package,
    files: Files,
}

/// The stanzas of a dpkg database file. A stanza without `Status` is installed in a
/// `status.d` file (distroless images write no status), but not in `status`, where dpkg reads
/// it as not installed.
fn dpkg_entries(
    text: &str,
    file: &str,
    missing_status: Files,
) -> Result<Vec<DpkgEntry>, InventoryError> {
    let mut out = Vec::new();
    for stanza in stanzas(text) {
        let field = |k: &str| {
            stanza
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let Some(name) = field("Package") else {
            return Err(InventoryError::Bad {
                file: file.into(),
                message: "a stanza without `Package`".into(),
            });
        };
        let files = match field("Status").map(|s| s.split_whitespace().nth(2)) {
            None => missing_status,
            Some(Some(
                "installed" | "triggers-pending" | "triggers-awaited" | "half-configured"
                | "unpacked",
            )) => Files::Present,
            Some(Some("half-installed")) => Files::Unknown,
            Some(_) => Files::Absent,
        };
        let version = field("Version").unwrap_or("").to_string();
        // `Source: name` or `Source: name (version)` when it differs from the binary.
        let (source, source_version) = match field("Source") {
            Some(s) => match s.split_once(' ') {
                Some((n, v)) => (
                    n.to_string(),
                    v.trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .to_string(),
                ),
                None => (s.to_string(), version.clone()),
            },
            None => (name.to_string(), version.clone()),
        };
        out.push(DpkgEntry {
            package: Package {
                name: name.to_string(),
                version,
                arch: field("Architecture").unwrap_or("").to_string(),
                source,
                source_version,
                modularity_label: None,
                scheme: Scheme::Dpkg,
            },
            files,
        });
    }
    Ok(out)
}

/// The packages of a dpkg `status` file whose files its `Status:` says are installed:
/// `installed`, `triggers-pending`, `triggers-awaited`, `half-configured` and `unpacked`; not
/// `config-files` or `not-installed`, which `dpkg-query -W` lists too. A `half-installed`
/// package is left out here: only [`from_tree`], which can look at its files, decides it.
pub fn parse_dpkg_status(text: &str, file: &str) -> Result<Vec<Package>, InventoryError> {
    Ok(dpkg_entries(text, file, Files::Absent)?
        .into_iter()
        .filter(|e| e.files == Files::Present)
        .map(|e| e.package)
        .collect())
}

/// The dpkg database as dpkg-query reads it: `status`, then each journal file in `updates/`
/// (left by a dpkg that was stopped before it folded them in) in name order, a later stanza
/// replacing an earlier one of the same package and architecture.
fn dpkg_database(
    tree: &dyn super::rootfs::Tree,
    read: &dyn Fn(&str) -> Result<Option<String>, InventoryError>,
) -> Result<Vec<DpkgEntry>, InventoryError> {
    const ADMIN: &str = "/var/lib/dpkg";
    let mut entries: Vec<DpkgEntry> = Vec::new();
    let mut index: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut merge = |new: Vec<DpkgEntry>| {
        for e in new {
            let key = (e.package.name.clone(), e.package.arch.clone());
            match index.get(&key) {
                Some(&i) => entries[i] = e,
                None => {
                    index.insert(key, entries.len());
                    entries.push(e);
                }
            }
        }
    };
    let status = format!("{ADMIN}/status");
    if let Some(t) = read(&status)? {
        merge(dpkg_entries(&t, &status, Files::Absent)?);
    }
    let dir = format!("{ADMIN}/updates");
    let mut journal: Vec<String> = tree
        .list(&dir)
        .map_err(|source| InventoryError::Io {
            file: dir.clone(),
            source,
        })?
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    journal.sort();
    for n in journal {
        let file = format!("{dir}/{n}");
        if let Some(t) = read(&file)? {
            merge(dpkg_entries(&t, &file, Files::Absent)?);
        }
    }
    Ok(entries)
}

/// Whether a half-installed package's files are on disk: any file its list (`info/<name>.list`
/// or, for `Multi-Arch: same`, `info/<name>:<arch>.list`) names exists as a file or link.
fn half_installed_files_present(
    tree: &dyn super::rootfs::Tree,
    read: &dyn Fn(&str) -> Result<Option<String>, InventoryError>,
    p: &Package,
) -> Result<bool, InventoryError> {
    for list in [
        format!("/var/lib/dpkg/info/{}:{}.list", p.name, p.arch),
        format!("/var/lib/dpkg/info/{}.list", p.name),
    ] {
        let Some(text) = read(&list)? else { continue };
        for path in text.lines().filter(|l| l.starts_with('/')) {
            let meta = tree.metadata(path).map_err(|source| InventoryError::Io {
                file: path.to_string(),
                source,
            })?;
            if meta.is_some_and(|m| !m.dir) {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    Ok(false)
}

/// Packages of apk's database (`lib/apk/db/installed`): `P:` name, `V:` version, `A:` arch,
/// `o:` origin (the source package).
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for record in text.split("\n\n") {
        let field = |k: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
        };
        let Some(name) = field("P") else { continue };
        let version = field("V").unwrap_or("").to_string();
        out.push(Package {
            name: name.to_string(),
            source: field("o").unwrap_or(name).to_string(),
            source_version: version.clone(),
            version,
            arch: field("A").unwrap_or("").to_string(),
            modularity_label: None,
            scheme: Scheme::Apk,
        });
    }
    out
}

/// The inventory of a root filesystem in a directory.
pub fn from_dir(root: &Path) -> Result<(Os, Vec<Package>), InventoryError> {
    from_tree(&super::rootfs::DirTree(root.to_path_buf()))
}

/// The OS of a root filesystem, from `etc/os-release` or `usr/lib/os-release`; unknown (all
/// fields empty) when neither is there.
pub fn os_of(tree: &dyn super::rootfs::Tree) -> Result<Os, InventoryError> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        let bytes = tree.read(path).map_err(|source| InventoryError::Io {
            file: path.into(),
            source,
        })?;
        if let Some(b) = bytes {
            return Ok(parse_os_release(&String::from_utf8_lossy(&b)));
        }
    }
    Ok(Os::default())
}

/// The inventory of a root filesystem: the OS and its dpkg, apk and rpm packages.
pub fn from_tree(tree: &dyn super::rootfs::Tree) -> Result<(Os, Vec<Package>), InventoryError> {
    let read = |path: &str| -> Result<Option<String>, InventoryError> {
        let bytes = tree.read(path).map_err(|source| InventoryError::Io {
            file: path.into(),
            source,
        })?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let os = os_of(tree)?;
    let mut packages = Vec::new();
    for e in dpkg_database(tree, &read)? {
        let installed = match e.files {
            Files::Present => true,
            Files::Unknown => half_installed_files_present(tree, &read, &e.package)?,
            Files::Absent => false,
        };
        if installed {
            packages.push(e.package);
        }
    }
    let mut names = tree
        .list("/var/lib/dpkg/status.d")
        .map_err(|source| InventoryError::Io {
            file: "/var/lib/dpkg/status.d".into(),
            source,
        })?;
    names.sort();
    // status.d also holds md5sums files next to the stanzas.
    for n in names.iter().filter(|n| !n.ends_with(".md5sums")) {
        let file = format!("/var/lib/dpkg/status.d/{n}");
        if let Some(t) = read(&file)? {
            let entries = dpkg_entries(&t, &file, Files::Present)?;
            packages.extend(
                entries
                    .into_iter()
                    .filter(|e| e.files == Files::Present)
                    .map(|e| e.package),
            );
        }
    }
    if let Some(t) = read("/lib/apk/db/installed")? {
        packages.extend(parse_apk_installed(&t));
    }
    packages.extend(super::rpm::from_tree(tree)?);
    Ok((os, packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_and_ecosystems() {
        let debian = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(debian.ecosystem.as_deref(), Some("Debian:12"));
        assert_eq!(debian.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        let ubuntu = parse_os_release(
            "ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n",
        );
        assert_eq!(ubuntu.ecosystem.as_deref(), Some("Ubuntu:22.04:LTS"));
        let alpine = parse_os_release("ID=alpine\nVERSION_ID=3.19.1\n");
        assert_eq!(alpine.ecosystem.as_deref(), Some("Alpine:v3.19"));
        let rocky = parse_os_release("ID=\"rocky\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!(rocky.ecosystem.as_deref(), Some("Rocky Linux:9"));
        assert_eq!(parse_os_release("ID=plan9\n").ecosystem, None);
        let sles = parse_os_release(
            "NAME=\"SLES\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\nID_LIKE=\"suse\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5\"\n",
        );
        assert_eq!(
            sles.ecosystem.as_deref(),
            Some("SUSE:Linux Enterprise Server 15 SP5")
        );
        assert!(sles.is_like("suse") && !sles.is_like("rhel"));
        let leap = parse_os_release(
            "NAME=\"openSUSE Leap\"\nVERSION_ID=\"15.5\"\nID=\"opensuse-leap\"\nPRETTY_NAME=\"openSUSE Leap 15.5\"\n",
        );
        assert_eq!(leap.ecosystem.as_deref(), Some("openSUSE:Leap 15.5"));
    }

    #[test]
    fn dpkg_states_decide_what_is_installed() {
        let stanza = |name: &str, status: &str| {
            format!("Package: {name}\nStatus: {status}\nVersion: 1\nArchitecture: amd64\n\n")
        };
        let mut text = String::new();
        for (name, status) in [
            ("ii", "install ok installed"),
            ("hi", "hold ok installed"),
            ("ri", "deinstall ok installed"),
            ("it", "install ok triggers-pending"),
            ("iw", "install ok triggers-awaited"),
            ("if", "install ok half-configured"),
            ("iu", "install ok unpacked"),
            ("ih", "install reinstreq half-installed"),
            ("rc", "deinstall ok config-files"),
            ("ic", "install ok config-files"),
            ("pn", "purge ok not-installed"),
        ] {
            text.push_str(&stanza(name, status));
        }
        text.push_str("Package: nostatus\nVersion: 1\n");
        let names: Vec<String> = parse_dpkg_status(&text, "status")
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["ii", "hi", "ri", "it", "iw", "if", "iu"]);
        // In status.d (distroless), a stanza without Status is installed.
        let entries = dpkg_entries(
            "Package: base\nVersion: 1\n",
            "status.d/base",
            Files::Present,
        )
        .unwrap();
        assert_eq!(entries[0].files, Files::Present);
    }

    #[test]
    fn dpkg_stanzas_sources_and_states() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n\nPackage: gone\nStatus: purge ok not-installed\nVersion: 1\n\nPackage: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\nArchitecture: amd64\n";
        let p = parse_dpkg_status(text, "status").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].source.as_str(), p[0].source_version.as_str()),
            ("glibc", "2.36-9+deb12u4")
        );
        assert_eq!(
            (p[1].source.as_str(), p[1].source_version.as_str()),
            ("openssl", "3.0.11-1~deb12u2")
        );
        assert!(parse_dpkg_status("Version: 1\n", "status").is_err());
    }

    #[test]
    fn apk_database() {
        let p = parse_apk_installed(
            "C:Q1abc\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[1].name.as_str(),
                p[1].source.as_str(),
                p[1].version.as_str()
            ),
            ("libcrypto3", "openssl", "3.1.4-r5")
        );
    }
}
