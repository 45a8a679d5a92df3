//! `imagepipe-build`: runs Packer for one image version and records what it built.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use imagepipe::build::{self, ParentChoice, Request};
use imagepipe::config::Config;
use imagepipe::env;
use imagepipe::step::{self, CommonArgs, Outcome};

/// Build one image version with Packer, on its parent, and write its image record.
///
/// The image is chosen with --image (and --version), or with --tag as CD does on a tag build.
/// The parent is the newest version in the primary store that satisfies the image's
/// `parent_version`, unless the tag pins one, --parent names one, or --parent-record gives one.
///
/// Exit codes: 0 built; 2 usage, configuration, parent or Packer error (no record is written).
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-build",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Image to build, as named in imagepipe.toml (e.g. global/debian-12).
    #[arg(long, env = env::IMAGE, value_name = "NAME", conflicts_with = "tag")]
    image: Option<String>,

    /// Version to build (X.Y.Z). Default with --image: 0.0.0-dev.<timestamp>, a local build.
    #[arg(long, env = env::VERSION, value_name = "X.Y.Z", requires = "image")]
    version: Option<String>,

    /// Git tag naming image and version, e.g. global/debian-12/v1.4.0 (Jenkins: $TAG_NAME).
    #[arg(long, env = env::TAG, value_name = "TAG")]
    tag: Option<String>,

    /// Build on exactly this parent version from the store: <image>@<version>.
    #[arg(long, env = env::PARENT, value_name = "IMAGE@VERSION", conflicts_with = "parent_record")]
    parent: Option<String>,

    /// Build on the parent described by this record file (artifacts relative to it).
    #[arg(long, env = env::PARENT_RECORD, value_name = "FILE")]
    parent_record: Option<PathBuf>,

    /// Directory for Packer's output. Default: <pipeline.output_dir>/<image>/<version>.
    #[arg(long, env = env::OUTPUT_DIR, value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// Where to write the image record. Default: <output dir>/imagepipe-record.json.
    #[arg(long, env = env::RECORD, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Stop the build after this long (e.g. 90m, 2h); overrides imagepipe.toml.
    #[arg(long, env = env::BUILD_TIMEOUT, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,

    /// Replace a non-empty output directory (and pass -force to Packer).
    #[arg(long, env = env::FORCE)]
    force: bool,

    /// Print the resolved parent, the variables and the exact Packer commands; run nothing.
    #[arg(long, env = env::DRY_RUN)]
    dry_run: bool,

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
    step::run("imagepipe-build", &common, |ui| async move {
        let config = Config::discover(args.common.config.as_deref())?;
        let parent = match (&args.parent, &args.parent_record) {
            (Some(pin), _) => ParentChoice::Pin(pin.parse().context("--parent")?),
            (None, Some(file)) => ParentChoice::RecordFile(file.clone()),
            (None, None) => ParentChoice::Resolve,
        };
        let request = Request {
            image: args.image,
            version: args.version,
            tag: args.tag,
            parent,
            output_dir: args.output_dir,
            record: args.record,
            timeout: args.timeout,
            force: args.force,
            git_commit: env::var(env::GIT_COMMIT),
        };
        let plan = build::plan(&config, &request, &ui).await?;
        if args.dry_run {
            ui.info(plan.describe().trim_end());
            ui.json(&plan.to_json());
            return Ok(Outcome::Done);
        }
        ui.info(&format!("building {} {}", plan.image.name, plan.version));
        let built = build::execute(&plan, &ui).await?;
        build::report(&ui, &plan, &built).context("cannot write the step outputs")?;
        Ok(Outcome::Done)
    })
}
