//! A RHEL-family disk image made the way an installer lays one out, with the tools that make
//! the real thing and without mounting anything:
//!
//! - packages built with `rpmbuild` and installed with `rpm --root` into a staging root
//!   (`rpmdb.rs`), whose rpm database is then kept as SQLite (RHEL 9), converted to a
//!   BerkeleyDB hash `Packages` (RHEL 7/8: `sqlite-to-dbload.py` and `db5.3_load`, which rpm's
//!   own `bdb_ro` backend then reads back) or written as NDB `Packages.db` (SUSE: no tool here
//!   writes NDB, so the testkit's `ndb_writer` does, from the same header blobs);
//! - XFS filesystems made from the tree with `mkfs.xfs -p PROTOFILE`: `/boot` in a partition,
//!   `/` and `/var` in LVM logical volumes;
//! - GPT by `sfdisk`; two LVM physical volumes whose first MiB lvm2 itself wrote
//!   (`scripts/make-lvm-striped-fixture`): volume group `rl`, `root` linear on pv0 (extents
//!   0-23), `var` striped over pv0 (24-31) and pv1 (0-7) in 64 KiB chunks, `swap` linear on
//!   pv1 (8-9), 4 MiB extents from 1 MiB into each physical volume. The filesystems are copied
//!   to where those extents are, chunk by chunk for the striped one, as the kernel's dm-stripe
//!   would write them.

use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::images::{run, sbin};
use crate::{ndb_writer, rpmdb};

const MIB: u64 = 1 << 20;
/// The layout the committed physical volume heads describe.
const EXTENT: u64 = 4 * MIB;
const PE_START: u64 = MIB;
const PV_MIB: u64 = 160;
const ROOT_EXTENTS: (u64, u64) = (0, 24);
const VAR_EXTENTS: [(usize, u64); 2] = [(0, 24), (1, 0)];
const VAR_LEN: u64 = 16 * EXTENT;
const CHUNK: u64 = 64 << 10;
const BOOT_MIB: u64 = 32;
/// The UUID fstab names /boot by.
pub const BOOT_UUID: &str = "5b1c4f9e-4f0e-4d4e-9b62-8f0f7a3c2d10";

/// The rpm database format of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Bdb,
    Ndb,
}

impl Db {
    fn file(self) -> &'static str {
        match self {
            Db::Sqlite => "rpmdb.sqlite",
            Db::Bdb => "Packages",
            Db::Ndb => "Packages.db",
        }
    }

    fn backend(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Bdb => "bdb",
            Db::Ndb => "ndb",
        }
    }
}

/// A made image and what it holds.
#[derive(Debug)]
pub struct Image {
    /// The raw GPT disk.
    pub raw: PathBuf,
    /// The whole tree the filesystems were made from (the rpm database under var/lib/rpm).
    pub tree: PathBuf,
    /// `rpm -qa` (as `rpmdb::query` formats it) on the staging root's database as rpm itself
    /// reads it: the BerkeleyDB one through rpm's bdb_ro backend, the SQLite one for SQLite
    /// and NDB (whose headers are the same blobs).
    pub rpm_qa: Vec<String>,
}

fn crate_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join(rel))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{rel} not found above {}", env!("CARGO_MANIFEST_DIR")))
}

/// A file of the tree as a mkfs.xfs(8) protofile line's mode field: type, set-user-ID,
/// set-group-ID, then the permission bits in octal.
fn proto_mode(m: &std::fs::Metadata) -> String {
    let kind = if m.file_type().is_symlink() {
        'l'
    } else if m.is_dir() {
        'd'
    } else {
        '-'
    };
    let mode = m.mode();
    format!(
        "{kind}{}{}{:03o}",
        if mode & 0o4000 != 0 { 'u' } else { '-' },
        if mode & 0o2000 != 0 { 'g' } else { '-' },
        mode & 0o777
    )
}

fn proto_dir(dir: &Path, depth: usize, empty: &[PathBuf], out: &mut String) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            !name.contains(char::is_whitespace),
            "{name}: a protofile cannot name it"
        );
        let m = std::fs::symlink_metadata(&path).unwrap();
        let indent = " ".repeat(depth + 1);
        let head = format!("{indent}{name} {} {} {}", proto_mode(&m), m.uid(), m.gid());
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.push_str(&format!("{head} {}\n", target.display()));
        } else if m.is_dir() {
            out.push_str(&head);
            out.push('\n');
            if !empty.contains(&path) {
                proto_dir(&path, depth + 1, empty, out);
            }
            out.push_str(&format!("{indent}$\n"));
        } else {
            out.push_str(&format!("{head} {}\n", path.display()));
        }
    }
}

/// An XFS filesystem of `size_mib` at `out` holding `tree` (owners, modes and links as they
/// are there), with the directories in `empty` left empty (mount points); `extra` are more
/// mkfs.xfs options. Filesystems under 300 MB are made as fstests makes them (mkfs.xfs refuses
/// them otherwise); they are XFS all the same, and keep the test images small.
pub fn xfs(tree: &Path, out: &Path, size_mib: u64, empty: &[&str], extra: &[&str]) {
    let empty: Vec<PathBuf> = empty.iter().map(|e| tree.join(e)).collect();
    let root = std::fs::metadata(tree).unwrap();
    let mut proto = format!(
        "/dev/null\n0 0\n{} {} {}\n",
        proto_mode(&root),
        root.uid(),
        root.gid()
    );
    proto_dir(tree, 0, &empty, &mut proto);
    proto.push_str("$\n");
    let proto_file = out.with_extension("proto");
    std::fs::write(&proto_file, proto).unwrap();
    let _ = std::fs::remove_file(out);
    run(Command::new(sbin("mkfs.xfs"))
        .env("TEST_DIR", "/tmp")
        .env("TEST_DEV", "/dev/null")
        .env("QA_CHECK_FS", "1")
        .arg("-q")
        .arg("-p")
        .arg(&proto_file)
        .arg("-d")
        .arg(format!("file,name={},size={size_mib}m", out.display()))
        .args(extra));
}

/// Converts the SQLite rpm database in `root` into a BerkeleyDB hash `Packages` as rpm's bdb
/// backend wrote them (the generator of imagepipe-rpmdb's fixtures), and removes the SQLite one.
fn to_bdb(root: &Path, work: &Path) {
    let db = root.join("var/lib/rpm");
    run(Command::new("python3")
        .arg(crate_file(
            "crates/imagepipe-rpmdb/tests/fixtures/gen/sqlite-to-dbload.py",
        ))
        .arg(db.join("rpmdb.sqlite"))
        .arg(work));
    run(Command::new("db5.3_load")
        .args(["-t", "hash", "-c", "db_pagesize=4096", "-f"])
        .arg(work.join("dbload-le.txt"))
        .arg(db.join("Packages")));
    for f in ["rpmdb.sqlite", "rpmdb.sqlite-shm", "rpmdb.sqlite-wal"] {
        let _ = std::fs::remove_file(db.join(f));
    }
}

/// The header blobs of the SQLite database in `root`, by header number.
fn sqlite_blobs(root: &Path) -> Vec<(u32, Vec<u8>)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nfor h,b in sqlite3.connect(sys.argv[1]).execute('SELECT hnum, blob FROM Packages ORDER BY hnum'): print(h, bytes(b).hex())",
        ])
        .arg(root.join("var/lib/rpm/rpmdb.sqlite"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (h.parse().unwrap(), bytes)
        })
        .collect()
}

/// Writes the SQLite database's headers in `root` as an NDB `Packages.db`, and removes the
/// SQLite one.
fn to_ndb(root: &Path) {
    let blobs = sqlite_blobs(root);
    let mut w = ndb_writer::NdbWriter::new(1);
    for (i, (hnum, blob)) in blobs.iter().enumerate() {
        w.put(2 + i, *hnum, blob);
    }
    let db = root.join("var/lib/rpm");
    std::fs::write(db.join("Packages.db"), &w.bytes).unwrap();
    for f in ["rpmdb.sqlite", "rpmdb.sqlite-shm", "rpmdb.sqlite-wal"] {
        let _ = std::fs::remove_file(db.join(f));
    }
}

/// The system's files besides its packages: what the RHEL-family baseline looks at.
pub fn system_files(root: &Path, os_release: &str) {
    let w = |rel: &str, text: &str, mode: u32| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    // RHEL 9 keeps os-release in /usr/lib and links it from /etc.
    w("usr/lib/os-release", os_release, 0o644);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let _ = std::fs::remove_file(root.join("etc/os-release"));
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    w(
        "etc/selinux/config",
        "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n",
        0o644,
    );
    w("etc/crypto-policies/config", "DEFAULT\n", 0o644);
    w(
        "etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n",
        0o600,
    );
    w(
        "etc/shadow",
        "root:!locked::0:99999:7:::\nbin:*:19000:0:99999:7:::\n",
        0o000,
    );
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n",
        0o644,
    );
}

/// Builds the image in `dir`: `sources` installed with rpm, the database kept as `db`, the
/// system described by `os_release`. Files already in `dir/tree` go into the image too.
pub fn build(dir: &Path, db: Db, os_release: &str, sources: &[rpmdb::Source<'_>]) -> Image {
    build_labelled(dir, db, os_release, sources, &[])
}

/// [`build`], the sources named in `labels` built for those module streams.
pub fn build_labelled(
    dir: &Path,
    db: Db,
    os_release: &str,
    sources: &[rpmdb::Source<'_>],
    labels: &[(&str, &str)],
) -> Image {
    let tree = dir.join("tree");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(tree.join("boot/grub2")).unwrap();
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    rpmdb::install_with_labels(&tree, &work, sources, labels);
    system_files(&tree, os_release);
    std::fs::write(
        tree.join("boot/vmlinuz-5.14.0-362.el9.x86_64"),
        "not a kernel",
    )
    .unwrap();
    std::fs::write(tree.join("boot/grub2/grub.cfg"), "set default=0\n").unwrap();
    std::fs::write(
        tree.join("etc/fstab"),
        format!(
            "#\n# /etc/fstab\n#\n/dev/mapper/rl-root     /                       xfs     defaults        0 0\nUUID={BOOT_UUID} /boot                   xfs     defaults        0 0\n/dev/mapper/rl-var      /var                    xfs     defaults        0 0\n/dev/mapper/rl-swap     none                    swap    defaults        0 0\n"
        ),
    )
    .unwrap();
    // rpm's own configuration names the backend, as RHEL 8 (bdb), SUSE (ndb) and RHEL 9
    // (sqlite) ship it.
    std::fs::create_dir_all(tree.join("usr/lib/rpm")).unwrap();
    std::fs::write(
        tree.join("usr/lib/rpm/macros"),
        format!(
            "%_dbpath\t\t/var/lib/rpm\n%_db_backend\t      {}\n",
            db.backend()
        ),
    )
    .unwrap();
    let rpm_qa = match db {
        Db::Sqlite => rpmdb::query(&tree),
        Db::Ndb => {
            let qa = rpmdb::query(&tree);
            to_ndb(&tree);
            qa
        }
        Db::Bdb => {
            to_bdb(&tree, &work);
            rpmdb::query_backend(&tree, "bdb_ro")
        }
    };
    assert!(tree.join("var/lib/rpm").join(db.file()).exists());

    let (boot, root, var) = (
        dir.join("boot.xfs"),
        dir.join("root.xfs"),
        dir.join("var.xfs"),
    );
    xfs(
        &tree.join("boot"),
        &boot,
        BOOT_MIB,
        &[],
        &["-m", &format!("uuid={BOOT_UUID}"), "-L", "boot"],
    );
    xfs(
        &tree,
        &root,
        ROOT_EXTENTS.1 * EXTENT / MIB,
        &["boot", "var"],
        &[],
    );
    xfs(&tree.join("var"), &var, VAR_LEN / MIB, &[], &[]);

    // GPT: /boot, then the two physical volumes.
    let raw = dir.join("disk.raw");
    let boot_start = 2048u64;
    let pv0_start = boot_start + BOOT_MIB * 2048;
    let pv1_start = pv0_start + PV_MIB * 2048;
    run(Command::new("truncate")
        .arg(format!(
            "--size={}",
            (pv1_start + PV_MIB * 2048 + 2048) * 512
        ))
        .arg(&raw));
    let mut child = Command::new(sbin("sfdisk"))
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&raw)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!(
            "label: gpt\nstart={boot_start}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart={pv0_start}, size={}, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\nstart={pv1_start}, size={}, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n",
            BOOT_MIB * 2048,
            PV_MIB * 2048,
            PV_MIB * 2048
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let disk = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
    let copy = |from: &Path, at: u64| {
        let bytes = std::fs::read(from).unwrap();
        // Holes stay holes: the image is sparse like the filesystems.
        for (i, block) in bytes.chunks(64 << 10).enumerate() {
            if block.iter().any(|&b| b != 0) {
                disk.write_all_at(block, at + i as u64 * (64 << 10))
                    .unwrap();
            }
        }
    };
    copy(&boot, boot_start * 512);
    let pv = [pv0_start * 512, pv1_start * 512];
    for (i, start) in pv.iter().enumerate() {
        let mut head = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(
                std::fs::File::open(crate_file(&format!(
                    "crates/imagepipe-scanner/tests/fixtures/lvm/striped-pv{i}-head.bin.gz"
                )))
                .unwrap(),
            ),
            &mut head,
        )
        .unwrap();
        disk.write_all_at(&head, *start).unwrap();
    }
    // root: linear, extents 0-23 of pv0.
    copy(&root, pv[0] + PE_START + ROOT_EXTENTS.0 * EXTENT);
    // var: chunk c on stripe c % 2, at chunk c / 2 of that stripe's area.
    let var_bytes = std::fs::read(&var).unwrap();
    assert_eq!(var_bytes.len() as u64, VAR_LEN);
    for (c, chunk) in var_bytes.chunks(CHUNK as usize).enumerate() {
        let (pv_index, first_extent) = VAR_EXTENTS[c % 2];
        let at = pv[pv_index] + PE_START + first_extent * EXTENT + (c as u64 / 2) * CHUNK;
        if chunk.iter().any(|&b| b != 0) {
            disk.write_all_at(chunk, at).unwrap();
        }
    }
    for f in [&boot, &root, &var] {
        std::fs::remove_file(f).unwrap();
    }
    Image { raw, tree, rpm_qa }
}
