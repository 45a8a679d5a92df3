//! The filesystems a partition or logical volume can hold, behind one interface for
//! [`rootfs`](super::rootfs): ext2/3/4 (read with ext4-view) and XFS (read with imagepipe-xfs,
//! the RHEL family's default). Paths given here have no symbolic links left in them: the
//! caller resolves links across mounts, so a link is only ever looked at, never followed.

use std::cell::RefCell;
use std::io;

use super::rootfs::Meta;

/// One mounted filesystem.
pub(crate) enum Filesystem {
    Ext(ext4_view::Ext4),
    /// The XFS reader caches what it reads, so it needs `&mut`; the scan reads one file at a
    /// time.
    Xfs(Box<RefCell<imagepipe_xfs::Xfs>>),
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ext(_) => "ext4",
            Self::Xfs(_) => "xfs",
        })
    }
}

/// Which filesystem the first bytes of a volume announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ext,
    Xfs,
}

/// The filesystem whose superblock `head` (the first 2 KiB of a volume, or fewer when the
/// volume is smaller) holds, if this scan reads it.
pub(crate) fn probe(head: &[u8]) -> Option<Kind> {
    // ext2/3/4: the superblock at byte 1024, its magic 0xef53 at offset 56.
    if head.get(1080..1082) == Some(&[0x53, 0xef][..]) {
        return Some(Kind::Ext);
    }
    imagepipe_xfs::Xfs::probe(head).then_some(Kind::Xfs)
}

fn ext_err(what: &str, e: ext4_view::Ext4Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

fn xfs_err(e: imagepipe_xfs::Error) -> io::Error {
    // The reader's messages name the inode and the path: "XFS inode 131 (/var/lib/rpm): …".
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn ext_meta(m: &ext4_view::Metadata) -> Meta {
    Meta {
        mode: u32::from(m.mode()),
        uid: m.uid(),
        gid: m.gid(),
        dir: m.is_dir(),
        symlink: m.is_symlink(),
    }
}

fn xfs_meta(m: &imagepipe_xfs::Meta) -> Meta {
    Meta {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        dir: m.dir,
        symlink: m.symlink,
    }
}

/// A file in the middle of a path (`/etc/passwd/x`) means there is nothing there, as for a
/// directory tree.
fn xfs_absent<T>(r: Result<Option<T>, imagepipe_xfs::Error>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(v),
        Err(imagepipe_xfs::Error::NotADirectory { .. } | imagepipe_xfs::Error::NotFound { .. }) => {
            Ok(None)
        }
        Err(e) => Err(xfs_err(e)),
    }
}

/// Runs a filesystem reader on untrusted bytes, turning a panic in it into an error: ext4-view
/// trusts some on-disk fields (fuzzing found a division by zero and a huge allocation, now
/// refused before it is called), and a hostile image must end in a clear error and exit 2, not
/// an abort. The reader's state after a panic is not trusted again: the error ends the scan.
fn guarded<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    crate::guard::quietly(f).unwrap_or_else(|why| {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what}: the filesystem is corrupt (its reader failed: {why})"),
        ))
    })
}

fn too_big(path: &str, len: u64) -> io::Error {
    io::Error::other(format!(
        "{path} is {len} bytes; more than a package database can be"
    ))
}

/// What ext4-view 0.9 takes on trust from a superblock, checked here first so a hostile image
/// gets an error naming the volume (both found by the `disk_image` fuzz target): zero blocks
/// per group (it divides by it), and more blocks than the volume holds (it allocates a
/// descriptor per group up front: gigabytes for a forged block count).
fn check_ext_superblock<D>(dev: &mut D, what: &str) -> io::Result<()>
where
    D: ext4_view::Ext4Read + imagepipe_xfs::ReadAt,
{
    let mut sb = [0u8; 0x158];
    ext4_view::Ext4Read::read(dev, 1024, &mut sb)
        .map_err(|e| io::Error::other(format!("the ext superblock of {what}: {e}")))?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let corrupt = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the ext filesystem of {what} is corrupt: its superblock gives {why}"),
        )
    };
    if u32_at(0x20) == 0 {
        return Err(corrupt("0 blocks per group".into()));
    }
    let blocks = u64::from(u32_at(0x150)) << 32 | u64::from(u32_at(0x04));
    // ext4 block sizes are 1 KiB to 64 KiB; ext4-view refuses the others itself.
    let block_size = 1024u64 << u32_at(0x18).min(6);
    let volume = imagepipe_xfs::ReadAt::len(dev);
    if blocks.saturating_mul(block_size) > volume {
        return Err(corrupt(format!(
            "{blocks} blocks of {block_size} bytes, more than the volume's {volume} bytes"
        )));
    }
    Ok(())
}

impl Filesystem {
    /// Opens the filesystem of `kind` on `dev` (`what` names the volume in errors).
    pub(crate) fn open<D>(kind: Kind, dev: D, what: &str) -> io::Result<Self>
    where
        D: ext4_view::Ext4Read + imagepipe_xfs::ReadAt + Send + 'static,
    {
        guarded(what, move || Self::open_unguarded(kind, dev, what))
    }

    fn open_unguarded<D>(kind: Kind, dev: D, what: &str) -> io::Result<Self>
    where
        D: ext4_view::Ext4Read + imagepipe_xfs::ReadAt + Send + 'static,
    {
        match kind {
            Kind::Ext => {
                let mut dev = dev;
                check_ext_superblock(&mut dev, what)?;
                ext4_view::Ext4::load(Box::new(dev))
                    .map(Self::Ext)
                    .map_err(|e| ext_err(&format!("the ext filesystem of {what}"), e))
            }
            Kind::Xfs => imagepipe_xfs::Xfs::open(Box::new(dev))
                .map(|x| Self::Xfs(Box::new(RefCell::new(x))))
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the XFS filesystem of {what}: {e}"),
                    )
                }),
        }
    }

    /// The filesystem UUID as fstab writes it (`UUID=…`, lower-case, hyphenated).
    pub(crate) fn uuid(&self) -> String {
        match self {
            Self::Ext(fs) => fs.uuid().to_string(),
            Self::Xfs(x) => uuid::Uuid::from_bytes(x.borrow().uuid())
                .hyphenated()
                .to_string(),
        }
    }

    pub(crate) fn label(&self) -> Option<String> {
        match self {
            Self::Ext(fs) => fs.label().to_str().ok().map(String::from),
            Self::Xfs(x) => Some(x.borrow().label()),
        }
    }

    /// `lstat`: what is at `path`, a final link not followed.
    pub(crate) fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        guarded(path, || match self {
            Self::Ext(fs) => match fs.symlink_metadata(path) {
                Ok(m) => Ok(Some(ext_meta(&m))),
                Err(ext4_view::Ext4Error::NotFound) => Ok(None),
                Err(e) => Err(ext_err(path, e)),
            },
            Self::Xfs(x) => Ok(xfs_absent(x.borrow_mut().metadata(path))?.map(|m| xfs_meta(&m))),
        })
    }

    /// The target of the link at `path`; `None` when it is not a link or not there.
    pub(crate) fn read_link(&self, path: &str) -> io::Result<Option<String>> {
        guarded(path, || match self {
            Self::Ext(fs) => match fs.symlink_metadata(path) {
                Ok(m) if m.is_symlink() => {
                    let target = fs.read_link(path).map_err(|e| ext_err(path, e))?;
                    target.to_str().map(|t| Some(t.to_string())).map_err(|_| {
                        io::Error::other(format!("{path}: a link target that is not UTF-8"))
                    })
                }
                Ok(_) | Err(ext4_view::Ext4Error::NotFound) => Ok(None),
                Err(e) => Err(ext_err(path, e)),
            },
            Self::Xfs(x) => xfs_absent(x.borrow_mut().read_link(path)),
        })
    }

    /// The bytes of the regular file at `path`, at most `max` of them; `None` for nothing
    /// there, a directory or a special file.
    pub(crate) fn read(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        guarded(path, || {
            match self {
                Self::Ext(fs) => match fs.metadata(path) {
                    Ok(m) if m.len() > max => Err(too_big(path, m.len())),
                    Ok(m) if m.is_dir() => Ok(None),
                    Ok(_) => fs.read(path).map(Some).map_err(|e| ext_err(path, e)),
                    Err(ext4_view::Ext4Error::NotFound) => Ok(None),
                    Err(e) => Err(ext_err(path, e)),
                },
                // One walk from the root: the reader refuses what is not a regular file, and what
                // is too large, itself.
                Self::Xfs(x) => match x.borrow_mut().read_file(path, max) {
                    Ok(b) => Ok(b),
                    Err(imagepipe_xfs::Error::TooLarge { size, .. }) => Err(too_big(path, size)),
                    Err(imagepipe_xfs::Error::NotAFile { .. }) => Ok(None),
                    Err(e) => xfs_absent(Err(e)),
                },
            }
        })
    }

    /// The entries of the directory at `path` (without `.` and `..`), each with its own
    /// metadata; nothing when there is no such directory.
    pub(crate) fn entries(&self, path: &str) -> io::Result<Vec<(String, Meta)>> {
        self.read_dir(path, true)
            // Read with metadata, every entry has it.
            .map(|v| v.into_iter().filter_map(|(n, m)| Some((n, m?))).collect())
    }

    /// The names in the directory at `path` (without `.` and `..`): an ext directory gives
    /// them without reading each entry's inode.
    pub(crate) fn names(&self, path: &str) -> io::Result<Vec<String>> {
        self.read_dir(path, false)
            .map(|v| v.into_iter().map(|(n, _)| n).collect())
    }

    fn read_dir(&self, path: &str, with_meta: bool) -> io::Result<Vec<(String, Option<Meta>)>> {
        guarded(path, || {
            match self {
                Self::Ext(fs) => {
                    let entries = match fs.read_dir(path) {
                        Ok(e) => e,
                        Err(ext4_view::Ext4Error::NotFound) => return Ok(Vec::new()),
                        Err(e) => return Err(ext_err(path, e)),
                    };
                    let mut out = Vec::new();
                    for entry in entries {
                        let entry = entry.map_err(|e| ext_err(path, e))?;
                        let name = entry.file_name();
                        let name = name.as_str().map_err(|_| {
                            io::Error::other(format!("{path}: a name that is not UTF-8"))
                        })?;
                        if name != "." && name != ".." {
                            // The entry's own inode: no lookup from the root for each name.
                            let m = if with_meta {
                                let m = entry
                                    .metadata()
                                    .map_err(|e| ext_err(&format!("{path}/{name}"), e))?;
                                Some(ext_meta(&m))
                            } else {
                                None
                            };
                            out.push((name.to_string(), m));
                        }
                    }
                    Ok(out)
                }
                Self::Xfs(x) => Ok(xfs_absent(x.borrow_mut().read_dir(path))?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(n, m)| (n, Some(xfs_meta(&m))))
                    .collect()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_panics_is_an_error_naming_the_volume() {
        let err = guarded::<()>("/dev/sda1", || panic!("attempt to divide by zero")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "/dev/sda1: the filesystem is corrupt (its reader failed: attempt to divide by zero)"
        );
        assert_eq!(guarded("x", || Ok(7)).unwrap(), 7);
    }
}
