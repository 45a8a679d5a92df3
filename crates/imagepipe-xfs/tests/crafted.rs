//! Multi-extent files, holes and unwritten extents made without mounting: mkfs.xfs writes a
//! file as one extent, then xfs_db (expert mode) rewrites its extent list to map pieces of
//! that extent out of order, with holes between them and an unwritten (preallocated) piece.
//! The expected content follows from the pieces.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// (file block, block of the original extent, blocks, unwritten)
const PIECES: [(u64, u64, u64, u64); 6] = [
    (0, 10, 3, 0),
    (3, 0, 5, 0),
    (10, 20, 4, 0), // blocks 8 and 9 are a hole
    (14, 30, 2, 1), // unwritten: reads as zeros though the blocks hold data
    (20, 40, 10, 0),
    (40, 5, 1, 0),
];

fn crafted(tag: &str, opts: &[&str]) {
    let mut rng = Rng::new(42);
    let probe = build(
        &format!("{tag}-probe"),
        dir("", 0o755, 0, 0, vec![]),
        "300m",
        "",
        opts,
    );
    let bs = probe.sb_field("blocksize") as usize;
    drop(probe);
    let data = rng.bytes(64 * bs);
    let img = build(
        tag,
        dir(
            "",
            0o755,
            0,
            0,
            vec![
                file("frag", 0o640, 10, 20, data.clone()),
                file("plain", 0o644, 0, 0, rng.bytes(3 * bs + 1)),
            ],
        ),
        "300m",
        "",
        opts,
    );
    let map = img.bmap("/frag");
    assert_eq!(map.len(), 1, "{map:?}");
    let (_, start, count, _) = map[0];
    assert_eq!(count, 64);
    let bmx = if img.open().is_v5() {
        "u3.bmx"
    } else {
        "u.bmx"
    };
    // Past the last piece: a hole up to a size that ends mid-block.
    let size = 50 * bs as u64 + 7;
    let mut cmds = vec![
        "path /frag".to_string(),
        format!("write core.nextents {}", PIECES.len()),
        format!("write core.size {size}"),
    ];
    for (i, (off, src, len, unwritten)) in PIECES.iter().enumerate() {
        cmds.push(format!("write {bmx}[{i}].startoff {off}"));
        cmds.push(format!("write {bmx}[{i}].startblock {}", start + src));
        cmds.push(format!("write {bmx}[{i}].blockcount {len}"));
        cmds.push(format!("write {bmx}[{i}].extentflag {unwritten}"));
    }
    img.db_write(&cmds.iter().map(String::as_str).collect::<Vec<_>>());
    let got_map = img.bmap("/frag");
    let want_map: Vec<_> = PIECES
        .iter()
        .map(|&(o, s, l, u)| (o, start + s, l, u))
        .collect();
    assert_eq!(got_map, want_map, "xfs_db did not write the pieces");

    let mut want = vec![0u8; size as usize];
    for &(off, src, len, unwritten) in &PIECES {
        if unwritten == 0 {
            let to = (off as usize * bs).min(want.len());
            let end = ((off + len) as usize * bs).min(want.len());
            want[to..end].copy_from_slice(&data[src as usize * bs..src as usize * bs + (end - to)]);
        }
    }
    let mut x = img.open();
    let m = x.metadata("/frag").unwrap().unwrap();
    assert_eq!((m.size, m.mode, m.uid, m.gid), (size, 0o640, 10, 20));
    assert!(x.read_file("/frag", u64::MAX).unwrap().unwrap() == want);
    for _ in 0..300 {
        let off = rng.below(size + 100);
        let len = rng.below(5 * bs as u64) as usize;
        let mut buf = vec![0x55u8; len];
        let n = x.read_range("/frag", off, &mut buf).unwrap();
        let lo = (off as usize).min(want.len());
        let hi = (off as usize + len).min(want.len());
        assert_eq!(n, hi - lo);
        assert!(buf[..n] == want[lo..hi], "range {off}+{len}");
    }
    // The other file is untouched.
    let Kind::Dir(top) = &img.root.kind else {
        unreachable!()
    };
    let Kind::File(plain) = &top[1].kind else {
        unreachable!()
    };
    assert!(x.read_file("/plain", u64::MAX).unwrap().unwrap() == *plain);
}

#[test]
fn v5_pieces_holes_unwritten() {
    crafted("crafted-v5", &[]);
}

#[test]
fn v4_pieces_holes_unwritten() {
    crafted("crafted-v4", &["-m", "crc=0", "-n", "ftype=0"]);
}

#[test]
fn v4_512_byte_blocks_pieces() {
    crafted("crafted-v4-512", &["-m", "crc=0", "-b", "size=512"]);
}

#[test]
fn v5_1k_blocks_pieces() {
    crafted("crafted-v5-1k", &["-b", "size=1024"]);
}
