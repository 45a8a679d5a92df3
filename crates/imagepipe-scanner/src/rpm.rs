//! rpm's package database in each of the formats rpm has kept it in, one header blob per
//! installed package:
//!
//! - SQLite (`rpmdb.sqlite`, RHEL 9, Fedora 33+ and their rebuilds): table `Packages`. The
//!   database is copied out of the image into a private temporary directory (with its
//!   write-ahead log, which SQLite then replays) and read with SQLite itself.
//! - BerkeleyDB hash (`Packages`, RHEL/CentOS 5–8, Amazon Linux 2, SLES 12) and NDB
//!   (`Packages.db`, SUSE 15 SP3+): read with imagepipe-rpmdb, which follows rpm's own
//!   read-only readers.
//!
//! The header blobs are parsed here, within rpm's own limits. Layout:
//! <https://rpm-software-management.github.io/rpm/manual/format_v4.html>

use std::path::Path;

use super::inventory::{InventoryError, Package};
use super::rootfs::Tree;
use super::version::Scheme;

/// Where rpm keeps its database: the classic path, and the one Fedora moved it to (RHEL 9 links
/// the first to the second).
const DB_DIRS: [&str; 2] = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

// rpm's own sanity limits on a header (`hdrchkTags`, `hdrchkData` in lib/header.c).
const MAX_TAGS: usize = 0xffff;
const MAX_DATA: usize = 0x0fff_ffff;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;
const TAG_MODULARITYLABEL: u32 = 5096;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The fields of one package header that an inventory needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<u32>,
    pub arch: String,
    /// `openssl-3.0.7-27.el9.src.rpm`; empty for pseudo-packages such as `gpg-pubkey`.
    pub source_rpm: String,
    /// `nodejs:18:8090020231019152822:a75119d5` for a package of a module stream (RHEL 8+);
    /// empty otherwise.
    pub modularity_label: String,
}

/// Parses a header blob as rpmdb stores it (no lead, no magic): the index length and data
/// length, the index entries, then the data store.
pub fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let be32 = |at: usize| -> Option<u32> {
        blob.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(il), Some(dl)) = (be32(0), be32(4)) else {
        return Err("shorter than a header's 8-byte preamble".into());
    };
    let (il, dl) = (il as usize, dl as usize);
    if il == 0 || il > MAX_TAGS || dl > MAX_DATA {
        return Err(format!(
            "{il} tags and {dl} data bytes: beyond rpm's own limits"
        ));
    }
    let data_start = 8 + il * 16;
    let data = blob.get(data_start..data_start + dl).ok_or_else(|| {
        format!(
            "{} bytes where the header needs {}",
            blob.len(),
            data_start + dl
        )
    })?;
    let string_at = |offset: usize| -> Result<String, String> {
        let rest = data
            .get(offset..)
            .ok_or_else(|| format!("a string at {offset}, past the data ({dl} bytes)"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("the string at {offset} is not terminated"))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut h = Header::default();
    for i in 0..il {
        let at = 8 + i * 16;
        let (tag, kind, offset, count) = match (be32(at), be32(at + 4), be32(at + 8), be32(at + 12))
        {
            (Some(t), Some(k), Some(o), Some(c)) => (t, k, o as usize, c),
            _ => return Err(format!("index entry {i} is truncated")),
        };
        let field = match tag {
            TAG_NAME => &mut h.name,
            TAG_VERSION => &mut h.version,
            TAG_RELEASE => &mut h.release,
            TAG_ARCH => &mut h.arch,
            TAG_SOURCERPM => &mut h.source_rpm,
            TAG_MODULARITYLABEL => &mut h.modularity_label,
            TAG_EPOCH => {
                if kind != TYPE_INT32 || count != 1 {
                    return Err(format!("EPOCH has type {kind} and count {count}"));
                }
                let b = data
                    .get(offset..offset + 4)
                    .ok_or_else(|| format!("EPOCH at {offset}, past the data ({dl} bytes)"))?;
                h.epoch = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                continue;
            }
            _ => continue,
        };
        if !matches!(kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(format!("tag {tag} has type {kind}, not a string"));
        }
        *field = string_at(offset)?;
    }
    if h.name.is_empty() {
        return Err("a header without a NAME".into());
    }
    Ok(h)
}

impl Header {
    /// `[epoch:]version-release`, the form OSV's rpm ecosystems use.
    pub fn evr(&self) -> String {
        self.with_epoch(&self.version, &self.release)
    }

    /// `[epoch:]version-release`; a source package takes its binary's epoch.
    fn with_epoch(&self, version: &str, release: &str) -> String {
        match self.epoch {
            Some(e) if e > 0 => format!("{e}:{version}-{release}"),
            _ => format!("{version}-{release}"),
        }
    }

    /// The source package's name and `[epoch:]version-release` from `SOURCERPM`
    /// (`name-version-release.src.rpm`); the binary's own when there is none.
    pub fn source(&self) -> (String, String) {
        let stem = self
            .source_rpm
            .strip_suffix(".src.rpm")
            .or_else(|| self.source_rpm.strip_suffix(".nosrc.rpm"));
        let mut parts = stem.map(|s| s.rsplitn(3, '-').collect::<Vec<_>>());
        match parts.as_deref_mut() {
            Some([release, version, name]) if !name.is_empty() => {
                (name.to_string(), self.with_epoch(version, release))
            }
            _ => (self.name.clone(), self.evr()),
        }
    }

    fn package(&self) -> Package {
        let (source, source_version) = self.source();
        Package {
            name: self.name.clone(),
            version: self.evr(),
            arch: self.arch.clone(),
            source,
            source_version,
            modularity_label: (!self.modularity_label.is_empty())
                .then(|| self.modularity_label.clone()),
            scheme: Scheme::Rpm,
        }
    }
}

/// The database formats, by the name `%_db_backend` gives each and the file it keeps, in the
/// order rpm looks for one on disk when the configured one is not there (the `backends` array
/// of rpm's `lib/backend/dbi.c`: sqlite, ndb, then BerkeleyDB, read-write or read-only).
const BACKENDS: [(&[&str], &str); 3] = [
    (&["sqlite"], "rpmdb.sqlite"),
    (&["ndb"], "Packages.db"),
    (&["bdb", "bdb_ro"], "Packages"),
];

/// The database backend the image's rpm is configured with (`%_db_backend`, the last
/// definition in `/usr/lib/rpm/macros`, then `/etc/rpm/macros`), if it says.
fn configured_backend(tree: &dyn Tree) -> Result<Option<String>, InventoryError> {
    let mut backend = None;
    for file in ["/usr/lib/rpm/macros", "/etc/rpm/macros"] {
        let Some(text) = tree.read(file).map_err(|source| InventoryError::Io {
            file: file.into(),
            source,
        })?
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("%_db_backend")
                && let Some(value) = words.next()
            {
                backend = Some(value.to_string());
            }
        }
    }
    Ok(backend)
}

/// The packages of the image's rpm database, in the order rpm installed them; none when the
/// image has no rpm database. An rpm database this release cannot read is an error rather than
/// an empty (and falsely clean) inventory.
///
/// Which database is read is what rpm decides (`dbDetectBackend` in `lib/backend/dbi.c`): the
/// configured backend's file if it exists, else the first of `rpmdb.sqlite`, `Packages.db` and
/// `Packages` that does.
pub fn from_tree(tree: &dyn Tree) -> Result<Vec<Package>, InventoryError> {
    let io = |file: &str| {
        let file = file.to_string();
        move |source| InventoryError::Io { file, source }
    };
    let configured = configured_backend(tree)?;
    for dir in DB_DIRS {
        let mut present = Vec::new();
        for (names, file) in BACKENDS {
            let path = format!("{dir}/{file}");
            if tree.metadata(&path).map_err(io(&path))?.is_some() {
                present.push((names, path));
            }
        }
        let chosen = present
            .iter()
            .find(|(names, _)| configured.as_deref().is_some_and(|c| names.contains(&c)))
            .or(present.first());
        let Some((names, path)) = chosen else {
            continue;
        };
        let Some(bytes) = tree.read(path).map_err(io(path))? else {
            continue;
        };
        return match names[0] {
            "sqlite" => {
                let wal = format!("{path}-wal");
                let wal_bytes = tree.read(&wal).map_err(io(&wal))?;
                read_copy(&bytes, wal_bytes.as_deref(), path)
            }
            "ndb" => from_blobs(imagepipe_rpmdb::ndb_packages(&mut bytes.as_slice()), path),
            _ => from_blobs(imagepipe_rpmdb::bdb_packages(&mut bytes.as_slice()), path),
        };
    }
    Ok(Vec::new())
}

/// The packages of header blobs a BerkeleyDB or NDB reader returned.
fn from_blobs(
    blobs: Result<Vec<(u32, Vec<u8>)>, imagepipe_rpmdb::Error>,
    file: &str,
) -> Result<Vec<Package>, InventoryError> {
    let bad = |message: String| InventoryError::Bad {
        file: file.into(),
        message,
    };
    let blobs = blobs.map_err(|e| bad(format!("not a readable rpm database: {e}")))?;
    let mut out = Vec::new();
    for (hnum, blob) in blobs {
        let header = parse_header(&blob).map_err(|m| bad(format!("package header {hnum}: {m}")))?;
        // Imported signing keys are headers too; they are not software.
        if header.name != "gpg-pubkey" {
            out.push(header.package());
        }
    }
    Ok(out)
}

fn read_copy(db: &[u8], wal: Option<&[u8]>, file: &str) -> Result<Vec<Package>, InventoryError> {
    let io = |source| InventoryError::Io {
        file: file.into(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, db).map_err(io)?;
    if let Some(wal) = wal {
        std::fs::write(dir.path().join("rpmdb.sqlite-wal"), wal).map_err(io)?;
    }
    read_sqlite(&path).map_err(|message| InventoryError::Bad {
        file: file.into(),
        message,
    })
}

/// Reads the `Packages` table of an rpmdb.sqlite file.
pub fn read_sqlite(path: &Path) -> Result<Vec<Package>, String> {
    use rusqlite::config::DbConfig;
    let sql = |e: rusqlite::Error| format!("not a readable rpm database: {e}");
    let conn = rusqlite::Connection::open(path).map_err(sql)?;
    // The file comes from the image: let SQLite treat it as hostile.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(sql)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .map_err(sql)?;
    conn.pragma_update(None, "cell_size_check", true)
        .map_err(sql)?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let hnum: i64 = row.get(0).map_err(sql)?;
        let blob: Vec<u8> = row.get(1).map_err(sql)?;
        let header = parse_header(&blob).map_err(|m| format!("package header {hnum}: {m}"))?;
        // Imported signing keys are headers too; they are not software.
        if header.name != "gpg-pubkey" {
            out.push(header.package());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob with the given string tags and an optional epoch.
    fn blob(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, s) in strings {
            index.push((*tag, TYPE_STRING, data.len() as u32, 1u32));
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        if let Some(e) = epoch {
            while data.len() % 4 != 0 {
                data.push(0);
            }
            index.push((TAG_EPOCH, TYPE_INT32, data.len() as u32, 1));
            data.extend_from_slice(&e.to_be_bytes());
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(index.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (t, k, o, c) in index {
            for v in [t, k, o, c] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn headers_evr_and_source() {
        let b = blob(
            &[
                (TAG_NAME, "openssl-libs"),
                (TAG_VERSION, "3.0.7"),
                (TAG_RELEASE, "27.el9"),
                (TAG_ARCH, "x86_64"),
                (TAG_SOURCERPM, "openssl-3.0.7-27.el9.src.rpm"),
            ],
            Some(1),
        );
        let h = parse_header(&b).unwrap();
        assert_eq!(h.evr(), "1:3.0.7-27.el9");
        assert_eq!(
            h.source(),
            ("openssl".to_string(), "1:3.0.7-27.el9".to_string())
        );
        let no_epoch = parse_header(&blob(
            &[
                (TAG_NAME, "bash"),
                (TAG_VERSION, "5.1.8"),
                (TAG_RELEASE, "6.el9"),
            ],
            None,
        ))
        .unwrap();
        assert_eq!(no_epoch.evr(), "5.1.8-6.el9");
        assert_eq!(no_epoch.source().0, "bash");
    }

    #[test]
    fn a_module_stream_package_carries_its_label() {
        let label = "nodejs:18:8090020231019152822:a75119d5";
        let h = parse_header(&blob(
            &[
                (TAG_NAME, "nodejs"),
                (TAG_VERSION, "18.18.2"),
                (TAG_RELEASE, "2.module+el8.9.0+20473+c4e3d824"),
                (TAG_MODULARITYLABEL, label),
            ],
            Some(1),
        ))
        .unwrap();
        assert_eq!(h.package().modularity_label.as_deref(), Some(label));
        let plain = parse_header(&blob(&[(TAG_NAME, "bash")], None)).unwrap();
        assert_eq!(plain.package().modularity_label, None);
    }

    #[test]
    fn hostile_headers_are_refused() {
        let good = blob(&[(TAG_NAME, "bash")], None);
        for n in 0..good.len() {
            assert!(parse_header(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut unterminated = good.clone();
        unterminated.pop();
        unterminated.push(b'x');
        assert!(
            parse_header(&unterminated)
                .unwrap_err()
                .contains("not terminated")
        );
        let mut far = good.clone();
        far[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&far).is_err());
        let mut huge = good;
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).unwrap_err().contains("limits"));
    }
}
