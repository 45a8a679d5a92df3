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
        &[
            "for-each-ref",
            "--format=%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objectname)",
            "refs/tags",
        ],
    )?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\0');
            let (name, kind, object, peeled) =
                (f.next()?, f.next()?, f.next()?, f.next().unwrap_or(""));
            let annotated = kind == "tag";
            let commit = if annotated { peeled } else { object };
            // Tags of trees or blobs name no commit and cannot be image versions.
            (!commit.is_empty()).then(|| TagRef {
                name: name.to_string(),
                commit: commit.to_string(),
                annotated,
            })
        })
        .collect())
}

/// The full id of a commit-ish.
pub fn resolve_commit(dir: &Path, rev: &str) -> Result<String, GitError> {
    git_text(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
}

/// What a tag ref is in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagObject {
    /// An annotated tag: a tag object with its own message.
    Annotated {
        commit: String,
        message: String,
    },
    /// A ref straight to a commit. `actions/checkout` and other CD checkouts fetch tags this
    /// way (`+<sha>:refs/tags/<name>`), even when the tag is annotated on the remote, so a
    /// lightweight ref here says nothing about what the tag is.
    Lightweight {
        commit: String,
    },
    Missing,
}

/// Reads a tag from the local repository. The message comes only from a tag object: on a
/// lightweight ref `%(contents)` is the commit's message, which must never be read as a tag's.
pub fn read(dir: &Path, tag: &str) -> Result<TagObject, GitError> {
    read_ref(dir, &format!("refs/tags/{tag}"))
}

fn read_ref(dir: &Path, refname: &str) -> Result<TagObject, GitError> {
    let out = git_bytes(
        dir,
        &[
            "for-each-ref",
            "--format=%(objecttype)%00%(objectname)%00%(*objectname)%00%(contents)",
            refname,
        ],
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut f = text.splitn(4, '\0');
    let (kind, object, peeled, contents) = (
        f.next().unwrap_or(""),
        f.next().unwrap_or(""),
        f.next().unwrap_or(""),
        f.next().unwrap_or(""),
    );
    Ok(match kind {
        "" => TagObject::Missing,
        "tag" => TagObject::Annotated {
            commit: peeled.to_string(),
            message: contents.trim_end_matches('\n').to_string(),
        },
        _ => TagObject::Lightweight {
            commit: object.to_string(),
        },
    })
}

/// Fetches one tag from `remote` into a private ref, reads it, and removes the private ref
/// again, so that the checkout's own refs are never changed by reading a tag.
pub fn read_remote(dir: &Path, remote: &str, tag: &str) -> Result<TagObject, GitError> {
    let private = format!("refs/imagepipe/fetched-tags/{tag}");
    let spec = format!("+refs/tags/{tag}:{private}");
    let fetched = git_bytes(
        dir,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            remote,
            &spec,
        ],
    );
    let result = match fetched {
        Ok(_) => read_ref(dir, &private),
        // `couldn't find remote ref`: the remote has no such tag.
        Err(GitError::Failed { stderr, .. }) if stderr.contains("find remote ref") => {
            Ok(TagObject::Missing)
        }
        Err(e) => Err(e),
    };
    let _ = git_bytes(dir, &["update-ref", "-d", &private]);
    result
}

/// One tag as `git ls-remote --tags` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTag {
    /// The object the ref names: a tag object for an annotated tag, else the commit.
    pub object: String,
    /// The commit, peeled through a tag object.
    pub commit: String,
}

/// The tags of `remote` by name: those named in `only`, or all of them when it is empty.
pub fn list_remote(
    dir: &Path,
    remote: &str,
    only: &[String],
) -> Result<std::collections::BTreeMap<String, RemoteTag>, GitError> {
    let refs: Vec<String> = only.iter().map(|t| format!("refs/tags/{t}")).collect();
    let mut args = vec!["ls-remote", "--tags", "--end-of-options", remote];
    args.extend(refs.iter().map(String::as_str));
    let out = git_text(dir, &args)?;
    let mut map: std::collections::BTreeMap<String, RemoteTag> = Default::default();
    for line in out.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        let Some(name) = name.strip_prefix("refs/tags/") else {
            continue;
        };
        match name.strip_suffix("^{}") {
            Some(n) => {
                let t = map.entry(n.to_string()).or_insert_with(|| RemoteTag {
                    object: String::new(),
                    commit: String::new(),
                });
                t.commit = sha.to_string();
            }
            None => {
                let t = map.entry(name.to_string()).or_insert_with(|| RemoteTag {
                    object: String::new(),
                    commit: String::new(),
                });
                t.object = sha.to_string();
                if t.commit.is_empty() {
                    t.commit = sha.to_string();
                }
            }
        }
    }
    Ok(map)
}

/// Creates an annotated tag on `commit`, with the message exactly as given.
pub fn create_annotated(
    dir: &Path,
    tag: &str,
    commit: &str,
    message: &str,
) -> Result<(), GitError> {
    let mut file = tempfile::NamedTempFile::new().map_err(|source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    })?;
    std::io::Write::write_all(&mut file, message.as_bytes()).map_err(|source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    })?;
    let msg = file.path().display().to_string();
    // CI checkouts often have no identity configured; a tag needs a tagger.
    let has_identity = git_text(dir, &["config", "user.email"]).is_ok_and(|e| !e.is_empty());
    let mut args: Vec<&str> = Vec::new();
    if !has_identity {
        args.extend([
            "-c",
            "user.name=imagepipe",
            "-c",
            "user.email=imagepipe@localhost",
        ]);
    }
    args.extend([
        "tag",
        "--annotate",
        "--no-sign",
        "--cleanup=verbatim",
        "--file",
        &msg,
        "--end-of-options",
        tag,
        commit,
    ]);
    git_bytes(dir, &args).map(|_| ())
}

/// Deletes local tags (used only to undo tags this run created).
pub fn delete(dir: &Path, tags: &[String]) -> Result<(), GitError> {
    if tags.is_empty() {
        return Ok(());
    }
    let mut args = vec!["tag", "--delete"];
    args.extend(tags.iter().map(String::as_str));
    git_bytes(dir, &args).map(|_| ())
}

/// Pushes tags all or nothing.
pub fn push_atomic(dir: &Path, remote: &str, tags: &[String]) -> Result<(), GitError> {
    let refs: Vec<String> = tags
        .iter()
        .map(|t| format!("refs/tags/{t}:refs/tags/{t}"))
        .collect();
    let mut args = vec!["push", "--atomic", "--porcelain", "--no-verify", remote];
    args.extend(refs.iter().map(String::as_str));
    git_bytes(dir, &args).map(|_| ())
}

/// The common ancestor of several commits, below which no commit matters to any of them.
pub fn octopus_base(dir: &Path, commits: &[&str]) -> Option<String> {
    let mut args = vec!["merge-base", "--octopus"];
    args.extend(commits);
    git_text(dir, &args).ok().filter(|s| !s.is_empty())
}

/// `owner/name` from a GitHub remote URL (https or ssh).
pub fn github_repository(dir: &Path, remote: &str) -> Option<String> {
    let url = git_text(dir, &["remote", "get-url", remote]).ok()?;
    parse_repository(&url)
}

pub fn parse_repository(url: &str) -> Option<String> {
    let path = if let Some(rest) = url.strip_prefix("git@") {
        rest.split_once(':')?.1
    } else {
        let after = url.split_once("://")?.1;
        after.split_once('/')?.1
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplitn(3, '/');
    let (repo, owner) = (parts.next()?, parts.next()?);
    (!repo.is_empty() && !owner.is_empty()).then(|| format!("{owner}/{repo}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_from_urls() {
        assert_eq!(
            parse_repository("https://github.com/acme/images.git").as_deref(),
            Some("acme/images")
        );
        assert_eq!(
            parse_repository("git@github.example.com:acme/images.git").as_deref(),
            Some("acme/images")
        );
        assert_eq!(
            parse_repository("https://x@ghe.example/acme/images/").as_deref(),
            Some("acme/images")
        );
        assert_eq!(parse_repository("/srv/git/images"), None);
    }
}
