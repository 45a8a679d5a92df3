//! Files the Linux kernel itself writes: a v5 image from mkfs.xfs is loop-mounted, written
//! through the kernel (B+tree-mapped files with thousands of extents, punched holes,
//! preallocated unwritten extents, a sparse file, a file spread over allocation groups,
//! directories after deletions, remote symbolic links with their v5 headers, hard links),
//! unmounted, and read back with this reader.
//!
//! This needs root and loop devices. Where the machine has none, the test fails and says
//! so; `XFS_TEST_NO_MOUNT=1` turns that into a printed skip (this kernel has no v4 support,
//! so only v5 is written here; v4 is covered by the mkfs-made images).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Mount {
    fn new(img: &Path, at: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(img)
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).into_owned();
                skip_or_fail(&why);
                None
            }
            Err(e) => {
                skip_or_fail(&e.to_string());
                None
            }
        }
    }
}

fn skip_or_fail(why: &str) {
    if std::env::var_os("XFS_TEST_NO_MOUNT").is_some() {
        eprintln!("SKIPPED: kernel-written images need a loop mount: {why}");
    } else {
        panic!(
            "cannot loop-mount an XFS image ({why}); these tests need root and loop devices. \
             Set XFS_TEST_NO_MOUNT=1 to skip them explicitly."
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `e` under `at` through the mounted filesystem.
fn materialize(e: &Entry, at: &Path) {
    match &e.kind {
        Kind::File(data) => std::fs::write(at, data).unwrap(),
        Kind::Dir(children) => {
            std::fs::create_dir_all(at).unwrap();
            for c in children {
                materialize(c, &at.join(String::from_utf8(c.name.clone()).unwrap()));
            }
        }
        Kind::Link(t) | Kind::BadLink(t) => {
            symlink(String::from_utf8(t.clone()).unwrap(), at).unwrap()
        }
    }
    std::os::unix::fs::lchown(at, Some(e.uid), Some(e.gid)).unwrap();
    if !matches!(e.kind, Kind::Link(_)) {
        // chown clears set-ID bits, so the mode comes after it.
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(e.mode)).unwrap();
    }
}

fn xfs_io(file: &Path, cmds: &[String]) {
    let mut c = Command::new("xfs_io");
    for x in cmds {
        c.arg("-c").arg(x);
    }
    run(c.arg(file));
}

fn kernel_written(tag: &str, opts: &[&str], punched_blocks: usize, bmbt_level: u64) {
    let mut rng = Rng::new(99);
    let img = build(tag, dir("", 0o755, 0, 0, vec![]), "300m", "agcount=4", opts);
    let bs = img.sb_field("blocksize") as usize;
    let mnt_dir = img._tmp.0.join("mnt");
    let Some(mnt) = Mount::new(&img.path, &mnt_dir) else {
        return;
    };
    let m = mnt.0.clone();

    // The tree compared whole afterwards.
    let long = |n: usize| {
        let mut s = String::new();
        while s.len() < n {
            s.push_str("../kernel/");
        }
        s.truncate(n);
        s
    };
    let mut punched = rng.bytes(punched_blocks * bs);
    let names = |i: usize| format!("churn-entry-{i:05}");
    let mut churn = many(4000, names);
    let tree = dir(
        "tree",
        0o1777, // sticky, which protofiles cannot express
        0,
        0,
        vec![
            file("punched", 0o644, 1, 1, punched.clone()),
            file("small", 0o600, 2, 3, b"small\n".to_vec()),
            dir("churn", 0o755, 0, 0, churn.clone()),
            dir("wide", 0o750, 9, 9, many(20_000, |i| format!("w{i}"))),
            link("short", 0, 0, "small"),
            link("remote", 4, 4, &long(500)),
            link("max", 0, 0, &long(1023)), // XFS_SYMLINK_MAXLEN less one
            dir("empty", 0o700, 0, 0, vec![]),
        ],
    );
    materialize(&tree, &m.join("tree"));

    // Every other block of "punched" becomes a hole: thousands of extents, a B+tree map.
    let p = m.join("tree/punched");
    let cmds: Vec<String> = (0..punched_blocks)
        .step_by(2)
        .map(|b| format!("fpunch {} {bs}", b * bs))
        .collect();
    xfs_io(&p, &cmds);
    for b in (0..punched_blocks).step_by(2) {
        punched[b * bs..(b + 1) * bs].fill(0);
    }
    // Deletions leave stale leaf entries and free space in the data blocks.
    for i in (0..4000).step_by(3) {
        std::fs::remove_file(m.join("tree/churn").join(names(i))).unwrap();
    }
    churn.retain(|e| {
        let i: usize = std::str::from_utf8(&e.name[12..]).unwrap().parse().unwrap();
        !i.is_multiple_of(3)
    });
    // Preallocated, partly written: unwritten extents around a written one.
    let pre = m.join("prealloc");
    std::fs::File::create(&pre).unwrap();
    xfs_io(
        &pre,
        &[
            "falloc 0 1m".into(),
            "pwrite -S 0x5a 100k 50k".into(),
            "fsync".into(),
        ],
    );
    // Sparse: 1 GiB apart.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(m.join("sparse")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", 1 << 30).unwrap();
    }
    // Larger than an allocation group (75 MB here), so it spans several.
    let big = rng.bytes(100 << 20);
    std::fs::write(m.join("big"), &big).unwrap();
    // Two files written alternately, synced at each step.
    let (mut ia, mut ib) = (Vec::new(), Vec::new());
    {
        use std::io::Write;
        let mut fa = std::fs::File::create(m.join("inter-a")).unwrap();
        let mut fb = std::fs::File::create(m.join("inter-b")).unwrap();
        for _ in 0..64 {
            let (a, b) = (rng.bytes(bs), rng.bytes(bs));
            fa.write_all(&a).unwrap();
            fa.sync_data().unwrap();
            fb.write_all(&b).unwrap();
            fb.sync_data().unwrap();
            ia.extend(a);
            ib.extend(b);
        }
    }
    std::fs::hard_link(m.join("tree/small"), m.join("hardlink")).unwrap();
    chown(m.join("hardlink"), Some(2), Some(3)).unwrap();
    drop(mnt);

    // What the kernel made.
    assert_eq!(img.format("/tree/punched"), 3);
    assert_eq!(img.field("/tree/punched", "u3.bmbt.level"), bmbt_level);
    let agblklog = img.sb_field("agblklog");
    let ags: std::collections::BTreeSet<u64> =
        img.bmap("/big").iter().map(|e| e.1 >> agblklog).collect();
    assert!(ags.len() >= 2, "big lies in AGs {ags:?}");
    assert!(
        img.bmap("/prealloc").iter().any(|e| e.3 == 1),
        "no unwritten extent"
    );
    let wide = img.dir_form("/tree/wide");
    assert!(wide == "btree" || wide == "node", "{wide}");

    // Attributes (as SELinux labels are) shrink the data fork of a B+tree-mapped file and of
    // directories after the fact; xfs_db moves their roots as the kernel would.
    for path in [
        "/tree/punched",
        "/tree/wide",
        "/tree/churn",
        "/big",
        "/tree/remote",
    ] {
        img.db_write(&[&format!("path {path}"), "attr_set -u -v 64 selinux"]);
        assert_ne!(img.field(path, "core.forkoff"), 0, "{path}");
    }
    assert_eq!(img.format("/tree/punched"), 3);

    // Everything under /tree, compared whole.
    let mut expected = tree.clone();
    let Kind::Dir(children) = &mut expected.kind else {
        unreachable!()
    };
    children[0].kind = Kind::File(punched);
    children[2].kind = Kind::Dir(churn);
    let mut x = img.open();
    let mut c = Counts::default();
    verify(&mut x, &expected, "/tree", &mut rng, &mut c);
    assert_eq!((c.files, c.links), (1 + 1 + 2666 + 20_000, 3), "{c:?}");

    let mut want = vec![0u8; 1 << 20];
    want[100 << 10..150 << 10].fill(0x5a);
    assert!(x.read_file("/prealloc", 1 << 20).unwrap().unwrap() == want);
    let sparse = x.metadata("/sparse").unwrap().unwrap();
    assert_eq!(sparse.size, (1 << 30) + 4);
    assert!(matches!(
        x.read_file("/sparse", 1 << 20),
        Err(imagepipe_xfs::Error::TooLarge { .. })
    ));
    let mut buf = [1u8; 8];
    assert_eq!(x.read_range("/sparse", 0, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"head\0\0\0\0");
    assert_eq!(x.read_range("/sparse", (1 << 30) - 4, &mut buf).unwrap(), 8);
    assert_eq!(&buf, b"\0\0\0\0tail");
    let mut mid = vec![1u8; 1 << 20];
    assert_eq!(
        x.read_range("/sparse", 123 << 20, &mut mid).unwrap(),
        1 << 20
    );
    assert!(mid.iter().all(|&b| b == 0));
    assert!(x.read_file("/big", 200 << 20).unwrap().unwrap() == big);
    assert!(x.read_file("/inter-a", 1 << 20).unwrap().unwrap() == ia);
    assert!(x.read_file("/inter-b", 1 << 20).unwrap().unwrap() == ib);
    let h = x.metadata("/hardlink").unwrap().unwrap();
    assert_eq!(h, x.metadata("/tree/small").unwrap().unwrap());
    assert_eq!((h.uid, h.gid), (2, 3));
    assert!(x.cached_bytes() < 8 << 20);
}

#[test]
fn kernel_written_v5_4k_blocks() {
    kernel_written("kernel-4k", &[], 3000, 1);
}

#[test]
fn kernel_written_v5_1k_blocks() {
    // 1 KiB blocks: the bmap B+tree of "punched" (1500 extents) needs two levels.
    kernel_written("kernel-1k", &["-b", "size=1024"], 3000, 2);
}
