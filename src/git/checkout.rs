//! Whether a checkout holds what versioning needs: the whole history and every tag its remote
//! has.
//!
//! CI checkouts are incomplete by default. `actions/checkout` clones `--depth 1` without tags,
//! and Jenkins' git plugin can clone shallow and skip tags too. Versions computed there would be
//! wrong (every image looks untagged), and the tags pushed from them are permanent. So before
//! any plan, a shallow or tag-less checkout is completed from its remote, and one that cannot be
//! completed is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::tags::{self, RemoteTag};
use super::{GitError, git_bytes_stdin, git_text};

/// The fix, as users of each CI system apply it.
const FULL_HISTORY_HINT: &str = "fetch the whole history and the tags first: `git fetch \
    --unshallow --tags`; in GitHub Actions, `actions/checkout` with `fetch-depth: 0`; in Jenkins, \
    untick \"Shallow clone\" and tick \"Fetch tags\" in the advanced clone behaviours";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "{dir} is a shallow clone and has no remote `{remote}` to fetch the rest of its history \
         from; versions are never computed from part of the history: {FULL_HISTORY_HINT}"
    )]
    ShallowWithoutRemote { dir: PathBuf, remote: String },
    #[error(
        "cannot list the tags of remote `{remote}`, so this checkout may lack some; versions are \
         never computed without every tag: check the remote's URL and credentials ({source})"
    )]
    ListRemote { remote: String, source: GitError },
    #[error(
        "fetching the whole history and the tags from `{remote}` failed, and versions are never \
         computed from part of the history: {source}"
    )]
    Fetch { remote: String, source: GitError },
    #[error("{dir} is still a shallow clone after fetching from `{remote}`: {FULL_HISTORY_HINT}")]
    StillShallow { dir: PathBuf, remote: String },
    #[error(
        "tag {tag} is on commit {local} here but on {remote_commit} on `{remote}`; published tags \
         are never moved: remove the local one (`git tag -d {tag}`) and run again"
    )]
    Diverged {
        tag: String,
        local: String,
        remote_commit: String,
        remote: String,
    },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Whether the repository is a shallow clone.
pub fn is_shallow(dir: &Path) -> Result<bool, GitError> {
    Ok(git_text(dir, &["rev-parse", "--is-shallow-repository"])? == "true")
}

/// Whether `remote` is configured in the repository.
pub fn has_remote(dir: &Path, remote: &str) -> bool {
    git_text(dir, &["remote", "get-url", "--end-of-options", remote]).is_ok()
}

/// What [`ensure_complete`] had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// The clone was shallow and now holds the whole history.
    pub deepened: bool,
    /// Tags the remote had and this checkout lacked.
    pub fetched: usize,
    /// Tags this checkout held as lightweight refs while the remote's are annotated (as
    /// `actions/checkout` leaves the tag it checks out); replaced by the annotated tags.
    pub replaced: usize,
}

/// Makes sure the checkout holds the whole history and every `relevant` tag of `remote`,
/// fetching what is missing and telling `note` so. Without the remote, a shallow clone is an
/// error; a complete clone is taken as it is, since nothing else can be known.
pub fn ensure_complete(
    dir: &Path,
    remote: &str,
    relevant: &dyn Fn(&str) -> bool,
    note: &dyn Fn(&str),
) -> Result<Completion, HistoryError> {
    let shallow = is_shallow(dir)?;
    if !has_remote(dir, remote) {
        if shallow {
            return Err(HistoryError::ShallowWithoutRemote {
                dir: dir.to_path_buf(),
                remote: remote.to_string(),
            });
        }
        return Ok(Completion::default());
    }
    let on_remote =
        tags::list_remote(dir, remote, &[]).map_err(|source| HistoryError::ListRemote {
            remote: remote.to_string(),
            source,
        })?;
    let local: HashMap<String, tags::TagRef> = tags::list(dir)?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut missing = Vec::new();
    let mut lightweight = Vec::new();
    for (name, RemoteTag { object, commit }) in on_remote.iter().filter(|(n, _)| relevant(n)) {
        match local.get(name) {
            None => missing.push(name.as_str()),
            Some(l) if &l.commit != commit => {
                return Err(HistoryError::Diverged {
                    tag: name.clone(),
                    local: l.commit.clone(),
                    remote_commit: commit.clone(),
                    remote: remote.to_string(),
                });
            }
            Some(l) if !l.annotated && object != commit => lightweight.push(name.as_str()),
            Some(_) => {}
        }
    }
    let done = Completion {
        deepened: shallow,
        fetched: missing.len(),
        replaced: lightweight.len(),
    };
    if done == Completion::default() {
        return Ok(done);
    }
    let mut what = Vec::new();
    if shallow {
        what.push("the whole history".to_string());
    }
    if !missing.is_empty() {
        what.push(format!("{} missing tag(s)", missing.len()));
    }
    if !lightweight.is_empty() {
        what.push(format!(
            "{} annotated tag(s) held here as lightweight refs",
            lightweight.len()
        ));
    }
    let why = if shallow {
        "this checkout is a shallow clone"
    } else {
        "this checkout lacks tags its remote has"
    };
    note(&format!(
        "{why}: fetching {} from `{remote}` before computing any version",
        what.join(", ")
    ));
    // Only the tags checked above are forced: a lightweight copy is replaced by the annotated
    // tag on the same commit, and a tag that differs was refused before anything was fetched.
    let refspecs: String = missing
        .iter()
        .map(|t| format!("refs/tags/{t}:refs/tags/{t}\n"))
        .chain(
            lightweight
                .iter()
                .map(|t| format!("+refs/tags/{t}:refs/tags/{t}\n")),
        )
        .collect();
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
    if shallow {
        args.push("--unshallow");
    }
    args.extend([remote, "--stdin"]);
    git_bytes_stdin(dir, &args, refspecs.as_bytes()).map_err(|source| HistoryError::Fetch {
        remote: remote.to_string(),
        source,
    })?;
    if is_shallow(dir)? {
        return Err(HistoryError::StillShallow {
            dir: dir.to_path_buf(),
            remote: remote.to_string(),
        });
    }
    Ok(done)
}
