//! Walking history once for all images.
//!
//! A monorepo with hundreds of images must not run `git log` once per image. One walk lists
//! every commit between HEAD and the images' last tags with its parents and changed files; which
//! commits are "since the last tag" of each image is then worked out in memory by propagating
//! reachability from each tag commit to its ancestors, in topological order.

use std::collections::HashMap;
use std::path::Path;

use super::{GitError, git_bytes};

/// One commit of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: String,
    pub parents: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Files changed relative to the first parent; empty for merge commits, whose changes are
    /// the commits they merge. Renames count as a delete and an add, so moving a file out of an
    /// image's directory changes that image too.
    pub files: Vec<String>,
}

/// Lists the commits reachable from `tips` and not from `exclude`, children before parents.
pub fn walk(dir: &Path, tips: &[&str], exclude: &[&str]) -> Result<Vec<Commit>, GitError> {
    let mut args: Vec<String> = [
        "log",
        "-z",
        "--topo-order",
        "--no-renames",
        "--name-only",
        "--format=%x1e%H %P%x1f%s%x1f%b%x1f",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    // Into a file, not a pipe: on a large history the pipe alone costs git a third more time.
    let spawn = |source| GitError::Spawn {
        dir: dir.to_path_buf(),
        source,
    };
    let out = tempfile::NamedTempFile::new().map_err(spawn)?;
    args.push(format!("--output={}", out.path().display()));
    args.extend(tips.iter().map(ToString::to_string));
    args.extend(exclude.iter().map(|e| format!("^{e}")));
    args.push("--".into());
    git_bytes(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let bytes = std::fs::read(out.path()).map_err(spawn)?;
    Ok(parse_log(&bytes))
}

/// The files that differ between the merge base of `base` and HEAD, and HEAD: what a pull
/// request onto `base` changes, as GitHub lists it.
pub fn changed_since(dir: &Path, base: &str) -> Result<Vec<String>, GitError> {
    let range = format!("{base}...HEAD");
    let out = git_bytes(
        dir,
        &[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            "--end-of-options",
            &range,
            "--",
        ],
    )?;
    Ok(String::from_utf8_lossy(&out)
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect())
}

/// Parses `git log -z --name-only --format=%x1e%H %P%x1f%s%x1f%b%x1f`.
pub fn parse_log(out: &[u8]) -> Vec<Commit> {
    let text = String::from_utf8_lossy(out);
    let mut commits = Vec::new();
    for record in text.split('\x1e').filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(4, '\x1f');
        let (Some(head), Some(subject), Some(body), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let mut ids = head.split(' ').filter(|s| !s.is_empty());
        let Some(id) = ids.next() else { continue };
        let files = rest
            .trim_start_matches('\0')
            .trim_start_matches('\n')
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        commits.push(Commit {
            id: id.to_string(),
            parents: ids.map(str::to_string).collect(),
            subject: subject.to_string(),
            body: body.trim_end().to_string(),
            files,
        });
    }
    commits
}

/// For each commit of a topologically ordered walk, which of the `starts` (commit ids) reach
/// it: bit `i` of a commit's mask is set when `starts[i]` is the commit or one of its
/// descendants.
pub fn reachability(commits: &[Commit], starts: &[&str]) -> Vec<Vec<u64>> {
    let words = starts.len().div_ceil(64).max(1);
    let index: HashMap<&str, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let mut masks = vec![vec![0u64; words]; commits.len()];
    for (bit, start) in starts.iter().enumerate() {
        if let Some(&i) = index.get(start) {
            masks[i][bit / 64] |= 1 << (bit % 64);
        }
    }
    // Children come before parents, so one forward pass carries every bit to all ancestors.
    for i in 0..commits.len() {
        if masks[i].iter().all(|w| *w == 0) {
            continue;
        }
        let mask = masks[i].clone();
        for p in &commits[i].parents {
            if let Some(&j) = index.get(p.as_str()) {
                for (w, m) in masks[j].iter_mut().zip(&mask) {
                    *w |= m;
                }
            }
        }
    }
    masks
}

/// Whether bit `i` is set in a mask.
pub fn has_bit(mask: &[u64], i: usize) -> bool {
    mask.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_log_output() {
        let out = b"\x1eccc bbb\x1fempty\x1f\x1f\0\x1ebbb aaa\x1ffeat: two files\x1fbody line\n\x1f\0\na/x\0b\0\x1eaaa\x1froot\x1f\x1f\0";
        let c = parse_log(out);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].id.as_str(), c[0].parents.as_slice(), c[0].files.len()),
            ("ccc", &["bbb".to_string()][..], 0)
        );
        assert_eq!(c[1].files, ["a/x", "b"]);
        assert_eq!(c[1].body, "body line");
        assert!(c[2].parents.is_empty());
    }

    #[test]
    fn reachability_through_merges() {
        // m merges b into a; t1 tags a, t2 tags the root r.
        //   r ── a ── m (HEAD)
        //    \── b ──/
        let c = |id: &str, parents: &[&str]| Commit {
            id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            subject: String::new(),
            body: String::new(),
            files: vec![],
        };
        let commits = vec![
            c("m", &["a", "b"]),
            c("b", &["r"]),
            c("a", &["r"]),
            c("r", &[]),
        ];
        let masks = reachability(&commits, &["m", "a", "r"]);
        let bits = |i: usize| {
            (0..3)
                .filter(|b| has_bit(&masks[i], *b))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(0), [0]);
        assert_eq!(bits(1), [0]);
        assert_eq!(bits(2), [0, 1]);
        assert_eq!(bits(3), [0, 1, 2]);
    }
}
