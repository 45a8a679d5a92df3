//! Tags: listing the repository's image tags, and creating and pushing annotated ones.

use std::path::Path;

use super::{GitError, git_bytes, git_text};

/// A tag as git stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub name: String,
    /// The commit the tag points at (peeled through annotated tag objects).
    pub commit: String,
    pub annotated: bool,
}

/// Every tag in the repository, with the commit it points at.
pub fn list(dir: &Path) -> Result<Vec<TagRef>, GitError> {
    let out = git_bytes(
        dir,
        &["for-each-ref", "--format=%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objectname)", "refs/tags"],
    )?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\0');
            let (name, kind, object, peeled) = (f.next()?, f.next()?, f.next()?, f.next().unwrap_or(""));
            let annotated = kind == "tag";
            let commit = if annotated { peeled } else { object };
            // Tags of trees or blobs name no commit and cannot be image versions.
            (!commit.is_empty()).then(|| TagRef { name: name.to_string(), commit: commit.to_string(), annotated })
        })
        .collect())
}

/// The full id of a commit-ish.
pub fn resolve_commit(dir: &Path, rev: &str) -> Result<String, GitError> {
    git_text(dir, &["rev-parse", "--verify", "--end-of-options", &format!("{rev}^{{commit}}")])
}
