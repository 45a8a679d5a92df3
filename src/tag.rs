//! Which images get which new version, and the tags that say so.
//!
//! - Changes (CI after a merge): each image whose watched paths changed since its last release
//!   tag gets the next version by the conventional-commit rules in [`crate::versioning`].
//! - Cascade (CD after publishing a parent): every descendant gets a patch release pinned to its
//!   parent's new version (`parent: <image>@<version>` in the tag message), parents first.
//!
//! Release tags are those without a pre-release part. Pre-release tags (`…/v1.3.0-rc.1`, made
//! by hand) build like any other tag but are ignored here: they never serve as the last version,
//! and imagepipe-tag never creates them.

use std::collections::HashMap;
use std::path::Path;

use std::str::FromStr as _;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use semver::Version;
use serde::Serialize;

use crate::config::{Config, Image};
use crate::git::{self, GitError, history, tags::TagRef};
use crate::image::{ImageName, ImageRef};
use crate::versioning::{Bump, bump_for, effective_bump, next_version};

#[derive(Debug, thiserror::Error)]
pub enum TagPlanError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("image `{image}`: watched path `{pattern}` is not a valid glob: {reason}")]
    Glob {
        image: ImageName,
        pattern: String,
        reason: String,
    },
    #[error(
        "tag {tag} already exists on commit {existing}, not on {commit}; a published tag is never moved"
    )]
    Moved {
        tag: String,
        existing: String,
        commit: String,
    },
    #[error("--cascade-from {0}: the image has no descendants in imagepipe.toml")]
    NoDescendants(ImageRef),
    #[error(transparent)]
    History(#[from] git::checkout::HistoryError),
    #[error(
        "--cascade-from {image}: that version is not published in {store}, so the builds of the \
         tags this cascade would create could not find their parent; cascade after \
         imagepipe-publish has published it"
    )]
    ParentNotPublished { image: ImageRef, store: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Completes a CI checkout before planning: the whole history, and every image tag the remote
/// holds (see [`git::checkout`]). `note` hears what was fetched.
pub fn complete_history(
    config: &Config,
    dir: &Path,
    remote: &str,
    note: &dyn Fn(&str),
) -> Result<git::checkout::Completion, TagPlanError> {
    let is_image_tag = |name: &str| {
        config
            .tag_format
            .parse_tag(name)
            .is_ok_and(|r| config.image(r.name.as_str()).is_ok())
    };
    Ok(git::checkout::ensure_complete(
        dir,
        remote,
        &is_image_tag,
        note,
    )?)
}

/// Refuses a cascade from a version the store does not hold.
pub async fn check_published(
    store: &dyn crate::store::Store,
    from: &ImageRef,
) -> Result<(), TagPlanError> {
    match store.fetch_record(from).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::VersionNotFound { .. }) => {
            Err(TagPlanError::ParentNotPublished {
                image: from.clone(),
                store: store.location(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// One tag to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub image: ImageName,
    #[serde(serialize_with = "ser_opt_version")]
    pub previous: Option<Version>,
    #[serde(serialize_with = "ser_version")]
    pub version: Version,
    pub tag: String,
    pub commit: String,
    pub reason: String,
    /// The commits that made this version, newest first.
    pub commits: Vec<Change>,
    #[serde(serialize_with = "ser_opt_ref")]
    pub parent: Option<ImageRef>,
    /// The tag exists already on this commit: creating it is a no-op.
    pub exists: bool,
}

impl Planned {
    /// A tag of `version` for `image` on `commit`; changelog and parent are filled in after.
    fn new(
        config: &Config,
        image: &Image,
        previous: Option<Version>,
        version: Version,
        commit: &str,
        reason: String,
    ) -> Self {
        Self {
            tag: config.tag_format.render(&image.name, &version),
            image: image.name.clone(),
            previous,
            version,
            commit: commit.to_string(),
            reason,
            commits: Vec::new(),
            parent: None,
            exists: false,
        }
    }
}

fn ser_version<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
fn ser_opt_version<S: serde::Serializer>(v: &Option<Version>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
fn ser_opt_ref<S: serde::Serializer>(v: &Option<ImageRef>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// One commit of a changelog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Abbreviated commit id.
    pub id: String,
    /// The full id, for the review gate.
    #[serde(skip)]
    pub sha: String,
    pub subject: String,
}

/// An image skipped by a cascade, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub image: ImageName,
    pub reason: String,
}

/// The images' release tags, newest last, from the repository's tags. Tags of images not in the
/// config, and tags that do not parse, are not image versions and are ignored.
pub fn releases(config: &Config, tags: &[TagRef]) -> HashMap<ImageName, Vec<(Version, TagRef)>> {
    let mut out: HashMap<ImageName, Vec<(Version, TagRef)>> = HashMap::new();
    for t in tags {
        let Ok(r) = config.tag_format.parse_tag(&t.name) else {
            continue;
        };
        if !r.version.pre.is_empty() || config.image(r.name.as_str()).is_err() {
            continue;
        }
        out.entry(r.name).or_default().push((r.version, t.clone()));
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

fn first_version(config: &Config, image: &Image) -> Version {
    image
        .first_version
        .clone()
        .unwrap_or_else(|| config.tag.first_version.clone())
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One glob set over every image's watched paths, and the image (index in `scope`) of each glob.
fn watched_paths(scope: &[&Image]) -> Result<(GlobSet, Vec<usize>), TagPlanError> {
    let mut globs = GlobSetBuilder::new();
    let mut glob_image = Vec::new();
    for (i, img) in scope.iter().enumerate() {
        for pattern in &img.paths {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| TagPlanError::Glob {
                    image: img.name.clone(),
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
            globs.add(glob);
            glob_image.push(i);
        }
    }
    let globs = globs.build().map_err(|e| TagPlanError::Glob {
        image: scope.first().map_or_else(
            || ImageName::from_str("none").expect("a valid name"),
            |i| i.name.clone(),
        ),
        pattern: String::new(),
        reason: e.to_string(),
    })?;
    Ok((globs, glob_image))
}

/// The images of `scope` whose watched paths hold any of `files` (repository-relative), in
/// `scope`'s order: what a pull request changes.
pub fn images_touched<'a>(
    scope: &[&'a Image],
    files: &[String],
) -> Result<Vec<&'a Image>, TagPlanError> {
    let (globs, glob_image) = watched_paths(scope)?;
    let mut hit = vec![false; scope.len()];
    for f in files {
        for g in globs.matches(f) {
            hit[glob_image[g]] = true;
        }
    }
    Ok(scope
        .iter()
        .zip(hit)
        .filter_map(|(img, hit)| hit.then_some(*img))
        .collect())
}

/// What changed in one image since its last release tag.
#[derive(Debug)]
struct Changes<'a> {
    image: &'a Image,
    last: Option<&'a (Version, TagRef)>,
    /// The commits that touched its paths, newest first.
    commits: Vec<Change>,
    /// The largest bump among them; `None` when there is none.
    bump: Option<Bump>,
}

impl Changes<'_> {
    /// The next version for at least `floor`, and why.
    fn next(&self, config: &Config, floor: Option<Bump>) -> (Option<Version>, Version, String) {
        let previous = self.last.map(|(v, _)| v.clone());
        let bump = self.bump.max(floor).unwrap_or(Bump::Patch);
        let n = self.commits.len();
        match self.last {
            Some((prev, t)) => {
                let effective = effective_bump(prev, bump);
                let how = if effective == bump {
                    bump.to_string()
                } else {
                    format!("{bump}, a {effective} below 1.0.0")
                };
                let why = if n == 0 {
                    format!("no commit changed its paths since {} ({how})", t.name)
                } else {
                    format!("{n} commit(s) changed its paths since {} ({how})", t.name)
                };
                (previous, next_version(prev, bump), why)
            }
            None => (
                None,
                first_version(config, self.image),
                format!("first release: {n} commit(s) touch its paths"),
            ),
        }
    }
}

/// The changes of each image of `scope` between its last release tag and `head`.
fn changes<'a>(
    dir: &Path,
    head: &str,
    scope: &[&'a Image],
    releases: &'a HashMap<ImageName, Vec<(Version, TagRef)>>,
) -> Result<Vec<Changes<'a>>, TagPlanError> {
    let last: Vec<Option<&(Version, TagRef)>> = scope
        .iter()
        .map(|img| releases.get(&img.name).and_then(|v| v.last()))
        .collect();

    // One walk covers every image: from HEAD and the last tags, down to where all tags meet.
    let tag_commits: Vec<&str> = last
        .iter()
        .flatten()
        .map(|(_, t)| t.commit.as_str())
        .collect();
    let mut tips = vec![head];
    tips.extend(tag_commits.iter().copied());
    tips.sort_unstable();
    tips.dedup();
    let exclude = if last.iter().all(Option::is_some) && !tag_commits.is_empty() {
        git::tags::octopus_base(dir, &tag_commits)
    } else {
        None
    };
    let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
    let commits = history::walk(dir, &tips, &exclude)?;

    // Bit 0: reachable from HEAD; bit 1 + i: reachable from image i's last tag.
    let mut starts = vec![head];
    starts.extend(
        last.iter()
            .map(|l| l.map_or("", |(_, t)| t.commit.as_str())),
    );
    let reach = history::reachability(&commits, &starts);

    let (globs, glob_image) = watched_paths(scope)?;
    let mut changed: Vec<Vec<usize>> = vec![Vec::new(); scope.len()];
    let mut hits = Vec::new();
    let mut touched = vec![usize::MAX; scope.len()];
    for (ci, c) in commits.iter().enumerate() {
        if !history::has_bit(&reach[ci], 0) {
            continue;
        }
        for f in &c.files {
            globs.matches_into(f, &mut hits);
            for &g in &hits {
                let i = glob_image[g];
                if touched[i] != ci && (last[i].is_none() || !history::has_bit(&reach[ci], 1 + i)) {
                    touched[i] = ci;
                    changed[i].push(ci);
                }
            }
        }
    }
    Ok(scope
        .iter()
        .zip(last)
        .zip(changed)
        .map(|((image, last), changed)| Changes {
            image,
            last,
            bump: changed
                .iter()
                .map(|&ci| bump_for(&commits[ci].subject, &commits[ci].body))
                .max(),
            commits: changed
                .iter()
                .map(|&ci| Change {
                    id: short(&commits[ci].id),
                    sha: commits[ci].id.clone(),
                    subject: commits[ci].subject.clone(),
                })
                .collect(),
        })
        .collect())
}

/// Plans tags for the images (of `scope`) changed between their last release and `head`.
///
/// An image whose ancestor is tagged in the same plan is not tagged now: CD would build both
/// tags at once, and the child would be built on the old parent, or fail without one. The
/// cascade from that ancestor tags it, with its own changes, once the ancestor is published.
pub fn plan_changes(
    config: &Config,
    dir: &Path,
    head: &str,
    scope: &[&Image],
) -> Result<(Vec<Planned>, Vec<Skipped>), TagPlanError> {
    let all_tags = git::tags::list(dir)?;
    let releases = releases(config, &all_tags);
    let changed: Vec<Changes> = changes(dir, head, scope, &releases)?
        .into_iter()
        .filter(|c| !c.commits.is_empty())
        .collect();
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for c in &changed {
        if let Some(ancestor) = config
            .ancestors(c.image)
            .find(|a| changed.iter().any(|o| o.image.name == a.name))
        {
            skipped.push(Skipped {
                image: c.image.name.clone(),
                reason: format!(
                    "{} commit(s) changed it, but its ancestor {} is tagged now: the cascade \
                     tags it with these changes once {} is published",
                    c.commits.len(),
                    ancestor.name,
                    ancestor.name
                ),
            });
            continue;
        }
        let (previous, version, reason) = c.next(config, None);
        let mut p = Planned::new(config, c.image, previous, version, head, reason);
        p.commits = c.commits.clone();
        planned.push(p);
    }
    mark_existing(&all_tags, &mut planned)?;
    Ok((planned, skipped))
}

/// Plans the rebuilds of the direct children of `from`, each pinned to it: a patch release, or
/// more when the child's own commits since its last tag call for it (the changes CI left to
/// the cascade, see [`plan_changes`]).
///
/// Only children are tagged: a grandchild's pin would name a version that is only being built,
/// and CD starts a build for every new tag at once, so that build would fail. Each child's CD
/// run continues the cascade once the child is published (`--cascade-from <child>@<version>`),
/// so every tag's pinned parent is published before the tag exists.
///
/// A child whose `parent_version` the new parent does not satisfy is skipped, and so is one
/// whose last tag already pins the same parent (cascaded before), which makes a cascade
/// idempotent. Deeper descendants are listed as following later.
pub fn plan_cascade(
    config: &Config,
    dir: &Path,
    head: &str,
    from: &ImageRef,
    scope: &[&Image],
) -> Result<(Vec<Planned>, Vec<Skipped>), TagPlanError> {
    let descendants = config.descendants(&from.name);
    if descendants.is_empty() {
        return Err(TagPlanError::NoDescendants(from.clone()));
    }
    let all_tags = git::tags::list(dir)?;
    let releases = releases(config, &all_tags);
    let mut children = Vec::new();
    let mut skipped = Vec::new();
    for img in descendants {
        let Some(spec) = &img.parent else { continue };
        if spec.name != from.name {
            skipped.push(Skipped {
                image: img.name.clone(),
                reason: format!(
                    "tagged when its parent {} is rebuilt and published (that run continues the cascade)",
                    spec.name
                ),
            });
            continue;
        }
        if !spec.requirement.matches(&from.version) {
            skipped.push(Skipped {
                image: img.name.clone(),
                reason: format!("{from} does not satisfy its parent_version `{}`; change imagepipe.toml to adopt it", spec.requirement),
            });
            continue;
        }
        if let Some((_, t)) = releases.get(&img.name).and_then(|v| v.last())
            && let git::tags::TagObject::Annotated { message, .. } = git::tags::read(dir, &t.name)?
            && git::parse_parent_pin(&message)
                .and_then(Result::ok)
                .as_ref()
                == Some(from)
        {
            skipped.push(Skipped {
                image: img.name.clone(),
                reason: format!("{} is already built on {from}", t.name),
            });
            continue;
        }
        if scope.iter().any(|s| s.name == img.name) {
            children.push(img);
        }
    }
    let mut planned = Vec::new();
    if !children.is_empty() {
        for c in changes(dir, head, &children, &releases)? {
            let (previous, version, why) = c.next(config, Some(Bump::Patch));
            let reason = if c.commits.is_empty() {
                format!("rebuild on {from}")
            } else {
                format!("rebuild on {from}; {why}")
            };
            let mut p = Planned::new(config, c.image, previous, version, head, reason);
            p.commits = c.commits;
            p.parent = Some(from.clone());
            planned.push(p);
        }
    }
    mark_existing(&all_tags, &mut planned)?;
    Ok((planned, skipped))
}

/// A planned tag that exists on the same commit is a no-op; on another commit it is an error.
fn mark_existing(tags: &[TagRef], planned: &mut [Planned]) -> Result<(), TagPlanError> {
    for p in planned {
        if let Some(t) = tags.iter().find(|t| t.name == p.tag) {
            if t.commit != p.commit {
                return Err(TagPlanError::Moved {
                    tag: p.tag.clone(),
                    existing: t.commit.clone(),
                    commit: p.commit.clone(),
                });
            }
            p.exists = true;
        }
    }
    Ok(())
}

/// The annotated tag's message: title, reason, changelog, parent pin and review.
pub fn message(p: &Planned, review: &str) -> String {
    let mut m = format!("{} v{}\n\n{}\n", p.image, p.version, p.reason);
    if !p.commits.is_empty() {
        m.push_str("\nChanges:\n");
        for c in &p.commits {
            m.push_str(&format!("- {} ({})\n", c.subject, c.id));
        }
    }
    m.push('\n');
    if let Some(parent) = &p.parent {
        m.push_str(&format!("parent: {parent}\n"));
    }
    m.push_str(&format!("review: {review}\n"));
    m
}

#[derive(Debug, thiserror::Error)]
pub enum TagCreateError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    GitHub(#[from] crate::github::GitHubError),
    #[error(
        "pushing the tags to `{remote}` failed and no tag was pushed; the tags this run made \
         locally were removed: {source}"
    )]
    Push { remote: String, source: GitError },
    #[error(
        "tag {tag} was created meanwhile on {existing} by another run (this run wanted {commit}); \
         the tags this run made were removed"
    )]
    Raced {
        tag: String,
        existing: String,
        commit: String,
    },
    #[error(
        "{source}; BUT these tags this run made could not be removed, delete them by hand \
         (`git push --delete origin TAG`): {}", left.join(", ")
    )]
    LeftBehind {
        source: Box<TagCreateError>,
        left: Vec<String>,
    },
}

impl TagCreateError {
    /// `error`, or, when undoing left tags behind, an error that names them.
    fn left(error: Self, left: Vec<String>) -> Self {
        if left.is_empty() {
            error
        } else {
            Self::LeftBehind {
                source: Box::new(error),
                left,
            }
        }
    }
}

/// Creates the planned tags with local git, then pushes them to `push_remote` in one atomic
/// push. On any failure, the tags this run made are deleted again, so nothing is half-tagged.
/// A lost race with a run that created identical tags is success.
pub fn create_with_git(
    dir: &Path,
    planned: &[Planned],
    messages: &[String],
    push_remote: Option<&str>,
) -> Result<Vec<String>, TagCreateError> {
    let mut made = Vec::new();
    for (p, m) in planned.iter().zip(messages) {
        if p.exists {
            continue;
        }
        if let Err(e) = git::tags::create_annotated(dir, &p.tag, &p.commit, m) {
            let _ = git::tags::delete(dir, &made);
            return Err(e.into());
        }
        made.push(p.tag.clone());
    }
    let Some(remote) = push_remote else {
        return Ok(made);
    };
    let names: Vec<String> = planned.iter().map(|p| p.tag.clone()).collect();
    if let Err(source) = git::tags::push_atomic(dir, remote, &names) {
        let on_remote: HashMap<String, String> = git::tags::list_remote(dir, remote, &names)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, t)| (name, t.commit))
            .collect();
        let conflict = planned
            .iter()
            .find(|p| on_remote.get(&p.tag).is_some_and(|c| c != &p.commit));
        let all_same = planned
            .iter()
            .all(|p| on_remote.get(&p.tag) == Some(&p.commit));
        if all_same {
            return Ok(made);
        }
        let _ = git::tags::delete(dir, &made);
        return Err(match conflict {
            Some(p) => TagCreateError::Raced {
                tag: p.tag.clone(),
                existing: on_remote[&p.tag].clone(),
                commit: p.commit.clone(),
            },
            None => TagCreateError::Push {
                remote: remote.to_string(),
                source,
            },
        });
    }
    Ok(made)
}

/// Creates the planned tags through the GitHub API (tag object, then ref), in order. On any
/// failure, the refs this run created are deleted again.
pub async fn create_with_api(
    gh: &crate::github::GitHub,
    planned: &[Planned],
    messages: &[String],
) -> Result<Vec<String>, TagCreateError> {
    use crate::github::RefOutcome;
    let mut made: Vec<String> = Vec::new();
    // Undoing is reported: a tag left behind must be named, not claimed removed.
    let undo = |made: Vec<String>| async move {
        let mut left = Vec::new();
        for t in made.iter().rev() {
            if let Err(e) = gh.delete_tag(t).await {
                left.push(format!("{t} ({e})"));
            }
        }
        left
    };
    for (p, m) in planned.iter().zip(messages) {
        match gh.create_tag(&p.tag, m, &p.commit).await {
            Ok(RefOutcome::Created) => made.push(p.tag.clone()),
            Ok(RefOutcome::Exists) => {}
            Ok(RefOutcome::Conflict { commit }) => {
                let left = undo(made).await;
                let error = TagCreateError::Raced {
                    tag: p.tag.clone(),
                    existing: commit,
                    commit: p.commit.clone(),
                };
                return Err(TagCreateError::left(error, left));
            }
            Err(e) => {
                let left = undo(made).await;
                return Err(TagCreateError::left(e.into(), left));
            }
        }
    }
    Ok(made)
}

/// The commits the planned tags release, for the review gate: each new tag's commit and every
/// commit of its changelog. Gating only the tagged commit would let a commit pushed directly,
/// or batched behind a reviewed one, reach a release unreviewed.
pub fn released_commits(planned: &[Planned]) -> Vec<String> {
    let mut commits: Vec<String> = Vec::new();
    for p in planned.iter().filter(|p| !p.exists) {
        for sha in std::iter::once(&p.commit).chain(p.commits.iter().map(|c| &c.sha)) {
            if !commits.contains(sha) {
                commits.push(sha.clone());
            }
        }
    }
    commits
}

/// Shows the plan on stderr.
pub fn report_plan(ui: &crate::step::Ui, planned: &[Planned], skipped: &[Skipped]) {
    if planned.is_empty() {
        ui.info("nothing to tag: no image changed since its last release tag");
    }
    for p in planned {
        let from = p
            .previous
            .as_ref()
            .map_or_else(|| "none".to_string(), ToString::to_string);
        let state = if p.exists { " (exists)" } else { "" };
        ui.info(&format!(
            "{}  {from} -> {}{state}  {}",
            p.image, p.version, p.reason
        ));
        if let Some(parent) = &p.parent {
            ui.info(&format!("    parent: {parent}"));
        }
        for c in &p.commits {
            ui.info(&format!("    {} {}", c.id, c.subject));
        }
    }
    for s in skipped {
        ui.info(&format!("{}  skipped: {}", s.image, s.reason));
    }
}

/// Reports the created tags on every channel.
pub fn report_created(
    ui: &crate::step::Ui,
    planned: &[Planned],
    created: &[String],
) -> std::io::Result<()> {
    for t in created {
        ui.info(&format!("created {t}"));
    }
    let tags: Vec<&str> = created.iter().map(String::as_str).collect();
    ui.output("tags", &tags.join("\n"))?;
    ui.output("count", &tags.len().to_string())?;
    let json = serde_json::json!({ "created": created, "planned": planned });
    ui.output("tags-json", &json["planned"].to_string())?;
    if !planned.is_empty() {
        let mut md = String::from(
            "### imagepipe-tag\n\n| image | from | to | tag | reason |\n| --- | --- | --- | --- | --- |\n",
        );
        for p in planned {
            let from = p
                .previous
                .as_ref()
                .map_or_else(|| "–".to_string(), ToString::to_string);
            let tag = if created.contains(&p.tag) {
                format!("`{}` (new)", p.tag)
            } else {
                format!("`{}`", p.tag)
            };
            md.push_str(&format!(
                "| `{}` | {from} | {} | {tag} | {} |\n",
                p.image, p.version, p.reason
            ));
        }
        ui.summary(&md)?;
    }
    ui.json(&json);
    Ok(())
}

/// `imagepipe-tag parse`: the image and version a tag names.
pub fn report_parse(ui: &crate::step::Ui, r: &ImageRef) -> std::io::Result<()> {
    ui.info(&format!("image {}\nversion {}", r.name, r.version));
    ui.output("image", r.name.as_str())?;
    ui.output("version", &r.version.to_string())?;
    ui.json(&serde_json::json!({ "image": r.name, "version": r.version.to_string() }));
    Ok(())
}

/// The repository the steps talk to: the flag, `tag.github_repository`, `GITHUB_REPOSITORY`,
/// then the URL of the git remote.
pub fn github_repository(
    explicit: Option<&str>,
    config: &crate::config::Config,
    remote: &str,
) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| config.tag.github_repository.clone())
        .or_else(|| crate::env::var(crate::env::GITHUB_REPOSITORY))
        .or_else(|| crate::git::tags::github_repository(&config.dir, remote))
}

/// The GitHub client for the repository [`github_repository`] finds, with the configuration's
/// TLS settings for GitHub.
pub fn github_client(
    explicit: Option<&str>,
    config: &crate::config::Config,
    remote: &str,
    token: &crate::secret::Secret,
) -> Result<crate::github::GitHub, crate::github::GitHubError> {
    let repository = github_repository(explicit, config, remote)
        .ok_or(crate::github::GitHubError::NoRepository)?;
    crate::github::connect(&repository, token, &config.tag.github_tls(&config.dir))
}
