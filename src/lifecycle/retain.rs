//! Retention: keep the newest N versions of an image in every store and library, and never
//! delete a version a channel points at or an unrevoked child was built on.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use semver::Version;
use serde::Serialize;

use super::{LibraryPrune, LifecycleError};
use crate::config::{Config, Site};
use crate::image::{ImageName, ImageRef};
use crate::store::Store;

/// A version that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retained {
    pub version: Version,
    pub reasons: Vec<String>,
}

/// What retention keeps and deletes of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    pub image: ImageName,
    pub keep: Vec<Retained>,
    /// Newest first.
    pub delete: Vec<Version>,
}

impl RetentionPlan {
    /// The plan as people read it.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: keep {}, delete {}\n",
            self.image,
            self.keep.len(),
            self.delete.len()
        );
        for k in &self.keep {
            out.push_str(&format!(
                "  keep    {}  ({})\n",
                k.version,
                k.reasons.join("; ")
            ));
        }
        for d in &self.delete {
            out.push_str(&format!("  delete  {d}\n"));
        }
        out
    }
}

/// The plan for one image: the newest `keep` versions stay, and so does every version a
/// channel points at and every version an unrevoked child (in the store) was built on.
pub async fn plan_retention(
    store: &dyn Store,
    config: &Config,
    image: &ImageName,
    keep: usize,
    now: DateTime<Utc>,
) -> Result<RetentionPlan, LifecycleError> {
    let mut versions = store.list_versions(image).await?;
    versions.sort_by(|a, b| b.cmp(a));
    let mut reasons: BTreeMap<Version, Vec<String>> = BTreeMap::new();
    for v in versions.iter().take(keep) {
        reasons
            .entry(v.clone())
            .or_default()
            .push(format!("one of the newest {keep}"));
    }
    for (name, ch) in super::channels(store, image).await?.channels {
        reasons
            .entry(ch.version.clone())
            .or_default()
            .push(format!("channel `{name}`"));
    }
    for child_image in &config.images {
        if child_image.parent.as_ref().is_none_or(|p| p.name != *image) {
            continue;
        }
        let revoked = super::revocations(store, &child_image.name).await?;
        for v in store.list_versions(&child_image.name).await? {
            if revoked.is_revoked(&v, now) {
                continue;
            }
            let child = ImageRef {
                name: child_image.name.clone(),
                version: v,
            };
            let record = store.fetch_record(&child).await?.record;
            if let Some(p) = record.parent.filter(|p| p.name == *image) {
                reasons
                    .entry(p.version)
                    .or_default()
                    .push(format!("parent of {child}"));
            }
        }
    }
    let mut plan = RetentionPlan {
        image: image.clone(),
        keep: Vec::new(),
        delete: Vec::new(),
    };
    for v in versions {
        match reasons.remove(&v) {
            Some(r) => plan.keep.push(Retained {
                version: v,
                reasons: r,
            }),
            None => plan.delete.push(v),
        }
    }
    Ok(plan)
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionResult {
    /// Per store (`location`): the versions deleted there.
    pub stores: BTreeMap<String, Vec<String>>,
    pub libraries: Vec<LibraryPrune>,
}

/// The versions a retention run is deleting, kept in the primary store while it does: a run
/// that fails half way (a store or a library down) leaves versions whose record is gone and so
/// are no longer listed, and the next run finishes them from here first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
struct Deleting {
    versions: Vec<Version>,
}

const DELETING_KEY: &str = "deleting";

/// Applies a plan: the versions' items leave every site's library, then the versions leave
/// every site's store, then the primary store, each record first. The plan is made again under
/// the image's lifecycle lock, so a promotion made since is respected. What is being deleted is
/// noted in the primary store first, so a run that fails half way is finished by the next.
pub async fn apply_retention(
    store: &dyn Store,
    config: &Config,
    sites: &[Site],
    image: &ImageName,
    keep: usize,
    now: DateTime<Utc>,
) -> Result<(RetentionPlan, RetentionResult), LifecycleError> {
    let _lock = store.lock_lifecycle(image).await?;
    let plan = plan_retention(store, config, image, keep, now).await?;
    let pending: Deleting = super::read_doc(store, image, DELETING_KEY, "retention").await?;
    let mut delete: Vec<Version> = plan.delete.clone();
    for v in pending.versions {
        if !delete.contains(&v) && !plan.keep.iter().any(|k| k.version == v) {
            delete.push(v);
        }
    }
    let mut result = RetentionResult::default();
    if delete.is_empty() {
        return Ok((plan, result));
    }
    let note = Deleting {
        versions: delete.clone(),
    };
    super::write_doc(store, image, DELETING_KEY, "retention", &note, |d| {
        *d == note
    })
    .await?;
    let versions: BTreeSet<Version> = delete.iter().cloned().collect();
    result.libraries =
        super::remove_from_libraries(sites, &BTreeMap::from([(image.clone(), versions)])).await;
    if let Some(failed) = result.libraries.iter().find(|l| l.error.is_some()) {
        return Err(LifecycleError::Refused(format!(
            "site {}: {}; nothing was deleted from the stores: run again once the library is \
             reachable",
            failed.site,
            failed.error.as_deref().unwrap_or_default()
        )));
    }
    let primary = store.location();
    for site in sites {
        let site_store = crate::store::open(&site.store)?;
        if site_store.location() == primary {
            continue;
        }
        let deleted = delete_all(site_store.as_ref(), image, &delete).await?;
        result.stores.insert(site_store.location(), deleted);
    }
    let deleted = delete_all(store, image, &delete).await?;
    result.stores.insert(primary, deleted);
    let done = Deleting::default();
    super::write_doc(store, image, DELETING_KEY, "retention", &done, |_| true).await?;
    Ok((plan, result))
}

async fn delete_all(
    store: &dyn Store,
    image: &ImageName,
    versions: &[Version],
) -> Result<Vec<String>, LifecycleError> {
    let present: BTreeSet<Version> = store.list_versions(image).await?.into_iter().collect();
    let mut deleted = Vec::new();
    for v in versions {
        let id = ImageRef {
            name: image.clone(),
            version: v.clone(),
        };
        // Also for a version no longer listed: it removes what a failed run left of it.
        store.delete_version(&id).await?;
        if present.contains(v) {
            deleted.push(v.to_string());
        }
    }
    Ok(deleted)
}

/// A channel whose history retention shortens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryTrim {
    pub channel: String,
    /// Assignments before, and after.
    pub before: usize,
    pub after: usize,
}

/// The channels of an image whose history has more than `keep` assignments.
pub async fn plan_history(
    store: &dyn Store,
    image: &ImageName,
    keep: usize,
) -> Result<Vec<HistoryTrim>, LifecycleError> {
    Ok(trims(&super::channels(store, image).await?, keep))
}

fn trims(doc: &super::Channels, keep: usize) -> Vec<HistoryTrim> {
    doc.channels
        .iter()
        .filter(|(_, c)| c.history.len() > keep)
        .map(|(name, c)| HistoryTrim {
            channel: name.clone(),
            before: c.history.len(),
            after: keep,
        })
        .collect()
}

/// Keeps the newest `keep` assignments of each channel's history (at least one: the current
/// one). The oldest kept entry's `previous` still names the version before it, so a rollback
/// over the shortened history still has somewhere to go. Like a promotion, it reads the
/// document back: one that a promotion replaced in between is that promotion's, and is
/// shortened by the next run.
pub async fn apply_history(
    store: &dyn Store,
    image: &ImageName,
    keep: usize,
) -> Result<Vec<HistoryTrim>, LifecycleError> {
    let keep = keep.max(1);
    let _lock = store.lock_lifecycle(image).await?;
    let mut doc = super::channels(store, image).await?;
    let trimmed = trims(&doc, keep);
    if trimmed.is_empty() {
        return Ok(trimmed);
    }
    for c in doc.channels.values_mut() {
        let extra = c.history.len().saturating_sub(keep);
        c.history.drain(..extra);
    }
    let expect = doc.clone();
    if let Some(now) = super::write_doc(store, image, super::CHANNELS_KEY, "channels", &doc, |d| {
        *d == expect
    })
    .await?
    {
        return Err(LifecycleError::LostRace {
            what: "channel history retention",
            image: image.clone(),
            store: store.location(),
            now: format!(
                "channels {}",
                now.channels
                    .iter()
                    .map(|(n, c)| format!("{n} → {}", c.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(trimmed)
}
