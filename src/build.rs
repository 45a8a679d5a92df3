//! Building one image version with Packer, on its parent, into a record.
//!
//! [`plan`] works out everything (version, parent, variables, exact Packer commands) without
//! side effects, so `--dry-run` shows what [`execute`] would run. Only what depends on the
//! Packer release (`validate -evaluate-datasources`, on 1.8.5 and later) is decided when it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use semver::Version;

use crate::config::{Config, ConfigError, Image, ParentSpec};
use crate::hash::{self, Sha256Hex};
use crate::image::{ImageName, ImageRef, NameError, TagError};
use crate::packer::{
    self, Event, Invocation, Manifest, Packer, PackerError, Supervision, Template, UiLevel,
};
use crate::record::{
    self, Artifact, ArtifactKind, BuildInfo, FileArtifact, ImageId, LoadedRecord, ParentId, Record,
    RecordError, Role, Source,
};
use crate::step::Ui;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("give the image to build: --image NAME [--version X.Y.Z], or --tag <image>/v<version>")]
    NothingSelected,
    #[error("--tag names the image and version already; drop --image/--version or --tag")]
    TagAndImage,
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("version `{0}` is not semver (X.Y.Z, no leading `v`): {1}")]
    Version(String, semver::Error),
    #[error(transparent)]
    Template(#[from] packer::template::TemplateError),
    #[error("{image} has no parent in {config}, but a parent was given ({given})")]
    UnexpectedParent {
        image: ImageName,
        config: PathBuf,
        given: String,
    },
    #[error("the parent pin {pin} names a different image than {image}'s parent `{expected}`")]
    PinWrongImage {
        pin: String,
        image: ImageName,
        expected: ImageName,
    },
    #[error("the parent {parent} does not satisfy {image}'s `parent_version = \"{requirement}\"`")]
    ParentOutsideRequirement {
        image: ImageName,
        parent: ImageRef,
        requirement: semver::VersionReq,
    },
    #[error(
        "no published version of parent `{parent}` satisfies `{requirement}` in {store} \
         (published: {published}); publish the parent first, or pin one with --parent"
    )]
    ParentUnsatisfiable {
        parent: ImageName,
        requirement: semver::VersionReq,
        store: String,
        published: String,
    },
    #[error("the parent record {path} is for `{found}`, but {image}'s parent is `{expected}`")]
    ParentRecordWrongImage {
        path: PathBuf,
        found: ImageName,
        image: ImageName,
        expected: ImageName,
    },
    #[error("the annotation of tag {tag} has a `parent:` line that is not valid: {source}")]
    BadTagPin {
        tag: String,
        source: crate::image::RefError,
    },
    #[error(
        "the tag {tag} pins the parent to {pin}, but the build was asked to use {given}; a tag's \
         build uses exactly the parent its tag names: drop --parent/--parent-record"
    )]
    PinContradicted {
        tag: String,
        pin: ImageRef,
        given: String,
    },
    #[error(
        "cannot read the annotated tag {tag}, whose `parent:` line says which parent to build on: \
         {reason}; the build never guesses another parent. Fetch the tag itself \
         (`git fetch origin +refs/tags/{tag}:refs/tags/{tag}`), read it through the GitHub API \
         with --via github, or name the parent with --parent IMAGE@VERSION"
    )]
    TagUnreadable { tag: String, reason: String },
    #[error(
        "the tag {tag} is on commit {here} here but on {remote_commit} on the remote `{remote}`; \
         published tags are never moved: check out the remote's tag"
    )]
    TagDiffers {
        tag: String,
        here: String,
        remote_commit: String,
        remote: String,
    },
    #[error(transparent)]
    GitHub(#[from] crate::github::GitHubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(
        "the output directory {0} is not empty; pass --force to replace it (this also passes \
         -force to Packer)"
    )]
    OutputNotEmpty(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Packer(#[from] PackerError),
    #[error(
        "Packer finished but wrote no manifest at {0}; add to the template:\n  \
         post-processor \"manifest\" {{ output = var.imagepipe_manifest }}"
    )]
    NoManifest(PathBuf),
    #[error("the Packer manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "Packer exited 0 but built nothing in this run (its manifest {manifest} {what}); no record \
         is written. Likely cause: {cause}"
    )]
    NothingBuilt {
        manifest: PathBuf,
        what: String,
        cause: String,
    },
    #[error(
        "Packer built {missing} but its manifest {manifest} has no entry for it: parallel builds \
         lose manifest entries when the manifest post-processor's lock gives up (it retries three \
         times). Give each build block a manifest post-processor of its own, or build one source \
         per image (`only` in imagepipe.toml)"
    )]
    ManifestLostEntry { manifest: PathBuf, missing: String },
    #[error("cannot hash artifact {path}: {source}")]
    Hash {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "two artifacts are both named `{0}` ; stores keep an image's files side by side, so give \
         the builds' output files distinct names"
    )]
    DuplicateFileName(String),
    #[error(
        "artifact file {0} is not a plain file name that can be stored (UTF-8, not hidden, not the record's name)"
    )]
    BadFileName(PathBuf),
}

/// Where the parent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest published version satisfying the image's requirement, or the tag's pin.
    Resolve,
    /// Exactly this version from the store.
    Pin(ImageRef),
    /// A record file (and the artifacts beside it).
    RecordFile(PathBuf),
}

/// Where a tag's annotation is read.
#[derive(Debug, Clone, Default)]
pub enum TagVia {
    /// The local repository, then the tag object fetched from `tag.remote`.
    #[default]
    Git,
    /// The GitHub API, for CD jobs without git access to the repository.
    GitHub(Box<crate::github::GitHub>),
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub tag_via: TagVia,
    pub image: Option<String>,
    pub version: Option<String>,
    pub tag: Option<String>,
    pub parent: ParentChoice,
    pub output_dir: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub interrupt_grace: Option<Duration>,
    pub force: bool,
    pub git_commit: Option<String>,
}

/// The parent a build stands on.
#[derive(Debug, Clone)]
pub struct Parent {
    pub loaded: LoadedRecord,
    /// Where the record came from: a store location or a file.
    pub origin: String,
    /// Artifact name → local path, URL, or id, as handed to the template.
    pub artifacts: Vec<(String, String)>,
}

/// Everything needed to run the build, worked out before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub image: Image,
    pub version: Version,
    pub tag: Option<String>,
    pub parent: Option<Parent>,
    pub template: Template,
    pub template_display: String,
    pub output_dir: PathBuf,
    pub record_path: PathBuf,
    pub manifest_path: PathBuf,
    pub var_file: PathBuf,
    /// Every variable imagepipe generates, and the subset the template declares (only those are
    /// passed, so Packer does not warn about the rest).
    pub variables: BTreeMap<String, VarValue>,
    pub passed: BTreeSet<String>,
    pub init: Option<Invocation>,
    pub validate: Invocation,
    pub build: Invocation,
    pub source: Source,
    pub timeout: Duration,
    pub interrupt_grace: Duration,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    Text(String),
    Map(BTreeMap<String, String>),
}

impl VarValue {
    fn hcl(&self) -> String {
        match self {
            Self::Text(s) => packer::template::hcl_string(s),
            Self::Map(m) if m.is_empty() => "{}".into(),
            Self::Map(m) => {
                let body: Vec<String> = m
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "  {} = {}",
                            packer::template::hcl_string(k),
                            packer::template::hcl_string(v)
                        )
                    })
                    .collect();
                format!("{{\n{}\n}}", body.join("\n"))
            }
        }
    }
}

/// The parent as a template sees it.
struct ParentVars {
    name: String,
    version: String,
    /// Artifact name → location, the first being the primary one.
    artifacts: Vec<(String, String)>,
}

/// Every variable imagepipe generates for a template.
fn generated_variables(
    name: &ImageName,
    version: &Version,
    commit: Option<&str>,
    output_dir: &Path,
    manifest_path: &Path,
    parent: Option<&ParentVars>,
) -> BTreeMap<String, VarValue> {
    let text = |s: &str| VarValue::Text(s.to_string());
    let mut variables = BTreeMap::new();
    variables.insert("imagepipe_image".into(), text(name.as_str()));
    variables.insert("imagepipe_version".into(), text(&version.to_string()));
    variables.insert("imagepipe_git_commit".into(), text(commit.unwrap_or("")));
    variables.insert(
        "imagepipe_output_dir".into(),
        text(&output_dir.display().to_string()),
    );
    variables.insert(
        "imagepipe_manifest".into(),
        text(&manifest_path.display().to_string()),
    );
    let (pname, pversion, primary, all) = match parent {
        Some(p) => (
            p.name.as_str(),
            p.version.as_str(),
            p.artifacts.first().map_or("", |a| a.1.as_str()),
            p.artifacts.iter().cloned().collect(),
        ),
        None => ("", "", "", BTreeMap::new()),
    };
    variables.insert("imagepipe_parent_image".into(), text(pname));
    variables.insert("imagepipe_parent_version".into(), text(pversion));
    variables.insert("imagepipe_parent_artifact".into(), text(primary));
    variables.insert("imagepipe_parent_artifacts".into(), VarValue::Map(all));
    variables
}

/// Which image and version to build, from `--image/--version` or `--tag`.
pub fn select(
    config: &Config,
    req: &Request,
) -> Result<(ImageName, Version, Option<String>), BuildError> {
    match (&req.tag, &req.image) {
        (Some(_), Some(_)) => Err(BuildError::TagAndImage),
        (Some(_), None) if req.version.is_some() => Err(BuildError::TagAndImage),
        (Some(tag), None) => {
            let r = config.tag_format.parse_tag(tag)?;
            config.image(r.name.as_str())?;
            let tag = tag.strip_prefix("refs/tags/").unwrap_or(tag).to_string();
            Ok((r.name, r.version, Some(tag)))
        }
        (None, Some(name)) => {
            let name: ImageName = name.parse()?;
            config.image(name.as_str())?;
            let version = match &req.version {
                Some(v) => {
                    let v = v.strip_prefix('v').unwrap_or(v);
                    Version::parse(v).map_err(|e| BuildError::Version(v.to_string(), e))?
                }
                // A local build that names no version: a pre-release of 0.0.0 that sorts below
                // every real version, so no parent requirement ever picks it up by accident.
                None => Version::parse(&format!("0.0.0-dev.{}", Utc::now().format("%Y%m%d%H%M%S")))
                    .expect("a valid pre-release"),
            };
            Ok((name, version, None))
        }
        (None, None) => Err(BuildError::NothingSelected),
    }
}

/// Works out the build without running anything but read-only store and git queries.
pub async fn plan(config: &Config, req: &Request, ui: &Ui) -> Result<Plan, BuildError> {
    let (name, version, tag) = select(config, req)?;
    let image = config.image(name.as_str())?.clone();
    let template = Template::inspect(&image.template)?;

    let mut choice = req.parent.clone();
    let mut tag_pin = None;
    if image.parent.is_some()
        && let Some(tag) = &tag
        && let Some(pin) = read_tag_pin(config, tag, &req.tag_via, ui).await?
    {
        match &choice {
            ParentChoice::Resolve => {
                ui.info(&format!("the tag {tag} pins the parent to {pin}"));
                choice = ParentChoice::Pin(pin.clone());
            }
            ParentChoice::Pin(given) if given != &pin => {
                return Err(BuildError::PinContradicted {
                    tag: tag.clone(),
                    pin,
                    given: given.to_string(),
                });
            }
            _ => {}
        }
        tag_pin = Some(pin);
    }
    let parent = match &image.parent {
        None if choice != ParentChoice::Resolve => {
            let given = match &choice {
                ParentChoice::Pin(p) => p.to_string(),
                ParentChoice::RecordFile(p) => p.display().to_string(),
                ParentChoice::Resolve => unreachable!("checked above"),
            };
            return Err(BuildError::UnexpectedParent {
                image: name,
                config: config.path.clone(),
                given,
            });
        }
        None => None,
        Some(spec) => {
            let parent = resolve_parent(config, &name, spec, &choice).await?;
            let built_on = parent.loaded.record.id();
            if let (Some(pin), Some(tag)) = (&tag_pin, &tag)
                && &built_on != pin
            {
                return Err(BuildError::PinContradicted {
                    tag: tag.clone(),
                    pin: pin.clone(),
                    given: built_on.to_string(),
                });
            }
            Some(parent)
        }
    };

    let output_dir = match &req.output_dir {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => config
            .output_dir
            .join(name.as_str())
            .join(version.to_string()),
    };
    let record_path = match &req.record {
        Some(r) => std::path::absolute(r).unwrap_or_else(|_| r.clone()),
        None => output_dir.join(record::FILE_NAME),
    };
    let manifest_path = image
        .manifest
        .clone()
        .unwrap_or_else(|| output_dir.join("packer-manifest.json"));
    let var_file = output_dir.join("imagepipe.pkrvars.hcl");

    let source = match &req.git_commit {
        Some(c) => Source {
            commit: Some(c.clone()),
            tag: tag.clone(),
            dirty: false,
        },
        None => match crate::git::head(&config.dir) {
            Some((commit, dirty)) => Source {
                commit: Some(commit),
                tag: tag.clone(),
                dirty,
            },
            None => {
                ui.warn(&format!(
                    "{} is not in a git checkout; the record will name no commit (set {} to give one)",
                    config.dir.display(),
                    crate::env::GIT_COMMIT
                ));
                Source {
                    commit: None,
                    tag: tag.clone(),
                    dirty: false,
                }
            }
        },
    };

    let parent_vars = parent.as_ref().map(|p| ParentVars {
        name: p.loaded.record.image.name.to_string(),
        version: p.loaded.record.image.version.to_string(),
        artifacts: p.artifacts.clone(),
    });
    let variables = generated_variables(
        &name,
        &version,
        source.commit.as_deref(),
        &output_dir,
        &manifest_path,
        parent_vars.as_ref(),
    );
    let passed: BTreeSet<String> = variables
        .keys()
        .filter(|k| template.variables.contains(*k))
        .cloned()
        .collect();

    let packer = Packer {
        program: config.packer.clone(),
        cwd: config.dir.clone(),
    };
    let tpl = template.path.display().to_string();
    let mut var_args: Vec<String> = image
        .var_files
        .iter()
        .map(|f| format!("-var-file={}", f.display()))
        .collect();
    var_args.push(format!("-var-file={}", var_file.display()));
    let mut build_args = vec!["build".to_string(), "-machine-readable".to_string()];
    if req.force {
        build_args.push("-force".into());
    }
    if !image.only.is_empty() {
        build_args.push(format!("-only={}", image.only.join(",")));
    }
    build_args.extend(var_args.iter().cloned());
    build_args.push(tpl.clone());

    let template_display = template.path.strip_prefix(&config.dir).map_or_else(
        |_| template.path.display().to_string(),
        |p| p.display().to_string(),
    );
    Ok(Plan {
        init: template
            .required_plugins
            .then(|| packer.invocation(["init".to_string(), tpl.clone()])),
        validate: packer.invocation(
            ["validate".to_string()]
                .into_iter()
                .chain(var_args)
                .chain([tpl]),
        ),
        build: packer.invocation(build_args),
        timeout: req
            .timeout
            .or(image.build_timeout)
            .unwrap_or(config.build_timeout),
        interrupt_grace: req.interrupt_grace.unwrap_or(config.interrupt_grace),
        image,
        version,
        tag,
        parent,
        template,
        template_display,
        output_dir,
        record_path,
        manifest_path,
        var_file,
        variables,
        passed,
        source,
        force: req.force,
    })
}

/// The parent pin of a tag's annotation, read wherever the annotated tag lives; `None` only
/// when the tag is known to carry none (an annotated tag without a pin, or a tag that is
/// lightweight on the remote too, which imagepipe never creates).
async fn read_tag_pin(
    config: &Config,
    tag: &str,
    via: &TagVia,
    ui: &Ui,
) -> Result<Option<ImageRef>, BuildError> {
    use crate::git::tags::{self, TagObject};
    let unreadable = |reason: String| BuildError::TagUnreadable {
        tag: tag.to_string(),
        reason,
    };
    let found = match via {
        TagVia::GitHub(gh) => gh.read_tag(tag).await?,
        TagVia::Git => {
            let dir = &config.dir;
            let remote = &config.tag.remote;
            let local = tags::read(dir, tag).map_err(|e| unreadable(e.to_string()))?;
            if let TagObject::Annotated { .. } = local {
                local
            } else {
                if !crate::git::checkout::has_remote(dir, remote) {
                    return Err(unreadable(match local {
                        TagObject::Missing => format!(
                            "it is not in this checkout, and there is no remote `{remote}` to read it from"
                        ),
                        _ => format!(
                            "this checkout holds it as a lightweight ref (as CI checkouts fetch tags), and there is no remote `{remote}` to read the tag object from"
                        ),
                    }));
                }
                let remote_tag = tags::read_remote(dir, remote, tag)
                    .map_err(|e| unreadable(format!("reading it from `{remote}` failed: {e}")))?;
                match (&local, &remote_tag) {
                    (TagObject::Missing, TagObject::Missing) => {
                        return Err(unreadable(format!(
                            "it exists neither in this checkout nor on `{remote}`"
                        )));
                    }
                    // A tag made by hand in this checkout only.
                    (TagObject::Lightweight { .. }, TagObject::Missing) => local,
                    (
                        TagObject::Lightweight { commit: here },
                        TagObject::Annotated { commit, .. } | TagObject::Lightweight { commit },
                    ) if here != commit => {
                        return Err(BuildError::TagDiffers {
                            tag: tag.to_string(),
                            here: here.clone(),
                            remote_commit: commit.clone(),
                            remote: remote.clone(),
                        });
                    }
                    _ => {
                        ui.info(&format!("read the annotated tag {tag} from `{remote}`"));
                        remote_tag
                    }
                }
            }
        }
    };
    match found {
        TagObject::Annotated { message, .. } => crate::git::parse_parent_pin(&message)
            .transpose()
            .map_err(|source| BuildError::BadTagPin {
                tag: tag.to_string(),
                source,
            }),
        TagObject::Lightweight { .. } => {
            ui.info(&format!(
                "the tag {tag} is a lightweight tag, which pins no parent"
            ));
            Ok(None)
        }
        TagObject::Missing => Err(unreadable("the repository has no such tag".into())),
    }
}

async fn resolve_parent(
    config: &Config,
    image: &ImageName,
    spec: &ParentSpec,
    choice: &ParentChoice,
) -> Result<Parent, BuildError> {
    let check_req = |r: &ImageRef| {
        if spec.requirement.matches(&r.version) {
            Ok(())
        } else {
            Err(BuildError::ParentOutsideRequirement {
                image: image.clone(),
                parent: r.clone(),
                requirement: spec.requirement.clone(),
            })
        }
    };
    if let ParentChoice::RecordFile(path) = choice {
        // Packer runs in the config's directory, so every path handed to it must be absolute.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let loaded = Record::read(path)?;
        let found = loaded.record.id();
        if found.name != spec.name {
            return Err(BuildError::ParentRecordWrongImage {
                path: path.clone(),
                found: found.name,
                image: image.clone(),
                expected: spec.name.clone(),
            });
        }
        check_req(&found)?;
        // A record file may be of a version the primary store has since revoked: it is looked
        // up there too (a version never published has no revocation).
        let store = store::open(&config.store)?;
        crate::lifecycle::ensure_not_revoked(store.as_ref(), &found, chrono::Utc::now()).await?;
        let dir = crate::fsutil::parent_dir(path);
        let artifacts =
            locate_artifacts(&loaded.record, |f| dir.join(&f.path).display().to_string());
        return Ok(Parent {
            loaded,
            origin: path.display().to_string(),
            artifacts,
        });
    }

    let store = store::open(&config.store)?;
    let id = match choice {
        ParentChoice::Pin(pin) => {
            if pin.name != spec.name {
                return Err(BuildError::PinWrongImage {
                    pin: pin.to_string(),
                    image: image.clone(),
                    expected: spec.name.clone(),
                });
            }
            check_req(pin)?;
            pin.clone()
        }
        _ if spec.channel.is_some() => {
            let channel = spec.channel.as_deref().unwrap_or_default();
            ImageRef {
                name: spec.name.clone(),
                version: crate::lifecycle::resolve_channel(store.as_ref(), &spec.name, channel)
                    .await?,
            }
        }
        _ => {
            // The newest accepted version that is not revoked: a revoked version is not one
            // the requirement accepts, so the build goes to the newest good one below it (as
            // the fleet view's "out of date" judges).
            let now = chrono::Utc::now();
            let revoked = crate::lifecycle::revocations(store.as_ref(), &spec.name).await?;
            let mut published = store.list_versions(&spec.name).await?;
            published.sort();
            match revoked.newest_accepted(&published, &spec.requirement, now) {
                Some(version) => ImageRef {
                    name: spec.name.clone(),
                    version: version.clone(),
                },
                None => {
                    let published = if published.is_empty() {
                        "none".to_string()
                    } else {
                        published
                            .iter()
                            .map(|v| {
                                if revoked.is_revoked(v, now) {
                                    format!("{v} (revoked)")
                                } else {
                                    v.to_string()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Err(BuildError::ParentUnsatisfiable {
                        parent: spec.name.clone(),
                        requirement: spec.requirement.clone(),
                        store: store.location(),
                        published,
                    });
                }
            }
        }
    };
    let loaded = store.fetch_record(&id).await?;
    // A revoked parent (a CVE, a bad build) is never built on, whichever way it was named.
    crate::lifecycle::ensure_not_revoked(store.as_ref(), &id, chrono::Utc::now()).await?;
    // The parent's bytes are what this image is built on: check them before Packer sees them.
    store.verify(&id, &loaded).await?;
    let artifacts = locate_artifacts(&loaded.record, |f| store.artifact_location(&id, f));
    Ok(Parent {
        loaded,
        origin: store.location(),
        artifacts,
    })
}

/// Each artifact's name and where a template finds it: a file's location, or the id of an
/// artifact that is not a file. The disk comes first, whatever the record's order (records
/// written before roles existed may list `efivars.fd` first), because the first is the
/// template's `imagepipe_parent_artifact`.
fn locate_artifacts(
    record: &Record,
    file: impl Fn(&FileArtifact) -> String,
) -> Vec<(String, String)> {
    let mut artifacts: Vec<&Artifact> = record.artifacts.iter().collect();
    artifacts.sort_by_key(|a| a.rank());
    artifacts
        .into_iter()
        .map(|a| {
            let loc = match &a.kind {
                ArtifactKind::File(f) => file(f),
                ArtifactKind::Remote { id } => id.clone(),
            };
            (a.name.clone(), loc)
        })
        .collect()
}

impl Plan {
    pub fn image_ref(&self) -> ImageRef {
        ImageRef {
            name: self.image.name.clone(),
            version: self.version.clone(),
        }
    }

    /// The generated var file: the variables the template declares, then the config's own.
    pub fn var_file_text(&self) -> String {
        var_file_text(&self.variables, &self.passed, &self.image)
    }

    fn invocations(&self) -> impl Iterator<Item = &Invocation> {
        self.init.iter().chain([&self.validate, &self.build])
    }

    /// The human description of the plan, as `--dry-run` prints it.
    pub fn describe(&self) -> String {
        let mut out = format!("plan for {} {}\n", self.image.name, self.version);
        match &self.parent {
            Some(p) => out.push_str(&format!(
                "  parent    {} {} from {} (record sha256 {})\n",
                p.loaded.record.image.name,
                p.loaded.record.image.version,
                p.origin,
                p.loaded.sha256
            )),
            None => out.push_str("  parent    none\n"),
        }
        out.push_str(&format!("  template  {}\n", self.template_display));
        out.push_str(&format!("  output    {}\n", self.output_dir.display()));
        out.push_str(&format!("  record    {}\n", self.record_path.display()));
        out.push_str(&format!(
            "  timeout   {}\n",
            humantime::format_duration(self.timeout)
        ));
        out.push_str("variables (* = declared by the template and passed):\n");
        for (k, v) in &self.variables {
            let mark = if self.passed.contains(k) { '*' } else { ' ' };
            out.push_str(&format!(
                "  {mark} {k} = {}\n",
                v.hcl().replace('\n', "\n      ")
            ));
        }
        out.push_str(&format!(
            "commands (run in {}):\n",
            self.build.cwd.display()
        ));
        for inv in self.invocations() {
            out.push_str(&format!("  {inv}\n"));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "image": self.image.name,
            "version": self.version.to_string(),
            "tag": self.tag,
            "parent": self.parent.as_ref().map(|p| serde_json::json!({
                "name": p.loaded.record.image.name,
                "version": p.loaded.record.image.version.to_string(),
                "record_sha256": p.loaded.sha256,
                "origin": p.origin,
                "artifacts": p.artifacts.iter().cloned().collect::<BTreeMap<_, _>>(),
            })),
            "output_dir": self.output_dir,
            "record": self.record_path,
            "variables": self.variables.iter().map(|(k, v)| (k.clone(), match v {
                VarValue::Text(s) => serde_json::json!(s),
                VarValue::Map(m) => serde_json::json!(m),
            })).collect::<serde_json::Map<_, _>>(),
            "passed_variables": self.passed,
            "commands": self.invocations().map(|i| {
                std::iter::once(i.program.display().to_string()).chain(i.args.iter().cloned()).collect::<Vec<_>>()
            }).collect::<Vec<_>>(),
        })
    }
}

/// The generated var file: the variables the template declares, then the config's own.
fn var_file_text(
    variables: &BTreeMap<String, VarValue>,
    passed: &BTreeSet<String>,
    image: &Image,
) -> String {
    let mut out = String::from("# Generated by imagepipe-build; do not edit.\n");
    for name in passed {
        out.push_str(&format!("{name} = {}\n", variables[name].hcl()));
    }
    for (k, v) in &image.variables {
        out.push_str(&format!("{k} = {}\n", packer::template::hcl_string(v)));
    }
    out
}

/// One template checked by [`validate`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Validated {
    pub image: ImageName,
    pub template: String,
    /// What Packer said when the template is not valid.
    pub error: Option<String>,
}

/// The parent version placeholders stand for in a validation.
pub const PLACEHOLDER_VERSION: &str = "0.0.0-validate";

/// Runs `packer validate` on each image's template, as a pull request needs it: with no store,
/// no credentials and no network (`packer init` runs only for templates with
/// `required_plugins`, and installs nothing that is already there). The generated variables get
/// placeholders: the version [`PLACEHOLDER_VERSION`] and, for a parent, empty files for its
/// primary artifact and for every key the template looks up in `imagepipe_parent_artifacts`.
/// Nothing is written outside a temporary directory.
pub async fn validate(
    config: &Config,
    images: &[&Image],
    commit: Option<&str>,
) -> Result<Vec<Validated>, BuildError> {
    let mut out = Vec::new();
    for image in images {
        let template = Template::inspect(&image.template)?;
        let scratch = tempfile::tempdir().map_err(|source| BuildError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BuildError::Io { path, source }
        };
        let parent = match &image.parent {
            None => None,
            Some(spec) => {
                let dir = scratch.path().join("parent");
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let mut keys: Vec<String> = template.parent_artifact_keys.iter().cloned().collect();
                if keys.is_empty() {
                    keys.push("artifact".into());
                }
                let mut artifacts = Vec::new();
                for (i, key) in keys.into_iter().enumerate() {
                    // Keys may hold `/`: the placeholder file is named by position instead.
                    let file = dir.join(format!("artifact-{i}"));
                    std::fs::write(&file, b"").map_err(io(&file))?;
                    artifacts.push((key, file.display().to_string()));
                }
                Some(ParentVars {
                    name: spec.name.to_string(),
                    version: PLACEHOLDER_VERSION.into(),
                    artifacts,
                })
            }
        };
        let version = Version::parse(PLACEHOLDER_VERSION).expect("a valid version");
        let variables = generated_variables(
            &image.name,
            &version,
            commit,
            &scratch.path().join("output"),
            &scratch.path().join("packer-manifest.json"),
            parent.as_ref(),
        );
        let passed: BTreeSet<String> = variables
            .keys()
            .filter(|k| template.variables.contains(*k))
            .cloned()
            .collect();
        let var_file = scratch.path().join("imagepipe.pkrvars.hcl");
        std::fs::write(&var_file, var_file_text(&variables, &passed, image))
            .map_err(io(&var_file))?;
        let packer = Packer {
            program: config.packer.clone(),
            cwd: config.dir.clone(),
        };
        let tpl = template.path.display().to_string();
        if template.required_plugins {
            packer
                .invocation(["init".to_string(), tpl.clone()])
                .output()
                .await?;
        }
        let args = ["validate".to_string()]
            .into_iter()
            .chain(
                image
                    .var_files
                    .iter()
                    .map(|f| format!("-var-file={}", f.display())),
            )
            .chain([format!("-var-file={}", var_file.display()), tpl]);
        let error = match packer.invocation(args).output().await {
            Ok(_) => None,
            Err(PackerError::Failed { output, .. }) => Some(output),
            Err(e) => return Err(e.into()),
        };
        out.push(Validated {
            image: image.name.clone(),
            template: template.path.strip_prefix(&config.dir).map_or_else(
                |_| template.path.display().to_string(),
                |p| p.display().to_string(),
            ),
            error,
        });
    }
    Ok(out)
}

/// The result of a successful build.
#[derive(Debug, Clone)]
pub struct Built {
    pub record: Record,
    pub record_path: PathBuf,
    pub record_sha256: Sha256Hex,
}

/// Runs the plan: Packer, then the manifest, the digests and the record. The record is written
/// last and only on success, so a failed or interrupted build leaves none.
pub async fn execute(plan: &Plan, ui: &Ui) -> Result<Built, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    // A record from an earlier run at this path would outlive a failure and mislead later steps.
    match std::fs::remove_file(&plan.record_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&plan.record_path)(e)),
        _ => {}
    }
    if packer::dir_has_entries(&plan.output_dir) {
        if !plan.force {
            return Err(BuildError::OutputNotEmpty(plan.output_dir.clone()));
        }
        std::fs::remove_dir_all(&plan.output_dir).map_err(io(&plan.output_dir))?;
    }
    std::fs::create_dir_all(&plan.output_dir).map_err(io(&plan.output_dir))?;
    std::fs::write(&plan.var_file, plan.var_file_text()).map_err(io(&plan.var_file))?;

    let packer = Packer {
        program: plan.build.program.clone(),
        cwd: plan.build.cwd.clone(),
    };
    let packer_version = packer.version().await?;
    if let Some(init) = &plan.init {
        ui.info(&format!("==> {init}"));
        init.output().await?;
    }
    ui.info("==> packer validate");
    packer::with_datasources(&plan.validate, &packer_version)
        .output()
        .await?;
    // A manifest outside the output directory survives from earlier runs; its run id then must
    // change, or Packer wrote nothing this time (an HCP Packer skip, an `-only` that matched
    // nothing) and the old entries would be recorded as this build's.
    let earlier_run = std::fs::read(&plan.manifest_path)
        .ok()
        .and_then(|b| Manifest::parse(&b).ok())
        .map(|m| m.last_run_uuid);

    ui.info(&format!(
        "==> packer build ({} {})",
        plan.image.name, plan.version
    ));
    ui.group_start(&format!(
        "packer build {} {}",
        plan.image.name, plan.version
    ));
    let started_at = Utc::now();
    let progress = Arc::new(ui.progress("packer build", None));
    // What Packer said of HCP Packer skipping builds, to explain a run that built nothing.
    let mut clues: Vec<String> = Vec::new();
    let heartbeat = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                progress.tick("building");
            }
        })
    };
    let supervision = Supervision {
        timeout: plan.timeout,
        grace: plan.interrupt_grace,
    };
    let result = packer::run_build(&plan.build, supervision, |event| match event {
        Event::Ui { level, text } => {
            if packer::is_hcp_skip(text) {
                clues.push(text.trim().to_string());
            }
            for line in text.trim_end().lines() {
                let shown = if *level == UiLevel::Error {
                    format!("  ! {line}")
                } else {
                    format!("  | {line}")
                };
                ui.line(&shown);
            }
            if let Some(last) = text.trim().lines().last() {
                progress.set_message(last);
            }
        }
        Event::Raw(text) if !text.trim().is_empty() => ui.line(&format!("  ! {text}")),
        _ => {}
    })
    .await;
    heartbeat.abort();
    progress.finish();
    ui.group_end();
    let output = result?;
    let finished_at = Utc::now();

    let manifest = match read_manifest(&plan.manifest_path) {
        // No manifest and no artifact reported: nothing ran, rather than a template without
        // the post-processor.
        Err(BuildError::NoManifest(path)) if output.artifacts.is_empty() => {
            return Err(BuildError::NothingBuilt {
                manifest: path,
                what: "was not written".into(),
                cause: skip_cause(plan, &clues),
            });
        }
        other => other?,
    };
    prove_built(plan, &manifest, earlier_run.as_deref(), &output, &clues)?;
    let artifacts = collect_artifacts(plan, &manifest, ui)?;
    let parent = plan.parent.as_ref().map(|p| ParentId {
        name: p.loaded.record.image.name.clone(),
        version: p.loaded.record.image.version.clone(),
        record_sha256: p.loaded.sha256,
    });
    let record = Record {
        schema_version: record::SCHEMA_VERSION,
        image: ImageId {
            name: plan.image.name.clone(),
            version: plan.version.clone(),
        },
        parent,
        source: plan.source.clone(),
        build: BuildInfo {
            packer_version,
            run_id: manifest.last_run_uuid,
            template: plan.template_display.clone(),
            started_at,
            finished_at,
            imagepipe_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        artifacts,
        scan: None,
        publish: None,
        replication: None,
        import: None,
    };
    let record_sha256 = record.write(&plan.record_path)?;
    Ok(Built {
        record,
        record_path: plan.record_path.clone(),
        record_sha256,
    })
}

fn read_manifest(path: &Path) -> Result<Manifest, BuildError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::NoManifest(path.to_path_buf()));
        }
        Err(source) => {
            return Err(BuildError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Manifest::parse(&bytes).map_err(|e| BuildError::Manifest {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Checks that this Packer run built something and that the manifest holds all of it: Packer
/// exits 0 when HCP Packer skips a build it considers done, or when `-only` matches nothing
/// (a warning only), and parallel builds can lose manifest entries.
fn prove_built(
    plan: &Plan,
    manifest: &Manifest,
    earlier_run: Option<&str>,
    output: &packer::BuildOutput,
    clues: &[String],
) -> Result<(), BuildError> {
    let nothing = |what: String| BuildError::NothingBuilt {
        manifest: plan.manifest_path.clone(),
        what,
        cause: skip_cause(plan, clues),
    };
    if earlier_run.is_some_and(|r| r == manifest.last_run_uuid) {
        return Err(nothing(format!(
            "still names the earlier run {} as its last",
            manifest.last_run_uuid
        )));
    }
    let builds = match manifest.last_run() {
        Ok(b) => b,
        Err(packer::manifest::ManifestError::NoBuilds(run)) => {
            return Err(nothing(format!("has no build of run {run}")));
        }
        Err(e) => {
            return Err(BuildError::Manifest {
                path: plan.manifest_path.clone(),
                reason: e.to_string(),
            });
        }
    };
    // Each build Packer reported files for must have its own entry. Targets are
    // `<type>.<source>`, or `<build block>.<type>.<source>` when the build block is named.
    let mut unmatched: Vec<&packer::ManifestBuild> = builds.clone();
    let mut missing = Vec::new();
    for target in output.targets_with_files() {
        let found = unmatched.iter().position(|b| {
            let short = format!("{}.{}", b.builder_type, b.name);
            target == short || target.ends_with(&format!(".{short}"))
        });
        match found {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(format!("`{target}`")),
        }
    }
    if !missing.is_empty() {
        return Err(BuildError::ManifestLostEntry {
            manifest: plan.manifest_path.clone(),
            missing: missing.join(", "),
        });
    }
    Ok(())
}

/// The likeliest reason a run built nothing, from what Packer said and the environment.
fn skip_cause(plan: &Plan, clues: &[String]) -> String {
    let hcp_env: Vec<&str> = ["HCP_PACKER_BUCKET_NAME", "HCP_PACKER_REGISTRY"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .collect();
    let hcp_said = clues.first();
    if hcp_said.is_some() || !hcp_env.is_empty() {
        let said = hcp_said
            .map(|c| format!(" (Packer said: {c})"))
            .unwrap_or_default();
        let env = if hcp_env.is_empty() {
            String::new()
        } else {
            format!(" {} is set in the environment;", hcp_env.join(" and "))
        };
        return format!(
            "HCP Packer skipped a build it counts as done{said}.{env} unset the HCP Packer \
             variables for imagepipe builds, or remove the template's `hcp_packer_registry` block"
        );
    }
    if !plan.image.only.is_empty() {
        return format!(
            "`only = {:?}` matched no build (Packer only warns). Since a `build` block with a \
             `name` renames its builds to `<build>.<type>.<source>`, list them by that name; \
             `packer inspect` shows them",
            plan.image.only
        );
    }
    "no build ran (check the template's `build` blocks and that the manifest post-processor \
     writes to var.imagepipe_manifest or the image's `manifest`)"
        .to_string()
}

/// Turns this run's manifest builds into record artifacts, hashing every file.
fn collect_artifacts(
    plan: &Plan,
    manifest: &Manifest,
    ui: &Ui,
) -> Result<Vec<Artifact>, BuildError> {
    let builds = manifest.last_run().map_err(|e| BuildError::Manifest {
        path: plan.manifest_path.clone(),
        reason: e.to_string(),
    })?;
    let record_dir = crate::fsutil::parent_dir(&plan.record_path).to_path_buf();
    // The vSphere plugin's artifact lists every file of its output_directory. When that is
    // imagepipe's output directory, imagepipe's own files are among them: never artifacts.
    let own: Vec<PathBuf> = [
        plan.var_file.clone(),
        plan.manifest_path.clone(),
        PathBuf::from(format!("{}.lock", plan.manifest_path.display())),
        plan.record_path.clone(),
    ]
    .iter()
    .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
    .collect();
    let is_own = |path: &Path| {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        own.contains(&path)
    };
    let mut pending: Vec<(String, String, String, PathBuf)> = Vec::new();
    let mut artifacts: Vec<Artifact> = Vec::new();
    for b in builds {
        let build = format!("{}.{}", b.builder_type, b.name);
        let listed = b.files.as_deref().unwrap_or_default();
        let files: Vec<_> = listed
            .iter()
            .filter(|f| {
                let own = is_own(&plan.build.cwd.join(&f.name));
                if own {
                    ui.warn(&format!(
                        "{build} lists imagepipe's own file {} as an artifact (its output \
                         directory is imagepipe's); it is left out. Give the builder an \
                         output_directory of its own, e.g. \"${{var.imagepipe_output_dir}}/export\"",
                        f.name
                    ));
                }
                !own
            })
            .collect();
        if files.is_empty() {
            // The null builder reports a placeholder id; it produced nothing to record.
            if b.builder_type == "null" || b.artifact_id.is_empty() {
                ui.info(&format!("  {build} produced no artifact"));
            } else {
                artifacts.push(Artifact {
                    name: b.name.clone(),
                    build,
                    kind: ArtifactKind::Remote {
                        id: b.artifact_id.clone(),
                    },
                });
            }
            continue;
        }
        for f in &files {
            let path = plan.build.cwd.join(&f.name);
            let logical = if files.len() == 1 {
                b.name.clone()
            } else {
                format!(
                    "{}/{}",
                    b.name,
                    Path::new(&f.name)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(&f.name)
                )
            };
            pending.push((logical, build.clone(), b.builder_type.clone(), path));
        }
    }
    let mut basenames = BTreeSet::new();
    for (_, _, _, path) in &pending {
        let name = store::stored_file_name("output", path)
            .map_err(|_| BuildError::BadFileName(path.clone()))?;
        if !basenames.insert(name.clone()) {
            return Err(BuildError::DuplicateFileName(name));
        }
    }
    let paths: Vec<PathBuf> = pending.iter().map(|p| p.3.clone()).collect();
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let progress = ui.progress("hashing artifacts", Some(total));
    let digests = hash::hash_files(&paths, hash::default_workers(), &|done| progress.set(done));
    progress.finish();
    for ((name, build, builder_type, path), digest) in pending.into_iter().zip(digests) {
        let d = digest.map_err(|source| BuildError::Hash {
            path: path.clone(),
            source,
        })?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let role = Role::classify(&builder_type, file_name, d.format);
        let shown = path
            .strip_prefix(&record_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        artifacts.push(Artifact {
            name,
            build,
            kind: ArtifactKind::File(FileArtifact {
                path: shown,
                size: d.size,
                sha256: d.sha256,
                format: d.format,
                role,
            }),
        });
    }
    // Disks (and ids) first: a child's `imagepipe_parent_artifact` is the first artifact.
    artifacts.sort_by_key(|a| a.rank());
    let mut names = BTreeSet::new();
    for a in &artifacts {
        if !names.insert(a.name.as_str()) {
            return Err(BuildError::DuplicateFileName(a.name.clone()));
        }
    }
    Ok(artifacts)
}

/// Reports a finished build on every channel of the step contract.
pub fn report(ui: &Ui, plan: &Plan, built: &Built) -> std::io::Result<()> {
    let r = &built.record;
    let took = (r.build.finished_at - r.build.started_at)
        .num_seconds()
        .max(0) as u64;
    ui.info(&format!(
        "built {} {} in {}",
        r.image.name,
        r.image.version,
        humantime::format_duration(Duration::from_secs(took))
    ));
    let mut rows = Vec::new();
    for a in &r.artifacts {
        match &a.kind {
            ArtifactKind::File(f) => {
                ui.info(&format!(
                    "  {:<12} {:<6} {:>10}  sha256:{}  {}",
                    a.name,
                    f.format,
                    indicatif::HumanBytes(f.size).to_string(),
                    f.sha256,
                    f.path
                ));
                rows.push(format!(
                    "| `{}` | {} | {} | `{}` |",
                    a.name,
                    f.format,
                    indicatif::HumanBytes(f.size),
                    f.sha256
                ));
            }
            ArtifactKind::Remote { id } => {
                ui.info(&format!("  {:<12} id {id}", a.name));
                rows.push(format!("| `{}` | id | | `{id}` |", a.name));
            }
        }
    }
    ui.info(&format!(
        "record {} (sha256 {})",
        built.record_path.display(),
        built.record_sha256
    ));
    if r.source.dirty {
        ui.warn(
            "the work tree had uncommitted changes: this build is not reproducible from its commit",
        );
    }

    ui.output("image", r.image.name.as_str())?;
    ui.output("version", &r.image.version.to_string())?;
    ui.output("record", &built.record_path.display().to_string())?;
    ui.output("record-sha256", &built.record_sha256.to_string())?;
    ui.output("output-dir", &plan.output_dir.display().to_string())?;
    ui.output(
        "artifacts",
        &serde_json::to_string(&serde_json::to_value(&r.artifacts).unwrap_or_default())
            .unwrap_or_default(),
    )?;
    let parent = match &r.parent {
        Some(p) => format!("{}@{}", p.name, p.version),
        None => "none".into(),
    };
    ui.summary(&format!(
        "### imagepipe-build: `{}` {}\n\nParent: `{parent}` · commit `{}` · Packer {}\n\n| artifact | format | size | sha256 / id |\n| --- | --- | --- | --- |\n{}\n",
        r.image.name,
        r.image.version,
        r.source.commit.as_deref().unwrap_or("unknown"),
        r.build.packer_version,
        rows.join("\n")
    ))?;
    ui.json(&serde_json::json!({
        "image": r.image.name,
        "version": r.image.version.to_string(),
        "record": built.record_path,
        "record_sha256": built.record_sha256,
        "record_content": serde_json::to_value(r).unwrap_or_default(),
    }));
    Ok(())
}
