//! The root filesystem of an image: a directory, or the ext2/3/4 filesystem of a disk image
//! that holds `etc/os-release`, with the partitions its `/etc/fstab` mounts (a separate `/usr`
//! or `/var`). Only the files the scan asks for are read.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::disk::{self, Disk, Partition};

/// Files larger than this are not read (package databases are far smaller).
const MAX_FILE: u64 = 256 << 20;

/// What a policy checks of a file: its permission bits, owner and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dir: bool,
    pub symlink: bool,
}

/// Read access to a root filesystem by absolute path.
pub trait Tree {
    /// A file's metadata, not following a final symlink; `None` when there is no such file.
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>>;
    /// A file's bytes, or `None` when there is no such file.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// The names in a directory, or nothing when there is no such directory.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
}

/// A root filesystem unpacked in a directory.
#[derive(Debug)]
pub struct DirTree(pub PathBuf);

impl Tree for DirTree {
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::symlink_metadata(self.0.join(path.trim_start_matches('/'))) {
            Ok(m) => Ok(Some(Meta {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                dir: m.is_dir(),
                symlink: m.file_type().is_symlink(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let p = self.0.join(path.trim_start_matches('/'));
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > MAX_FILE => Err(io::Error::other(format!(
                "{path} is {} bytes; more than a package database can be",
                m.len()
            ))),
            Ok(_) => std::fs::read(&p).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        match std::fs::read_dir(self.0.join(dir.trim_start_matches('/'))) {
            Ok(entries) => Ok(entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

type SharedDisk = Rc<RefCell<Box<dyn Disk>>>;

/// One partition as ext4-view reads it.
struct PartReader {
    disk: SharedDisk,
    part: Partition,
}

impl ext4_view::Ext4Read for PartReader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        if start
            .checked_add(dst.len() as u64)
            .is_none_or(|e| e > self.part.len)
        {
            return Err(Box::new(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the filesystem reads past its partition ({} bytes)",
                    self.part.len
                ),
            )));
        }
        self.disk
            .borrow_mut()
            .read_at(self.part.start + start, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

/// The root filesystem of a disk image, with its fstab mounts.
pub struct ImageTree {
    disk: SharedDisk,
    /// Mount point (`/`, `/usr`, …) and filesystem, longest mount point first.
    mounts: Vec<(String, ext4_view::Ext4)>,
}

impl std::fmt::Debug for ImageTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTree")
            .field(
                "mounts",
                &self.mounts.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether a partition holds an ext2/3/4 filesystem; a read that fails (a truncated or corrupt
/// image) is an error, not "no".
fn ext_magic(disk: &SharedDisk, p: Partition) -> io::Result<bool> {
    if p.len <= 2048 {
        return Ok(false);
    }
    let mut m = [0u8; 2];
    disk.borrow_mut().read_at(p.start + 1080, &mut m)?;
    Ok(m == [0x53, 0xef])
}

fn fs_err(what: &str, e: ext4_view::Ext4Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

impl ImageTree {
    /// Opens the image at `path` and finds its root filesystem.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::from_disk(disk::open(path)?)
    }

    pub fn from_disk(disk: Box<dyn Disk>) -> io::Result<Self> {
        let disk: SharedDisk = Rc::new(RefCell::new(disk));
        let parts = disk::partitions(&mut **disk.borrow_mut())?;
        let mut filesystems = Vec::new();
        for p in parts {
            if !ext_magic(&disk, p)? {
                continue;
            }
            let reader = PartReader {
                disk: disk.clone(),
                part: p,
            };
            let fs = ext4_view::Ext4::load(Box::new(reader))
                .map_err(|e| fs_err(&format!("the ext filesystem at byte {}", p.start), e))?;
            filesystems.push(fs);
        }
        let mut root = None;
        'search: for (i, fs) in filesystems.iter().enumerate() {
            for f in ["/etc/os-release", "/usr/lib/os-release"] {
                // A read that fails is the image's fault, and says so.
                if fs.exists(f).map_err(|e| fs_err(f, e))? {
                    root = Some(i);
                    break 'search;
                }
            }
        }
        let root = root.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no ext2/3/4 filesystem of the image holds etc/os-release: not a Linux root filesystem this scan can read",
                )
            })?;
        let root_fs = filesystems.remove(root);
        // /etc/fstab names the other filesystems by UUID or label.
        let fstab = root_fs.read_to_string("/etc/fstab").unwrap_or_default();
        let mut mounts = Vec::new();
        for line in fstab.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [spec, point, ..] = fields.as_slice() else {
                continue;
            };
            if spec.starts_with('#') || *point == "/" || !point.starts_with('/') {
                continue;
            }
            let found = filesystems.iter().position(|fs| {
                if let Some(uuid) = spec.strip_prefix("UUID=") {
                    fs.uuid().to_string().eq_ignore_ascii_case(uuid)
                } else if let Some(label) = spec.strip_prefix("LABEL=") {
                    fs.label().to_str().is_ok_and(|l| l == label)
                } else {
                    false
                }
            });
            if let Some(i) = found {
                mounts.push((
                    point.trim_end_matches('/').to_string(),
                    filesystems.remove(i),
                ));
            }
        }
        mounts.push(("/".to_string(), root_fs));
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(Self { disk, mounts })
    }

    /// The filesystem holding `path`, and the path within it.
    fn locate(&self, path: &str) -> Option<(&ext4_view::Ext4, String)> {
        self.mounts.iter().find_map(|(point, fs)| {
            let inner = if point == "/" {
                Some(path)
            } else {
                path.strip_prefix(point.as_str())
                    .filter(|r| r.is_empty() || r.starts_with('/'))
            }?;
            Some((
                fs,
                if inner.is_empty() {
                    "/".to_string()
                } else {
                    inner.to_string()
                },
            ))
        })
    }

    /// Bytes of the image file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.disk.borrow().bytes_read()
    }

    /// The image's virtual size.
    pub fn disk_len(&self) -> u64 {
        self.disk.borrow().len()
    }
}

impl Tree for ImageTree {
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        let Some((fs, inner)) = self.locate(path) else {
            return Ok(None);
        };
        match fs.symlink_metadata(inner.as_str()) {
            Ok(m) => Ok(Some(Meta {
                mode: u32::from(m.mode()),
                uid: m.uid(),
                gid: m.gid(),
                dir: m.is_dir(),
                symlink: m.is_symlink(),
            })),
            Err(ext4_view::Ext4Error::NotFound) => Ok(None),
            Err(e) => Err(fs_err(path, e)),
        }
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let Some((fs, inner)) = self.locate(path) else {
            return Ok(None);
        };
        match fs.metadata(inner.as_str()) {
            Ok(m) if m.len() > MAX_FILE => Err(io::Error::other(format!(
                "{path} is {} bytes; more than a package database can be",
                m.len()
            ))),
            Ok(m) if m.is_dir() => Ok(None),
            Ok(_) => fs
                .read(inner.as_str())
                .map(Some)
                .map_err(|e| fs_err(path, e)),
            Err(ext4_view::Ext4Error::NotFound) => Ok(None),
            Err(e) => Err(fs_err(path, e)),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let Some((fs, inner)) = self.locate(dir) else {
            return Ok(Vec::new());
        };
        let entries = match fs.read_dir(inner.as_str()) {
            Ok(e) => e,
            Err(ext4_view::Ext4Error::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(fs_err(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| fs_err(dir, e))?;
            let name = entry.file_name();
            let name = name
                .as_str()
                .map_err(|_| io::Error::other(format!("{dir}: a name that is not UTF-8")))?;
            if name != "." && name != ".." {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }
}
