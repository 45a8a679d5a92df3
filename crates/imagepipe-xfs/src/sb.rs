//! The superblock: `struct xfs_dsb` of fs/xfs/libxfs/xfs_format.h, at byte 0 of the
//! filesystem (the primary copy, in allocation group 0). Only the fields a reader needs are
//! kept, each checked against the others before anything else is read.

use crate::Error;
use crate::be::{be16, be32, be64};

pub(crate) const XFS_SB_MAGIC: u32 = 0x5846_5342; // "XFSB"

// sb_versionnum bits (xfs_format.h, XFS_SB_VERSION_*).
const VERSION_NUMBITS: u16 = 0x000f;
const VERSION_DIRV2BIT: u16 = 0x2000;
const VERSION_BORGBIT: u16 = 0x4000; // ASCII-only case-insensitive names
const VERSION_MOREBITSBIT: u16 = 0x8000;
// sb_features2 (XFS_SB_VERSION2_*).
const VERSION2_FTYPE: u32 = 0x0000_0200;

// sb_features_incompat (XFS_SB_FEAT_INCOMPAT_*), v5 only.
const INCOMPAT_FTYPE: u32 = 1 << 0;
const INCOMPAT_SPINODES: u32 = 1 << 1;
const INCOMPAT_META_UUID: u32 = 1 << 2;
const INCOMPAT_BIGTIME: u32 = 1 << 3;
const INCOMPAT_NEEDSREPAIR: u32 = 1 << 4;
const INCOMPAT_NREXT64: u32 = 1 << 5;
const INCOMPAT_EXCHRANGE: u32 = 1 << 6;
const INCOMPAT_PARENT: u32 = 1 << 7;
const INCOMPAT_METADIR: u32 = 1 << 8;
const INCOMPAT_ZONED: u32 = 1 << 9;
const INCOMPAT_ZONE_GAPS: u32 = 1 << 10;
/// Incompatible features that change nothing this reader reads on the data device: parent
/// pointers and the metadata directory live in attributes and in a tree apart from the root,
/// the zoned features concern the realtime device, exchange-range is a log item.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT
    | INCOMPAT_METADIR
    | INCOMPAT_ZONED
    | INCOMPAT_ZONE_GAPS;

/// The geometry and features of a filesystem, checked for consistency.
#[derive(Debug, Clone)]
pub(crate) struct Sb {
    pub(crate) v5: bool,
    pub(crate) sectsize: u64,
    pub(crate) blocksize: u64,
    pub(crate) blocklog: u32,
    pub(crate) inodesize: u64,
    pub(crate) inodelog: u32,
    pub(crate) inopblog: u32,
    pub(crate) agblocks: u64,
    pub(crate) agblklog: u32,
    pub(crate) agcount: u64,
    pub(crate) dblocks: u64,
    pub(crate) rootino: u64,
    /// log2 of the directory block size in filesystem blocks.
    pub(crate) dirblklog: u32,
    /// Directory entries carry a file type byte.
    pub(crate) ftype: bool,
    /// ASCII case-insensitive directories (`mkfs.xfs -n version=ci`).
    pub(crate) ci: bool,
    /// Inodes may carry 64-bit data-fork extent counts (`XFS_DIFLAG2_NREXT64`).
    pub(crate) nrext64: bool,
    pub(crate) uuid: [u8; 16],
    pub(crate) label: String,
}

fn bad(why: impl Into<String>) -> Error {
    Error::NotXfs(why.into())
}

fn log2_exact(v: u64) -> Option<u32> {
    v.is_power_of_two().then(|| v.trailing_zeros())
}

impl Sb {
    /// Whether `sector` starts with something that looks like an XFS superblock (magic,
    /// version, block and sector sizes); cheap, for telling filesystems apart.
    pub(crate) fn probe(sector: &[u8]) -> bool {
        if sector.len() < 128 || be32(sector, 0) != XFS_SB_MAGIC {
            return false;
        }
        let version = be16(sector, 100) & VERSION_NUMBITS;
        let blocksize = u64::from(be32(sector, 4));
        let sectsize = u64::from(be16(sector, 102));
        (version == 4 || version == 5)
            && (512..=65536).contains(&blocksize)
            && log2_exact(blocksize) == Some(u32::from(sector[120]))
            && (512..=32768).contains(&sectsize)
            && log2_exact(sectsize) == Some(u32::from(sector[121]))
    }

    /// Parses and checks the superblock in the first 512 bytes of the filesystem.
    pub(crate) fn parse(b: &[u8]) -> Result<Sb, Error> {
        if b.len() < 512 {
            return Err(bad("the device is shorter than one sector"));
        }
        if be32(b, 0) != XFS_SB_MAGIC {
            return Err(bad("no \"XFSB\" magic at byte 0"));
        }
        let versionnum = be16(b, 100);
        let v5 = match versionnum & VERSION_NUMBITS {
            4 => false,
            5 => true,
            v => return Err(bad(format!("superblock version {v} (only 4 and 5 exist)"))),
        };
        let blocksize = u64::from(be32(b, 4));
        let blocklog = u32::from(b[120]);
        if !(512..=65536).contains(&blocksize) || log2_exact(blocksize) != Some(blocklog) {
            return Err(bad(format!(
                "block size {blocksize} (log {blocklog}) is not a power of two from 512 to 65536"
            )));
        }
        let sectsize = u64::from(be16(b, 102));
        if !(512..=32768).contains(&sectsize)
            || log2_exact(sectsize) != Some(u32::from(b[121]))
            || sectsize > blocksize
        {
            return Err(bad(format!(
                "sector size {sectsize} does not fit block size {blocksize}"
            )));
        }
        let inodesize = u64::from(be16(b, 104));
        let inodelog = u32::from(b[122]);
        let min_inode = if v5 { 512 } else { 256 };
        if !(min_inode..=2048).contains(&inodesize)
            || log2_exact(inodesize) != Some(inodelog)
            || inodesize > blocksize
        {
            return Err(bad(format!("inode size {inodesize} is impossible here")));
        }
        let inopblock = u64::from(be16(b, 106));
        let inopblog = u32::from(b[123]);
        if inopblock != blocksize / inodesize || log2_exact(inopblock) != Some(inopblog) {
            return Err(bad(format!(
                "{inopblock} inodes per block disagrees with block size {blocksize} and inode size {inodesize}"
            )));
        }
        let agblocks = u64::from(be32(b, 84));
        let agblklog = u32::from(b[124]);
        let agcount = u64::from(be32(b, 88));
        let dblocks = be64(b, 8);
        // sb_agblklog is log2(sb_agblocks) rounded up; an AG has at least 64 blocks
        // (XFS_MIN_AG_BLOCKS).
        if agblocks < 64
            || agblklog > 31
            || (1u64 << agblklog) < agblocks
            || (agblklog > 0 && (1u64 << (agblklog - 1)) >= agblocks)
        {
            return Err(bad(format!(
                "allocation group size {agblocks} blocks (log {agblklog}) is impossible"
            )));
        }
        if agblklog + inopblog > 32 {
            return Err(bad(
                "inode numbers within an allocation group exceed 32 bits",
            ));
        }
        if agcount == 0
            || dblocks == 0
            || dblocks > agcount.saturating_mul(agblocks)
            || dblocks <= (agcount - 1).saturating_mul(agblocks)
        {
            return Err(bad(format!(
                "{dblocks} data blocks do not fill {agcount} allocation groups of {agblocks} blocks"
            )));
        }
        if dblocks.checked_mul(blocksize).is_none() {
            return Err(bad(format!(
                "{dblocks} blocks of {blocksize} bytes overflow"
            )));
        }
        let dirblklog = u32::from(b[192]);
        if blocklog + dirblklog > 16 {
            return Err(bad(format!(
                "directory blocks of 2^{dirblklog} filesystem blocks exceed 64 KiB"
            )));
        }
        if b[126] != 0 {
            return Err(bad(
                "mkfs did not finish making this filesystem (sb_inprogress)",
            ));
        }
        let features2 = if versionnum & VERSION_MOREBITSBIT != 0 || v5 {
            be32(b, 200)
        } else {
            0
        };
        let incompat = if v5 { be32(b, 216) } else { 0 };
        if !v5 && versionnum & VERSION_DIRV2BIT == 0 {
            return Err(Error::unsupported(
                None,
                "version 1 directories (a v4 superblock without DIRV2)",
            ));
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::unsupported(
                None,
                format!(
                    "incompatible features 0x{:x} this reader does not know",
                    incompat & !INCOMPAT_KNOWN
                ),
            ));
        }
        let ftype = if v5 {
            incompat & INCOMPAT_FTYPE != 0
        } else {
            features2 & VERSION2_FTYPE != 0
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[32..48]);
        let fname = &b[108..120];
        let end = fname.iter().position(|&c| c == 0).unwrap_or(fname.len());
        let sb = Sb {
            v5,
            sectsize,
            blocksize,
            blocklog,
            inodesize,
            inodelog,
            inopblog,
            agblocks,
            agblklog,
            agcount,
            dblocks,
            rootino: be64(b, 56),
            dirblklog,
            ftype,
            ci: versionnum & VERSION_BORGBIT != 0,
            nrext64: incompat & INCOMPAT_NREXT64 != 0,
            uuid,
            label: String::from_utf8_lossy(&fname[..end]).into_owned(),
        };
        if sb.inode_block(sb.rootino).is_none() {
            return Err(bad(format!(
                "root inode {} lies outside the filesystem",
                sb.rootino
            )));
        }
        Ok(sb)
    }

    /// The filesystem block holding inode `ino` (a linear block number) and the inode's byte
    /// offset in it, or `None` when the number points outside the filesystem
    /// (XFS_INO_TO_AGNO / XFS_INO_TO_AGBNO / XFS_INO_TO_OFFSET).
    pub(crate) fn inode_block(&self, ino: u64) -> Option<(u64, u64)> {
        let agino_bits = self.agblklog + self.inopblog;
        let agno = ino >> agino_bits;
        let agino = ino & ((1u64 << agino_bits) - 1);
        let agbno = agino >> self.inopblog;
        let index = agino & ((1u64 << self.inopblog) - 1);
        if ino == 0 || agno >= self.agcount || agbno >= self.agblocks {
            return None;
        }
        let block = agno * self.agblocks + agbno;
        (block < self.dblocks).then_some((block, index << self.inodelog))
    }

    /// The linear block number of filesystem block `fsbno` and the run of `len` blocks from it,
    /// or `None` when the run leaves its allocation group or the filesystem (XFS_FSB_TO_AGNO,
    /// XFS_FSB_TO_AGBNO; a run never crosses an allocation group).
    pub(crate) fn fsb_to_block(&self, fsbno: u64, len: u64) -> Option<u64> {
        let agno = fsbno >> self.agblklog;
        let agbno = fsbno & ((1u64 << self.agblklog) - 1);
        if agno >= self.agcount || len == 0 || agbno.checked_add(len)? > self.agblocks {
            return None;
        }
        let block = agno * self.agblocks + agbno;
        (block + len <= self.dblocks).then_some(block)
    }

    pub(crate) fn dirblksize(&self) -> u64 {
        self.blocksize << self.dirblklog
    }
}
