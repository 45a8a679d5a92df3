//! rpm's BerkeleyDB `Packages` database: a BerkeleyDB *hash* database whose keys are header
//! numbers (`hnum`, a 4-byte integer in the database's byte order) and whose values are
//! header blobs. Key 0 holds no header: rpm keeps the highest header number there.
//!
//! The reader walks the hash table as rpm's own read-only reader does (rpm
//! `lib/backend/bdb_ro.cc`, `hash_next`, `hash_getkv`, `ovfl_get`): bucket by bucket, each
//! bucket's chain of pages, each page's key/data pairs, and the overflow pages of big items.
//! Free pages and pages of deleted items are never reached that way, unlike a scan of every
//! page of the file (go-rpmdb `pkg/bdb/bdb.go` scans pages in file order, and reads only
//! overflow values).
//!
//! Layout (libdb 5.3 `src/dbinc/db_page.h`; all integers in the database's byte order, which
//! the magic number tells):
//!
//! Page 0, the hash metadata page (`HMETA33`):
//! ```text
//!   0  lsn[8]        12 magic (0x061561)   16 version      20 pagesize
//!  24  encrypt_alg   25 type (8, P_HASHMETA) 26 metaflags (0x01 DBMETA_CHKSUM)
//!  28  free          32 last_pgno          36 nparts        40 key_count  44 record_count
//!  48  flags (0x01 DB_HASH_DUP, 0x02 DB_HASH_SUBDB)          52 uid[20]
//!  72  max_bucket    76 high_mask          80 low_mask      84 ffactor    88 nelem
//!  92  h_charkey     96 spares[32]: bucket b lives on page b + spares[log2(b+1) rounded up]
//! ```
//! Every other page starts with the 26-byte `PAGE` header:
//! ```text
//!   0  lsn[8]   8 pgno   12 prev_pgno   16 next_pgno   20 entries (u16)
//!  22  hf_offset (u16)   24 level   25 type
//! ```
//! then, with page checksums (`DBMETA_CHKSUM`), 2 bytes of padding and a 4-byte checksum
//! (`PG_CHKSUM`); the page's item index (`P_INP`) or an overflow page's data starts after
//! that (`P_OVERHEAD`: 26, or 32 with checksums).
//!
//! Hash pages (type 13 `P_HASH`, or 2 `P_HASH_UNSORTED` written before Berkeley DB 4.6)
//! hold `entries` 2-byte item offsets, key and data alternating; item `i` runs from its
//! offset to the offset of item `i - 1` (item 0: to the end of the page; `LEN_HITEM`).
//! An item's first byte is its type: 1 `H_KEYDATA` (the bytes follow), 3 `H_OFFPAGE`
//! (`HOFFPAGE`: type, 3 unused, pgno at 4, total length at 8; the bytes are on a chain of
//! overflow pages), 2 `H_DUPLICATE` and 4 `H_OFFDUP` (duplicates, which rpm never writes).
//! A bucket's pages chain through `next_pgno`.
//!
//! Overflow pages (type 7 `P_OVERFLOW`) hold `hf_offset` bytes (`OV_LEN`) of the item after
//! the page overhead, and chain through `next_pgno`.

use crate::{Error, MAX_HEADER_BLOB, ReadAt, Visited, read_exact_at};

/// Hash database magic (`DB_HASHMAGIC`, libdb `db.h`).
const HASH_MAGIC: u32 = 0x0006_1561;
/// Btree, queue and heap magics, to name what a non-hash database is.
const BTREE_MAGIC: u32 = 0x0005_3162;
const QUEUE_MAGIC: u32 = 0x0004_2253;
const HEAP_MAGIC: u32 = 0x0007_4582;

/// Hash versions rpm's bdb_ro reads: 8 (Berkeley DB 4.3–4.5, unsorted pages), 9 (4.6–5.x),
/// 10 (6.x).
const HASH_VERSIONS: std::ops::RangeInclusive<u32> = 8..=10;

const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;
/// `sizeof(HOFFPAGE)`.
const HOFFPAGE_SIZE: usize = 12;

const DBMETA_CHKSUM: u8 = 0x01;
const DBMETA_PART_RANGE: u8 = 0x02;
const DBMETA_PART_CALLBACK: u8 = 0x04;
const DB_HASH_SUBDB: u32 = 0x02;

/// `SIZEOF_PAGE`.
const PAGE_HEADER: usize = 26;
/// `sizeof(PG_CHKSUM)`: 2 bytes of alignment and a 4-byte checksum.
const PG_CHKSUM_SIZE: usize = 6;
/// The metadata is in the first 512 bytes of page 0 (the smallest page size).
const META_SIZE: usize = 512;
/// `NCACHED`: entries of the spares table.
const NCACHED: usize = 32;

/// The header blobs of a BerkeleyDB hash `Packages` database, keyed by header number
/// (`hnum`), in ascending order; the key-0 record rpm keeps its highest header number in
/// is skipped.
///
/// Refuses other BerkeleyDB access methods (btree, queue, heap), encrypted databases and
/// databases with subdatabases. Reads both byte orders, page sizes 512 to 65536, pages
/// with checksums (not verified: rpm's BerkeleyDB configuration never asks for them, and
/// rpm's own bdb_ro reader cannot read such databases at all), and both sorted and
/// unsorted (pre-4.6) hash pages.
pub fn bdb_packages(read: &mut dyn ReadAt) -> Result<Vec<(u32, Vec<u8>)>, Error> {
    let meta = Meta::read(read)?;
    let mut db = Db {
        read,
        visited: Visited::new(meta.pages),
        page: Page::new(&meta),
        ovpage: Page::new(&meta),
        meta,
    };
    db.visited.insert(0);
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    // `hash_next`: every bucket from 0 to max_bucket, each bucket's page chain.
    for bucket in 0..=db.meta.max_bucket {
        let mut pgno = db.meta.bucket_page(bucket)?;
        let mut first = true;
        loop {
            if !db.load_page(pgno, false)? {
                if first {
                    // A bucket page libdb has reserved but never written: an empty bucket
                    // (libdb `src/hash/hash_conv.c`, `__ham_pgin`).
                    break;
                }
                return Err(Error::Corrupt(format!(
                    "page {pgno} of bucket {bucket} is not initialised"
                )));
            }
            let kind = db.page.kind();
            if kind != P_HASH && kind != P_HASH_UNSORTED {
                return Err(Error::Corrupt(format!(
                    "page {pgno} of bucket {bucket} has page type {kind}, not a hash page"
                )));
            }
            db.pairs(pgno, &mut out)?;
            first = false;
            match db.page.u32_at(16)? {
                0 => break,
                next => pgno = next,
            }
        }
    }
    out.sort_unstable_by_key(|(hnum, _)| *hnum);
    if let Some(w) = out.windows(2).find(|w| matches!(w, [a, b] if a.0 == b.0)) {
        let hnum = w.first().map_or(0, |p| p.0);
        return Err(Error::Corrupt(format!("header number {hnum} occurs twice")));
    }
    Ok(out)
}

#[derive(Debug)]
struct Meta {
    /// The database's byte order is big-endian.
    big_endian: bool,
    pagesize: usize,
    /// Pages that exist: `last_pgno + 1`, checked against the file's length.
    pages: u64,
    max_bucket: u32,
    spares: [u32; NCACHED],
    /// Where a page's item index or overflow data begins (`P_OVERHEAD`).
    overhead: usize,
}

impl Meta {
    fn read(read: &mut dyn ReadAt) -> Result<Self, Error> {
        let len = read.len();
        if len < META_SIZE as u64 {
            return Err(Error::NotThisFormat(format!(
                "{len} bytes: too short for a BerkeleyDB database"
            )));
        }
        let mut m = [0u8; META_SIZE];
        read_exact_at(read, 0, &mut m)?;
        let le = |at: usize| -> u32 {
            let b = m.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
            b.map_or(0, u32::from_le_bytes)
        };
        let magic = le(12);
        let big_endian = match magic {
            HASH_MAGIC => false,
            m if m == HASH_MAGIC.swap_bytes() => true,
            m => {
                let what = [
                    (BTREE_MAGIC, "btree"),
                    (QUEUE_MAGIC, "queue"),
                    (HEAP_MAGIC, "heap"),
                ]
                .into_iter()
                .find(|(magic, _)| m == *magic || m == magic.swap_bytes());
                return Err(match what {
                    Some((_, name)) => Error::Unsupported(format!(
                        "a BerkeleyDB {name} database, not a hash database: not an rpm Packages database"
                    )),
                    None => Error::NotThisFormat(format!(
                        "magic number {m:#010x}: not a BerkeleyDB hash database"
                    )),
                });
            }
        };
        let u32_at = |at: usize| -> u32 {
            let v = le(at);
            if big_endian { v.swap_bytes() } else { v }
        };
        let byte = |at: usize| m.get(at).copied().unwrap_or(0);
        let version = u32_at(16);
        if !HASH_VERSIONS.contains(&version) {
            return Err(Error::Unsupported(format!(
                "BerkeleyDB hash version {version}; versions 8 to 10 are read"
            )));
        }
        let pagesize = u32_at(20);
        if !(512..=65536).contains(&pagesize) || !pagesize.is_power_of_two() {
            return Err(Error::Corrupt(format!(
                "page size {pagesize}: not a power of two from 512 to 65536"
            )));
        }
        if byte(24) != 0 {
            return Err(Error::Unsupported(format!(
                "an encrypted BerkeleyDB database (algorithm {})",
                byte(24)
            )));
        }
        if byte(25) != P_HASHMETA {
            return Err(Error::Corrupt(format!(
                "page 0 has page type {}, not the hash metadata page type {P_HASHMETA}",
                byte(25)
            )));
        }
        let metaflags = byte(26);
        if metaflags & (DBMETA_PART_RANGE | DBMETA_PART_CALLBACK) != 0 || u32_at(36) > 1 {
            return Err(Error::Unsupported(
                "a partitioned BerkeleyDB database".into(),
            ));
        }
        if u32_at(48) & DB_HASH_SUBDB != 0 {
            return Err(Error::Unsupported(
                "a BerkeleyDB database with subdatabases: not an rpm Packages database".into(),
            ));
        }
        if u32_at(8) != 0 {
            return Err(Error::Corrupt(format!(
                "the metadata page calls itself page {}",
                u32_at(8)
            )));
        }
        let overhead = if metaflags & DBMETA_CHKSUM != 0 {
            PAGE_HEADER + PG_CHKSUM_SIZE
        } else {
            PAGE_HEADER
        };
        let last_pgno = u32_at(32);
        let file_pages = len / u64::from(pagesize);
        let pages = u64::from(last_pgno) + 1;
        if pages > file_pages {
            return Err(Error::Corrupt(format!(
                "the database has {pages} pages of {pagesize} bytes; the file holds {file_pages}: truncated"
            )));
        }
        let max_bucket = u32_at(72);
        // Every bucket has a page of its own.
        if u64::from(max_bucket) >= pages {
            return Err(Error::Corrupt(format!(
                "{} buckets in a database of {pages} pages",
                u64::from(max_bucket) + 1
            )));
        }
        let mut spares = [0u32; NCACHED];
        for (i, s) in spares.iter_mut().enumerate() {
            *s = u32_at(96 + 4 * i);
        }
        Ok(Self {
            big_endian,
            pagesize: pagesize as usize,
            pages,
            max_bucket,
            spares,
            overhead,
        })
    }

    /// `BS_TO_PAGE` (libdb `src/dbinc/hash.h`): `bucket + spares[__db_log2(bucket + 1)]`,
    /// `__db_log2` rounding up; i.e. the spares entry of the bucket's bit length (rpm
    /// `hash_bucket_to_page`).
    fn bucket_page(&self, bucket: u32) -> Result<u32, Error> {
        let bits = (u32::BITS - bucket.leading_zeros()) as usize;
        self.spares
            .get(bits)
            .and_then(|s| bucket.checked_add(*s))
            .ok_or_else(|| {
                Error::Corrupt(format!("bucket {bucket} maps past the last page number"))
            })
    }
}

struct Db<'a> {
    read: &'a mut dyn ReadAt,
    meta: Meta,
    visited: Visited,
    /// The hash page being looked at.
    page: Page,
    /// The overflow page being looked at (rpm's `cur->ovpage`).
    ovpage: Page,
}

/// One page's bytes, and the database's byte order to read them in.
struct Page {
    bytes: Vec<u8>,
    big_endian: bool,
}

impl Page {
    fn new(meta: &Meta) -> Self {
        Self {
            bytes: vec![0; meta.pagesize],
            big_endian: meta.big_endian,
        }
    }

    fn kind(&self) -> u8 {
        self.bytes.get(25).copied().unwrap_or(0)
    }

    fn u16_at(&self, at: usize) -> Result<u16, Error> {
        let b = self
            .bytes
            .get(at..at.wrapping_add(2))
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .ok_or_else(|| Error::Corrupt(format!("offset {at} lies outside a page")))?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Result<u32, Error> {
        let b = self
            .bytes
            .get(at..at.wrapping_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or_else(|| Error::Corrupt(format!("offset {at} lies outside a page")))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

impl Db<'_> {
    /// Reads page `pgno` into `self.page` (or `self.ovpage`), once per traversal (`bdb_getpage`).
    /// False for a page libdb reserved and never wrote (page number field 0, `PGNO_INVALID`).
    fn load_page(&mut self, pgno: u32, overflow: bool) -> Result<bool, Error> {
        let what = if overflow { "overflow" } else { "bucket" };
        if pgno == 0 || u64::from(pgno) >= self.meta.pages {
            return Err(Error::Corrupt(format!(
                "{what} page {pgno} is outside the database's {} pages",
                self.meta.pages
            )));
        }
        if !self.visited.insert(u64::from(pgno)) {
            return Err(Error::Corrupt(format!(
                "{what} page {pgno} is reached twice: a page chain loops or pages are shared"
            )));
        }
        let offset = u64::from(pgno) * self.meta.pagesize as u64;
        let page = if overflow {
            &mut self.ovpage
        } else {
            &mut self.page
        };
        read_exact_at(self.read, offset, &mut page.bytes)?;
        match page.u32_at(8)? {
            0 => Ok(false),
            n if n == pgno => Ok(true),
            n => Err(Error::Corrupt(format!(
                "{what} page {pgno} calls itself page {n}"
            ))),
        }
    }

    /// The key/data pairs of the hash page in `self.page` (`hash_next`, `hash_getkv`).
    fn pairs(&mut self, pgno: u32, out: &mut Vec<(u32, Vec<u8>)>) -> Result<(), Error> {
        let pagesize = self.meta.pagesize;
        let entries = usize::from(self.page.u16_at(20)?);
        let index_end = entries
            .checked_mul(2)
            .and_then(|n| n.checked_add(self.meta.overhead))
            .filter(|end| *end <= pagesize)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "hash page {pgno} claims {entries} items, more than fit"
                ))
            })?;
        if entries % 2 != 0 {
            return Err(Error::Corrupt(format!(
                "hash page {pgno} has {entries} items: keys and data come in pairs"
            )));
        }
        // Item i runs from inp[i] to inp[i - 1] (item 0: to the end of the page).
        let mut items = Vec::with_capacity(entries);
        let mut end = pagesize;
        for i in 0..entries {
            let start = usize::from(self.page.u16_at(self.meta.overhead + 2 * i)?);
            if start < index_end || start >= end {
                return Err(Error::Corrupt(format!(
                    "item {i} of hash page {pgno} at offset {start} lies outside the page's item area {index_end}..{end}"
                )));
            }
            items.push((start, end));
            end = start;
        }
        for pair in items.chunks_exact(2) {
            let &[key, data] = pair else {
                continue;
            };
            let key = self.item(pgno, key, 4, "key")?;
            let Ok(key) = <[u8; 4]>::try_from(key.as_slice()) else {
                return Err(Error::Corrupt(format!(
                    "a key of {} bytes on hash page {pgno}: rpm's header numbers have 4",
                    key.len()
                )));
            };
            let hnum = if self.meta.big_endian {
                u32::from_be_bytes(key)
            } else {
                u32::from_le_bytes(key)
            };
            if hnum == 0 {
                // rpm's record of the highest header number in use, not a header.
                continue;
            }
            let blob = self.item(pgno, data, MAX_HEADER_BLOB, "header")?;
            out.push((hnum, blob));
        }
        Ok(())
    }

    /// The bytes of the item at `start..end` of the hash page in `self.page`: on the page,
    /// or on its overflow pages; at most `max` bytes.
    fn item(
        &mut self,
        pgno: u32,
        (start, end): (usize, usize),
        max: u64,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        let item = self
            .page
            .bytes
            .get(start..end)
            .ok_or_else(|| Error::Corrupt(format!("{what} item outside hash page {pgno}")))?;
        match item.first().copied() {
            Some(H_KEYDATA) => {
                let bytes = item.get(1..).unwrap_or_default();
                if bytes.len() as u64 > max {
                    return Err(Error::Corrupt(format!(
                        "a {what} of {} bytes on hash page {pgno}",
                        bytes.len()
                    )));
                }
                Ok(bytes.to_vec())
            }
            Some(H_OFFPAGE) => {
                if item.len() != HOFFPAGE_SIZE {
                    return Err(Error::Corrupt(format!(
                        "an overflow reference of {} bytes on hash page {pgno}",
                        item.len()
                    )));
                }
                let first = self.page.u32_at(start + 4)?;
                let total = self.page.u32_at(start + 8)?;
                self.overflow(first, total, max, what)
            }
            Some(H_DUPLICATE | H_OFFDUP) => Err(Error::Unsupported(format!(
                "duplicate data items on hash page {pgno}: not an rpm Packages database"
            ))),
            kind => Err(Error::Corrupt(format!(
                "an item of type {} on hash page {pgno}",
                kind.unwrap_or(0)
            ))),
        }
    }

    /// An item of `total` bytes on the overflow pages chained from `pgno` (`ovfl_get`).
    fn overflow(
        &mut self,
        mut pgno: u32,
        total: u32,
        max: u64,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        let total64 = u64::from(total);
        if total == 0 || total64 > max || total64 > self.read.len() {
            return Err(Error::Corrupt(format!(
                "a {what} of {total} bytes on overflow pages"
            )));
        }
        // Grown page by page: what is allocated is what was read.
        let mut bytes = Vec::new();
        let total = total as usize;
        while bytes.len() < total {
            if !self.load_page(pgno, true)? {
                return Err(Error::Corrupt(format!(
                    "overflow page {pgno} is not initialised"
                )));
            }
            let page = &self.ovpage;
            if page.kind() != P_OVERFLOW {
                return Err(Error::Corrupt(format!(
                    "overflow page {pgno} has page type {}",
                    page.kind()
                )));
            }
            let len = usize::from(page.u16_at(22)?);
            let want = total.saturating_sub(bytes.len());
            let data = page
                .bytes
                .get(self.meta.overhead..)
                .and_then(|d| d.get(..len))
                .filter(|_| len <= want)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "overflow page {pgno} holds {len} bytes; {want} of the {what} remain"
                    ))
                })?;
            bytes.extend_from_slice(data);
            let next = page.u32_at(16)?;
            if bytes.len() < total && next == 0 {
                return Err(Error::Corrupt(format!(
                    "a {what}'s overflow chain ends at page {pgno} with {} of {total} bytes",
                    bytes.len()
                )));
            }
            pgno = next;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn buckets_map_to_pages_by_split_point() {
        let mut spares = [0u32; NCACHED];
        for (i, s) in spares.iter_mut().enumerate() {
            *s = 100 * i as u32;
        }
        spares[31] = u32::MAX;
        let meta = Meta {
            big_endian: false,
            pagesize: 512,
            pages: 10_000,
            max_bucket: 0,
            spares,
            overhead: PAGE_HEADER,
        };
        // Bucket b uses the spares entry of its bit length: 0 -> 0, 1 -> 1, 2..3 -> 2,
        // 4..7 -> 3, ...
        for (bucket, page) in [
            (0, 0),
            (1, 101),
            (2, 202),
            (3, 203),
            (4, 304),
            (7, 307),
            (8, 408),
        ] {
            assert_eq!(meta.bucket_page(bucket).unwrap(), page, "bucket {bucket}");
        }
        assert!(meta.bucket_page(1 << 30).is_err(), "spares[31] overflows");
        assert!(
            meta.bucket_page(u32::MAX).is_err(),
            "bit length 32: past the table"
        );
    }
}
