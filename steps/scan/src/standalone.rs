//! `imagepipe-scan PATH`: a scan with no imagepipe.toml and no record, for a developer who has
//! an image file. Its flags have no `IMAGEPIPE_*` fallbacks on purpose: a CI job's environment
//! must never turn the record-driven scan into this one.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use imagepipe::step::{Outcome, Ui};
use imagepipe_scanner::{self as scan, Severity, StandaloneOptions};

use super::{Args, OutputFormat, StaleDb};

pub(crate) async fn run(ui: &Ui, args: &Args, path: PathBuf) -> anyhow::Result<Outcome> {
    if args.common.json && args.format != OutputFormat::Table {
        anyhow::bail!(
            "--json and --format {} both print on stdout; choose one",
            format_name(args.format)
        );
    }
    let options = StandaloneOptions {
        input: path.clone(),
        osv_db: args.osv_db.clone(),
        msrc_db: args.msrc_db.clone(),
        max_db_age: args.max_db_age,
        stale_db_fails: args.stale_db == StaleDb::Fail,
        fail_on: args.fail_on.unwrap_or(Severity::High),
        policy: args.policy.clone(),
        output_dir: args.output_dir.clone(),
    };
    if options.osv_db.is_none() && options.msrc_db.is_none() {
        ui.warn(
            "no --osv-db (or --msrc-db for a Windows image): packages and the hardening policy only, no vulnerabilities",
        );
    }
    let done = tokio::task::spawn_blocking(move || scan::scan_path(&options))
        .await
        .context("the scan stopped")??;
    let s = &done.scan;
    for line in scan::report::table(s, args.max_db_age) {
        match line {
            scan::report::Line::Info(text) => ui.info(&text),
            scan::report::Line::Warn(text) => ui.warn(&text),
        }
    }
    if let Some(dir) = &args.output_dir {
        ui.info(&format!(
            "reports in {}: {}",
            dir.display(),
            done.written
                .iter()
                .map(|r| r.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let wanted = match args.format {
        OutputFormat::Table => None,
        OutputFormat::Json => Some("json"),
        OutputFormat::Sarif => Some("sarif"),
        OutputFormat::Cyclonedx => Some("cyclonedx"),
        OutputFormat::Spdx => Some("spdx"),
    };
    if let Some(kind) = wanted
        && let Some(doc) = done.rendered.iter().find(|r| r.kind == kind)
    {
        let mut out = std::io::stdout().lock();
        out.write_all(&doc.bytes)
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let mut json = serde_json::to_value(s).unwrap_or_default();
    if let Some(doc) = json.as_object_mut() {
        doc.insert(
            "reports".into(),
            done.written
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "kind": r.kind,
                        "path": s.dir.join(&r.path).display().to_string(),
                        "sha256": r.sha256,
                    })
                })
                .collect(),
        );
    }
    ui.json(&json);
    Ok(if s.passed {
        Outcome::Done
    } else {
        Outcome::CheckFailed(vec![format!(
            "{}: {} findings at or above `{}` and {} failing policy rules",
            path.display(),
            s.findings.iter().filter(|f| s.gates(f)).count(),
            s.fail_on.as_str(),
            s.policy_failures()
        )])
    })
}

fn format_name(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Table => "table",
        OutputFormat::Json => "json",
        OutputFormat::Sarif => "sarif",
        OutputFormat::Cyclonedx => "cyclonedx",
        OutputFormat::Spdx => "spdx",
    }
}
