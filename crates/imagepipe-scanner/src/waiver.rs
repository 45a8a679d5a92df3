//! Waivers: findings a team has accepted for a while, each with a reason and an expiry date.
//! A waived finding stays in the JSON and the SARIF (as suppressed) but no longer gates; an
//! expired waiver stops applying and is reported.
//!
//! ```toml
//! [[waiver]]
//! id = "CVE-2026-1234"        # an OSV id or one of its aliases
//! package = "openssl"         # optional: the binary or source package
//! reason = "not reachable: the image never runs the TLS server"
//! expires = "2026-12-31"
//! ```

use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use super::osv::Finding;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    pub id: String,
    #[serde(default)]
    pub package: Option<String>,
    pub reason: String,
    pub expires: NaiveDate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    waiver: Vec<Waiver>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct WaiverError {
    file: String,
    message: String,
}

/// Reads a waivers file.
pub fn load(path: &Path) -> Result<Vec<Waiver>, WaiverError> {
    let err = |message: String| WaiverError {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        err(format!(
            "{}; each [[waiver]] needs id, reason and expires (YYYY-MM-DD), and may name a package",
            e.message()
        ))
    })?;
    Ok(file.waiver)
}

impl Waiver {
    pub fn matches(&self, f: &Finding) -> bool {
        (self.id == f.id || f.aliases.contains(&self.id))
            && self
                .package
                .as_ref()
                .is_none_or(|p| *p == f.package || *p == f.source)
    }
}

/// Applies the waivers valid `today` to `findings`; returns the expired ones that would have
/// applied.
pub fn apply(waivers: &[Waiver], findings: &mut [Finding], today: NaiveDate) -> Vec<Waiver> {
    let mut expired = Vec::new();
    for f in findings.iter_mut() {
        for w in waivers.iter().filter(|w| w.matches(f)) {
            if w.expires >= today {
                f.waived = Some(w.clone());
                break;
            }
            if !expired.contains(w) {
                expired.push(w.clone());
            }
        }
    }
    expired
}
