//! Matching installed packages against an offline OSV database: a directory of OSV JSON
//! records (<https://ossf.github.io/osv-schema/>), or osv.dev's per-ecosystem `all.zip` dumps.
//!
//! A record affects a package when the ecosystem is the image's (`Debian:12`, …), the name is
//! the package's source package, and the installed version falls in one of its ranges as the
//! distribution orders versions, or is listed exactly. Withdrawn records never match.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

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

/// One advisory's affected entry for one package.
#[derive(Debug)]
struct Entry {
    record: Arc<Record>,
    affected: Affected,
}

/// The loaded database.
#[derive(Debug, Default)]
pub struct Database {
    /// By `(ecosystem, package name)`.
    entries: HashMap<(String, String), Vec<Entry>>,
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
        let record = Arc::new(record);
        for affected in &record.affected {
            let Some(p) = &affected.package else { continue };
            self.entries
                .entry((p.ecosystem.clone(), p.name.clone()))
                .or_default()
                .push(Entry {
                    record: record.clone(),
                    affected: affected.clone(),
                });
        }
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
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            let io = |source| OsvError::Io {
                file: d.display().to_string(),
                source,
            };
            let mut entries = std::fs::read_dir(&d)
                .map_err(io)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(io)?;
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    db.add_file(&path)?;
                } else if path.extension().is_some_and(|e| e == "zip") {
                    db.add_zip(&path)?;
                }
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

    /// The findings for `packages` of an image whose packages are published under `ecosystem`.
    pub fn matches(&self, ecosystem: &str, packages: &[Package]) -> Vec<Finding> {
        let mut out = Vec::new();
        for p in packages {
            let Some(entries) = self.entries.get(&(ecosystem.to_string(), p.source.clone())) else {
                continue;
            };
            for e in entries {
                // Distributions publish ranges over source versions.
                let Some(fixed) = affects(&e.affected, p.scheme, &p.source_version) else {
                    continue;
                };
                let (severity, score) = severity(&e.record, &e.affected);
                out.push(Finding {
                    id: e.record.id.clone(),
                    aliases: e.record.aliases.clone(),
                    package: p.name.clone(),
                    source: p.source.clone(),
                    installed: p.version.clone(),
                    fixed,
                    severity,
                    score,
                    summary: e.record.summary.clone(),
                    waived: None,
                });
            }
        }
        out
    }
}

/// Whether `version` is affected; `Some(first fixed version after it, if any)` when it is.
fn affects(a: &Affected, scheme: Scheme, version: &str) -> Option<Option<String>> {
    if a.versions
        .iter()
        .any(|v| scheme.compare(v, version).is_eq())
    {
        return Some(None);
    }
    for range in a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
        // Evaluate the events in version order, as the OSV schema prescribes.
        let mut events: Vec<(&str, &Event)> = range
            .events
            .iter()
            .filter_map(|e| {
                let v = e
                    .introduced
                    .as_deref()
                    .or(e.fixed.as_deref())
                    .or(e.last_affected.as_deref())
                    .or(e.limit.as_deref())?;
                Some((v, e))
            })
            .collect();
        events.sort_by(|(x, _), (y, _)| match (*x, *y) {
            ("0", "0") => std::cmp::Ordering::Equal,
            ("0", _) => std::cmp::Ordering::Less,
            (_, "0") => std::cmp::Ordering::Greater,
            _ => scheme.compare(x, y),
        });
        let mut affected = false;
        for (v, e) in &events {
            let reached = *v == "0" || scheme.compare(version, v).is_ge();
            let past_end = ((e.fixed.is_some() || e.limit.is_some()) && reached)
                || (e.last_affected.is_some() && scheme.compare(version, v).is_gt());
            if e.introduced.is_some() && reached {
                affected = true;
            } else if past_end {
                affected = false;
            }
        }
        if affected {
            let fixed = events
                .iter()
                .filter(|(v, e)| e.fixed.is_some() && scheme.compare(v, version).is_gt())
                .map(|(v, _)| v.to_string())
                .next();
            return Some(fixed);
        }
    }
    None
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
