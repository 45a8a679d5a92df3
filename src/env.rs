//! Every environment variable imagepipe reads, in one place.
//!
//! Each step flag has an `IMAGEPIPE_*` fallback so that a GitHub composite action or a Jenkins
//! `withEnv` block can drive the step without building a command line. Secrets are only ever read
//! from the environment (or from files named here), never from flags.

/// Path of `imagepipe.toml`; otherwise it is searched for upwards from the working directory.
pub const CONFIG: &str = "IMAGEPIPE_CONFIG";
/// Image name, e.g. `global/debian-12`.
pub const IMAGE: &str = "IMAGEPIPE_IMAGE";
/// Image version (semver, no leading `v`).
pub const VERSION: &str = "IMAGEPIPE_VERSION";
/// A git tag naming an image version, e.g. `global/debian-12/v1.4.0`.
pub const TAG: &str = "IMAGEPIPE_TAG";
/// Parent pin, `<image>@<version>`.
pub const PARENT: &str = "IMAGEPIPE_PARENT";
/// Path of a parent record to build on instead of resolving the parent from the store.
pub const PARENT_RECORD: &str = "IMAGEPIPE_PARENT_RECORD";
/// Directory Packer writes the artifacts to.
pub const OUTPUT_DIR: &str = "IMAGEPIPE_OUTPUT_DIR";
/// Path the image record is written to (or read from).
pub const RECORD: &str = "IMAGEPIPE_RECORD";
/// Machine output on stdout when `true`.
pub const JSON: &str = "IMAGEPIPE_JSON";
/// `auto`, `bar`, `lines` or `none`.
pub const PROGRESS: &str = "IMAGEPIPE_PROGRESS";
/// Print the plan and change nothing, when `true`.
pub const DRY_RUN: &str = "IMAGEPIPE_DRY_RUN";
/// Replace an existing output directory, when `true`.
pub const FORCE: &str = "IMAGEPIPE_FORCE";
/// Overrides the build timeout from `imagepipe.toml` (`90m`, `2h`).
pub const BUILD_TIMEOUT: &str = "IMAGEPIPE_BUILD_TIMEOUT";
/// Overrides `pipeline.interrupt_grace`: how long Packer may clean up after an interrupt.
pub const INTERRUPT_GRACE: &str = "IMAGEPIPE_INTERRUPT_GRACE";
/// The `packer` executable to run.
pub const PACKER: &str = "IMAGEPIPE_PACKER";
/// Git commit to record instead of asking git (CI systems that build from a tarball).
pub const GIT_COMMIT: &str = "IMAGEPIPE_GIT_COMMIT";

/// `imagepipe-build validate`: only the images a pull request onto this revision changes.
pub const CHANGED_SINCE: &str = "IMAGEPIPE_CHANGED_SINCE";

/// `imagepipe-tag`: rebuild every descendant of `<image>@<version>`.
pub const CASCADE_FROM: &str = "IMAGEPIPE_CASCADE_FROM";
/// `imagepipe-tag`: the commit to tag (default `HEAD`).
pub const COMMIT: &str = "IMAGEPIPE_COMMIT";
/// `imagepipe-tag`: `git` (local tags, optionally pushed) or `github` (the REST API).
pub const TAG_VIA: &str = "IMAGEPIPE_TAG_VIA";
/// `imagepipe-tag`: push the new tags to the remote, when `true`.
pub const PUSH: &str = "IMAGEPIPE_PUSH";
/// `imagepipe-tag`: the remote to push to (overrides `tag.remote`).
pub const REMOTE: &str = "IMAGEPIPE_REMOTE";
/// `imagepipe-tag`: only print the image and version this tag names (`imagepipe-tag parse`).
pub const PARSE: &str = "IMAGEPIPE_PARSE";
/// `imagepipe-tag`: skip the review gate (local use; recorded in the tag message).
pub const NO_REVIEW_GATE: &str = "IMAGEPIPE_NO_REVIEW_GATE";
/// `imagepipe-tag`: `owner/name` on GitHub (overrides `tag.github_repository`).
pub const REPOSITORY: &str = "IMAGEPIPE_GITHUB_REPOSITORY";
/// GitHub token for imagepipe only; wins over `GITHUB_TOKEN`.
pub const IMAGEPIPE_GITHUB_TOKEN: &str = "IMAGEPIPE_GITHUB_TOKEN";
/// GitHub token, as workflows and most CI systems provide it.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// GitHub API base URL; set on GitHub Enterprise runners.
pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
/// `owner/name` of the repository a workflow runs for.
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// The least wait on a GitHub rate limit that names no time (default `1m`, as GitHub asks).
pub const GITHUB_RATE_LIMIT_WAIT: &str = "IMAGEPIPE_GITHUB_RATE_LIMIT_WAIT";
/// How long the review gate waits for GitHub to associate a merged commit with its pull
/// request (default `60s`).
pub const GITHUB_ASSOCIATION_WAIT: &str = "IMAGEPIPE_GITHUB_ASSOCIATION_WAIT";

/// `imagepipe-publish`: publish without a passing scan, for this reason (recorded).
pub const OVERRIDE_GATE: &str = "IMAGEPIPE_OVERRIDE_GATE";
/// `imagepipe-publish`: the CI build that publishes, as Artifactory `build.name` / `build.number`.
pub const BUILD_NAME: &str = "IMAGEPIPE_BUILD_NAME";
pub const BUILD_NUMBER: &str = "IMAGEPIPE_BUILD_NUMBER";
/// `imagepipe-publish`: also publish Artifactory build-info, when `true`.
pub const BUILD_INFO: &str = "IMAGEPIPE_BUILD_INFO";
/// Artifactory multipart upload part size in MiB (default 20, as JFrog's CLI); files of ten
/// parts or more are split when the server offers multipart upload.
pub const MULTIPART_PART_MIB: &str = "IMAGEPIPE_MULTIPART_PART_MIB";
/// A store URL that replaces the primary store of `imagepipe.toml`.
pub const STORE: &str = "IMAGEPIPE_STORE";

/// `imagepipe-replicate-check`: the sites to check, comma-separated (default: all).
pub const SITES: &str = "IMAGEPIPE_SITES";
/// `imagepipe-replicate-check`: ask the primary Artifactory to replicate now, when `true`.
pub const TRIGGER_REPLICATION: &str = "IMAGEPIPE_TRIGGER_REPLICATION";
/// `imagepipe-replicate-check`: how long to wait for incomplete sites (`30m`, `2h`).
pub const WAIT: &str = "IMAGEPIPE_WAIT";
/// `imagepipe-replicate-check`: the first pause between checks while waiting.
pub const POLL_INTERVAL: &str = "IMAGEPIPE_POLL_INTERVAL";
/// `imagepipe-replicate-check` and `imagepipe-import`: sites worked on at once.
pub const CONCURRENCY: &str = "IMAGEPIPE_CONCURRENCY";
/// `imagepipe-replicate-check`: requests in flight per site.
pub const REQUESTS_PER_SITE: &str = "IMAGEPIPE_REQUESTS_PER_SITE";
/// `imagepipe-replicate-check`: a site that has not answered within this is unreachable.
pub const SITE_TIMEOUT: &str = "IMAGEPIPE_SITE_TIMEOUT";

/// `imagepipe-import`: the library item's name; `{image}` (with `/` as `-`) and `{version}`.
pub const ITEM_NAME: &str = "IMAGEPIPE_ITEM_NAME";
/// `imagepipe-import`: `item-per-image` or `item-per-version`.
pub const LAYOUT: &str = "IMAGEPIPE_LAYOUT";
/// `imagepipe-import`: with `item-per-version`, how many versions of an image to keep.
pub const KEEP: &str = "IMAGEPIPE_KEEP";
/// `imagepipe-import`: `push` (through the step) or `pull` (vCenter fetches from the store).
pub const TRANSFER: &str = "IMAGEPIPE_TRANSFER";
/// `imagepipe-import`: the vSphere REST generation, `auto`, `rest` (6.5, 6.7) or `api` (7.0U2+).
pub const VSPHERE_API: &str = "IMAGEPIPE_VSPHERE_API";
/// `imagepipe-import`: the artifact to import, by name (default: the record's one OVA).
pub const ARTIFACT: &str = "IMAGEPIPE_ARTIFACT";
/// `imagepipe-import`: import an OVA without a manifest, when `true`.
pub const ALLOW_MISSING_MANIFEST: &str = "IMAGEPIPE_ALLOW_MISSING_MANIFEST";
/// `imagepipe-import`: how often an update session is kept alive during a transfer.
pub const KEEP_ALIVE: &str = "IMAGEPIPE_KEEP_ALIVE";
/// `imagepipe-import`: how long to wait for subscribed libraries to show the new item.
pub const SYNC_WAIT: &str = "IMAGEPIPE_SYNC_WAIT";
/// `imagepipe-import`: deploy a throw-away VM from each vCenter's item after the import, when
/// `true`.
pub const DEPLOY_CHECK: &str = "IMAGEPIPE_DEPLOY_CHECK";
/// `imagepipe-import`: how long the deploy check's VM may take to run (default `10m`).
pub const DEPLOY_WAIT: &str = "IMAGEPIPE_DEPLOY_WAIT";

/// `imagepipe-scan`: the offline OSV database, a directory of OSV JSON records.
pub const OSV_DB: &str = "IMAGEPIPE_OSV_DB";
/// `imagepipe-scan`: Microsoft's security updates offline, a directory of CVRF and CSAF 2.0
/// JSON documents (for Windows images).
pub const MSRC_DB: &str = "IMAGEPIPE_MSRC_DB";
/// `imagepipe-scan`: a database older than this is warned about (`7d`).
pub const MAX_DB_AGE: &str = "IMAGEPIPE_MAX_DB_AGE";
/// `imagepipe-scan`: what a database older than the maximum age is, `warn` or `fail`.
pub const STALE_DB: &str = "IMAGEPIPE_STALE_DB";
/// `imagepipe-scan`: scan this disk image, root filesystem directory or tarball instead of
/// the record's artifact.
pub const SCAN_INPUT: &str = "IMAGEPIPE_SCAN_INPUT";
/// `imagepipe-scan`: rescan this published version in place, `<image>@<version>`.
pub const PUBLISHED: &str = "IMAGEPIPE_PUBLISHED";
/// `imagepipe-scan`: rescan every published version in place, when `true`.
pub const ALL_PUBLISHED: &str = "IMAGEPIPE_ALL_PUBLISHED";
/// `imagepipe-scan`: a rescan fails (exit 1) on a new finding at or above this severity.
pub const FAIL_ON_NEW: &str = "IMAGEPIPE_FAIL_ON_NEW";
/// `imagepipe-scan`: a rescan revokes (with descendants) a version with a new finding at or
/// above this severity.
pub const REVOKE_ON_NEW: &str = "IMAGEPIPE_REVOKE_ON_NEW";

/// `imagepipe-lifecycle`: the subcommand (`promote`, `rollback`, `history`, `revoke`,
/// `prune`, `retain`), for actions and Jenkins, which pass no arguments.
pub const LIFECYCLE_COMMAND: &str = "IMAGEPIPE_LIFECYCLE_COMMAND";
/// `imagepipe-lifecycle`: the channel to promote to, roll back or show (`prod`, `dev`).
pub const CHANNEL: &str = "IMAGEPIPE_CHANNEL";
/// `imagepipe-lifecycle revoke`: why the version is revoked (shown by builds and imports).
pub const REASON: &str = "IMAGEPIPE_REASON";
/// `imagepipe-lifecycle revoke`: revoke every descendant too, when `true`.
pub const CASCADE: &str = "IMAGEPIPE_CASCADE";
/// `imagepipe-lifecycle revoke`: the date the revocation takes effect (RFC 3339 or
/// `YYYY-MM-DD`); default now.
pub const REVOKE_AT: &str = "IMAGEPIPE_REVOKE_AT";
/// `imagepipe-lifecycle prune`/`retain`: change the stores and libraries, when `true`;
/// otherwise only the plan is shown.
pub const APPLY: &str = "IMAGEPIPE_APPLY";
/// `imagepipe-lifecycle retain`: how many versions of each image to keep.
pub const RETAIN: &str = "IMAGEPIPE_RETAIN";
/// `imagepipe-lifecycle retain`: how many assignments of each channel's history stay.
pub const RETAIN_HISTORY: &str = "IMAGEPIPE_RETAIN_HISTORY";

/// Who changes a channel or revokes, in this order: the GitHub user of a workflow run, the
/// Jenkins user (Build User Vars plugin), the login.
pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
pub const BUILD_USER_ID: &str = "BUILD_USER_ID";
pub const BUILD_USER: &str = "BUILD_USER";
pub const USER: &str = "USER";

/// Extra PEM CA bundle trusted by every HTTP client, in addition to the system roots.
pub const CA_BUNDLE: &str = "IMAGEPIPE_CA_BUNDLE";

/// Tests only: the process kills itself (SIGKILL) at its Nth change to a store or library on
/// disk (see `fsutil::crash_point`), so that crash safety can be checked at every such point.
pub const FAULT_KILL_AT: &str = "IMAGEPIPE_FAULT_KILL_AT";

/// Set by GitHub Actions on every runner.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// File that receives step outputs on GitHub Actions.
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// File that receives the Markdown step summary on GitHub Actions.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// Commit GitHub Actions checked out.
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// Set by Jenkins on every build.
pub const JENKINS_URL: &str = "JENKINS_URL";
/// Commit Jenkins' git plugin checked out.
pub const GIT_COMMIT_JENKINS: &str = "GIT_COMMIT";
/// Set by most CI systems; selects plain progress lines.
pub const CI: &str = "CI";

/// Reads a variable, treating an empty value as unset (composite actions pass empty inputs).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// True when the variable is set to a truthy value (`true`, `1`, `yes`).
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}
