//! rpm's NDB package database, `Packages.db` (rpm `lib/backend/ndb/rpmpkg.c`; the indexes
//! live in another file, `Index.db`, which is not needed to list the packages).
//!
//! Layout (all integers little-endian, `le2h`):
//! ```text
//! file header, 32 bytes (PKGDB_HEADER_SIZE; PKGDB_OFFSET_*):
//!    0 magic "RpmP"   4 version (0)   8 generation   12 slotnpages   16 nextpkgidx
//! slot area: slotnpages pages of 4096 bytes (PAGE_SIZE), 16-byte slots (SLOT_SIZE); the
//! first two slots of page 0 are the file header (SLOT_START = 2). A slot:
//!    0 magic "Slot"   4 pkgidx   8 blkoff   12 blkcnt
//!   blkoff 0: a free slot. Offsets and counts are in 16-byte blocks (BLK_SIZE).
//! blob area, after the slot area: for each package, blkcnt blocks at blkoff:
//!   blob head, 16 bytes (BLOBHEAD_SIZE):
//!    0 magic "BlbS"   4 pkgidx   8 generation   12 bloblen
//!   the header blob, bloblen bytes; zero padding to the block size;
//!   blob tail, 12 bytes (BLOBTAIL_SIZE), ending the last block:
//!    0 adler32 of head + blob + padding   4 bloblen   8 magic "BlbE"
//! ```
//! Deleted packages leave a free slot and zeroed blocks (`rpmpkgDelBlob`).
//!
//! What is checked is what rpm checks (`rpmpkgReadHeader`, `rpmpkgReadSlots`,
//! `rpmpkgReadBlob`), plus: the Adler-32 checksum (rpm checks it in `rpmpkgVerify` and before
//! moving or deleting a blob, not when it reads one), blobs that overlap (rpm's writer
//! refuses such a database, `rpmpkgFindEmptyOffset`), and a package index used twice.
//!
//! go-rpmdb (`pkg/ndb/ndb.go`) reads the same format; it takes a slot as free when its
//! pkgidx is 0 (rpm: when blkoff is 0, and a used slot must have a pkgidx), calls the head's
//! generation `BlobCkSum`, and checks neither the tail nor the checksum.

use crate::{Error, MAX_HEADER_BLOB, ReadAt, read_exact_at};

const PKGDB_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const PKGDB_VERSION: u32 = 0;
const PKGDB_HEADER_SIZE: usize = 32;
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOBHEAD_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const BLOBTAIL_MAGIC: u32 = u32::from_le_bytes(*b"BlbE");
const PAGE_SIZE: usize = 4096;
const SLOT_SIZE: usize = 16;
const BLK_SIZE: u64 = 16;
const BLOBHEAD_SIZE: u64 = 16;
const BLOBTAIL_SIZE: u64 = 12;
/// `PKGDB_MAX_SLOTNPAGES`: slot and block numbers must fit 32 bits.
const MAX_SLOTNPAGES: u32 = u32::MAX / (PAGE_SIZE / SLOT_SIZE) as u32;

#[derive(Debug, Clone, Copy)]
struct Slot {
    pkgidx: u32,
    blkoff: u32,
    blkcnt: u32,
}

/// The header blobs of an NDB `Packages.db`, keyed by package index (rpm's header number),
/// in ascending order. Each blob's head, tail and Adler-32 checksum are verified.
pub fn ndb_packages(read: &mut dyn ReadAt) -> Result<Vec<(u32, Vec<u8>)>, Error> {
    let len = read.len();
    if len < PKGDB_HEADER_SIZE as u64 {
        return Err(Error::NotThisFormat(format!(
            "{len} bytes: too short for an NDB Packages.db"
        )));
    }
    let mut header = [0u8; PKGDB_HEADER_SIZE];
    read_exact_at(read, 0, &mut header)?;
    let magic = le(&header, 0);
    if magic != PKGDB_MAGIC {
        return Err(Error::NotThisFormat(format!(
            "magic number {magic:#010x}: not an NDB Packages.db"
        )));
    }
    let version = le(&header, 4);
    if version != PKGDB_VERSION {
        return Err(Error::Unsupported(format!(
            "NDB version {version}; version {PKGDB_VERSION} is read"
        )));
    }
    let slotnpages = le(&header, 12);
    if slotnpages == 0 || slotnpages > MAX_SLOTNPAGES {
        return Err(Error::Corrupt(format!("{slotnpages} slot pages")));
    }
    let slot_area = u64::from(slotnpages) * PAGE_SIZE as u64;
    if slot_area > len {
        return Err(Error::Corrupt(format!(
            "{slotnpages} slot pages in a file of {len} bytes: truncated"
        )));
    }
    // rpmpkgReadSlots: the file is whole blocks, and block numbers fit 32 bits.
    if !len.is_multiple_of(BLK_SIZE) || len / BLK_SIZE >= u64::from(u32::MAX) {
        return Err(Error::Corrupt(format!(
            "a file of {len} bytes: not a whole number of 16-byte blocks below 2^32"
        )));
    }
    let fileblks = len / BLK_SIZE;
    let min_blkoff = slot_area / BLK_SIZE;

    let mut slots = Vec::new();
    let mut page = vec![0u8; PAGE_SIZE];
    for p in 0..u64::from(slotnpages) {
        read_exact_at(read, p * PAGE_SIZE as u64, &mut page)?;
        let first = if p == 0 { PKGDB_HEADER_SIZE } else { 0 };
        for (i, s) in page
            .chunks_exact(SLOT_SIZE)
            .enumerate()
            .skip(first / SLOT_SIZE)
        {
            let slotno = p * (PAGE_SIZE / SLOT_SIZE) as u64 + i as u64;
            if le(s, 0) != SLOT_MAGIC {
                return Err(Error::Corrupt(format!(
                    "slot {slotno} has a bad magic number"
                )));
            }
            let slot = Slot {
                pkgidx: le(s, 4),
                blkoff: le(s, 8),
                blkcnt: le(s, 12),
            };
            if slot.blkoff == 0 {
                continue; // a free slot
            }
            let end = u64::from(slot.blkoff) + u64::from(slot.blkcnt);
            if slot.pkgidx == 0 || slot.blkcnt == 0 || u64::from(slot.blkoff) < min_blkoff {
                return Err(Error::Corrupt(format!(
                    "slot {slotno}: package {} at block {} ({} blocks)",
                    slot.pkgidx, slot.blkoff, slot.blkcnt
                )));
            }
            if end > fileblks {
                return Err(Error::Corrupt(format!(
                    "slot {slotno}: package {} ends at block {end}, past the file's {fileblks}: truncated",
                    slot.pkgidx
                )));
            }
            slots.push(slot);
        }
    }

    // The blobs must not overlap; then, they add up to at most the file's size.
    slots.sort_unstable_by_key(|s| s.blkoff);
    let mut prev_end = min_blkoff;
    for s in &slots {
        if u64::from(s.blkoff) < prev_end {
            return Err(Error::Corrupt(format!(
                "the blob of package {} at block {} overlaps another",
                s.pkgidx, s.blkoff
            )));
        }
        prev_end = u64::from(s.blkoff) + u64::from(s.blkcnt);
    }
    slots.sort_unstable_by_key(|s| s.pkgidx);
    if let Some(w) = slots
        .windows(2)
        .find(|w| matches!(w, [a, b] if a.pkgidx == b.pkgidx))
    {
        let pkgidx = w.first().map_or(0, |s| s.pkgidx);
        return Err(Error::Corrupt(format!("package {pkgidx} has two slots")));
    }

    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        out.push((slot.pkgidx, read_blob(read, slot)?));
    }
    Ok(out)
}

/// `rpmpkgReadBlob`, with the checksum verified.
fn read_blob(read: &mut dyn ReadAt, slot: Slot) -> Result<Vec<u8>, Error> {
    let Slot {
        pkgidx,
        blkoff,
        blkcnt,
    } = slot;
    let start = u64::from(blkoff) * BLK_SIZE;
    let size = u64::from(blkcnt) * BLK_SIZE;
    let bad = |what: String| Error::Corrupt(format!("package {pkgidx} at block {blkoff}: {what}"));
    if size < BLOBHEAD_SIZE + BLOBTAIL_SIZE {
        return Err(bad(format!("{blkcnt} blocks are too few for a blob")));
    }
    let mut head = [0u8; BLOBHEAD_SIZE as usize];
    read_exact_at(read, start, &mut head)?;
    if le(&head, 0) != BLOBHEAD_MAGIC {
        return Err(bad("bad blob head magic".into()));
    }
    if le(&head, 4) != pkgidx {
        return Err(bad(format!("the blob is package {}'s", le(&head, 4))));
    }
    let bloblen = u64::from(le(&head, 12));
    if bloblen > MAX_HEADER_BLOB {
        return Err(bad(format!(
            "a header of {bloblen} bytes, beyond rpm's limit"
        )));
    }
    let want_blocks = (BLOBHEAD_SIZE + bloblen + BLOBTAIL_SIZE).div_ceil(BLK_SIZE);
    if want_blocks != u64::from(blkcnt) {
        return Err(bad(format!(
            "{blkcnt} blocks hold a blob of {bloblen} bytes, which needs {want_blocks}"
        )));
    }
    // bloblen < size <= the file's length: the allocation is bounded by the file.
    let mut blob = vec![0u8; usize::try_from(bloblen).map_err(|_| bad("too big".into()))?];
    read_exact_at(read, start + BLOBHEAD_SIZE, &mut blob)?;
    // Padding (< 16 bytes) and tail: the rest of the last blocks.
    let mut rest = [0u8; (BLK_SIZE - 1 + BLOBTAIL_SIZE) as usize];
    let rest_len = size - BLOBHEAD_SIZE - bloblen;
    let rest = rest
        .get_mut(..rest_len as usize)
        .ok_or_else(|| bad("blob size mismatch".into()))?;
    read_exact_at(read, start + BLOBHEAD_SIZE + bloblen, rest)?;
    let (pad, tail) = rest.split_at(rest.len() - BLOBTAIL_SIZE as usize);
    if le(tail, 8) != BLOBTAIL_MAGIC {
        return Err(bad("bad blob tail magic".into()));
    }
    if u64::from(le(tail, 4)) != bloblen {
        return Err(bad(format!(
            "the tail says {} bytes, the head {bloblen}",
            le(tail, 4)
        )));
    }
    let sum = Adler32::new()
        .update(&head)
        .update(&blob)
        .update(pad)
        .finish();
    if le(tail, 0) != sum {
        return Err(bad(format!(
            "Adler-32 {sum:#010x} where the tail records {:#010x}",
            le(tail, 0)
        )));
    }
    Ok(blob)
}

/// The little-endian u32 at `at`, 0 past the end (callers pass fixed offsets within the
/// buffers they read).
fn le(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Adler-32 (RFC 1950), as `update_adler32` in rpmpkg.c, starting from 1 (`ADLER32_INIT`).
#[derive(Debug, Clone, Copy)]
struct Adler32 {
    a: u32,
    b: u32,
}

impl Adler32 {
    const MOD: u32 = 65521;
    /// The most bytes summed before `b` could overflow.
    const NMAX: usize = 5552;

    fn new() -> Self {
        Self { a: 1, b: 0 }
    }

    fn update(mut self, data: &[u8]) -> Self {
        for chunk in data.chunks(Self::NMAX) {
            for &byte in chunk {
                self.a = self.a.wrapping_add(u32::from(byte));
                self.b = self.b.wrapping_add(self.a);
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
        self
    }

    fn finish(self) -> u32 {
        (self.b << 16) | self.a
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::Adler32;

    /// The sum written out plainly, one byte at a time.
    fn plain(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn adler32() {
        assert_eq!(Adler32::new().update(b"Wikipedia").finish(), 0x11e6_0398);
        assert_eq!(Adler32::new().finish(), 1);
        // Past the 5552-byte reduction interval, all-0xff bytes (the worst case for
        // overflow), in one piece and in uneven pieces.
        let data = vec![0xffu8; 100_000];
        let whole = Adler32::new().update(&data).finish();
        assert_eq!(whole, plain(&data));
        let (a, b) = data.split_at(7);
        let (b, c) = b.split_at(5551);
        assert_eq!(Adler32::new().update(a).update(b).update(c).finish(), whole);
    }
}
