//! A throwaway pipeline repository: a temporary directory with an `imagepipe.toml`, optionally
//! a git repository, and the git calls the tests make in it. Each step's tests wrap it with the
//! commands of their own step.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in `dir` with a fixed identity and no signing (a developer's global git
/// configuration must not change what a test sees); returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.com"])
        .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[derive(Debug)]
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A directory holding `config` as its `imagepipe.toml`, not yet a git repository.
    pub fn new(config: &str) -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.write("imagepipe.toml", config);
        repo
    }

    /// A repository in `dir`, as it is (a clone moved there, say).
    pub fn from_dir(dir: tempfile::TempDir) -> Self {
        Self { dir }
    }

    /// [`Repo::new`], made a git repository on `main`.
    pub fn git_init(config: &str) -> Self {
        let repo = Self::new(config);
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel`, making its directories.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }

    /// Appends `message` to each of `files` and commits them with it; returns the commit id.
    pub fn commit(&self, message: &str, files: &[&str]) -> String {
        for f in files {
            let p = self.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let old = std::fs::read_to_string(&p).unwrap_or_default();
            std::fs::write(&p, format!("{old}{message}\n")).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}
