//! `imagepipe-scan`: scan a built disk image offline and gate it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use imagepipe::env;
use imagepipe::step::{self, CommonArgs, Outcome, VersionArgs};
use imagepipe_scanner::{self as scan, ScanOptions, Severity};

mod rescan;
mod standalone;

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
/// On its own: `imagepipe-scan IMAGE --osv-db DB` scans a disk image, root filesystem directory
/// or tarball with no imagepipe.toml and no record (the baseline policy, `--fail-on`, reports
/// printed with `--format` or written to `--output-dir`).
///
/// Rescan in place: `--published IMAGE@VERSION` or `--all-published` reads published versions
/// where the primary store keeps them (only the blocks needed, with ranged reads), matches them
/// against today's database and reports the findings their publish-time scan did not have.
///
/// Exit codes: 0 passed; 1 the gate failed (a rescan: a new finding at or above --fail-on-new
/// or --revoke-on-new);
/// 2 usage, configuration, image, store or database error.
#[derive(Debug, Parser)]
#[command(
    name = "imagepipe-scan",
    version,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Args {
    /// Scan this on its own, with no imagepipe.toml and no record: a disk image (raw, qcow2,
    /// VMDK, OVA), a root filesystem directory, or a root filesystem tarball.
    #[arg(
        value_name = "IMAGE|DIR|TARBALL",
        conflicts_with_all = ["record", "image", "tag", "artifact", "input", "published"]
    )]
    path: Option<PathBuf>,

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

    /// Standalone: the gate's threshold (default high); findings at or above it fail (exit 1).
    #[arg(long, value_name = "SEVERITY", value_parser = severity, requires = "path")]
    fail_on: Option<Severity>,

    /// Standalone: a policy rule file added to the baseline (repeatable).
    #[arg(long, value_name = "FILE", requires = "path")]
    policy: Vec<PathBuf>,

    /// Standalone: `table` prints the findings for people on stderr; the others print that
    /// document on stdout.
    #[arg(long, value_enum, default_value = "table", requires = "path")]
    format: OutputFormat,

    /// Standalone: write every report (JSON, SARIF, JUnit, Markdown, CycloneDX, SPDX) here.
    #[arg(long, value_name = "DIR", requires = "path")]
    output_dir: Option<PathBuf>,

    /// Rescan this published version in place, from the primary store: IMAGE@VERSION.
    #[arg(long, env = env::PUBLISHED, value_name = "IMAGE@VERSION", conflicts_with_all = ["record", "image", "tag", "input"])]
    published: Option<String>,

    /// Rescan every published version of every image of imagepipe.toml in the primary store.
    // No `conflicts_with` here: clap counts a flag set to "false" by its variable (as the
    // action's default passes it) as given, and would refuse every other form.
    #[arg(long, env = env::ALL_PUBLISHED)]
    all_published: bool,

    /// With --published or --all-published: exit 1 when a new finding is at or above this.
    #[arg(long, env = env::FAIL_ON_NEW, value_name = "SEVERITY", value_parser = severity)]
    fail_on_new: Option<Severity>,

    /// With --published or --all-published: revoke a version whose new finding is at or above
    /// this, with every image built on it, in the primary store (as `imagepipe-lifecycle
    /// revoke --cascade` does, the advisories as the reason); a version it revokes fails the
    /// rescan (exit 1), one revoked already is left alone.
    #[arg(long, env = env::REVOKE_ON_NEW, value_name = "SEVERITY", value_parser = severity)]
    revoke_on_new: Option<Severity>,

    /// With --published or --all-published: this store instead of imagepipe.toml's primary.
    #[arg(long, env = env::STORE, value_name = "URL")]
    store: Option<String>,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Sarif,
    Cyclonedx,
    Spdx,
}

fn severity(s: &str) -> Result<Severity, String> {
    match s {
        "unknown" => Ok(Severity::Unknown),
        _ => Severity::from_word(s).ok_or_else(|| {
            format!("`{s}` is not a severity: critical, high, medium, low or unknown")
        }),
    }
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
        let record_driven = args.target.record.is_some()
            || args.target.image.is_some()
            || args.target.tag.is_some()
            || args.input.is_some();
        // Checked here, not by clap: the action passes IMAGEPIPE_ALL_PUBLISHED=false by default,
        // which clap would count as given.
        if args.all_published && (args.path.is_some() || record_driven || args.published.is_some())
        {
            anyhow::bail!(
                "--all-published rescans the store's versions; it takes no path, --published, --record, --image, --tag or --input"
            );
        }
        if let Some(path) = args.path.clone() {
            return standalone::run(&ui, &args, path).await;
        }
        if args.published.is_some() || args.all_published {
            return rescan::run(&ui, &args).await;
        }
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
