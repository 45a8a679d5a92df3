//! `imagepipe-fleet`: what is where, for every image of the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use clap::Parser;
use imagepipe::env;
use imagepipe::step::{self, CommonArgs, Outcome};

/// Show the whole fleet: every image's published versions, their scan state and parent, which
/// sites' stores hold each version, and what the records say about library imports.
///
/// Each store is asked once per image for the versions it holds (an AQL query on Artifactory,
/// the tag list on an OCI registry, a directory walk on a local store); the primary store's
/// records give the scan state, the parent and the imports (a local record under
/// pipeline.output_dir, which imagepipe-import updates, adds its import section). An image
/// whose newest version was built on a parent older than the newest one its requirement
/// accepts is marked out of date. A site whose store does not answer or refuses the
/// credentials is shown as unreachable or unauthorised, never as absent; a record that cannot
/// be read is named, and the rest of the view is still shown.
///
/// The table goes to stderr, --json to stdout, and the step summary gets the table and a
/// Mermaid graph of the lineage. --html also writes the view as one self-contained static HTML
/// page (inline CSS, no script, nothing fetched): per image a table of versions by sites.
///
/// Exit codes: 0 the view was shown (what it found is reported, not judged); 2 a usage or
/// configuration error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-fleet",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Store queries in flight at once.
    #[arg(long, env = env::CONCURRENCY, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,

    /// Also write the view as one static HTML page at PATH (self-contained: inline CSS, no
    /// script), to archive or serve as it is.
    #[arg(long, env = env::HTML, value_name = "PATH")]
    html: Option<PathBuf>,

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
    step::run("imagepipe-fleet", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        let fleet = imagepipe::fleet::gather(&config, args.concurrency.into()).await;
        for line in fleet.table().lines() {
            ui.line(line);
        }
        for p in fleet.problems() {
            ui.warn(&p);
        }
        let stale: Vec<String> = fleet
            .images
            .iter()
            .flat_map(|i| {
                i.versions
                    .iter()
                    .filter(|v| v.out_of_date.is_some())
                    .map(move |v| format!("{}@{}", i.name, v.version))
            })
            .collect();
        if let Some(path) = &args.html {
            std::fs::write(path, fleet.html())
                .with_context(|| format!("writing the HTML page {}", path.display()))?;
            ui.line(&format!("the view as HTML: {}", path.display()));
        }
        ui.output("out-of-date", &stale.join(","))?;
        ui.summary(&fleet.summary())?;
        ui.json(&serde_json::to_value(&fleet)?);
        Ok(Outcome::Done)
    })
}
