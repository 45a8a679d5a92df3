//! The NDB reader against go-rpmdb's SUSE `Packages.db`, against files written by the test
//! writer (imagepipe-testkit's ndb_writer.rs, after rpm's rpmpkg.c) from real headers, and against
//! damaged copies of both.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use imagepipe_rpmdb::{Error, ndb_packages};
use imagepipe_testkit::ndb_writer::{BLK_SIZE, NdbWriter, PAGE_SIZE, Placed, adler32};
use support::{Header, expected_bdb_blobs, go_rpmdb_fixture};

fn read(bytes: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, Error> {
    let mut r: &[u8] = bytes;
    ndb_packages(&mut r)
}

/// go-rpmdb `pkg/rpmdb_testcase_test.go`, `SLE15WithNDB` (from `rpm -qa` in the
/// registry.suse.com/bci image the file was taken from): name, version, release, arch; none
/// has an epoch. In their order, which is the database's.
const SLE15_BCI: [(&str, &str, &str, &str); 35] = [
    ("system-user-root", "20190513", "3.3.1", "noarch"),
    ("filesystem", "15.0", "11.3.2", "x86_64"),
    ("glibc", "2.31", "9.3.2", "x86_64"),
    ("libpcre1", "8.45", "20.10.1", "x86_64"),
    ("libgmp10", "6.1.2", "4.6.1", "x86_64"),
    ("libgcc_s1", "11.2.1+git610", "1.3.9", "x86_64"),
    ("libcap2", "2.26", "4.6.1", "x86_64"),
    ("libstdc++6", "11.2.1+git610", "1.3.9", "x86_64"),
    ("libncurses6", "6.1", "5.9.1", "x86_64"),
    ("terminfo-base", "6.1", "5.9.1", "x86_64"),
    ("libattr1", "2.4.47", "2.19", "x86_64"),
    ("libselinux1", "3.0", "1.31", "x86_64"),
    ("libreadline7", "7.0", "19.6.1", "x86_64"),
    ("bash", "4.4", "19.6.1", "x86_64"),
    ("libacl1", "2.2.52", "4.3.1", "x86_64"),
    ("coreutils", "8.32", "3.2.1", "x86_64"),
    ("sles-release", "15.3", "55.4.1", "x86_64"),
    ("ca-certificates-mozilla-prebuilt", "2.44", "21.1", "noarch"),
    ("libgpg-error0", "1.29", "1.8", "x86_64"),
    ("libpopt0", "1.16", "3.22", "x86_64"),
    ("file-magic", "5.32", "7.14.1", "noarch"),
    ("libbz2-1", "1.0.6", "5.11.1", "x86_64"),
    ("liblua5_3-5", "5.3.6", "3.6.1", "x86_64"),
    ("liblzma5", "5.2.3", "4.3.1", "x86_64"),
    ("libz1", "1.2.11", "3.21.1", "x86_64"),
    ("libzstd1", "1.4.4", "1.6.1", "x86_64"),
    ("libmagic1", "5.32", "7.14.1", "x86_64"),
    ("libdw1", "0.168", "4.5.3", "x86_64"),
    ("libebl-plugins", "0.168", "4.5.3", "x86_64"),
    ("libelf1", "0.168", "4.5.3", "x86_64"),
    ("libcrypt1", "4.4.15", "2.51", "x86_64"),
    ("perl-base", "5.26.1", "15.87", "x86_64"),
    ("libgcrypt20", "1.8.2", "8.39.1", "x86_64"),
    ("rpm-config-SUSE", "1", "5.6.1", "noarch"),
    ("rpm-ndb", "4.14.3", "40.1", "x86_64"),
];

#[test]
fn go_rpmdb_sle15_bci() {
    let Some(bytes) = go_rpmdb_fixture("sle15-bci/Packages.db") else {
        return;
    };
    let got = read(&bytes).unwrap();
    let headers: Vec<Header> = got.iter().map(|(_, b)| Header::parse(b).unwrap()).collect();
    let names: Vec<(&str, &str, &str, &str)> = headers
        .iter()
        .map(|h| (&*h.name, &*h.version, &*h.release, &*h.arch))
        .collect();
    assert_eq!(names, SLE15_BCI);
    assert!(headers.iter().all(|h| h.epoch.is_none()));
    // Keys in install order; the gaps are packages updated or removed in the image build.
    let keys: Vec<u32> = got.iter().map(|(k, _)| *k).collect();
    let mut want: Vec<u32> = (1..=34).filter(|k| *k != 19).collect();
    want.extend([39, 40]);
    assert_eq!(keys, want);
}

/// go-rpmdb's reading of the same file (`pkg/ndb/ndb.go`, `Read`): slots in file order,
/// pkgidx 0 = empty, the blob head at `BlkOffset * 16`, `BlobLen` bytes after it; no tail or
/// checksum checks. Written out here independently, to compare semantics.
fn go_semantics(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let slotnpages = le(12) as usize;
    let mut out = Vec::new();
    for slot in (32..slotnpages * PAGE_SIZE).step_by(16) {
        assert_eq!(&bytes[slot..slot + 4], b"Slot");
        let (pkgidx, blkoff) = (le(slot + 4), le(slot + 8) as usize);
        if pkgidx == 0 {
            continue;
        }
        let head = blkoff * BLK_SIZE;
        assert_eq!(&bytes[head..head + 4], b"BlbS");
        assert_eq!(le(head + 4), pkgidx);
        let len = le(head + 12) as usize;
        out.push((pkgidx, bytes[head + 16..head + 16 + len].to_vec()));
    }
    out
}

#[test]
fn agrees_with_go_rpmdb_semantics() {
    let Some(bytes) = go_rpmdb_fixture("sle15-bci/Packages.db") else {
        return;
    };
    let mut go = go_semantics(&bytes);
    go.sort_by_key(|(k, _)| *k);
    assert_eq!(read(&bytes).unwrap(), go);
}

/// A database like a long-lived one: three slot pages, packages in slots out of index
/// order, blobs out of slot order, deleted packages (free slots, zeroed blocks), and one
/// package written twice (rpm rewrites a header in place of its old blob: the old one is
/// zeroed, the slot reused).
type Headers = Vec<(u32, Vec<u8>)>;

fn written() -> (NdbWriter, Headers, Vec<Placed>) {
    let blobs = expected_bdb_blobs();
    let mut w = NdbWriter::new(3);
    let mut placed = Vec::new();
    let mut want = Vec::new();
    // Slot numbers spread over the three pages, in reverse order of pkgidx.
    let n = blobs.len();
    for (i, (hnum, blob)) in blobs.iter().enumerate() {
        let slotno = 2 + (n - 1 - i) * 8;
        if i % 10 == 3 {
            w.gap(5); // a deleted blob's zeroed blocks
        }
        placed.push(w.put(slotno, *hnum, blob));
        want.push((*hnum, blob.clone()));
    }
    // Delete every seventh package.
    for i in (0..n).step_by(7) {
        w.delete(placed[i]);
    }
    let want: Vec<_> = want
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, p)| p)
        .collect();
    (w, want, placed)
}

#[test]
fn written_databases_round_trip() {
    let (w, want, _) = written();
    assert!(w.bytes.len() > 3 * PAGE_SIZE);
    let got = read(&w.bytes).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want);
    // go-rpmdb's reading agrees.
    let mut go = go_semantics(&w.bytes);
    go.sort_by_key(|(k, _)| *k);
    assert!(go == want);
    // An empty database (what rpmpkgInit writes), and one with a single small package.
    assert_eq!(read(&NdbWriter::new(1).bytes).unwrap(), vec![]);
    let mut one = NdbWriter::new(1);
    one.put(2, 7, b"x");
    assert_eq!(read(&one.bytes).unwrap(), vec![(7, b"x".to_vec())]);
}

#[test]
fn checksums_are_verified() {
    let (w, _, placed) = written();
    // Any byte of a blob, its padding or its head changed: the Adler-32 no longer matches
    // (or the head no longer does).
    let p = placed[1];
    let start = p.blkoff as usize * BLK_SIZE;
    for at in [
        start + 8,
        start + 16,
        start + 100,
        start + p.blkcnt as usize * BLK_SIZE - 13,
    ] {
        let mut b = w.bytes.clone();
        b[at] ^= 0x40;
        let e = read(&b).unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt(m) if m.contains("Adler-32")),
            "{at}: {e}"
        );
    }
    // The stored sum is the one rpmpkg.c's update_adler32 gives.
    let end = start + p.blkcnt as usize * BLK_SIZE;
    let stored = u32::from_le_bytes(w.bytes[end - 12..end - 8].try_into().unwrap());
    assert_eq!(stored, adler32(&w.bytes[start..end - 12]));
}

fn corrupt(bytes: &[u8], what: &str) -> String {
    match read(bytes) {
        Err(Error::Corrupt(m)) => m,
        other => panic!("{what}: {:?}", other.map(|v| v.len())),
    }
}

#[test]
fn damaged_databases_are_refused() {
    let (w, _, placed) = written();
    let p = placed[1];
    let start = p.blkoff as usize * BLK_SIZE;
    let end = start + p.blkcnt as usize * BLK_SIZE;
    let edit = |f: &dyn Fn(&mut NdbWriter)| {
        let mut w = w.clone();
        f(&mut w);
        w.bytes
    };
    let set = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());

    // Header.
    assert!(matches!(
        read(&edit(&|w| w.bytes[0] = b'X')),
        Err(Error::NotThisFormat(_))
    ));
    assert!(matches!(
        read(&edit(&|w| set(&mut w.bytes, 4, 1))),
        Err(Error::Unsupported(_))
    ));
    for pages in [0, 1_000_000, u32::MAX] {
        corrupt(&edit(&|w| set(&mut w.bytes, 12, pages)), "slotnpages");
    }
    // The file must be whole blocks.
    corrupt(&edit(&|w| w.bytes.push(0)), "partial block");
    // Slots.
    let slot = p.slotno * 16;
    corrupt(&edit(&|w| w.bytes[slot] = b's'), "slot magic");
    corrupt(
        &edit(&|w| set(&mut w.bytes, slot + 4, 0)),
        "pkgidx 0 with a blob",
    );
    corrupt(&edit(&|w| set(&mut w.bytes, slot + 12, 0)), "blkcnt 0");
    corrupt(
        &edit(&|w| set(&mut w.bytes, slot + 8, 10)),
        "blob in the slot area",
    );
    corrupt(
        &edit(&|w| set(&mut w.bytes, slot + 8, u32::MAX - 1)),
        "blob past the end",
    );
    corrupt(
        &edit(&|w| set(&mut w.bytes, slot + 12, u32::MAX)),
        "blkcnt huge",
    );
    corrupt(
        &edit(&|w| set(&mut w.bytes, slot + 12, p.blkcnt + 1)),
        "blkcnt too big",
    );
    // Two slots for one package; two packages on one blob.
    let other = placed[2].slotno * 16;
    corrupt(
        &edit(&|w| set(&mut w.bytes, other + 4, 2)),
        "duplicate pkgidx",
    );
    let m = corrupt(
        &edit(&|w| {
            set(&mut w.bytes, other + 8, p.blkoff);
            set(&mut w.bytes, other + 12, p.blkcnt);
        }),
        "shared blob",
    );
    assert!(m.contains("overlaps"), "{m}");
    // Blob head and tail.
    corrupt(&edit(&|w| w.bytes[start] = b'b'), "head magic");
    corrupt(&edit(&|w| set(&mut w.bytes, start + 4, 999)), "head pkgidx");
    for len in [0, 1, u32::MAX, 0x2000_0000] {
        corrupt(
            &edit(&|w| set(&mut w.bytes, start + 12, len)),
            "head bloblen",
        );
    }
    corrupt(&edit(&|w| w.bytes[end - 1] = b'e'), "tail magic");
    corrupt(&edit(&|w| set(&mut w.bytes, end - 8, 5)), "tail bloblen");
    // Truncated anywhere before the end of the last live blob (the last package was deleted:
    // the file ends in zeroed blocks, which rpm would have cut off).
    let live_end = placed
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, p)| (p.blkoff + p.blkcnt) as usize * BLK_SIZE)
        .max()
        .unwrap();
    assert!(read(&w.bytes[..live_end]).is_ok());
    for len in (0..live_end).step_by(997) {
        let len = len - len % 16;
        assert!(read(&w.bytes[..len]).is_err(), "truncated to {len}");
    }
}
