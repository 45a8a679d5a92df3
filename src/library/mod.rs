//! Content libraries: where a site's VMs are deployed from. An image version arrives as an OVF
//! library item, in a vCenter's content library ([`vsphere`]) or in a VMware Content
//! Subscription Protocol library that vCenters subscribe to ([`vcsp`]).

pub mod vcsp;
pub mod vsphere;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::hash::Sha256Hex;
use crate::image::ImageRef;
use crate::ova::{Member, Package};
use crate::store::ArtifactReader;

/// How versions map to library items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One item per image, updated in place: its id stays, consumers follow it.
    #[default]
    ItemPerImage,
    /// One item per version, named with it; the newest `--keep` stay.
    ItemPerVersion,
}

/// Properties imagepipe keeps on items it manages, to know them again.
pub const PROP_IMAGE: &str = "imagepipe.image";
pub const PROP_VERSION: &str = "imagepipe.version";
pub const PROP_RECORD: &str = "imagepipe.record_sha256";

/// The item name a template gives an image version, refused when it cannot be one.
pub fn item_name(template: &str, layout: Layout, image: &ImageRef) -> Result<String, LibraryError> {
    let item = render_item_name(template, layout, image);
    check_item_name(&item).map_err(|reason| LibraryError::BadItemName {
        template: template.to_string(),
        name: item.clone(),
        reason,
    })?;
    Ok(item)
}

fn render_item_name(template: &str, layout: Layout, image: &ImageRef) -> String {
    let base = template.replace("{image}", &image.name.as_str().replace('/', "-"));
    let version = image.version.to_string();
    match layout {
        Layout::ItemPerVersion if !template.contains("{version}") => format!("{base}-{version}"),
        _ => base.replace("{version}", &version),
    }
}

/// Why an item name is refused: it becomes a folder of a VCSP library (and a name in a
/// vCenter), so it may not be empty, climb out, name a hidden or nested path, or hold control
/// characters.
fn check_item_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("it is empty");
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err("it starts with `.`");
    }
    if name.contains(['/', '\\']) {
        return Err("it holds a `/` or `\\`");
    }
    if name.chars().any(char::is_control) {
        return Err("it holds a control character");
    }
    if name.len() > 200 {
        return Err("it is longer than 200 bytes");
    }
    Ok(())
}

/// What to import, and as which item.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub image: ImageRef,
    pub record_sha256: Sha256Hex,
    pub item_name: String,
    name_template: String,
    pub description: String,
    pub layout: Layout,
    /// With [`Layout::ItemPerVersion`], how many items of the image to keep.
    pub keep: usize,
}

impl ImportRequest {
    /// A request for `image`; an item name the template makes that could not be a library item
    /// (or would reach outside the library) is refused.
    pub fn new(
        image: &ImageRef,
        record_sha256: Sha256Hex,
        name_template: &str,
        layout: Layout,
        keep: usize,
    ) -> Result<Self, LibraryError> {
        let item = item_name(name_template, layout, image)?;
        Ok(Self {
            image: image.clone(),
            record_sha256,
            description: format!(
                "{} {} (imagepipe record sha256 {record_sha256})",
                image.name, image.version
            ),
            item_name: item,
            name_template: name_template.to_string(),
            layout,
            keep,
        })
    }

    /// Whether `name` is this image's item for `version` in this layout: retention only ever
    /// touches those.
    pub fn is_item_of(&self, name: &str, version: &semver::Version) -> bool {
        let other = ImageRef {
            name: self.image.name.clone(),
            version: version.clone(),
        };
        render_item_name(&self.name_template, self.layout, &other) == name
    }

    pub fn properties(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (PROP_IMAGE.into(), self.image.name.to_string()),
            (PROP_VERSION.into(), self.image.version.to_string()),
            (PROP_RECORD.into(), self.record_sha256.to_string()),
        ])
    }
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    pub library: String,
    pub item: String,
    pub item_id: String,
    pub item_version: String,
    /// False when the item already held this version: nothing was sent.
    pub changed: bool,
    /// Items removed by retention.
    pub removed: Vec<String>,
    /// Subscribed libraries synced, and whether each showed the item by the deadline.
    pub synced: Vec<Synced>,
    /// Whether the OVA's manifest checked each file (see `ImportOptions::allow_missing_manifest`).
    pub manifest: bool,
    /// What the import had to repair on the way (an update session an earlier, killed run left
    /// active), for the step to warn about.
    pub warnings: Vec<String>,
    /// The deploy check after the import, when one was asked for (vCenter libraries only).
    pub deploy: Option<crate::record::DeployCheck>,
}

/// A subscribed library after its sync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Synced {
    pub library: String,
    pub has_item: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(
        "the item name `{name}` (from --item-name `{template}`) cannot be a library item: \
         {reason}; use a plain name such as `{{image}}` or `{{image}}-{{version}}`"
    )]
    BadItemName {
        template: String,
        name: String,
        reason: &'static str,
    },
    #[error("{library}: {message}")]
    Failed { library: String, message: String },
    #[error("{library}: {path}: {source}")]
    Io {
        library: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{library}: reading {member} from the store: {source}")]
    Source {
        library: String,
        member: String,
        source: std::io::Error,
    },
    #[error(
        "{library}: `{member}` does not match the OVA manifest ({algorithm} {actual}, the manifest says {expected}); the package is corrupt"
    )]
    Checksum {
        library: String,
        member: String,
        algorithm: String,
        expected: String,
        actual: String,
    },
    #[error("{library}: {method} {url}: {status}: {message}")]
    Remote {
        library: String,
        method: String,
        url: String,
        status: u16,
        message: String,
        /// vSphere's error type in upper snake case (`RESOURCE_BUSY`, `ALREADY_EXISTS`), from
        /// `/api`'s `error_type` or `/rest`'s `type` (`com.vmware.vapi.std.errors.resource_busy`).
        error_type: Option<String>,
    },
    #[error(
        "{library}: {method} {url}: {status}{message}: not authorised; check the library's \
         credentials in imagepipe.toml and the permissions they carry"
    )]
    Unauthorized {
        library: String,
        method: String,
        url: String,
        status: u16,
        /// The server's reason, after ": ", when a 403 gave one.
        message: String,
    },
    #[error("{library}: {source}")]
    Http {
        library: String,
        source: crate::http::HttpError,
    },
}

/// Digests of a member computed while it streams, checked against the OVA manifest.
pub(crate) struct MemberHasher {
    sha256: sha2::Sha256,
    sha1: Option<sha1::Sha1>,
    sha512: Option<sha2::Sha512>,
}

impl MemberHasher {
    pub(crate) fn new(package: &Package, member: &Member) -> Self {
        let alg = package
            .checksums
            .get(&member.name)
            .map(|c| c.algorithm.as_str());
        Self {
            sha256: sha2::Digest::new(),
            sha1: (alg == Some("SHA1")).then(sha2::Digest::new),
            sha512: (alg == Some("SHA512")).then(sha2::Digest::new),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        self.sha256.update(bytes);
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    /// The member's sha256, after checking the manifest's checksum when there is one.
    pub(crate) fn finish(
        self,
        library: &str,
        package: &Package,
        member: &Member,
    ) -> Result<Sha256Hex, LibraryError> {
        use sha2::Digest as _;
        let sha256 = Sha256Hex::from_hasher(self.sha256);
        if let Some(want) = package.checksums.get(&member.name) {
            let actual = match want.algorithm.as_str() {
                "SHA1" => hex::encode(self.sha1.map(|h| h.finalize()).unwrap_or_default()),
                "SHA512" => hex::encode(self.sha512.map(|h| h.finalize()).unwrap_or_default()),
                _ => sha256.to_string(),
            };
            if actual != want.hex {
                return Err(LibraryError::Checksum {
                    library: library.to_string(),
                    member: member.name.clone(),
                    algorithm: want.algorithm.clone(),
                    expected: want.hex.clone(),
                    actual,
                });
            }
        }
        Ok(sha256)
    }
}

/// Streams one member from the store through `sink`. With `check`, it is hashed on the way
/// and the manifest's checksum checked at the end, and its sha256 returned; without, the
/// receiver checks it (vCenter verifies the `checksum_info` it is given).
pub(crate) async fn copy_member<F, Fut>(
    library: &str,
    reader: &dyn ArtifactReader,
    package: &Package,
    member: &Member,
    check: bool,
    mut sink: F,
) -> Result<Option<Sha256Hex>, LibraryError>
where
    F: FnMut(bytes::Bytes) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    use futures_util::StreamExt as _;
    let source = |source| LibraryError::Source {
        library: library.to_string(),
        member: member.name.clone(),
        source,
    };
    let mut stream = reader
        .stream(member.offset, member.size)
        .await
        .map_err(source)?;
    let mut hasher = check.then(|| MemberHasher::new(package, member));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(source)?;
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
        sink(chunk).await.map_err(|source| LibraryError::Io {
            library: library.to_string(),
            path: member.name.clone().into(),
            source,
        })?;
    }
    hasher
        .map(|h| h.finish(library, package, member))
        .transpose()
}
