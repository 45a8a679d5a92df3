//! `imagepipe-scan --published IMAGE@VERSION` and `--all-published`: published versions read
//! in place from the primary store and matched against today's database.

use std::sync::Arc;

use anyhow::Context as _;
use imagepipe::image::ImageRef;
use imagepipe::lifecycle;
use imagepipe::step::{self, Outcome, Ui};
use imagepipe_scanner::rescan::{Rescan, RescanOptions};
use imagepipe_scanner::{self as scan, Severity};

use super::{Args, StaleDb};

pub(crate) async fn run(ui: &Ui, args: &Args) -> anyhow::Result<Outcome> {
    let config = step::load_config(ui, args.common.config.as_deref())?;
    // Linux versions are matched against the OSV database, Windows versions against
    // Microsoft's documents: a store of either kind needs only its own.
    anyhow::ensure!(
        args.osv_db.is_some() || args.msrc_db.is_some(),
        "say where the OSV database is: --osv-db PATH (a directory of OSV JSON records or all.zip dumps); for Windows images, Microsoft's documents: --msrc-db PATH"
    );
    let spec = config.primary_store(args.store.as_deref())?;
    // Builds and imports look for revocations in the primary store only: one written into
    // another store (a site's replica) would be reported and then ignored.
    anyhow::ensure!(
        args.revoke_on_new.is_none() || spec.url == config.store.url,
        "--revoke-on-new revokes in the primary store, which builds and imports ask; --store {} is not imagepipe.toml's primary store ({}): rescan the primary, or leave out --revoke-on-new",
        spec.url,
        config.store.url
    );
    let store = imagepipe::store::open(&spec)?;
    let stale = args.stale_db == StaleDb::Fail;
    let max_age = args.max_db_age;
    let db = match args.osv_db.clone() {
        Some(osv_db) => {
            let db =
                tokio::task::spawn_blocking(move || scan::load_database(&osv_db, max_age, stale))
                    .await
                    .context("loading the OSV database stopped")??;
            // A stale database finds nothing new: say so before the versions are read (with
            // --stale-db fail it stopped above).
            show_database(
                ui,
                ("OSV", db.records, db.newest),
                max_age,
                "the OSV database holds no records: nothing can be found",
            );
            Some(Arc::new(db))
        }
        None => None,
    };
    // Microsoft's documents, for the Windows images among the versions.
    let msrc = match args.msrc_db.clone() {
        Some(path) => {
            let msrc = tokio::task::spawn_blocking(move || scan::load_msrc(&path, max_age, stale))
                .await
                .context("loading Microsoft's security update documents stopped")??;
            show_database(
                ui,
                ("MSRC", msrc.records, msrc.newest),
                max_age,
                "Microsoft's documents hold no release date: nothing can be found",
            );
            Some(Arc::new(msrc))
        }
        None => None,
    };

    let versions: Vec<ImageRef> = match &args.published {
        Some(named) => {
            let id: ImageRef = named.parse().with_context(|| {
                format!("--published `{named}`: name a version as IMAGE@VERSION, e.g. global/debian-12@1.4.0")
            })?;
            config.image(id.name.as_str())?;
            vec![id]
        }
        None => {
            let mut all = Vec::new();
            for image in &config.images {
                let mut versions = store.list_versions(&image.name).await?;
                versions.sort();
                all.extend(versions.into_iter().map(|version| ImageRef {
                    name: image.name.clone(),
                    version,
                }));
            }
            if all.is_empty() {
                ui.warn(&format!(
                    "{} holds no published version of the images of imagepipe.toml",
                    store.location()
                ));
            }
            all
        }
    };

    let mut done: Vec<Rescan> = Vec::new();
    let mut errors: Vec<(ImageRef, String)> = Vec::new();
    for id in &versions {
        let image = config.image(id.name.as_str())?;
        let waivers = match &image.scan.waivers {
            Some(path) => scan::waiver::load(path)?,
            None => Vec::new(),
        };
        let options = RescanOptions {
            artifact: args.artifact.clone(),
            waivers,
            fail_on: image.scan.fail_on,
            msrc: msrc.clone(),
        };
        match scan::rescan::rescan(store.as_ref(), id, db.clone(), &options).await {
            Ok(r) => {
                show(ui, &r);
                done.push(r);
            }
            // One version is asked for: its error is the step's. Of many, the others still run.
            Err(e) if args.published.is_some() => return Err(e.into()),
            Err(e) => {
                ui.error(&format!("{id}: {e}"));
                errors.push((id.clone(), e.to_string()));
            }
        }
    }

    // A revocation that fails is an error like a version that could not be rescanned: the
    // others are still made, and the report and JSON are still written.
    let revoked = match args.revoke_on_new {
        Some(threshold) => revoke(ui, store.as_ref(), &config, &done, threshold, &mut errors).await,
        None => Vec::new(),
    };

    ui.summary(&summary(&done, &errors, &revoked))?;
    ui.json(&serde_json::json!({
        "store": store.location(),
        "rescans": done,
        "revoked": revoked.iter().map(Revoked::json).collect::<Vec<_>>(),
        "errors": errors.iter().map(|(id, e)| serde_json::json!({
            "image": id.name.to_string(),
            "version": id.version.to_string(),
            "error": e,
        })).collect::<Vec<_>>(),
    }));
    if !errors.is_empty() {
        anyhow::bail!(
            "{} of {} versions could not be rescanned or revoked: {}",
            errors.len(),
            versions.len(),
            errors
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let failing: Vec<String> = match args.fail_on_new {
        Some(threshold) => done
            .iter()
            .filter(|r| r.new_at_or_above(threshold))
            .map(|r| {
                format!(
                    "{}@{}: new findings up to {} ({}), at or above --fail-on-new {}",
                    r.image,
                    r.version,
                    r.new_max_severity.unwrap_or(Severity::Unknown).as_str(),
                    r.new_ids.join(", "),
                    threshold.as_str()
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let failing: Vec<String> = failing
        .into_iter()
        .chain(
            revoked
                .iter()
                .filter(|r| r.cascaded_from.is_none() && r.changed)
                .map(|r| {
                    let root = r.image.to_string();
                    let descendants = revoked
                        .iter()
                        .filter(|d| d.cascaded_from.as_deref() == Some(root.as_str()))
                        .count();
                    let with = match descendants {
                        0 => String::new(),
                        1 => " with 1 descendant".into(),
                        d => format!(" with {d} descendants"),
                    };
                    format!("{root}: revoked{with} ({})", r.reason)
                }),
        )
        .collect();
    Ok(if failing.is_empty() {
        Outcome::Done
    } else {
        Outcome::CheckFailed(failing)
    })
}

/// A revocation a rescan made (or found made already).
#[derive(Debug)]
struct Revoked {
    image: ImageRef,
    reason: String,
    /// The rescanned version whose revocation cascaded to this one.
    cascaded_from: Option<String>,
    /// False when it was revoked already.
    changed: bool,
}

impl Revoked {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "image": self.image.name.to_string(),
            "version": self.image.version.to_string(),
            "reason": self.reason,
            "cascaded_from": self.cascaded_from,
            "changed": self.changed,
        })
    }
}

/// Revokes, with their descendants, the versions with a new finding at or above
/// `threshold`, naming those advisories as the reason. A version revoked already (by an
/// earlier night's rescan, or by this run's cascade from its parent) is left as it is: a
/// nightly job fails once, on the night it revokes.
async fn revoke(
    ui: &Ui,
    store: &dyn imagepipe::store::Store,
    config: &imagepipe::config::Config,
    done: &[Rescan],
    threshold: Severity,
    errors: &mut Vec<(ImageRef, String)>,
) -> Vec<Revoked> {
    let by = lifecycle::actor();
    let now = lifecycle::now();
    let mut out: Vec<Revoked> = Vec::new();
    for r in done.iter().filter(|r| r.new_at_or_above(threshold)) {
        let Ok(id) = format!("{}@{}", r.image, r.version).parse::<ImageRef>() else {
            continue;
        };
        if out.iter().any(|o| o.image == id) {
            continue;
        }
        match lifecycle::revocation(store, &id.name, &id.version).await {
            Ok(Some(known)) if known.is_effective(now) => {
                ui.info(&format!("{id}: {}", known.describe(now)));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                ui.error(&format!("{id}: {e}"));
                errors.push((id, e.to_string()));
                continue;
            }
        }
        let mut advisories: Vec<String> = r
            .new_findings
            .iter()
            .filter(|f| f.severity >= threshold)
            .map(|f| format!("{} ({}, {})", f.id, f.severity.as_str(), f.package))
            .collect();
        advisories.sort();
        advisories.dedup();
        let reason = format!(
            "rescan found {}, at or above --revoke-on-new {}",
            advisories.join(", "),
            threshold.as_str()
        );
        let how = lifecycle::RevokeOptions {
            reason: &reason,
            by: &by,
            now,
            effective: now,
            cascade: true,
        };
        let made = match lifecycle::revoke(store, config, &id, &how).await {
            Ok(made) => made,
            Err(e) => {
                let e = format!("revoking it, which the rescan found affected: {e}");
                ui.error(&format!("{id}: {e}"));
                errors.push((id, e));
                continue;
            }
        };
        for (n, m) in made.into_iter().enumerate() {
            ui.warn(&format!(
                "{}: {} ({reason})",
                m.image,
                if m.changed {
                    "revoked"
                } else {
                    "already revoked"
                }
            ));
            out.push(Revoked {
                cascaded_from: (n > 0).then(|| id.to_string()),
                image: m.image,
                reason: reason.clone(),
                changed: m.changed,
            });
        }
    }
    out
}

/// A database's line (records, newest, age), a warning when it is stale or empty.
fn show_database(
    ui: &Ui,
    (name, records, newest): (&str, usize, Option<chrono::DateTime<chrono::Utc>>),
    max_age: std::time::Duration,
    empty: &str,
) {
    match newest.map(|n| scan::report::database_note(name, records, n, max_age, true)) {
        Some(scan::report::Line::Warn(line)) => ui.warn(&line),
        Some(scan::report::Line::Info(line)) => ui.info(&line),
        None => ui.warn(empty),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

fn show(ui: &Ui, r: &Rescan) {
    let since = match (&r.last_scan.scanned_at, r.last_scan.findings_known) {
        (Some(at), true) => format!("since the scan of {}", at.format("%Y-%m-%d %H:%M UTC")),
        (Some(at), false) => format!(
            "(the scan of {} kept no findings in the record: all count as new)",
            at.format("%Y-%m-%d")
        ),
        (None, _) => "(the record has no scan: all count as new)".into(),
    };
    ui.info(&format!(
        "{}@{} ({}): {} packages, {} findings, {} new {since}; read {} of {} bytes ({}) in {} requests, {:.2} s",
        r.image,
        r.version,
        r.ecosystem.as_deref().unwrap_or("-"),
        r.packages,
        r.findings.len(),
        r.new_findings.len(),
        r.bytes_read,
        r.artifact_size,
        percent(r.bytes_read, r.artifact_size),
        r.requests,
        r.seconds
    ));
    for f in &r.new_findings {
        ui.info(&format!(
            "  new {:<8} {:<20} {:<24} {:<24} fixed: {}",
            f.severity.as_str(),
            f.id,
            f.package,
            f.installed,
            f.fixed.as_deref().unwrap_or("-")
        ));
    }
}

fn summary(done: &[Rescan], errors: &[(ImageRef, String)], revoked: &[Revoked]) -> String {
    let mut out = String::from(
        "### imagepipe-scan: rescan in place\n\n| version | findings | new | highest new | new advisories | read |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in done {
        out.push_str(&format!(
            "| `{}@{}` | {} | {} | {} | {} | {} of {} bytes ({}) |\n",
            r.image,
            r.version,
            r.findings.len(),
            r.new_findings.len(),
            r.new_max_severity.map_or("-", Severity::as_str),
            if r.new_ids.is_empty() {
                "-".to_string()
            } else {
                r.new_ids.join(", ")
            },
            r.bytes_read,
            r.artifact_size,
            percent(r.bytes_read, r.artifact_size)
        ));
    }
    for (id, e) in errors {
        out.push_str(&format!("| `{id}` | error: {e} | | | | |\n"));
    }
    if !revoked.is_empty() {
        out.push_str("\nRevoked (`--revoke-on-new`):\n\n");
        for r in revoked {
            let how = match (&r.cascaded_from, r.changed) {
                (_, false) => " (revoked already)".to_string(),
                (Some(from), true) => format!(" (built on {from})"),
                (None, true) => String::new(),
            };
            out.push_str(&format!("- `{}`{how}: {}\n", r.image, r.reason));
        }
    }
    out
}
