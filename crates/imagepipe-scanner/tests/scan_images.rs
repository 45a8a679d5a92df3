//! Reading real disk images, made by the test with the tools that make them in production:
//! `mke2fs -d` fills ext4 filesystems from a tree, `sfdisk` writes GPT and MBR (with extended
//! partitions) tables, `qemu-img convert` makes qcow2 (plain and compressed) and VMDK
//! (stream-optimized and monolithic sparse), and the example pipeline's `make-ova` an OVA. The
//! inventory read from each image must equal the one read from the tree itself.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use imagepipe_testkit::{images, rpmdb};

use imagepipe_scanner::inventory;
use imagepipe_scanner::rootfs::{ImageTree, Tree as _};
use images::{DEBIAN_12_OS_RELEASE, ext4, ova, qcow2, run, sbin, vmdk};

const STATUS: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n\nPackage: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u1\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n";

/// A Debian-like root tree; with `separate_var`, /var goes to its own tree and fstab mounts it.
fn trees(dir: &Path, separate_var: bool) -> (PathBuf, Option<PathBuf>) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), DEBIAN_12_OS_RELEASE).unwrap();
    let var_root = if separate_var {
        let v = dir.join("var");
        std::fs::create_dir_all(v.join("lib/dpkg")).unwrap();
        std::fs::write(v.join("lib/dpkg/status"), STATUS).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::write(
            root.join("etc/fstab"),
            "# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL=root / ext4 defaults 0 1\nLABEL=var /var ext4 defaults 0 2\n",
        )
        .unwrap();
        Some(v)
    } else {
        std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        std::fs::write(root.join("var/lib/dpkg/status"), STATUS).unwrap();
        None
    };
    (root, var_root)
}

/// A disk with a partition table made by sfdisk, each filesystem copied into its partition.
fn partitioned(dir: &Path, table: &str, filesystems: &[(&Path, u64)]) -> PathBuf {
    let disk = dir.join(format!("disk-{}.raw", table.len()));
    run(Command::new("truncate").args(["-s", "64M"]).arg(&disk));
    let mut child = Command::new(sbin("sfdisk"))
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), table.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    for (fs, start_sector) in filesystems {
        run(Command::new("dd")
            .arg(format!("if={}", fs.display()))
            .arg(format!("of={}", disk.display()))
            .args(["bs=512", "conv=notrunc,sparse", "status=none"])
            .arg(format!("seek={start_sector}")));
    }
    disk
}

fn scan(image: &Path) -> (inventory::Os, Vec<inventory::Package>, u64, u64) {
    let tree = ImageTree::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let (os, packages) = inventory::from_tree(&tree).unwrap();
    (os, packages, tree.bytes_read(), tree.size())
}

#[test]
fn every_format_and_table_yields_the_tree_s_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = trees(dir.path(), false);
    let want = inventory::from_dir(&root).unwrap();
    assert_eq!(want.1.len(), 3);
    assert_eq!(want.0.ecosystem.as_deref(), Some("Debian:12"));
    let fs = dir.path().join("root.ext4");
    ext4(&root, &fs, "root", "16M");

    let gpt = partitioned(
        dir.path(),
        "label: gpt\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=10240, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
        &[(&fs, 10240)],
    );
    let mbr = partitioned(
        dir.path(),
        "label: dos\nstart=2048, size=4096, type=83\nstart=8192, size=90000, type=5\nstart=10240, size=32768, type=83\n",
        &[(&fs, 10240)],
    );
    let images = [
        fs.clone(),
        gpt.clone(),
        mbr.clone(),
        qcow2(&gpt, false),
        qcow2(&gpt, true),
        qcow2(&mbr, true),
        vmdk(&gpt, "streamOptimized"),
        vmdk(&mbr, "monolithicSparse"),
        ova(&gpt, "scanned"),
    ];
    for image in &images {
        let (os, packages, read, size) = scan(image);
        assert_eq!((os, packages), want, "{}", image.display());
        // Only the blocks needed: well under 5% of the disk.
        assert!(
            read * 20 < size,
            "{}: read {read} of {size} bytes",
            image.display()
        );
    }
}

#[test]
fn a_separate_var_is_followed_through_fstab() {
    let dir = tempfile::tempdir().unwrap();
    let (root, var) = trees(dir.path(), true);
    let var = var.unwrap();
    // Links from one mounted filesystem into the other, and within the mounted one.
    std::os::unix::fs::symlink("/var/lib/dpkg", root.join("etc/dpkg-db")).unwrap();
    std::os::unix::fs::symlink("dpkg", var.join("lib/db")).unwrap();
    let (root_fs, var_fs) = (dir.path().join("root.ext4"), dir.path().join("var.ext4"));
    ext4(&root, &root_fs, "root", "16M");
    // The mounted filesystem's root is owned by someone else than the mount point beneath it.
    run(Command::new("truncate").args(["-s", "16M"]).arg(&var_fs));
    run(Command::new(sbin("mke2fs"))
        .args([
            "-q",
            "-t",
            "ext4",
            "-L",
            "var",
            "-E",
            "root_owner=7:7",
            "-d",
        ])
        .arg(&var)
        .arg(&var_fs));
    let disk = partitioned(
        dir.path(),
        "label: gpt\nstart=2048, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart=36864, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
        &[(&var_fs, 2048), (&root_fs, 36864)],
    );
    let image = qcow2(&disk, true);
    let (os, packages, _, _) = scan(&image);
    assert_eq!(os.id, "debian");
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["libc6", "libssl3", "bash"]);
    let tree = ImageTree::open(&image).unwrap();
    assert_eq!(
        tree.canonical("/etc/dpkg-db/status").unwrap(),
        "/var/lib/dpkg/status"
    );
    assert_eq!(tree.canonical("/var/lib/db").unwrap(), "/var/lib/dpkg");
    // Reads and listings follow a link from one filesystem into the other too.
    assert_eq!(
        tree.read("/etc/dpkg-db/status").unwrap().as_deref(),
        Some(STATUS.as_bytes())
    );
    assert_eq!(tree.list("/etc/dpkg-db").unwrap(), ["status"]);
    assert!(tree.metadata("/var/lib/dpkg").unwrap().unwrap().dir);
    assert!(tree.metadata("/var/lib/db").unwrap().unwrap().symlink);
    let var_meta = tree.metadata("/var").unwrap().unwrap();
    assert_eq!((var_meta.uid, var_meta.gid), (7, 7));
    let listed = tree.list_meta("/").unwrap();
    assert_eq!(listed.iter().find(|(n, _)| n == "var").unwrap().1, var_meta);
}

/// A RHEL-family layout: /boot in partition 1, an LVM physical volume in partition 2 whose
/// volume group `rl` holds `root` (in two segments) and `var` (mounted by its device-mapper
/// path in fstab, holding the rpm database). The volume group metadata is lvm2's own
/// (`scripts/make-lvm-fixture`); the filesystems go where `lvs -o seg_pe_ranges` said the
/// extents are: root 0-3 and 8-11, var 4-7, 1 MiB each, from 1 MiB into the volume.
#[test]
fn lvm_volumes_are_read_where_their_extents_lie() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("var")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"9.3\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/fstab"),
        "/dev/mapper/rl-root / ext4 defaults 0 0\nUUID=0e6b9c1e-0000-4000-8000-000000000000 /boot ext4 defaults 0 0\n/dev/mapper/rl-var /var ext4 defaults 0 0\n",
    )
    .unwrap();
    // The rpm database rpm itself writes, moved to the /var volume.
    let staging = dir.path().join("staging");
    rpmdb::install(
        &staging,
        dir.path(),
        &[rpmdb::Source {
            name: "openssl",
            epoch: Some(1),
            version: "3.0.7",
            release: "27.el9",
            arch: "x86_64",
            binaries: &["openssl", "openssl-libs"],
        }],
    );
    let want = rpmdb::query(&staging);
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join("vmlinuz"), "not a kernel").unwrap();

    let (root_fs, var_fs, boot_fs) = (
        dir.path().join("root.ext4"),
        dir.path().join("var.ext4"),
        dir.path().join("boot.ext4"),
    );
    ext4(&root, &root_fs, "root", "8M");
    ext4(&staging.join("var"), &var_fs, "var", "4M");
    ext4(&boot, &boot_fs, "boot", "8M");
    let pv = dir.path().join("pv.img");
    let mut head = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&include_bytes!("fixtures/lvm/pv-head.bin.gz")[..]),
        &mut head,
    )
    .unwrap();
    let mut bytes = vec![0u8; 24 << 20];
    bytes[..head.len()].copy_from_slice(&head);
    let mib = 1 << 20;
    let root_bytes = std::fs::read(&root_fs).unwrap();
    let var_bytes = std::fs::read(&var_fs).unwrap();
    for (data, pe) in [
        (&root_bytes[..4 * mib], 0),
        (&root_bytes[4 * mib..], 8),
        (&var_bytes[..], 4),
    ] {
        let at = mib + pe * mib;
        bytes[at..at + data.len()].copy_from_slice(data);
    }
    std::fs::write(&pv, &bytes).unwrap();
    let disk = partitioned(
        dir.path(),
        "label: gpt\nstart=2048, size=16384, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart=18432, size=49152, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n",
        &[(&boot_fs, 2048), (&pv, 18432)],
    );
    for image in [qcow2(&disk, true), vmdk(&disk, "streamOptimized")] {
        let (os, packages, _, _) = scan(&image);
        assert_eq!(os.ecosystem.as_deref(), Some("Rocky Linux:9"));
        let got = rpmdb::as_query(&packages);
        assert_eq!(got, want, "{}", image.display());
    }

    // Without the /var volume's extents the rpm database is not there: an image whose
    // volume metadata points past its physical volume is refused by name.
    let mut short = bytes.clone();
    short.truncate(10 << 20);
    std::fs::write(&pv, &short).unwrap();
    let disk = partitioned(
        dir.path(),
        "label: gpt\nstart=2048, size=20480, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n",
        &[(&pv, 2048)],
    );
    let err = ImageTree::open(&disk).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("rl/root: extents past the end of their physical volume"),
        "{err}"
    );
}

#[test]
fn broken_and_hostile_images_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = trees(dir.path(), false);
    let fs = dir.path().join("root.ext4");
    ext4(&root, &fs, "root", "16M");
    let q = qcow2(&fs, false);
    let bytes = std::fs::read(&q).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let err = |p: &Path| ImageTree::open(p).map(|_| ()).unwrap_err().to_string();

    // Truncated qcow2: its tables point beyond the file.
    let e = err(&write("truncated.qcow2", &bytes[..bytes.len() / 3]));
    assert!(
        e.contains("beyond") || e.contains("past the end") || e.contains("truncated"),
        "{e}"
    );
    // An absurd virtual size with a tiny L1 table.
    let mut huge = bytes.clone();
    huge[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(err(&write("huge.qcow2", &huge)).contains("L1 table"));
    // A backing file.
    let mut backed = bytes.clone();
    backed[8..16].copy_from_slice(&512u64.to_be_bytes());
    assert!(err(&write("backed.qcow2", &backed)).contains("backing file"));
    // A stream-optimized VMDK cut short: its footer (and grain directory) is gone.
    let v = std::fs::read(vmdk(&fs, "streamOptimized")).unwrap();
    let e = err(&write("cut.vmdk", &v[..v.len() / 2]));
    assert!(e.contains("footer") || e.contains("beyond"), "{e}");
    // Garbage and an empty disk.
    assert!(err(&write("zeros.raw", &vec![0u8; 1 << 20])).contains("os-release"));
    assert!(err(&write("tiny.raw", b"x")).contains("no filesystem"));
    // A GPT whose partition lies outside the disk.
    let gpt = partitioned(
        dir.path(),
        "label: gpt\nstart=2048, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
        &[(&fs, 2048)],
    );
    let mut g = std::fs::read(&gpt).unwrap();
    let entry = 1024; // LBA 2: the first entry; first_lba at +32
    g[entry + 32..entry + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(err(&write("outside.raw", &g)).contains("outside the disk"));
    // A real ext4 whose superblock says 0 blocks per group (s_blocks_per_group at 1024 + 0x20):
    // the ext4 reader would divide by it (found by the disk_image fuzz target).
    let mut zero = std::fs::read(&fs).unwrap();
    zero[1024 + 0x20..1024 + 0x24].copy_from_slice(&0u32.to_le_bytes());
    let e = err(&write("zero-groups.ext4", &zero));
    assert!(e.contains("0 blocks per group"), "{e}");
    // ... and one whose block count is forged far past its volume: the reader would allocate a
    // descriptor per group, gigabytes, before reading any.
    let mut forged = std::fs::read(&fs).unwrap();
    forged[1024 + 0x150..1024 + 0x154].copy_from_slice(&0x100u32.to_le_bytes());
    let e = err(&write("forged-count.ext4", &forged));
    assert!(e.contains("more than the volume's"), "{e}");
}
