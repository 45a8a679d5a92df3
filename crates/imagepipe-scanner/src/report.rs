//! The scan's reports: JSON, SARIF 2.1.0 for GitHub code scanning, JUnit XML for Jenkins, and
//! a Markdown summary.

use serde_json::{Value, json};

use super::Severity;
use super::inventory::{Os, Package};
use super::osv::Finding;

/// Everything a scan found, as the reports present it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scan {
    pub image: String,
    pub version: String,
    pub artifact: String,
    /// The template file findings are reported against, relative to the repository.
    pub template: String,
    pub os: Os,
    pub packages: Vec<Package>,
    pub findings: Vec<Finding>,
    pub fail_on: Severity,
    pub passed: bool,
    /// Which advisories were matched: `OSV`, or `MSRC` (Microsoft's, for Windows images).
    pub database: String,
    pub database_records: usize,
    pub database_newest: Option<chrono::DateTime<chrono::Utc>>,
    pub bytes_read: u64,
    pub disk_size: u64,
    /// Where the reports are written (beside the record).
    #[serde(skip)]
    pub dir: std::path::PathBuf,
    /// Waivers that would have applied but have expired.
    pub expired_waivers: Vec<super::waiver::Waiver>,
    /// Every hardening rule's outcome.
    pub policy: Vec<super::policy::RuleResult>,
    /// A Windows image's inventory: the release, programs and installed updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<super::windows::Inventory>,
}

impl Scan {
    /// Failing rules of level `error`: each fails the gate.
    pub fn policy_failures(&self) -> usize {
        self.policy
            .iter()
            .filter(|r| !r.passed && r.level == super::policy::Level::Error)
            .count()
    }

    /// Whether a finding counts against the gate.
    pub fn gates(&self, f: &Finding) -> bool {
        // `unknown` is the lowest rating: a threshold of `unknown` counts every finding.
        f.waived.is_none() && f.severity >= self.fail_on
    }
}

/// GitHub's `security-severity`: the CVSS score, or the middle of the rating's band.
fn security_severity(f: &Finding) -> String {
    let score = f.score.unwrap_or(match f.severity {
        Severity::Critical => 9.5,
        Severity::High => 8.0,
        Severity::Medium => 5.5,
        Severity::Low => 2.0,
        Severity::Unknown => 0.0,
    });
    format!("{score:.1}")
}

fn message(f: &Finding) -> String {
    let fixed = f.fixed.as_ref().map_or_else(
        || "no version is free of it yet".to_string(),
        |v| format!("fixed in {v}, the first version it no longer affects at all"),
    );
    format!(
        "{} {} (source {}) is affected by {} ({}); {fixed}",
        f.package,
        f.installed,
        f.source,
        f.id,
        f.severity.as_str()
    )
}

pub fn sarif(scan: &Scan) -> Value {
    let mut rules: Vec<Value> = Vec::new();
    for f in &scan.findings {
        if rules.iter().any(|r| r["id"] == f.id) {
            continue;
        }
        rules.push(json!({
            "id": f.id,
            "shortDescription": { "text": if f.summary.is_empty() { f.id.clone() } else { f.summary.clone() } },
            "help": { "text": if scan.database == "MSRC" {
                format!("{}: see https://msrc.microsoft.com/update-guide/vulnerability/{}", f.id, f.id)
            } else {
                format!("{}: see https://osv.dev/vulnerability/{}", f.id, f.id)
            } },
            "properties": { "security-severity": security_severity(f), "tags": ["security", "vulnerability"] },
        }));
    }
    for r in scan.policy.iter().filter(|r| !r.passed) {
        rules.push(json!({
            "id": r.id,
            "shortDescription": { "text": r.title },
            "help": { "text": format!("imagepipe hardening rule {}: {}", r.id, r.title) },
            "properties": { "tags": ["policy", "hardening"] },
        }));
    }
    let location = json!([{ "physicalLocation": {
        "artifactLocation": { "uri": scan.template },
        "region": { "startLine": 1 },
    }}]);
    let policy_results = scan.policy.iter().filter(|r| !r.passed).map(|r| {
        json!({
            "ruleId": r.id,
            "level": if r.level == super::policy::Level::Error { "error" } else { "warning" },
            "message": { "text": format!("{}: {}: {}", scan.image, r.title, r.detail) },
            "locations": location,
            "partialFingerprints": { "imagepipe/v1": format!("{}/policy/{}", scan.image, r.id) },
        })
    });
    let results: Vec<Value> = scan
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "level": if scan.gates(f) { "error" } else { "warning" },
                "message": { "text": format!("{}: {}", scan.image, message(f)) },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": scan.template },
                    "region": { "startLine": 1 },
                }}],
                "partialFingerprints": { "imagepipe/v1": format!("{}/{}/{}", scan.image, f.package, f.id) },
                "suppressions": f.waived.iter().map(|w| json!({
                    "kind": "external",
                    "justification": format!("{} (waived until {})", w.reason, w.expires),
                })).collect::<Vec<_>>(),
            })
        })
        .chain(policy_results)
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "imagepipe-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/imagepipe/imagepipe",
                "rules": rules,
            }},
            "automationDetails": { "id": format!("imagepipe-scan/{}/", scan.image) },
            "results": results,
        }],
    })
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit for Jenkins' `junit` step: one case that the scan ran (a suite without cases is
/// dropped), and one per finding, failed when it counts against the gate.
pub fn junit(scan: &Scan) -> String {
    let failures = scan.findings.iter().filter(|f| scan.gates(f)).count()
        + scan.policy.iter().filter(|r| !r.passed).count();
    let mut cases = vec![format!(
        "    <testcase classname=\"imagepipe-scan.{}\" name=\"scan of {} completed: {} packages\" time=\"0\"/>",
        xml(&scan.image),
        xml(&scan.artifact),
        scan.packages.len()
    )];
    for f in &scan.findings {
        let name = format!("{} {}", f.package, f.id);
        if scan.gates(f) {
            cases.push(format!(
                "    <testcase classname=\"imagepipe-scan.{}\" name=\"{}\" time=\"0\">\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>",
                xml(&scan.image),
                xml(&name),
                f.severity.as_str(),
                xml(&message(f))
            ));
        } else if let Some(w) = &f.waived {
            cases.push(format!(
                "    <testcase classname=\"imagepipe-scan.{}\" name=\"{}\" time=\"0\">\n      <skipped message=\"waived until {}: {}\"/>\n    </testcase>",
                xml(&scan.image),
                xml(&name),
                w.expires,
                xml(&w.reason)
            ));
        } else {
            cases.push(format!(
                "    <testcase classname=\"imagepipe-scan.{}\" name=\"{}\" time=\"0\"/>",
                xml(&scan.image),
                xml(&name)
            ));
        }
    }
    for r in &scan.policy {
        let head = format!(
            "    <testcase classname=\"imagepipe-scan.{}.policy\" name=\"{}: {}\" time=\"0\"",
            xml(&scan.image),
            xml(&r.id),
            xml(&r.title)
        );
        cases.push(if r.passed {
            format!("{head}/>")
        } else {
            format!(
                "{head}>\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>",
                if r.level == super::policy::Level::Error {
                    "error"
                } else {
                    "warning"
                },
                xml(&r.detail)
            )
        });
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"imagepipe-scan {}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"0\">\n{}\n  </testsuite>\n</testsuites>\n",
        xml(&scan.image),
        cases.len(),
        cases.join("\n")
    )
}

pub fn markdown(scan: &Scan) -> String {
    let mut out = format!(
        "### imagepipe-scan: `{}` {}: {}\n\n{} ({}), {} packages, {} findings; the gate fails on `{}` and above.\n\n",
        scan.image,
        scan.version,
        if scan.passed { "passed" } else { "**failed**" },
        scan.os.display_name(),
        scan.os.ecosystem.as_deref().unwrap_or("unknown ecosystem"),
        scan.packages.len(),
        scan.findings.len(),
        scan.fail_on.as_str(),
    );
    if !scan.findings.is_empty() {
        out.push_str(
            "| severity | id | package | installed | fixed | waived |\n| --- | --- | --- | --- | --- | --- |\n",
        );
        let mut findings = scan.findings.clone();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        for f in findings {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                f.severity.as_str(),
                f.id,
                f.package,
                f.installed,
                f.fixed.as_deref().unwrap_or("-"),
                f.waived
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |w| format!("until {}", w.expires))
            ));
        }
        out.push_str(
            "\n_fixed_: the lowest version the advisory no longer affects at all (`-`: none yet).\n",
        );
    }
    let failing: Vec<_> = scan.policy.iter().filter(|r| !r.passed).collect();
    out.push_str(&format!(
        "\nHardening policy: {} rules, {} failing.\n",
        scan.policy.len(),
        failing.len()
    ));
    if !failing.is_empty() {
        out.push_str("\n| level | rule | detail |\n| --- | --- | --- |\n");
        for r in failing {
            out.push_str(&format!(
                "| {} | {}: {} | {} |\n",
                if r.level == super::policy::Level::Error {
                    "error"
                } else {
                    "warning"
                },
                r.id,
                r.title,
                r.detail
            ));
        }
    }
    out
}

/// Reports a scan on every channel of the step contract.
pub fn print(
    ui: &imagepipe::step::Ui,
    scan: &Scan,
    record: &std::path::Path,
    reports: &[imagepipe::record::Report],
    max_db_age: std::time::Duration,
) -> std::io::Result<()> {
    // A directory has no size to read a part of.
    let read = if scan.disk_size == 0 {
        format!("from {}", scan.artifact)
    } else {
        format!(
            "read {} of {} bytes of {}",
            scan.bytes_read, scan.disk_size, scan.artifact
        )
    };
    ui.info(&format!(
        "{} {}: {} ({}), {} packages; {read}",
        scan.image,
        scan.version,
        scan.os.display_name(),
        scan.os.ecosystem.as_deref().unwrap_or("-"),
        scan.packages.len(),
    ));
    match scan.database_newest {
        Some(newest) => match database_line(scan, newest, max_db_age, true) {
            Line::Warn(line) => ui.warn(&line),
            Line::Info(line) => ui.info(&line),
        },
        None => ui.warn(&format!(
            "the {} database holds no records: nothing can be found",
            scan.database
        )),
    }
    for f in &scan.findings {
        let waived = f
            .waived
            .as_ref()
            .map(|w| format!(" (waived until {}: {})", w.expires, w.reason))
            .unwrap_or_default();
        ui.info(&format!(
            "  {:<8} {:<20} {:<24} {:<24} fixed: {}{waived}",
            f.severity.as_str(),
            f.id,
            f.package,
            f.installed,
            f.fixed.as_deref().unwrap_or("-"),
        ));
    }
    for w in &scan.expired_waivers {
        ui.warn(&format!(
            "the waiver of {} expired on {} and no longer applies ({})",
            w.id, w.expires, w.reason
        ));
    }
    for r in scan.policy.iter().filter(|r| !r.passed) {
        ui.info(&format!(
            "  policy   {:<8} {:<32} {}",
            if r.level == super::policy::Level::Error {
                "error"
            } else {
                "warning"
            },
            r.id,
            r.detail
        ));
    }
    ui.info(&format!(
        "gate (fail on {} and above, and on error-level policy rules): {}",
        scan.fail_on.as_str(),
        if scan.passed { "passed" } else { "FAILED" }
    ));
    ui.output("status", if scan.passed { "passed" } else { "failed" })?;
    ui.output("findings", &scan.findings.len().to_string())?;
    for r in reports {
        ui.output(
            &format!("{}-report", r.kind),
            &scan.dir.join(&r.path).display().to_string(),
        )?;
    }
    ui.summary(&markdown(scan))?;
    // CI systems archive and publish what the scan wrote (Jenkins' archiveArtifacts, junit and
    // recordIssues): the JSON names every file, as the paths the step was given lead to them.
    let mut json = serde_json::to_value(scan).unwrap_or_default();
    if let Some(doc) = json.as_object_mut() {
        doc.insert("record".into(), record.display().to_string().into());
        doc.insert(
            "reports".into(),
            reports
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "kind": r.kind,
                        "path": scan.dir.join(&r.path).display().to_string(),
                        "sha256": r.sha256,
                    })
                })
                .collect(),
        );
    }
    ui.json(&json);
    Ok(())
}

/// A line of the human report, and whether it is a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Info(String),
    Warn(String),
}

/// The scan as a table for people (the standalone scan's `--format table`): what was read,
/// the database, one row per finding, the failing policy rules and the gate.
pub fn table(scan: &Scan, max_db_age: std::time::Duration) -> Vec<Line> {
    let mut out = Vec::new();
    let read = if scan.disk_size == 0 {
        String::new()
    } else {
        format!("; read {} of {} bytes", scan.bytes_read, scan.disk_size)
    };
    out.push(Line::Info(format!(
        "{}: {} ({}), {} packages{read}",
        scan.artifact,
        scan.os.display_name(),
        scan.os.ecosystem.as_deref().unwrap_or("-"),
        scan.packages.len(),
    )));
    match scan.database_newest {
        Some(newest) => out.push(database_line(scan, newest, max_db_age, false)),
        // No database for this image's platform (a standalone scan given none, or only the
        // other platform's): say so rather than let "no vulnerabilities found" stand alone.
        None => out.push(Line::Warn(format!(
            "no {} database for this image: vulnerabilities were not looked for ({})",
            scan.database,
            if scan.database == "MSRC" {
                "--msrc-db"
            } else {
                "--osv-db"
            }
        ))),
    }
    if scan.findings.is_empty() {
        out.push(Line::Info("no vulnerabilities found".into()));
    } else {
        let mut findings = scan.findings.clone();
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.id.cmp(&b.id))
                .then(a.package.cmp(&b.package))
        });
        let rows: Vec<[String; 5]> = findings
            .iter()
            .map(|f| {
                [
                    f.severity.as_str().to_string(),
                    f.id.clone(),
                    f.package.clone(),
                    f.installed.clone(),
                    f.fixed.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let head = ["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED"].map(String::from);
        let widths: Vec<usize> = (0..5)
            .map(|i| {
                rows.iter()
                    .chain(std::iter::once(&head))
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let render = |r: &[String; 5]| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {}", cells.join("  ").trim_end())
        };
        out.push(Line::Info(render(&head)));
        for (r, f) in rows.iter().zip(&findings) {
            let mut line = render(r);
            if let Some(w) = &f.waived {
                line.push_str(&format!("  (waived until {})", w.expires));
            }
            out.push(Line::Info(line));
        }
    }
    for r in scan.policy.iter().filter(|r| !r.passed) {
        out.push(Line::Info(format!(
            "  policy {:<8} {:<32} {}",
            if r.level == super::policy::Level::Error {
                "error"
            } else {
                "warning"
            },
            r.id,
            r.detail
        )));
    }
    out.push(Line::Info(format!(
        "gate (fail on {} and above, and on error-level policy rules): {}",
        scan.fail_on.as_str(),
        if scan.passed { "passed" } else { "FAILED" }
    )));
    out
}

/// The database's line: its records and newest record (with its age when `with_age`), a
/// warning once it is older than `max_db_age`.
fn database_line(
    scan: &Scan,
    newest: chrono::DateTime<chrono::Utc>,
    max_db_age: std::time::Duration,
    with_age: bool,
) -> Line {
    database_note(
        &scan.database,
        scan.database_records,
        newest,
        max_db_age,
        with_age,
    )
}

/// [`database_line`] for a database on its own (a rescan's, before any version is read).
pub fn database_note(
    database: &str,
    records: usize,
    newest: chrono::DateTime<chrono::Utc>,
    max_db_age: std::time::Duration,
    with_age: bool,
) -> Line {
    let age = (chrono::Utc::now() - newest).to_std().unwrap_or_default();
    let mut line = format!(
        "{database} database: {records} records, newest from {}",
        newest.format("%Y-%m-%d"),
    );
    if with_age {
        line.push_str(&format!(
            " ({} old)",
            humantime::format_duration(std::time::Duration::from_secs(age.as_secs() / 3600 * 3600))
        ));
    }
    if age > max_db_age {
        Line::Warn(format!(
            "{line}: older than {}; refresh it",
            humantime::format_duration(max_db_age)
        ))
    } else {
        Line::Info(line)
    }
}
