//! The local directory store (`file:PATH`), the embedded default.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use semver::Version;
use sha2::{Digest, Sha256};

use super::{PutOutcome, Store, StoreError, stored_file_name};
use crate::hash::{Sha256Hex, hash_file};
use crate::image::{ImageName, ImageRef};
use crate::record::{self, FileArtifact, LoadedRecord};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn version_dir(&self, image: &ImageRef) -> PathBuf {
        self.root
            .join(image.name.as_str())
            .join(image.version.to_string())
    }

    fn lifecycle_path(&self, image: &ImageName, key: &str) -> Result<PathBuf, StoreError> {
        super::check_lifecycle_key(&self.location(), key)?;
        Ok(self
            .root
            .join(image.as_str())
            .join(super::LIFECYCLE_DIR)
            .join(format!("{key}.json")))
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
        let (store, path) = (self.location(), path.to_path_buf());
        move |source| StoreError::Io {
            store,
            path,
            source,
        }
    }

    /// Copies `source` into a temporary file beside `dest` while hashing and counting it,
    /// checks both against the record, then links it into place without replacing anything: a
    /// reader never sees a partial or wrong file under the final name, and a file another
    /// writer put there first is never overwritten. `Ok(false)` when `dest` appeared meanwhile.
    fn copy_verified(
        &self,
        source: &Path,
        dest: &Path,
        expected: &FileArtifact,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<bool, StoreError> {
        let dir = crate::fsutil::parent_dir(dest);
        std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        let mut input = File::open(source).map_err(self.io(source))?;
        // Removed on every early return by its drop; a killed run's is swept by the next one.
        let mut tmp = crate::fsutil::temp_beside(dir, ".partial").map_err(self.io(dir))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(source)(e)),
            };
            hasher.update(&buf[..n]);
            crate::fsutil::crash_point();
            tmp.write_all(&buf[..n]).map_err(self.io(dest))?;
            copied += n as u64;
            progress(copied);
        }
        let actual = Sha256Hex::from_hasher(hasher);
        if actual != expected.sha256 || copied != expected.size {
            return Err(StoreError::SourceMismatch {
                path: source.to_path_buf(),
                expected: expected.sha256,
                actual,
                expected_size: expected.size,
                actual_size: copied,
            });
        }
        tmp.as_file().sync_all().map_err(self.io(dest))?;
        crate::fsutil::crash_point();
        match tmp.persist_noclobber(dest) {
            Ok(_) => Ok(true),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.io(dest)(e.error)),
        }
    }

    /// What a stored file is: whether it holds `expected`, or a conflict naming its digest.
    fn compare_stored(
        &self,
        dest: &Path,
        expected: &FileArtifact,
    ) -> Result<PutOutcome, StoreError> {
        let existing = hash_file(dest, &|_| {}).map_err(self.io(dest))?;
        if existing.sha256 == expected.sha256 && existing.size == expected.size {
            return Ok(PutOutcome::AlreadyPresent);
        }
        Err(StoreError::Conflict {
            store: self.location(),
            path: dest.to_path_buf(),
            existing: existing.sha256,
            new: expected.sha256,
        })
    }
}

/// Temporary files of this store: `.imagepipe-*` (see [`crate::fsutil::temp_beside`]).
fn is_temp(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(".imagepipe-"))
}

#[async_trait::async_trait]
impl Store for LocalStore {
    fn location(&self) -> String {
        format!("file:{}", self.root.display())
    }

    async fn list_versions(&self, image: &ImageName) -> Result<Vec<Version>, StoreError> {
        let dir = self.root.join(image.as_str());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&dir)(e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.io(&dir))?;
            let Some(v) = entry
                .file_name()
                .to_str()
                .and_then(|n| Version::parse(n).ok())
            else {
                continue;
            };
            // Only versions whose record landed are published.
            if entry.path().join(record::FILE_NAME).is_file() {
                versions.push(v);
            }
        }
        Ok(versions)
    }

    async fn fetch_record(&self, image: &ImageRef) -> Result<LoadedRecord, StoreError> {
        let path = self.version_dir(image).join(record::FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::VersionNotFound {
                    image: image.clone(),
                    store: self.location(),
                });
            }
            Err(e) => return Err(self.io(&path)(e)),
        };
        super::stored_record(self.location(), image, &bytes, &path.display().to_string())
    }

    fn artifact_location(&self, image: &ImageRef, artifact: &FileArtifact) -> String {
        let name = artifact.file_name();
        self.version_dir(image).join(name).display().to_string()
    }

    fn record_location(&self, image: &ImageRef) -> String {
        self.version_dir(image)
            .join(record::FILE_NAME)
            .display()
            .to_string()
    }

    async fn put_artifact(
        &self,
        image: &ImageRef,
        source: &Path,
        expected: &FileArtifact,
        _properties: &super::Properties,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<PutOutcome, StoreError> {
        let name = stored_file_name(&self.location(), source)?;
        let dest = self.version_dir(image).join(name);
        if dest.exists() {
            return self.compare_stored(&dest, expected);
        }
        if tokio::task::block_in_place(|| self.copy_verified(source, &dest, expected, progress))? {
            return Ok(PutOutcome::Stored);
        }
        // Another writer linked the same name first (one that took no lock).
        self.compare_stored(&dest, expected)
    }

    async fn put_record(
        &self,
        image: &ImageRef,
        bytes: &[u8],
        _properties: &super::Properties,
    ) -> Result<(), StoreError> {
        let dest = self.version_dir(image).join(record::FILE_NAME);
        let dir = crate::fsutil::parent_dir(&dest);
        std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        let mut tmp = crate::fsutil::temp_beside(dir, ".tmp").map_err(self.io(dir))?;
        crate::fsutil::crash_point();
        tmp.write_all(bytes).map_err(self.io(&dest))?;
        tmp.as_file().sync_all().map_err(self.io(&dest))?;
        crate::fsutil::crash_point();
        // Linked, not renamed: a record another writer put there first stays.
        match tmp.persist_noclobber(&dest) {
            Ok(_) => Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                let existing = std::fs::read(&dest).map_err(self.io(&dest))?;
                if existing == bytes {
                    return Ok(());
                }
                Err(StoreError::Conflict {
                    store: self.location(),
                    path: dest,
                    existing: Sha256Hex::digest(&existing),
                    new: Sha256Hex::digest(bytes),
                })
            }
            Err(e) => Err(self.io(&dest)(e.error)),
        }
    }

    /// A lock file per version (`<image>/.<version>.lock`, which no listing takes for a
    /// version), held with `flock` until the guard is dropped; the kernel releases it when a
    /// writer dies. Under it, every temporary file left in the version by a killed writer is
    /// swept.
    async fn lock_version(
        &self,
        image: &ImageRef,
    ) -> Result<Option<super::VersionLock>, StoreError> {
        let dir = self.root.join(image.name.as_str());
        std::fs::create_dir_all(&dir).map_err(self.io(&dir))?;
        let path = dir.join(format!(".{}.lock", image.version));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io(&path))?;
        tokio::task::block_in_place(|| file.lock()).map_err(self.io(&path))?;
        let version_dir = self.version_dir(image);
        if let Ok(entries) = std::fs::read_dir(&version_dir) {
            for entry in entries.flatten() {
                if is_temp(&entry.file_name()) {
                    let p = entry.path();
                    std::fs::remove_file(&p).map_err(self.io(&p))?;
                }
            }
        }
        Ok(Some(super::VersionLock::new(file)))
    }

    async fn remove_artifact(&self, image: &ImageRef, name: &str) -> Result<bool, StoreError> {
        let path = self.version_dir(image).join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    /// `<image>/_lifecycle/<key>.json`; `_lifecycle` never parses as a version.
    async fn read_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.lifecycle_path(image, key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    async fn list_lifecycle(&self, image: &ImageName) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join(image.as_str()).join(super::LIFECYCLE_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&dir)(e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.io(&dir))?;
            // Temporary files of a writer (`.tmp…`) and anything else are not documents.
            if let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                && super::check_lifecycle_key("", key).is_ok()
            {
                keys.push(key.to_string());
            }
        }
        Ok(keys)
    }

    /// Written beside, synced, then renamed over the old document: readers see one or the
    /// other whole, and a killed writer leaves only a temporary file.
    async fn write_lifecycle(
        &self,
        image: &ImageName,
        key: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let dest = self.lifecycle_path(image, key)?;
        let dir = crate::fsutil::parent_dir(&dest);
        std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        let mut tmp = crate::fsutil::temp_beside(dir, ".tmp").map_err(self.io(dir))?;
        tmp.write_all(bytes).map_err(self.io(&dest))?;
        tmp.as_file().sync_all().map_err(self.io(&dest))?;
        crate::fsutil::crash_point();
        tmp.persist(&dest).map_err(|e| self.io(&dest)(e.error))?;
        Ok(())
    }

    /// `<image>/.lifecycle.lock`, held with `flock` like a version's lock: lifecycle changes
    /// of one image (promotions, rollbacks, revocations, prunes) run one after the other.
    async fn lock_lifecycle(
        &self,
        image: &ImageName,
    ) -> Result<Option<super::VersionLock>, StoreError> {
        let dir = self.root.join(image.as_str());
        std::fs::create_dir_all(&dir).map_err(self.io(&dir))?;
        let path = dir.join(".lifecycle.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io(&path))?;
        tokio::task::block_in_place(|| file.lock()).map_err(self.io(&path))?;
        Ok(Some(super::VersionLock::new(file)))
    }

    /// The record goes first (and the directory is synced), so the version is invisible before
    /// any artifact goes; then the directory.
    async fn delete_version(&self, image: &ImageRef) -> Result<(), StoreError> {
        let dir = self.version_dir(image);
        let record = dir.join(record::FILE_NAME);
        match std::fs::remove_file(&record) {
            Ok(()) => {
                if let Ok(d) = File::open(&dir) {
                    d.sync_all().map_err(self.io(&dir))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&record)(e)),
        }
        crate::fsutil::crash_point();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(&dir)(e)),
        }
    }

    async fn artifact_digest(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Option<super::StoredFile>, StoreError> {
        let path = PathBuf::from(self.artifact_location(image, artifact));
        let digest = tokio::task::spawn_blocking({
            let path = path.clone();
            move || hash_file(&path, &|_| {})
        })
        .await
        .map_err(|e| self.io(&path)(io::Error::other(e)))?;
        match digest {
            Ok(d) => Ok(Some(super::StoredFile {
                sha256: d.sha256,
                size: d.size,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    async fn open_artifact(
        &self,
        image: &ImageRef,
        artifact: &FileArtifact,
    ) -> Result<Box<dyn super::ArtifactReader>, StoreError> {
        let path = PathBuf::from(self.artifact_location(image, artifact));
        let reader = super::FileReader::open(path.clone()).map_err(self.io(&path))?;
        Ok(Box::new(reader))
    }

    // Overridden to hash all files at once, in parallel.
    async fn verify(&self, image: &ImageRef, record: &LoadedRecord) -> Result<(), StoreError> {
        let files: Vec<(PathBuf, &FileArtifact)> = record
            .record
            .artifacts
            .iter()
            .filter_map(|a| a.file())
            .map(|f| (PathBuf::from(self.artifact_location(image, f)), f))
            .collect();
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        let digests = tokio::task::block_in_place(|| {
            crate::hash::hash_files(&paths, crate::hash::default_workers(), &|_| {})
        });
        for ((path, want), got) in files.into_iter().zip(digests) {
            let got = match got {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::MissingArtifact {
                        store: self.location(),
                        location: path.display().to_string(),
                    });
                }
                Err(e) => return Err(self.io(&path)(e)),
            };
            if got.sha256 != want.sha256 || got.size != want.size {
                return Err(StoreError::Integrity {
                    store: self.location(),
                    path,
                    expected: want.sha256,
                    actual: got.sha256,
                    expected_size: want.size,
                    actual_size: got.size,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Artifact, ArtifactKind, Format};
    use crate::store::resolve;
    use semver::VersionReq;

    /// What a record says of a file holding `bytes`.
    fn want(bytes: &[u8]) -> FileArtifact {
        FileArtifact {
            path: "x".into(),
            size: bytes.len() as u64,
            sha256: Sha256Hex::digest(bytes),
            format: Format::Raw,
            role: crate::record::Role::Disk,
        }
    }

    async fn publish(
        store: &LocalStore,
        src: &Path,
        name: &str,
        version: &str,
        content: &[u8],
    ) -> LoadedRecord {
        let image: ImageRef = format!("{name}@{version}").parse().unwrap();
        let file = src.join(format!("{}-{version}.raw", image.name.flat()));
        std::fs::write(&file, content).unwrap();
        let digest = Sha256Hex::digest(content);
        assert_eq!(
            store
                .put_artifact(&image, &file, &want(content), &[], &|_| {})
                .await
                .unwrap(),
            PutOutcome::Stored
        );
        let mut record = crate::record::tests::sample();
        record.image.name = image.name.clone();
        record.image.version = image.version.clone();
        record.parent = None;
        record.artifacts = vec![Artifact {
            name: "disk".into(),
            build: "file.disk".into(),
            kind: ArtifactKind::File(FileArtifact {
                path: file.file_name().unwrap().to_str().unwrap().into(),
                size: content.len() as u64,
                sha256: digest,
                format: Format::Raw,
                role: crate::record::Role::Disk,
            }),
        }];
        store
            .put_record(&image, &record.to_bytes(), &[])
            .await
            .unwrap();
        store.fetch_record(&image).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn publish_list_resolve_verify() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_path_buf());
        let name: ImageName = "vendor/debian-12".parse().unwrap();
        assert!(store.list_versions(&name).await.unwrap().is_empty());
        for v in ["1.0.0", "1.2.0", "1.10.0", "2.0.0", "2.1.0-rc.1"] {
            publish(&store, src.path(), name.as_str(), v, v.as_bytes()).await;
        }
        // A version directory without a record is not published.
        std::fs::create_dir_all(root.path().join("vendor/debian-12/3.0.0")).unwrap();
        let mut versions = store.list_versions(&name).await.unwrap();
        versions.sort();
        assert_eq!(versions.len(), 5);
        let newest = |req: &str| {
            let req = VersionReq::parse(req).unwrap();
            let store = &store;
            let name = &name;
            async move {
                resolve(store, name, &req)
                    .await
                    .unwrap()
                    .map(|v| v.to_string())
            }
        };
        assert_eq!(newest("^1").await.as_deref(), Some("1.10.0"));
        assert_eq!(newest("*").await.as_deref(), Some("2.0.0"));
        assert_eq!(newest(">=2.1.0-rc.0").await.as_deref(), Some("2.1.0-rc.1"));
        assert_eq!(newest("^3").await, None);

        let image: ImageRef = "vendor/debian-12@1.2.0".parse().unwrap();
        let rec = store.fetch_record(&image).await.unwrap();
        store.verify(&image, &rec).await.unwrap();
        // Corrupt the stored copy: verification names the file.
        let stored = store.version_dir(&image).join("vendor-debian-12-1.2.0.raw");
        std::fs::write(&stored, b"tampered").unwrap();
        let err = store.verify(&image, &rec).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Integrity { ref path, .. } if path == &stored),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn progress_reports_the_bytes_so_far() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_path_buf());
        let file = src.path().join("big.raw");
        let data = vec![7u8; (3 << 20) + 5];
        std::fs::write(&file, &data).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let image: ImageRef = "a@1.0.0".parse().unwrap();
        store
            .put_artifact(&image, &file, &want(&data), &[], &|n| {
                seen.lock().unwrap().push(n)
            })
            .await
            .unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last().copied(), Some(data.len() as u64));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn puts_are_idempotent_and_never_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().to_path_buf());
        let image: ImageRef = "a@1.0.0".parse().unwrap();
        let file = src.path().join("disk.raw");
        std::fs::write(&file, b"one").unwrap();
        let d1 = want(b"one");
        assert_eq!(
            store
                .put_artifact(&image, &file, &d1, &[], &|_| {})
                .await
                .unwrap(),
            PutOutcome::Stored
        );
        assert_eq!(
            store
                .put_artifact(&image, &file, &d1, &[], &|_| {})
                .await
                .unwrap(),
            PutOutcome::AlreadyPresent
        );
        std::fs::write(&file, b"two").unwrap();
        let d2 = want(b"two");
        assert!(matches!(
            store.put_artifact(&image, &file, &d2, &[], &|_| {}).await,
            Err(StoreError::Conflict { .. })
        ));
        // A source whose bytes do not match the digest leaves nothing behind.
        let other: ImageRef = "a@1.0.1".parse().unwrap();
        assert!(matches!(
            store.put_artifact(&other, &file, &d1, &[], &|_| {}).await,
            Err(StoreError::SourceMismatch { .. })
        ));
        let left: Vec<_> = std::fs::read_dir(store.version_dir(&other))
            .unwrap()
            .collect();
        assert!(left.is_empty());
        // The record name is reserved.
        let rec = src.path().join(record::FILE_NAME);
        std::fs::write(&rec, b"x").unwrap();
        assert!(matches!(
            store.put_artifact(&image, &rec, &d1, &[], &|_| {}).await,
            Err(StoreError::BadName { .. })
        ));
        assert!(matches!(
            store.fetch_record(&other).await,
            Err(StoreError::VersionNotFound { .. })
        ));
    }
}
