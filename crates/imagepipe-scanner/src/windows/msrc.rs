//! Microsoft's security updates, offline: a directory of the Security Update Guide's monthly
//! CVRF documents (the JSON the CVRF API serves, <https://api.msrc.microsoft.com/cvrf/v3.0/swagger/v3/swagger.json>,
//! in the structure of CVRF 1.2, <https://docs.oasis-open.org/csaf/csaf-cvrf/v1.2/csaf-cvrf-v1.2.html>)
//! and of CSAF 2.0 advisories (<https://docs.oasis-open.org/csaf/csaf/v2.0/os/csaf-v2.0-os.html>,
//! as Microsoft publishes them under <https://msrc.microsoft.com/csaf/>).
//!
//! From each document the scan takes, per CVE and product, the build that fixes it:
//!
//! - **CVRF**: `ProductTree.FullProductName[]` names the products by `ProductID`; each
//!   `Vulnerability[]` has `Remediations[]`, and a remediation of `Type` 2 ("Vendor Fix") with
//!   a `FixedBuild` fixes its `ProductID`s at that build, by the KB in its `Description`.
//!   Severity comes from the `CVSSScoreSets[]` vector of the product, else its `BaseScore`,
//!   else the `Threats[]` of `Type` 3 ("Severity": Critical, Important, …).
//! - **CSAF**: `product_tree.branches` name the products; a `product_version_range` branch
//!   under a `product_name` branch whose name is `<BUILD` (or `vers:<scheme>/<BUILD`) is the
//!   product before that build. A vulnerability whose `product_status.known_affected` lists
//!   it is fixed at that build, by the KB in the `details` of a `vendor_fix` remediation for
//!   it. Severity comes from the `scores[]` vector for it (`cvss_v3`, else `cvss_v2`).
//!
//! A CVE is a finding when a fixed build for the image's product is above the image's full
//! build; the fix reported is the highest such build (below it, some fix is still missing).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::Severity;
use crate::osv::{Finding, cvss_base_score};
use crate::version::Scheme;

/// The largest document read (a monthly CVRF document is some tens of MiB).
const MAX_DOCUMENT: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MsrcError {
    #[error("{file}: not a Microsoft CVRF or CSAF 2.0 document: {message}")]
    Bad { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// One product's fix for one CVE.
#[derive(Debug, Clone, PartialEq)]
struct Fix {
    cve: String,
    title: String,
    product: String,
    build: String,
    kb: Option<String>,
    severity: Severity,
    score: Option<f64>,
    document: String,
}

/// The loaded documents.
#[derive(Debug, Default)]
pub struct Database {
    fixes: Vec<Fix>,
    /// Documents read.
    pub records: usize,
    /// The newest document's current release date: how fresh the database is.
    pub newest: Option<DateTime<Utc>>,
}

fn date(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|d| d.and_utc())
        })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // CVRF JSON wraps many strings as {"Value": "..."}.
        Value::Object(o) => o.get("Value").map(text).unwrap_or_default(),
        _ => String::new(),
    }
}

fn ids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A KB article as `KB` and its number, from a remediation's text ("5044281", "KB5044281").
fn kb(text: &str) -> Option<String> {
    let digits: String = text
        .trim()
        .trim_start_matches("KB")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() >= 6).then(|| format!("KB{digits}"))
}

/// Severity from a CVSS vector, else a base score, else a word.
fn rate(vector: Option<&str>, score: Option<f64>, word: Option<&str>) -> (Severity, Option<f64>) {
    if let Some(s) = vector.and_then(cvss_base_score) {
        return (Severity::from_score(s), Some(s));
    }
    if let Some(s) = score.filter(|s| s.is_finite() && *s > 0.0) {
        return (Severity::from_score(s), Some(s));
    }
    (
        word.and_then(Severity::from_word)
            .unwrap_or(Severity::Unknown),
        None,
    )
}

impl Database {
    /// Loads every `.json` document under `path` (searched recursively), or one document.
    pub fn load(path: &Path) -> Result<Self, MsrcError> {
        let mut db = Self::default();
        let files = if path.is_dir() {
            crate::osv::files_under(path, &["json"]).map_err(|(d, source)| MsrcError::Io {
                file: d.display().to_string(),
                source,
            })?
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let name = file.display().to_string();
            let io = |source| MsrcError::Io {
                file: name.clone(),
                source,
            };
            let len = std::fs::metadata(&file).map_err(io)?.len();
            if len > MAX_DOCUMENT {
                return Err(MsrcError::Bad {
                    file: name,
                    message: format!("larger than {} MiB", MAX_DOCUMENT >> 20),
                });
            }
            let bytes = std::fs::read(&file).map_err(io)?;
            db.add(&bytes, &name)?;
        }
        Ok(db)
    }

    /// Adds one document from its JSON text: CVRF or CSAF, told apart by their own fields.
    pub fn add(&mut self, json: &[u8], file: &str) -> Result<(), MsrcError> {
        let bad = |message: String| MsrcError::Bad {
            file: file.into(),
            message,
        };
        let doc: Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if doc["document"]["csaf_version"].is_string() {
            self.add_csaf(&doc, file).map_err(bad)?;
        } else if doc.get("DocumentTracking").is_some() || doc.get("Vulnerability").is_some() {
            self.add_cvrf(&doc, file).map_err(bad)?;
        } else {
            return Err(bad(
                "neither CVRF (DocumentTracking, Vulnerability) nor CSAF (document.csaf_version)"
                    .into(),
            ));
        }
        self.records += 1;
        Ok(())
    }

    fn add_cvrf(&mut self, doc: &Value, file: &str) -> Result<(), String> {
        let tracking = &doc["DocumentTracking"];
        // DocumentTracking.Identification.ID ("2024-Dec"), a {"Value": …} object in the JSON.
        let id = text(&tracking["Identification"]["ID"]);
        let released = date(&tracking["CurrentReleaseDate"]).ok_or_else(|| {
            "DocumentTracking.CurrentReleaseDate is missing or not a date".to_string()
        })?;
        self.newest = self.newest.max(Some(released));
        let names: BTreeMap<String, String> = array(&doc["ProductTree"]["FullProductName"])
            .iter()
            .map(|p| (text(&p["ProductID"]), text(&p["Value"])))
            .collect();
        let document = if id.is_empty() { file.to_string() } else { id };
        for v in array(&doc["Vulnerability"]) {
            let cve = text(&v["CVE"]);
            if cve.is_empty() {
                return Err("a Vulnerability without its CVE".into());
            }
            let title = text(&v["Title"]);
            for r in array(&v["Remediations"]) {
                // Type 2 is "Vendor Fix" (CVRF's remediation types in document order).
                let vendor_fix = r["Type"].as_u64() == Some(2) || r["Type"] == "Vendor Fix";
                let build = text(&r["FixedBuild"]);
                if !vendor_fix || build.trim().is_empty() {
                    continue;
                }
                for pid in ids(&r["ProductID"]) {
                    let Some(product) = names.get(&pid) else {
                        continue;
                    };
                    let score_set = array(&v["CVSSScoreSets"])
                        .iter()
                        .find(|s| ids(&s["ProductID"]).contains(&pid));
                    let word = array(&v["Threats"])
                        .iter()
                        .find(|t| {
                            t["Type"].as_u64() == Some(3) && ids(&t["ProductID"]).contains(&pid)
                        })
                        .map(|t| text(&t["Description"]));
                    let (severity, score) = rate(
                        score_set.and_then(|s| s["Vector"].as_str()),
                        score_set.and_then(|s| s["BaseScore"].as_f64()),
                        word.as_deref(),
                    );
                    self.fixes.push(Fix {
                        cve: cve.clone(),
                        title: title.clone(),
                        product: product.clone(),
                        build: build.trim().to_string(),
                        kb: kb(&text(&r["Description"])),
                        severity,
                        score,
                        document: document.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn add_csaf(&mut self, doc: &Value, file: &str) -> Result<(), String> {
        let tracking = &doc["document"]["tracking"];
        let released = date(&tracking["current_release_date"]).ok_or_else(|| {
            "document.tracking.current_release_date is missing or not a date".to_string()
        })?;
        self.newest = self.newest.max(Some(released));
        let id = text(&tracking["id"]);
        let document = if id.is_empty() { file.to_string() } else { id };
        // product_id → (product name, fixed build) for every "<BUILD" range.
        let mut ranges: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut stack: Vec<(&Value, String, usize)> = array(&doc["product_tree"]["branches"])
            .iter()
            .map(|b| (b, String::new(), 0))
            .collect();
        while let Some((branch, product, depth)) = stack.pop() {
            if depth > 32 {
                return Err("product_tree branches nest more than 32 deep".into());
            }
            let name = text(&branch["name"]);
            let category = branch["category"].as_str().unwrap_or("");
            let product = if category == "product_name" {
                name.clone()
            } else {
                product
            };
            if category == "product_version_range"
                && !product.is_empty()
                && let Some(build) = upper_bound(&name)
                && let Some(pid) = branch["product"]["product_id"].as_str()
            {
                ranges.insert(pid.to_string(), (product.clone(), build));
            }
            for child in array(&branch["branches"]) {
                stack.push((child, product.clone(), depth + 1));
            }
        }
        for v in array(&doc["vulnerabilities"]) {
            let cve = text(&v["cve"]);
            if cve.is_empty() {
                continue;
            }
            let title = text(&v["title"]);
            let status = &v["product_status"];
            let affected = ["known_affected", "first_affected", "last_affected"]
                .iter()
                .flat_map(|k| ids(&status[*k]));
            for pid in affected {
                let Some((product, build)) = ranges.get(&pid) else {
                    continue;
                };
                let kb = array(&v["remediations"])
                    .iter()
                    .find(|r| {
                        r["category"] == "vendor_fix" && ids(&r["product_ids"]).contains(&pid)
                    })
                    .and_then(|r| kb(&text(&r["details"])));
                let score = array(&v["scores"])
                    .iter()
                    .find(|s| ids(&s["products"]).contains(&pid));
                let vector = score.and_then(|s| {
                    s["cvss_v3"]["vectorString"]
                        .as_str()
                        .or(s["cvss_v2"]["vectorString"].as_str())
                });
                let base = score.and_then(|s| {
                    s["cvss_v3"]["baseScore"]
                        .as_f64()
                        .or(s["cvss_v2"]["baseScore"].as_f64())
                });
                let (severity, score) = rate(vector, base, None);
                self.fixes.push(Fix {
                    cve: cve.clone(),
                    title: title.clone(),
                    product: product.clone(),
                    build: build.clone(),
                    kb,
                    severity,
                    score,
                    document: document.clone(),
                });
            }
        }
        Ok(())
    }

    /// The findings for an image of `product` at full `build`: one per CVE.
    pub fn matches(&self, product: &str, build: &str) -> Vec<Finding> {
        let mut by_cve: BTreeMap<&str, Vec<&Fix>> = BTreeMap::new();
        for f in self.fixes.iter().filter(|f| f.product == product) {
            if Scheme::Windows.compare(build, &f.build).is_lt() {
                by_cve.entry(&f.cve).or_default().push(f);
            }
        }
        by_cve
            .into_values()
            .filter_map(|fixes| {
                let top = fixes
                    .iter()
                    .copied()
                    .max_by(|a, b| Scheme::Windows.compare(&a.build, &b.build))?;
                let worst = fixes
                    .iter()
                    .map(|f| (f.severity, f.score))
                    .max_by(|a, b| {
                        a.0.cmp(&b.0)
                            .then(a.1.unwrap_or(-1.0).total_cmp(&b.1.unwrap_or(-1.0)))
                    })
                    .unwrap_or((Severity::Unknown, None));
                let mut aliases: Vec<String> = fixes.iter().filter_map(|f| f.kb.clone()).collect();
                aliases.sort();
                aliases.dedup();
                Some(Finding {
                    id: top.cve.clone(),
                    aliases,
                    package: product.to_string(),
                    source: product.to_string(),
                    installed: build.to_string(),
                    fixed: Some(top.build.clone()),
                    severity: worst.0,
                    score: worst.1,
                    summary: format!(
                        "{}{} ({})",
                        top.title,
                        top.kb
                            .as_ref()
                            .map(|k| format!("; fixed by {k}"))
                            .unwrap_or_default(),
                        top.document
                    ),
                    waived: None,
                })
            })
            .collect()
    }
}

/// The build a version range ends below: `<10.0.20348.2849`, `vers:intdot/<10.0.20348.2849`;
/// `None` for any other range.
fn upper_bound(range: &str) -> Option<String> {
    let r = range.trim();
    let r = match r.strip_prefix("vers:") {
        Some(rest) => rest.split_once('/')?.1,
        None => r,
    };
    let build = r.trim().strip_prefix('<')?.trim();
    (!build.starts_with('=')
        && !build.is_empty()
        && build.chars().all(|c| c.is_ascii_digit() || c == '.'))
    .then(|| build.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_their_upper_bound() {
        assert_eq!(
            upper_bound("<10.0.20348.2849").as_deref(),
            Some("10.0.20348.2849")
        );
        assert_eq!(
            upper_bound("vers:intdot/<10.0.1").as_deref(),
            Some("10.0.1")
        );
        assert_eq!(upper_bound("<=10.0.1"), None);
        assert_eq!(upper_bound(">10.0.1"), None);
        assert_eq!(upper_bound("vers:intdot/>=1|<2"), None);
    }
}
