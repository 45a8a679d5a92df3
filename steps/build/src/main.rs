//! `imagepipe-build`: runs Packer for one image version and records what it built.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use imagepipe::build::{self, ParentChoice, Request, TagVia};
use imagepipe::config::{Config, Image};
use imagepipe::env;
use imagepipe::github;
use imagepipe::step::{self, CommonArgs, Outcome, Ui};
use imagepipe::{git, tag};

/// Build one image version with Packer, on its parent, and write its image record.
///
/// The image is chosen with --image (and --version), or with --tag as CD does on a tag build.
/// The parent is the newest version in the primary store that satisfies the image's
/// `parent_version`, unless the tag pins one, --parent names one, or --parent-record gives one.
///
/// `imagepipe-build validate` checks templates for a pull request instead: no store, no
/// credentials, no network.
///
/// Exit codes: 0 built (or valid); 1 a template is invalid (validate); 2 usage, configuration,
/// parent or Packer error (no record is written).
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-build",
    args_conflicts_with_subcommands = true,
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Image to build, as named in imagepipe.toml (e.g. global/debian-12).
    #[arg(long, env = env::IMAGE, value_name = "NAME", conflicts_with = "tag")]
    image: Option<String>,

    /// Version to build (X.Y.Z). Default with --image: 0.0.0-dev.<timestamp>, a local build.
    #[arg(long, env = env::VERSION, value_name = "X.Y.Z", requires = "image")]
    version: Option<String>,

    /// Git tag naming image and version, e.g. global/debian-12/v1.4.0 (Jenkins: $TAG_NAME).
    #[arg(long, env = env::TAG, value_name = "TAG")]
    tag: Option<String>,

    /// Where --tag's annotation (and its parent pin) is read: git (the checkout, then the tag
    /// fetched from tag.remote), or github (the REST API; token in IMAGEPIPE_GITHUB_TOKEN or
    /// GITHUB_TOKEN).
    #[arg(long, env = env::TAG_VIA, value_enum, default_value_t = Via::Git)]
    via: Via,

    /// With --via github: the repository, owner/name (default: tag.github_repository,
    /// GITHUB_REPOSITORY, then the remote's URL).
    #[arg(long, env = env::REPOSITORY, value_name = "OWNER/NAME")]
    repository: Option<String>,

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

    /// After an interrupt or the timeout, how long Packer may clean up (destroy its VM) before
    /// it and everything it started are killed; overrides imagepipe.toml's interrupt_grace.
    #[arg(long, env = env::INTERRUPT_GRACE, value_name = "DURATION", value_parser = humantime::parse_duration)]
    interrupt_grace: Option<Duration>,

    /// Replace a non-empty output directory (and pass -force to Packer).
    #[arg(long, env = env::FORCE)]
    force: bool,

    /// Print the resolved parent, the variables and the exact Packer commands; run nothing.
    #[arg(long, env = env::DRY_RUN)]
    dry_run: bool,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run `packer validate` on image templates, as a pull request needs it: no store, no
    /// credentials, no network, and nothing written to the repository. Parents that are not
    /// built yet are stood in for by placeholder variables. Exit 1 when a template is invalid.
    Validate {
        /// Only these images (repeat, or separate with commas); default: every image.
        #[arg(long = "image", env = env::IMAGE, value_name = "NAME", value_delimiter = ',')]
        images: Vec<String>,

        /// Only the images whose watched paths differ between the merge base with this
        /// revision and HEAD: what a pull request onto it changes (e.g. origin/main).
        #[arg(long, env = env::CHANGED_SINCE, value_name = "REV")]
        changed_since: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    Git,
    Github,
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
        let mut config = step::load_config(&ui, args.common.config.as_deref())?;
        // A runner's own Packer (a newer release in the tool cache) without editing the file.
        if let Some(packer) = env::var(env::PACKER) {
            config.packer = packer.into();
        }
        if let Some(Command::Validate {
            images,
            changed_since,
        }) = &args.command
        {
            return validate(&ui, &config, images, changed_since.as_deref()).await;
        }
        let parent = match (&args.parent, &args.parent_record) {
            (Some(pin), _) => ParentChoice::Pin(pin.parse().context("--parent")?),
            (None, Some(file)) => ParentChoice::RecordFile(file.clone()),
            (None, None) => ParentChoice::Resolve,
        };
        let tag_via = match args.via {
            Via::Git => TagVia::Git,
            Via::Github => {
                let token = github::token().context(
                    "--via github needs a token in IMAGEPIPE_GITHUB_TOKEN or GITHUB_TOKEN",
                )?;
                TagVia::GitHub(Box::new(imagepipe::tag::github_client(
                    args.repository.as_deref(),
                    &config,
                    &config.tag.remote,
                    &token,
                )?))
            }
        };
        let request = Request {
            tag_via,
            image: args.image,
            version: args.version,
            tag: args.tag,
            parent,
            output_dir: args.output_dir,
            record: args.record,
            timeout: args.timeout,
            interrupt_grace: args.interrupt_grace,
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

/// `imagepipe-build validate`.
async fn validate(
    ui: &Ui,
    config: &Config,
    names: &[String],
    changed_since: Option<&str>,
) -> anyhow::Result<Outcome> {
    let mut images: Vec<&Image> = if names.is_empty() {
        config.images.iter().collect()
    } else {
        names
            .iter()
            .map(|n| config.image(n))
            .collect::<Result<_, _>>()?
    };
    if let Some(base) = changed_since {
        let files = git::history::changed_since(&config.dir, base)
            .with_context(|| format!("--changed-since {base}"))?;
        images = tag::images_touched(&images, &files)?;
        if images.is_empty() {
            ui.info(&format!(
                "no image's paths changed since {base}: nothing to validate"
            ));
        }
    }
    let commit = env::var(env::GIT_COMMIT).or_else(|| git::head(&config.dir).map(|h| h.0));
    let results = build::validate(config, &images, commit.as_deref()).await?;
    let mut failed = Vec::new();
    for r in &results {
        match &r.error {
            None => ui.info(&format!("valid    {}  ({})", r.image, r.template)),
            Some(e) => {
                ui.info(&format!("INVALID  {}  ({})", r.image, r.template));
                for line in e.lines() {
                    ui.line(&format!("  | {line}"));
                }
                failed.push(format!(
                    "{}: packer validate failed for {}",
                    r.image, r.template
                ));
            }
        }
    }
    let names: Vec<&str> = results.iter().map(|r| r.image.as_str()).collect();
    ui.output("images", &names.join(","))?;
    ui.output("invalid", &failed.len().to_string())?;
    ui.json(&serde_json::json!({ "validated": results }));
    Ok(if failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::CheckFailed(failed)
    })
}
