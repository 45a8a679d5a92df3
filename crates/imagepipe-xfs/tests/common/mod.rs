//! Test images made with xfsprogs: a tree built in memory, written out as source files and a
//! mkfs.xfs(8) protofile, `mkfs.xfs -p` run over it, and checks that compare every file,
//! listing, link and attribute the reader returns with what the protofile put there.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use imagepipe_xfs::{Error, FileDevice, Meta, Xfs};

/// A directory under the system's temporary directory, removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "xfs-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic generator (xorshift64*), so every run builds the same images.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir(Vec<Entry>),
    Link(Vec<u8>),
    /// A symbolic link whose blocks the reader must refuse (mkfs.xfs 6.1 writes v5 remote
    /// links without their header).
    BadLink(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub name: Vec<u8>,
    /// Permission bits, set-user-ID and set-group-ID included (a protofile has no sticky bit).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: Kind,
}

pub fn file(name: &str, mode: u32, uid: u32, gid: u32, data: Vec<u8>) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        mode,
        uid,
        gid,
        kind: Kind::File(data),
    }
}

pub fn dir(name: &str, mode: u32, uid: u32, gid: u32, children: Vec<Entry>) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        mode,
        uid,
        gid,
        kind: Kind::Dir(children),
    }
}

pub fn link(name: &str, uid: u32, gid: u32, target: &str) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        mode: 0o777,
        uid,
        gid,
        kind: Kind::Link(target.as_bytes().to_vec()),
    }
}

/// `n` empty-ish files named by `name(i)`, for directories of a given size.
pub fn many(n: usize, name: impl Fn(usize) -> String) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            file(
                &name(i),
                0o644,
                (i % 7) as u32,
                (i % 5) as u32,
                format!("{i}\n").into_bytes(),
            )
        })
        .collect()
}

/// An image made by mkfs.xfs from a tree.
pub struct Image {
    pub path: PathBuf,
    pub root: Entry,
    pub _tmp: Tmp,
}

fn mode_string(e: &Entry) -> String {
    let t = match e.kind {
        Kind::File(_) => '-',
        Kind::Dir(_) => 'd',
        Kind::Link(_) | Kind::BadLink(_) => 'l',
    };
    format!(
        "{t}{}{}{:03o}",
        if e.mode & 0o4000 != 0 { 'u' } else { '-' },
        if e.mode & 0o2000 != 0 { 'g' } else { '-' },
        e.mode & 0o777
    )
}

/// Source files by content, so that identical files share one.
type Sources = std::collections::HashMap<Vec<u8>, PathBuf>;

fn write_proto(e: &Entry, depth: usize, src: &Path, n: &mut Sources, out: &mut Vec<u8>) {
    let indent = " ".repeat(depth);
    out.extend_from_slice(indent.as_bytes());
    if depth > 0 {
        out.extend_from_slice(&e.name);
        out.push(b' ');
    }
    out.extend_from_slice(format!("{} {} {}", mode_string(e), e.uid, e.gid).as_bytes());
    match &e.kind {
        Kind::File(data) => {
            let next = n.len();
            let p = n.entry(data.clone()).or_insert_with(|| {
                let p = src.join(next.to_string());
                std::fs::write(&p, data).unwrap();
                p
            });
            out.extend_from_slice(format!(" {}\n", p.display()).as_bytes());
        }
        Kind::Link(target) | Kind::BadLink(target) => {
            out.push(b' ');
            out.extend_from_slice(target);
            out.push(b'\n');
        }
        Kind::Dir(children) => {
            out.push(b'\n');
            for c in children {
                write_proto(c, depth + 1, src, n, out);
            }
            out.extend_from_slice(indent.as_bytes());
            out.extend_from_slice(b"$\n");
        }
    }
}

/// Runs a command, failing the test with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is xfsprogs installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes an image of `root` with `mkfs.xfs -q -p PROTO -d file,name=IMG,size=SIZE[,dopts]
/// [opts]`.
pub fn build(tag: &str, root: Entry, size: &str, dopts: &str, opts: &[&str]) -> Image {
    let tmp = Tmp::new(tag);
    let src = tmp.0.join("src");
    std::fs::create_dir(&src).unwrap();
    let mut proto = b"boot\n0 0\n".to_vec();
    write_proto(&root, 0, &src, &mut Sources::new(), &mut proto);
    let proto_path = tmp.0.join("proto");
    std::fs::write(&proto_path, &proto).unwrap();
    let img = tmp.0.join("img");
    let mut d = format!("file,name={},size={size}", img.display());
    if !dopts.is_empty() {
        d.push(',');
        d.push_str(dopts);
    }
    run(Command::new("mkfs.xfs")
        .arg("-q")
        .arg("-p")
        .arg(&proto_path)
        .arg("-d")
        .arg(&d)
        .args(opts));
    // The sources are no longer needed; the image is sparse.
    let _ = std::fs::remove_dir_all(&src);
    Image {
        path: img,
        root,
        _tmp: tmp,
    }
}

impl Image {
    pub fn open(&self) -> Xfs {
        Xfs::open(Box::new(FileDevice::open(&self.path).unwrap())).unwrap()
    }

    /// `xfs_db -r` with the given commands.
    pub fn db(&self, cmds: &[&str]) -> String {
        let mut c = Command::new("xfs_db");
        c.arg("-r");
        for x in cmds {
            c.arg("-c").arg(x);
        }
        run(c.arg(&self.path))
    }

    /// `xfs_db -x` (expert mode, writes) with the given commands.
    pub fn db_write(&self, cmds: &[&str]) -> String {
        let mut c = Command::new("xfs_db");
        c.arg("-x");
        for x in cmds {
            c.arg("-c").arg(x);
        }
        run(c.arg(&self.path))
    }

    /// A numeric field that `xfs_db print` shows as `name = value`.
    pub fn field(&self, path: &str, name: &str) -> u64 {
        let out = self.db(&[&format!("path {path}"), &format!("print {name}")]);
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} for {path} in {out}"));
        let v = v.split_whitespace().next().unwrap();
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    }

    pub fn sb_field(&self, name: &str) -> u64 {
        let out = self.db(&["sb 0", &format!("print {name}")]);
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in {out}"));
        match v.trim().strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.trim().parse().unwrap(),
        }
    }

    /// The extents of `path` as `xfs_db bmap` shows them: (file block, fs block, count, flag).
    pub fn bmap(&self, path: &str) -> Vec<(u64, u64, u64, u64)> {
        let out = self.db(&[&format!("path {path}"), "bmap"]);
        out.lines()
            .filter_map(|l| {
                // "data offset 0 startblock 24 (0/24) count 2560 flag 0"
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.first() == Some(&"data")).then(|| {
                    (
                        w[2].parse().unwrap(),
                        w[4].parse().unwrap(),
                        w[7].parse().unwrap(),
                        w[9].parse().unwrap(),
                    )
                })
            })
            .collect()
    }

    /// How xfs_db says directory `path` is stored: "shortform", "block", "leaf", "node" (the
    /// data fork an extent list) or "btree" (the data fork a B+tree, any directory form).
    pub fn dir_form(&self, path: &str) -> &'static str {
        let format = self.field(path, "core.format");
        let blocklog = self.sb_field("blocklog");
        let leafblk = (1u64 << 35) >> blocklog;
        match format {
            1 => "shortform",
            3 => "btree",
            2 => {
                let map = self.bmap(path);
                if map.iter().any(|e| e.0 >= 2 * leafblk) {
                    "node"
                } else if map.iter().any(|e| e.0 >= leafblk) {
                    "leaf"
                } else {
                    "block"
                }
            }
            f => panic!("{path}: format {f}"),
        }
    }

    /// The data fork format of `path`: 1 local, 2 extents, 3 btree.
    pub fn format(&self, path: &str) -> u64 {
        self.field(path, "core.format")
    }
}

/// What a check went through.
#[derive(Default, Debug)]
pub struct Counts {
    pub files: usize,
    pub dirs: usize,
    pub links: usize,
    pub bytes: u64,
}

fn join(dir: &str, name: &[u8]) -> String {
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        String::from_utf8(name.to_vec()).unwrap()
    )
}

fn expect_meta(e: &Entry, m: &Meta, path: &str) {
    assert_eq!(m.mode, e.mode, "{path}: mode {:o}", m.mode);
    assert_eq!((m.uid, m.gid), (e.uid, e.gid), "{path}: owner");
    assert_eq!(m.dir, matches!(e.kind, Kind::Dir(_)), "{path}: dir");
    assert_eq!(
        m.symlink,
        matches!(e.kind, Kind::Link(_) | Kind::BadLink(_)),
        "{path}: symlink"
    );
    match &e.kind {
        Kind::File(d) => assert_eq!(m.size, d.len() as u64, "{path}: size"),
        Kind::Link(t) | Kind::BadLink(t) => assert_eq!(m.size, t.len() as u64, "{path}: link size"),
        Kind::Dir(_) => {}
    }
}

/// Compares everything under `e` (at `path`) with what the reader returns: metadata,
/// listings (names and their metadata), whole-file reads and random ranges, link targets,
/// and the errors for paths through files and links.
pub fn verify(x: &mut Xfs, e: &Entry, path: &str, rng: &mut Rng, c: &mut Counts) {
    let m = x
        .metadata(path)
        .unwrap_or_else(|err| panic!("{path}: {err}"))
        .unwrap_or_else(|| panic!("{path}: missing"));
    expect_meta(e, &m, path);
    match &e.kind {
        Kind::File(data) => {
            c.files += 1;
            c.bytes += data.len() as u64;
            let got = x.read_file(path, u64::MAX).unwrap().unwrap();
            assert!(
                got == *data,
                "{path}: content differs ({} bytes read, {} expected)",
                got.len(),
                data.len()
            );
            if !data.is_empty() {
                assert!(matches!(
                    x.read_file(path, data.len() as u64 - 1),
                    Err(Error::TooLarge { .. })
                ));
            }
            for _ in 0..4 {
                let off = rng.below(data.len() as u64 + 10);
                let len = rng.below(3 * 4096 + 1) as usize;
                let mut buf = vec![0xAAu8; len];
                let n = x.read_range(path, off, &mut buf).unwrap();
                let want =
                    &data[(off as usize).min(data.len())..(off as usize + len).min(data.len())];
                assert_eq!(n, want.len(), "{path}: range {off}+{len}");
                assert!(&buf[..n] == want, "{path}: range {off}+{len} differs");
            }
            // A path through a file is an error, not a miss.
            assert!(matches!(
                x.metadata(&format!("{path}/x")),
                Err(Error::NotADirectory { symlink: false, .. })
            ));
        }
        Kind::Link(target) => {
            c.links += 1;
            let got = x.read_link(path).unwrap().unwrap();
            assert_eq!(got.as_bytes(), &target[..], "{path}: link target");
            assert!(matches!(
                x.metadata(&format!("{path}/x")),
                Err(Error::NotADirectory { symlink: true, .. })
            ));
            assert!(matches!(
                x.read_file(path, 1 << 20),
                Err(Error::NotAFile { .. })
            ));
        }
        Kind::BadLink(_) => {
            c.links += 1;
            let e = x.read_link(path).unwrap_err();
            assert!(
                matches!(e, Error::Corrupt { .. }) && e.to_string().contains(path),
                "{path}: {e}"
            );
        }
        Kind::Dir(children) => {
            c.dirs += 1;
            let list = x
                .read_dir(path)
                .unwrap_or_else(|err| panic!("{path}: {err}"))
                .unwrap();
            let got: BTreeMap<Vec<u8>, Meta> = list
                .iter()
                .map(|(n, m)| (n.as_bytes().to_vec(), *m))
                .collect();
            assert_eq!(got.len(), list.len(), "{path}: duplicate names");
            let want: BTreeMap<&[u8], &Entry> = children.iter().map(|c| (&c.name[..], c)).collect();
            assert_eq!(
                got.keys().map(|k| &k[..]).collect::<Vec<_>>(),
                want.keys().copied().collect::<Vec<_>>(),
                "{path}: listing"
            );
            for (name, m) in &got {
                expect_meta(want[&name[..]], m, &join(path, name));
            }
            assert_eq!(x.read_link(path).unwrap(), None, "{path}: not a link");
            assert!(matches!(
                x.read_file(path, 1 << 20),
                Err(Error::NotAFile { .. })
            ));
            assert_eq!(x.metadata(&join(path, b"no-such-name")).unwrap(), None);
            for child in children {
                let p = join(path, &child.name);
                verify(x, child, &p, rng, c);
            }
        }
    }
}

/// Opens `img` and checks its whole tree, returning what was compared.
pub fn verify_image(img: &Image) -> Counts {
    verify_tree(img, &img.root)
}

/// Opens `img` and checks that it holds `root`.
pub fn verify_tree(img: &Image, root: &Entry) -> Counts {
    let mut x = img.open();
    let mut c = Counts::default();
    verify(&mut x, root, "/", &mut Rng::new(7), &mut c);
    assert!(
        x.cached_bytes() < 8 << 20,
        "caches hold {} bytes",
        x.cached_bytes()
    );
    c
}
