//! The root filesystem of an image: a directory, a tarball, or the ext2/3/4 or XFS filesystem
//! of a disk image (in a partition or an LVM logical volume) that holds `etc/os-release`, with
//! the filesystems its `/etc/fstab` mounts (a separate `/boot`, `/usr` or `/var`). Only the files the scan
//! asks for are read, and symbolic links resolve inside the root, never into the machine
//! running the scan.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::disk::{self, Disk, Partition};
use super::filesystem::{self, Filesystem as Fs};
use super::lvm::{self, Extent};

/// Files larger than this are not read (package databases are far smaller).
const MAX_FILE: u64 = 256 << 20;

/// Symbolic links followed in one lookup before it is called a loop (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Entries of a root filesystem tarball; a real system has a few hundred thousand.
const MAX_TAR_ENTRIES: usize = 4_000_000;

/// The most a compressed tarball may expand to in the temporary directory.
const MAX_UNPACKED: u64 = 64 << 30;

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
    /// The names in a directory with their metadata (links not followed), for walks: `dir`
    /// has no links in it (it comes from [`Tree::canonical`], or the walk reached it through
    /// directories), so a tree need not resolve it again.
    fn list_meta(&self, dir: &str) -> io::Result<Vec<(String, Meta)>> {
        let mut out = Vec::new();
        for name in self.list(dir)? {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Some(m) = self.metadata(&path)? {
                out.push((name, m));
            }
        }
        Ok(out)
    }
    /// `path` with every symbolic link in it resolved inside the root.
    fn canonical(&self, path: &str) -> io::Result<String>;
    /// Bytes of the input read so far.
    fn bytes_read(&self) -> u64 {
        0
    }
    /// The size of what is scanned: a disk's virtual size, a tarball's length.
    fn size(&self) -> u64 {
        0
    }
}

/// Opens what `path` holds: a root filesystem directory, a root filesystem tarball (plain or
/// gzip-compressed), or a disk image (raw, qcow2, VMDK, or an OVA) with a Linux root
/// filesystem or a Windows OS volume.
pub fn open(path: &Path) -> io::Result<Box<dyn Tree>> {
    if path.is_dir() {
        return Ok(Box::new(DirTree(path.to_path_buf())));
    }
    let file = File::open(path)?;
    let mut head = [0u8; 512];
    let n = file.read_at(&mut head, 0)?;
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return Ok(Box::new(TarTree::gunzip(file)?));
    }
    if n == 512 && &head[257..262] == b"ustar" {
        // An OVA is a tar too: its descriptor sits at the top level.
        let tar = TarTree::open(file, None)?;
        if !tar
            .entries
            .keys()
            .any(|k| k.ends_with(".ovf") && k.rfind('/') == Some(0))
        {
            return Ok(Box::new(tar));
        }
    }
    // A Windows disk: its NTFS OS volume.
    if let Some(windows) = super::windows::volume::open(path)? {
        return Ok(Box::new(windows));
    }
    Ok(Box::new(ImageTree::open(path)?))
}

/// Resolves `path` inside a tree: each symbolic link among its components is followed within
/// the root (an absolute target starts at the root, `..` stops there), the last one only when
/// `follow`. `readlink` says whether a resolved path is a link, and to what.
fn resolve(
    path: &str,
    follow: bool,
    readlink: &dyn Fn(&str) -> io::Result<Option<String>>,
) -> io::Result<String> {
    let mut todo: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut out: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                out.pop();
                continue;
            }
            _ => out.push(c),
        }
        if todo.iter().all(|c| c.is_empty() || c == ".") && !follow {
            break;
        }
        let here = format!("/{}", out.join("/"));
        if let Some(target) = readlink(&here)? {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{path}: more than {MAX_LINKS} symbolic links; a loop"),
                ));
            }
            out.pop();
            if target.starts_with('/') {
                out.clear();
            }
            todo.extend(target.split('/').rev().map(String::from));
        }
    }
    Ok(format!("/{}", out.join("/")))
}

fn too_big(path: &str, len: u64) -> io::Error {
    io::Error::other(format!(
        "{path} is {len} bytes; more than a package database can be"
    ))
}

/// A root filesystem unpacked in a directory.
#[derive(Debug)]
pub struct DirTree(pub PathBuf);

impl DirTree {
    fn host(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    /// The host path of `path`, its symbolic links resolved inside the root.
    fn locate(&self, path: &str, follow: bool) -> io::Result<PathBuf> {
        Ok(self.host(&self.resolve(path, follow)?))
    }

    fn resolve(&self, path: &str, follow: bool) -> io::Result<String> {
        let readlink = |p: &str| -> io::Result<Option<String>> {
            match std::fs::symlink_metadata(self.host(p)) {
                Ok(m) if m.file_type().is_symlink() => {
                    std::fs::read_link(self.host(p)).map(|t| Some(t.to_string_lossy().into_owned()))
                }
                _ => Ok(None),
            }
        };
        resolve(path, follow, &readlink)
    }
}

fn not_found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Tree for DirTree {
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        use std::os::unix::fs::MetadataExt as _;
        let m = not_found(std::fs::symlink_metadata(self.locate(path, false)?))?;
        Ok(m.map(|m| Meta {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            dir: m.is_dir(),
            symlink: m.file_type().is_symlink(),
        }))
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let p = self.locate(path, true)?;
        match not_found(std::fs::metadata(&p))? {
            Some(m) if m.len() > MAX_FILE => Err(too_big(path, m.len())),
            Some(m) if m.is_dir() => Ok(None),
            Some(_) => not_found(std::fs::read(&p)),
            None => Ok(None),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let Some(entries) = not_found(std::fs::read_dir(self.locate(dir, true)?))? else {
            return Ok(Vec::new());
        };
        Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn canonical(&self, path: &str) -> io::Result<String> {
        self.resolve(path, true)
    }
}

#[derive(Debug, Clone)]
enum TarKind {
    File {
        offset: u64,
        size: u64,
    },
    Dir,
    Symlink(String),
    /// A hard link: the member it names holds the bytes.
    Link(String),
    Other,
}

#[derive(Debug, Clone)]
struct TarEntry {
    meta: Meta,
    kind: TarKind,
}

/// A file that counts the bytes read from it.
#[derive(Debug)]
struct Counted<'a> {
    file: &'a File,
    pos: u64,
    read: &'a Cell<u64>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl Seek for Counted<'_> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let len = self.file.metadata()?.len();
        let target = match to {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::End(d) => len.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::other("a seek before the start"))?;
        Ok(self.pos)
    }
}

/// A root filesystem tarball, read in place: one pass over its headers (skipping the data)
/// builds an index, then files are read where they lie.
#[derive(Debug)]
pub struct TarTree {
    file: File,
    len: u64,
    entries: HashMap<String, TarEntry>,
    children: HashMap<String, BTreeSet<String>>,
    read: Cell<u64>,
    /// The unpacked copy of a compressed tarball, removed with the tree.
    _unpacked: Option<tempfile::NamedTempFile>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A member name as an absolute path (`./etc/x`, `etc/x` and `/etc/x` are all `/etc/x`).
fn member_path(name: &Path) -> io::Result<String> {
    let name = name.to_string_lossy();
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!(
                    "member `{}` climbs out of the root with `..`; not a root filesystem tarball",
                    name.escape_debug()
                )));
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parent_of(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

impl TarTree {
    /// Unpacks a gzip-compressed tarball into the temporary directory, then indexes it.
    fn gunzip(file: File) -> io::Result<Self> {
        let mut unpacked = tempfile::NamedTempFile::new()?;
        let mut gz =
            flate2::read::MultiGzDecoder::new(io::BufReader::new(file)).take(MAX_UNPACKED + 1);
        let n = io::copy(&mut gz, unpacked.as_file_mut())
            .map_err(|e| invalid(format!("the gzip stream is corrupt: {e}")))?;
        if n > MAX_UNPACKED {
            return Err(invalid(format!(
                "the tarball unpacks to more than {} GiB; not a root filesystem",
                MAX_UNPACKED >> 30
            )));
        }
        let file = unpacked.reopen()?;
        Self::open(file, Some(unpacked))
    }

    fn open(file: File, unpacked: Option<tempfile::NamedTempFile>) -> io::Result<Self> {
        let read = Cell::new(0);
        let mut entries = HashMap::new();
        let mut children: HashMap<String, BTreeSet<String>> = HashMap::new();
        {
            let mut archive = tar::Archive::new(Counted {
                file: &file,
                pos: 0,
                read: &read,
            });
            let bad = |e: io::Error| invalid(format!("not a readable tar: {e}"));
            for entry in archive.entries_with_seek().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                if entries.len() == MAX_TAR_ENTRIES {
                    return Err(invalid(format!("more than {MAX_TAR_ENTRIES} members")));
                }
                let path = member_path(&entry.path().map_err(bad)?)?;
                let h = entry.header();
                let link = || -> io::Result<String> {
                    Ok(entry
                        .link_name()
                        .map_err(bad)?
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default())
                };
                use tar::EntryType as T;
                let kind = match h.entry_type() {
                    T::Regular | T::Continuous => TarKind::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    T::Directory => TarKind::Dir,
                    T::Symlink => TarKind::Symlink(link()?),
                    T::Link => TarKind::Link(member_path(Path::new(&link()?))?),
                    _ => TarKind::Other,
                };
                let meta = Meta {
                    mode: h.mode().map_err(bad)? & 0o7777,
                    uid: h.uid().map_err(bad)? as u32,
                    gid: h.gid().map_err(bad)? as u32,
                    dir: matches!(kind, TarKind::Dir),
                    symlink: matches!(kind, TarKind::Symlink(_)),
                };
                // Tarballs often leave out the directories above their files: each ancestor
                // is listed in its parent all the same, up to the first one already there.
                let mut p = path.as_str();
                while p != "/" {
                    let (dir, name) = parent_of(p);
                    if !children
                        .entry(dir.to_string())
                        .or_default()
                        .insert(name.to_string())
                    {
                        break;
                    }
                    p = dir;
                }
                entries.insert(path, TarEntry { meta, kind });
            }
        }
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            len,
            entries,
            children,
            read,
            _unpacked: unpacked,
        })
    }

    fn locate(&self, path: &str, follow: bool) -> io::Result<String> {
        let readlink = |p: &str| -> io::Result<Option<String>> {
            Ok(match self.entries.get(p).map(|e| &e.kind) {
                Some(TarKind::Symlink(t)) => Some(t.clone()),
                _ => None,
            })
        };
        resolve(path, follow, &readlink)
    }
}

impl Tree for TarTree {
    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        let p = self.locate(path, false)?;
        Ok(self
            .entries
            .get(&p)
            .map(|e| e.meta)
            // Tarballs often leave out the directories above their files.
            .or_else(|| {
                self.children.contains_key(&p).then_some(Meta {
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    dir: true,
                    symlink: false,
                })
            }))
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let mut p = self.locate(path, true)?;
        // A hard link names the member holding the bytes; it may be another hard link.
        for _ in 0..MAX_LINKS {
            let Some(entry) = self.entries.get(&p) else {
                return Ok(None);
            };
            match &entry.kind {
                TarKind::File { offset, size } => {
                    if *size > MAX_FILE {
                        return Err(too_big(path, *size));
                    }
                    if offset.checked_add(*size).is_none_or(|end| end > self.len) {
                        return Err(invalid(format!(
                            "{path}: its {size} bytes run past the end of the tarball; the file is truncated"
                        )));
                    }
                    let mut buf = vec![0; *size as usize];
                    self.file.read_exact_at(&mut buf, *offset)?;
                    self.read.set(self.read.get() + size);
                    return Ok(Some(buf));
                }
                TarKind::Link(target) => p = target.clone(),
                TarKind::Dir | TarKind::Symlink(_) | TarKind::Other => return Ok(None),
            }
        }
        Err(invalid(format!("{path}: a loop of hard links")))
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let p = self.locate(dir, true)?;
        Ok(self
            .children
            .get(&p)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default())
    }

    fn canonical(&self, path: &str) -> io::Result<String> {
        self.locate(path, true)
    }

    fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    fn size(&self) -> u64 {
        self.len
    }
}

/// The disk, shared by the readers of its volumes (the XFS reader wants `Send` ones).
type SharedDisk = Arc<Mutex<Box<dyn Disk>>>;

fn lock(disk: &SharedDisk) -> std::sync::MutexGuard<'_, Box<dyn Disk>> {
    // A reader that panicked left the disk as it was: reads do not change it.
    disk.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A partition or logical volume as the filesystem readers read it: its stretches of the disk
/// in order.
struct VolumeReader {
    disk: SharedDisk,
    extents: Vec<Extent>,
    len: u64,
}

impl VolumeReader {
    fn partition(disk: &SharedDisk, p: Partition) -> Self {
        Self {
            disk: disk.clone(),
            extents: vec![Extent::linear(0, p.start, p.len)],
            len: p.len,
        }
    }

    fn read_at(&self, mut start: u64, mut dst: &mut [u8]) -> io::Result<()> {
        if start
            .checked_add(dst.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the filesystem reads past its volume ({} bytes)", self.len),
            ));
        }
        while !dst.is_empty() {
            let e = self
                .extents
                .iter()
                .find(|e| e.contains(start))
                .ok_or_else(|| io::Error::other("a volume with a hole"))?;
            let (physical, run) = e.map(start);
            let n = run.min(dst.len() as u64) as usize;
            let (now, rest) = dst.split_at_mut(n);
            lock(&self.disk).read_at(physical, now)?;
            dst = rest;
            start += n as u64;
        }
        Ok(())
    }

    /// Which filesystem it holds, if one this scan reads; a read that fails (a truncated or
    /// corrupt image) is an error, not "none".
    fn probe(&self) -> io::Result<Option<filesystem::Kind>> {
        if self.len < 512 {
            return Ok(None);
        }
        let mut head = vec![0u8; self.len.min(2048) as usize];
        self.read_at(0, &mut head)?;
        Ok(filesystem::probe(&head))
    }
}

impl imagepipe_xfs::ReadAt for VolumeReader {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        VolumeReader::read_at(self, offset, buf)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl ext4_view::Ext4Read for VolumeReader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.read_at(start, dst).map_err(|e| Box::new(e) as _)
    }
}

/// A filesystem of the image, and the logical volume holding it (`vg/lv`), if any.
struct Filesystem {
    fs: Fs,
    volume: Option<String>,
}

impl Filesystem {
    /// Whether an fstab device names this filesystem: `UUID=`, `LABEL=`, or a logical
    /// volume's device path (`/dev/mapper/vg-lv`, `/dev/vg/lv`).
    fn is(&self, spec: &str) -> bool {
        if let Some(uuid) = spec.strip_prefix("UUID=") {
            return self.fs.uuid().eq_ignore_ascii_case(uuid);
        }
        if let Some(label) = spec.strip_prefix("LABEL=") {
            return self.fs.label().is_some_and(|l| l == label);
        }
        let Some((vg, lv)) = self.volume.as_deref().and_then(|v| v.split_once('/')) else {
            return false;
        };
        // device-mapper doubles the dashes inside each name.
        let mapper = format!(
            "/dev/mapper/{}-{}",
            vg.replace('-', "--"),
            lv.replace('-', "--")
        );
        spec == mapper || spec == format!("/dev/{vg}/{lv}")
    }
}

/// The root filesystem of a disk image, with its fstab mounts.
pub struct ImageTree {
    disk: SharedDisk,
    /// Mount point (`/`, `/usr`, …) and filesystem, longest mount point first.
    mounts: Vec<(String, Fs)>,
}

impl std::fmt::Debug for ImageTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTree")
            .field("mounts", &self.mounts)
            .finish()
    }
}

impl ImageTree {
    /// Opens the image at `path` and finds its root filesystem.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::from_disk(disk::open(path)?)
    }

    pub fn from_disk(disk: Box<dyn Disk>) -> io::Result<Self> {
        let disk: SharedDisk = Arc::new(Mutex::new(disk));
        let parts = disk::partitions(&mut **lock(&disk))?;
        let volumes = lvm::volumes(&mut **lock(&disk), &parts)?;
        let readers = parts
            .iter()
            .map(|&p| {
                (
                    format!("the partition at byte {}", p.start),
                    None,
                    VolumeReader::partition(&disk, p),
                )
            })
            .chain(volumes.readable.into_iter().map(|v| {
                (
                    format!("logical volume {}", v.name),
                    Some(v.name),
                    VolumeReader {
                        disk: disk.clone(),
                        extents: v.extents,
                        len: v.len,
                    },
                )
            }));
        let mut filesystems = Vec::new();
        for (what, volume, reader) in readers {
            let Some(kind) = reader.probe()? else {
                continue;
            };
            let fs = Fs::open(kind, reader, &what)?;
            filesystems.push(Filesystem { fs, volume });
        }
        let mut root = None;
        'search: for (i, f) in filesystems.iter().enumerate() {
            for path in ["/etc/os-release", "/usr/lib/os-release"] {
                // A read that fails is the image's fault, and says so.
                if f.fs.metadata(path)?.is_some() {
                    root = Some(i);
                    break 'search;
                }
            }
        }
        let root = root.ok_or_else(|| {
            let mut message = "no ext2/3/4 or XFS filesystem of the image holds etc/os-release: not a Linux root filesystem this scan can read".to_string();
            if !volumes.unreadable.is_empty() {
                message.push_str(&format!(
                    " (LVM volumes not read: {})",
                    volumes.unreadable.join(", ")
                ));
            }
            io::Error::new(io::ErrorKind::NotFound, message)
        })?;
        let root_fs = filesystems.remove(root).fs;
        // /etc/fstab names the other filesystems by UUID, label or volume.
        let fstab = root_fs
            .read("/etc/fstab", MAX_FILE)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut mounts = Vec::new();
        for line in fstab.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [spec, point, ..] = fields.as_slice() else {
                continue;
            };
            if spec.starts_with('#') || *point == "/" || !point.starts_with('/') {
                continue;
            }
            let found = filesystems.iter().position(|f| f.is(spec));
            if let Some(i) = found {
                mounts.push((
                    point.trim_end_matches('/').to_string(),
                    filesystems.remove(i).fs,
                ));
            }
        }
        mounts.push(("/".to_string(), root_fs));
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(Self { disk, mounts })
    }

    /// The filesystem holding `path` (with no links in it), and the path within it.
    fn mount_of(&self, path: &str) -> Option<(&Fs, String)> {
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

    /// Resolves `path` link by link across the mounted filesystems (a filesystem alone would
    /// follow a link only within itself).
    fn resolve(&self, path: &str, follow: bool) -> io::Result<String> {
        let readlink = |p: &str| -> io::Result<Option<String>> {
            let Some((fs, inner)) = self.mount_of(p) else {
                return Ok(None);
            };
            fs.read_link(&inner)
        };
        resolve(path, follow, &readlink)
    }

    fn locate(&self, path: &str, follow: bool) -> io::Result<Option<(&Fs, String)>> {
        Ok(self.mount_of(&self.resolve(path, follow)?))
    }
}

impl Tree for ImageTree {
    fn bytes_read(&self) -> u64 {
        lock(&self.disk).bytes_read()
    }

    fn size(&self) -> u64 {
        lock(&self.disk).len()
    }

    fn metadata(&self, path: &str) -> io::Result<Option<Meta>> {
        let Some((fs, inner)) = self.locate(path, false)? else {
            return Ok(None);
        };
        fs.metadata(&inner)
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let Some((fs, inner)) = self.locate(path, true)? else {
            return Ok(None);
        };
        fs.read(&inner, MAX_FILE)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let resolved = self.resolve(dir, true)?;
        let Some((fs, inner)) = self.mount_of(&resolved) else {
            return Ok(Vec::new());
        };
        fs.names(&inner)
    }

    fn list_meta(&self, dir: &str) -> io::Result<Vec<(String, Meta)>> {
        let Some((fs, inner)) = self.mount_of(dir) else {
            return Ok(Vec::new());
        };
        let mut entries = fs.entries(&inner)?;
        // A mount point shows the mounted filesystem's root, as it would on the running system.
        for (name, m) in &mut entries {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if self.mounts.iter().any(|(point, _)| *point == path)
                && let Some(mounted) = self.metadata(&path)?
            {
                *m = mounted;
            }
        }
        Ok(entries)
    }

    fn canonical(&self, path: &str) -> io::Result<String> {
        self.resolve(path, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        let links = HashMap::from([
            ("/etc/os-release", "../usr/lib/os-release"),
            ("/lib", "usr/lib"),
            ("/var/lib/rpm", "/usr/lib/sysimage/rpm"),
            ("/escape", "../../../../etc"),
            ("/loop/a", "b"),
            ("/loop/b", "a"),
        ]);
        let readlink =
            |p: &str| -> io::Result<Option<String>> { Ok(links.get(p).map(|t| t.to_string())) };
        let r = |p: &str, follow: bool| resolve(p, follow, &readlink).unwrap();
        assert_eq!(r("/etc/os-release", true), "/usr/lib/os-release");
        assert_eq!(r("/etc/os-release", false), "/etc/os-release");
        assert_eq!(
            r("/lib/apk/db/installed", false),
            "/usr/lib/apk/db/installed"
        );
        assert_eq!(
            r("/var/lib/rpm/rpmdb.sqlite", true),
            "/usr/lib/sysimage/rpm/rpmdb.sqlite"
        );
        // `..` stops at the root, as it does in a chroot.
        assert_eq!(r("/escape/shadow", true), "/etc/shadow");
        assert_eq!(r("/../../etc/./passwd", true), "/etc/passwd");
        let err = resolve("/loop/a", true, &readlink).unwrap_err();
        assert!(err.to_string().contains("a loop"), "{err}");
    }

    #[test]
    fn a_tarball_without_directory_members_lists_every_ancestor() {
        let mut tar = tar::Builder::new(tempfile::tempfile().unwrap());
        for (name, mode) in [
            ("./usr/bin/open", 0o777),
            ("usr/bin/closed", 0o755),
            ("etc/os-release", 0o644),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            tar.append_data(&mut h, name, &b"x"[..]).unwrap();
        }
        let tree = TarTree::open(tar.into_inner().unwrap(), None).unwrap();
        assert_eq!(tree.list("/").unwrap(), ["etc", "usr"]);
        assert_eq!(tree.list("/usr").unwrap(), ["bin"]);
        assert_eq!(tree.list("/usr/bin").unwrap(), ["closed", "open"]);
        assert!(tree.metadata("/usr").unwrap().unwrap().dir);
        let modes: Vec<(String, u32)> = tree
            .list_meta("/usr/bin")
            .unwrap()
            .into_iter()
            .map(|(n, m)| (n, m.mode))
            .collect();
        assert_eq!(modes, [("closed".into(), 0o755), ("open".into(), 0o777)]);
    }
}
