//! On-disk inodes: `struct xfs_dinode` of fs/xfs/libxfs/xfs_format.h. The core is 100 bytes
//! for inode versions 1 and 2 (v4 filesystems) and 176 bytes for version 3 (v5); the data
//! fork follows the core, up to the attribute fork (`di_forkoff`, in 8-byte units) or the end
//! of the inode (XFS_DFORK_DSIZE).

use crate::Error;
use crate::be::{be16, be32, be64};
use crate::sb::Sb;

pub(crate) const XFS_DINODE_MAGIC: u16 = 0x494e; // "IN"

// di_format (enum xfs_dinode_fmt).
pub(crate) const FMT_LOCAL: u8 = 1;
pub(crate) const FMT_EXTENTS: u8 = 2;
pub(crate) const FMT_BTREE: u8 = 3;

const DIFLAG_REALTIME: u16 = 1 << 0; // XFS_DIFLAG_REALTIME
const DIFLAG2_NREXT64: u64 = 1 << 4; // XFS_DIFLAG2_NREXT64

pub(crate) const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;

/// The parts of an inode the reader uses.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) ino: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) format: u8,
    /// Data-fork extent count (di_nextents, or di_big_nextents with NREXT64).
    pub(crate) nextents: u64,
    pub(crate) realtime: bool,
    /// The data fork's bytes (its literal area).
    pub(crate) fork: Vec<u8>,
}

impl Inode {
    /// Parses inode `ino` from its `sb.inodesize` bytes.
    pub(crate) fn parse(sb: &Sb, ino: u64, raw: &[u8]) -> Result<Inode, Error> {
        let corrupt = |what: String| Error::corrupt(ino, what);
        if raw.len() as u64 != sb.inodesize {
            return Err(corrupt("short inode".into()));
        }
        if be16(raw, 0) != XFS_DINODE_MAGIC {
            return Err(corrupt("no \"IN\" magic: not an inode".into()));
        }
        let version = raw[4];
        let core = match (version, sb.v5) {
            (3, true) => 176,
            (1 | 2, false) => 100,
            _ => {
                return Err(corrupt(format!(
                    "inode version {version} on a v{} filesystem",
                    if sb.v5 { 5 } else { 4 }
                )));
            }
        };
        if version == 3 {
            // di_ino: a v3 inode names itself, which catches a directory entry or a block
            // pointer that lands on the wrong inode.
            let own = be64(raw, 152);
            if own != ino {
                return Err(corrupt(format!(
                    "the inode at this place says it is inode {own}"
                )));
            }
        }
        let mode = u32::from(be16(raw, 2));
        if mode & S_IFMT == 0 {
            return Err(corrupt("inode is not in use (no file type)".into()));
        }
        let format = raw[5];
        let flags2 = if version == 3 { be64(raw, 120) } else { 0 };
        let nextents = if sb.nrext64 && flags2 & DIFLAG2_NREXT64 != 0 {
            be64(raw, 24) // di_big_nextents
        } else {
            u64::from(be32(raw, 76)) // di_nextents
        };
        let literal = raw.len() - core;
        let forkoff = usize::from(raw[82]) * 8;
        let dsize = if forkoff == 0 {
            literal
        } else if forkoff < literal {
            forkoff
        } else {
            return Err(corrupt(format!(
                "attribute fork offset {forkoff} beyond the {literal}-byte literal area"
            )));
        };
        Ok(Inode {
            ino,
            mode,
            uid: be32(raw, 8),
            gid: be32(raw, 12),
            size: be64(raw, 56),
            format,
            nextents,
            realtime: be16(raw, 90) & DIFLAG_REALTIME != 0,
            fork: raw[core..core + dsize].to_vec(),
        })
    }

    pub(crate) fn kind(&self) -> u32 {
        self.mode & S_IFMT
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind() == S_IFDIR
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.kind() == S_IFLNK
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind() == S_IFREG
    }

    pub(crate) fn kind_name(&self) -> &'static str {
        match self.kind() {
            S_IFDIR => "directory",
            S_IFREG => "regular file",
            S_IFLNK => "symbolic link",
            0o020000 => "character device",
            0o060000 => "block device",
            0o010000 => "FIFO",
            0o140000 => "socket",
            _ => "file of unknown type",
        }
    }
}
