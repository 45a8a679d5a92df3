//! `imagepipe-tag`: compute versions and create `<image>/v<semver>` tags behind a review gate.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use imagepipe::config::{Config, Image};
use imagepipe::github;
use imagepipe::image::ImageRef;
use imagepipe::step::{self, CommonArgs, Outcome, Ui};
use imagepipe::tag;
use imagepipe::{env, git};

/// Compute the next version of each changed image and create its annotated tag.
///
/// CI runs it after a merge to the default branch: every image whose watched paths changed
/// since its last release tag gets the next version by conventional commits (feat: minor; fix
/// and others: patch; `!` or BREAKING CHANGE: major; below 1.0.0 one step smaller). CD runs it
/// with --cascade-from after publishing a parent, to rebuild every descendant on it.
///
/// Tags are only created for a commit that reached the default branch through a merged pull
/// request with enough approving reviews (GitHub API; token in IMAGEPIPE_GITHUB_TOKEN or
/// GITHUB_TOKEN). Existing tags are never moved.
///
/// Exit codes: 0 done (or nothing to tag); 1 the review gate refused; 2 usage, configuration,
/// git or GitHub error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-tag",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Only these images (repeat, or separate with commas).
    #[arg(long = "image", env = env::IMAGE, value_name = "NAME", value_delimiter = ',')]
    images: Vec<String>,

    /// Tag every descendant of this just-published image with a patch release pinned to it.
    #[arg(long, env = env::CASCADE_FROM, value_name = "IMAGE@VERSION")]
    cascade_from: Option<String>,

    /// The commit to tag.
    #[arg(long, env = env::COMMIT, value_name = "REV", default_value = "HEAD")]
    commit: String,

    /// How to create tags: local git (then --push), or the GitHub API.
    #[arg(long, env = env::TAG_VIA, value_enum, default_value_t = Via::Git)]
    via: Via,

    /// With --via git: push the new tags to the remote, all or none.
    #[arg(long, env = env::PUSH)]
    push: bool,

    /// The remote to push to (default: tag.remote in imagepipe.toml, "origin").
    #[arg(long, env = env::REMOTE, value_name = "NAME")]
    remote: Option<String>,

    /// The GitHub repository, owner/name (default: tag.github_repository, GITHUB_REPOSITORY,
    /// then the remote's URL).
    #[arg(long, env = env::REPOSITORY, value_name = "OWNER/NAME")]
    repository: Option<String>,

    /// Skip the review gate (local use only; the tag message says so).
    #[arg(long, env = env::NO_REVIEW_GATE)]
    no_review_gate: bool,

    /// Print the plan (image, old and new version, reason, commits); create nothing.
    #[arg(long, env = env::DRY_RUN)]
    dry_run: bool,

    /// Only print the image and version this tag names, as `parse` does (the form actions and
    /// CI systems that set variables rather than subcommands use); nothing else is done.
    #[arg(long, env = env::PARSE, value_name = "TAG")]
    parse: Option<String>,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the image and version a tag names (exit 2 when it names none).
    Parse {
        /// The tag, e.g. global/debian-12/v1.4.0 or refs/tags/global/debian-12/v1.4.0.
        tag: String,
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
    step::run("imagepipe-tag", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        let parse = match &args.command {
            Some(Command::Parse { tag }) => Some(tag),
            None => args.parse.as_ref(),
        };
        if let Some(tag) = parse {
            let r = config.tag_format.parse_tag(tag)?;
            config.image(r.name.as_str())?;
            tag::report_parse(&ui, &r)?;
            return Ok(Outcome::Done);
        }
        run(args, config, ui).await
    })
}

async fn run(args: Args, config: Config, ui: Ui) -> anyhow::Result<Outcome> {
    let dir = config.dir.clone();
    let head = git::tags::resolve_commit(&dir, &args.commit).context("--commit")?;
    let scope: Vec<&Image> = if args.images.is_empty() {
        config.images.iter().collect()
    } else {
        args.images
            .iter()
            .map(|n| config.image(n))
            .collect::<Result<_, _>>()?
    };
    let remote = args
        .remote
        .clone()
        .unwrap_or_else(|| config.tag.remote.clone());
    // Versions come from the whole history and every tag, never from a partial checkout.
    tag::complete_history(&config, &dir, &remote, &|note| ui.info(note))?;
    let (planned, skipped) = match &args.cascade_from {
        Some(from) => {
            let from: ImageRef = from.parse().context("--cascade-from")?;
            config.image(from.name.as_str())?;
            let plan = tag::plan_cascade(&config, &dir, &head, &from, &scope)?;
            // A child's build starts as soon as its tag exists, and needs its pinned parent.
            if plan.0.iter().any(|p| !p.exists) {
                let store = imagepipe::store::open(&config.store)?;
                tag::check_published(store.as_ref(), &from).await?;
            }
            plan
        }
        None => tag::plan_changes(&config, &dir, &head, &scope)?,
    };
    tag::report_plan(&ui, &planned, &skipped);
    if planned.iter().all(|p| p.exists) {
        tag::report_created(&ui, &planned, &[])?;
        return Ok(Outcome::Done);
    }

    let client = |token: &imagepipe::secret::Secret| {
        tag::github_client(args.repository.as_deref(), &config, &remote, token)
    };
    let review = if args.no_review_gate {
        ui.warn("the review gate is skipped (--no-review-gate); the tag messages record it");
        "gate skipped with --no-review-gate".to_string()
    } else {
        let token = github::token().context("the review gate needs a GitHub token in IMAGEPIPE_GITHUB_TOKEN or GITHUB_TOKEN (or pass --no-review-gate for local use)")?;
        let gh = client(&token)?;
        let commits = tag::released_commits(&planned);
        let settings = github::gate::Settings::of(&config)?;
        let verdict = github::gate::review_gate(&gh, &commits, &settings).await?;
        for note in &verdict.notes {
            ui.warn(&format!("review gate: {note}"));
        }
        if !verdict.refused.is_empty() {
            return Ok(Outcome::CheckFailed(
                verdict
                    .refused
                    .iter()
                    .map(|(commit, why)| {
                        format!(
                            "review gate: commit {}: {why}; no tag was created",
                            &commit[..commit.len().min(12)]
                        )
                    })
                    .collect(),
            ));
        }
        verdict.summary()
    };
    ui.info(&format!("review: {review}"));
    if args.dry_run {
        ui.json(&serde_json::json!({ "dry_run": true, "review": review, "planned": planned, "skipped": skipped }));
        return Ok(Outcome::Done);
    }

    let messages: Vec<String> = planned.iter().map(|p| tag::message(p, &review)).collect();
    let created = match args.via {
        Via::Git => {
            let push = args.push.then_some(remote.as_str());
            tag::create_with_git(&dir, &planned, &messages, push)?
        }
        Via::Github => {
            let token = github::token()
                .context("--via github needs a token in IMAGEPIPE_GITHUB_TOKEN or GITHUB_TOKEN")?;
            tag::create_with_api(&client(&token)?, &planned, &messages).await?
        }
    };
    tag::report_created(&ui, &planned, &created)?;
    Ok(Outcome::Done)
}
