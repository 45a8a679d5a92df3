//! `imagepipe-tag` against real git repositories built in temp directories, and against a
//! GitHub API test server for the review gate and API tag creation.

#![allow(clippy::unwrap_used)]

use imagepipe_testkit::repo::git;
use imagepipe_testkit::{built, github, step, tls_proxy};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use github::{Fault, TOKEN, pull, review};
use step::{assert_exit, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_imagepipe-tag");

/// A pipeline repository with the tag step's commands.
struct Repo(imagepipe_testkit::repo::Repo);

impl std::ops::Deref for Repo {
    type Target = imagepipe_testkit::repo::Repo;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Repo {
    fn new(config: &str) -> Self {
        Self(imagepipe_testkit::repo::Repo::git_init(config))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        step::command(BIN, self.path(), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs without the review gate (local use), as a developer would.
    fn tag(&self, args: &[&str]) -> Output {
        let mut all = vec!["--no-review-gate"];
        all.extend(args);
        self.run(&all)
    }

    fn tags(&self) -> Vec<String> {
        let out = self.git(&["tag", "-l"]);
        out.lines()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Puts a record of `image@version` into the embedded default store, as publishing does.
    fn publish(&self, image: &str, version: &str) {
        let dir = self
            .path()
            .join(".imagepipe/store")
            .join(image)
            .join(version);
        built::built_as(&dir, image, version, None, &[], None);
    }

    fn message(&self, tag: &str) -> String {
        self.git(&[
            "for-each-ref",
            "--format=%(contents)",
            &format!("refs/tags/{tag}"),
        ])
    }
}

const LAYERS: &str = r#"
[tag]
first_version = "1.0.0"

[[image]]
name = "vendor/debian-12"
template = "images/vendor"
first_version = "12.0.0"

[[image]]
name = "global/debian-12"
template = "images/global"
parent = "vendor/debian-12"
paths = ["images/global/**", "shared/hardening/**"]

[[image]]
name = "product/nginx"
template = "images/nginx"
parent = "global/debian-12"
paths = ["images/nginx/**", "shared/hardening/**"]

[[image]]
name = "service/web"
template = "images/web"
parent = "product/nginx"
parent_version = "^1"
"#;

/// Two images of two chains, tagged in one run.
const TWO_ROOTS: &str = r#"
[tag]
first_version = "1.0.0"

[[image]]
name = "vendor/debian-12"
template = "images/vendor"
first_version = "12.0.0"

[[image]]
name = "global/debian-12"
template = "images/global"
"#;

/// The layered repository with every image released once, as CI and CD release them: CI tags
/// the vendor image, and each published layer's cascade tags its children.
fn released() -> Repo {
    let repo = Repo::new(LAYERS);
    repo.write(".gitignore", ".imagepipe/\n");
    repo.commit(
        "initial layout",
        &[
            "images/vendor/v.pkr.hcl",
            "images/global/g.pkr.hcl",
            "images/nginx/n.pkr.hcl",
            "images/web/w.pkr.hcl",
        ],
    );
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    assert_eq!(repo.tags(), ["vendor/debian-12/v12.0.0"]);
    for from in [
        "vendor/debian-12@12.0.0",
        "global/debian-12@1.0.0",
        "product/nginx@1.0.0",
    ] {
        let (image, version) = from.split_once('@').unwrap();
        repo.publish(image, version);
        assert_exit(&repo.tag(&["--cascade-from", from]), 0);
    }
    assert_eq!(
        repo.tags(),
        [
            "global/debian-12/v1.0.0",
            "product/nginx/v1.0.0",
            "service/web/v1.0.0",
            "vendor/debian-12/v12.0.0"
        ]
    );
    repo
}

#[test]
fn tags_exactly_the_images_whose_paths_changed() {
    let repo = released();
    // Foreign tags and tags that are not versions are ignored.
    repo.git(&["tag", "v9.9.9"]);
    repo.git(&["tag", "release-2020"]);
    repo.git(&["tag", "unknown/image/v3.0.0"]);
    repo.git(&["tag", "global/debian-12/vnext"]);
    repo.commit("docs: readme", &["README.md"]);
    repo.commit("feat(global): auditd", &["images/global/g.pkr.hcl"]);
    repo.commit("fix(web): port", &["images/web/w.pkr.hcl"]);
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    let mut new: Vec<String> = repo
        .tags()
        .into_iter()
        .filter(|t| t.contains("/v1.") && !t.ends_with("v1.0.0"))
        .collect();
    new.sort();
    // The web image changed too, but below global: its tag comes with global's cascade.
    assert_eq!(new, ["global/debian-12/v1.1.0"]);
    assert!(
        stderr(&out).contains("service/web  skipped: 1 commit(s) changed it, but its ancestor global/debian-12 is tagged now"),
        "{}",
        stderr(&out)
    );
    let msg = repo.message("global/debian-12/v1.1.0");
    assert!(msg.starts_with("global/debian-12 v1.1.0\n\n1 commit(s) changed its paths since global/debian-12/v1.0.0 (minor)\n"), "{msg}");
    assert!(
        msg.contains("\nChanges:\n- feat(global): auditd ("),
        "{msg}"
    );
    assert!(
        msg.contains("review: gate skipped with --no-review-gate"),
        "{msg}"
    );
    // Annotated, on HEAD.
    assert_eq!(
        repo.git(&["cat-file", "-t", "global/debian-12/v1.1.0"]),
        "tag"
    );
    assert_eq!(
        repo.git(&["rev-parse", "global/debian-12/v1.1.0^{commit}"]),
        repo.git(&["rev-parse", "HEAD"])
    );

    // A later run no longer sees global tagged in the same run: web's own change is tagged
    // then, unpinned, and built on the newest published global.
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    assert!(repo.tags().contains(&"service/web/v1.0.1".to_string()));

    // Nothing changed since: nothing to tag.
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("nothing to tag"), "{}", stderr(&out));
}

#[test]
fn a_parent_change_tags_only_the_parent_and_shared_paths_tag_every_owner() {
    let repo = released();
    repo.commit("fix(vendor): mirror", &["images/vendor/v.pkr.hcl"]);
    assert_exit(&repo.tag(&["--dry-run"]), 0);
    assert_eq!(repo.tags().len(), 4, "dry run creates nothing");
    assert_exit(&repo.tag(&[]), 0);
    assert!(
        repo.tags()
            .contains(&"vendor/debian-12/v12.0.1".to_string())
    );
    assert_eq!(
        repo.tags().len(),
        5,
        "children are rebuilt by the cascade, not here"
    );

    // A shared path changes two images of one chain: the ancestor is tagged now, and the
    // descendant, whose build needs the new ancestor, by the cascade with its own changes.
    repo.commit("feat!: new CIS benchmark", &["shared/hardening/cis.yml"]);
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("product/nginx  skipped: 1 commit(s) changed it, but its ancestor global/debian-12 is tagged now: the cascade tags it with these changes once global/debian-12 is published"),
        "{}",
        stderr(&out)
    );
    let tags = repo.tags();
    assert!(
        tags.contains(&"global/debian-12/v2.0.0".to_string()),
        "{tags:?}"
    );
    assert_eq!(tags.len(), 6);
    repo.publish("global/debian-12", "2.0.0");
    let out = repo.tag(&["--cascade-from", "global/debian-12@2.0.0"]);
    assert_exit(&out, 0);
    assert!(
        repo.tags().contains(&"product/nginx/v2.0.0".to_string()),
        "the breaking change of its own makes the rebuild a major release: {}",
        stderr(&out)
    );
    let message = repo.message("product/nginx/v2.0.0");
    assert!(message.contains("rebuild on global/debian-12@2.0.0; 1 commit(s) changed its paths since product/nginx/v1.0.0 (major)"), "{message}");
    assert!(
        message.contains("- feat!: new CIS benchmark ("),
        "{message}"
    );
    assert!(
        message.contains("\nparent: global/debian-12@2.0.0\n"),
        "{message}"
    );
}

#[test]
fn merge_commits_and_squash_merges() {
    let repo = released();
    // A merged branch: its commits count, the merge commit itself changes no file.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.commit("feat(nginx): http3", &["images/nginx/n.pkr.hcl"]);
    repo.commit("fix(nginx): typo", &["images/nginx/n.pkr.hcl"]);
    repo.git(&["checkout", "-q", "main"]);
    repo.commit("chore: unrelated", &["ci.yml"]);
    repo.git(&[
        "merge",
        "-q",
        "--no-ff",
        "feature",
        "-m",
        "Merge pull request #5 from acme/feature",
    ]);
    assert_exit(&repo.tag(&[]), 0);
    assert!(
        repo.tags().contains(&"product/nginx/v1.1.0".to_string()),
        "{:?}",
        repo.tags()
    );
    let msg = repo.message("product/nginx/v1.1.0");
    assert!(
        msg.contains("2 commit(s)")
            && msg.contains("feat(nginx): http3")
            && msg.contains("fix(nginx): typo"),
        "{msg}"
    );

    // A squash merge: one commit on main, its subject decides.
    repo.git(&["checkout", "-q", "-b", "squashed"]);
    repo.commit("wip", &["images/web/w.pkr.hcl"]);
    repo.commit("wip 2", &["images/web/w.pkr.hcl"]);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--squash", "squashed"]);
    repo.git(&["commit", "-q", "-m", "feat(web): new landing page (#6)"]);
    assert_exit(&repo.tag(&[]), 0);
    assert!(
        repo.tags().contains(&"service/web/v1.1.0".to_string()),
        "{:?}",
        repo.tags()
    );
}

#[test]
fn existing_tags_are_never_moved() {
    let repo = released();
    repo.commit("fix(web): a", &["images/web/w.pkr.hcl"]);
    // Someone tagged a version by hand on an older commit: it stays, and the next version goes
    // past it instead of colliding with it. (A collision can only come from a concurrent run:
    // see the push and API race tests.)
    let first = repo.git(&["rev-list", "--max-parents=0", "HEAD"]);
    repo.git(&["tag", "-a", "service/web/v1.0.1", "-m", "by hand", &first]);
    let out = repo.tag(&[]);
    assert_exit(&out, 0);
    assert_eq!(
        repo.git(&["rev-parse", "service/web/v1.0.1^{commit}"]),
        first
    );
    assert_eq!(repo.message("service/web/v1.0.1").trim(), "by hand");
    assert_eq!(
        repo.git(&["rev-parse", "service/web/v1.0.2^{commit}"]),
        repo.git(&["rev-parse", "HEAD"])
    );
}

#[test]
fn cascade_tags_children_pinned_to_published_parents() {
    let repo = released();
    repo.commit("fix(vendor): point release", &["images/vendor/v.pkr.hcl"]);
    assert_exit(&repo.tag(&[]), 0);
    let created = |out: &Output| -> Vec<String> {
        stderr(out)
            .lines()
            .filter_map(|l| l.strip_prefix("created "))
            .map(str::to_string)
            .collect()
    };

    // A version that is not published yet cannot be cascaded from: the children's builds
    // would not find their parent.
    let out = repo.tag(&["--cascade-from", "vendor/debian-12@12.0.1"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "--cascade-from vendor/debian-12@12.0.1: that version is not published in file:"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.tags().len(), 5, "nothing was tagged");

    // Published, each level tags only its children, pinned to the parent CD just published;
    // the grandchildren follow when their parents are published in turn.
    repo.publish("vendor/debian-12", "12.0.1");
    let out = repo.tag(&["--cascade-from", "vendor/debian-12@12.0.1"]);
    assert_exit(&out, 0);
    assert_eq!(created(&out), ["global/debian-12/v1.0.1"]);
    assert!(
        stderr(&out).contains("product/nginx  skipped: tagged when its parent global/debian-12 is rebuilt and published (that run continues the cascade)"),
        "{}",
        stderr(&out)
    );
    for (from, child, tag) in [
        (
            "global/debian-12@1.0.1",
            "product/nginx",
            "product/nginx/v1.0.1",
        ),
        ("product/nginx@1.0.1", "service/web", "service/web/v1.0.1"),
    ] {
        let (image, version) = from.split_once('@').unwrap();
        repo.publish(image, version);
        let out = repo.tag(&["--cascade-from", from]);
        assert_exit(&out, 0);
        assert_eq!(created(&out), [tag], "{child}");
    }
    assert!(
        repo.message("global/debian-12/v1.0.1")
            .contains("\nparent: vendor/debian-12@12.0.1\n")
    );
    assert!(
        repo.message("product/nginx/v1.0.1")
            .contains("\nparent: global/debian-12@1.0.1\n")
    );
    assert!(
        repo.message("service/web/v1.0.1")
            .contains("\nparent: product/nginx@1.0.1\n")
    );

    // Running it again is a no-op: the child is already built on the new parent.
    let out = repo.tag(&["--cascade-from", "vendor/debian-12@12.0.1"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("global/debian-12  skipped: global/debian-12/v1.0.1 is already built on vendor/debian-12@12.0.1"), "{}", stderr(&out));
    assert_eq!(repo.tags().len(), 8);

    // A parent version outside a child's requirement stops the cascade there.
    let out = repo.tag(&["--cascade-from", "product/nginx@2.0.0"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(
            "service/web  skipped: product/nginx@2.0.0 does not satisfy its parent_version `^1`"
        ),
        "{}",
        stderr(&out)
    );

    let out = repo.tag(&["--cascade-from", "service/web@1.0.0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("has no descendants"));
}

#[test]
fn a_monorepo_with_25_images() {
    let mut config = String::from("[tag]\nfirst_version = \"1.0.0\"\n");
    for i in 0..25 {
        config.push_str(&format!(
            "[[image]]\nname = \"team{}/app-{i}\"\ntemplate = \"images/app-{i}\"\n",
            i % 5
        ));
    }
    let repo = Repo::new(&config);
    let files: Vec<String> = (0..25)
        .map(|i| format!("images/app-{i}/t.pkr.hcl"))
        .collect();
    repo.commit(
        "initial",
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&repo.tag(&[]), 0);
    assert_eq!(repo.tags().len(), 25);
    repo.commit("fix: 3", &["images/app-3/t.pkr.hcl"]);
    repo.commit(
        "feat: 17",
        &["images/app-17/t.pkr.hcl", "images/app-17/extra.sh"],
    );
    repo.commit("feat!: 24", &["images/app-24/t.pkr.hcl"]);
    repo.commit("fix: 24 again", &["images/app-24/t.pkr.hcl"]);
    assert_exit(
        &repo.tag(&["--image", "team3/app-3,team2/app-17,team4/app-24"]),
        0,
    );
    let mut new: Vec<String> = repo
        .tags()
        .into_iter()
        .filter(|t| !t.ends_with("v1.0.0"))
        .collect();
    new.sort();
    assert_eq!(
        new,
        [
            "team2/app-17/v1.1.0",
            "team3/app-3/v1.0.1",
            "team4/app-24/v2.0.0"
        ]
    );
}

#[test]
fn parse_round_trips_every_tag_this_step_creates() {
    let repo = released();
    repo.commit("fix(vendor): x", &["images/vendor/v.pkr.hcl"]);
    assert_exit(&repo.tag(&[]), 0);
    repo.publish("vendor/debian-12", "12.0.1");
    assert_exit(&repo.tag(&["--cascade-from", "vendor/debian-12@12.0.1"]), 0);
    let tags = repo.tags();
    assert_eq!(tags.len(), 6);
    for t in &tags {
        let out = repo.run(&["parse", t, "--json"]);
        assert_exit(&out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (image, version) = t.rsplit_once("/v").unwrap();
        assert_eq!(
            (v["image"].as_str().unwrap(), v["version"].as_str().unwrap()),
            (image, version)
        );
        let refs = repo.run(&["parse", &format!("refs/tags/{t}")]);
        assert_exit(&refs, 0);
    }
    for bad in [
        "v1.2.3",
        "global/debian-12/v1.2",
        "nope/v1.0.0",
        "Global/v1.0.0",
    ] {
        let out = repo.run(&["parse", bad]);
        assert_exit(&out, 2);
    }
}

fn bare_remote(repo: &Repo) -> tempfile::TempDir {
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    repo.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    remote
}

#[test]
fn push_is_atomic_and_a_lost_race_leaves_nothing_behind() {
    let repo = Repo::new(TWO_ROOTS);
    repo.commit(
        "initial",
        &["images/vendor/v.pkr.hcl", "images/global/g.pkr.hcl"],
    );
    let remote = bare_remote(&repo);
    // Another run pushes one of the tags, on another commit, just before this run's push: the
    // remote's hook lands it, then turns this push away.
    let other = tempfile::tempdir().unwrap();
    git(
        other.path(),
        &["clone", "-q", remote.path().to_str().unwrap(), "."],
    );
    std::fs::write(other.path().join("x"), "x").unwrap();
    git(other.path(), &["add", "x"]);
    git(other.path(), &["commit", "-qm", "other"]);
    git(
        other.path(),
        &["push", "-q", "origin", "HEAD:refs/heads/other"],
    );
    let theirs = git(other.path(), &["rev-parse", "HEAD"]);
    let hook = remote.path().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nenv -u GIT_QUARANTINE_PATH git update-ref refs/tags/global/debian-12/v1.0.0 {theirs}\nrm \"$0\"\nexit 1\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let out = repo.tag(&["--push"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("tag global/debian-12/v1.0.0 was created meanwhile on"),
        "{}",
        stderr(&out)
    );
    assert!(
        repo.tags().is_empty(),
        "local tags of the failed run were removed: {:?}",
        repo.tags()
    );
    let remote_tags = git(remote.path(), &["tag", "-l"]);
    assert_eq!(
        remote_tags, "global/debian-12/v1.0.0",
        "the atomic push sent nothing"
    );

    // Without the conflict, every tag reaches the remote.
    git(remote.path(), &["tag", "-d", "global/debian-12/v1.0.0"]);
    let out = repo.tag(&["--push"]);
    assert_exit(&out, 0);
    assert_eq!(git(remote.path(), &["tag", "-l"]).lines().count(), 2);
}

/// A repository whose HEAD was merged by pull request #12, and a GitHub test server for it.
fn gated(
    reviews: Vec<serde_json::Value>,
    merged: bool,
    base: &str,
) -> (Repo, String, github::Shared, String) {
    let repo = Repo::new(LAYERS);
    let head = repo.commit("feat: first images", &["images/vendor/v.pkr.hcl"]);
    let (url, state) = github::start("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            head.clone(),
            vec![pull(12, "author", merged, base, &head, "headsha")],
        );
        s.reviews.insert(12, reviews);
        writers(&mut s);
    }
    (repo, url, state, head)
}

/// alice, bob and carol may write to the repository, as may the pull requests' author; eve
/// (like anyone else on a public repository) may only read. (GitHub reports the maintain role
/// as `write`.)
fn writers(s: &mut github::Repo) {
    for (user, access) in [
        ("alice", "write"),
        ("bob", "admin"),
        ("carol", "write"),
        ("author", "write"),
    ] {
        s.permissions.insert(user.into(), access.into());
    }
}

fn with_github(repo: &Repo, url: &str, args: &[&str]) -> Output {
    repo.cmd(args)
        .env("GITHUB_API_URL", url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "acme/images")
        .output()
        .unwrap()
}

#[test]
fn gate_passes_with_an_approval_on_the_head() {
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 0);
    assert_eq!(repo.tags(), ["vendor/debian-12/v12.0.0"]);
    assert!(
        repo.message("vendor/debian-12/v12.0.0")
            .contains("review: pull request #12 approved by alice")
    );
    assert!(!stderr(&out).contains(TOKEN), "the token is never printed");
    let log = state.lock().unwrap().log.clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /repos/acme/images/commits/")),
        "{log:?}"
    );
}

#[test]
fn gate_refusals_exit_1_and_create_nothing() {
    let cases: Vec<(Vec<serde_json::Value>, bool, &str, &str)> = vec![
        (
            vec![],
            true,
            "main",
            "0 approving review(s) from people with write access, 1 required",
        ),
        (
            vec![review(1, "author", "APPROVED", "headsha")],
            true,
            "main",
            "the author's own approval does not count",
        ),
        (
            vec![review(1, "eve", "APPROVED", "headsha")],
            true,
            "main",
            "approvals by eve do not count: no write access",
        ),
        (
            vec![
                review(1, "alice", "APPROVED", "headsha"),
                review(2, "bob", "APPROVED", "headsha"),
                review(3, "bob", "CHANGES_REQUESTED", "headsha"),
            ],
            true,
            "main",
            "changes requested by bob",
        ),
        (
            vec![review(1, "alice", "APPROVED", "headsha")],
            false,
            "main",
            "#12 is not merged",
        ),
        (
            vec![review(1, "alice", "APPROVED", "headsha")],
            true,
            "develop",
            "#12 was merged into `develop`, not `main`",
        ),
    ];
    for (reviews, merged, base, want) in cases {
        let (repo, url, _, _) = gated(reviews, merged, base);
        let out = with_github(&repo, &url, &[]);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(want),
            "want {want:?} in {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("no tag was created"));
        assert!(repo.tags().is_empty());
    }
}

#[test]
fn gate_paginates_reviews() {
    // 120 comments, then the approval on page 2 of 100.
    let mut reviews: Vec<_> = (0..120)
        .map(|i| review(i, "carol", "COMMENTED", "headsha"))
        .collect();
    reviews.push(review(500, "alice", "APPROVED", "headsha"));
    let (repo, url, state, _) = gated(reviews, true, "main");
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 0);
    let log = state.lock().unwrap().log.clone();
    assert!(
        log.iter()
            .any(|l| l.contains("/pulls/12/reviews?per_page=100&page=2")),
        "{log:?}"
    );
}

#[test]
fn gate_errors_are_infrastructure_errors() {
    let (repo, url, _, _) = gated(vec![], true, "main");
    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", "wrong-token")
        .env("GITHUB_REPOSITORY", "acme/images")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("401 Bad credentials; check the token"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("wrong-token"));

    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "acme/other")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("404 Not Found; check the repository name"),
        "{}",
        stderr(&out)
    );

    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_REPOSITORY", "acme/images")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("needs a GitHub token"),
        "{}",
        stderr(&out)
    );
    assert!(repo.tags().is_empty());
}

#[test]
fn gate_waits_out_rate_limits() {
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    state.lock().unwrap().faults.extend([
        Fault::RetryAfter(1),
        Fault::Exhausted(0),
        Fault::Status(502),
    ]);
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 0);
    assert_eq!(repo.tags(), ["vendor/debian-12/v12.0.0"]);
    let log = state.lock().unwrap().log.clone();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("/rules/branches/"))
            .count(),
        4,
        "three refusals, then the answer: {log:?}"
    );
}

#[test]
fn tags_through_the_api() {
    let (repo, url, state, head) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 0);
    assert!(repo.tags().is_empty(), "API mode creates no local tags");
    let s = state.lock().unwrap();
    let (kind, sha) = s.refs["refs/tags/vendor/debian-12/v12.0.0"].clone();
    assert_eq!(kind, "tag");
    let obj = &s.tag_objects[&sha];
    assert_eq!(obj["object"]["sha"], head.as_str());
    assert!(
        obj["message"]
            .as_str()
            .unwrap()
            .contains("review: pull request #12 approved by alice")
    );
    drop(s);

    // Again: the tag exists on the same commit, a no-op.
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 0);
    assert_eq!(state.lock().unwrap().refs.len(), 1);
}

#[test]
fn api_conflicts_roll_back_what_the_run_created() {
    let repo = Repo::new(TWO_ROOTS);
    let head = repo.commit(
        "feat: images",
        &["images/vendor/v.pkr.hcl", "images/global/g.pkr.hcl"],
    );
    let (url, state) = github::start("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            head.clone(),
            vec![pull(3, "author", true, "main", &head, "h")],
        );
        s.reviews
            .insert(3, vec![review(1, "alice", "APPROVED", "h")]);
        writers(&mut s);
        // Another run created global's tag on another commit.
        s.refs.insert(
            "refs/tags/global/debian-12/v1.0.0".into(),
            ("commit".into(), "f".repeat(40)),
        );
    }
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("tag global/debian-12/v1.0.0 was created meanwhile on ffff"),
        "{}",
        stderr(&out)
    );
    let refs: Vec<String> = state.lock().unwrap().refs.keys().cloned().collect();
    assert_eq!(
        refs,
        ["refs/tags/global/debian-12/v1.0.0"],
        "vendor's tag, created first, was deleted again"
    );
}

#[test]
fn help() {
    let repo = Repo::new("");
    insta::assert_snapshot!("help", step::help(BIN, repo.path()));
}

#[test]
fn dry_run_plan() {
    let repo = released();
    repo.commit("feat(global): auditd", &["images/global/g.pkr.hcl"]);
    repo.commit("fix(global): auditd rules", &["images/global/g.pkr.hcl"]);
    let out = repo.tag(&["--dry-run", "--json"]);
    assert_exit(&out, 0);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{40}", "[COMMIT]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[SHORT]");
    settings.bind(|| {
        insta::assert_snapshot!("dry_run", stderr(&out));
        insta::assert_snapshot!("dry_run_json", String::from_utf8_lossy(&out.stdout));
    });
    let _: PathBuf = repo.path().to_path_buf();
}

#[test]
fn action_yml_matches_the_cli_and_the_outputs() {
    let declared = step::check_action(
        concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml"),
        BIN,
        &["IMAGEPIPE_GITHUB_TOKEN"],
    );
    let repo = released();
    repo.commit("fix(web): x", &["images/web/w.pkr.hcl"]);
    let gh = imagepipe_testkit::on_github!(repo.cmd(&["--no-review-gate"]), repo.path());
    let out = &gh.out;
    assert_exit(out, 0);
    let outputs = &gh.outputs;
    // Every output but parse's image and version, which the next run writes.
    let plan_outputs: Vec<String> = declared
        .iter()
        .filter(|o| *o != "image" && *o != "version")
        .cloned()
        .collect();
    assert_eq!(outputs.keys().cloned().collect::<Vec<_>>(), plan_outputs);
    assert_eq!(outputs["tags"], "service/web/v1.0.1");
    assert_eq!(outputs["count"], "1");
    let plan: serde_json::Value = serde_json::from_str(&outputs["tags-json"]).unwrap();
    assert_eq!(plan[0]["tag"], "service/web/v1.0.1");
    let summary = gh.summary.clone();
    assert!(
        summary.contains("| `service/web` | 1.0.0 | 1.0.1 | `service/web/v1.0.1` (new) |"),
        "{summary}"
    );
    assert!(
        stderr(out).contains("::warning title=imagepipe-tag::the review gate is skipped"),
        "{}",
        stderr(out)
    );
}

#[test]
fn the_action_parses_a_tag_into_outputs() {
    let repo = released();
    let before = repo.tags();
    // The tag action with only `parse` set: CD on a tag push, with no token and the
    // checkout's tags unfetched.
    let mut cmd = repo.cmd(&[]);
    cmd.env("IMAGEPIPE_PARSE", "refs/tags/global/debian-12/v1.4.0");
    let gh = imagepipe_testkit::on_github!(cmd, repo.path());
    assert_exit(&gh.out, 0);
    assert_eq!(
        gh.outputs.keys().cloned().collect::<Vec<_>>(),
        ["image", "version"]
    );
    assert_eq!(gh.outputs["image"], "global/debian-12");
    assert_eq!(gh.outputs["version"], "1.4.0");
    assert_eq!(repo.tags(), before, "nothing was tagged");

    let mut cmd = repo.cmd(&[]);
    cmd.env("IMAGEPIPE_PARSE", "global/debian-12/v1.4");
    let scratch = tempfile::tempdir().unwrap();
    let gh = imagepipe_testkit::on_github!(cmd, scratch.path());
    assert_exit(&gh.out, 2);
    assert!(gh.outputs.is_empty());
}

/// `released()` with one more change, pushed with its tags to a bare remote that serves
/// shallow and by-commit fetches as GitHub does.
fn released_with_remote() -> (Repo, tempfile::TempDir) {
    let repo = released();
    repo.commit("feat(global): auditd", &["images/global/g.pkr.hcl"]);
    let remote = bare_remote(&repo);
    git(
        remote.path(),
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
    );
    repo.git(&["push", "-q", "origin", "main", "--tags"]);
    (repo, remote)
}

fn file_url(dir: &Path) -> String {
    // `--depth` is ignored for plain paths: only a URL makes a real shallow clone.
    format!("file://{}", dir.display())
}

fn plan_json(out: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["planned"].clone()
}

#[test]
fn ci_checkouts_plan_exactly_what_a_full_clone_plans() {
    let (repo, remote) = released_with_remote();
    let full = repo.tag(&["--dry-run", "--json"]);
    assert_exit(&full, 0);
    let want = plan_json(&full);
    assert_eq!(want[0]["tag"], "global/debian-12/v1.1.0");
    assert_eq!(want.as_array().unwrap().len(), 1);

    // actions/checkout's default (`--depth 1`, no tags), and a full clone without tags.
    let scratch = tempfile::tempdir().unwrap();
    for (name, args, fetched) in [
        (
            "shallow",
            vec!["clone", "-q", "--depth", "1", "--no-tags"],
            "this checkout is a shallow clone: fetching the whole history, 4 missing tag(s) from `origin`",
        ),
        (
            "tagless",
            vec!["clone", "-q", "--no-tags"],
            "this checkout lacks tags its remote has: fetching 4 missing tag(s) from `origin`",
        ),
    ] {
        let dir = scratch.path().join(name);
        let mut args = args.clone();
        let url = file_url(remote.path());
        args.extend([url.as_str(), dir.to_str().unwrap()]);
        git(scratch.path(), &args);
        let ci = Repo(imagepipe_testkit::repo::Repo::from_dir(
            tempfile::TempDir::new_in(scratch.path()).unwrap(),
        ));
        std::fs::remove_dir(ci.path()).unwrap();
        std::fs::rename(&dir, ci.path()).unwrap();
        let out = ci.tag(&["--dry-run", "--json"]);
        assert_exit(&out, 0);
        assert!(stderr(&out).contains(fetched), "{name}: {}", stderr(&out));
        assert_eq!(plan_json(&out), want, "{name}");
        assert_eq!(ci.git(&["rev-parse", "--is-shallow-repository"]), "false");

        // Pushing from it creates the tag a full clone would have, and nothing else.
        let out = ci.tag(&["--push"]);
        assert_exit(&out, 0);
        let on_remote = git(remote.path(), &["tag", "-l"]);
        assert_eq!(on_remote.lines().count(), 5, "{on_remote}");
        assert!(on_remote.contains("global/debian-12/v1.1.0"));
        git(remote.path(), &["tag", "-d", "global/debian-12/v1.1.0"]);
    }
}

#[test]
fn an_incomplete_checkout_that_cannot_be_completed_tags_nothing() {
    let (_repo, remote) = released_with_remote();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("ci");
    git(
        scratch.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            &file_url(remote.path()),
            dir.to_str().unwrap(),
        ],
    );
    let run = |args: &[&str]| {
        let mut all = vec!["--no-review-gate"];
        all.extend(args);
        step::command(BIN, &dir, &all).output().unwrap()
    };

    // The remote cannot be reached: the tags it may hold cannot be known.
    git(
        &dir,
        &[
            "remote",
            "set-url",
            "origin",
            "file:///nonexistent/repo.git",
        ],
    );
    let out = run(&["--push"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot list the tags of remote `origin`"),
        "{}",
        stderr(&out)
    );

    // No remote at all: a shallow clone cannot be completed, with the fix named.
    git(&dir, &["remote", "remove", "origin"]);
    for args in [&["--dry-run"][..], &["--push"]] {
        let out = run(args);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("is a shallow clone and has no remote `origin`"),
            "{err}"
        );
        assert!(err.contains("`fetch-depth: 0`"), "{err}");
        assert!(err.contains("git fetch --unshallow --tags"), "{err}");
    }
    assert_eq!(git(&dir, &["tag", "-l"]), "", "nothing was tagged");
    assert_eq!(git(remote.path(), &["tag", "-l"]).lines().count(), 4);
}

#[test]
fn a_local_tag_that_differs_from_the_remote_stops_the_plan() {
    let (repo, remote) = released_with_remote();
    // Someone moved a release tag in their clone.
    repo.git(&["tag", "-f", "-a", "global/debian-12/v1.0.0", "-m", "moved"]);
    let out = repo.tag(&["--dry-run"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("tag global/debian-12/v1.0.0 is on commit")
            && stderr(&out).contains("published tags are never moved"),
        "{}",
        stderr(&out)
    );
    let _ = remote;
}

#[test]
fn a_cd_checkout_of_a_lightweight_tag_gets_the_annotated_tags() {
    let (repo, remote) = released_with_remote();
    let tag = "vendor/debian-12/v12.0.0";
    let sha = repo.git(&["rev-parse", &format!("{tag}^{{commit}}")]);
    // What actions/checkout does for a tag push: the tag arrives as a lightweight ref.
    let cd = tempfile::tempdir().unwrap();
    git(cd.path(), &["init", "-q"]);
    git(
        cd.path(),
        &["remote", "add", "origin", &file_url(remote.path())],
    );
    git(
        cd.path(),
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--depth=1",
            "origin",
            &format!("+{sha}:refs/tags/{tag}"),
        ],
    );
    git(cd.path(), &["checkout", "-q", tag]);
    assert_eq!(git(cd.path(), &["cat-file", "-t", tag]), "commit");
    std::fs::write(cd.path().join(".gitignore"), ".imagepipe/\n").unwrap();

    let out = step::command(BIN, cd.path(), &["--no-review-gate", "--dry-run"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("fetching the whole history, 3 missing tag(s), 1 annotated tag(s) held here as lightweight refs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(git(cd.path(), &["cat-file", "-t", tag]), "tag");
}

#[test]
fn gate_counts_what_github_counts() {
    // An outsider's change request does not block; it is reported.
    let (repo, url, _, _) = gated(
        vec![
            review(1, "alice", "APPROVED", "headsha"),
            review(2, "eve", "CHANGES_REQUESTED", "headsha"),
        ],
        true,
        "main",
    );
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("changes requested by eve are not counted: no write access"),
        "{}",
        stderr(&out)
    );

    // An approval GitHub dismissed (its state changed in place) counts for nothing.
    let (repo, url, state, _) = gated(vec![review(1, "alice", "APPROVED", "oldsha")], true, "main");
    state.lock().unwrap().dismiss(12, 1);
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 1);
    assert!(repo.tags().is_empty());

    // An approval of an earlier head that GitHub kept counts, as it does for GitHub ...
    let (repo, url, state, _) = gated(vec![review(1, "alice", "APPROVED", "oldsha")], true, "main");
    assert_exit(&with_github(&repo, &url, &[]), 0);
    // ... unless the branch's ruleset requires an approval of the most recent push,
    repo.git(&["tag", "-d", "vendor/debian-12/v12.0.0"]);
    state.lock().unwrap().rules = vec![github::pull_request_rule(1, false, true)];
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("most recent push"),
        "{}",
        stderr(&out)
    );
    // ... or the pipeline asks for approvals of the head commit only.
    state.lock().unwrap().rules.clear();
    let config = std::fs::read_to_string(repo.path().join("imagepipe.toml")).unwrap();
    repo.write(
        "imagepipe.toml",
        &config.replace("[tag]\n", "[tag]\nstale_approvals = \"head\"\n"),
    );
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("stale approvals (on an older commit) by alice"),
        "{}",
        stderr(&out)
    );

    // The branch's rulesets can ask for more approvals than the pipeline does.
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    state.lock().unwrap().rules = vec![github::pull_request_rule(2, true, false)];
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("1 approving review(s) from people with write access, 2 required"),
        "{}",
        stderr(&out)
    );
    // Classic protection is read where the token may (an administrator's).
    state.lock().unwrap().rules.clear();
    state.lock().unwrap().protection = Some(serde_json::json!({
        "required_pull_request_reviews": {"dismiss_stale_reviews": true, "required_approving_review_count": 2,
                                          "require_code_owner_reviews": false, "require_last_push_approval": false}
    }));
    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", github::ADMIN_TOKEN)
        .env("GITHUB_REPOSITORY", "acme/images")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("2 required"), "{}", stderr(&out));
}

/// A repository with a first release, then a reviewed merge and a direct push after it.
fn two_commits_since_release() -> (Repo, String, github::Shared, [String; 2]) {
    let repo = Repo::new(LAYERS);
    let first = repo.commit("feat: first images", &["images/vendor/v.pkr.hcl"]);
    repo.git(&[
        "tag",
        "-a",
        "-m",
        "vendor/debian-12 v12.0.0\n",
        "vendor/debian-12/v12.0.0",
    ]);
    let reviewed = repo.commit("fix: reviewed", &["images/vendor/v.pkr.hcl"]);
    let direct = repo.commit("fix: pushed directly", &["images/vendor/v.pkr.hcl"]);
    let (url, state) = github::start("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.commits.extend([first, direct.clone()]);
        s.pulls_by_commit.insert(
            reviewed.clone(),
            vec![pull(20, "author", true, "main", &reviewed, &reviewed)],
        );
        s.reviews
            .insert(20, vec![review(1, "alice", "APPROVED", &reviewed)]);
        writers(&mut s);
    }
    (repo, url, state, [reviewed, direct])
}

#[test]
fn every_commit_a_tag_releases_is_gated() {
    // HEAD is a commit pushed directly, behind a reviewed one: refused, by its id.
    let (repo, url, state, [_, direct]) = two_commits_since_release();
    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "acme/images")
        .env("IMAGEPIPE_GITHUB_ASSOCIATION_WAIT", "2s")
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains(&format!(
            "commit {}: commit {direct} is in no pull request",
            &direct[..12]
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.tags(), ["vendor/debian-12/v12.0.0"]);

    // Once it went through a reviewed pull request too, both are gated and the tag is made.
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            direct.clone(),
            vec![pull(21, "author", true, "main", &direct, &direct)],
        );
        s.reviews
            .insert(21, vec![review(2, "bob", "APPROVED", &direct)]);
        // GitHub associates a just-merged commit a little later.
        s.lag.insert(direct.clone(), 2);
        s.log.clear();
    }
    let out = with_github(&repo, &url, &[]);
    assert_exit(&out, 0);
    assert!(
        repo.message("vendor/debian-12/v12.0.1")
            .contains("review: pull requests #20 (alice), #21 (bob) approved"),
        "{}",
        repo.message("vendor/debian-12/v12.0.1")
    );
    let asked = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.contains(&format!("/commits/{direct}/pulls")))
        .count();
    assert_eq!(asked, 3, "asked again until GitHub associated it");
}

#[test]
fn rate_limits_permissions_redirects_and_enterprise_servers() {
    // A secondary limit without `retry-after`, and a bare 429: waited out, not failed.
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    state
        .lock()
        .unwrap()
        .faults
        .extend([Fault::Secondary, Fault::BareTooMany]);
    let out = repo
        .cmd(&[])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "acme/images")
        .env("IMAGEPIPE_GITHUB_RATE_LIMIT_WAIT", "100ms")
        .output()
        .unwrap();
    assert_exit(&out, 0);

    // A token that may not write tags: a 403 that names the permission, and nothing made.
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    let out = repo
        .cmd(&["--via", "github"])
        .env("GITHUB_API_URL", &url)
        .env("GITHUB_TOKEN", github::READ_TOKEN)
        .env("GITHUB_REPOSITORY", "acme/images")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("403 Resource not accessible by integration; the token lacks a permission (GitHub names: contents=write)"),
        "{}",
        stderr(&out)
    );
    assert!(state.lock().unwrap().refs.is_empty());

    // A renamed repository: reads and writes follow GitHub's redirects, methods kept.
    let (repo, url, state, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    {
        let mut s = state.lock().unwrap();
        s.name = "os-images".into();
        s.renamed_from = Some("images".into());
    }
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 0);
    let s = state.lock().unwrap();
    assert!(s.refs.contains_key("refs/tags/vendor/debian-12/v12.0.0"));
    assert!(
        s.log
            .iter()
            .any(|l| l.starts_with("POST /repositories/4242/git/refs")),
        "{:?}",
        s.log
    );
    drop(s);

    // GitHub Enterprise Server: the API under /api/v3, pages linked under it.
    let repo = Repo::new(LAYERS);
    let head = repo.commit("feat: first images", &["images/vendor/v.pkr.hcl"]);
    let (url, state) = github::start_ghes("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            head.clone(),
            vec![pull(12, "author", true, "main", &head, "headsha")],
        );
        let mut reviews: Vec<_> = (0..120)
            .map(|i| review(i, "carol", "COMMENTED", "headsha"))
            .collect();
        reviews.push(review(500, "alice", "APPROVED", "headsha"));
        s.reviews.insert(12, reviews);
        writers(&mut s);
    }
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 0);
    let s = state.lock().unwrap();
    assert!(
        s.log
            .iter()
            .any(|l| l
                .starts_with("GET /api/v3/repositories/4242/pulls/12/reviews?per_page=100&page=2")),
        "{:?}",
        s.log
    );
    assert!(s.refs.contains_key("refs/tags/vendor/debian-12/v12.0.0"));
}

#[test]
fn api_writes_are_paced_and_a_failed_undo_is_reported() {
    let repo = Repo::new(TWO_ROOTS);
    let head = repo.commit(
        "feat: images",
        &["images/vendor/v.pkr.hcl", "images/global/g.pkr.hcl"],
    );
    let (url, state) = github::start("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            head.clone(),
            vec![pull(3, "author", true, "main", &head, "h")],
        );
        s.reviews
            .insert(3, vec![review(1, "alice", "APPROVED", "h")]);
        writers(&mut s);
    }
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 0);
    let writes = state.lock().unwrap().writes.clone();
    assert_eq!(writes.len(), 4, "two tag objects and two refs");
    for pair in writes.windows(2) {
        assert!(
            pair[1] - pair[0] >= std::time::Duration::from_secs(1),
            "GitHub asks for a second between writes"
        );
    }

    // A conflict whose undo fails: the tag left behind is named, not claimed removed.
    let repo = Repo::new(TWO_ROOTS);
    let head = repo.commit(
        "feat: images",
        &["images/vendor/v.pkr.hcl", "images/global/g.pkr.hcl"],
    );
    let (url, state) = github::start("acme", "images");
    {
        let mut s = state.lock().unwrap();
        s.pulls_by_commit.insert(
            head.clone(),
            vec![pull(3, "author", true, "main", &head, "h")],
        );
        s.reviews
            .insert(3, vec![review(1, "alice", "APPROVED", "h")]);
        writers(&mut s);
        s.refs.insert(
            "refs/tags/global/debian-12/v1.0.0".into(),
            ("commit".into(), "f".repeat(40)),
        );
        s.refuse_deletes = true;
    }
    let out = with_github(&repo, &url, &["--via", "github"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("could not be removed, delete them by hand")
            && stderr(&out).contains("vendor/debian-12/v12.0.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn github_behind_a_private_ca_is_trusted_through_the_ca_bundle_only() {
    let (repo, url, _, _) = gated(
        vec![review(1, "alice", "APPROVED", "headsha")],
        true,
        "main",
    );
    let proxy = tls_proxy::start_with_private_ca(&url);
    std::fs::write(repo.path().join("corp-ca.pem"), &proxy.cert_pem).unwrap();
    let run = |extra: Option<(&str, String)>| {
        let mut cmd = repo.cmd(&[]);
        cmd.env("GITHUB_API_URL", &proxy.url)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "acme/images");
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // Not trusted by default: refused, with the way to trust it.
    let out = run(None);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("IMAGEPIPE_CA_BUNDLE"),
        "{}",
        stderr(&out)
    );
    assert!(repo.tags().is_empty());
    // The process-wide bundle reaches the GitHub client ...
    let bundle = repo.path().join("corp-ca.pem").display().to_string();
    assert_exit(&run(Some(("IMAGEPIPE_CA_BUNDLE", bundle))), 0);
    // ... and so does the pipeline's own setting for GitHub.
    repo.git(&["tag", "-d", "vendor/debian-12/v12.0.0"]);
    let config = std::fs::read_to_string(repo.path().join("imagepipe.toml")).unwrap();
    repo.write(
        "imagepipe.toml",
        &config.replace("[tag]\n", "[tag]\ngithub_ca_bundle = \"corp-ca.pem\"\n"),
    );
    assert_exit(&run(None), 0);
}
