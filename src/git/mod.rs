//! The little of git that building needs: which commit, whether the tree is clean, and what an
//! annotated tag says.

use std::path::Path;
use std::process::Command;

use crate::image::ImageRef;

/// Runs git in `dir`; `None` when git is missing, `dir` is not a checkout, or the command fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The checked-out commit, and whether tracked files have uncommitted changes.
pub fn head(dir: &Path) -> Option<(String, bool)> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD^{commit}"])?;
    let dirty =
        git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some((commit, dirty))
}

/// The `parent: <image>@<version>` pin in an annotated tag's message, if the tag exists here
/// and carries one.
pub fn tag_parent_pin(dir: &Path, tag: &str) -> Option<Result<ImageRef, crate::image::RefError>> {
    let refname = format!(
        "refs/tags/{}",
        tag.strip_prefix("refs/tags/").unwrap_or(tag)
    );
    let message = git(dir, &["for-each-ref", "--format=%(contents)", &refname])?;
    parse_parent_pin(&message)
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
