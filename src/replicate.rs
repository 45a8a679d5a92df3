//! Proving replication: every site's store holds the version the primary store has, with the
//! same bytes, soon enough after the build.
//!
//! The primary store's record is the reference. Each site is asked for that record and for
//! every artifact's digest, all at once within the per-site bound, and gets one verdict. Sites
//! are checked concurrently within a global bound, so a slow or dead site costs its own time
//! and nobody else's. Waiting re-checks only the sites that are not yet complete.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{FutureExt as _, StreamExt as _};
use semver::Version;
use serde::Serialize;

use crate::config::Site;
use crate::hash::Sha256Hex;
use crate::image::ImageRef;
use crate::record::{FileArtifact, LoadedRecord, ReplicationSection, SiteReplication};
use crate::store::{ReplicationTarget, Store, StoreError};

/// What a site holds of the version, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Present,
    Missing,
    Mismatched,
    /// The version is not there and an older one is the newest the site has.
    Stale,
    Unreachable,
    Unauthorised,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Present => "present",
            Self::Missing => "missing",
            Self::Mismatched => "mismatched",
            Self::Stale => "stale",
            Self::Unreachable => "unreachable",
            Self::Unauthorised => "unauthorised",
        })
    }
}

/// What a site holds of one file (the record or an artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum FileState {
    Verified,
    Missing,
    /// Present with other bytes (`None`: the record is there but unreadable).
    Mismatched {
        sha256: Option<Sha256Hex>,
    },
    /// The site did not answer for it.
    Unknown,
}

impl FileState {
    /// The table cell.
    pub fn cell(&self) -> &'static str {
        match self {
            Self::Verified => "ok",
            Self::Missing => "missing",
            Self::Mismatched { .. } => "MISMATCH",
            Self::Unknown => "?",
        }
    }
}

/// The version as the primary store has it: what every site must hold.
#[derive(Debug, Clone)]
pub struct Reference {
    pub image: ImageRef,
    pub record: LoadedRecord,
}

impl Reference {
    /// Reads the reference from the primary store.
    pub async fn fetch(primary: &dyn Store, image: &ImageRef) -> Result<Self, StoreError> {
        Ok(Self {
            image: image.clone(),
            record: primary.fetch_record(image).await?,
        })
    }

    fn artifacts(&self) -> impl Iterator<Item = &FileArtifact> {
        self.record.record.artifacts.iter().filter_map(|a| a.file())
    }

    /// Column names: the record, then each file artifact's file name.
    pub fn files(&self) -> Vec<String> {
        std::iter::once(crate::record::FILE_NAME.to_string())
            .chain(self.artifacts().map(|f| f.file_name().to_string()))
            .collect()
    }

    pub fn built_at(&self) -> DateTime<Utc> {
        self.record.record.build.finished_at
    }
}

/// One site's result.
#[derive(Debug, Clone, Serialize)]
pub struct SiteResult {
    pub site: String,
    pub store: String,
    pub verdict: Verdict,
    pub detail: Option<String>,
    /// Per file, in the order of [`Reference::files`].
    pub files: Vec<FileState>,
    /// The newest version the site has, when it lacks this one.
    pub newest: Option<Version>,
    /// The primary store's replication status for this site, as Artifactory words it.
    pub replication: Option<String>,
    /// When this run first found the site complete.
    pub verified_at: Option<DateTime<Utc>>,
    /// From the end of the build to `verified_at`, or to now while incomplete.
    pub age_seconds: u64,
    pub sla_seconds: Option<u64>,
    pub sla_breached: bool,
}

impl SiteResult {
    pub fn reason(&self) -> String {
        match &self.detail {
            Some(d) => format!("site {}: {}: {d}", self.site, self.verdict),
            None => format!("site {}: {}", self.site, self.verdict),
        }
    }
}

/// A site to check, with its store opened.
#[derive(Debug)]
pub struct Target {
    pub site: Site,
    pub store: Box<dyn Store>,
}

/// How hard and how long to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Sites checked at once.
    pub concurrency: usize,
    /// Requests in flight per site.
    pub requests_per_site: usize,
    /// A site that has not answered completely within this is unreachable for the round.
    pub site_timeout: Duration,
    /// Keep checking incomplete sites until this much time has passed; `None`: check once.
    pub wait: Option<Duration>,
    /// First pause between rounds; it doubles up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            requests_per_site: 8,
            site_timeout: Duration::from_secs(120),
            wait: None,
            poll: Duration::from_secs(10),
            max_poll: Duration::from_secs(120),
        }
    }
}

/// Checks one site once.
pub async fn check_site(
    store: &dyn Store,
    reference: &Reference,
    requests: usize,
) -> (Verdict, Option<String>, Vec<FileState>, Option<Version>) {
    let image = &reference.image;
    let record = async {
        match store.fetch_record(image).await {
            Ok(l) if l.sha256 == reference.record.sha256 => Ok(FileState::Verified),
            Ok(l) => Ok(FileState::Mismatched {
                sha256: Some(l.sha256),
            }),
            Err(StoreError::VersionNotFound { .. }) => Ok(FileState::Missing),
            Err(StoreError::Record(_) | StoreError::WrongRecord { .. }) => {
                Ok(FileState::Mismatched { sha256: None })
            }
            Err(e) => Err(e),
        }
    };
    let artifacts = reference.artifacts().map(|f| async move {
        match store.artifact_digest(image, f).await {
            Ok(Some(d)) if d.is(f) => Ok(FileState::Verified),
            Ok(Some(d)) => Ok(FileState::Mismatched {
                sha256: Some(d.sha256),
            }),
            Ok(None) => Ok(FileState::Missing),
            Err(e) => Err(e),
        }
    });
    let answers: Vec<Result<FileState, StoreError>> = futures_util::stream::iter(
        std::iter::once(record.boxed()).chain(artifacts.map(|f| f.boxed())),
    )
    .buffered(requests.max(1))
    .collect()
    .await;

    let names = reference.files();
    let mut files = Vec::with_capacity(answers.len());
    let mut failure: Option<StoreError> = None;
    for answer in answers {
        match answer {
            Ok(state) => files.push(state),
            Err(e) => {
                files.push(FileState::Unknown);
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return (classify(&e), Some(e.to_string()), files, None);
    }
    let listed = |pred: fn(&FileState) -> bool| {
        names
            .iter()
            .zip(&files)
            .filter(|(_, s)| pred(s))
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if files
        .iter()
        .any(|s| matches!(s, FileState::Mismatched { .. }))
    {
        let which = listed(|s| matches!(s, FileState::Mismatched { .. }));
        return (
            Verdict::Mismatched,
            Some(format!("different bytes than the primary store: {which}")),
            files,
            None,
        );
    }
    if files[0] == FileState::Missing {
        let arrived = files[1..]
            .iter()
            .filter(|s| **s == FileState::Verified)
            .count();
        let partial = format!(
            "{arrived} of {} artifacts arrived, the record has not",
            files.len() - 1
        );
        if let Err(e) = store.check_access().await {
            return (classify(&e), Some(e.to_string()), files, None);
        }
        return match store.list_versions(&image.name).await {
            Ok(versions) => {
                let newest = versions.into_iter().max();
                match newest {
                    Some(n) if n < image.version => (
                        Verdict::Stale,
                        Some(format!("the newest version there is {n}; {partial}")),
                        files,
                        Some(n),
                    ),
                    n => (Verdict::Missing, Some(partial), files, n),
                }
            }
            Err(e) => (classify(&e), Some(e.to_string()), files, None),
        };
    }
    if files.contains(&FileState::Missing) {
        let which = listed(|s| *s == FileState::Missing);
        return (
            Verdict::Missing,
            Some(format!("the record is there but not: {which}")),
            files,
            None,
        );
    }
    (Verdict::Present, None, files, None)
}

fn classify(e: &StoreError) -> Verdict {
    match e {
        StoreError::Unauthorized { .. } => Verdict::Unauthorised,
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Verdict::Unauthorised
        }
        _ => Verdict::Unreachable,
    }
}

/// What [`check_all`] tells its caller as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A site's result in a round (1-based).
    Result(&'a SiteResult, u32),
    /// Some sites are incomplete; the next round starts after `next`.
    Waiting {
        pending: Vec<&'a str>,
        next: Duration,
    },
}

/// Checks every target, re-checking incomplete ones until `options.wait` runs out. `status` is
/// asked before each round for the primary's replication targets.
pub async fn check_all<S, SFut>(
    targets: &[Target],
    reference: &Reference,
    options: &CheckOptions,
    status: S,
    mut on_event: impl FnMut(Event<'_>),
) -> Vec<SiteResult>
where
    S: Fn() -> SFut,
    SFut: std::future::Future<Output = Vec<ReplicationTarget>>,
{
    let start = tokio::time::Instant::now();
    let mut results: Vec<Option<SiteResult>> = vec![None; targets.len()];
    let mut poll = options.poll;
    let mut round = 0;
    loop {
        round += 1;
        let replication = status().await;
        let pending: Vec<usize> = (0..targets.len())
            .filter(|i| {
                results[*i]
                    .as_ref()
                    .is_none_or(|r| r.verdict != Verdict::Present)
            })
            .collect();
        let mut stream = futures_util::stream::iter(pending.into_iter().map(|i| {
            let target = &targets[i];
            async move {
                let outcome = tokio::time::timeout(
                    options.site_timeout,
                    check_site(target.store.as_ref(), reference, options.requests_per_site),
                )
                .await;
                (i, outcome)
            }
        }))
        .buffer_unordered(options.concurrency.max(1));
        while let Some((i, outcome)) = stream.next().await {
            let target = &targets[i];
            let (verdict, detail, files, newest) = outcome.unwrap_or_else(|_| {
                (
                    Verdict::Unreachable,
                    Some(format!(
                        "no complete answer within {}",
                        humantime::format_duration(options.site_timeout)
                    )),
                    vec![FileState::Unknown; reference.files().len()],
                    None,
                )
            });
            let now = Utc::now();
            let verified_at = (verdict == Verdict::Present).then_some(now);
            let age = (now - reference.built_at()).to_std().unwrap_or_default();
            let sla = target.site.sla;
            let result = SiteResult {
                site: target.site.name.clone(),
                store: target.store.location(),
                verdict,
                detail,
                files,
                newest,
                replication: replication
                    .iter()
                    .find(|t| t.is(&target.site.store.url))
                    .map(describe_target),
                verified_at,
                age_seconds: age.as_secs(),
                sla_seconds: sla.map(|d| d.as_secs()),
                sla_breached: sla.is_some_and(|s| age > s),
            };
            on_event(Event::Result(&result, round));
            results[i] = Some(result);
        }
        let complete = results
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r.verdict == Verdict::Present));
        let Some(wait) = options.wait else { break };
        let left = wait.saturating_sub(start.elapsed());
        if complete || left.is_zero() {
            break;
        }
        let next = poll.min(left);
        on_event(Event::Waiting {
            pending: results
                .iter()
                .flatten()
                .filter(|r| r.verdict != Verdict::Present)
                .map(|r| r.site.as_str())
                .collect(),
            next,
        });
        tokio::time::sleep(next).await;
        poll = (poll * 2).min(options.max_poll);
    }
    results.into_iter().flatten().collect()
}

fn describe_target(t: &ReplicationTarget) -> String {
    match &t.last_completed {
        Some(at) => format!("{} (last completed {at})", t.status),
        None => t.status.clone(),
    }
}

/// Reports the results on every channel of the step contract and says how the check came out.
pub fn report(
    ui: &crate::step::Ui,
    reference: &Reference,
    results: &[SiteResult],
) -> std::io::Result<crate::step::Outcome> {
    let id = &reference.image;
    ui.info(&format!(
        "\n{id} (record sha256 {}), built {}:\n{}",
        reference.record.sha256,
        reference.built_at().format("%Y-%m-%d %H:%M UTC"),
        table(reference, results)
    ));
    for r in results.iter().filter(|r| r.sla_breached) {
        ui.warn(&format!(
            "site {}: {} {} after the build, beyond its SLA of {}",
            r.site,
            if r.verified_at.is_some() {
                "complete"
            } else {
                "still incomplete"
            },
            short_age(r.age_seconds),
            short_age(r.sla_seconds.unwrap_or_default()),
        ));
    }
    let failed: Vec<&SiteResult> = results
        .iter()
        .filter(|r| r.verdict != Verdict::Present)
        .collect();
    let names: Vec<&str> = failed.iter().map(|r| r.site.as_str()).collect();
    ui.output("complete", &failed.is_empty().to_string())?;
    ui.output("failed-sites", &names.join(","))?;
    ui.summary(&format!(
        "### imagepipe-replicate-check: `{}` {}\n\n{}\n{}\n",
        id.name,
        id.version,
        markdown_table(reference, results),
        if failed.is_empty() {
            format!("Every site ({}) holds the same bytes.", results.len())
        } else {
            format!("Not complete: {}.", names.join(", "))
        }
    ))?;
    ui.json(&serde_json::json!({
        "image": id.name,
        "version": id.version.to_string(),
        "record_sha256": reference.record.sha256,
        "built_at": reference.built_at(),
        "files": reference.files(),
        "complete": failed.is_empty(),
        "sites": results,
    }));
    Ok(if failed.is_empty() {
        crate::step::Outcome::Done
    } else {
        crate::step::Outcome::CheckFailed(failed.iter().map(|r| r.reason()).collect())
    })
}

/// The whole check as the step runs it: optionally triggers the primary's replication, opens
/// every site's store with HTTP settings fit for checking, checks (and waits), and prints each
/// site's first verdict and each site that turns green.
pub async fn run(
    primary: &dyn Store,
    sites: Vec<Site>,
    reference: &Reference,
    options: &CheckOptions,
    trigger: bool,
    ui: &crate::step::Ui,
) -> Result<Vec<SiteResult>, StoreError> {
    let image = &reference.image;
    if trigger {
        let before = primary.replication_status().await.unwrap_or_default();
        match primary.trigger_replication(image).await {
            Ok(()) => {
                ui.info(&format!(
                    "asked {} to replicate {image}",
                    primary.location()
                ));
                let limit = options.wait.unwrap_or(options.site_timeout);
                follow_replication(primary, &before, limit, options, ui).await;
            }
            Err(e) => ui.warn(&format!("could not trigger replication: {e}")),
        }
    }
    // A check is repeated by --wait: a dead site should fail fast rather than retry long.
    let http = crate::http::HttpOptions {
        timeout: options.site_timeout,
        connect_timeout: options.site_timeout.min(Duration::from_secs(15)),
        retry: crate::http::RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        },
        ..crate::http::HttpOptions::default()
    };
    let targets = sites
        .into_iter()
        .map(|site| {
            let store = crate::store::open_with(&site.store, http.clone())?;
            Ok(Target { site, store })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;

    let warned = std::sync::atomic::AtomicBool::new(false);
    let status = || async {
        match primary.replication_status().await {
            Ok(t) => t,
            Err(StoreError::Unsupported(_)) => Vec::new(),
            Err(e) => {
                if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    ui.warn(&format!("replication status unavailable: {e}"));
                }
                Vec::new()
            }
        }
    };
    let total = targets.len();
    let mut complete = 0;
    let print = |event: Event<'_>| match event {
        Event::Result(r, round) => {
            if r.verdict == Verdict::Present {
                complete += 1;
            }
            if round == 1 || r.verdict == Verdict::Present {
                let detail = r.detail.as_deref().map(|d| format!(" ({d})"));
                ui.info(&format!(
                    "{:<12} {:<12} {complete}/{total} complete{}",
                    r.site,
                    r.verdict,
                    detail.unwrap_or_default()
                ));
            }
        }
        Event::Waiting { pending, next } => ui.info(&format!(
            "waiting for {}; next check in {}",
            pending.join(", "),
            humantime::format_duration(next)
        )),
    };
    Ok(check_all(&targets, reference, options, status, print).await)
}

/// Follows a triggered replication, which runs in the background: until no target is
/// `incomplete` and each has completed a run since the trigger (its `lastCompleted` moved) or
/// stopped with `error`, `warn` or `inconsistent`; at most `limit`. Comparing `lastCompleted`
/// with its value before the trigger needs no agreement between the two clocks.
async fn follow_replication(
    primary: &dyn Store,
    before: &[ReplicationTarget],
    limit: Duration,
    options: &CheckOptions,
    ui: &crate::step::Ui,
) {
    let start = tokio::time::Instant::now();
    let mut poll = options.poll;
    loop {
        let Ok(now) = primary.replication_status().await else {
            return;
        };
        let running: Vec<&ReplicationTarget> = now
            .iter()
            .filter(|t| {
                let previous = before.iter().find(|b| b.url == t.url);
                t.status == "incomplete"
                    || (previous.is_some_and(|b| b.last_completed == t.last_completed)
                        && !matches!(t.status.as_str(), "error" | "warn" | "inconsistent"))
            })
            .collect();
        if running.is_empty() {
            for t in &now {
                ui.info(&format!("replication to {}: {}", t.url, describe_target(t)));
            }
            return;
        }
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            ui.warn(&format!(
                "replication still running after {} to {}; checking the sites as they are",
                humantime::format_duration(limit),
                running
                    .iter()
                    .map(|t| t.url.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        tokio::time::sleep(poll.min(left)).await;
        poll = (poll * 2).min(options.max_poll);
    }
}

/// The record's replication section after this check: results for the checked sites replace
/// earlier ones, and sites not checked this time keep theirs.
pub fn section(
    previous: Option<&ReplicationSection>,
    results: &[SiteResult],
) -> ReplicationSection {
    let mut sites: BTreeMap<String, SiteReplication> = previous
        .map(|p| {
            p.sites
                .iter()
                .map(|s| (s.site.clone(), s.clone()))
                .collect()
        })
        .unwrap_or_default();
    for r in results {
        sites.insert(
            r.site.clone(),
            SiteReplication {
                site: r.site.clone(),
                verdict: r.verdict.to_string(),
                age_seconds: r.verified_at.map(|_| r.age_seconds),
                sla_breached: r.sla_breached,
                detail: r.detail.clone(),
            },
        );
    }
    ReplicationSection {
        checked_at: Utc::now(),
        sites: sites.into_values().collect(),
    }
}

/// `1h 02m`-style age for tables.
pub fn short_age(seconds: u64) -> String {
    let (h, m) = (seconds / 3600, (seconds % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

/// The site × file table, plain text with aligned columns.
pub fn table(reference: &Reference, results: &[SiteResult]) -> String {
    let mut rows = vec![header(reference)];
    rows.extend(results.iter().map(row));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same table in Markdown, for the step summary.
pub fn markdown_table(reference: &Reference, results: &[SiteResult]) -> String {
    let head = header(reference);
    let mut out = format!(
        "| {} |\n|{}\n",
        head.join(" | "),
        " --- |".repeat(head.len())
    );
    for r in results {
        out.push_str(&format!("| {} |\n", row(r).join(" | ")));
    }
    out
}

fn header(reference: &Reference) -> Vec<String> {
    let mut h = vec!["site".to_string(), "verdict".to_string()];
    h.extend(reference.files());
    h.extend(["age", "sla", "replication"].map(String::from));
    h
}

fn row(r: &SiteResult) -> Vec<String> {
    let mut cells = vec![r.site.clone(), r.verdict.to_string()];
    cells.extend(r.files.iter().map(|f| f.cell().to_string()));
    cells.push(short_age(r.age_seconds));
    cells.push(match (r.sla_seconds, r.sla_breached) {
        (None, _) => "-".into(),
        (Some(_), true) => "BREACHED".into(),
        (Some(_), false) => "ok".into(),
    });
    cells.push(r.replication.clone().unwrap_or_else(|| "-".into()));
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(short_age(42), "42s");
        assert_eq!(short_age(600), "10m");
        assert_eq!(short_age(3600 * 9 + 60), "9h01m");
    }

    #[test]
    fn targets_match_their_site() {
        let site = crate::store::StoreUrl::Artifactory {
            base: "https://east.example/artifactory".into(),
            repo: "os-images".into(),
            prefix: String::new(),
        };
        let target = |url: &str, repo: Option<&str>| ReplicationTarget {
            url: url.into(),
            repo_key: repo.map(String::from),
            status: "ok".into(),
            last_completed: None,
        };
        assert!(target("https://east.example/artifactory/os-images/", None).is(&site));
        assert!(target("https://east.example/artifactory", Some("os-images")).is(&site));
        assert!(!target("https://west.example/artifactory/os-images", None).is(&site));
        assert!(!target("https://east.example/artifactory", Some("other")).is(&site));
    }
}
