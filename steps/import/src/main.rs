//! `imagepipe-import`: bring the image into each site's vSphere Content Library (or VCSP library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use imagepipe::env;
use imagepipe::import::{self, DeployCheckOptions, ImportOptions};
use imagepipe::library::Layout;
use imagepipe::library::vsphere::Generation;
use imagepipe::record::{DeployResult, Record};
use imagepipe::step::{self, CommonArgs, Outcome, VersionArgs};
use imagepipe::{lifecycle, store};

/// Import an image version into every site's content library, from the site's own store.
///
/// Per site of imagepipe.toml (or those chosen with --site), the version's OVA (or loose OVF
/// export: a descriptor with the files it names) is read in place
/// from the site's store and becomes an OVF library item: in a vCenter content library (the
/// /rest API of 6.5/6.7 or the /api of 7.0U2+), or in a VMware Content Subscription Protocol
/// library that vCenters subscribe to: a directory (vcsp:PATH, the embedded default) or an
/// Artifactory generic repository (vcsp:artifactory+https://HOST/artifactory/REPO/PATH). The item is
/// found by name and updated in place, so its id stays; its description carries the version and
/// the record's sha256, and importing the same record again changes nothing. Every file is
/// checked against the OVA's manifest. A failed import fails vCenter's update session and
/// removes an item it created, so nothing half-imported remains. Subscribed libraries of the
/// site are synced afterwards. Sites are imported concurrently (--concurrency at once), so a
/// slow or dead site costs its own time; results are reported in the configuration's order.
///
/// `--version channel:NAME` imports the version a channel points at in the primary store
/// (see imagepipe-lifecycle). A version revoked there is refused, with the revocation's reason.
///
/// Exit codes: 0 imported (or already there) at every site (and, with --deploy-check, a VM
/// deployed from it ran); 1 a deploy check failed (vCenter refused to deploy the item, or the
/// VM did not run; each site is named with vCenter's reason); 2 a site could not be imported
/// (each is named with its reason; the others are still imported), a deploy check could not
/// run, or a usage or configuration error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-import",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(flatten)]
    target: VersionArgs,

    /// Import only at these sites (repeat, or separate with commas); default: every site.
    #[arg(long = "site", env = env::SITES, value_name = "NAME", value_delimiter = ',')]
    sites: Vec<String>,

    /// The library item's name: {image} (with / as -) and {version}.
    #[arg(long, env = env::ITEM_NAME, value_name = "TEMPLATE", default_value = "{image}")]
    item_name: String,

    /// One item per image updated in place, or one item per version.
    #[arg(long, env = env::LAYOUT, value_enum, default_value_t = LayoutArg::ItemPerImage)]
    layout: LayoutArg,

    /// With item-per-version: how many versions of the image to keep; older items are deleted.
    #[arg(long, env = env::KEEP, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    keep: u16,

    /// push: the step streams the files from the site's store to vCenter; pull: vCenter
    /// fetches the OVA from the site's store itself.
    #[arg(long, env = env::TRANSFER, value_enum, default_value_t = TransferMode::Push)]
    transfer: TransferMode,

    /// The vSphere REST generation: auto, rest (6.5, 6.7) or api (7.0U2 and later).
    #[arg(long = "vsphere-api", env = env::VSPHERE_API, value_enum, default_value_t = GenerationArg::Auto)]
    generation: GenerationArg,

    /// The artifact to import, by name; default: the record's one OVA.
    #[arg(long, env = env::ARTIFACT, value_name = "NAME")]
    artifact: Option<String>,

    /// How long to wait for a site's subscribed libraries to show the item.
    #[arg(long, env = env::SYNC_WAIT, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10m")]
    sync_wait: Duration,

    /// Import an OVA that has no manifest (.mf). Its files cannot then be checked one by one,
    /// only the whole OVA against the record's sha256; the record notes it.
    #[arg(long, env = env::ALLOW_MISSING_MANIFEST)]
    allow_missing_manifest: bool,

    /// How often vCenter's update session is kept alive during a transfer.
    #[arg(long, env = env::KEEP_ALIVE, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1m")]
    keep_alive: Duration,

    /// After importing into a vCenter, deploy a throw-away VM from the item (into the site's
    /// `library.deploy` placement), power it on, wait until it runs, and delete it; a
    /// descriptor vCenter cannot deploy fails the step (exit 1). The VM is deleted on every
    /// path, also when the step is interrupted (SIGTERM, Ctrl-C).
    #[arg(long, env = env::DEPLOY_CHECK)]
    deploy_check: bool,

    /// How long the deploy check's VM may take to report that it runs.
    #[arg(long, env = env::DEPLOY_WAIT, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10m")]
    deploy_wait: Duration,

    /// Sites imported into at once; each of the others waits for a free slot.
    #[arg(long, env = env::CONCURRENCY, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    #[command(flatten)]
    common: CommonArgs,
}

/// The library's [`Layout`], as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    /// One item per image, updated in place: its id stays, consumers follow it.
    ItemPerImage,
    /// One item per version, named with it; the newest `--keep` stay.
    ItemPerVersion,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::ItemPerImage => Layout::ItemPerImage,
            LayoutArg::ItemPerVersion => Layout::ItemPerVersion,
        }
    }
}

/// The vSphere client's [`Generation`], as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GenerationArg {
    /// `/api` when the server has it, else `/rest`.
    Auto,
    /// vCenter 6.5 and 6.7.
    Rest,
    /// vCenter 7.0U2 and later.
    Api,
}

impl From<GenerationArg> for Generation {
    fn from(g: GenerationArg) -> Self {
        match g {
            GenerationArg::Auto => Generation::Auto,
            GenerationArg::Rest => Generation::Rest,
            GenerationArg::Api => Generation::Api,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransferMode {
    Push,
    Pull,
}

#[cfg(test)]
#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory as _;
    Args::command().debug_assert();
}

/// A flag that turns true at SIGTERM or SIGINT. Only the deploy check installs it: then the
/// step outlives the signal long enough to delete its VMs, and exits 2 once they are gone.
fn interrupt_on_signals() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
        // Keep the sender (and the handlers) alive: later signals are absorbed while the VMs
        // are deleted.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

fn main() -> ExitCode {
    let args = step::parse::<Args>();
    let common = args.common.clone();
    step::run("imagepipe-import", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        // `--version channel:NAME` is the version the channel points at in the primary store.
        let mut target = args.target.clone();
        if let (Some(image), Some(channel)) = (
            target.image.as_deref(),
            target.version.as_deref().and_then(lifecycle::channel_name),
        ) {
            let name = config.image(image)?.name.clone();
            let version =
                lifecycle::resolve_channel(store::open(&config.store)?.as_ref(), &name, channel)
                    .await?;
            ui.info(&format!("channel `{channel}` of {name} is {version}"));
            target.version = Some(version.to_string());
        }
        let (image, record_path) = target.locate(&config)?;
        // A revoked version is never imported (its reason is shown, exit 2).
        lifecycle::ensure_not_revoked(
            store::open(&config.store)?.as_ref(),
            &image,
            lifecycle::now(),
        )
        .await?;
        let sites = config.select_sites(&args.sites)?;
        // A bad item name is refused before any site is touched.
        imagepipe::library::item_name(&args.item_name, args.layout.into(), &image)?;
        // What every site's copy is checked against: the record as it was published.
        let published = if record_path.is_file() {
            Some(Record::read(&record_path)?.record).filter(|r| r.id() == image)
        } else {
            None
        };
        let published = match published {
            Some(r) => r,
            None => {
                imagepipe::store::open(&config.store)?
                    .fetch_record(&image)
                    .await?
                    .record
            }
        };
        let options = ImportOptions {
            item_name: args.item_name.clone(),
            layout: args.layout.into(),
            keep: args.keep.into(),
            pull: args.transfer == TransferMode::Pull,
            generation: args.generation.into(),
            artifact: args.artifact.clone(),
            sync_deadline: args.sync_wait,
            keep_alive: args.keep_alive,
            allow_missing_manifest: args.allow_missing_manifest,
            deploy_check: if args.deploy_check {
                Some(DeployCheckOptions {
                    wait: args.deploy_wait,
                    interrupt: interrupt_on_signals()?,
                })
            } else {
                None
            },
        };
        let outcomes = import::run(
            &sites,
            &image,
            &published,
            &options,
            args.concurrency.into(),
            &ui,
        )
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for o in outcomes {
            match o.result {
                Ok(imported) => done.push((o.site, imported)),
                Err(_) => failed.push(o.site),
            }
        }
        if !done.is_empty() {
            Record::update_local(&record_path, &image, |local| {
                local.import = Some(import::section(local.import.as_ref(), &done));
            })?;
        }
        import::report(&ui, &image, &done, &failed)?;
        let mut deploy_errors = Vec::new();
        let mut deploy_failed = Vec::new();
        for (site, imported) in &done {
            let Some(d) = &imported.deploy else { continue };
            let reason = d.reason.as_deref().unwrap_or_default();
            match d.result {
                DeployResult::Running => {}
                DeployResult::Error => deploy_errors.push(format!("{site} ({reason})")),
                DeployResult::Refused => deploy_failed.push(format!(
                    "site {site}: vCenter cannot deploy {image} from item `{}`: {reason}",
                    imported.item
                )),
                DeployResult::NotRunning => deploy_failed.push(format!(
                    "site {site}: the VM deployed from item `{}` did not run: {reason}",
                    imported.item
                )),
            }
        }
        if !failed.is_empty() {
            anyhow::bail!("not imported at: {}", failed.join(", "))
        }
        if !deploy_errors.is_empty() {
            anyhow::bail!(
                "deploy check not carried out at: {}",
                deploy_errors.join(", ")
            )
        }
        if deploy_failed.is_empty() {
            Ok(Outcome::Done)
        } else {
            Ok(Outcome::CheckFailed(deploy_failed))
        }
    })
}
