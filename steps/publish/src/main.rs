//! `imagepipe-publish`: put an image's artifacts and record into the artifact store.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use imagepipe::record::Record;
use imagepipe::step::{self, CommonArgs, Outcome, VersionArgs};
use imagepipe::store;
use imagepipe::{env, publish};

/// Put a built and scanned image version into the artifact store, verifiably and idempotently.
///
/// Artifacts go first, each checked against the record's sha256 on the way in; the record goes
/// last, so a reader that finds it finds every artifact. A re-run completes an interrupted
/// publish and sends nothing the store already holds. The record must carry a passing scan
/// result unless --override-gate gives a reason, which is written into the record.
///
/// Stores: local directories (file:PATH), OCI registries (oci://HOST/NAMESPACE, or oci+http://
/// for a plain-HTTP registry) and Artifactory generic repositories
/// (artifactory+https://HOST/artifactory/REPO), where bytes the server holds deploy by checksum
/// and every file gets the image.*, git.commit, scan.status and build.* properties.
///
/// Exit codes: 0 published (or already published); 1 the scan gate refused, or the version is
/// already published with other bytes; 2 usage, configuration or store error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-publish",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(flatten)]
    target: VersionArgs,

    /// Publish without a passing scan, for this reason (written into the record).
    #[arg(long, env = env::OVERRIDE_GATE, value_name = "REASON")]
    override_gate: Option<String>,

    /// The CI build publishing this, stored as the build.name property (Jenkins: $JOB_NAME).
    #[arg(long, env = env::BUILD_NAME, value_name = "NAME", requires = "build_number")]
    build_name: Option<String>,

    /// The CI build's number, stored as the build.number property (Jenkins: $BUILD_NUMBER).
    #[arg(long, env = env::BUILD_NUMBER, value_name = "N", requires = "build_name")]
    build_number: Option<String>,

    /// Also publish Artifactory build-info for --build-name/--build-number, linking the files.
    // Checked in `main`, not with `requires`: clap counts a flag set to "false" through its
    // variable (as action.yml passes it) as given.
    #[arg(long, env = env::BUILD_INFO)]
    build_info: bool,

    /// Publish to this store instead of imagepipe.toml's [store] (file:, oci://, artifactory+https://).
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
    step::run("imagepipe-publish", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        if args.build_info && args.build_name.is_none() {
            anyhow::bail!("--build-info needs --build-name and --build-number");
        }
        let (_, record_path) = args.target.locate(&config)?;
        let loaded = Record::read(&record_path)?;
        let gate_override = match publish::gate(&loaded.record, args.override_gate.as_deref()) {
            Ok(o) => o,
            Err(reason) => return Ok(Outcome::CheckFailed(vec![format!("scan gate: {reason}")])),
        };
        let spec = config
            .primary_store(args.store.as_deref())
            .context("--store")?;
        let store = store::open(&spec)?;
        let build = args.build_name.as_deref().zip(args.build_number.as_deref());
        match publish::publish(
            store.as_ref(),
            &loaded,
            &record_path,
            gate_override,
            build,
            args.build_info,
            &ui,
        )
        .await
        {
            Ok(published) => {
                publish::report(&ui, &published)?;
                Ok(Outcome::Done)
            }
            Err(e) if e.is_check_failure() => Ok(Outcome::CheckFailed(vec![e.to_string()])),
            Err(e) => Err(e.into()),
        }
    })
}
