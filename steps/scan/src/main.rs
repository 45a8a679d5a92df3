//! `imagepipe-scan`: Scan a built disk image offline: packages, CVEs, hardening policy, SBOM.

use std::process::ExitCode;

use clap::Parser;
use imagepipe::step::{self, CommonArgs};

/// Scan a built disk image offline: packages, CVEs, hardening policy, SBOM.
///
/// Not implemented in this release: the step exists so that workflows and Jenkinsfiles can be
/// laid out now. It exits 2 without doing anything.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-scan",
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
    step::run("imagepipe-scan", &args.common, |_ui| async {
        anyhow::bail!(
            "imagepipe-scan is not implemented in this release; see the project's open issues"
        )
    })
}
