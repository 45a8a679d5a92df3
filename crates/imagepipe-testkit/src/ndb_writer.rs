//! A writer of NDB `Packages.db` files, for tests: no tool on this machine writes NDB
//! (Debian's rpm 4.18 is built without it). Every field follows rpm's writer,
//! `lib/backend/ndb/rpmpkg.c` (rpm 4.19/6.0 sources; the format has been the same since
//! rpm 4.15 added it):
//!
//! * `rpmpkgWriteHeader`: the 32-byte file header, little-endian (`h2le`):
//!   `PKGDB_OFFSET_MAGIC` 0 = 'R' | 'p' << 8 | 'm' << 16 | 'P' << 24 ("RpmP"),
//!   `PKGDB_OFFSET_VERSION` 4 = `PKGDB_VERSION` 0, `PKGDB_OFFSET_GENERATION` 8,
//!   `PKGDB_OFFSET_SLOTNPAGES` 12, `PKGDB_OFFSET_NEXTPKGIDX` 16, the rest zero.
//! * `rpmpkgWriteEmptySlotpage`: each slot page is `PAGE_SIZE` 4096 bytes of `SLOT_SIZE` 16-byte
//!   slots, each `SLOT_MAGIC` ("Slot") followed by zeros; on page 0 the first
//!   `SLOT_START` = `PKGDB_HEADER_SIZE / SLOT_SIZE` = 2 slots are the file header instead.
//! * `rpmpkgWriteslot`: slot number `slotno` lives at byte `slotno * SLOT_SIZE`: magic,
//!   pkgidx at 4, blkoff at 8, blkcnt at 12 (block = `BLK_SIZE` 16 bytes). A deleted package's
//!   slot is rewritten as (0, 0, 0) (`rpmpkgDelInternal`).
//! * `rpmpkgWriteBlob`: at byte `blkoff * BLK_SIZE`, the head (`BLOBHEAD_SIZE` 16):
//!   `BLOBHEAD_MAGIC` ("BlbS"), pkgidx, the database generation (`now`), the blob length;
//!   the blob; zero padding so that head + blob + pad + tail fill
//!   `blkcnt = (BLOBHEAD_SIZE + bloblen + BLOBTAIL_SIZE + BLK_SIZE - 1) / BLK_SIZE` blocks;
//!   the tail (`BLOBTAIL_SIZE` 12): the Adler-32 (`update_adler32`, initial value 1) of head,
//!   blob and padding, the blob length, `BLOBTAIL_MAGIC` ("BlbE").
//! * Blobs lie after the slot area: `blkoff >= slotnpages * (PAGE_SIZE / BLK_SIZE)`
//!   (`rpmpkgFindEmptyOffset` starts there), and a deleted blob's blocks are zeroed
//!   (`rpmpkgDelBlob` -> `rpmpkgZeroBlks`); the file is a whole number of blocks.

pub const PAGE_SIZE: usize = 4096;
pub const SLOT_SIZE: usize = 16;
pub const BLK_SIZE: usize = 16;
pub const SLOT_START: usize = 2;
pub const BLOBHEAD_SIZE: usize = 16;
pub const BLOBTAIL_SIZE: usize = 12;

/// An NDB file being built: slot pages first, blobs appended after them.
#[derive(Debug, Clone)]
pub struct NdbWriter {
    pub bytes: Vec<u8>,
    pub slotnpages: u32,
    pub generation: u32,
    pub nextpkgidx: u32,
}

/// Where a blob went, to corrupt it in tests.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    pub slotno: usize,
    pub blkoff: u32,
    pub blkcnt: u32,
}

impl NdbWriter {
    /// An empty database with `slotnpages` slot pages (`rpmpkgInitInternal` writes 1,
    /// `rpmpkgAddSlotPage` adds more as slots run out).
    pub fn new(slotnpages: u32) -> Self {
        let mut bytes = vec![0u8; slotnpages as usize * PAGE_SIZE];
        for slot in bytes.chunks_exact_mut(SLOT_SIZE).skip(SLOT_START) {
            slot[..4].copy_from_slice(b"Slot");
        }
        let mut w = NdbWriter {
            bytes,
            slotnpages,
            generation: 1,
            nextpkgidx: 1,
        };
        w.write_header();
        w
    }

    fn write_header(&mut self) {
        let h = &mut self.bytes[..32];
        h.fill(0);
        h[0..4].copy_from_slice(b"RpmP");
        h[4..8].copy_from_slice(&0u32.to_le_bytes());
        h[8..12].copy_from_slice(&self.generation.to_le_bytes());
        h[12..16].copy_from_slice(&self.slotnpages.to_le_bytes());
        h[16..20].copy_from_slice(&self.nextpkgidx.to_le_bytes());
    }

    /// Blocks in the file so far.
    pub fn blocks(&self) -> u32 {
        (self.bytes.len() / BLK_SIZE) as u32
    }

    /// Appends `blocks` zero blocks: the zeroed space a deleted package's blob leaves.
    pub fn gap(&mut self, blocks: u32) {
        self.bytes
            .resize(self.bytes.len() + blocks as usize * BLK_SIZE, 0);
    }

    /// Writes `blob` as package `pkgidx` in slot `slotno`, at the end of the file.
    pub fn put(&mut self, slotno: usize, pkgidx: u32, blob: &[u8]) -> Placed {
        assert!(
            slotno >= SLOT_START && slotno < self.slotnpages as usize * (PAGE_SIZE / SLOT_SIZE)
        );
        let blkoff = self.blocks();
        let blkcnt = (BLOBHEAD_SIZE + blob.len() + BLOBTAIL_SIZE).div_ceil(BLK_SIZE) as u32;
        // rpmpkgWriteBlob: head, blob, padding, tail.
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b"BlbS");
        self.bytes.extend_from_slice(&pkgidx.to_le_bytes());
        self.bytes.extend_from_slice(&self.generation.to_le_bytes());
        self.bytes
            .extend_from_slice(&(blob.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(blob);
        let pad = blkcnt as usize * BLK_SIZE - (BLOBHEAD_SIZE + blob.len() + BLOBTAIL_SIZE);
        self.bytes.resize(self.bytes.len() + pad, 0);
        let adler = adler32(&self.bytes[start..]);
        self.bytes.extend_from_slice(&adler.to_le_bytes());
        self.bytes
            .extend_from_slice(&(blob.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(b"BlbE");
        assert_eq!(self.bytes.len(), start + blkcnt as usize * BLK_SIZE);
        // rpmpkgWriteslot.
        self.set_slot(slotno, pkgidx, blkoff, blkcnt);
        // rpmpkgPutInternal: nextpkgidx past the largest index; rpmpkgWriteslot: generation++.
        self.nextpkgidx = self.nextpkgidx.max(pkgidx + 1);
        self.generation += 1;
        self.write_header();
        Placed {
            slotno,
            blkoff,
            blkcnt,
        }
    }

    /// Overwrites slot `slotno` (magic, pkgidx, blkoff, blkcnt).
    pub fn set_slot(&mut self, slotno: usize, pkgidx: u32, blkoff: u32, blkcnt: u32) {
        let s = &mut self.bytes[slotno * SLOT_SIZE..(slotno + 1) * SLOT_SIZE];
        s[0..4].copy_from_slice(b"Slot");
        s[4..8].copy_from_slice(&pkgidx.to_le_bytes());
        s[8..12].copy_from_slice(&blkoff.to_le_bytes());
        s[12..16].copy_from_slice(&blkcnt.to_le_bytes());
    }

    /// Deletes a package as `rpmpkgDelInternal` does: its slot becomes (0, 0, 0) and its
    /// blocks are zeroed.
    pub fn delete(&mut self, placed: Placed) {
        self.set_slot(placed.slotno, 0, 0, 0);
        let start = placed.blkoff as usize * BLK_SIZE;
        self.bytes[start..start + placed.blkcnt as usize * BLK_SIZE].fill(0);
        self.generation += 1;
        self.write_header();
    }
}

/// Adler-32 (RFC 1950), written out plainly for the tests (rpmpkg.c `update_adler32`).
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}
