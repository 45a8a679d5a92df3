//! The fleet view: every image of the configuration, its published versions, their scan state,
//! which sites' stores hold them and what their records say about library imports, and which
//! children were built on a parent older than the newest their requirement accepts.
//!
//! Each store is asked once for what it holds (`Store::list_held`: one AQL query for the whole
//! repository on Artifactory, the tag list of each image's repository on an OCI registry, a
//! directory walk on a local store), never once per version and site. Only the primary store's records are read, one per version, for the
//! scan state and the parent. A site whose store does not answer, or refuses the credentials,
//! is shown as such for every version, never as "absent"; a record that does not parse is
//! named, and the rest of the view still renders.

mod html;

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use semver::Version;
use serde::Serialize;

use crate::config::Config;
use crate::image::{ImageName, ImageRef};
use crate::lifecycle;
use crate::record::{GateStatus, Record};
use crate::store::{self, StoreError};

/// Whether a site's store holds a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Presence {
    Present,
    Absent,
    /// The store did not answer (or answered nonsense): nothing is known.
    Unreachable(String),
    /// The store refused the credentials: nothing is known.
    Unauthorised(String),
}

impl Presence {
    fn cell(&self) -> &'static str {
        match self {
            Self::Present => "yes",
            Self::Absent => "ABSENT",
            Self::Unreachable(_) => "unreachable",
            Self::Unauthorised(_) => "unauthorised",
        }
    }
}

/// One version of an image.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub version: Version,
    /// `passed`, `failed`, `overridden`, or `None` when the record has no scan section.
    pub scan: Option<String>,
    /// `name@version` of the parent it was built on.
    pub parent: Option<String>,
    /// The newest parent version the image's requirement accepts, when this version was built
    /// on an older one.
    pub out_of_date: Option<String>,
    /// Per site (by name): whether its store holds the version.
    pub sites: BTreeMap<String, Presence>,
    /// Per site: the library item and the deploy check result the record's import section has.
    pub imports: BTreeMap<String, ImportState>,
    /// Why the primary store's record of this version could not be read, when it could not.
    pub record_error: Option<String>,
    /// The channels that point at this version (`imagepipe-lifecycle promote`).
    pub channels: Vec<String>,
    /// The version's revocation, when it has one: when it takes effect, who, and why.
    pub revoked: Option<String>,
}

/// What a record's import section says about a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportState {
    pub library: String,
    pub item: String,
    pub imported_at: String,
    /// `running`, `refused`, `not_running`, `error`, when a deploy check ran.
    pub deploy_check: Option<String>,
    /// vCenter's reason when the deploy check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    pub name: ImageName,
    /// The parent image and its version requirement, from `imagepipe.toml`.
    pub parent: Option<String>,
    pub requirement: Option<String>,
    /// Newest first.
    pub versions: Vec<VersionView>,
    /// Why the primary store could not list this image's versions, when it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub sites: Vec<String>,
    pub images: Vec<ImageView>,
}

/// What the view takes from a version's record.
struct Summary {
    /// `passed`, `failed`, `overridden`, or `None` when the record has no scan section.
    scan: Option<String>,
    parent: Option<Parent>,
    import: Option<crate::record::ImportSection>,
}

struct Parent {
    name: ImageName,
    version: Version,
}

impl Summary {
    fn of(r: Record) -> Self {
        Self {
            scan: r.scan.as_ref().map(|s| gate(s.status).to_string()),
            parent: r.parent.map(|p| Parent {
                name: p.name,
                version: p.version,
            }),
            import: r.import,
        }
    }

    /// From the record's properties (`crate::publish::properties`), when it has both.
    fn from_properties(props: &BTreeMap<String, String>) -> Option<Self> {
        let scan = match props.get("scan.status")?.as_str() {
            "none" => None,
            s @ ("passed" | "failed" | "overridden") => Some(s.to_string()),
            _ => return None,
        };
        let parent = match props.get("image.parent")?.as_str() {
            "" => None,
            p => {
                let (name, version) = p.rsplit_once('@')?;
                Some(Parent {
                    name: name.parse().ok()?,
                    version: version.parse().ok()?,
                })
            }
        };
        Some(Self {
            scan,
            parent,
            import: None,
        })
    }
}

/// Per site, per image: the versions its store holds, or why it could not say.
type SiteLists = Vec<Vec<Result<Vec<Version>, Presence>>>;

/// How a store's failure shows in the view.
fn presence_of_error(e: &StoreError) -> Presence {
    match e {
        StoreError::Unauthorized { .. } => Presence::Unauthorised(e.to_string()),
        _ => Presence::Unreachable(e.to_string()),
    }
}

/// Gathers the view: `concurrency` store queries at once.
pub async fn gather(config: &Config, concurrency: usize) -> Fleet {
    let concurrency = concurrency.max(1);
    let primary = store::open(&config.store);
    let sites: Vec<String> = config.sites.iter().map(|s| s.name.clone()).collect();

    // The primary store's versions per image: one "what do you hold" query.
    let names: Vec<ImageName> = config.images.iter().map(|i| i.name.clone()).collect();
    let listed = async {
        let listed: Vec<Result<Vec<Version>, String>> = match &primary {
            Ok(p) => match p.list_held(&names).await {
                Ok(mut held) => names
                    .iter()
                    .map(|n| {
                        let mut v = held
                            .remove(n)
                            .unwrap_or(Ok(Vec::new()))
                            .map_err(|e| e.to_string())?;
                        // Newest first, each once (a page boundary moved by a publish can
                        // repeat one).
                        v.sort_by(|a, b| b.cmp(a));
                        v.dedup();
                        Ok(v)
                    })
                    .collect(),
                Err(e) => names.iter().map(|_| Err(e.to_string())).collect(),
            },
            Err(e) => config.images.iter().map(|_| Err(e.to_string())).collect(),
        };
        listed
    };

    let properties = async {
        match &primary {
            Ok(p) => p
                .record_properties(&names)
                .await
                .ok()
                .flatten()
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        }
    };

    let with_lifecycle = async {
        match &primary {
            Ok(p) => p.lifecycle_held(&names).await.ok().flatten(),
            Err(_) => None,
        }
    };

    // Each site's store: one "what do you hold" query for all the images (one AQL query on
    // Artifactory, a tag list per repository on a registry, a directory walk on a local store).
    let site_lists = futures_util::stream::iter(config.sites.iter().map(|site| {
        let names = &names;
        async move {
            let held = match store::open(&site.store) {
                Ok(s) => s.list_held(names).await,
                Err(e) => Err(e),
            };
            match held {
                Ok(mut held) => names
                    .iter()
                    .map(|n| {
                        held.remove(n)
                            .unwrap_or(Ok(Vec::new()))
                            .map_err(|e| presence_of_error(&e))
                    })
                    .collect(),
                Err(e) => names.iter().map(|_| Err(presence_of_error(&e))).collect(),
            }
        }
    }))
    .buffered(concurrency)
    .collect::<SiteLists>();

    // The four queries that need nothing from each other go at once: the primary's listing,
    // its records' properties, which images have lifecycle documents, and every site's
    // listing.
    let (listed, properties, with_lifecycle, site_lists) =
        futures_util::join!(listed, properties, with_lifecycle, site_lists);

    // What the view takes from each version's record: the scan state and the parent. Where the
    // primary store gives every record's properties in one query (Artifactory's AQL), they are
    // taken from there: `imagepipe-publish` sets `scan.status` and `image.parent` on the record
    // from the record itself, and a published record is never rewritten. A version without
    // them (published without the Annotate permission, which drops properties, or by an older
    // release) has its record read, as every version is on other stores. The local record
    // under output_dir adds the import section, which imagepipe-import writes only there.
    let wanted: Vec<ImageRef> = config
        .images
        .iter()
        .zip(&listed)
        .flat_map(|(i, l)| {
            l.iter().flatten().map(|v| ImageRef {
                name: i.name.clone(),
                version: v.clone(),
            })
        })
        .collect();
    let records: BTreeMap<(String, Version), Result<Summary, String>> = match &primary {
        Ok(p) => {
            futures_util::stream::iter(wanted.iter().map(|id| {
                let p = p.as_ref();
                let known = properties
                    .get(&(id.name.clone(), id.version.clone()))
                    .and_then(Summary::from_properties);
                async move {
                    let stored = match known {
                        Some(s) => Ok(s),
                        None => p
                            .fetch_record(id)
                            .await
                            .map(|l| Summary::of(l.record))
                            .map_err(|e| e.to_string()),
                    };
                    let local = config
                        .output_dir
                        .join(id.name.as_str())
                        .join(id.version.to_string())
                        .join(crate::record::FILE_NAME);
                    let stored = match stored {
                        Ok(mut r) if local.is_file() => {
                            if let Ok(l) = Record::read(&local)
                                && l.record.id() == *id
                                && l.record.import.is_some()
                            {
                                r.import = l.record.import;
                            }
                            Ok(r)
                        }
                        other => other,
                    };
                    ((id.name.to_string(), id.version.clone()), stored)
                }
            }))
            .buffered(concurrency)
            .collect()
            .await
        }
        Err(_) => BTreeMap::new(),
    };

    // Each image's channels and revocations: its channels document and one document per revoked
    // version in the primary store (a listing finds those). An
    // image without lifecycle documents has neither; a document that cannot be read is named
    // on the image, and its versions show no channel or revocation rather than a wrong one.
    // Where the store lists every image's documents in one query (Artifactory), no image is
    // listed again and only the documents that exist are read.
    let lifecycle: Vec<Result<(lifecycle::Channels, lifecycle::Revocations), String>> =
        match &primary {
            Ok(p) => {
                futures_util::stream::iter(config.images.iter().map(|image| {
                    let p = p.as_ref();
                    // The keys the one query found (none: the image has no documents), or
                    // `None` where the store has no such query and each image is listed.
                    let keys = with_lifecycle
                        .as_ref()
                        .map(|held| held.get(&image.name).cloned().unwrap_or_default());
                    async move {
                        let (channels, revocations) = match &keys {
                            Some(keys) => (
                                if lifecycle::has_channels(keys) {
                                    lifecycle::channels(p, &image.name).await
                                } else {
                                    Ok(Default::default())
                                },
                                lifecycle::revocations_among(p, &image.name, keys).await,
                            ),
                            None => (
                                lifecycle::channels(p, &image.name).await,
                                lifecycle::revocations(p, &image.name).await,
                            ),
                        };
                        match (channels, revocations) {
                            (Ok(c), Ok(r)) => Ok((c, r)),
                            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                        }
                    }
                }))
                .buffered(concurrency)
                .collect()
                .await
            }
            Err(e) => config.images.iter().map(|_| Err(e.to_string())).collect(),
        };
    let now = lifecycle::now();

    let mut images = Vec::new();
    for (i, image) in config.images.iter().enumerate() {
        // The newest parent version the requirement accepts, among the parent's published and
        // unrevoked ones; with `parent_version = "channel:NAME"`, the version the channel holds.
        let newest_parent = image.parent.as_ref().and_then(|p| {
            let at = config.images.iter().position(|c| c.name == p.name)?;
            let (channels, revocations) = lifecycle[at].as_ref().ok()?;
            if let Some(channel) = &p.channel {
                return channels.channels.get(channel).map(|c| c.version.clone());
            }
            revocations
                .newest_accepted(listed[at].as_ref().ok()?, &p.requirement, now)
                .cloned()
        });
        let mut versions = Vec::new();
        for (n, v) in listed[i].iter().flatten().enumerate() {
            let id = ImageRef {
                name: image.name.clone(),
                version: v.clone(),
            };
            let record = records.get(&(id.name.to_string(), id.version.clone()));
            let (scan, parent, imports, record_error) = match record {
                Some(Ok(r)) => (
                    r.scan.clone(),
                    r.parent.as_ref(),
                    r.import
                        .iter()
                        .flat_map(|s| &s.sites)
                        .map(|s| {
                            (
                                s.site.clone(),
                                ImportState {
                                    library: s.library.clone(),
                                    item: s.item.clone(),
                                    imported_at: s.imported_at.to_rfc3339(),
                                    deploy_check: s
                                        .deploy_check
                                        .as_ref()
                                        .map(|d| d.result.as_str().to_string()),
                                    deploy_reason: s
                                        .deploy_check
                                        .as_ref()
                                        .and_then(|d| d.reason.clone()),
                                },
                            )
                        })
                        .collect(),
                    None,
                ),
                Some(Err(e)) => (None, None, BTreeMap::new(), Some(e.clone())),
                None => (None, None, BTreeMap::new(), None),
            };
            // Only the image's newest version counts: older ones were superseded anyway.
            let out_of_date = match (parent, &newest_parent) {
                (Some(p), Some(newest)) if n == 0 && &p.version < newest => {
                    Some(format!("{}@{newest}", p.name))
                }
                _ => None,
            };
            let sites = config
                .sites
                .iter()
                .zip(&site_lists)
                .map(|(s, lists)| {
                    let presence = match &lists[i] {
                        Ok(held) if held.contains(v) => Presence::Present,
                        Ok(_) => Presence::Absent,
                        Err(p) => p.clone(),
                    };
                    (s.name.clone(), presence)
                })
                .collect();
            versions.push(VersionView {
                version: v.clone(),
                scan,
                parent: parent.map(|p| format!("{}@{}", p.name, p.version)),
                out_of_date,
                sites,
                imports,
                record_error,
                channels: lifecycle[i]
                    .as_ref()
                    .map(|(c, _)| {
                        c.channels
                            .iter()
                            .filter(|(_, c)| &c.version == v)
                            .map(|(name, _)| name.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                revoked: lifecycle[i]
                    .as_ref()
                    .ok()
                    .and_then(|(_, r)| r.get(v).map(|r| r.describe(now))),
            });
        }
        images.push(ImageView {
            name: image.name.clone(),
            parent: image.parent.as_ref().map(|p| p.name.to_string()),
            requirement: image.parent.as_ref().map(|p| p.requirement.to_string()),
            versions,
            error: listed[i].as_ref().err().cloned().or_else(|| {
                lifecycle[i]
                    .as_ref()
                    .err()
                    .map(|e| format!("channels and revocations: {e}"))
            }),
        });
    }
    Fleet { sites, images }
}

fn gate(s: GateStatus) -> &'static str {
    match s {
        GateStatus::Passed => "passed",
        GateStatus::Failed => "failed",
        GateStatus::Overridden => "overridden",
    }
}

impl Fleet {
    /// The table for people: one row per image version, one column per site (its store's
    /// presence, and `+item` when the record says it was imported there).
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut head = vec![
            "image".to_string(),
            "version".into(),
            "scan".into(),
            "parent".into(),
        ];
        head.extend(self.sites.iter().cloned());
        head.push("notes".into());
        rows.push(head);
        let mut notes_below = Vec::new();
        for image in &self.images {
            if let Some(e) = &image.error {
                notes_below.push(format!("{}: the primary store: {e}", image.name));
            }
            for v in &image.versions {
                let mut row = vec![
                    image.name.to_string(),
                    v.version.to_string(),
                    v.scan.clone().unwrap_or_else(|| "-".into()),
                    v.parent.clone().unwrap_or_else(|| "-".into()),
                ];
                for site in &self.sites {
                    let mut cell = v.sites.get(site).map_or("-", Presence::cell).to_string();
                    if let Some(i) = v.imports.get(site) {
                        cell.push_str(" +item");
                        if let Some(d) = &i.deploy_check {
                            cell.push_str(&format!(" ({d})"));
                        }
                    }
                    row.push(cell);
                }
                let mut notes = Vec::new();
                if !v.channels.is_empty() {
                    notes.push(format!("channel {}", v.channels.join(", ")));
                }
                if let Some(r) = &v.revoked {
                    notes.push(r.clone());
                }
                if let Some(p) = &v.out_of_date {
                    notes.push(format!("OUT OF DATE: {p} is newer"));
                }
                if let Some(e) = &v.record_error {
                    notes.push("record unreadable".into());
                    notes_below.push(format!("{}@{}: {e}", image.name, v.version));
                }
                row.push(notes.join("; "));
                rows.push(row);
            }
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        // The sites whose store could not say: once each, with the reason.
        let mut seen = std::collections::BTreeSet::new();
        for image in &self.images {
            for v in &image.versions {
                for (site, p) in &v.sites {
                    if let Presence::Unreachable(why) | Presence::Unauthorised(why) = p
                        && seen.insert(site.clone())
                    {
                        notes_below.push(format!("site {site}: {} ({why})", p.cell()));
                    }
                }
            }
        }
        for n in notes_below {
            out.push_str(&n);
            out.push('\n');
        }
        out
    }

    /// The step summary: the table in Markdown and a Mermaid graph of the lineage (each image
    /// version, an edge from the parent version it was built on; out-of-date ones marked).
    pub fn summary(&self) -> String {
        let mut md = String::from("### imagepipe-fleet\n\n| image | version | scan | parent |");
        for s in &self.sites {
            md.push_str(&format!(" {s} |"));
        }
        md.push_str(" notes |\n| --- | --- | --- | --- |");
        for _ in &self.sites {
            md.push_str(" --- |");
        }
        md.push_str(" --- |\n");
        for image in &self.images {
            for v in &image.versions {
                md.push_str(&format!(
                    "| `{}` | {} | {} | {} |",
                    image.name,
                    v.version,
                    v.scan.as_deref().unwrap_or("-"),
                    v.parent.as_deref().unwrap_or("-")
                ));
                for s in &self.sites {
                    let cell = v.sites.get(s).map_or("-", Presence::cell);
                    let item = if v.imports.contains_key(s) {
                        " +item"
                    } else {
                        ""
                    };
                    md.push_str(&format!(" {cell}{item} |"));
                }
                let mut notes = Vec::new();
                if !v.channels.is_empty() {
                    notes.push(format!("channel {}", v.channels.join(", ")));
                }
                if let Some(r) = &v.revoked {
                    notes.push(format!("**{r}**"));
                }
                if let Some(p) = &v.out_of_date {
                    notes.push(format!("**out of date**: {p} is newer"));
                }
                if v.record_error.is_some() {
                    notes.push("record unreadable".to_string());
                }
                md.push_str(&format!(" {} |\n", notes.join("; ")));
            }
        }
        md.push_str("\n```mermaid\ngraph LR\n");
        let node = |name: &str, v: &str| {
            format!(
                "n_{}",
                format!("{name}_{v}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            )
        };
        let mut stale = Vec::new();
        for image in &self.images {
            for v in &image.versions {
                let id = node(image.name.as_str(), &v.version.to_string());
                md.push_str(&format!("  {id}[\"{}@{}\"]\n", image.name, v.version));
                if let Some(p) = &v.parent
                    && let Some((pn, pv)) = p.rsplit_once('@')
                {
                    md.push_str(&format!("  {} --> {id}\n", node(pn, pv)));
                }
                if v.out_of_date.is_some() {
                    stale.push(id);
                }
            }
        }
        if !stale.is_empty() {
            md.push_str("  classDef stale fill:#fdd,stroke:#c00\n");
            md.push_str(&format!("  class {} stale\n", stale.join(",")));
        }
        md.push_str("```\n");
        md
    }

    /// Whether any version is out of date, absent at a site, or unreadable: the view's check.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for image in &self.images {
            if let Some(e) = &image.error {
                out.push(format!("{}: {e}", image.name));
            }
            for v in &image.versions {
                if let Some(p) = &v.out_of_date {
                    out.push(format!(
                        "{}@{} was built on {}, but {p} is newer and accepted",
                        image.name,
                        v.version,
                        v.parent.as_deref().unwrap_or("?")
                    ));
                }
                if let Some(e) = &v.record_error {
                    out.push(format!(
                        "{}@{}: the record cannot be read: {e}",
                        image.name, v.version
                    ));
                }
            }
        }
        out
    }
}
