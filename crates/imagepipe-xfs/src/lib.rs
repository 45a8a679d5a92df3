//! A read-only reader of XFS filesystems, for scanning disk images that may be corrupt or
//! hostile.
//!
//! It reads in place through [`ReadAt`]: random access, metadata blocks in a bounded cache,
//! file data straight into the caller's buffer, never a whole-device or whole-file read it
//! was not asked for. Every offset, length, count and block number taken from the image is
//! checked before use, B+tree walks must descend at every step (so loops are refused), and
//! directory listings are capped, so a bad image gets an [`Error`] that names the inode and
//! path, never a panic, a hang or an unbounded allocation.
//!
//! Supported: v4 and v5 (CRC) superblocks; 512-byte to 64 KiB blocks, any sector size;
//! directories in short form, block, leaf, node and B+tree form, with or without the `ftype`
//! field, ASCII case-insensitive ones too; file data mapped by extent lists and by B+trees,
//! holes and unwritten extents reading as zeros; 64-bit extent counts (`nrext64`); inline and
//! remote symbolic links. The on-disk formats are those of the Linux kernel's
//! fs/xfs/libxfs/xfs_format.h and xfs_da_format.h; each module cites the structures it reads.
//!
//! On v5 filesystems the CRC32C of each metadata structure read is verified too.
//!
//! Not done: replaying the log (a filesystem that was not cleanly unmounted is read as its
//! blocks stand, which can miss the last changes), realtime-device file data, extended
//! attributes.
//!
//! Names: XFS names are bytes. [`Xfs::read_dir`] turns a name that is not UTF-8 into a
//! `String` lossily (U+FFFD for each bad sequence), so such an entry is listed but cannot be
//! looked up by the listed name; path lookups compare the exact bytes of the UTF-8 path.
//! [`Xfs::read_link`] returns an error for a link target that is not UTF-8 (asked for that
//! entry only).

mod be;
mod bmap;
mod cache;
mod crc;
mod dir;
mod error;
mod inode;
mod sb;

use std::collections::HashMap;
use std::sync::Arc;

pub use dir::{MAX_DIR_BYTES, MAX_DIR_ENTRIES};
pub use error::Error;

use be::{be16, be32, be64};
use cache::{Block, BlockCache};
use inode::{FMT_EXTENTS, FMT_LOCAL, Inode};
use sb::Sb;

/// Random access to the bytes of the filesystem (a partition, a logical volume, an image).
pub trait ReadAt {
    /// Fills all of `buf` from byte `offset`; a short read is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// The length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file (an image, a block device) as a [`ReadAt`].
#[derive(Debug)]
pub struct FileDevice {
    file: std::fs::File,
    len: u64,
}

impl FileDevice {
    pub fn open(path: impl AsRef<std::path::Path>) -> std::io::Result<FileDevice> {
        use std::io::Seek;
        let mut file = std::fs::File::open(path)?;
        // Seeking to the end also measures block devices, whose metadata length is 0.
        let len = file.seek(std::io::SeekFrom::End(0))?;
        Ok(FileDevice { file, len })
    }
}

impl ReadAt for FileDevice {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// What a caller checks of a file: `lstat`'s answer, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dir: bool,
    pub symlink: bool,
    /// Size in bytes (`di_size`).
    pub size: u64,
    /// The XFS inode number.
    pub inode: u64,
}

/// Bytes of metadata blocks kept (inode clusters, B+tree and directory blocks).
const BLOCK_CACHE_BYTES: usize = 4 << 20;
/// Bytes of (directory, name) → inode answers kept.
const LOOKUP_CACHE_BYTES: usize = 1 << 20;
/// XFS_SYMLINK_MAXLEN.
const SYMLINK_MAXLEN: u64 = 1024;
/// `struct xfs_dsymlink_hdr`, at the start of each extent of a v5 remote symlink.
const SYMLINK_HDR: u64 = 56;
const SYMLINK_MAGIC: u32 = 0x5853_4c4d; // "XSLM"

/// An XFS filesystem, opened read-only.
pub struct Xfs {
    dev: Box<dyn ReadAt + Send>,
    dev_len: u64,
    sb: Sb,
    cache: BlockCache,
    lookups: HashMap<(u64, Box<[u8]>), u64>,
    lookup_bytes: usize,
    verify_crc: bool,
}

impl std::fmt::Debug for Xfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xfs")
            .field("v5", &self.sb.v5)
            .field("blocksize", &self.sb.blocksize)
            .field("label", &self.sb.label)
            .finish_non_exhaustive()
    }
}

/// Splits an absolute path into its components, `.` dropped and `..` applied lexically
/// (links are the caller's to resolve, so lexical is what a link-free path means).
fn components(path: &str) -> Result<Vec<&str>, Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidPath {
            path: path.to_string(),
        });
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Xfs {
    /// Opens the filesystem on `dev`: reads the superblock and checks its magic ("XFSB"),
    /// version, features and geometry, and that the root directory is a directory.
    pub fn open(dev: Box<dyn ReadAt + Send>) -> Result<Xfs, Error> {
        Self::open_with(dev, true)
    }

    /// [`Xfs::open`], choosing whether the CRCs of v5 metadata (superblock, inodes, B+tree,
    /// directory and symbolic link blocks) are verified. They are by default; turning that off
    /// leaves the structural checks alone between the image and the reader (tests use this to
    /// reach them with damaged v5 images).
    pub fn open_with(dev: Box<dyn ReadAt + Send>, verify_checksums: bool) -> Result<Xfs, Error> {
        let dev_len = dev.len();
        let mut x = Xfs {
            dev,
            dev_len,
            // Placeholder geometry until the superblock is read.
            sb: Sb {
                v5: false,
                sectsize: 512,
                blocksize: 512,
                blocklog: 9,
                inodesize: 256,
                inodelog: 8,
                inopblog: 1,
                agblocks: 0,
                agblklog: 0,
                agcount: 0,
                dblocks: 0,
                rootino: 0,
                dirblklog: 0,
                ftype: false,
                ci: false,
                nrext64: false,
                uuid: [0; 16],
                label: String::new(),
            },
            cache: BlockCache::new(BLOCK_CACHE_BYTES),
            lookups: HashMap::new(),
            lookup_bytes: 0,
            verify_crc: verify_checksums,
        };
        if dev_len < 512 {
            return Err(Error::NotXfs(format!(
                "the device is {dev_len} bytes, shorter than a superblock"
            )));
        }
        let mut first = [0u8; 512];
        x.read_dev(0, &mut first, None)?;
        x.sb = Sb::parse(&first)?;
        if x.sb.v5 && x.verify_crc {
            // sb_crc covers the whole sector.
            let mut sector = vec![0u8; x.sb.sectsize as usize];
            x.read_dev(0, &mut sector, None)?;
            if !crc::verify(&sector, 224) {
                return Err(Error::NotXfs(
                    "the superblock's checksum does not match".into(),
                ));
            }
        }
        let root = x.inode(x.sb.rootino)?;
        if !root.is_dir() {
            return Err(Error::corrupt(
                root.ino,
                "the root inode is not a directory",
            ));
        }
        Ok(x)
    }

    /// Whether `first_sector` (at least the first 512 bytes of a volume) holds an XFS
    /// superblock.
    pub fn probe(first_sector: &[u8]) -> bool {
        Sb::probe(first_sector)
    }

    /// The filesystem UUID (`sb_uuid`, what `blkid` shows and `UUID=` in fstab names).
    pub fn uuid(&self) -> [u8; 16] {
        self.sb.uuid
    }

    /// The label (`sb_fname`), empty when there is none.
    pub fn label(&self) -> String {
        self.sb.label.clone()
    }

    /// The filesystem block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.sb.blocksize
    }

    /// Whether this is a v5 (CRC) filesystem.
    pub fn is_v5(&self) -> bool {
        self.sb.v5
    }

    /// Bytes the caches hold now (bounded, under 8 MiB with their bookkeeping).
    pub fn cached_bytes(&self) -> usize {
        self.cache.bytes() + self.lookup_bytes
    }

    /// Reads `buf.len()` bytes at `offset` of the device, refusing what lies past its end.
    fn read_dev(&mut self, offset: u64, buf: &mut [u8], ino: Option<u64>) -> Result<(), Error> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.dev_len) {
            return Err(Error::PastDevice {
                path: String::new(),
                ino,
                offset,
                len,
                device: self.dev_len,
            });
        }
        self.dev.read_at(offset, buf).map_err(|source| Error::Io {
            offset,
            len,
            source,
        })
    }

    /// A metadata block of `len` bytes at `offset`, through the cache.
    fn read_meta(&mut self, offset: u64, len: u64, ino: Option<u64>) -> Result<Block, Error> {
        if let Some(b) = self.cache.get(offset, len) {
            return Ok(b);
        }
        let mut buf = vec![0u8; len as usize];
        self.read_dev(offset, &mut buf, ino)?;
        let b = Arc::new(buf);
        self.cache.insert(offset, b.clone());
        Ok(b)
    }

    /// Reads and checks inode `ino`.
    fn inode(&mut self, ino: u64) -> Result<Inode, Error> {
        let Some((block, at)) = self.sb.inode_block(ino) else {
            return Err(Error::corrupt(
                ino,
                "inode number points outside the filesystem",
            ));
        };
        let b = self.read_meta(block << self.sb.blocklog, self.sb.blocksize, Some(ino))?;
        let raw = &b[at as usize..(at + self.sb.inodesize) as usize];
        if be16(raw, 0) == inode::XFS_DINODE_MAGIC {
            self.check_crc(raw, 100, ino, || "inode".into())?;
        }
        Inode::parse(&self.sb, ino, raw)
    }

    /// On v5, checks the CRC32C at byte `at` of a metadata buffer of inode `ino`.
    fn check_crc(
        &self,
        buf: &[u8],
        at: usize,
        ino: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if self.sb.v5 && self.verify_crc && !crc::verify(buf, at) {
            return Err(Error::corrupt(
                ino,
                format!("checksum mismatch in {}", what()),
            ));
        }
        Ok(())
    }

    fn meta(ip: &Inode) -> Meta {
        Meta {
            mode: ip.mode & 0o7777,
            uid: ip.uid,
            gid: ip.gid,
            dir: ip.is_dir(),
            symlink: ip.is_symlink(),
            size: ip.size,
            inode: ip.ino,
        }
    }

    /// `name` in directory `dp`, through the lookup cache.
    fn lookup(&mut self, dp: &Inode, name: &str) -> Result<Option<u64>, Error> {
        let key = (dp.ino, Box::<[u8]>::from(name.as_bytes()));
        if let Some(&ino) = self.lookups.get(&key) {
            return Ok(Some(ino));
        }
        let found = self.dir_lookup(dp, name.as_bytes())?;
        if let Some(ino) = found {
            let cost = name.len() + 64;
            if self.lookup_bytes + cost > LOOKUP_CACHE_BYTES {
                self.lookups.clear();
                self.lookups.shrink_to(1024);
                self.lookup_bytes = 0;
            }
            self.lookups.insert(key, ino);
            self.lookup_bytes += cost;
        }
        Ok(found)
    }

    /// The inode at `path`, a final symbolic link not followed; `None` when nothing is there.
    fn resolve(&mut self, path: &str) -> Result<Option<Inode>, Error> {
        let parts = components(path)?;
        let mut ip = self.inode(self.sb.rootino)?;
        let mut here = String::new();
        for name in parts {
            if !ip.is_dir() {
                return Err(Error::NotADirectory {
                    path: if here.is_empty() { "/".into() } else { here },
                    ino: ip.ino,
                    symlink: ip.is_symlink(),
                });
            }
            here.push('/');
            here.push_str(name);
            let Some(ino) = self.lookup(&ip, name).map_err(|e| e.at(&here))? else {
                return Ok(None);
            };
            ip = self.inode(ino).map_err(|e| e.at(&here))?;
        }
        Ok(Some(ip))
    }

    /// `lstat`: the metadata of what `path` names (a final symbolic link is not followed, nor
    /// is one in the middle: that is a [`Error::NotADirectory`]); `None` when there is nothing.
    pub fn metadata(&mut self, path: &str) -> Result<Option<Meta>, Error> {
        let ip = self.resolve(path).map_err(|e| e.at(path))?;
        Ok(ip.as_ref().map(Self::meta))
    }

    /// The target of the symbolic link at `path`; `None` when there is nothing there or it is
    /// not a symbolic link.
    pub fn read_link(&mut self, path: &str) -> Result<Option<String>, Error> {
        let Some(ip) = self.resolve(path).map_err(|e| e.at(path))? else {
            return Ok(None);
        };
        if !ip.is_symlink() {
            return Ok(None);
        }
        let target = self.link_target(&ip).map_err(|e| e.at(path))?;
        String::from_utf8(target)
            .map(Some)
            .map_err(|_| Error::NotUtf8 {
                path: path.to_string(),
                ino: ip.ino,
            })
    }

    /// A symbolic link's target: inline in the inode (XFS_DINODE_FMT_LOCAL), or in blocks
    /// (extents), each extent headed by an `xfs_dsymlink_hdr` on v5 (xfs_symlink_remote.c).
    fn link_target(&mut self, ip: &Inode) -> Result<Vec<u8>, Error> {
        let size = ip.size;
        if size == 0 || size > SYMLINK_MAXLEN {
            return Err(Error::corrupt(
                ip.ino,
                format!("symbolic link of {size} bytes"),
            ));
        }
        if ip.format == FMT_LOCAL {
            return match ip.fork.get(..size as usize) {
                Some(t) => Ok(t.to_vec()),
                None => Err(Error::corrupt(
                    ip.ino,
                    format!("inline symbolic link of {size} bytes overflows the inode"),
                )),
            };
        }
        if ip.format != FMT_EXTENTS {
            return Err(Error::corrupt(
                ip.ino,
                format!("symbolic link with data fork format {}", ip.format),
            ));
        }
        let m = self.mapper(ip)?;
        let mut out = Vec::with_capacity(size as usize);
        let mut lblk = 0;
        while (out.len() as u64) < size {
            let run = self.map(ip, &m, lblk)?;
            let Some(block) = run.block else {
                return Err(Error::corrupt(ip.ino, "remote symbolic link with a hole"));
            };
            // Read at most the blocks the rest of the target can need.
            let blocks = run.len.min(size.div_ceil(self.sb.blocksize).max(1) + 1);
            let bytes = blocks * self.sb.blocksize;
            let b = self.read_meta(block << self.sb.blocklog, bytes, Some(ip.ino))?;
            let mut payload = &b[..];
            let want = size - out.len() as u64;
            if self.sb.v5 {
                let (magic, offset, count, owner) =
                    (be32(&b, 0), be32(&b, 4), be32(&b, 8), be64(&b, 32));
                let room = bytes - SYMLINK_HDR;
                if magic != SYMLINK_MAGIC
                    || u64::from(offset) != out.len() as u64
                    || u64::from(count) != want.min(room)
                    || owner != ip.ino
                {
                    return Err(Error::corrupt(
                        ip.ino,
                        format!("remote symbolic link block {block} has a bad header"),
                    ));
                }
                self.check_crc(&b, 12, ip.ino, || {
                    format!("remote symbolic link block {block}")
                })?;
                payload = &b[SYMLINK_HDR as usize..];
            }
            let take = (payload.len() as u64).min(want) as usize;
            out.extend_from_slice(&payload[..take]);
            lblk = run.lblk + blocks;
        }
        Ok(out)
    }

    /// The entries of the directory at `path` with their metadata (`.` and `..` left out);
    /// `None` when there is nothing at `path`, [`Error::NotADirectory`] when it is not a
    /// directory. Names that are not UTF-8 are converted lossily.
    pub fn read_dir(&mut self, path: &str) -> Result<Option<Vec<(String, Meta)>>, Error> {
        let Some(dp) = self.resolve(path).map_err(|e| e.at(path))? else {
            return Ok(None);
        };
        if !dp.is_dir() {
            return Err(Error::NotADirectory {
                path: path.to_string(),
                ino: dp.ino,
                symlink: dp.is_symlink(),
            });
        }
        let mut entries: Vec<(String, u64)> = Vec::new();
        self.dir_entries(&dp, &mut |name, ino| {
            if name != b"." && name != b".." {
                if entries.len() >= MAX_DIR_ENTRIES {
                    return Err(Error::limit(
                        dp.ino,
                        format!("directory has more than {MAX_DIR_ENTRIES} entries"),
                    ));
                }
                entries.push((String::from_utf8_lossy(name).into_owned(), ino));
            }
            Ok(false)
        })
        .map_err(|e| e.at(path))?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, ino) in entries {
            let ip = self.inode(ino).map_err(|e| {
                let p = format!("{}/{name}", path.trim_end_matches('/'));
                e.at(&p)
            })?;
            out.push((name, Self::meta(&ip)));
        }
        Ok(Some(out))
    }

    /// The regular file at `path`, whole; `None` when there is nothing there,
    /// [`Error::TooLarge`] when it is larger than `max` bytes.
    pub fn read_file(&mut self, path: &str, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(ip) = self.resolve(path).map_err(|e| e.at(path))? else {
            return Ok(None);
        };
        self.check_file(&ip, path)?;
        if ip.size > max || ip.size > isize::MAX as u64 {
            return Err(Error::TooLarge {
                path: path.to_string(),
                ino: ip.ino,
                size: ip.size,
                max,
            });
        }
        let mut buf = vec![0u8; ip.size as usize];
        let n = self.read_data(&ip, 0, &mut buf).map_err(|e| e.at(path))?;
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Reads from byte `offset` of the regular file at `path` into `buf`; returns the bytes
    /// read, fewer than `buf.len()` only at the end of the file. Holes read as zeros.
    pub fn read_range(&mut self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(ip) = self.resolve(path).map_err(|e| e.at(path))? else {
            return Err(Error::NotFound {
                path: path.to_string(),
            });
        };
        self.check_file(&ip, path)?;
        self.read_data(&ip, offset, buf).map_err(|e| e.at(path))
    }

    fn check_file(&self, ip: &Inode, path: &str) -> Result<(), Error> {
        if !ip.is_file() {
            return Err(Error::NotAFile {
                path: path.to_string(),
                ino: ip.ino,
                kind: ip.kind_name(),
            });
        }
        if ip.realtime {
            return Err(Error::Unsupported {
                path: path.to_string(),
                ino: Some(ip.ino),
                what: "file data on the realtime device".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(components("/a/../../b").unwrap(), vec!["b"]);
        assert!(components("a/b").is_err());
    }

    #[test]
    fn xfs_is_send() {
        fn send<T: Send>() {}
        send::<Xfs>();
    }
}
