//! Corrupt and hostile images: random bytes of real images' metadata flipped (a fixed seed),
//! and targeted damage made with xfs_db (B+tree and index loops, extents outside the
//! filesystem or past the device, absurd sizes and counts). The reader must answer with an
//! error that says where, never panic, hang or allocate without bound.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use imagepipe_xfs::{Error, FileDevice, ReadAt, Xfs};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A device that records which byte ranges were read.
struct Recording {
    inner: FileDevice,
    reads: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl ReadAt for Recording {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.reads.lock().unwrap().push((offset, buf.len() as u64));
        self.inner.read_at(offset, buf)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// A device with some bytes replaced.
struct Patched {
    inner: FileDevice,
    patches: Arc<BTreeMap<u64, u8>>,
}

impl ReadAt for Patched {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)?;
        for (&at, &v) in self.patches.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] = v;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// Reads everything reachable, within bounds of its own (a corrupt directory may hold itself
/// or an ancestor, or a million entries): every listing, every name looked up again, every
/// link, every file's start and a range in it. Returns the errors met.
fn walk(x: &mut Xfs, read_data: bool) -> Vec<Error> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![("/".to_string(), 0usize)];
    let mut budget = 30_000usize;
    while let Some((dir, depth)) = todo.pop() {
        let list = match x.read_dir(&dir) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for (name, m) in list {
            if budget == 0 {
                return errors;
            }
            budget -= 1;
            if name.contains('/') || name == "." || name == ".." {
                continue;
            }
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Err(e) = x.metadata(&path) {
                errors.push(e);
            }
            if m.dir {
                if depth < 40 && seen.insert(m.inode) {
                    todo.push((path, depth + 1));
                }
            } else if m.symlink {
                if let Err(e) = x.read_link(&path) {
                    errors.push(e);
                }
            } else if read_data {
                if let Err(e) = x.read_file(&path, 1 << 20) {
                    errors.push(e);
                }
                let mut buf = vec![0u8; 9000];
                if let Err(e) = x.read_range(&path, m.size / 3, &mut buf) {
                    errors.push(e);
                }
            }
        }
    }
    errors
}

/// A tree with every directory form (the B+tree one in v4, where fewer extents fit the
/// inode), files of a few sizes in several allocation groups, and links.
fn fuzz_tree() -> Entry {
    let mut rng = Rng::new(5);
    let ags = (0..4)
        .map(|d| {
            dir(
                &format!("a{d}"),
                0o755,
                0,
                0,
                [0usize, 100, 5000, 70_000]
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| file(&format!("f{i}"), 0o644, 0, 0, rng.bytes(n)))
                    .collect(),
            )
        })
        .collect();
    dir(
        "",
        0o755,
        0,
        0,
        vec![
            dir("sf", 0o755, 0, 0, many(4, |i| format!("s{i}"))),
            dir("blk", 0o755, 0, 0, many(50, |i| format!("block-{i}"))),
            dir("leaf", 0o755, 0, 0, many(250, |i| format!("leaf-{i}"))),
            dir(
                "node",
                0o755,
                0,
                0,
                many(800, |i| format!("node-entry-{i}")),
            ),
            dir("ags", 0o755, 0, 0, ags),
            link("short", 0, 0, "/sf/s1"),
            link("long", 0, 0, &"x/".repeat(300)),
            file("top", 0o644, 0, 0, rng.bytes(20_000)),
        ],
    )
}

/// `XFS_FUZZ_ITERATIONS` and `XFS_FUZZ_SEED` run longer or other rounds by hand.
fn fuzz(tag: &str, opts: &[&str], iterations: u64, seed: u64) {
    let iterations = std::env::var("XFS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(iterations);
    let seed = std::env::var("XFS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(seed, |s| s * 1000 + seed);
    let img = build(tag, fuzz_tree(), "300m", "agcount=4", opts);
    let forms: BTreeSet<&str> = ["/sf", "/blk", "/leaf", "/node"]
        .iter()
        .map(|p| img.dir_form(p))
        .collect();
    assert!(forms.len() >= 4, "{tag}: forms {forms:?}");
    // The metadata: every range a walk without file data reads.
    let reads = Arc::new(Mutex::new(Vec::new()));
    let dev = Recording {
        inner: FileDevice::open(&img.path).unwrap(),
        reads: reads.clone(),
    };
    let mut x = Xfs::open(Box::new(dev)).unwrap();
    let errors = walk(&mut x, false);
    assert!(
        errors.iter().all(|e| e.to_string().contains("bad header")),
        "{tag}: the clean image reads with errors: {}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let regions: Vec<(u64, u64)> = reads
        .lock()
        .unwrap()
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        regions.len() > 20,
        "{tag}: only {} metadata reads",
        regions.len()
    );
    drop(x);

    let path = img.path.clone();
    let (tx, rx) = mpsc::channel::<(u64, Result<usize, String>)>();
    let worker = std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        for i in 0..iterations {
            let mut patches = BTreeMap::new();
            for _ in 0..1 + rng.below(8) {
                let (start, len) = regions[rng.below(regions.len() as u64) as usize];
                let at = start + rng.below(len);
                let v = if rng.below(2) == 0 {
                    rng.next() as u8
                } else {
                    // Flip one bit of the byte there.
                    let mut b = [0u8];
                    std::os::unix::fs::FileExt::read_exact_at(
                        &std::fs::File::open(&path).unwrap(),
                        &mut b,
                        at,
                    )
                    .unwrap();
                    b[0] ^ (1 << rng.below(8))
                };
                patches.insert(at, v);
            }
            let patches = Arc::new(patches);
            let shown = format!("{:?}", patches.iter().take(8).collect::<Vec<_>>());
            let result = catch_unwind(AssertUnwindSafe(|| {
                let dev = Patched {
                    inner: FileDevice::open(&path).unwrap(),
                    patches: patches.clone(),
                };
                // Half the rounds without v5 checksums, so that the damage reaches the
                // structural checks behind them.
                match Xfs::open_with(Box::new(dev), i % 2 == 0) {
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        1
                    }
                    Ok(mut x) => {
                        let errors = walk(&mut x, true);
                        for e in &errors {
                            let s = e.to_string();
                            assert!(s.starts_with("XFS") || s.starts_with("not an XFS"), "{s}");
                            assert!(!matches!(e, Error::Io { .. }), "{s}");
                        }
                        assert!(x.cached_bytes() < 8 << 20);
                        errors.len()
                    }
                }
            }));
            let sent = result.map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("panicked with patches {shown}: {msg}")
            });
            if tx.send((i, sent)).is_err() {
                return;
            }
        }
    });
    let mut errors_seen = 0;
    for i in 0..iterations {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((j, Ok(n))) => {
                assert_eq!(i, j);
                errors_seen += n;
            }
            Ok((j, Err(msg))) => panic!("{tag}: iteration {j} (seed {seed}): {msg}"),
            Err(_) => panic!("{tag}: iteration {i} (seed {seed}) did not finish in 60 s: a hang"),
        }
    }
    worker.join().unwrap();
    // The damage was seen, not silently passed over.
    assert!(
        errors_seen > iterations as usize / 4,
        "{tag}: only {errors_seen} errors"
    );
}

#[test]
fn fuzz_v5_metadata_bytes() {
    fuzz("fuzz-v5", &[], 400, 1);
}

#[test]
fn fuzz_v4_metadata_bytes() {
    fuzz("fuzz-v4", &["-m", "crc=0", "-n", "ftype=0"], 400, 2);
}

#[test]
fn fuzz_v4_small_blocks_metadata_bytes() {
    fuzz("fuzz-v4-512", &["-m", "crc=0", "-b", "size=512"], 300, 3);
}

// ---- targeted damage -------------------------------------------------------------------

fn targeted_image(tag: &str, opts: &[&str]) -> Image {
    let mut rng = Rng::new(8);
    let root = dir(
        "",
        0o755,
        0,
        0,
        vec![
            dir("sf", 0o755, 0, 0, many(4, |i| format!("s{i}"))),
            dir("blk", 0o755, 0, 0, many(50, |i| format!("block-{i}"))),
            dir(
                "node",
                0o755,
                0,
                0,
                many(1200, |i| format!("node-entry-{i}")),
            ),
            dir(
                "bt",
                0o755,
                0,
                0,
                many(3500, |i| format!("a-rather-long-file-name-number-{i:05}")),
            ),
            dir(
                "ags",
                0o755,
                0,
                0,
                (0..4)
                    .map(|d| {
                        dir(
                            &format!("a{d}"),
                            0o755,
                            0,
                            0,
                            vec![file("f", 0o644, 0, 0, rng.bytes(3 << 20))],
                        )
                    })
                    .collect(),
            ),
            file("f", 0o644, 0, 0, rng.bytes(1 << 20)),
            link("l", 0, 0, "target"),
        ],
    );
    build(tag, root, "300m", "agcount=4", opts)
}

fn open(p: &Path) -> Result<Xfs, Error> {
    Xfs::open(Box::new(FileDevice::open(p).unwrap()))
}

/// The error must be about the image, name the inode and the path asked for.
fn bad(r: Result<impl std::fmt::Debug, Error>, path: &str) -> Error {
    let e = r.expect_err(path);
    let s = e.to_string();
    assert!(e.is_bad_image(), "{path}: {s}");
    assert!(s.contains(path), "{path}: {s}");
    assert!(e.inode().is_some() && s.contains("inode"), "{path}: {s}");
    e
}

#[test]
fn bmap_btree_level_lie() {
    // The root claims one more level than there is: the leaf met where a node belongs is
    // refused (the same check stops a pointer back up the tree: levels must fall by one).
    let img = targeted_image("t-bmbt-level", &[]);
    assert_eq!(img.format("/bt"), 3);
    img.db_write(&["path /bt", "write u3.bmbt.level 2"]);
    let mut x = open(&img.path).unwrap();
    let e = bad(x.read_dir("/bt"), "/bt");
    assert!(e.to_string().contains("level"), "{e}");
    bad(
        x.metadata("/bt/a-rather-long-file-name-number-00001"),
        "/bt",
    );
    assert!(x.read_file("/f", 2 << 20).unwrap().is_some());
}

#[test]
fn bmap_btree_pointer_outside() {
    let img = targeted_image("t-bmbt-ptr", &[]);
    let agcount = img.sb_field("agcount");
    let agblklog = img.sb_field("agblklog");
    img.db_write(&[
        "path /bt",
        &format!("write u3.bmbt.ptrs[1] {}", (agcount << agblklog) + 3),
    ]);
    let mut x = open(&img.path).unwrap();
    let e = bad(x.read_dir("/bt"), "/bt");
    assert!(e.to_string().contains("outside the filesystem"), "{e}");
}

#[test]
fn da_node_loops_to_itself() {
    let img = targeted_image("t-da-loop", &[]);
    assert_eq!(img.dir_form("/node"), "node");
    let leafblk = (1u64 << 35) >> img.sb_field("blocklog");
    let out = img.db(&[
        "path /node",
        &format!("dblock {leafblk}"),
        "print nhdr.count",
    ]);
    let count: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let mut cmds = vec!["path /node".to_string(), format!("dblock {leafblk}")];
    for i in 0..count {
        cmds.push(format!("write nbtree[{i}].before {leafblk}"));
    }
    img.db_write(&cmds.iter().map(String::as_str).collect::<Vec<_>>());
    let mut x = open(&img.path).unwrap();
    // Listing reads the data blocks, not the index: still whole.
    assert_eq!(x.read_dir("/node").unwrap().unwrap().len(), 1200);
    let e = bad(x.metadata("/node/node-entry-7"), "/node/node-entry-7");
    assert!(e.to_string().contains("loop"), "{e}");
}

#[test]
fn da_node_points_at_data() {
    let img = targeted_image("t-da-data", &[]);
    let leafblk = (1u64 << 35) >> img.sb_field("blocklog");
    let out = img.db(&[
        "path /node",
        &format!("dblock {leafblk}"),
        "print nhdr.count",
    ]);
    let count: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let mut cmds = vec!["path /node".to_string(), format!("dblock {leafblk}")];
    for i in 0..count {
        cmds.push(format!("write nbtree[{i}].before 0"));
    }
    img.db_write(&cmds.iter().map(String::as_str).collect::<Vec<_>>());
    let mut x = open(&img.path).unwrap();
    bad(x.metadata("/node/node-entry-7"), "/node/node-entry-7");
}

#[test]
fn extent_outside_the_filesystem() {
    let img = targeted_image("t-extent", &[]);
    let agcount = img.sb_field("agcount");
    let agblklog = img.sb_field("agblklog");
    let agblocks = img.sb_field("agblocks");
    img.db_write(&[
        "path /f",
        &format!("write u3.bmx[0].startblock {}", agcount << agblklog),
    ]);
    // In an existing AG but running past its end.
    img.db_write(&[
        "path /ags/a1/f",
        &format!(
            "write u3.bmx[0].startblock {}",
            (1 << agblklog) + agblocks - 10
        ),
    ]);
    let mut x = open(&img.path).unwrap();
    let e = bad(x.read_file("/f", 2 << 20), "/f");
    assert!(e.to_string().contains("outside the filesystem"), "{e}");
    bad(x.read_range("/ags/a1/f", 0, &mut [0u8; 10]), "/ags/a1/f");
    assert_eq!(x.metadata("/f").unwrap().unwrap().size, 1 << 20);
}

#[test]
fn device_shorter_than_the_filesystem() {
    let img = targeted_image("t-truncated", &[]);
    let agblklog = img.sb_field("agblklog");
    let agblocks = img.sb_field("agblocks");
    let bs = img.sb_field("blocksize");
    // Cut the device inside the last allocation group, before the data there.
    let map = img.bmap("/ags/a3/f");
    let ag3 = map
        .iter()
        .find(|e| e.1 >> agblklog == 3)
        .map(|e| e.1 & ((1 << agblklog) - 1));
    let cut = match ag3 {
        Some(agbno) => (3 * agblocks + agbno) * bs,
        None => 3 * agblocks * bs + 4096,
    };
    let data_ag = map[0].1 >> agblklog;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img.path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut x = open(&img.path).unwrap();
    if data_ag == 3 {
        let e = bad(x.read_file("/ags/a3/f", 4 << 20), "/ags/a3/f");
        assert!(matches!(e, Error::PastDevice { .. }), "{e}");
    }
    // What lies before the cut still reads.
    assert_eq!(x.read_file("/f", 2 << 20).unwrap().unwrap().len(), 1 << 20);
}

#[test]
fn absurd_sizes() {
    let img = targeted_image("t-sizes", &[]);
    img.db_write(&["path /f", "write core.size 9223372036854775807"]);
    img.db_write(&["path /l", "write core.size 100000"]);
    let mut x = open(&img.path).unwrap();
    assert_eq!(x.metadata("/f").unwrap().unwrap().size, i64::MAX as u64);
    assert!(matches!(
        x.read_file("/f", 256 << 20),
        Err(Error::TooLarge { .. })
    ));
    // Far past the data: a hole, answered at once.
    let mut buf = vec![1u8; 1 << 20];
    assert_eq!(x.read_range("/f", 1 << 62, &mut buf).unwrap(), 1 << 20);
    assert!(buf.iter().all(|&b| b == 0));
    let e = bad(x.read_link("/l"), "/l");
    assert!(e.to_string().contains("100000"), "{e}");
}

#[test]
fn absurd_counts() {
    let img = targeted_image("t-counts", &[]);
    img.db_write(&["path /blk", "write core.nextents 100000"]);
    img.db_write(&["path /sf", "write u3.sfdir3.hdr.count 255"]);
    img.db_write(&["path /f", "write core.nextents 4000000000"]);
    let mut x = open(&img.path).unwrap();
    bad(x.read_dir("/blk"), "/blk");
    bad(x.read_dir("/sf"), "/sf");
    bad(x.metadata("/sf/s1"), "/sf");
    bad(x.read_file("/f", 2 << 20), "/f");
}

#[test]
fn entry_points_outside() {
    let img = targeted_image("t-entry", &[]);
    img.db_write(&["path /sf", "write u3.sfdir3.list[1].inumber.i4 4294967040"]);
    let mut x = open(&img.path).unwrap();
    let e = bad(x.read_dir("/sf"), "/sf/s1");
    assert!(e.to_string().contains("outside the filesystem"), "{e}");
    assert!(x.metadata("/sf/s0").unwrap().is_some());
}

#[test]
fn directory_loop_is_the_callers_walk() {
    // An entry that names an ancestor: each call still ends; a walk must track inodes.
    let img = targeted_image("t-dirloop", &[]);
    let root = img.sb_field("rootino");
    img.db_write(&[
        "path /sf",
        &format!("write u3.sfdir3.list[0].inumber.i4 {root}"),
    ]);
    let mut x = open(&img.path).unwrap();
    let list = x.read_dir("/sf/s0/sf/s0/sf").unwrap().unwrap();
    assert_eq!(list.len(), 4);
    let mut errors = walk(&mut x, true);
    errors.retain(|e| !matches!(e, Error::TooLarge { .. }));
    assert!(
        errors.is_empty(),
        "{:?}",
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn bad_superblocks() {
    use std::os::unix::fs::FileExt;
    // xfs_db will not write a superblock that fails its checks, so the bytes are patched.
    let cases: [(&str, u64, &[u8]); 11] = [
        ("magic", 0, b"XFSC"),
        ("blocksize", 4, &3000u32.to_be_bytes()),
        ("dblocks", 8, &99_999_999_999u64.to_be_bytes()),
        ("rootino", 56, &0u64.to_be_bytes()),
        ("agblocks", 84, &0u32.to_be_bytes()),
        ("agcount", 88, &0u32.to_be_bytes()),
        ("versionnum", 100, &3u16.to_be_bytes()),
        ("inodesize", 104, &300u16.to_be_bytes()),
        ("blocklog", 120, &[9]),
        ("inprogress", 126, &[1]),
        ("dirblklog", 192, &[9]),
    ];
    let img = build("t-sb", dir("", 0o755, 0, 0, vec![]), "300m", "", &[]);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img.path)
        .unwrap();
    let mut clean = vec![0u8; 512];
    f.read_exact_at(&mut clean, 0).unwrap();
    assert!(open(&img.path).is_ok());
    for (field, at, bytes) in cases {
        f.write_all_at(&clean, 0).unwrap();
        f.write_all_at(bytes, at).unwrap();
        let e = open(&img.path).expect_err(field);
        assert!(matches!(e, Error::NotXfs(_)), "{field}: {e}");
    }
    // A v5 feature this reader does not know is refused as unsupported, not misread.
    f.write_all_at(&clean, 0).unwrap();
    let mut incompat = [0u8; 4];
    f.read_exact_at(&mut incompat, 216).unwrap();
    let v = u32::from_be_bytes(incompat) | 1 << 20;
    f.write_all_at(&v.to_be_bytes(), 216).unwrap();
    let e = open(&img.path).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("0x100000"),
        "{e}"
    );
    // A root inode that is not a directory.
    f.write_all_at(&clean, 0).unwrap();
    let mut short = vec![0u8; 100];
    short[..4].copy_from_slice(b"XFSB");
    assert!(!Xfs::probe(&short));
    assert!(!Xfs::probe(&[]));
    assert!(Xfs::probe(&clean));
}
