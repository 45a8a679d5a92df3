//! `imagepipe-replicate-check`: prove every site's store holds the image with the same bytes, in time.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use imagepipe::env;
use imagepipe::lifecycle;
use imagepipe::record::Record;
use imagepipe::replicate::{self, CheckOptions, Reference};
use imagepipe::step::{self, CommonArgs, Outcome, VersionArgs};
use imagepipe::store;

/// Prove every site's store holds an image version with the same bytes as the primary store.
///
/// Each site of imagepipe.toml (or those chosen with --site) is asked, concurrently, for the
/// version's record and every artifact's sha256: Artifactory's File Info, an OCI registry's
/// manifest and blobs, or the files of a local store. Each site gets one verdict: present,
/// missing, mismatched, stale (an older version is the newest there), unreachable or
/// unauthorised. With --wait, incomplete sites are checked again, with backoff, until they are
/// complete or the time is up. Sites past their `sla` since the build finished are flagged.
///
/// The results go into the local record's replication section when the record is there. A
/// version revoked in the primary store (imagepipe-lifecycle revoke) is still checked, and
/// shown as revoked with its reason.
///
/// Exit codes: 0 every selected site holds the version; 1 a site does not (each is named with
/// its reason); 2 the check could not run (usage, configuration, the primary store).
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-replicate-check",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(flatten)]
    target: VersionArgs,

    /// Check only these sites (repeat, or separate with commas); default: every site.
    #[arg(long = "site", env = env::SITES, value_name = "NAME", value_delimiter = ',')]
    sites: Vec<String>,

    /// Ask the primary Artifactory to run its push replication for this version first, and
    /// follow the run (it goes on in the background) until it ends or --wait (default: the
    /// site timeout) runs out.
    #[arg(long, env = env::TRIGGER_REPLICATION)]
    trigger_replication: bool,

    /// Keep checking incomplete sites for up to this long (`30m`, `2h`); default: check once.
    #[arg(long, env = env::WAIT, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,

    /// First pause between checks while waiting; it doubles up to 2m.
    #[arg(long, env = env::POLL_INTERVAL, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    poll_interval: Duration,

    /// Sites checked at once.
    #[arg(long, env = env::CONCURRENCY, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    /// Requests in flight per site.
    #[arg(long, env = env::REQUESTS_PER_SITE, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    requests_per_site: u16,

    /// A site that has not answered completely within this is unreachable for that check.
    #[arg(long, env = env::SITE_TIMEOUT, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "2m")]
    site_timeout: Duration,

    /// Use this store as the primary instead of imagepipe.toml's [store].
    #[arg(long, env = env::STORE, value_name = "URL")]
    store: Option<String>,

    #[command(flatten)]
    common: CommonArgs,
}

#[cfg(test)]
#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory as _;
    Args::command().debug_assert();
}

fn main() -> ExitCode {
    let args = step::parse::<Args>();
    let common = args.common.clone();
    step::run("imagepipe-replicate-check", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        let (image, record_path) = args.target.locate(&config)?;
        let sites = config.select_sites(&args.sites)?;
        let primary = store::open(&config.primary_store(args.store.as_deref())?)?;
        let reference = Reference::fetch(primary.as_ref(), &image)
            .await
            .context("the primary store is the reference; publish the version before checking its replication")?;

        // A revoked version is still checked (its copies are still out there), and shown so.
        match lifecycle::revocations(primary.as_ref(), &image.name).await {
            Ok(doc) => {
                if let Some(r) = doc.get(&image.version) {
                    let said = r.describe(lifecycle::now());
                    ui.warn(&format!("{image} is {said}"));
                    ui.summary(&format!("> **{image} is {said}**\n\n"))?;
                }
            }
            Err(e) => ui.warn(&format!(
                "cannot read the revocations of {}: {e}",
                image.name
            )),
        }
        let options = CheckOptions {
            concurrency: args.concurrency.into(),
            requests_per_site: args.requests_per_site.into(),
            site_timeout: args.site_timeout,
            wait: args.wait,
            poll: args.poll_interval,
            ..CheckOptions::default()
        };
        let results = replicate::run(
            primary.as_ref(),
            sites,
            &reference,
            &options,
            args.trigger_replication,
            &ui,
        )
        .await?;

        Record::update_local(&record_path, &image, |local| {
            local.replication = Some(replicate::section(local.replication.as_ref(), &results));
        })?;
        Ok::<Outcome, anyhow::Error>(replicate::report(&ui, &reference, &results)?)
    })
}
