//! The hardening policy: declarative rules checked against the image's files and packages.
//! The embedded baseline (`baseline.toml`) holds CIS-style rules for Debian, Ubuntu and
//! RHEL-family images; images switch rules off and add their own. A failing rule of level
//! `error` fails the gate.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::inventory::{InventoryError, Os, Package, os_of};
use super::rootfs::Tree;

const BASELINE: &str = include_str!("baseline.toml");

/// Most entries a world-writable walk visits, and how deep it goes: a hostile filesystem
/// (directory cycles, millions of entries) cannot keep the scan running.
const WALK_ENTRIES: usize = 500_000;
const WALK_DEPTH: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Check {
    FilePresent {
        paths: Vec<String>,
    },
    FileAbsent {
        paths: Vec<String>,
    },
    Mode {
        path: String,
        /// Octal, e.g. "0640": no permission bit beyond these.
        max_mode: String,
        owner_uid: Option<u32>,
        group_gid: Option<u32>,
    },
    Content {
        path: String,
        must_match: Option<String>,
        must_not_match: Option<String>,
    },
    PackagePresent {
        names: Vec<String>,
    },
    PackageAbsent {
        names: Vec<String>,
    },
    /// An sshd setting's effective value: the first occurrence wins, drop-ins included first;
    /// `default` is OpenSSH's own when the setting is absent.
    Sshd {
        setting: String,
        expect: String,
        default: Option<String>,
    },
    WorldWritable {
        paths: Vec<String>,
    },
    /// A registry setting (Windows): the first of `values` (`HKLM\…\Key\ValueName`) that is
    /// set decides, so a Group Policy key listed first overrides the setting's own; `default`
    /// is Windows' behaviour when none is set (without it, unset fails).
    Registry {
        values: Vec<String>,
        expect: String,
        default: Option<String>,
    },
    /// A local account (Windows, by relative id: 501 is Guest) is disabled or absent.
    WindowsAccountDisabled {
        rid: u32,
    },
    /// Automatic logon (Windows) is not on with a stored password.
    WindowsAutologon {},
}

/// The systems a rule is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[default]
    Linux,
    Windows,
}

// No deny_unknown_fields here: serde cannot combine it with flatten; `Check` refuses unknown
// keys instead.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub level: Level,
    /// Which images it applies to: `linux` (the default) or `windows`.
    #[serde(default)]
    pub os: Platform,
    /// The systems the rule is for, by os-release `ID` or `ID_LIKE` (`["rhel", "fedora"]` takes
    /// RHEL, Rocky, AlmaLinux, Oracle Linux and Fedora); empty, every image. A rule for other
    /// systems is left out of the results, not passed: SELinux has no meaning on Debian.
    #[serde(default)]
    pub applies_to: Vec<String>,
    #[serde(flatten)]
    pub check: Check,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleResult {
    pub id: String,
    pub title: String,
    pub level: Level,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Bad { file: String, message: String },
    #[error("reading {path} of the image: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

fn parse(text: &str, file: &str) -> Result<Vec<Rule>, PolicyError> {
    let rules = toml::from_str::<RuleFile>(text)
        .map_err(|e| PolicyError::Bad {
            file: file.into(),
            message: e.to_string(),
        })?
        .rule;
    for r in &rules {
        let bad = |message: String| PolicyError::Bad {
            file: file.into(),
            message: format!("rule `{}`: {message}", r.id),
        };
        // A rule is for one platform: a registry check on a Linux image, or a file check on a
        // Windows one, could only fail.
        let windows_kind = matches!(
            r.check,
            Check::Registry { .. }
                | Check::WindowsAccountDisabled { .. }
                | Check::WindowsAutologon {}
        );
        if windows_kind != (r.os == Platform::Windows) {
            return Err(bad(if windows_kind {
                "this kind reads the Windows registry: add os = \"windows\"".into()
            } else {
                "this kind checks Linux files and packages: remove os = \"windows\"".into()
            }));
        }
        if r.os == Platform::Windows && !r.applies_to.is_empty() {
            return Err(bad(
                "applies_to names Linux distributions (os-release IDs); a Windows rule takes none"
                    .into(),
            ));
        }
        match &r.check {
            Check::Mode { max_mode, .. } if u32::from_str_radix(max_mode, 8).is_err() => {
                return Err(bad(format!(
                    "max_mode `{max_mode}` is not octal like \"0640\""
                )));
            }
            Check::Content {
                must_match,
                must_not_match,
                ..
            } => {
                for re in must_match.iter().chain(must_not_match) {
                    regex::Regex::new(re).map_err(|e| bad(format!("bad regex: {e}")))?;
                }
            }
            _ => {}
        }
    }
    Ok(rules)
}

/// The baseline without `disabled`, plus the rules of `extra` files.
pub fn rules(extra: &[std::path::PathBuf], disabled: &[String]) -> Result<Vec<Rule>, PolicyError> {
    let mut rules = parse(BASELINE, "the embedded baseline")?;
    for path in extra {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Bad {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        let added = parse(&text, &path.display().to_string())?;
        for r in added {
            // An image's own rule replaces a baseline rule of the same id.
            rules.retain(|b| b.id != r.id);
            rules.push(r);
        }
    }
    if let Some(unknown) = disabled.iter().find(|d| !rules.iter().any(|r| &r.id == *d)) {
        return Err(PolicyError::Bad {
            file: "imagepipe.toml".into(),
            message: format!(
                "scan.disable_rules names `{unknown}`, which no rule has; rules: {}",
                rules
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    rules.retain(|r| !disabled.contains(&r.id));
    Ok(rules)
}

fn read(tree: &dyn Tree, path: &str) -> Result<Option<String>, PolicyError> {
    tree.read(path)
        .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .map_err(|source| PolicyError::Read {
            path: path.into(),
            source,
        })
}

/// The effective sshd settings: `sshd_config` with its `Include`d drop-ins read where the
/// `Include` stands; as sshd does, the first value of a keyword wins. Keywords are
/// case-insensitive; a `Match` block ends the global settings.
pub fn sshd_settings(tree: &dyn Tree) -> Result<BTreeMap<String, String>, PolicyError> {
    let mut out = BTreeMap::new();
    let mut files = 0;
    sshd_file(tree, "/etc/ssh/sshd_config", 0, &mut files, &mut out)?;
    Ok(out)
}

/// Reads one sshd configuration file into `out`; returns false when a `Match` ended the
/// global part.
fn sshd_file(
    tree: &dyn Tree,
    file: &str,
    depth: usize,
    files: &mut usize,
    out: &mut BTreeMap<String, String>,
) -> Result<bool, PolicyError> {
    *files += 1;
    // Includes that include themselves, or thousands of files, end here.
    if depth > 8 || *files > 256 {
        return Ok(true);
    }
    let Some(text) = read(tree, file)? else {
        return Ok(true);
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .map(|(k, v)| {
                (
                    k,
                    v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                        .trim(),
                )
            })
            .unwrap_or((line, ""));
        let key = key.to_ascii_lowercase();
        if key == "match" {
            return Ok(false);
        }
        if key == "include" {
            for pattern in value.split_whitespace() {
                let pattern = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("/etc/ssh/{pattern}")
                };
                for f in expand(tree, &pattern)? {
                    if !sshd_file(tree, &f, depth + 1, files, out)? {
                        return Ok(false);
                    }
                }
            }
            continue;
        }
        out.entry(key).or_insert_with(|| value.to_string());
    }
    Ok(true)
}

/// A `*` glob in the last path component, sorted as sshd sorts its matches.
fn expand(tree: &dyn Tree, pattern: &str) -> Result<Vec<String>, PolicyError> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("/", pattern));
    if !name.contains('*') {
        return Ok(vec![pattern.to_string()]);
    }
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let mut names: Vec<String> = tree
        .list(dir)
        .map_err(|source| PolicyError::Read {
            path: dir.into(),
            source,
        })?
        .into_iter()
        .filter(|n| n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len())
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| format!("{dir}/{n}")).collect())
}

/// Files with the write bit for others under `roots`, not following symlinks.
fn world_writable(tree: &dyn Tree, roots: &[String]) -> Result<(Vec<String>, bool), PolicyError> {
    let mut found = Vec::new();
    let mut seen = 0usize;
    let mut stack: Vec<(String, usize)> = distinct_roots(tree, roots)?
        .into_iter()
        .map(|r| (r, 0))
        .collect();
    while let Some((dir, depth)) = stack.pop() {
        let entries = tree.list_meta(&dir).map_err(|source| PolicyError::Read {
            path: dir.clone(),
            source,
        })?;
        for (n, m) in entries {
            seen += 1;
            if seen > WALK_ENTRIES {
                return Ok((found, true));
            }
            let path = format!("{}/{n}", dir.trim_end_matches('/'));
            if m.symlink {
                continue;
            }
            if m.dir {
                if depth < WALK_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if m.mode & 0o002 != 0 {
                found.push(path);
            }
        }
    }
    Ok((found, false))
}

/// `roots` with their links resolved, leaving out any inside another: in a merged-`/usr`
/// image `/bin` is `/usr/bin`, and walking it twice would report each finding twice.
fn distinct_roots(tree: &dyn Tree, roots: &[String]) -> Result<Vec<String>, PolicyError> {
    let mut out: Vec<String> = Vec::new();
    for r in roots {
        let c = tree.canonical(r).map_err(|source| PolicyError::Read {
            path: r.clone(),
            source,
        })?;
        out.push(c);
    }
    let inside =
        |a: &str, b: &str| b == "/" || a.strip_prefix(b).is_some_and(|rest| rest.starts_with('/'));
    let all = out.clone();
    out.retain(|a| !all.iter().any(|b| b != a && inside(a, b)));
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks every rule.
pub fn evaluate(
    rules: &[Rule],
    tree: &dyn Tree,
    packages: &[Package],
) -> Result<Vec<RuleResult>, PolicyError> {
    evaluate_with_hives(rules, tree, packages, None)
}

/// [`evaluate`] with the image's registry hives already read (`Some(None)`: the image has
/// none), so that a Windows scan reads them once for its inventory and its rules.
pub(crate) fn evaluate_with_hives(
    rules: &[Rule],
    tree: &dyn Tree,
    packages: &[Package],
    hives: Option<Option<crate::windows::Hives>>,
) -> Result<Vec<RuleResult>, PolicyError> {
    let mut sshd: Option<BTreeMap<String, String>> = None;
    let mut os: Option<Os> = None;
    let mut hives = hives;
    let mut out = Vec::new();
    for r in rules {
        if let Some(windows) = windows_check(&r.check, tree, &mut hives)? {
            out.push(RuleResult {
                id: r.id.clone(),
                title: r.title.clone(),
                level: r.level,
                passed: windows.0,
                detail: if windows.0 { String::new() } else { windows.1 },
            });
            continue;
        }
        if !r.applies_to.is_empty() {
            let os = match &mut os {
                Some(os) => os,
                None => os.insert(os_of(tree).map_err(|e| match e {
                    InventoryError::Io { file, source } => PolicyError::Read { path: file, source },
                    InventoryError::Bad { file, message } => PolicyError::Bad { file, message },
                })?),
            };
            if !r.applies_to.iter().any(|id| os.is_like(id)) {
                continue;
            }
        }
        let (passed, detail) = match &r.check {
            Check::FilePresent { paths } | Check::FileAbsent { paths } => {
                let mut present = Vec::new();
                for p in paths {
                    if tree
                        .metadata(p)
                        .map_err(|source| PolicyError::Read {
                            path: p.clone(),
                            source,
                        })?
                        .is_some()
                    {
                        present.push(p.as_str());
                    }
                }
                if matches!(r.check, Check::FilePresent { .. }) {
                    let missing: Vec<&str> = paths
                        .iter()
                        .map(String::as_str)
                        .filter(|p| !present.contains(p))
                        .collect();
                    (
                        missing.is_empty(),
                        format!("missing: {}", missing.join(", ")),
                    )
                } else {
                    (
                        present.is_empty(),
                        format!("present: {}", present.join(", ")),
                    )
                }
            }
            Check::Mode {
                path,
                max_mode,
                owner_uid,
                group_gid,
            } => {
                let max = u32::from_str_radix(max_mode, 8).unwrap_or(0);
                match tree.metadata(path).map_err(|source| PolicyError::Read {
                    path: path.clone(),
                    source,
                })? {
                    None => (true, format!("{path} is not on the image")),
                    Some(m) => {
                        let mut problems = Vec::new();
                        if m.mode & !max != 0 {
                            problems.push(format!("mode {:04o} exceeds {max_mode}", m.mode));
                        }
                        if owner_uid.is_some_and(|u| u != m.uid) {
                            problems.push(format!("owner uid {}", m.uid));
                        }
                        if group_gid.is_some_and(|g| g != m.gid) {
                            problems.push(format!("group gid {}", m.gid));
                        }
                        (
                            problems.is_empty(),
                            format!("{path}: {}", problems.join(", ")),
                        )
                    }
                }
            }
            Check::Content {
                path,
                must_match,
                must_not_match,
            } => match read(tree, path)? {
                None => (must_match.is_none(), format!("{path} is not on the image")),
                Some(text) => {
                    let re = |s: &str| regex::Regex::new(s).ok();
                    let missing = must_match
                        .as_deref()
                        .and_then(re)
                        .is_some_and(|r| !r.is_match(&text));
                    let bad = must_not_match.as_deref().and_then(re).and_then(|r| {
                        r.find(&text)
                            .map(|m| m.as_str().lines().next().unwrap_or("").to_string())
                    });
                    match (missing, bad) {
                        (false, None) => (true, String::new()),
                        // The forbidden line says more than the missing one. Only its key part:
                        // shadow lines are secrets.
                        (_, Some(line)) => (
                            false,
                            format!(
                                "{path} has a forbidden line starting `{}`",
                                line.split(':').next().unwrap_or("")
                            ),
                        ),
                        (true, None) => (false, format!("{path} lacks what the rule requires")),
                    }
                }
            },
            Check::PackagePresent { names } | Check::PackageAbsent { names } => {
                let installed: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| packages.iter().any(|p| p.name == *n))
                    .collect();
                if matches!(r.check, Check::PackageAbsent { .. }) {
                    (
                        installed.is_empty(),
                        format!("installed: {}", installed.join(", ")),
                    )
                } else {
                    (
                        installed.len() == names.len(),
                        format!("installed: {}", installed.join(", ")),
                    )
                }
            }
            Check::Sshd {
                setting,
                expect,
                default,
            } => {
                if sshd.is_none() {
                    sshd = Some(sshd_settings(tree)?);
                }
                let settings = sshd.as_ref().map(|s| s.get(&setting.to_ascii_lowercase()));
                match (settings.flatten(), default) {
                    (Some(v), _) if v.eq_ignore_ascii_case(expect) => (true, String::new()),
                    (Some(v), _) => (false, format!("{setting} is `{v}`, not `{expect}`")),
                    (None, _) if read(tree, "/etc/ssh/sshd_config")?.is_none() => {
                        (true, "sshd is not configured on the image".into())
                    }
                    (None, Some(d)) if d.eq_ignore_ascii_case(expect) => (true, String::new()),
                    (None, d) => (
                        false,
                        format!(
                            "{setting} is not set (OpenSSH's default `{}` applies), not `{expect}`",
                            d.as_deref().unwrap_or("?")
                        ),
                    ),
                }
            }
            Check::Registry { .. }
            | Check::WindowsAccountDisabled { .. }
            | Check::WindowsAutologon {} => continue,
            Check::WorldWritable { paths } => {
                let (found, cut) = world_writable(tree, paths)?;
                let mut detail = found
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if cut {
                    detail.push_str(" (the walk stopped at its entry limit)");
                }
                (found.is_empty() && !cut, detail)
            }
        };
        out.push(RuleResult {
            id: r.id.clone(),
            title: r.title.clone(),
            level: r.level,
            passed,
            detail: if passed { String::new() } else { detail },
        });
    }
    Ok(out)
}

/// A Windows check's `(passed, detail)`, from the image's hives (read once); `None` for the
/// other kinds.
fn windows_check(
    check: &Check,
    tree: &dyn Tree,
    hives: &mut Option<Option<crate::windows::Hives>>,
) -> Result<Option<(bool, String)>, PolicyError> {
    use crate::windows::policy as win;
    if !matches!(
        check,
        Check::Registry { .. } | Check::WindowsAccountDisabled { .. } | Check::WindowsAutologon {}
    ) {
        return Ok(None);
    }
    let err = |e: crate::inventory::InventoryError| PolicyError::Bad {
        file: "the image's registry".into(),
        message: e.to_string(),
    };
    if hives.is_none() {
        *hives = Some(crate::windows::Hives::load(tree).map_err(err)?);
    }
    let Some(Some(h)) = hives.as_ref() else {
        return Ok(Some((false, "the image has no Windows registry".into())));
    };
    let result = match check {
        Check::Registry {
            values,
            expect,
            default,
        } => win::registry(h, values, expect, default.as_deref()),
        Check::WindowsAccountDisabled { rid } => win::account_disabled(h, *rid),
        _ => win::autologon(h),
    };
    result.map(Some).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::DirTree;

    #[test]
    fn the_baseline_parses_and_rules_can_be_disabled_and_added() {
        let all = rules(&[], &[]).unwrap();
        assert!(all.iter().any(|r| r.id == "ssh-no-root-login"));
        let fewer = rules(&[], &["no-telnetd-binary".into()]).unwrap();
        assert_eq!(fewer.len(), all.len() - 1);
        let err = rules(&[], &["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("`nope`, which no rule has"), "{err}");
    }

    #[test]
    fn a_rule_is_for_the_platform_its_kind_reads() {
        let err = |text: &str| parse(text, "p.toml").unwrap_err().to_string();
        let registry = "[[rule]]\nid = \"r\"\ntitle = \"t\"\nlevel = \"error\"\nkind = \"registry\"\nvalues = ['HKLM\\\\X\\\\Y']\nexpect = \"1\"\n";
        assert!(
            err(registry).contains("add os = \"windows\""),
            "{}",
            err(registry)
        );
        let file = "[[rule]]\nid = \"f\"\ntitle = \"t\"\nlevel = \"error\"\nos = \"windows\"\nkind = \"file_absent\"\npaths = [\"/etc/x\"]\n";
        assert!(
            err(file).contains("remove os = \"windows\""),
            "{}",
            err(file)
        );
        let scoped = registry.replace(
            "kind =",
            "os = \"windows\"\napplies_to = [\"rhel\"]\nkind =",
        );
        assert!(
            err(&scoped).contains("a Windows rule takes none"),
            "{}",
            err(&scoped)
        );
        assert!(
            parse(
                &registry.replace("kind =", "os = \"windows\"\nkind ="),
                "p.toml"
            )
            .is_ok()
        );
    }

    #[test]
    fn rhel_rules_apply_to_the_rhel_family_only() {
        let results = |os_release: &str, files: &[(&str, &str)]| {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for (path, text) in std::iter::once(&("etc/os-release", os_release)).chain(files) {
                std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
                std::fs::write(root.join(path), text).unwrap();
            }
            let rules = rules(&[], &[]).unwrap();
            evaluate(&rules, &DirTree(root.to_path_buf()), &[])
                .unwrap()
                .into_iter()
                .filter(|r| r.id == "selinux-enforcing" || r.id == "crypto-policy-not-legacy")
                .map(|r| (r.id, r.passed, r.detail))
                .collect::<Vec<_>>()
        };
        let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n";
        let hardened = [
            (
                "etc/selinux/config",
                "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n",
            ),
            ("etc/crypto-policies/config", "DEFAULT:SHA1\n"),
        ];
        assert!(
            results(rocky, &hardened).iter().all(|r| r.1),
            "{:?}",
            results(rocky, &hardened)
        );
        // Oracle Linux says only fedora.
        let oracle = "ID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n";
        assert_eq!(results(oracle, &hardened).len(), 2);
        let weak = [
            ("etc/selinux/config", "SELINUX=permissive\n"),
            ("etc/crypto-policies/config", "LEGACY\n"),
        ];
        let got = results(rocky, &weak);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| !r.1), "{got:?}");
        assert!(got[0].2.contains("SELINUX=permissive"), "{got:?}");
        // No config at all: SELinux is disabled; no crypto policies (RHEL 7) is fine.
        let bare = results(rocky, &[]);
        assert_eq!(
            bare.iter().map(|r| r.1).collect::<Vec<_>>(),
            [false, true],
            "{bare:?}"
        );
        // Debian: neither rule is checked, so neither appears.
        assert!(results("ID=debian\nVERSION_ID=\"12\"\n", &weak).is_empty());
    }

    #[test]
    fn a_merged_usr_is_walked_once_and_findings_named_by_their_real_path() {
        use std::os::unix::fs::{PermissionsExt as _, symlink};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        // Absolute, as some images have it: it must resolve inside the root, not on this host.
        symlink("/usr/lib", root.join("lib")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        for f in ["usr/bin/open", "usr/lib/open", "etc/closed"] {
            std::fs::write(root.join(f), "").unwrap();
        }
        for (f, mode) in [
            ("usr/bin/open", 0o777),
            ("usr/lib/open", 0o666),
            ("etc/closed", 0o644),
        ] {
            std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let tree = DirTree(root.to_path_buf());
        let roots = ["/etc", "/usr", "/bin", "/sbin", "/lib"].map(String::from);
        assert_eq!(
            distinct_roots(&tree, &roots).unwrap(),
            ["/etc", "/sbin", "/usr"]
        );
        let (mut found, cut) = world_writable(&tree, &roots).unwrap();
        found.sort();
        assert_eq!(found, ["/usr/bin/open", "/usr/lib/open"]);
        assert!(!cut);
        // Without /usr among the roots, the linked directories are walked where they lead.
        let roots = ["/bin", "/lib"].map(String::from);
        assert_eq!(
            distinct_roots(&tree, &roots).unwrap(),
            ["/usr/bin", "/usr/lib"]
        );
    }

    #[test]
    fn sshd_effective_settings_follow_includes_and_the_first_value() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("etc/ssh");
        std::fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
        std::fs::write(
            ssh.join("sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nPasswordAuthentication yes\nMatch User x\nPermitEmptyPasswords yes\n",
        )
        .unwrap();
        std::fs::write(
            ssh.join("sshd_config.d/99-hardening.conf"),
            "permitrootlogin no\n",
        )
        .unwrap();
        std::fs::write(
            ssh.join("sshd_config.d/10-x.conf"),
            "PasswordAuthentication=no\n",
        )
        .unwrap();
        let s = sshd_settings(&DirTree(dir.path().into())).unwrap();
        assert_eq!(s["permitrootlogin"], "no", "the drop-in comes first");
        assert_eq!(s["passwordauthentication"], "no");
        assert!(
            !s.contains_key("permitemptypasswords"),
            "Match blocks do not count"
        );
    }
}
