//! `imagepipe-publish`: put an image's artifacts and record into the artifact store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use imagepipe::config::{Config, StoreSpec};
use imagepipe::record::{self, Record};
use imagepipe::step::{self, CommonArgs, Outcome};
use imagepipe::store::{self, StoreUrl};
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
    /// The image record to publish (artifacts are found relative to it).
    #[arg(long, env = env::RECORD, value_name = "FILE", conflicts_with_all = ["image", "tag"])]
    record: Option<PathBuf>,

    /// Image whose build output to publish, from <pipeline.output_dir>/<image>/<version>.
    #[arg(long, env = env::IMAGE, value_name = "NAME", requires = "version", conflicts_with = "tag")]
    image: Option<String>,

    /// Version to publish, with --image.
    #[arg(long, env = env::VERSION, value_name = "X.Y.Z")]
    version: Option<String>,

    /// Git tag naming image and version (as CD gets it).
    #[arg(long, env = env::TAG, value_name = "TAG")]
    tag: Option<String>,

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
    #[arg(long, env = env::BUILD_INFO, requires = "build_name")]
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
    let args = Args::parse();
    let common = args.common.clone();
    step::run("imagepipe-publish", &common, |ui| async move {
        let config = Config::discover(args.common.config.as_deref())?;
        let record_path = match (&args.record, &args.image, &args.version, &args.tag) {
            (Some(path), ..) => path.clone(),
            (None, Some(image), Some(version), None) => {
                config.image(image)?;
                config
                    .output_dir
                    .join(image)
                    .join(version.trim_start_matches('v'))
                    .join(record::FILE_NAME)
            }
            (None, None, None, Some(tag)) => {
                let r = config.tag_format.parse_tag(tag)?;
                config.image(r.name.as_str())?;
                config
                    .output_dir
                    .join(r.name.as_str())
                    .join(r.version.to_string())
                    .join(record::FILE_NAME)
            }
            _ => anyhow::bail!(
                "say what to publish: --record FILE, --image NAME --version X.Y.Z, or --tag TAG"
            ),
        };
        let loaded = Record::read(&record_path)?;
        let gate_override = match publish::gate(&loaded.record, args.override_gate.as_deref()) {
            Ok(o) => o,
            Err(reason) => return Ok(Outcome::CheckFailed(vec![format!("scan gate: {reason}")])),
        };
        let spec = match &args.store {
            Some(url) => StoreSpec {
                url: StoreUrl::parse(url, &std::env::current_dir()?).context("--store")?,
                ..config.store.clone()
            },
            None => config.store.clone(),
        };
        let store = store::open(&spec, &ui)?;
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
