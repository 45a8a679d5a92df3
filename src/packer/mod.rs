//! Running Packer: `init`, `validate` and `build -machine-readable`, with signals forwarded and
//! a timeout enforced.

pub mod machine;
pub mod manifest;
pub mod template;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

pub use machine::{Event, UiLevel};
pub use manifest::{Manifest, ManifestBuild};
pub use template::Template;

#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error(
        "cannot run Packer (`{program}`): {source}; install it (Debian: `apt-get install packer`) \
         or point `pipeline.packer` / IMAGEPIPE_PACKER at it"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("Packer build failed:\n{0}")]
    BuildFailed(String),
    #[error("the build was interrupted by {0}; Packer was asked to clean up and has exited")]
    Interrupted(&'static str),
    #[error(
        "the build was interrupted ({0}) and Packer had not finished cleaning up within the \
         interrupt grace of {1}: it was killed, so what its cleanup had not removed yet (a VM, \
         an instance) may still exist. Raise `interrupt_grace` in imagepipe.toml or \
         IMAGEPIPE_INTERRUPT_GRACE if the teardown needs longer"
    )]
    KilledAfterGrace(&'static str, String),
    #[error(
        "the build did not finish within {0}; Packer was interrupted and has exited \
         (raise `build_timeout` in imagepipe.toml or IMAGEPIPE_BUILD_TIMEOUT)"
    )]
    TimedOut(String),
    #[error("cannot read Packer's output: {0}")]
    Io(#[from] std::io::Error),
}

/// One Packer command line, printable exactly as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program.display().to_string()))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

/// Quotes for a POSIX shell only when needed, so printed commands can be pasted.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Invocation {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            // Packer must not see the terminal's Ctrl-C directly: it gets exactly one, from us.
            .process_group(0)
            // Packer checks for updates and sends telemetry unless told not to.
            .env("CHECKPOINT_DISABLE", "1")
            .kill_on_drop(true);
        cmd
    }

    fn spawn_error(&self) -> impl FnOnce(std::io::Error) -> PackerError + '_ {
        move |source| PackerError::Spawn {
            program: self.program.display().to_string(),
            source,
        }
    }

    /// Runs a short command (version, init, validate) and returns its combined output.
    pub async fn output(&self) -> Result<String, PackerError> {
        let out = self.command().output().await.map_err(self.spawn_error())?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            let mut output = text.trim_end().to_string();
            if let Some(hint) = plugin_hint(&output) {
                output.push_str("\nhint: ");
                output.push_str(hint);
            }
            return Err(PackerError::Failed {
                command: self.to_string(),
                status: out.status.to_string(),
                output,
            });
        }
        Ok(text)
    }
}

/// The Packer executable.
#[derive(Debug, Clone)]
pub struct Packer {
    pub program: PathBuf,
    pub cwd: PathBuf,
}

impl Packer {
    pub fn invocation(&self, args: impl IntoIterator<Item = String>) -> Invocation {
        Invocation {
            program: self.program.clone(),
            args: args.into_iter().collect(),
            cwd: self.cwd.clone(),
        }
    }

    /// Packer's version, from `packer -machine-readable version`.
    pub async fn version(&self) -> Result<String, PackerError> {
        let inv = self.invocation(["-machine-readable".into(), "version".into()]);
        let out = inv.output().await?;
        out.lines()
            .find_map(|l| match machine::parse_line(l) {
                Event::Version(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| PackerError::Failed {
                command: inv.to_string(),
                status: "no version line".into(),
                output: out.trim_end().to_string(),
            })
    }
}

/// How a build run is supervised.
#[derive(Debug, Clone, Copy)]
pub struct Supervision {
    pub timeout: Duration,
    /// After an interrupt, how long Packer gets to clean up before its process group is killed.
    pub grace: Duration,
}

/// What a successful `packer build -machine-readable` told us.
#[derive(Debug, Clone, Default)]
pub struct BuildOutput {
    pub artifacts: Vec<Event>,
}

impl BuildOutput {
    /// The builds that reported an artifact with files, each once, in order. A build reports
    /// its builder's artifact and then each post-processor's (the manifest post-processor
    /// passes the same one on), so a build may list several.
    pub fn targets_with_files(&self) -> Vec<String> {
        let mut targets: Vec<String> = self
            .artifacts
            .iter()
            .filter_map(|e| match e {
                Event::Artifact {
                    target,
                    key,
                    values,
                    ..
                } if key == "files-count"
                    && values
                        .first()
                        .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0)) =>
                {
                    Some(target.clone())
                }
                _ => None,
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        targets
    }
}

/// Whether a line of Packer's output is HCP Packer's skip of a build it counts as done
/// (1.9–1.12 print it as an error and still exit 0).
pub fn is_hcp_skip(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("hcp") || t.contains("already done")
}

/// `validate` with `-evaluate-datasources` where the Packer version has it (1.8.5 and later):
/// without it, validation skips data sources and checks less than it appears to.
pub fn with_datasources(validate: &Invocation, packer_version: &str) -> Invocation {
    let mut inv = validate.clone();
    let supported = semver::Version::parse(packer_version.trim_start_matches('v'))
        .is_ok_and(|v| v >= semver::Version::new(1, 8, 5));
    if supported && let Some(i) = inv.args.iter().position(|a| a == "validate") {
        inv.args.insert(i + 1, "-evaluate-datasources".into());
    }
    inv
}

/// What to do about a Packer failure whose output shows a known plugin problem.
fn plugin_hint(output: &str) -> Option<&'static str> {
    if output.contains("Available commands are:") && !output.contains("    init ") {
        Some(
            "this Packer has no `init` (it came in 1.7), which a template declaring \
             `required_plugins` needs: use Packer 1.7 or later, or drop `required_plugins` \
             for the plugins built into this release",
        )
    } else if output.contains("Multiple paths are no longer supported for PACKER_PLUGIN_PATH") {
        Some(
            "since Packer 1.11, PACKER_PLUGIN_PATH names one directory, holding plugins in the \
             namespaced layout `packer init` and `packer plugins install` write",
        )
    } else if output.contains("Unknown source type") || output.contains("Missing plugins") {
        Some(
            "since Packer 1.10 the qemu and vSphere builders are plugins, and since 1.11 they \
             load only from the plugin directory's namespaced layout (with _SHA256SUM files). \
             Declare them in a `packer { required_plugins { … } }` block, which makes \
             imagepipe-build run `packer init`; on hosts without internet install each one with \
             `packer plugins install --path <binary> github.com/hashicorp/<name>` \
             (docs/templates.md)",
        )
    } else {
        None
    }
}

/// Lines kept for the failure report.
const TAIL: usize = 40;

/// Runs `packer build -machine-readable`, passing each event to `on_event` as it arrives.
/// SIGINT and SIGTERM are forwarded to Packer, and the timeout interrupts it; either way the
/// run ends only when Packer has exited, so its cleanup is never cut short by us.
pub async fn run_build(
    inv: &Invocation,
    supervision: Supervision,
    mut on_event: impl FnMut(&Event),
) -> Result<BuildOutput, PackerError> {
    let mut child = inv
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(inv.spawn_error())?;
    let pid = child.id().map(|id| Pid::from_raw(id as i32));
    let mut stdout = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?,
    )
    .lines();
    let mut stderr = BufReader::new(
        child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?,
    )
    .lines();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    let deadline = tokio::time::sleep(supervision.timeout);
    tokio::pin!(deadline);
    let kill_at = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(kill_at);

    let mut interrupted: Option<&'static str> = None;
    let mut timed_out = false;
    let mut killed = false;
    let mut out = BuildOutput::default();
    let mut errors: Vec<String> = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let (mut stdout_open, mut stderr_open) = (true, true);

    // Interrupts reach Packer alone, as SIGTERM. Packer re-executes itself under panicwrap,
    // whose outer process ignores SIGINT and forwards only SIGTERM (main.go's ForwardSignals);
    // the real Packer then cancels its builds through the plugins' RPC, so each plugin cleans
    // up (powers off and destroys a vSphere VM). Signalling the whole process group instead
    // kills plugins built with some SDK versions at once, leaving their VMs behind. Only when
    // the grace is over does the group get SIGKILL. Packer is asked once: later signals
    // neither repeat the request nor extend the grace.
    let mut asked = false;
    let mut forward = |kill_at: std::pin::Pin<&mut tokio::time::Sleep>| {
        if std::mem::replace(&mut asked, true) {
            return;
        }
        if let Some(pid) = pid {
            let _ = kill(pid, Signal::SIGTERM);
        }
        kill_at.reset(tokio::time::Instant::now() + supervision.grace);
    };
    let mut note = |event: Event, errors: &mut Vec<String>, tail: &mut VecDeque<String>| {
        match &event {
            Event::Ui {
                level: UiLevel::Error,
                text,
            } => errors.push(text.trim().to_string()),
            Event::BuildError { target, text } => errors.push(format!("{target}: {text}")),
            Event::Artifact { .. } => out.artifacts.push(event.clone()),
            _ => {}
        }
        if let Event::Ui { text, .. } | Event::Raw(text) = &event
            && !text.trim().is_empty()
        {
            tail.push_back(text.clone());
            if tail.len() > TAIL {
                tail.pop_front();
            }
        }
        on_event(&event);
    };

    // Packer's exit, seen without reaping it: while Packer is an unreaped zombie its process
    // group id cannot be given to anyone else, so the group can be killed safely once it exits.
    let mut exited = match pid {
        Some(pid) => tokio::task::spawn_blocking(move || exited_unreaped(pid)),
        None => tokio::task::spawn_blocking(|| ()),
    };
    let mut packer_exited = false;
    let kill_group = || {
        if let Some(pid) = pid {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    };

    loop {
        if packer_exited && !stdout_open && !stderr_open {
            break;
        }
        tokio::select! {
            line = stdout.next_line(), if stdout_open => match line? {
                Some(l) => note(machine::parse_line(&l), &mut errors, &mut tail),
                None => stdout_open = false,
            },
            line = stderr.next_line(), if stderr_open => match line? {
                Some(l) => note(Event::Raw(l), &mut errors, &mut tail),
                None => stderr_open = false,
            },
            _ = sigint.recv() => {
                interrupted = Some("SIGINT");
                forward(kill_at.as_mut());
            }
            _ = sigterm.recv() => {
                interrupted = Some("SIGTERM");
                forward(kill_at.as_mut());
            }
            _ = &mut deadline, if !timed_out => {
                timed_out = true;
                forward(kill_at.as_mut());
            }
            _ = &mut kill_at => {
                // Packer did not finish cleaning up in time: stop it and whatever it started.
                killed = true;
                kill_group();
                kill_at.as_mut().reset(tokio::time::Instant::now() + Duration::MAX / 4);
            }
            _ = &mut exited, if !packer_exited => {
                packer_exited = true;
                // The build is over. Whatever Packer started and did not stop is still in its
                // process group (a builder's VM that a crashed or killed Packer left running
                // would hold the disk and the CPUs, and the pipes we read; a shell-local
                // provisioner's `sleep` an interrupted Packer stopped waiting for): nothing of
                // this build may outlive the step. After Packer's own cleanup this finds no one.
                kill_group();
            }
        }
    }
    let status = child.wait().await?;
    let grace = || humantime::format_duration(supervision.grace).to_string();
    if killed {
        return Err(PackerError::KilledAfterGrace(
            interrupted.unwrap_or("the timeout"),
            grace(),
        ));
    }
    if let Some(sig) = interrupted {
        return Err(PackerError::Interrupted(sig));
    }
    if timed_out {
        return Err(PackerError::TimedOut(
            humantime::format_duration(supervision.timeout).to_string(),
        ));
    }
    if !status.success() {
        let detail = if errors.is_empty() {
            format!(
                "packer exited with {status}; its last lines were:\n{}",
                Vec::from(tail).join("\n")
            )
        } else {
            let mut seen = Vec::new();
            for e in errors {
                if !seen.contains(&e) {
                    seen.push(e);
                }
            }
            seen.join("\n")
        };
        let detail = match plugin_hint(&detail) {
            Some(hint) => format!("{detail}\nhint: {hint}"),
            None => detail,
        };
        return Err(PackerError::BuildFailed(detail));
    }
    Ok(out)
}

/// Blocks until the process `pid` (our child) has exited, leaving it unreaped.
fn exited_unreaped(pid: Pid) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::errno::Errno::EINTR) => continue,
            // Exited, or no longer ours to wait for (then `child.wait()` reports it).
            _ => return,
        }
    }
}

/// Whether a path's directory exists and holds anything.
pub fn dir_has_entries(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Packer that exits and leaves a process of its group running (as a crashed Packer would
    /// leave its builder's VM): the run ends, and takes that process with it.
    #[tokio::test]
    async fn nothing_packer_started_outlives_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("left.pid");
        let inv = Invocation {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!(
                    "sleep 600 >/dev/null 2>&1 & echo $! > {}; echo 'the build broke' >&2; exit 1",
                    pid_file.display()
                ),
            ],
            cwd: dir.path().to_path_buf(),
        };
        let supervision = Supervision {
            timeout: Duration::from_secs(600),
            grace: Duration::from_secs(10),
        };
        let err = run_build(&inv, supervision, |_| {}).await.unwrap_err();
        assert!(
            matches!(&err, PackerError::BuildFailed(d) if d.contains("the build broke")),
            "{err}"
        );
        let left = std::fs::read_to_string(&pid_file).unwrap();
        let left = left.trim();
        // Killed: gone or a zombie, or still on its way out (SIGKILL is delivered
        // asynchronously: pending, or taken and exiting). Only a `sleep` asleep with no SIGKILL
        // pending was left alive, so no time limit decides.
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{left}/stat")).ok();
            let state = stat.as_deref().and_then(|s| {
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next())
            });
            match state {
                None | Some('Z' | 'X') => break,
                Some('S') => {
                    let status =
                        std::fs::read_to_string(format!("/proc/{left}/status")).unwrap_or_default();
                    let kill_pending = status
                        .lines()
                        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
                        .any(|mask| mask & (1 << (9 - 1)) != 0);
                    assert!(
                        kill_pending || status.is_empty(),
                        "process {left} of the build's group is still running"
                    );
                }
                Some(_) => {}
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("-var-file=/a/b.pkrvars.hcl"),
            "-var-file=/a/b.pkrvars.hcl"
        );
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }
}
