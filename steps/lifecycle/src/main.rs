//! `imagepipe-lifecycle`: channels, revocation, library pruning and retention of published
//! image versions.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use imagepipe::env;
use imagepipe::image::{ImageName, ImageRef};
use imagepipe::lifecycle;
use imagepipe::step::{self, CommonArgs, Outcome, Ui};
use imagepipe::store::{self, Store};

/// Promote versions to channels, roll channels back, revoke versions, prune revoked versions
/// from the content libraries, and keep the newest versions.
///
/// Everything is kept in the primary store (imagepipe.toml's [store], or --store): a channel is
/// a document with its history (and an Artifactory property or a registry tag on the version);
/// a revocation says who, when and why. Builds refuse a revoked parent and imports a revoked
/// version; `channel:NAME` names a channel's version in `parent_version` and in
/// `imagepipe-import --version`.
///
/// `prune` and `retain` only print their plan unless --apply is given.
///
/// Exit codes: 0 done; 2 usage, configuration or store error, another promotion or revocation
/// won a race (nothing half applied; run again), or a library could not be pruned (each is
/// named; the others are still pruned).
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-lifecycle",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// The subcommand, for callers that cannot pass one (a GitHub action, Jenkins).
    #[arg(long = "command", env = env::LIFECYCLE_COMMAND, value_enum, value_name = "COMMAND", global = true)]
    command_name: Option<CommandName>,

    /// Image name, e.g. global/debian-12.
    #[arg(long, env = env::IMAGE, value_name = "NAME", global = true)]
    image: Option<String>,

    /// Image version (X.Y.Z), or `channel:NAME` for the version a channel points at.
    #[arg(long, env = env::VERSION, value_name = "X.Y.Z", global = true)]
    version: Option<String>,

    /// The channel (`prod`, `dev`): promote, rollback, history.
    #[arg(long, env = env::CHANNEL, value_name = "NAME", global = true)]
    channel: Option<String>,

    /// Why the version is revoked; builds and imports show it (revoke).
    #[arg(long, env = env::REASON, value_name = "TEXT", global = true)]
    reason: Option<String>,

    /// Revoke every descendant too: the versions built on it, found by their records' parent
    /// in the store, and theirs (revoke).
    #[arg(long, env = env::CASCADE, global = true)]
    cascade: bool,

    /// Schedule the revocation: effective from this date (RFC 3339 or YYYY-MM-DD, UTC)
    /// instead of now (revoke).
    #[arg(long = "at", env = env::REVOKE_AT, value_name = "DATE", global = true)]
    at: Option<String>,

    /// Change the stores and libraries; without it, prune and retain only print their plan.
    #[arg(long, env = env::APPLY, global = true)]
    apply: bool,

    /// How many versions of each image retain keeps (besides those a channel or an unrevoked
    /// child needs).
    #[arg(long, env = env::RETAIN, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    keep: Option<u16>,

    /// How many assignments of each channel's history retain keeps (the newest; each one kept
    /// allows one rollback).
    #[arg(long, env = env::RETAIN_HISTORY, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(1..))]
    keep_history: Option<u16>,

    /// Only these sites' libraries and stores (repeat, or separate with commas); default every
    /// site (prune, retain).
    #[arg(long = "site", env = env::SITES, value_name = "NAME", value_delimiter = ',', global = true)]
    sites: Vec<String>,

    /// Use this store as the primary instead of imagepipe.toml's [store].
    #[arg(long, env = env::STORE, value_name = "URL", global = true)]
    store: Option<String>,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, Subcommand, ValueEnum, PartialEq, Eq)]
enum Command {
    /// Point --channel at --image --version (published, not revoked), keeping the history.
    Promote,
    /// Undo --channel's last promotion (again: the one before it).
    Rollback,
    /// Show the channels of --image (or only --channel) with every assignment, and its
    /// revoked versions.
    History,
    /// Revoke --image --version with --reason (and --cascade, --at).
    Revoke,
    /// Remove every revoked version's items from the sites' content libraries.
    Prune,
    /// Keep the newest --keep versions of --image (or of every image) in every store and
    /// library, and the newest --keep-history assignments of each channel's history.
    Retain,
}

type CommandName = Command;

#[cfg(test)]
#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory as _;
    Args::command().debug_assert();
}

/// A date for --at: RFC 3339, or a day (its start, UTC).
fn parse_date(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("--at `{s}` is not a date: give RFC 3339 (2027-01-31T12:00:00Z) or YYYY-MM-DD")
    })?;
    Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

fn main() -> ExitCode {
    let args = step::parse::<Args>();
    let common = args.common.clone();
    step::run("imagepipe-lifecycle", &common, |ui| async move {
        let command = match (args.command, args.command_name) {
            (Some(c), Some(n)) if c != n => {
                anyhow::bail!("the subcommand and --command disagree; give one of them")
            }
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => anyhow::bail!(
                "say what to do: promote, rollback, history, revoke, prune or retain (see --help)"
            ),
        };
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        let primary = store::open(&config.primary_store(args.store.as_deref())?)?;
        let now = Utc::now();
        let by = lifecycle::actor();
        match command {
            Command::Promote => {
                let image = version_of(&args, &config, primary.as_ref()).await?;
                let channel = channel_of(&args)?;
                // A lost race is exit 2 with the winner named, like any store error: nothing
                // was checked, and running again decides.
                let p = lifecycle::promote(primary.as_ref(), &image, channel, &by, now).await?;
                report_promotion(&ui, &p, &by)
            }
            Command::Rollback => {
                let image = image_of(&args, &config)?;
                let channel = channel_of(&args)?;
                let p = lifecycle::rollback(primary.as_ref(), &image, channel, &by, now).await?;
                report_promotion(&ui, &p, &by)
            }
            Command::History => {
                let image = image_of(&args, &config)?;
                history(&ui, primary.as_ref(), &image, args.channel.as_deref(), now).await
            }
            Command::Revoke => {
                let image = version_of(&args, &config, primary.as_ref()).await?;
                let reason = args
                    .reason
                    .as_deref()
                    .filter(|r| !r.trim().is_empty())
                    .context("a revocation needs --reason TEXT, which builds and imports show")?;
                let effective = match &args.at {
                    Some(at) => parse_date(at)?,
                    None => now,
                };
                let how = lifecycle::RevokeOptions {
                    reason,
                    by: &by,
                    now,
                    effective,
                    cascade: args.cascade,
                };
                let done = lifecycle::revoke(primary.as_ref(), &config, &image, &how).await?;
                for r in &done {
                    let when = if r.effective > now {
                        format!("scheduled for {}", r.effective.to_rfc3339())
                    } else {
                        "effective now".into()
                    };
                    let what = if r.changed {
                        "revoked"
                    } else {
                        "already revoked"
                    };
                    ui.info(&format!("{what}: {} ({when})", r.image));
                }
                let list: Vec<String> = done.iter().map(|r| r.image.to_string()).collect();
                ui.output("revoked", &list.join(","))?;
                ui.summary(&format!(
                    "### imagepipe-lifecycle revoke\n\nRevoked by {by}: {}\n\nReason: {reason}\n",
                    list.join(", ")
                ))?;
                ui.json(&serde_json::json!({ "revoked": done, "by": by, "reason": reason }));
                Ok(Outcome::Done)
            }
            Command::Prune => {
                let sites = config.select_sites(&args.sites)?;
                let (revoked, results) =
                    lifecycle::prune_libraries(primary.as_ref(), &config, &sites, now, args.apply)
                        .await?;
                if revoked.is_empty() {
                    ui.info("no version is revoked: nothing to prune");
                }
                for (image, versions) in &revoked {
                    let vs: Vec<String> = versions.iter().map(ToString::to_string).collect();
                    ui.info(&format!("revoked: {image} {}", vs.join(", ")));
                }
                if !args.apply {
                    let n = sites.iter().filter(|s| s.library.is_some()).count();
                    ui.info(&format!(
                        "plan only: run with --apply to remove these versions' items from {n} \
                         site {}",
                        if n == 1 { "library" } else { "libraries" }
                    ));
                }
                let mut failed = Vec::new();
                for r in &results {
                    match &r.error {
                        Some(e) => failed.push(format!("site {}: {e}", r.site)),
                        None if r.removed.is_empty() => {
                            ui.info(&format!("site {}: nothing to remove", r.site));
                        }
                        None => ui.info(&format!(
                            "site {}: removed {}",
                            r.site,
                            r.removed.join(", ")
                        )),
                    }
                }
                let removed: Vec<String> = results
                    .iter()
                    .flat_map(|r| r.removed.iter().map(|i| format!("{}:{i}", r.site)))
                    .collect();
                ui.output("removed", &removed.join(","))?;
                ui.json(&serde_json::json!({
                    "revoked": revoked.iter().map(|(i, v)| (i.to_string(), v.iter().map(ToString::to_string).collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
                    "applied": args.apply,
                    "sites": results,
                }));
                // A library that could not be pruned is an infrastructure error (exit 2), as
                // a site that could not be imported is; the other sites were still pruned.
                anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n"));
                Ok(Outcome::Done)
            }
            Command::Retain => {
                anyhow::ensure!(
                    args.keep.is_some() || args.keep_history.is_some(),
                    "retain needs --keep N (how many versions of each image stay), --keep-history N (how many assignments of each channel's history stay), or both"
                );
                // A version deleted from the primary store is no longer listed, so copies left
                // at sites outside the selection would never be found again.
                anyhow::ensure!(
                    !args.apply || args.sites.is_empty(),
                    "retain --apply works on every site (a version it deletes is no longer listed, so copies at sites left out would stay for good); drop --sites, or plan without --apply"
                );
                let sites = config.select_sites(&args.sites)?;
                let images: Vec<ImageName> = match &args.image {
                    Some(i) => vec![config.image(i)?.name.clone()],
                    None => config.images.iter().map(|i| i.name.clone()).collect(),
                };
                let mut json = Vec::new();
                for image in &images {
                    let history = match args.keep_history.map(usize::from) {
                        Some(n) if args.apply => {
                            lifecycle::apply_history(primary.as_ref(), image, n).await?
                        }
                        Some(n) => lifecycle::plan_history(primary.as_ref(), image, n).await?,
                        None => Vec::new(),
                    };
                    for t in &history {
                        ui.info(&format!(
                            "{image}: channel {} history {} → {} assignments",
                            t.channel, t.before, t.after
                        ));
                    }
                    let Some(keep) = args.keep.map(usize::from) else {
                        json.push(serde_json::json!({ "image": image, "history": history }));
                        continue;
                    };
                    if args.apply {
                        let (plan, result) = lifecycle::apply_retention(
                            primary.as_ref(),
                            &config,
                            &sites,
                            image,
                            keep,
                            now,
                        )
                        .await?;
                        ui.info(&plan.describe());
                        for (store, deleted) in &result.stores {
                            if !deleted.is_empty() {
                                ui.info(&format!("{store}: deleted {}", deleted.join(", ")));
                            }
                        }
                        for l in &result.libraries {
                            if !l.removed.is_empty() {
                                ui.info(&format!(
                                    "site {}: removed {}",
                                    l.site,
                                    l.removed.join(", ")
                                ));
                            }
                        }
                        json.push(serde_json::json!({ "image": image, "history": history, "plan": plan, "result": result }));
                    } else {
                        let plan =
                            lifecycle::plan_retention(primary.as_ref(), &config, image, keep, now)
                                .await?;
                        ui.info(&plan.describe());
                        json.push(
                            serde_json::json!({ "image": image, "history": history, "plan": plan }),
                        );
                    }
                }
                if !args.apply {
                    ui.info("plan only: run with --apply to delete");
                }
                ui.json(&serde_json::json!({ "applied": args.apply, "images": json }));
                Ok(Outcome::Done)
            }
        }
    })
}

fn image_of(args: &Args, config: &imagepipe::config::Config) -> anyhow::Result<ImageName> {
    let name = args
        .image
        .as_deref()
        .context("say which image: --image NAME")?;
    Ok(config.image(name)?.name.clone())
}

fn channel_of(args: &Args) -> anyhow::Result<&str> {
    let channel = args
        .channel
        .as_deref()
        .context("say which channel: --channel NAME (for example prod)")?;
    lifecycle::check_channel(channel)?;
    Ok(channel)
}

async fn version_of(
    args: &Args,
    config: &imagepipe::config::Config,
    store: &dyn Store,
) -> anyhow::Result<ImageRef> {
    let name = image_of(args, config)?;
    let given = args
        .version
        .as_deref()
        .context("say which version: --version X.Y.Z (or channel:NAME)")?;
    let resolved = lifecycle::resolve_version_arg(store, &name, given).await?;
    let version = resolved
        .trim_start_matches('v')
        .parse()
        .with_context(|| format!("--version `{given}` is not a semantic version like 1.4.0"))?;
    Ok(ImageRef { name, version })
}

fn report_promotion(ui: &Ui, p: &lifecycle::Promotion, by: &str) -> anyhow::Result<Outcome> {
    let before = p
        .previous
        .as_ref()
        .map_or_else(|| "nothing".to_string(), ToString::to_string);
    if p.changed {
        ui.info(&format!(
            "channel `{}` of {}: {before} → {} (by {by})",
            p.channel, p.image.name, p.image.version
        ));
    } else {
        ui.info(&format!(
            "channel `{}` of {} is {} already: nothing changed",
            p.channel, p.image.name, p.image.version
        ));
    }
    ui.output("version", &p.image.version.to_string())?;
    ui.output(
        "previous",
        &p.previous
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    )?;
    ui.summary(&format!(
        "### imagepipe-lifecycle: `{}` channel `{}`\n\n{before} → {}\n",
        p.image.name, p.channel, p.image.version
    ))?;
    ui.json(&serde_json::to_value(p).unwrap_or_default());
    Ok(Outcome::Done)
}

async fn history(
    ui: &Ui,
    store: &dyn Store,
    image: &ImageName,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    let channels = lifecycle::channels(store, image).await?;
    let revocations = lifecycle::revocations(store, image).await?;
    if let Some(c) = only {
        lifecycle::check_channel(c)?;
        if !channels.channels.contains_key(c) {
            return Err(lifecycle::LifecycleError::NoChannel {
                image: image.clone(),
                channel: c.to_string(),
                store: store.location(),
            }
            .into());
        }
    }
    let mut text = format!("{image} in {}:\n", store.location());
    for (name, ch) in channels
        .channels
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
    {
        text.push_str(&format!("  channel {name}: {}\n", ch.version));
        for a in ch.history.iter().rev() {
            text.push_str(&format!(
                "    {}  {}{} by {} (before: {})\n",
                a.at.format("%Y-%m-%d %H:%M:%S UTC"),
                a.version,
                if a.rollback { " (rollback)" } else { "" },
                a.by,
                a.previous
                    .as_ref()
                    .map_or_else(|| "none".to_string(), ToString::to_string)
            ));
        }
    }
    let revoked: BTreeSet<&String> = revocations.versions.keys().collect();
    for v in revoked {
        let r = &revocations.versions[v];
        let state = if r.is_effective(now) {
            "revoked"
        } else {
            "to be revoked"
        };
        text.push_str(&format!(
            "  {state} {v}: {} (by {} at {}{})\n",
            r.reason,
            r.by,
            r.effective.format("%Y-%m-%d %H:%M:%S UTC"),
            r.cascaded_from
                .as_ref()
                .map(|f| format!(", with {f}"))
                .unwrap_or_default()
        ));
    }
    ui.info(text.trim_end());
    ui.json(&serde_json::json!({ "channels": channels, "revocations": revocations }));
    Ok(Outcome::Done)
}
