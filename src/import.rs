//! Importing a published image version into each site's content library, from the site's own
//! store: the OVA is read in place there and its descriptor and disks go to the library.

use chrono::Utc;

use crate::config::{LibrarySpec, LibraryUrl, Site};
use crate::image::ImageRef;
use crate::library::vcsp::VcspLibrary;
use crate::library::vsphere::{Generation, Transfer, VSphere};
use crate::library::{ImportRequest, Imported, Layout, LibraryError};
use crate::ova::OvaError;
use crate::record::{Format, ImportSection, SiteImport};
use crate::secret::Auth;
use crate::step::Ui;
use crate::store::{self, ArtifactReader as _, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ova(#[from] OvaError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error(
        "site {0} has no `library` in imagepipe.toml; add one or leave the site out with --site"
    )]
    NoLibrary(String),
    #[error(
        "{image} has no OVA or OVF descriptor artifact{which}; content libraries import OVF \
         packages: add one to the template's outputs, or name it with --artifact"
    )]
    NoOva { image: String, which: String },
    #[error(
        "{image} has several OVA or OVF descriptor artifacts ({names}); name one with --artifact"
    )]
    SeveralOvas { image: String, names: String },
    #[error(
        "site {site}: the OVF descriptor {descriptor} of {image} references `{href}`, which the \
         record has no artifact for; a loose OVF export is imported with every file it names"
    )]
    MissingReference {
        site: String,
        image: String,
        descriptor: String,
        href: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("site {site}: library credentials: {message}")]
    Credentials { site: String, message: String },
    #[error(
        "site {site}: its store's record of {image} names `{artifact}` as {site_artifact}, but the \
         published record says {published}; the site holds other bytes than were published: run \
         imagepipe-replicate-check, and let replication repair the site"
    )]
    NotPublished {
        site: String,
        image: String,
        artifact: String,
        site_artifact: String,
        published: String,
    },
    #[error(
        "site {site}: the OVA {location} has no manifest (.mf), so its files cannot be checked \
         one by one against it; import it anyway with --allow-missing-manifest (the whole OVA is \
         still checked against the record's sha256, and the record notes the missing manifest)"
    )]
    NoManifest { site: String, location: String },
    #[error("site {site}: the site's copy of the OVA: {message}")]
    Integrity { site: String, message: String },
    #[error(
        "site {0}: --deploy-check needs to know where to deploy: add \
         `deploy = {{ resource_pool = \"resgroup-…\" }}` (and optionally `folder`, `host`, \
         `datastore`) to the site's library table in imagepipe.toml"
    )]
    NoDeployTarget(String),
    #[error("site {0}: interrupted before the import completed; run the import again")]
    Interrupted(String),
}

/// How to import, the same for every site.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Item name template: `{image}` (with `/` as `-`) and `{version}`.
    pub item_name: String,
    pub layout: Layout,
    pub keep: usize,
    pub pull: bool,
    pub generation: Generation,
    /// The artifact to import, by name; default: the record's one OVA.
    pub artifact: Option<String>,
    /// How long to wait for subscribed libraries to show the item.
    pub sync_deadline: std::time::Duration,
    /// How often vCenter's update session is kept alive during a transfer.
    pub keep_alive: std::time::Duration,
    /// Import an OVA that has no manifest (its whole digest is still checked).
    pub allow_missing_manifest: bool,
    /// After each vCenter import, deploy a throw-away VM from the item, run it, delete it.
    pub deploy_check: Option<DeployCheckOptions>,
}

/// How the deploy check runs.
#[derive(Debug, Clone)]
pub struct DeployCheckOptions {
    /// How long the VM may take to report that it runs.
    pub wait: std::time::Duration,
    /// Turns true when the step is asked to stop (SIGTERM, Ctrl-C): each site deletes its VM
    /// and ends.
    pub interrupt: tokio::sync::watch::Receiver<bool>,
}

/// Imports `image` from the site's store into the site's library.
///
/// What the site's store holds is checked against `published`, the record as it was published
/// (the local record, or the primary store's): the site's record must name the same OVA, the
/// OVA's size and sha256 must be the record's (hashed from the member streams the import sends
/// anyway, before the library commits anything), and each file must match the OVA's manifest.
pub async fn import_site(
    site: &Site,
    image: &ImageRef,
    published: &crate::record::Record,
    options: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Imported, ImportError> {
    let library = site
        .library
        .as_ref()
        .ok_or_else(|| ImportError::NoLibrary(site.name.clone()))?;
    let interrupted = || ImportError::Interrupted(site.name.clone());
    if options
        .deploy_check
        .as_ref()
        .is_some_and(|c| *c.interrupt.borrow())
    {
        return Err(interrupted());
    }
    // A deploy check that cannot run is refused before anything is imported.
    let deploy_target = match (&options.deploy_check, &library.url) {
        (Some(_), LibraryUrl::VCenter(_)) => Some(
            library
                .deploy
                .as_ref()
                .ok_or_else(|| ImportError::NoDeployTarget(site.name.clone()))?,
        ),
        _ => None,
    };
    let store = store::open(&site.store)?;
    let loaded = store.fetch_record(image).await?;
    let parts = choose(site, image, &loaded.record, store.as_ref(), options).await?;
    let loose = parts.len() > 1 || parts[0].1.format == Format::Ovf;
    let describe =
        |f: &crate::record::FileArtifact| format!("{} bytes, sha256 {}", f.size, f.sha256);
    for (name, artifact) in &parts {
        let want = published
            .artifacts
            .iter()
            .find(|a| &a.name == name)
            .and_then(|a| a.file());
        if want.is_none_or(|w| w.sha256 != artifact.sha256 || w.size != artifact.size) {
            return Err(ImportError::NotPublished {
                site: site.name.clone(),
                image: image.to_string(),
                artifact: name.clone(),
                site_artifact: describe(artifact),
                published: want.map_or_else(|| "no such artifact".to_string(), describe),
            });
        }
    }
    let mut stored = Vec::new();
    for (_, artifact) in &parts {
        stored.push(store.open_artifact(image, artifact).await?);
    }
    let verifying: Vec<_> = stored
        .iter()
        .zip(&parts)
        .map(|(s, (_, artifact))| {
            crate::store::Verifying::new(
                s.as_ref(),
                crate::store::Expected {
                    size: artifact.size,
                    sha256: artifact.sha256,
                },
            )
        })
        .collect();
    for (reader, (_, artifact)) in verifying.iter().zip(&parts) {
        if reader.len() != artifact.size {
            return Err(ImportError::Integrity {
                site: site.name.clone(),
                message: format!(
                    "{} is {} bytes, but the record says {}",
                    reader.location(),
                    reader.len(),
                    artifact.size
                ),
            });
        }
    }
    let (name, artifact) = parts[0].clone();
    let loose_reader = if loose {
        Some(crate::ova::Loose::new(
            format!("{} (a loose OVF export)", verifying[0].location()),
            verifying
                .iter()
                .zip(&parts)
                .map(|(r, (_, a))| {
                    (
                        a.file_name().to_string(),
                        r as &dyn crate::store::ArtifactReader,
                    )
                })
                .collect(),
        )?)
    } else {
        None
    };
    let reader: &dyn crate::store::ArtifactReader = match &loose_reader {
        Some(l) => l,
        None => &verifying[0],
    };
    let package = crate::ova::read(reader).await?;
    if package.manifest.is_none() && !options.allow_missing_manifest {
        return Err(ImportError::NoManifest {
            site: site.name.clone(),
            location: reader.location().to_string(),
        });
    }
    let total: u64 = package.parts().map(|m| m.size).sum();
    let request = ImportRequest::new(
        image,
        loaded.sha256,
        &options.item_name,
        options.layout,
        options.keep,
    )?;
    let member_progress = |n: u64| progress(n, total);

    let vcenter = match &library.url {
        LibraryUrl::VCenter(url) => url,
        vcsp => {
            let lib = vcsp_library(site, library, vcsp)?;
            let mut imported = lib
                .import(&request, reader, &package, &member_progress)
                .await?;
            if options.deploy_check.is_some() {
                imported.warnings.push(
                    "no deploy check: a VCSP library has no vCenter of its own to deploy from; \
                     check at a vCenter that subscribes to it"
                        .into(),
                );
            }
            return Ok(imported);
        }
    };

    let mut vsphere = vsphere_client(site, library, vcenter, options.generation)?;
    vsphere.keep_alive = options.keep_alive;
    let transfer = if options.pull {
        if loose {
            return Err(ImportError::Unsupported(format!(
                "site {}: PULL hands vCenter one OVA's URL; {name} is a loose OVF export, whose \
                 files imagepipe pushes: use --transfer push",
                site.name
            )));
        }
        let url = store.artifact_location(image, &artifact);
        if !url.starts_with("http") {
            return Err(ImportError::Unsupported(format!(
                "site {}: PULL needs the site's store on HTTP(S) for vCenter to fetch from; {url} is not; use PUSH",
                site.name
            )));
        }
        // vCenter trusts an https source by the thumbprint of its certificate.
        let thumbprint = if url.starts_with("https://") {
            Some(
                crate::http::sha1_thumbprint(&url, &site.store.tls)
                    .await
                    .map_err(|source| StoreError::Http {
                        store: site.store.url.to_string(),
                        source,
                    })?,
            )
        } else {
            None
        };
        // vCenter reads the bytes itself: the store's own digest of them is checked first.
        match store.artifact_digest(image, &artifact).await? {
            Some(d) if d.is(&artifact) => {}
            other => {
                return Err(ImportError::Integrity {
                    site: site.name.clone(),
                    message: format!(
                        "{url} is {}, but the record says {} bytes, sha256 {}",
                        other.map_or_else(
                            || "missing".into(),
                            |d| format!("{} bytes, sha256 {}", d.size, d.sha256)
                        ),
                        artifact.size,
                        artifact.sha256
                    ),
                });
            }
        }
        Transfer::Pull { thumbprint, url }
    } else {
        Transfer::Push
    };
    // With a deploy check the step handles SIGTERM and Ctrl-C itself (to delete its VMs), so
    // an import in flight is abandoned here as a killed one would be: the next run cancels the
    // update session it leaves.
    let import = vsphere.import(&request, reader, &package, &transfer, &member_progress);
    let result = match &options.deploy_check {
        Some(check) => {
            let mut interrupt = check.interrupt.clone();
            tokio::select! {
                r = import => r,
                _ = interrupt.wait_for(|i| *i) => {
                    vsphere.logout().await;
                    return Err(interrupted());
                }
            }
        }
        None => import.await,
    };
    let result = match result {
        Ok(mut imported) if !library.subscribed.is_empty() => {
            match vsphere
                .sync_subscribed_until(
                    &library.subscribed,
                    &request.item_name,
                    Some(&request.record_sha256.to_string()),
                    options.sync_deadline,
                )
                .await
            {
                Ok(lines) => {
                    imported.synced = lines;
                    Ok(imported)
                }
                Err(e) => Err(e.into()),
            }
        }
        other => other.map_err(Into::into),
    };
    let result = match (result, &options.deploy_check, deploy_target) {
        (Ok(mut imported), Some(check), Some(target)) => {
            imported.deploy = Some(
                vsphere
                    .deploy_check(&imported.item_id, target, check.wait, &check.interrupt)
                    .await,
            );
            Ok(imported)
        }
        (other, _, _) => other,
    };
    vsphere.logout().await;
    result
}

/// What to import, by artifact name: an OVA; or a loose OVF export (the vSphere plugin's
/// default): its descriptor first, the files it references, then its manifest.
async fn choose(
    site: &Site,
    image: &ImageRef,
    record: &crate::record::Record,
    store: &dyn store::Store,
    options: &ImportOptions,
) -> Result<Vec<(String, crate::record::FileArtifact)>, ImportError> {
    // The record's file artifacts that `keep` wants, by name.
    let pick = |keep: &dyn Fn(&crate::record::Artifact, &crate::record::FileArtifact) -> bool| {
        record
            .artifacts
            .iter()
            .filter_map(|a| {
                a.file()
                    .filter(|f| keep(a, f))
                    .map(|f| (a.name.clone(), f.clone()))
            })
            .collect::<Vec<_>>()
    };
    let mut chosen = match &options.artifact {
        Some(name) => pick(&|a, _| &a.name == name),
        None => pick(&|_, f| f.format == Format::Ova),
    };
    if chosen.is_empty() && options.artifact.is_none() {
        chosen = pick(&|_, f| f.format == Format::Ovf);
    }
    let first = match chosen.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(ImportError::NoOva {
                image: image.to_string(),
                which: options
                    .artifact
                    .as_ref()
                    .map(|a| format!(" named `{a}`"))
                    .unwrap_or_default(),
            });
        }
        many => {
            return Err(ImportError::SeveralOvas {
                image: image.to_string(),
                names: many
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    if first.1.format != Format::Ovf {
        return Ok(vec![first]);
    }
    // The descriptor says which files belong to it.
    let reader = store.open_artifact(image, &first.1).await?;
    let descriptor = crate::ova::Member {
        name: first.1.file_name().to_string(),
        offset: 0,
        size: first.1.size,
    };
    let references = crate::ova::descriptor_references(reader.as_ref(), &descriptor).await?;
    let build = record
        .artifacts
        .iter()
        .find(|a| a.name == first.0)
        .map(|a| a.build.clone())
        .unwrap_or_default();
    let mut parts = vec![first.clone()];
    for (href, _) in references {
        match pick(&|_, f| f.file_name() == href).into_iter().next() {
            Some(p) => parts.push(p),
            None => {
                return Err(ImportError::MissingReference {
                    site: site.name.clone(),
                    image: image.to_string(),
                    descriptor: descriptor.name,
                    href,
                });
            }
        }
    }
    // The export's manifest: the same build's `.mf`.
    parts.extend(
        pick(&|a, f| a.build == build && f.format == Format::Mf)
            .into_iter()
            .take(1),
    );
    Ok(parts)
}

/// A VCSP library: a directory (`vcsp:PATH`) or an Artifactory generic repository
/// (`vcsp:artifactory+https://HOST/artifactory/REPO[/PATH]`), with the library's credentials.
pub(crate) fn vcsp_library(
    site: &Site,
    library: &LibrarySpec,
    url: &LibraryUrl,
) -> Result<VcspLibrary, ImportError> {
    let (base, repo, prefix) = match url {
        LibraryUrl::VcspDir(dir) => return Ok(VcspLibrary::dir(dir.clone())),
        LibraryUrl::VcspArtifactory { base, repo, prefix } => (base, repo, prefix),
        LibraryUrl::VCenter(url) => {
            return Err(ImportError::Unsupported(format!(
                "site {}: `{url}` is a vCenter, not a VCSP library",
                site.name
            )));
        }
    };
    let auth = library
        .credentials
        .resolve()
        .map_err(|e| ImportError::Credentials {
            site: site.name.clone(),
            message: e.to_string(),
        })?;
    Ok(VcspLibrary::artifactory(
        library_client(library)?,
        auth,
        base,
        repo,
        prefix,
    ))
}

/// The HTTP client for a library, with its TLS settings.
fn library_client(library: &LibrarySpec) -> Result<crate::http::HttpClient, ImportError> {
    crate::http::HttpClient::new(&crate::http::HttpOptions {
        tls: library.tls.clone(),
        ..Default::default()
    })
    .map_err(|source| {
        LibraryError::Http {
            library: library.url.to_string(),
            source,
        }
        .into()
    })
}

pub(crate) fn vsphere_client(
    site: &Site,
    library: &LibrarySpec,
    url: &str,
    generation: Generation,
) -> Result<VSphere, ImportError> {
    let credentials = |message: String| ImportError::Credentials {
        site: site.name.clone(),
        message,
    };
    let (username, password) = match library.credentials.resolve() {
        Ok(Auth::Basic { username, password }) => (username, password),
        Ok(_) => {
            return Err(credentials(
                "a vCenter needs username_env and password_env (or password_file)".into(),
            ));
        }
        Err(e) => return Err(credentials(e.to_string())),
    };
    Ok(VSphere::new(
        library_client(library)?,
        url,
        library.library.as_deref().unwrap_or_default(),
        username,
        password,
        generation,
    ))
}

/// One site's import, as [`run`] reports it.
#[derive(Debug)]
pub struct SiteOutcome {
    pub site: String,
    pub result: Result<Imported, ImportError>,
}

/// Imports `image` into every site's library, up to `concurrency` sites at once, and returns
/// one outcome per site in the order of `sites` (the configuration's), whatever order they
/// finished in.
///
/// Sites run as futures of this one task rather than spawned tasks: the work is waiting on
/// stores and vCenters, and a site's failure or slowness stays its own: a dead site holds one
/// of the `concurrency` slots for its own timeouts and no one else's. Each site's errors are
/// printed as soon as its turn in that order comes.
pub async fn run(
    sites: &[Site],
    image: &ImageRef,
    published: &crate::record::Record,
    options: &ImportOptions,
    concurrency: usize,
    ui: &Ui,
) -> Vec<SiteOutcome> {
    use futures_util::StreamExt as _;
    let mut stream = futures_util::stream::iter(sites.iter().map(|site| async move {
        // The size is known once the OVA's index has been read.
        let bar = std::sync::OnceLock::new();
        let label = format!("{}: {image}", site.name);
        let result = import_site(site, image, published, options, &|n, total| {
            bar.get_or_init(|| ui.progress(&label, Some(total))).set(n);
        })
        .await;
        if let Some(bar) = bar.get() {
            bar.finish();
        }
        SiteOutcome {
            site: site.name.clone(),
            result,
        }
    }))
    .buffered(concurrency.max(1));
    let mut out = Vec::with_capacity(sites.len());
    while let Some(outcome) = stream.next().await {
        if let Err(e) = &outcome.result {
            ui.error(&format!("site {}: {e}", outcome.site));
        }
        out.push(outcome);
    }
    out
}

/// The record's import section after this run: results for these sites replace earlier ones.
pub fn section(previous: Option<&ImportSection>, results: &[(String, Imported)]) -> ImportSection {
    let mut sites: Vec<SiteImport> = previous.map(|p| p.sites.clone()).unwrap_or_default();
    for (site, imported) in results {
        sites.retain(|s| &s.site != site);
        sites.push(SiteImport {
            site: site.clone(),
            library: imported.library.clone(),
            item: imported.item.clone(),
            item_version: imported.item_version.clone(),
            imported_at: Utc::now(),
            manifest: imported.manifest,
            deploy_check: imported.deploy.clone(),
        });
    }
    sites.sort_by(|a, b| a.site.cmp(&b.site));
    ImportSection { sites }
}

/// Reports the imports on every channel of the step contract.
pub fn report(
    ui: &Ui,
    image: &ImageRef,
    done: &[(String, Imported)],
    failed: &[String],
) -> std::io::Result<()> {
    let mut rows = Vec::new();
    for (site, i) in done {
        let what = if i.changed {
            "imported"
        } else {
            "already there"
        };
        ui.info(&format!(
            "{site:<12} {what:<14} {} item `{}` ({}) version {}",
            i.library, i.item, i.item_id, i.item_version
        ));
        for name in &i.removed {
            ui.info(&format!("{site:<12} removed older item `{name}`"));
        }
        for warning in &i.warnings {
            ui.warn(&format!("site {site}: {warning}"));
        }
        for sync in &i.synced {
            if sync.has_item {
                ui.info(&format!(
                    "{site:<12} subscribed library `{}` has the item",
                    sync.library
                ));
            } else {
                ui.warn(&format!(
                    "site {site}: subscribed library `{}` does not show `{}` yet; it will at its next sync",
                    sync.library, i.item
                ));
            }
        }
        let mut result = what.to_string();
        if let Some(d) = &i.deploy {
            let line = format!(
                "deploy check: {} (VM {}){}",
                d.result.as_str(),
                d.vm_name,
                d.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            if d.result == crate::record::DeployResult::Running {
                ui.info(&format!("{site:<12} {line}"));
            } else {
                ui.error(&format!("site {site}: {line}"));
            }
            result = format!("{what}, deploy check: {}", d.result.as_str());
        }
        rows.push(format!(
            "| {site} | {result} | `{}` | `{}` | {} |",
            i.library, i.item, i.item_version
        ));
    }
    for site in failed {
        rows.push(format!("| {site} | **failed** | | | |"));
    }
    let items: Vec<serde_json::Value> = done
        .iter()
        .map(|(site, i)| {
            serde_json::json!({
                "site": site, "library": i.library, "item": i.item, "item_id": i.item_id,
                "item_version": i.item_version, "changed": i.changed, "removed": i.removed,
                "synced": i.synced, "warnings": i.warnings, "deploy_check": i.deploy,
            })
        })
        .collect();
    ui.output(
        "items",
        &serde_json::Value::Array(items.clone()).to_string(),
    )?;
    ui.output("failed-sites", &failed.join(","))?;
    ui.summary(&format!(
        "### imagepipe-import: `{}` {}\n\n| site | result | library | item | item version |\n| --- | --- | --- | --- | --- |\n{}\n",
        image.name,
        image.version,
        rows.join("\n")
    ))?;
    ui.json(&serde_json::json!({
        "image": image.name,
        "version": image.version.to_string(),
        "sites": items,
        "failed": failed,
    }));
    Ok(())
}
