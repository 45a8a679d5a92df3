//! Progress: an indicatif bar on a terminal, plain periodic lines in CI logs (where a redrawn
//! bar turns into thousands of lines).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

use super::Ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, lines elsewhere.
    Auto,
    Bar,
    Lines,
    None,
}

impl ProgressMode {
    pub(crate) fn resolve(self, terminal: bool, ci: bool) -> Self {
        match self {
            Self::Auto if terminal && !ci => Self::Bar,
            Self::Auto => Self::Lines,
            other => other,
        }
    }
}

/// How often a plain progress line is printed.
const LINE_INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Progress {
    ui: Ui,
    mode: ProgressMode,
    label: String,
    total: Option<u64>,
    done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(ui: Ui, mode: ProgressMode, label: &str, total: Option<u64>) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let pb = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            let pb = ui.add_bar(pb);
            pb.set_message(label.to_string());
            pb.enable_steady_tick(Duration::from_millis(200));
            pb
        });
        let now = Instant::now();
        Self {
            ui,
            mode,
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            started: now,
            last_line: Mutex::new(now),
            bar,
        }
    }

    /// Sets the absolute position (bytes done).
    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        if let Some(pb) = &self.bar {
            pb.set_position(done);
        }
        self.maybe_line(None);
    }

    /// Changes the activity shown (a spinner's text).
    pub fn set_message(&self, msg: &str) {
        if let Some(pb) = &self.bar {
            pb.set_message(format!("{}: {msg}", self.label));
        }
    }

    /// Prints a heartbeat line in line mode if the interval has passed.
    pub fn tick(&self, what: &str) {
        self.maybe_line(Some(what));
    }

    fn maybe_line(&self, what: Option<&str>) {
        if self.mode != ProgressMode::Lines {
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < LINE_INTERVAL {
            return;
        }
        *last = Instant::now();
        drop(last);
        self.ui.line(&self.status_line(what));
    }

    fn status_line(&self, what: Option<&str>) -> String {
        let elapsed = self.started.elapsed();
        let done = self.done.load(Ordering::Relaxed);
        match (self.total, what) {
            (Some(total), _) => {
                let pct = if total == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / total as f64
                };
                let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
                format!(
                    "{}: {pct:.0}% ({} of {}, {}/s)",
                    self.label,
                    HumanBytes(done),
                    HumanBytes(total),
                    HumanBytes(rate as u64)
                )
            }
            (None, Some(w)) => format!("{}: {w} ({} so far)", self.label, HumanDuration(elapsed)),
            (None, None) => format!("{}: {} so far", self.label, HumanDuration(elapsed)),
        }
    }

    /// Ends the display, leaving a final line in line mode.
    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
