//! Matching installed packages against an offline OSV database: a directory of OSV JSON
//! records (<https://ossf.github.io/osv-schema/>), or osv.dev's per-ecosystem `all.zip` dumps.
//!
//! A record is evaluated exactly as the schema's "Evaluation" section prescribes (schema 1.7.5,
//! `IsVulnerable`): "A version is considered affected if it lies within any one of the ranges
//! or is listed in the versions list", over every `affected` entry whose package is the
//! installed one. In detail:
//!
//! - An entry applies when its `name` is the package's source package (distributions publish
//!   by source; for rpm also the binary package's own name, which Red Hat's records use for
//!   packages whose name is their source's) and its ecosystem is the image's (`Debian:12`) or
//!   the same ecosystem without a release (`Debian`), since "the ecosystem string might
//!   optionally have a `:<RELEASE>` suffix to scope the package to a particular Debian
//!   release". Red Hat's ecosystems are CPE tails that end in a repository
//!   (`Red Hat:enterprise_linux:9::appstream`, `…::baseos`): a repository applies to the
//!   release it belongs to (`Red Hat:enterprise_linux:9`); other products of the same release
//!   (`Red Hat:rhel_eus:9.2::appstream`, extended update support) do not.
//! - rpm versions without an epoch (`3.0.7-27.el9`) have epoch 0, as rpm itself compares them
//!   (see [`crate::version::rpm_evr`] and docs/scan.md).
//! - `versions` lists match by exact string (`IncludedInVersions`: `if v == version`).
//! - Ranges: a range is considered only `BeforeLimits` ("if evt.limit is present and v <
//!   evt.limit", with an implicit `"*"` when there is none, and `*` meaning infinity); its
//!   events are `sorted` in the ecosystem's order (`introduced: "0"` "sorts before any other
//!   version") and walked: `introduced` opens, `fixed` closes at the fixed version,
//!   `last_affected` closes above it. `ECOSYSTEM` ranges use the distribution's own ordering,
//!   `SEMVER` ranges SemVer 2.0 precedence, and `GIT` ranges are skipped: they "cannot be
//!   answered without access to a copy of the underlying Git repository".
//! - A withdrawn record ("If the field is missing, then the entry has not been withdrawn")
//!   never matches.
//!
//! A record is one vulnerability: it gives at most one finding per installed package, however
//! many entries name it. The fix reported is the lowest `fixed` version, above the installed
//! one, at which the record no longer applies at all; none when no such version exists (a
//! version that only closes one range while another still covers it is no fix).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Severity;
use super::inventory::Package;
use super::version::Scheme;

/// The largest record a zip may hold.
const MAX_RECORD: u64 = 16 << 20;

#[derive(Debug, Clone, Deserialize)]
struct Record {
    id: String,
    modified: DateTime<Utc>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<PackageRef>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct PackageRef {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Event {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

/// The loaded database.
#[derive(Debug, Default)]
pub struct Database {
    /// Every record that is not withdrawn.
    records_by_index: Vec<Record>,
    /// `(ecosystem as written, package name)` → the records naming it, each once, in load order.
    entries: HashMap<(String, String), Vec<usize>>,
    pub records: usize,
    pub withdrawn: usize,
    /// The newest `modified` of any record: how fresh the database is.
    pub newest: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("{file}: not an OSV record: {message}; refresh the database")]
    Bad { file: String, message: String },
    #[error("{file}: not a zip of OSV records: {message}; download the ecosystem's all.zip again")]
    Dump { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// A vulnerability affecting an installed package.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub source: String,
    pub installed: String,
    /// The first fixed version after the installed one, when the database knows it.
    pub fixed: Option<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    pub summary: String,
    /// The waiver that accepts this finding for now; it then no longer gates.
    pub waived: Option<super::waiver::Waiver>,
}

/// The files under `dir` (searched recursively, each directory's entries in name order) whose
/// extension is one of `extensions`; an error names the directory it happened in.
pub(crate) fn files_under(
    dir: &Path,
    extensions: &[&str],
) -> Result<Vec<std::path::PathBuf>, (std::path::PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries = std::fs::read_dir(&d)
            .and_then(|r| {
                r.map(|e| e.map(|e| e.path()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| (d.clone(), e))?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
            {
                files.push(p);
            }
        }
    }
    Ok(files)
}

impl Database {
    /// Adds one record from its JSON text.
    pub fn add(&mut self, json: &[u8], file: &str) -> Result<(), OsvError> {
        let record: Record = serde_json::from_slice(json).map_err(|e| OsvError::Bad {
            file: file.into(),
            message: e.to_string(),
        })?;
        self.records += 1;
        self.newest = self.newest.max(Some(record.modified));
        if record.withdrawn.is_some() {
            self.withdrawn += 1;
            return Ok(());
        }
        let index = self.records_by_index.len();
        for affected in &record.affected {
            let Some(p) = &affected.package else { continue };
            let list = self
                .entries
                .entry((scope(&p.ecosystem).to_string(), p.name.clone()))
                .or_default();
            if list.last() != Some(&index) {
                list.push(index);
            }
        }
        self.records_by_index.push(record);
        Ok(())
    }

    /// Loads a database: a directory of OSV JSON records and per-ecosystem `all.zip` dumps
    /// (searched recursively), or one such zip or record.
    pub fn load(path: &Path) -> Result<Self, OsvError> {
        let mut db = Self::default();
        if !path.is_dir() {
            if path.extension().is_some_and(|e| e == "json") {
                db.add_file(path)?;
            } else {
                db.add_zip(path)?;
            }
            return Ok(db);
        }
        let files = files_under(path, &["json", "zip"]).map_err(|(d, source)| OsvError::Io {
            file: d.display().to_string(),
            source,
        })?;
        for path in files {
            if path.extension().is_some_and(|e| e == "json") {
                db.add_file(&path)?;
            } else {
                db.add_zip(&path)?;
            }
        }
        Ok(db)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), OsvError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| OsvError::Io {
            file: file.clone(),
            source,
        })?;
        self.add(&bytes, &file)
    }

    /// Adds the records of a zip of OSV JSON files (osv.dev's `<ecosystem>/all.zip`).
    fn add_zip(&mut self, path: &Path) -> Result<(), OsvError> {
        let file = path.display().to_string();
        let io = |source| OsvError::Io {
            file: file.clone(),
            source,
        };
        let bad = |message: String| OsvError::Dump {
            file: file.clone(),
            message,
        };
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path).map_err(io)?)
            .map_err(|e| bad(e.to_string()))?;
        let mut buf = Vec::new();
        for i in 0..zip.len() {
            let entry = zip
                .by_index(i)
                .map_err(|e| bad(format!("member {i}: {e}")))?;
            if entry.is_dir() || !entry.name().ends_with(".json") {
                continue;
            }
            let name = format!("{file}:{}", entry.name());
            buf.clear();
            // A record is a few KiB; the limit stops a zip bomb, not a real record.
            std::io::Read::take(entry, MAX_RECORD + 1)
                .read_to_end(&mut buf)
                .map_err(|e| OsvError::Bad {
                    file: name.clone(),
                    message: format!("unreadable ({e})"),
                })?;
            if buf.len() as u64 > MAX_RECORD {
                return Err(OsvError::Bad {
                    file: name,
                    message: format!("larger than {} MiB", MAX_RECORD >> 20),
                });
            }
            self.add(&buf, &name)?;
        }
        Ok(())
    }

    /// The findings for `packages` of an image whose packages are published under `ecosystem`
    /// (`Debian:12`): one per record and installed package at most.
    pub fn matches(&self, ecosystem: &str, packages: &[Package]) -> Vec<Finding> {
        // Records that name the ecosystem without its release apply to every release.
        let base = ecosystem.split_once(':').map(|(b, _)| b);
        let mut out = Vec::new();
        for p in packages {
            // rpm records may name the binary package itself.
            let names: &[&str] = if p.scheme == Scheme::Rpm && p.name != p.source {
                &[&p.source, &p.name]
            } else {
                &[&p.source]
            };
            let mut records: Vec<usize> = [Some(ecosystem), base]
                .into_iter()
                .flatten()
                .flat_map(|eco| names.iter().map(move |n| (eco, *n)))
                .filter_map(|(eco, n)| self.entries.get(&(eco.to_string(), n.to_string())))
                .flatten()
                .copied()
                .collect();
            records.sort_unstable();
            records.dedup();
            for i in records {
                let record = &self.records_by_index[i];
                let applies = |a: &&Affected| {
                    a.package.as_ref().is_some_and(|pkg| {
                        let eco = scope(&pkg.ecosystem);
                        names.contains(&pkg.name.as_str())
                            && (eco == ecosystem || Some(eco) == base)
                    })
                };
                let entries: Vec<&Affected> = record.affected.iter().filter(applies).collect();
                // Distributions publish ranges over source versions.
                let Some(fixed) = evaluate(&entries, p.scheme, &p.source_version) else {
                    continue;
                };
                let (severity, score) = entries
                    .iter()
                    .map(|a| severity(record, a))
                    .max_by(|a, b| {
                        let score = |s: Option<f64>| s.unwrap_or(-1.0);
                        a.0.cmp(&b.0).then(score(a.1).total_cmp(&score(b.1)))
                    })
                    .unwrap_or((Severity::Unknown, None));
                out.push(Finding {
                    id: record.id.clone(),
                    aliases: record.aliases.clone(),
                    package: p.name.clone(),
                    source: p.source.clone(),
                    installed: p.version.clone(),
                    fixed,
                    severity,
                    score,
                    summary: record.summary.clone(),
                    waived: None,
                });
            }
        }
        out
    }
}

/// The release an ecosystem string scopes a package to: Red Hat's end in the repository
/// (`Red Hat:enterprise_linux:9::appstream` is release `Red Hat:enterprise_linux:9`), which
/// does not change what applies to an installed package.
fn scope(ecosystem: &str) -> &str {
    const RED_HAT: &str = "Red Hat:";
    match ecosystem
        .strip_prefix(RED_HAT)
        .and_then(|cpe| cpe.find("::"))
    {
        Some(i) => &ecosystem[..RED_HAT.len() + i],
        None => ecosystem,
    }
}

/// Whether one record, through its `entries` for a package, affects `version`; when it does,
/// `Some(fix)`: the lowest `fixed` version above it at which the record no longer applies.
fn evaluate(entries: &[&Affected], scheme: Scheme, version: &str) -> Option<Option<String>> {
    if !is_vulnerable(entries, scheme, version) {
        return None;
    }
    let mut candidates: Vec<&str> = entries
        .iter()
        .flat_map(|a| &a.ranges)
        .filter(|r| r.kind == "ECOSYSTEM" || r.kind == "SEMVER")
        .flat_map(|r| &r.events)
        .filter_map(|e| e.fixed.as_deref())
        .filter(|f| scheme.compare(f, version).is_gt())
        .collect();
    candidates.sort_by(|a, b| scheme.compare(a, b).then_with(|| a.cmp(b)));
    candidates.dedup();
    Some(
        candidates
            .into_iter()
            .find(|f| !is_vulnerable(entries, scheme, f))
            .map(str::to_string),
    )
}

/// The schema's `IsVulnerable` over the entries that name the package.
fn is_vulnerable(entries: &[&Affected], scheme: Scheme, version: &str) -> bool {
    entries.iter().any(|a| {
        a.versions.iter().any(|v| v == version)
            || a.ranges.iter().any(|r| match r.kind.as_str() {
                "ECOSYSTEM" => in_range(r, version, &|x, y| scheme.compare(x, y)),
                "SEMVER" => in_semver_range(r, version),
                // GIT ranges need the repository; other types are not defined.
                _ => false,
            })
    })
}

/// A SEMVER range, with SemVer 2.0 precedence (build metadata ignored). A version that is not
/// SemVer is not in it.
fn in_semver_range(range: &Range, version: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v).ok();
    let values = range
        .events
        .iter()
        .filter_map(|e| e.value().map(|(_, v)| v));
    if parse(version).is_none()
        || values
            .filter(|v| *v != "0" && !v.contains('*'))
            .any(|v| parse(v).is_none())
    {
        return false;
    }
    in_range(range, version, &|x, y| match (parse(x), parse(y)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y),
        _ => std::cmp::Ordering::Equal,
    })
}

/// The schema's `BeforeLimits` and `IncludedInRanges` for one range, in an ordering.
fn in_range(range: &Range, version: &str, cmp: &dyn Fn(&str, &str) -> Ordering) -> bool {
    let limits: Vec<&str> = range
        .events
        .iter()
        .filter_map(|e| e.limit.as_deref())
        .collect();
    let before_limits = limits.is_empty()
        || limits
            .iter()
            .any(|l| l.contains('*') || cmp(version, l).is_lt());
    if !before_limits {
        return false;
    }
    // `sorted(range.events)`: a stable sort keeps a timeline's order where versions tie.
    let mut events: Vec<(EventKind, &str)> = range
        .events
        .iter()
        .filter_map(Event::value)
        .filter(|(kind, _)| *kind != EventKind::Limit)
        .collect();
    events.sort_by(|(ka, a), (kb, b)| {
        let zero = |k: &EventKind, v: &str| *k == EventKind::Introduced && v == "0";
        match (zero(ka, a), zero(kb, b)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => cmp(a, b),
        }
    });
    let mut vulnerable = false;
    for (kind, v) in events {
        match kind {
            EventKind::Introduced if v == "0" || cmp(version, v).is_ge() => vulnerable = true,
            EventKind::Fixed if cmp(version, v).is_ge() => vulnerable = false,
            EventKind::LastAffected if cmp(version, v).is_gt() => vulnerable = false,
            _ => {}
        }
    }
    vulnerable
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

impl Event {
    /// The event's kind and version; `None` for an event that is not exactly one of the four
    /// ("Only a single type … is allowed in each event object").
    fn value(&self) -> Option<(EventKind, &str)> {
        let all = [
            (EventKind::Introduced, &self.introduced),
            (EventKind::Fixed, &self.fixed),
            (EventKind::LastAffected, &self.last_affected),
            (EventKind::Limit, &self.limit),
        ];
        let mut set = all
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)));
        let first = set.next()?;
        set.next().is_none().then_some(first)
    }
}

/// The severity: from a CVSS vector's base score (v4.0, else v3.x, else v2, computed by the
/// `cvss` crate), else the database's own word; unknown otherwise, never "none".
fn severity(record: &Record, affected: &Affected) -> (Severity, Option<f64>) {
    for kind in ["CVSS_V4", "CVSS_V3", "CVSS_V2"] {
        let vectors = affected.severity.iter().chain(&record.severity);
        for s in vectors.filter(|s| s.kind == kind) {
            if let Some(score) = cvss_base_score(&s.score) {
                return (Severity::from_score(score), Some(score));
            }
        }
    }
    let words = [
        affected
            .ecosystem_specific
            .as_ref()
            .and_then(|v| v.get("urgency").or_else(|| v.get("severity"))),
        affected
            .database_specific
            .as_ref()
            .and_then(|v| v.get("severity")),
        record
            .database_specific
            .as_ref()
            .and_then(|v| v.get("severity")),
    ];
    for w in words.into_iter().flatten() {
        if let Some(s) = w.as_str().and_then(Severity::from_word) {
            return (s, None);
        }
    }
    (Severity::Unknown, None)
}

/// The base score of a CVSS vector (`CVSS:4.0/…`, `CVSS:3.1/…`, `CVSS:3.0/…`, or a bare v2
/// vector); `None` when it does not parse.
pub fn cvss_base_score(vector: &str) -> Option<f64> {
    vector
        .trim()
        .parse::<cvss::Cvss>()
        .ok()
        .map(|c| c.score())
        .or_else(|| {
            // OSV writes v2 vectors without a prefix, which `Cvss` does not accept.
            vector
                .trim()
                .parse::<cvss::v2::Vector>()
                .ok()
                .map(|v| v.score().value())
        })
        .filter(|s| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_scores_from_the_specification_examples() {
        for (vector, want) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            // CVSS v4.0, as FIRST's calculator scores them.
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                9.3,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N",
                0.0,
            ),
            // v2, as OSV writes it: no prefix.
            ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ] {
            assert_eq!(cvss_base_score(vector), Some(want), "{vector}");
        }
        assert_eq!(cvss_base_score("CVSS:3.1/AV:X/AC:L"), None);
        assert_eq!(cvss_base_score("AV:N/AC:L"), None);
    }

    fn pkg(name: &str, source: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: source.into(),
            source_version: version.into(),
            modularity_label: None,
            scheme: Scheme::Dpkg,
        }
    }

    #[test]
    fn ranges_versions_withdrawn_and_severity() {
        let mut db = Database::default();
        let rec = |id: &str, extra: &str, affected: &str| {
            format!(
                r#"{{"id":"{id}","modified":"2026-11-01T00:00:00Z",{extra}"affected":[{affected}]}}"#
            )
        };
        db.add(
            rec(
                "DSA-1",
                r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#,
                r#"{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}]}"#,
            )
            .as_bytes(),
            "a",
        )
        .unwrap();
        db.add(
            rec(
                "DSA-2",
                "",
                r#"{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"3.0.0"},{"last_affected":"3.0.11-1~deb12u1"}]}],"ecosystem_specific":{"urgency":"medium"}}"#,
            )
            .as_bytes(),
            "b",
        )
        .unwrap();
        db.add(
            rec(
                "DSA-3",
                r#""withdrawn":"2026-11-02T00:00:00Z","#,
                r#"{"package":{"ecosystem":"Debian:12","name":"openssl"},"versions":["3.0.11-1~deb12u1"]}"#,
            )
            .as_bytes(),
            "c",
        )
        .unwrap();
        db.add(
            rec(
                "DSA-4",
                "",
                r#"{"package":{"ecosystem":"Debian:11","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}"#,
            )
            .as_bytes(),
            "d",
        )
        .unwrap();
        assert_eq!((db.records, db.withdrawn), (4, 1));

        // Older than the fix: both advisories; the fixed version and severities come along.
        let old = db.matches(
            "Debian:12",
            &[pkg("libssl3", "openssl", "3.0.11-1~deb12u1")],
        );
        let ids: Vec<&str> = old.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["DSA-1", "DSA-2"]);
        assert_eq!(old[0].fixed.as_deref(), Some("3.0.11-1~deb12u2"));
        assert_eq!(
            (old[0].severity, old[0].score),
            (Severity::Critical, Some(9.8))
        );
        assert_eq!((old[1].severity, old[1].score), (Severity::Medium, None));
        // Fixed: nothing (`~` ordering: deb12u2 is newer than deb12u1).
        assert!(
            db.matches(
                "Debian:12",
                &[pkg("libssl3", "openssl", "3.0.11-1~deb12u2")]
            )
            .is_empty()
        );
        // Another package or another release of the distribution: nothing.
        assert!(
            db.matches("Debian:12", &[pkg("curl", "curl", "1.0")])
                .is_empty()
        );
        assert!(
            db.matches("Debian:13", &[pkg("libssl3", "openssl", "3.0.0")])
                .is_empty()
        );
        assert!(db.newest.is_some());
        assert!(
            db.add(b"{}", "bad.json")
                .unwrap_err()
                .to_string()
                .contains("bad.json")
        );
    }
}
