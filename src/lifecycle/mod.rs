//! The lifecycle of published image versions: channels, revocation, library pruning and
//! retention (`imagepipe-lifecycle`, see `docs/lifecycle.md`).
//!
//! Everything here is kept in the stores themselves, as small JSON documents that every
//! backend replaces atomically ([`Store::write_lifecycle`]):
//!
//! - `channels`, one per image: each channel's version and the history of its assignments
//!   (who, when, the version before), so that a rollback is one command. Each store also marks
//!   the channel on the version its own way ([`Store::mark_channel`]): an item property in
//!   Artifactory, a tag in a registry.
//! - `revoked-<version>`, one per revoked version: who, when, why and from when it holds.
//!   Revocations of different versions never write the same document, so none can replace
//!   another on a store without locks.
//!
//! A change reads the document, changes it and writes it whole. A local store serialises the
//! writers of an image with a lock; elsewhere the writer reads the document back after writing
//! it, and a promotion whose change is not there lost a race: it says so, and the document is
//! the other writer's, whole (never a mix of both).

mod libraries;
mod retain;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::image::{ImageName, ImageRef};
use crate::store::{Store, StoreError};

pub use libraries::revoked_versions;
pub use libraries::{LibraryPrune, prune_libraries, remove_from_libraries, remove_from_library};
pub use retain::{
    HistoryTrim, Retained, RetentionPlan, RetentionResult, apply_history, apply_retention,
    plan_history, plan_retention,
};

pub use crate::image::{CHANNEL_PREFIX, channel_name};

const CHANNELS_KEY: &str = "channels";
/// Each revoked version has its own document, `revoked-<version>` (`+` as `_`, as a registry
/// tag must): revocations of different versions never write the same document, so none can
/// replace another, and a cascade's versions are each one write.
const REVOKED_PREFIX: &str = "revoked-";

fn revocation_key(version: &Version) -> String {
    format!("{REVOKED_PREFIX}{}", version.to_string().replace('+', "_"))
}

fn revocation_key_version(key: &str) -> Option<Version> {
    Version::parse(&key.strip_prefix(REVOKED_PREFIX)?.replace('_', "+")).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "`{0}` is not a channel name: use ASCII letters, digits, `.`, `_` and `-` (for example \
         `prod`), starting with a letter or digit"
    )]
    BadChannel(String),
    #[error("{image} has no channel `{channel}` in {store}; promote a version to it first")]
    NoChannel {
        image: ImageName,
        channel: String,
        store: String,
    },
    #[error(
        "{image} is revoked in {store} (by {by} at {at}): {reason}; build on or import another \
         version"
    )]
    Revoked {
        image: ImageRef,
        store: String,
        by: String,
        at: String,
        reason: String,
    },
    #[error(
        "channel `{channel}` of {image} has no earlier version to roll back to in {store} \
         (its history: {history})"
    )]
    NothingToRollBack {
        image: ImageName,
        channel: String,
        store: String,
        history: String,
    },
    #[error(
        "another {what} of {image} in {store} was written at the same time and won: the store \
         now holds {now}; look at it (`imagepipe-lifecycle history`) and run again if it is \
         still needed"
    )]
    LostRace {
        what: &'static str,
        image: ImageName,
        store: String,
        now: String,
    },
    #[error("{store}: the {what} document of {image} is not valid ({message}); fix or remove it")]
    BadDocument {
        store: String,
        image: ImageName,
        what: &'static str,
        message: String,
    },
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    #[error(transparent)]
    Import(Box<crate::import::ImportError>),
    #[error("{0}")]
    Refused(String),
    #[error(
        "the revocation stopped half way: {done} revoked, {left} not yet ({source}); run the \
         same command again to finish it"
    )]
    PartlyRevoked {
        done: String,
        left: String,
        source: Box<LifecycleError>,
    },
}

/// One assignment of a channel: the version it pointed at from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub version: Version,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The version the channel pointed at before; `None` for its first assignment.
    pub previous: Option<Version>,
    /// Made by `rollback`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// A channel: its version now and every assignment, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub version: Version,
    pub history: Vec<Assignment>,
}

/// The `channels` document of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub channels: BTreeMap<String, Channel>,
}

/// One revoked version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason: String,
    pub by: String,
    /// When the revocation was recorded.
    pub at: DateTime<Utc>,
    /// From when it holds (later than `at` for a scheduled revocation).
    pub effective: DateTime<Utc>,
    /// The version whose revocation with `--cascade` revoked this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascaded_from: Option<String>,
}

impl From<crate::import::ImportError> for LifecycleError {
    fn from(e: crate::import::ImportError) -> Self {
        Self::Import(Box::new(e))
    }
}

impl Revocation {
    /// How views and warnings say it: `revoked 2026-12-02 by alice: CVE-…`, or `to be revoked`
    /// while a scheduled revocation has not taken effect.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let when = if self.is_effective(now) {
            "revoked"
        } else {
            "to be revoked"
        };
        format!(
            "{when} {} by {}: {}",
            self.effective.format("%Y-%m-%d"),
            self.by,
            self.reason
        )
    }

    pub fn is_effective(&self, now: DateTime<Utc>) -> bool {
        self.effective <= now
    }
}

/// The `revocations` document of an image, by version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    pub versions: BTreeMap<String, Revocation>,
}

impl Revocations {
    pub fn get(&self, version: &Version) -> Option<&Revocation> {
        self.versions.get(&version.to_string())
    }

    /// Whether `version` is revoked at `now`.
    pub fn is_revoked(&self, version: &Version, now: DateTime<Utc>) -> bool {
        self.get(version).is_some_and(|r| r.is_effective(now))
    }

    /// The newest of `versions` that `req` accepts and that is not revoked at `now`: the
    /// version a build takes as its parent, and the one the fleet view calls up to date.
    pub fn newest_accepted<'a>(
        &self,
        versions: impl IntoIterator<Item = &'a Version>,
        req: &semver::VersionReq,
        now: DateTime<Utc>,
    ) -> Option<&'a Version> {
        versions
            .into_iter()
            .filter(|v| req.matches(v) && !self.is_revoked(v, now))
            .max()
    }

    /// The versions revoked at `now` (scheduled ones whose date has passed included).
    pub fn effective(&self, now: DateTime<Utc>) -> Vec<Version> {
        self.versions
            .iter()
            .filter(|(_, r)| r.is_effective(now))
            .filter_map(|(v, _)| v.parse().ok())
            .collect()
    }
}

/// A channel name every store can hold (a file name, a property key, a registry tag).
pub fn check_channel(name: &str) -> Result<(), LifecycleError> {
    if crate::image::is_channel_name(name) {
        Ok(())
    } else {
        Err(LifecycleError::BadChannel(name.to_string()))
    }
}

/// The time revocations are judged at: now.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Who makes a change: the CI's user (`GITHUB_ACTOR`, Jenkins' `BUILD_USER_ID`/`BUILD_USER`),
/// else the login (`USER`), else `unknown`.
pub fn actor() -> String {
    [
        crate::env::GITHUB_ACTOR,
        crate::env::BUILD_USER_ID,
        crate::env::BUILD_USER,
        crate::env::USER,
    ]
    .iter()
    .find_map(|v| crate::env::var(v))
    .unwrap_or_else(|| "unknown".into())
}

async fn read_doc<T: for<'de> Deserialize<'de> + Default>(
    store: &dyn Store,
    image: &ImageName,
    key: &str,
    what: &'static str,
) -> Result<T, LifecycleError> {
    match store.read_lifecycle(image, key).await? {
        None => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| LifecycleError::BadDocument {
            store: store.location(),
            image: image.clone(),
            what,
            message: e.to_string(),
        }),
    }
}

/// Writes a document, then reads it back and asks `holds` whether this change is in what
/// the store now has: where the store serialises nothing, another writer's whole document may
/// have replaced this one. `Ok(Some(now))` is the document that replaced it.
async fn write_doc<T: Serialize + for<'de> Deserialize<'de> + Default>(
    store: &dyn Store,
    image: &ImageName,
    key: &str,
    what: &'static str,
    doc: &T,
    holds: impl Fn(&T) -> bool,
) -> Result<Option<T>, LifecycleError> {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    store.write_lifecycle(image, key, &bytes).await?;
    let back: T = read_doc(store, image, key, what).await?;
    Ok(if holds(&back) { None } else { Some(back) })
}

/// Whether lifecycle document keys include the channels document.
pub fn has_channels(keys: &[String]) -> bool {
    keys.iter().any(|k| k == CHANNELS_KEY)
}

/// The channels of an image in a store.
pub async fn channels(store: &dyn Store, image: &ImageName) -> Result<Channels, LifecycleError> {
    read_doc(store, image, CHANNELS_KEY, "channels").await
}

/// The revocations of an image in a store: one listing, then each revoked version's document.
pub async fn revocations(
    store: &dyn Store,
    image: &ImageName,
) -> Result<Revocations, LifecycleError> {
    let keys = store.list_lifecycle(image).await?;
    revocations_among(store, image, &keys).await
}

/// The revocations of an image whose lifecycle document keys are known already (the fleet
/// view has every image's from one query): each revoked version's document.
pub async fn revocations_among(
    store: &dyn Store,
    image: &ImageName,
    keys: &[String],
) -> Result<Revocations, LifecycleError> {
    let versions: Vec<Version> = keys
        .iter()
        .filter_map(|k| revocation_key_version(k))
        .collect();
    let read: Vec<(Version, Result<Option<Revocation>, LifecycleError>)> =
        futures_util::stream::iter(versions.into_iter().map(|v| async move {
            let r = revocation(store, image, &v).await;
            (v, r)
        }))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut doc = Revocations::default();
    for (v, r) in read {
        // A document listed, then gone before it was read, belonged to a version retention
        // deleted in between: it no longer counts.
        if let Some(r) = r? {
            doc.versions.insert(v.to_string(), r);
        }
    }
    Ok(doc)
}

/// One version's revocation, if it has one: a single read.
pub async fn revocation(
    store: &dyn Store,
    image: &ImageName,
    version: &Version,
) -> Result<Option<Revocation>, LifecycleError> {
    let key = revocation_key(version);
    match store.read_lifecycle(image, &key).await? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LifecycleError::BadDocument {
                    store: store.location(),
                    image: image.clone(),
                    what: "revocation",
                    message: format!("{key}: {e}"),
                })
        }
    }
}

/// The version a channel of an image points at.
pub async fn resolve_channel(
    store: &dyn Store,
    image: &ImageName,
    channel: &str,
) -> Result<Version, LifecycleError> {
    check_channel(channel)?;
    channels(store, image)
        .await?
        .channels
        .get(channel)
        .map(|c| c.version.clone())
        .ok_or_else(|| LifecycleError::NoChannel {
            image: image.clone(),
            channel: channel.to_string(),
            store: store.location(),
        })
}

/// The version a step's `--version` names: `channel:NAME` is resolved in the store, anything
/// else is returned as given.
pub async fn resolve_version_arg(
    store: &dyn Store,
    image: &ImageName,
    arg: &str,
) -> Result<String, LifecycleError> {
    match channel_name(arg) {
        Some(channel) => Ok(resolve_channel(store, image, channel).await?.to_string()),
        None => Ok(arg.to_string()),
    }
}

/// Refuses a version revoked in the store at `now` (exit 2 in every step), naming who, when
/// and why.
pub async fn ensure_not_revoked(
    store: &dyn Store,
    image: &ImageRef,
    now: DateTime<Utc>,
) -> Result<(), LifecycleError> {
    match revocation(store, &image.name, &image.version).await? {
        Some(r) if r.is_effective(now) => Err(revoked(store, image, &r)),
        _ => Ok(()),
    }
}

fn revoked(store: &dyn Store, image: &ImageRef, r: &Revocation) -> LifecycleError {
    LifecycleError::Revoked {
        image: image.clone(),
        store: store.location(),
        by: r.by.clone(),
        at: r.effective.to_rfc3339(),
        reason: r.reason.clone(),
    }
}

/// An image version in JSON results: `{"name": …, "version": …}`.
fn image_ref<S: serde::Serializer>(r: &ImageRef, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Json<'a> {
        name: &'a ImageName,
        version: String,
    }
    Json {
        name: &r.name,
        version: r.version.to_string(),
    }
    .serialize(s)
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    #[serde(serialize_with = "image_ref")]
    pub image: ImageRef,
    pub channel: String,
    pub previous: Option<Version>,
    /// False when the channel already pointed at the version: nothing was written.
    pub changed: bool,
}

/// Points `channel` at `image` (a published, unrevoked version), keeping the assignment in
/// the channel's history. Promoting the version a channel already has changes nothing.
pub async fn promote(
    store: &dyn Store,
    image: &ImageRef,
    channel: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Promotion, LifecycleError> {
    assign(store, image, channel, by, now, false).await
}

async fn assign(
    store: &dyn Store,
    image: &ImageRef,
    channel: &str,
    by: &str,
    now: DateTime<Utc>,
    rollback: bool,
) -> Result<Promotion, LifecycleError> {
    check_channel(channel)?;
    let _lock = store.lock_lifecycle(&image.name).await?;
    // Only a published version can be promoted: its record must be there (under the lock,
    // so retention cannot delete it in between).
    store.fetch_record(image).await?;
    ensure_not_revoked(store, image, now).await?;
    let mut doc = channels(store, &image.name).await?;
    let previous = doc.channels.get(channel).map(|c| c.version.clone());
    if previous.as_ref() == Some(&image.version) {
        // Marks are made again: a run that died after the document was written left them out.
        store
            .mark_channel(image, channel, previous.as_ref())
            .await?;
        return Ok(Promotion {
            image: image.clone(),
            channel: channel.into(),
            previous,
            changed: false,
        });
    }
    let entry = Assignment {
        version: image.version.clone(),
        by: by.to_string(),
        at: now,
        previous: previous.clone(),
        rollback,
    };
    let slot = doc
        .channels
        .entry(channel.to_string())
        .or_insert_with(|| Channel {
            version: image.version.clone(),
            history: Vec::new(),
        });
    slot.version = image.version.clone();
    slot.history.push(entry);
    // The version's own mark first: a store that refuses it (Artifactory without Annotate)
    // then changes nothing at all. A mark left by a promotion that loses the race below is
    // only a label; the document is what channels resolve from.
    store.mark_channel(image, channel, None).await?;
    let holds = |d: &Channels| {
        d.channels
            .get(channel)
            .is_some_and(|c| c.version == image.version)
    };
    // A later promotion's document replaced this one: the channel is the other writer's,
    // whole; this one says so rather than fight over the channel.
    if let Some(now) = write_doc(store, &image.name, CHANNELS_KEY, "channels", &doc, holds).await? {
        return Err(LifecycleError::LostRace {
            what: "promotion",
            image: image.name.clone(),
            store: store.location(),
            now: now.channels.get(channel).map_or_else(
                || format!("no channel `{channel}`"),
                |c| format!("channel `{channel}` → {}", c.version),
            ),
        });
    }
    store
        .mark_channel(image, channel, previous.as_ref())
        .await?;
    Ok(Promotion {
        image: image.clone(),
        channel: channel.into(),
        previous,
        changed: true,
    })
}

/// Undoes a channel's last promotion that is not undone yet ([`rollback_target`]); the version
/// it goes back to must still be published and not revoked.
pub async fn rollback(
    store: &dyn Store,
    image: &ImageName,
    channel: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Promotion, LifecycleError> {
    check_channel(channel)?;
    let doc = channels(store, image).await?;
    let ch = doc
        .channels
        .get(channel)
        .ok_or_else(|| LifecycleError::NoChannel {
            image: image.clone(),
            channel: channel.to_string(),
            store: store.location(),
        })?;
    let target = rollback_target(ch).ok_or_else(|| LifecycleError::NothingToRollBack {
        image: image.clone(),
        channel: channel.to_string(),
        store: store.location(),
        history: describe_history(ch),
    })?;
    let target = ImageRef {
        name: image.clone(),
        version: target,
    };
    assign(store, &target, channel, by, now, true).await
}

/// The version a rollback goes back to. The history is replayed as a stack: a promotion
/// pushes its version, a rollback pops the one it undid. So a second rollback goes further
/// back (as an undo does), instead of back to the version the first one left. A history that
/// retention shortened starts from its first entry's `previous`.
fn rollback_target(ch: &Channel) -> Option<Version> {
    let mut stack: Vec<Version> = ch
        .history
        .first()
        .and_then(|a| a.previous.clone())
        .into_iter()
        .collect();
    for a in &ch.history {
        if a.rollback {
            stack.pop();
            if stack.last() != Some(&a.version) {
                stack.push(a.version.clone());
            }
        } else {
            stack.push(a.version.clone());
        }
    }
    stack.pop();
    stack.pop()
}

fn describe_history(ch: &Channel) -> String {
    ch.history
        .iter()
        .map(|a| a.version.to_string())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The published children of a version: versions of the images whose `parent` is its image
/// and whose record names it as parent, found in the store.
pub async fn children(
    store: &dyn Store,
    config: &Config,
    parent: &ImageRef,
) -> Result<Vec<ImageRef>, LifecycleError> {
    let mut found = Vec::new();
    for image in &config.images {
        if image.parent.as_ref().is_none_or(|p| p.name != parent.name) {
            continue;
        }
        let mut versions = store.list_versions(&image.name).await?;
        versions.sort();
        for version in versions {
            let id = ImageRef {
                name: image.name.clone(),
                version,
            };
            let record = store.fetch_record(&id).await?.record;
            if record
                .parent
                .as_ref()
                .is_some_and(|p| p.name == parent.name && p.version == parent.version)
            {
                found.push(id);
            }
        }
    }
    Ok(found)
}

/// Every descendant of a version (children, their children, …), parents before children.
pub async fn descendants(
    store: &dyn Store,
    config: &Config,
    root: &ImageRef,
) -> Result<Vec<ImageRef>, LifecycleError> {
    let mut out: Vec<ImageRef> = Vec::new();
    let mut queue = vec![root.clone()];
    while let Some(next) = queue.pop() {
        for child in children(store, config, &next).await? {
            if !out.contains(&child) {
                out.push(child.clone());
                queue.push(child);
            }
        }
    }
    Ok(out)
}

/// What a revocation did, per version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoked {
    #[serde(serialize_with = "image_ref")]
    pub image: ImageRef,
    pub effective: DateTime<Utc>,
    /// False when the version was revoked already: its first revocation stays.
    pub changed: bool,
}

/// What a revocation says.
#[derive(Debug, Clone, Copy)]
pub struct RevokeOptions<'a> {
    pub reason: &'a str,
    pub by: &'a str,
    pub now: DateTime<Utc>,
    /// Now, or a later date for a scheduled revocation.
    pub effective: DateTime<Utc>,
    /// Revoke every descendant too.
    pub cascade: bool,
}

/// Revokes a version in the store (and with `cascade` every descendant), effective at
/// `effective` (now, or a later date for a scheduled revocation). A version revoked already
/// keeps its first revocation, unless this one takes effect earlier.
pub async fn revoke(
    store: &dyn Store,
    config: &Config,
    image: &ImageRef,
    how: &RevokeOptions<'_>,
) -> Result<Vec<Revoked>, LifecycleError> {
    let RevokeOptions {
        reason,
        by,
        now,
        effective,
        cascade,
    } = *how;
    if reason.trim().is_empty() {
        return Err(LifecycleError::Refused(
            "a revocation needs a reason (--reason), which builds and imports show".into(),
        ));
    }
    store.fetch_record(image).await?;
    let mut targets = vec![(image.clone(), None)];
    if cascade {
        for d in descendants(store, config, image).await? {
            targets.push((d, Some(image.to_string())));
        }
    }
    // The version asked for first, then its descendants, parents before children: a run
    // that stops half way has revoked the root of the trouble, and says what is left.
    let mut done = Vec::new();
    for (n, (target, from)) in targets.iter().enumerate() {
        let wanted = Revocation {
            reason: reason.to_string(),
            by: by.to_string(),
            at: now,
            effective,
            cascaded_from: from.clone(),
        };
        match revoke_one(store, target, &wanted).await {
            Ok(r) => done.push(r),
            Err(e) if done.is_empty() => return Err(e),
            Err(e) => {
                let list = |v: &[ImageRef]| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let done: Vec<ImageRef> = done.iter().map(|r: &Revoked| r.image.clone()).collect();
                let left: Vec<ImageRef> = targets[n..].iter().map(|(t, _)| t.clone()).collect();
                return Err(LifecycleError::PartlyRevoked {
                    done: list(&done),
                    left: list(&left),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(done)
}

/// Writes one version's revocation unless it has one that takes effect as early already.
/// Only revocations write this document, and each writes only when what is there takes
/// effect later than its own, so racing revokers of one version end with the earliest; the
/// document is read back to see that (a store without a lock offers no compare-and-swap).
async fn revoke_one(
    store: &dyn Store,
    image: &ImageRef,
    wanted: &Revocation,
) -> Result<Revoked, LifecycleError> {
    let _lock = store.lock_lifecycle(&image.name).await?;
    let key = revocation_key(&image.version);
    let mut wrote = false;
    for attempt in 0..=5 {
        if let Some(r) = revocation(store, &image.name, &image.version).await?
            && r.effective <= wanted.effective
        {
            return Ok(Revoked {
                image: image.clone(),
                effective: r.effective,
                changed: wrote,
            });
        }
        if attempt == 5 {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50 + fastrand::u64(0..200))).await;
        }
        let mut bytes = serde_json::to_vec_pretty(wanted).unwrap_or_default();
        bytes.push(b'\n');
        store.write_lifecycle(&image.name, &key, &bytes).await?;
        wrote = true;
    }
    Err(LifecycleError::LostRace {
        what: "revocation",
        image: image.name.clone(),
        store: store.location(),
        now: format!("a revocation of {image} that takes effect later, after five tries"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for ok in ["prod", "dev", "canary-2", "eu_west.1"] {
            check_channel(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "pröd", "a b", &"x".repeat(65)] {
            assert!(check_channel(bad).is_err(), "{bad}");
        }
        assert_eq!(channel_name("channel:prod"), Some("prod"));
        assert_eq!(channel_name("1.2.0"), None);
    }

    #[test]
    fn parent_version_names_a_channel() {
        let text = "[[image]]\nname = \"a\"\ntemplate = \"t\"\n[[image]]\nname = \"b\"\ntemplate = \"t\"\nparent = \"a\"\nparent_version = \"channel:prod\"\n";
        let c = Config::parse(text, std::path::Path::new("/repo/imagepipe.toml")).unwrap();
        let p = c.image("b").unwrap().parent.clone().unwrap();
        assert_eq!(p.channel.as_deref(), Some("prod"));
        assert_eq!(p.requirement, semver::VersionReq::STAR);
        let c = Config::parse(
            &text.replace("channel:prod", "^1"),
            std::path::Path::new("/repo/imagepipe.toml"),
        )
        .unwrap();
        assert_eq!(c.image("b").unwrap().parent.as_ref().unwrap().channel, None);
        let err = Config::parse(
            &text.replace("channel:prod", "channel:a/b"),
            std::path::Path::new("/repo/imagepipe.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("imagepipe.toml:8") && err.contains("`a/b` is not a channel name"),
            "{err}"
        );
    }

    #[test]
    fn revocation_keys_are_store_names_and_read_back() {
        for v in ["1.2.0", "1.2.0-rc.1", "1.2.0+build.7", "1.2.0-rc.1+b-2"] {
            let v = Version::parse(v).unwrap();
            let key = revocation_key(&v);
            crate::store::check_lifecycle_key("test", &key).unwrap();
            assert_eq!(revocation_key_version(&key), Some(v));
        }
        assert_eq!(revocation_key_version("channels"), None);
        assert_eq!(revocation_key_version("revoked-x"), None);
    }

    #[test]
    fn rollbacks_undo_one_promotion_each() {
        let v = |s: &str| Version::parse(s).unwrap();
        let at: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        let mut ch = Channel {
            version: v("1.0.0"),
            history: Vec::new(),
        };
        let apply = |ch: &mut Channel, to: &str, rollback: bool| {
            ch.history.push(Assignment {
                version: v(to),
                by: "me".into(),
                at,
                previous: Some(ch.version.clone()).filter(|_| !ch.history.is_empty()),
                rollback,
            });
            ch.version = v(to);
        };
        apply(&mut ch, "1.0.0", false);
        assert_eq!(rollback_target(&ch), None);
        apply(&mut ch, "1.1.0", false);
        apply(&mut ch, "1.2.0", false);
        assert_eq!(rollback_target(&ch), Some(v("1.1.0")));
        apply(&mut ch, "1.1.0", true);
        // A second rollback goes further back, not forward to the version the first undid.
        assert_eq!(rollback_target(&ch), Some(v("1.0.0")));
        apply(&mut ch, "1.0.0", true);
        assert_eq!(rollback_target(&ch), None);
        apply(&mut ch, "1.3.0", false);
        assert_eq!(rollback_target(&ch), Some(v("1.0.0")));
        // A history retention shortened starts from its first entry's `previous`.
        ch.history.drain(..ch.history.len() - 1);
        assert_eq!(rollback_target(&ch), Some(v("1.0.0")));
    }

    #[test]
    fn scheduled_revocations_take_effect_when_their_date_passes() {
        let at: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        let mut doc = Revocations::default();
        doc.versions.insert(
            "1.0.0".into(),
            Revocation {
                reason: "eol".into(),
                by: "me".into(),
                at: at - chrono::Duration::days(30),
                effective: at,
                cascaded_from: None,
            },
        );
        let before = at - chrono::Duration::seconds(1);
        assert!(doc.effective(before).is_empty());
        assert_eq!(doc.effective(at), [Version::new(1, 0, 0)]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unsupported_store_is_a_clear_error() {
        #[derive(Debug)]
        struct Bare;
        #[async_trait::async_trait]
        impl Store for Bare {
            fn location(&self) -> String {
                "bare:".into()
            }
            async fn list_versions(&self, _: &ImageName) -> Result<Vec<Version>, StoreError> {
                Ok(Vec::new())
            }
            async fn fetch_record(
                &self,
                _: &ImageRef,
            ) -> Result<crate::record::LoadedRecord, StoreError> {
                unreachable!()
            }
            fn artifact_location(&self, _: &ImageRef, _: &crate::record::FileArtifact) -> String {
                String::new()
            }
            fn record_location(&self, _: &ImageRef) -> String {
                String::new()
            }
            async fn put_artifact(
                &self,
                _: &ImageRef,
                _: &std::path::Path,
                _: &crate::record::FileArtifact,
                _: &crate::store::Properties,
                _: &(dyn Fn(u64) + Sync),
            ) -> Result<crate::store::PutOutcome, StoreError> {
                unreachable!()
            }
            async fn put_record(
                &self,
                _: &ImageRef,
                _: &[u8],
                _: &crate::store::Properties,
            ) -> Result<(), StoreError> {
                unreachable!()
            }
            async fn artifact_digest(
                &self,
                _: &ImageRef,
                _: &crate::record::FileArtifact,
            ) -> Result<Option<crate::store::StoredFile>, StoreError> {
                unreachable!()
            }
            async fn open_artifact(
                &self,
                _: &ImageRef,
                _: &crate::record::FileArtifact,
            ) -> Result<Box<dyn crate::store::ArtifactReader>, StoreError> {
                unreachable!()
            }
        }
        let err = resolve_channel(&Bare, &"a".parse().unwrap(), "prod")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lifecycle documents (channels, revocations) on bare:"),
            "{err}"
        );
    }
}
