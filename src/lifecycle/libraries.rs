//! Removing versions' items from every site's content library: revoked versions (`prune`)
//! and versions retention deletes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use semver::Version;
use serde::Serialize;

use super::LifecycleError;
use crate::config::{Config, Site};
use crate::endpoint::LibraryUrl;
use crate::image::ImageName;
use crate::store::Store;

/// What a prune did (or, in a plan, would do) at one site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LibraryPrune {
    pub site: String,
    pub library: String,
    /// The versions looked for, per image.
    pub versions: BTreeMap<String, Vec<String>>,
    /// The items removed.
    pub removed: Vec<String>,
    /// Why the site could not be pruned, when it could not.
    pub error: Option<String>,
}

/// Removes these versions' items from one site's library; returns the item names.
pub async fn remove_from_library(
    site: &Site,
    versions: &BTreeMap<ImageName, BTreeSet<Version>>,
) -> Result<Vec<String>, LifecycleError> {
    let Some(library) = &site.library else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    match &library.url {
        LibraryUrl::VCenter(url) => {
            let vsphere = crate::import::vsphere_client(
                site,
                library,
                url,
                crate::library::vsphere::Generation::Auto,
            )?;
            vsphere.login().await?;
            let mut result = Ok(());
            for (image, vs) in versions {
                match vsphere.remove_versions(image, vs).await {
                    Ok(names) => removed.extend(names),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            vsphere.logout().await;
            result?;
        }
        other => {
            let lib = crate::import::vcsp_library(site, library, other)?;
            for (image, vs) in versions {
                removed.extend(lib.remove_versions(image, vs).await?);
            }
        }
    }
    Ok(removed)
}

/// Removes these versions' items from every site's library. A site that fails is reported
/// with its reason and the others go on.
pub async fn remove_from_libraries(
    sites: &[Site],
    versions: &BTreeMap<ImageName, BTreeSet<Version>>,
) -> Vec<LibraryPrune> {
    let mut out = Vec::new();
    for site in sites.iter().filter(|s| s.library.is_some()) {
        let library = site
            .library
            .as_ref()
            .map(|l| l.url.to_string())
            .unwrap_or_default();
        let mut entry = LibraryPrune {
            site: site.name.clone(),
            library,
            versions: versions
                .iter()
                .map(|(i, vs)| (i.to_string(), vs.iter().map(ToString::to_string).collect()))
                .collect(),
            ..LibraryPrune::default()
        };
        match remove_from_library(site, versions).await {
            Ok(removed) => entry.removed = removed,
            Err(e) => entry.error = Some(e.to_string()),
        }
        out.push(entry);
    }
    out
}

/// The versions revoked at `now` in the primary store, for every image of the config.
pub async fn revoked_versions(
    store: &dyn Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<BTreeMap<ImageName, BTreeSet<Version>>, LifecycleError> {
    let mut out = BTreeMap::new();
    for image in &config.images {
        let revoked: BTreeSet<Version> = super::revocations(store, &image.name)
            .await?
            .effective(now)
            .into_iter()
            .collect();
        if !revoked.is_empty() {
            out.insert(image.name.clone(), revoked);
        }
    }
    Ok(out)
}

/// Removes every revoked version's items from the libraries of `sites` (with `apply`; without,
/// only says which versions it would look for).
pub async fn prune_libraries(
    store: &dyn Store,
    config: &Config,
    sites: &[Site],
    now: DateTime<Utc>,
    apply: bool,
) -> Result<(BTreeMap<ImageName, BTreeSet<Version>>, Vec<LibraryPrune>), LifecycleError> {
    let revoked = revoked_versions(store, config, now).await?;
    if !apply || revoked.is_empty() {
        return Ok((revoked, Vec::new()));
    }
    let results = remove_from_libraries(sites, &revoked).await;
    Ok((revoked, results))
}
