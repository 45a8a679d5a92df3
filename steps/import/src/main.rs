//! `imagepipe-import`: Import an image into each site's vSphere Content Library or VCSP library.

use std::process::ExitCode;

use clap::Parser;
use imagepipe::step::{self, CommonArgs};

/// Import an image into each site's vSphere Content Library or VCSP library.
///
/// Not implemented in this release: the step exists so that workflows and Jenkinsfiles can be
/// laid out now. It exits 2 without doing anything.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-import",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
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
    step::run("imagepipe-import", &args.common, |_ui| async {
        anyhow::bail!(
            "imagepipe-import is not implemented in this release; see the project's open issues"
        )
    })
}
