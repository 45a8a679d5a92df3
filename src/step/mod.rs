//! The step contract every imagepipe binary follows.
//!
//! - Input: flags, each with an `IMAGEPIPE_*` fallback (names in [`crate::env`]).
//! - Output: human text on stderr, `--json` on stdout, GitHub outputs, summary and annotations.
//! - Exit codes: [`EXIT_DONE`], [`EXIT_CHECK_FAILED`], [`EXIT_ERROR`].
//!
//! A step's `main` parses its flags with clap and hands an async body to [`run`]; the body returns
//! an [`Outcome`] for a step that ran, or an error for one that could not.

mod github;
mod progress;
mod ui;
mod version;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

pub use github::{escape_data, escape_property};
pub use progress::{Progress, ProgressMode};
pub use ui::Ui;
pub use version::{LocateError, VersionArgs};

use crate::env;

/// The step did what it was asked.
pub const EXIT_DONE: u8 = 0;
/// The step ran and its check or gate failed (policy breach, missing replica, review missing).
pub const EXIT_CHECK_FAILED: u8 = 1;
/// Usage, configuration or infrastructure error: the step could not do its job. Clap uses 2 for
/// usage errors too, so the code means the same thing however the step stopped.
pub const EXIT_ERROR: u8 = 2;

/// How a step that ran to its end came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The step's check failed; each reason is shown and annotated.
    CheckFailed(Vec<String>),
}

/// Flags every step takes. Steps take `--version` for the image version, so the tool's own
/// version is `-V/--imagepipe-version` (the command must set `disable_version_flag`).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Print imagepipe's version.
    #[arg(short = 'V', long = "imagepipe-version", action = clap::ArgAction::Version)]
    pub imagepipe_version: Option<bool>,

    /// Pipeline definition; default: imagepipe.toml in the working directory or a parent.
    #[arg(long, env = env::CONFIG, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Print the result as JSON on stdout (human output stays on stderr).
    #[arg(long, env = env::JSON, global = true)]
    pub json: bool,

    /// Progress display: a live bar on a terminal, periodic lines in CI logs.
    #[arg(long, env = env::PROGRESS, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE", global = true)]
    pub progress: ProgressMode,
}

/// Parses the step's flags. Composite actions and Jenkins `withEnv` pass inputs left at their
/// default as empty variables, and clap would take an empty `IMAGEPIPE_*` value as given (and
/// refuse it where a value is required). Clap reads the environment itself, so the step runs
/// itself again without the empty variables; this happens once, before anything else.
pub fn parse<A: clap::Parser>() -> A {
    use std::os::unix::process::CommandExt as _;
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_str().is_some_and(|k| k.starts_with("IMAGEPIPE_")))
        .map(|(k, _)| k)
        .collect();
    if !empty.is_empty()
        && let Ok(exe) = std::env::current_exe()
    {
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        cmd.args(args);
        for k in &empty {
            cmd.env_remove(k);
        }
        // `exec` only returns when it failed; parsing as-is is then the best left to do.
        let _ = cmd.exec();
    }
    A::parse()
}

/// Loads `imagepipe.toml` (the given path, or the one found upwards from the working
/// directory) and shows its warnings.
pub fn load_config(
    ui: &Ui,
    path: Option<&std::path::Path>,
) -> Result<crate::config::Config, crate::config::ConfigError> {
    let config = crate::config::Config::discover(path)?;
    for w in &config.warnings {
        ui.warn(w);
    }
    Ok(config)
}

/// Runs a step body on a Tokio runtime and turns its result into the contract's exit code.
pub fn run<F, Fut>(step: &'static str, common: &CommonArgs, body: F) -> ExitCode
where
    F: FnOnce(Ui) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let ui = Ui::new(step, common.json, common.progress);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(body(ui.clone()));
    ExitCode::from(match result {
        Ok(Outcome::Done) => EXIT_DONE,
        Ok(Outcome::CheckFailed(reasons)) => {
            for r in &reasons {
                ui.error(r);
            }
            EXIT_CHECK_FAILED
        }
        Err(err) => {
            ui.error(&render_error(&err));
            EXIT_ERROR
        }
    })
}

/// The error and its causes, one per line, without repeating text a cause already gave.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !last.contains(&text) {
            out.push_str("\n  caused by: ");
            out.push_str(&text);
        }
        last = text;
    }
    out
}
