//! File block mapping: the data fork as an extent list (XFS_DINODE_FMT_EXTENTS, an array of
//! `xfs_bmbt_rec` in the inode) or as a B+tree (XFS_DINODE_FMT_BTREE: an `xfs_bmdr_block`
//! root in the inode, `xfs_btree_block` long-form blocks below it with magic "BMAP" on v4 and
//! "BMA3" on v5), per fs/xfs/libxfs/xfs_format.h and xfs_bmap_btree.h.
//!
//! A lookup descends the tree from the root to the one leaf holding the wanted file block,
//! so random access reads O(depth) blocks and no extent list is ever loaded whole. The tree's
//! levels must fall by one at each step, so a pointer back up the tree (a loop) is refused at
//! the first step that does not descend.

use crate::Error;
use crate::Xfs;
use crate::be::{be16, be32, be64};
use crate::inode::{FMT_BTREE, FMT_EXTENTS, Inode};

/// The largest file offset in blocks, plus one (XFS_MAX_FILEOFF + 1; `br_startoff` has 54 bits).
pub(crate) const FILEOFF_END: u64 = 1 << 54;

const BMAP_MAGIC: u32 = 0x424d_4150; // "BMAP"
const BMAP_CRC_MAGIC: u32 = 0x424d_4133; // "BMA3"
/// Size of the long-form btree block header (`struct xfs_btree_block` with `bb_l`):
/// magic, level, numrecs, leftsib, rightsib; v5 adds blkno, lsn, uuid, owner, crc, pad.
const LBLOCK_LEN_V4: usize = 24;
const LBLOCK_LEN_V5: usize = 72;
/// Deeper than any real bmap B+tree (XFS_BM_MAXLEVELS is at most 9 with 64-bit counts).
const MAX_LEVELS: u16 = 16;

/// One extent record, its physical start turned into a linear block number and checked
/// against the geometry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extent {
    pub(crate) off: u64,
    pub(crate) block: u64,
    pub(crate) len: u64,
    pub(crate) unwritten: bool,
}

/// Decodes an `xfs_bmbt_rec` (two big-endian 64-bit words: 1-bit unwritten flag, 54-bit
/// startoff, 52-bit startblock, 21-bit blockcount; BMBT_*_BITLEN in xfs_format.h).
fn decode(x: &Xfs, rec: &[u8], ino: u64) -> Result<Extent, Error> {
    let l0 = be64(rec, 0);
    let l1 = be64(rec, 8);
    let off = (l0 >> 9) & ((1u64 << 54) - 1);
    let fsbno = ((l0 & 0x1ff) << 43) | (l1 >> 21);
    let len = l1 & ((1u64 << 21) - 1);
    if len == 0 || off + len > FILEOFF_END {
        return Err(Error::corrupt(
            ino,
            format!("extent at file block {off} of {len} blocks is impossible"),
        ));
    }
    let Some(block) = x.sb.fsb_to_block(fsbno, len) else {
        return Err(Error::corrupt(
            ino,
            format!(
                "extent at file block {off} points at {len} blocks from filesystem block {fsbno}, outside the filesystem"
            ),
        ));
    };
    Ok(Extent {
        off,
        block,
        len,
        unwritten: l0 >> 63 != 0,
    })
}

/// A stretch of file blocks from `lblk`: either `len` blocks on disk from linear block
/// `block`, or a hole (also an unwritten extent) that reads as zeros.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) lblk: u64,
    pub(crate) len: u64,
    pub(crate) block: Option<u64>,
}

/// How a data fork is mapped: its extent list, decoded and checked once per operation, or
/// its B+tree, walked for each lookup.
pub(crate) enum Map {
    List(Vec<Extent>),
    Tree,
}

fn run_in(e: &Extent, lblk: u64) -> Run {
    Run {
        lblk,
        len: e.off + e.len - lblk,
        block: (!e.unwritten).then(|| e.block + (lblk - e.off)),
    }
}

fn hole(ino: u64, lblk: u64, end: u64) -> Result<Run, Error> {
    if end <= lblk {
        return Err(Error::corrupt(
            ino,
            format!("block map out of order around file block {lblk}"),
        ));
    }
    Ok(Run {
        lblk,
        len: end - lblk,
        block: None,
    })
}

/// The last index `i < n` with `key(i) <= v`, by binary search (terminates whatever the keys).
fn last_le(n: usize, v: u64, key: impl Fn(usize) -> u64) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid) <= v {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

impl Xfs {
    /// Prepares to map the data fork of `ip` (extents or B+tree format).
    pub(crate) fn mapper(&mut self, ip: &Inode) -> Result<Map, Error> {
        match ip.format {
            FMT_EXTENTS => {
                let n = ip.fork.len() / 16;
                if ip.nextents > n as u64 {
                    return Err(Error::corrupt(
                        ip.ino,
                        format!(
                            "{} extents do not fit the {}-byte data fork",
                            ip.nextents,
                            ip.fork.len()
                        ),
                    ));
                }
                let mut list = Vec::with_capacity(ip.nextents as usize);
                let mut end = 0u64;
                for i in 0..ip.nextents as usize {
                    let e = decode(self, &ip.fork[i * 16..i * 16 + 16], ip.ino)?;
                    if e.off < end {
                        return Err(Error::corrupt(
                            ip.ino,
                            format!("extent {i} at file block {} overlaps the one before", e.off),
                        ));
                    }
                    end = e.off + e.len;
                    list.push(e);
                }
                Ok(Map::List(list))
            }
            FMT_BTREE => Ok(Map::Tree),
            f => Err(Error::corrupt(
                ip.ino,
                format!("data fork format {f} where extents or a B+tree belong"),
            )),
        }
    }

    /// Maps file block `lblk` of `ip`.
    pub(crate) fn map(&mut self, ip: &Inode, m: &Map, lblk: u64) -> Result<Run, Error> {
        if lblk >= FILEOFF_END {
            return Ok(Run {
                lblk,
                len: u64::MAX - lblk,
                block: None,
            });
        }
        match m {
            Map::List(list) => match last_le(list.len(), lblk, |i| list[i].off) {
                Some(i) if lblk < list[i].off + list[i].len => Ok(run_in(&list[i], lblk)),
                Some(i) => hole(ip.ino, lblk, list.get(i + 1).map_or(FILEOFF_END, |e| e.off)),
                None => hole(ip.ino, lblk, list.first().map_or(FILEOFF_END, |e| e.off)),
            },
            Map::Tree => self.map_tree(ip, lblk),
        }
    }

    /// Descends the bmap B+tree of `ip` to the leaf covering `lblk`. `limit` is the first
    /// file block past the subtree being searched (the next key at some level above).
    fn map_tree(&mut self, ip: &Inode, lblk: u64) -> Result<Run, Error> {
        let ino = ip.ino;
        let f = &ip.fork;
        // struct xfs_bmdr_block: bb_level, bb_numrecs; then keys and pointers sized for the
        // records that fit the fork (xfs_bmdr_maxrecs).
        if f.len() < 4 + 16 {
            return Err(Error::corrupt(
                ino,
                "B+tree root does not fit the data fork",
            ));
        }
        let mut level = be16(f, 0);
        let n = usize::from(be16(f, 2));
        let maxrecs = (f.len() - 4) / 16;
        if level == 0 || level > MAX_LEVELS || n == 0 || n > maxrecs {
            return Err(Error::corrupt(
                ino,
                format!("B+tree root of level {level} with {n} records (at most {maxrecs} fit)"),
            ));
        }
        let mut limit = FILEOFF_END;
        let key = |i: usize| be64(f, 4 + i * 8);
        let Some(i) = last_le(n, lblk, key) else {
            return hole(ino, lblk, key(0).min(limit));
        };
        if i + 1 < n {
            limit = limit.min(key(i + 1));
        }
        let mut ptr = be64(f, 4 + maxrecs * 8 + i * 8);
        let hdr = if self.sb.v5 {
            LBLOCK_LEN_V5
        } else {
            LBLOCK_LEN_V4
        };
        let bs = self.sb.blocksize as usize;
        let maxrecs = (bs - hdr) / 16;
        loop {
            level -= 1;
            let Some(block) = self.sb.fsb_to_block(ptr, 1) else {
                return Err(Error::corrupt(
                    ino,
                    format!("B+tree pointer to filesystem block {ptr}, outside the filesystem"),
                ));
            };
            let b = self.read_meta(block << self.sb.blocklog, bs as u64, Some(ino))?;
            let magic = be32(&b, 0);
            let want = if self.sb.v5 {
                BMAP_CRC_MAGIC
            } else {
                BMAP_MAGIC
            };
            if magic != want {
                return Err(Error::corrupt(
                    ino,
                    format!("B+tree block {block} has magic 0x{magic:08x}, not a bmap block"),
                ));
            }
            let got = be16(&b, 4);
            let n = usize::from(be16(&b, 6));
            if got != level || n == 0 || n > maxrecs {
                return Err(Error::corrupt(
                    ino,
                    format!(
                        "B+tree block {block} is at level {got} with {n} records where level {level} with 1 to {maxrecs} belongs (a loop or a torn tree)"
                    ),
                ));
            }
            if self.sb.v5 {
                self.check_crc(&b, 64, ino, || format!("B+tree block {block}"))?;
                let owner = be64(&b, 56);
                let daddr = be64(&b, 24);
                if owner != ino || daddr != block << (self.sb.blocklog - 9) {
                    return Err(Error::corrupt(
                        ino,
                        format!(
                            "B+tree block {block} belongs to inode {owner} at sector {daddr}, not to this inode here"
                        ),
                    ));
                }
            }
            if level == 0 {
                let rec = |i: usize| &b[hdr + i * 16..hdr + i * 16 + 16];
                let off = |i: usize| (be64(rec(i), 0) >> 9) & ((1u64 << 54) - 1);
                return match last_le(n, lblk, off) {
                    None => hole(ino, lblk, off(0).min(limit)),
                    Some(i) => {
                        let e = decode(self, rec(i), ino)?;
                        if lblk < e.off + e.len {
                            Ok(run_in(&e, lblk))
                        } else {
                            let next = if i + 1 < n { off(i + 1) } else { limit };
                            hole(ino, lblk, next.min(limit))
                        }
                    }
                };
            }
            let key = |i: usize| be64(&b, hdr + i * 8);
            let Some(i) = last_le(n, lblk, key) else {
                return hole(ino, lblk, key(0).min(limit));
            };
            if i + 1 < n {
                limit = limit.min(key(i + 1));
            }
            ptr = be64(&b, hdr + maxrecs * 8 + i * 8);
        }
    }

    /// Reads up to `buf.len()` bytes of `ip`'s data from byte `offset`, holes and unwritten
    /// extents as zeros; returns the count (short at the end of the file).
    pub(crate) fn read_data(
        &mut self,
        ip: &Inode,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        if offset >= ip.size || buf.is_empty() {
            return Ok(0);
        }
        let end = ip.size.min(offset.saturating_add(buf.len() as u64));
        let m = self.mapper(ip)?;
        let bs = self.sb.blocksize;
        let mut pos = offset;
        while pos < end {
            let lblk = pos >> self.sb.blocklog;
            let run = self.map(ip, &m, lblk)?;
            let run_end = (run.lblk.saturating_add(run.len)).saturating_mul(bs);
            let stop = end.min(run_end);
            let dst = &mut buf[(pos - offset) as usize..(stop - offset) as usize];
            match run.block {
                None => dst.fill(0),
                Some(block) => {
                    let at = (block << self.sb.blocklog) + (pos & (bs - 1));
                    self.read_dev(at, dst, Some(ip.ino))?;
                }
            }
            pos = stop;
        }
        Ok((end - offset) as usize)
    }
}
