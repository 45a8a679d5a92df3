//! Seeded mutations of the real fixtures: both readers, on every mutated file, must return
//! (an error or headers), never panic, finish quickly, and return at most the file's size in
//! headers. Deterministic: the seed is fixed, and a failure names the seed, the iteration
//! and the mutations. `RPMDB_FUZZ_ITERS=N` runs N iterations per fixture instead of the
//! default.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use imagepipe_rpmdb::{MAX_HEADER_BLOB, ReadAt, bdb_packages, ndb_packages};
use imagepipe_testkit::ndb_writer::NdbWriter;
use support::{Rng, expected_bdb_blobs, fixture, go_rpmdb_fixture};

const SEED: u64 = 0x5eed_2024_0bdb_0ddb;

/// The base file with byte patches applied and, maybe, cut short: read through `ReadAt`
/// without copying the whole file per iteration.
struct Mutated<'a> {
    base: &'a [u8],
    len: u64,
    /// (offset, byte), applied in order.
    patches: &'a [(usize, u8)],
}

impl ReadAt for Mutated<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = offset as usize;
        let end = start + buf.len();
        if end as u64 > self.len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&self.base[start..end]);
        for &(at, b) in self.patches {
            if (start..end).contains(&at) {
                buf[at - start] = b;
            }
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// Where mutations matter most: metadata, page and slot headers, item indexes (at the
/// start of a page), hash items (at its end).
fn hot_spot(rng: &mut Rng, base: &[u8], page: usize) -> usize {
    let pages = base.len() / page;
    let p = rng.below(pages.max(1));
    match rng.below(5) {
        0 => rng.below(224.min(base.len())),
        1 | 2 => (p * page + rng.below(64)).min(base.len() - 1),
        3 => ((p + 1) * page)
            .saturating_sub(1 + rng.below(64))
            .min(base.len() - 1),
        _ => rng.below(base.len()),
    }
}

fn interesting_u32(rng: &mut Rng, len: usize, page: usize) -> u32 {
    let pages = (len / page).max(1) as u32;
    match rng.below(8) {
        0 => 0,
        1 => 1,
        2 => u32::MAX,
        3 => 0x7fff_ffff,
        4 => rng.below(pages as usize) as u32,
        5 => pages,
        6 => (len / 16) as u32,
        _ => rng.next_u64() as u32,
    }
}

fn mutate_and_read(name: &str, base: &[u8], page: usize, iterations: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut worst = Duration::ZERO;
    let mut ok = 0;
    for iteration in 0..iterations {
        let mut patches = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let at = hot_spot(&mut rng, base, page);
            match rng.below(4) {
                0 => patches.push((at, rng.next_u64() as u8)),
                1 => patches.push((at, base[at] ^ (1 << rng.below(8)))),
                2 => patches.push((at, [0u8, 0xff, 1, 0x80][rng.below(4)])),
                _ => {
                    let v = interesting_u32(&mut rng, base.len(), page);
                    let at = at & !3;
                    let bytes = if rng.below(2) == 0 {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    for (i, b) in bytes.into_iter().enumerate() {
                        if at + i < base.len() {
                            patches.push((at + i, b));
                        }
                    }
                }
            }
        }
        let len = if rng.below(10) == 0 {
            rng.below(base.len() + 1) as u64
        } else {
            base.len() as u64
        };
        type Reader = fn(&mut dyn ReadAt) -> Result<Vec<(u32, Vec<u8>)>, imagepipe_rpmdb::Error>;
        for (reader, f) in [
            ("bdb", bdb_packages as Reader),
            ("ndb", ndb_packages as Reader),
        ] {
            let mut m = Mutated {
                base,
                len,
                patches: &patches,
            };
            let start = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| f(&mut m)));
            let took = start.elapsed();
            worst = worst.max(took);
            let context = || {
                format!(
                    "{name}, {reader} reader, seed {seed:#x}, iteration {iteration}, length {len}, patches {patches:?}"
                )
            };
            let result = result.unwrap_or_else(|_| panic!("panicked: {}", context()));
            assert!(
                took < Duration::from_secs(5),
                "took {took:?}: {}",
                context()
            );
            if let Ok(headers) = result {
                ok += 1;
                let total: u64 = headers.iter().map(|(_, b)| b.len() as u64).sum();
                assert!(total <= len, "{total} bytes of headers: {}", context());
                assert!(
                    headers
                        .iter()
                        .all(|(_, b)| b.len() as u64 <= MAX_HEADER_BLOB)
                );
                assert!(headers.windows(2).all(|w| w[0].0 < w[1].0), "{}", context());
            }
        }
    }
    eprintln!("{name}: {iterations} mutations, {ok} read without error, slowest {worst:?}");
}

fn iterations(default: usize) -> usize {
    std::env::var("RPMDB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_bdb_fixtures() {
    for (i, (variant, page)) in [
        ("bdb/le-512/Packages", 512),
        ("bdb/be-512-buckets/Packages", 512),
        ("bdb/le-4096-chksum/Packages", 4096),
        ("bdb/le-65536/Packages", 65536),
        ("bdb/le-512-deleted/Packages", 512),
    ]
    .into_iter()
    .enumerate()
    {
        let base = fixture(variant);
        mutate_and_read(variant, &base, page, iterations(2000), SEED + i as u64);
    }
    if let Some(base) = go_rpmdb_fixture("libuuid/Packages") {
        mutate_and_read(
            "go-rpmdb libuuid/Packages",
            &base,
            4096,
            iterations(2000),
            SEED + 10,
        );
    }
}

#[test]
fn mutated_ndb_fixtures() {
    if let Some(base) = go_rpmdb_fixture("sle15-bci/Packages.db") {
        let name = "go-rpmdb sle15-bci/Packages.db";
        mutate_and_read(name, &base, 4096, iterations(1000), SEED ^ 1);
    }
    // A written one with more structure: two slot pages, deleted packages, gaps.
    let mut w = NdbWriter::new(2);
    for (i, (hnum, blob)) in expected_bdb_blobs().iter().take(30).enumerate() {
        if i % 4 == 1 {
            w.gap(3);
        }
        let p = w.put(2 + 9 * i, *hnum, blob);
        if i % 5 == 0 {
            w.delete(p);
        }
    }
    mutate_and_read(
        "written Packages.db",
        &w.bytes,
        16,
        iterations(1000),
        SEED ^ 2,
    );
}

/// The same mutations, and the unmutated file, give the same answers every time.
#[test]
fn reading_is_deterministic() {
    let base = fixture("bdb/le-512/Packages");
    let mut r: &[u8] = &base;
    let a = bdb_packages(&mut r).unwrap();
    let mut r: &[u8] = &base;
    assert!(a == bdb_packages(&mut r).unwrap());
}
