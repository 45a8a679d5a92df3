//! `imagepipe-scan`: scan a built disk image offline and gate it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use imagepipe::env;
use imagepipe::step::{self, CommonArgs, Outcome, VersionArgs};
use imagepipe_scanner::{self as scan, ScanOptions};

/// Scan a built disk image offline, without root, mounting or network, and gate it.
///
/// The image Packer produced (raw, qcow2, VMDK or OVA; GPT or MBR; linear or striped LVM;
/// ext2/3/4 or XFS, following /etc/fstab to a separate /boot, /usr or /var), or a root
/// filesystem directory or tarball, is read in place. Its OS comes from os-release and its
/// packages from the dpkg, rpm (SQLite, BerkeleyDB or NDB) and apk databases; they are matched against an offline OSV database by the OS's ecosystem and each
/// package's source package, with the distribution's own version ordering and severities
/// from CVSS v4/v3 vectors.
///
/// A Windows image is read from its NTFS OS volume (the one holding
/// Windows\System32\config\SOFTWARE; BitLocker and dynamic disks are refused): the release
/// and full build, the installed programs (64-bit and WOW6432Node) and updates (KBs) come from
/// the registry, and its findings from Microsoft's CVRF or CSAF 2.0 documents (--msrc-db): a
/// CVE whose fixed build for the image's product is above the image's build.
///
/// Findings at or above the image's `scan.fail_on` (default high) fail the gate. JSON, SARIF 2.1.0, JUnit XML and Markdown reports are written beside the record, and
/// the result into the record, which imagepipe-publish checks.
///
/// Waivers (the image's `scan.waivers` file) accept findings until their expiry date; waived
/// findings stay in the reports, and expired waivers are reported. CycloneDX 1.5 and SPDX 2.3
/// SBOMs with package URLs are written too.
///
/// The hardening policy is the embedded CIS-style baseline (sshd settings, empty passwords,
/// modes of /etc/shadow and /etc/passwd, world-writable system files, telnet and rsh servers;
/// for Windows: SMBv1, the Guest account, RDP NLA, the firewall profiles, LLMNR, automatic
/// logon with a stored password) without the image's `scan.disable_rules`, plus its
/// `scan.policy` files; a failing rule of level error fails the gate.
///
/// Exit codes: 0 passed; 1 the gate failed; 2 usage, configuration, image or database error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-scan",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    #[command(flatten)]
    target: VersionArgs,

    /// The offline OSV database: a directory of OSV JSON records and osv.dev's per-ecosystem
    /// all.zip dumps (searched recursively), or one all.zip.
    #[arg(long, env = env::OSV_DB, value_name = "PATH")]
    osv_db: Option<PathBuf>,

    /// Microsoft's security updates, for Windows images: a directory of the Security Update
    /// Guide's CVRF documents and CSAF 2.0 advisories (JSON, searched recursively).
    #[arg(long, env = env::MSRC_DB, value_name = "PATH")]
    msrc_db: Option<PathBuf>,

    /// A database whose newest record is older than this is stale.
    #[arg(long, env = env::MAX_DB_AGE, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "7d")]
    max_db_age: Duration,

    /// What a stale database is: a warning, or a failure (exit 2) before anything is scanned.
    #[arg(long, env = env::STALE_DB, value_enum, default_value = "warn")]
    stale_db: StaleDb,

    /// The artifact to scan, by name; default: the record's disk image or root filesystem
    /// tarball.
    #[arg(long, env = env::ARTIFACT, value_name = "NAME", conflicts_with = "input")]
    artifact: Option<String>,

    /// Scan this instead of a record's artifact: a disk image, a root filesystem directory,
    /// or a root filesystem tarball (plain or gzip). The result still goes into the record.
    #[arg(long, env = env::SCAN_INPUT, value_name = "PATH")]
    input: Option<PathBuf>,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StaleDb {
    Warn,
    Fail,
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
    step::run("imagepipe-scan", &common, |ui| async move {
        let config = step::load_config(&ui, args.common.config.as_deref())?;
        let (image, record_path) = args.target.locate(&config)?;
        let spec = config.image(image.name.as_str())?;
        anyhow::ensure!(
            args.osv_db.is_some() || args.msrc_db.is_some(),
            "say where the OSV database is: --osv-db PATH (a directory of OSV JSON records or all.zip dumps); for Windows images, Microsoft's documents: --msrc-db PATH"
        );
        let options = ScanOptions {
            osv_db: args.osv_db.clone(),
            msrc_db: args.msrc_db.clone(),
            max_db_age: args.max_db_age,
            stale_db_fails: args.stale_db == StaleDb::Fail,
            fail_on: spec.scan.fail_on,
            artifact: args.artifact.clone(),
            input: args.input.clone(),
            template: spec
                .template
                .strip_prefix(&config.dir)
                .unwrap_or(&spec.template)
                .display()
                .to_string(),
            waivers: spec.scan.waivers.clone(),
            policy: spec.scan.policy.clone(),
            disable_rules: spec.scan.disable_rules.clone(),
        };
        let record = record_path.clone();
        let (result, reports) =
            tokio::task::spawn_blocking(move || scan::scan_record(&record, &options)).await??;
        scan::report::print(&ui, &result, &record_path, &reports, args.max_db_age)?;
        Ok(if result.passed {
            Outcome::Done
        } else {
            Outcome::CheckFailed(vec![format!(
                "{image}: {} findings at or above `{}` and {} failing policy rules; fix or rebuild, and see the SARIF report",
                result.findings.iter().filter(|f| result.gates(f)).count(),
                result.fail_on.as_str(),
                result.policy_failures()
            )])
        })
    })
}
