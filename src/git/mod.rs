//! Git, through the `git` command: the same program, configuration and credentials the user's
//! CI already uses to fetch and push.

pub mod checkout;
pub mod history;
pub mod tags;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image::ImageRef;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git in {dir}: {source}; install git")]
    Spawn {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        dir: PathBuf,
        args: String,
        stderr: String,
    },
}

/// Runs git in `dir` and returns its stdout, or the error with git's own message.
pub(crate) fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|source| GitError::Spawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// [`git_bytes`] with `input` on git's stdin.
pub(crate) fn git_bytes_stdin(
    dir: &Path,
    args: &[&str],
    input: &[u8],
) -> Result<Vec<u8>, GitError> {
    use std::io::Write as _;
    let spawn = |source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // git reads all of its input before it answers, so writing first cannot deadlock.
        stdin.write_all(input).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// [`git_bytes`] as trimmed text.
pub(crate) fn git_text(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    Ok(String::from_utf8_lossy(&git_bytes(dir, args)?)
        .trim_end()
        .to_string())
}

/// Runs git in `dir`; `None` when git is missing, `dir` is not a checkout, or the command fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    git_text(dir, args).ok()
}

/// The checked-out commit, and whether tracked files have uncommitted changes.
pub fn head(dir: &Path) -> Option<(String, bool)> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD^{commit}"])?;
    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some((commit, dirty))
}

/// Finds the pin line in a tag message.
pub fn parse_parent_pin(message: &str) -> Option<Result<ImageRef, crate::image::RefError>> {
    let value = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("parent:"))?
        .trim();
    Some(value.parse::<ImageRef>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        let msg = "global/debian-12 v1.4.1\n\nRebuild on a new parent.\n\nparent: vendor/debian-12@12.9.0\n";
        assert_eq!(
            parse_parent_pin(msg).unwrap().unwrap().to_string(),
            "vendor/debian-12@12.9.0"
        );
        assert!(parse_parent_pin("no pin here").is_none());
        assert!(parse_parent_pin("parent: nonsense").unwrap().is_err());
    }
}
