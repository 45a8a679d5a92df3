//! Where a step's words go: stderr for people, stdout for `--json`, and GitHub's files and
//! workflow commands when running there.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::github;
use super::progress::{Progress, ProgressMode};
use crate::env;

#[derive(Debug)]
struct Inner {
    step: &'static str,
    json: bool,
    github: bool,
    progress: ProgressMode,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    /// Live progress bars stack here (bar mode); lines are printed above them.
    bars: indicatif::MultiProgress,
}

/// The step's output channels. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Ui(Arc<Inner>);

impl Ui {
    pub fn new(step: &'static str, json: bool, progress: ProgressMode) -> Self {
        let github = env::var(env::GITHUB_ACTIONS).as_deref() == Some("true");
        let terminal = std::io::stderr().is_terminal();
        let ci = github || env::var(env::CI).is_some() || env::var(env::JENKINS_URL).is_some();
        let progress = progress.resolve(terminal, ci);
        if github {
            // GitHub masks each form of a secret in the job log too, as soon as it is read.
            crate::secret::announce_with(|form| {
                for line in form.lines().filter(|l| !l.trim().is_empty()) {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "::add-mask::{}",
                        github::escape_data(line)
                    );
                }
            });
        }
        Self(Arc::new(Inner {
            step,
            json,
            github,
            progress,
            output_file: github
                .then(|| env::var(env::GITHUB_OUTPUT))
                .flatten()
                .map(PathBuf::from),
            summary_file: github
                .then(|| env::var(env::GITHUB_STEP_SUMMARY))
                .flatten()
                .map(PathBuf::from),
            bars: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
        }))
    }

    fn scrub(&self, text: &str) -> String {
        crate::secret::scrub(text).into_owned()
    }

    /// Prints one line of human output on stderr, above a progress bar if one is drawn.
    pub fn line(&self, text: &str) {
        let text = self.scrub(text);
        // Above the bars while any is drawn; MultiProgress::suspend clears and redraws them.
        self.0.bars.suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        });
    }

    pub fn info(&self, text: &str) {
        self.line(text);
    }

    pub fn warn(&self, text: &str) {
        self.line(&format!("warning: {text}"));
        self.command("warning", text);
    }

    pub fn error(&self, text: &str) {
        self.line(&format!("error: {text}"));
        self.command("error", text);
    }

    fn command(&self, kind: &str, text: &str) {
        if self.0.github {
            let title = github::escape_property(self.0.step);
            let msg = github::escape_data(&self.scrub(text));
            let _ = writeln!(std::io::stderr().lock(), "::{kind} title={title}::{msg}");
        }
    }

    /// Sets a step output (`$GITHUB_OUTPUT` on GitHub; nothing elsewhere).
    pub fn output(&self, name: &str, value: &str) -> std::io::Result<()> {
        match &self.0.output_file {
            Some(f) => github::append_output(f, name, &self.scrub(value)),
            None => Ok(()),
        }
    }

    /// Appends Markdown to the step summary (`$GITHUB_STEP_SUMMARY` on GitHub).
    pub fn summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.0.summary_file {
            Some(f) => github::append_text(f, &self.scrub(markdown)),
            None => Ok(()),
        }
    }

    /// Prints the machine result on stdout when `--json` is set.
    pub fn json(&self, value: &serde_json::Value) {
        if self.0.json {
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{}", self.scrub(&text));
        }
    }

    pub fn group_start(&self, title: &str) {
        if self.0.github {
            let _ = writeln!(
                std::io::stderr().lock(),
                "::group::{}",
                github::escape_data(title)
            );
        }
    }

    pub fn group_end(&self) {
        if self.0.github {
            let _ = writeln!(std::io::stderr().lock(), "::endgroup::");
        }
    }

    /// Starts a progress display of `total` bytes (or an open-ended activity when `None`).
    /// Several can run at once: bars stack, and in line mode each prints its own lines.
    pub fn progress(&self, label: &str, total: Option<u64>) -> Progress {
        Progress::new(self.clone(), self.0.progress, label, total)
    }

    pub(crate) fn add_bar(&self, bar: indicatif::ProgressBar) -> indicatif::ProgressBar {
        self.0.bars.add(bar)
    }
}
