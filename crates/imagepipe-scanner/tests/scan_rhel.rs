//! RHEL-family images as installers lay them out (`imagepipe_testkit::rhel`): GPT, `/boot` on
//! XFS, LVM with `root` (linear) and `var` (striped over two physical volumes) on XFS, an rpm
//! database installed by rpm from packages rpmbuild built, kept as BerkeleyDB (RHEL 7/8),
//! SQLite (RHEL 9) or NDB (SUSE). Read from raw, qcow2, stream-optimized VMDK and OVA, the
//! inventory must be what `rpm -qa` lists, epochs, source rpms and module streams included; and
//! the advisories of AlmaLinux, Rocky Linux and Red Hat must apply as rpm orders versions.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use imagepipe_testkit::{images, rhel, rpmdb};

use imagepipe_scanner::inventory::{self, Package};
use imagepipe_scanner::rootfs::{self, ImageTree, Tree as _};
use imagepipe_scanner::{osv, policy};

const ROCKY_8: &str = "NAME=\"Rocky Linux\"\nVERSION=\"8.9 (Green Obsidian)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.9\"\nPRETTY_NAME=\"Rocky Linux 8.9 (Green Obsidian)\"\n";
const ALMA_9: &str = "NAME=\"AlmaLinux\"\nVERSION=\"9.3 (Shamrock Pampas Cat)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"AlmaLinux 9.3 (Shamrock Pampas Cat)\"\n";
const SLES_15: &str = "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\nID_LIKE=\"suse\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5\"\n";

/// The module stream `nodejs` is built for.
const NODEJS_STREAM: &str = "nodejs:18:9030020231120082734:rhel9";

fn sources() -> Vec<rpmdb::Source<'static>> {
    let s = |name, epoch, version, release, arch, binaries| rpmdb::Source {
        name,
        epoch,
        version,
        release,
        arch,
        binaries,
    };
    vec![
        s(
            "openssl",
            Some(1),
            "3.0.7",
            "27.el9",
            "x86_64",
            &["openssl", "openssl-libs"],
        ),
        s("bash", None, "5.1.8", "6.el9_1", "x86_64", &["bash"]),
        s(
            "glibc",
            None,
            "2.34",
            "83.el9",
            "x86_64",
            &["glibc", "glibc-common"],
        ),
        s(
            "nodejs",
            Some(1),
            "18.18.2",
            "2.module+el9.3.0+19.abc",
            "x86_64",
            &["nodejs", "npm"],
        ),
        s("tzdata", None, "2023c", "1.el9", "noarch", &["tzdata"]),
    ]
}

/// A RHEL-style image with its rpm database as `db`, built once per test run.
fn image(db: rhel::Db) -> &'static rhel::Image {
    static IMAGES: [OnceLock<(tempfile::TempDir, rhel::Image)>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (slot, os_release) = match db {
        rhel::Db::Bdb => (&IMAGES[0], ROCKY_8),
        rhel::Db::Sqlite => (&IMAGES[1], ALMA_9),
        rhel::Db::Ndb => (&IMAGES[2], SLES_15),
    };
    &slot
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            std::fs::create_dir_all(&tree).unwrap();
            // A file in /var larger than many stripe chunks, to read back byte for byte.
            std::fs::create_dir_all(tree.join("var/lib/filler")).unwrap();
            let mut rng = fastrand::Rng::with_seed(20);
            let filler: Vec<u8> = (0..(1 << 20) + 4321).map(|_| rng.u8(..)).collect();
            std::fs::write(tree.join("var/lib/filler/blob"), filler).unwrap();
            let image = rhel::build_labelled(
                dir.path(),
                db,
                os_release,
                &sources(),
                &[("nodejs", NODEJS_STREAM)],
            );
            (dir, image)
        })
        .1
}

fn inventory_of(path: &Path) -> (inventory::Os, Vec<Package>, u64, u64) {
    let tree = rootfs::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (os, packages) =
        inventory::from_tree(tree.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (os, packages, tree.bytes_read(), tree.size())
}

/// The disk formats an image ships in: raw, compressed qcow2, stream-optimized VMDK, OVA.
fn formats(raw: &Path) -> Vec<std::path::PathBuf> {
    vec![
        raw.to_path_buf(),
        images::qcow2(raw, true),
        images::vmdk(raw, "streamOptimized"),
        images::ova(raw, "rhel"),
    ]
}

#[test]
fn a_berkeleydb_rpm_database_on_striped_lvm_and_xfs_is_what_rpm_lists() {
    let image = image(rhel::Db::Bdb);
    assert_eq!(image.rpm_qa.len(), 8, "{:?}", image.rpm_qa);
    assert!(
        image
            .rpm_qa
            .iter()
            .any(|l| l
                .starts_with("openssl-libs 1:3.0.7-27.el9 x86_64 openssl-3.0.7-27.el9.src.rpm")),
        "{:?}",
        image.rpm_qa
    );
    assert!(
        image.rpm_qa.iter().any(|l| l.ends_with(NODEJS_STREAM)),
        "{:?}",
        image.rpm_qa
    );
    for path in formats(&image.raw) {
        let (os, packages, read, size) = inventory_of(&path);
        assert_eq!(os.ecosystem.as_deref(), Some("Rocky Linux:8"));
        assert_eq!(
            rpmdb::as_query(&packages),
            image.rpm_qa,
            "{}",
            path.display()
        );
        // Only the blocks needed: well under 5% of the disk.
        assert!(
            read * 20 < size,
            "{}: read {read} of {size} bytes",
            path.display()
        );
    }
}

#[test]
fn every_filesystem_is_mounted_where_fstab_says_and_read_exactly() {
    let image = image(rhel::Db::Bdb);
    let tree = ImageTree::open(&images::qcow2(&image.raw, true)).unwrap();
    // /etc/os-release links into /usr/lib on the root volume.
    assert_eq!(
        tree.canonical("/etc/os-release").unwrap(),
        "/usr/lib/os-release"
    );
    // /boot: an XFS partition named by UUID.
    assert_eq!(
        tree.read("/boot/grub2/grub.cfg").unwrap().as_deref(),
        Some(&b"set default=0\n"[..])
    );
    // /var: the striped volume, read back byte for byte across its chunks and stripes.
    for file in ["/var/lib/filler/blob", "/var/lib/rpm/Packages"] {
        let want = std::fs::read(image.tree.join(&file[1..])).unwrap();
        assert_eq!(tree.read(file).unwrap().unwrap(), want, "{file}");
    }
    let root = tree.list_meta("/").unwrap();
    for dir in ["boot", "var", "etc", "usr"] {
        assert!(
            root.iter().any(|(n, m)| n == dir && m.dir),
            "{dir}: {root:?}"
        );
    }
    // Modes, owners and kinds as the tree had them.
    let shadow = tree.metadata("/etc/shadow").unwrap().unwrap();
    assert_eq!((shadow.mode, shadow.uid, shadow.dir), (0, 0, false));
    assert!(tree.metadata("/etc/os-release").unwrap().unwrap().symlink);
    assert_eq!(tree.metadata("/var/nothing").unwrap(), None);
    assert_eq!(tree.read("/etc/passwd/x").unwrap(), None);
}

#[test]
fn the_rhel_baseline_holds_on_a_hardened_image_read_in_place() {
    let mut rules = policy::rules(&[], &[]).unwrap();
    rules.retain(|r| r.os == policy::Platform::Linux);
    let results = |path: &Path| {
        let tree = rootfs::open(path).unwrap();
        let (_, packages) = inventory::from_tree(tree.as_ref()).unwrap();
        policy::evaluate(&rules, tree.as_ref(), &packages).unwrap()
    };
    // Rocky 8 on XFS over LVM, as the installer hardens it: SELinux enforcing, DEFAULT crypto.
    let rocky = results(&images::qcow2(&image(rhel::Db::Bdb).raw, true));
    for id in [
        "selinux-enforcing",
        "crypto-policy-not-legacy",
        "no-tftp-server",
    ] {
        let r = rocky
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id}: {rocky:?}"));
        assert!(r.passed, "{r:?}");
    }
    let failed: Vec<_> = rocky.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:?}");
    // SUSE is not of the family: its results leave the RHEL rules out.
    let sles = results(&image(rhel::Db::Ndb).raw);
    assert!(
        !sles.iter().any(|r| r.id == "selinux-enforcing"),
        "{sles:?}"
    );
    assert!(sles.iter().any(|r| r.id == "no-tftp-server"));
}

#[test]
fn sqlite_and_ndb_databases_are_what_rpm_lists_too() {
    for db in [rhel::Db::Sqlite, rhel::Db::Ndb] {
        let image = image(db);
        assert_eq!(image.rpm_qa.len(), 8);
        for path in [image.raw.clone(), images::qcow2(&image.raw, false)] {
            let (os, packages, _, _) = inventory_of(&path);
            assert_eq!(
                rpmdb::as_query(&packages),
                image.rpm_qa,
                "{db:?}: {}",
                path.display()
            );
            let want = if db == rhel::Db::Sqlite {
                "AlmaLinux:9"
            } else {
                "SUSE:Linux Enterprise Server 15 SP5"
            };
            assert_eq!(os.ecosystem.as_deref(), Some(want));
        }
    }
}

/// rpm's own comparison of two `[epoch:]version-release` strings (`rpm.vercmp`, which gives a
/// missing epoch the value 0).
fn rpm_vercmp(a: &str, b: &str) -> i32 {
    let out = Command::new("rpm")
        .arg("--eval")
        .arg(format!("%{{lua: print(rpm.vercmp('{a}', '{b}'))}}"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn suse_advisories_apply_to_the_product_os_release_names() {
    // SLES 15 SP5 with its NDB database: the ecosystem is the product's marketing name.
    let (os, packages, _, _) = inventory_of(&image(rhel::Db::Ndb).raw);
    let ecosystem = os.ecosystem.unwrap();
    assert_eq!(ecosystem, "SUSE:Linux Enterprise Server 15 SP5");
    let mut db = osv::Database::default();
    for (id, ecosystem, fixed) in [
        (
            "SUSE-SU-2024:0001-1",
            "SUSE:Linux Enterprise Server 15 SP5",
            "5.1.8-99",
        ),
        // Another product (a module, a service pack) is not this image's.
        (
            "SUSE-SU-2024:0002-1",
            "SUSE:Linux Enterprise Server 15 SP4",
            "5.1.8-99",
        ),
        ("openSUSE-SU-2024:0003-1", "openSUSE:Leap 15.5", "5.1.8-99"),
        // Fixed before what is installed.
        (
            "SUSE-SU-2024:0004-1",
            "SUSE:Linux Enterprise Server 15 SP5",
            "5.1.8-1",
        ),
    ] {
        let json = format!(
            r#"{{"id":"{id}","modified":"2024-05-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"bash"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
        );
        db.add(json.as_bytes(), id).unwrap();
    }
    let bash = packages.iter().find(|p| p.name == "bash").unwrap();
    assert!(rpm_vercmp(&bash.version, "5.1.8-99") < 0 && rpm_vercmp(&bash.version, "5.1.8-1") > 0);
    let found: Vec<String> = db
        .matches(&ecosystem, &packages)
        .into_iter()
        .map(|f| format!("{} {}", f.id, f.package))
        .collect();
    assert_eq!(found, ["SUSE-SU-2024:0001-1 bash"]);
}

#[test]
fn alma_rocky_and_red_hat_advisories_apply_as_rpm_orders_versions() {
    let image = image(rhel::Db::Sqlite);
    let (_, packages, _, _) = inventory_of(&image.raw);
    // (id, ecosystem, package, fixed): every kind of record these distributions publish.
    let records = [
        ("ALSA-2024:0001", "AlmaLinux:9", "openssl", "1:3.0.7-28.el9"),
        (
            "RLSA-2024:0002",
            "Rocky Linux:9",
            "openssl",
            "1:3.0.7-25.el9",
        ),
        (
            "RHSA-2024:0003",
            "Red Hat:enterprise_linux:9::baseos",
            "bash",
            "0:5.1.8-9.el9",
        ),
        // No epoch: epoch 0, as rpm, dnf and the distributions' scanners read it. openssl's
        // epoch 1 is newer than any epoch-0 version; bash has epoch 0 itself.
        ("ALSA-2024:0004", "AlmaLinux:9", "openssl", "3.0.7-99.el9"),
        ("RLSA-2024:0005", "Rocky Linux:9", "bash", "5.1.8-9.el9"),
        (
            "RHSA-2024:0006",
            "Red Hat:enterprise_linux:9::appstream",
            "nodejs",
            "1:18.19.0-1.module+el9.3.0+20.abc",
        ),
        // Extended update support of 9.2 is another product than RHEL 9 itself.
        (
            "RHSA-2024:0007",
            "Red Hat:rhel_eus:9.2::baseos",
            "glibc",
            "0:2.34-99.el9",
        ),
        // A record naming a binary package, not its source.
        (
            "RHSA-2024:0008",
            "Red Hat:enterprise_linux:9::baseos",
            "glibc-common",
            "0:2.34-84.el9",
        ),
    ];
    let mut db = osv::Database::default();
    for (id, ecosystem, name, fixed) in records {
        let json = format!(
            r#"{{"id":"{id}","modified":"2024-05-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
        );
        db.add(json.as_bytes(), id).unwrap();
    }
    let found = |ecosystem: &str| -> Vec<String> {
        let mut v: Vec<String> = db
            .matches(ecosystem, &packages)
            .into_iter()
            .map(|f| {
                format!(
                    "{} {} {}",
                    f.id,
                    f.package,
                    f.fixed.unwrap_or_else(|| "-".into())
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        found("AlmaLinux:9"),
        [
            "ALSA-2024:0001 openssl 1:3.0.7-28.el9",
            "ALSA-2024:0001 openssl-libs 1:3.0.7-28.el9",
        ]
    );
    assert_eq!(found("Rocky Linux:9"), ["RLSA-2024:0005 bash 5.1.8-9.el9"]);
    assert_eq!(
        found("Red Hat:enterprise_linux:9"),
        [
            "RHSA-2024:0003 bash 0:5.1.8-9.el9",
            "RHSA-2024:0006 nodejs 1:18.19.0-1.module+el9.3.0+20.abc",
            "RHSA-2024:0006 npm 1:18.19.0-1.module+el9.3.0+20.abc",
            "RHSA-2024:0008 glibc-common 0:2.34-84.el9",
        ]
    );
    // The os-release of each distribution gives the ecosystem its records are under.
    for (id, want) in [
        ("almalinux", "AlmaLinux:9"),
        ("rocky", "Rocky Linux:9"),
        ("rhel", "Red Hat:enterprise_linux:9"),
    ] {
        let os = inventory::parse_os_release(&format!("ID=\"{id}\"\nVERSION_ID=\"9.3\"\n"));
        assert_eq!(os.ecosystem.as_deref(), Some(want));
    }
    // Each verdict is rpm's own: installed older than the fix, by rpm.vercmp.
    for (id, _, name, fixed) in records {
        for p in packages
            .iter()
            .filter(|p| p.source == name || p.name == name)
        {
            let older = rpm_vercmp(&p.version, fixed) < 0;
            let applies = !id.starts_with("RHSA-2024:0007");
            let reported = [
                found("AlmaLinux:9"),
                found("Rocky Linux:9"),
                found("Red Hat:enterprise_linux:9"),
            ]
            .concat()
            .iter()
            .any(|l| l.starts_with(&format!("{id} {} ", p.name)));
            assert_eq!(
                reported,
                older && applies,
                "{id} on {} {} (fixed {fixed})",
                p.name,
                p.version
            );
        }
    }
}

#[test]
fn a_damaged_xfs_root_or_striped_volume_is_an_error_that_says_what() {
    let image = image(rhel::Db::Bdb);
    let bytes = std::fs::read(&image.raw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let err = |p: &Path| match ImageTree::open(p) {
        Err(e) => e.to_string(),
        Ok(tree) => inventory::from_tree(&tree)
            .map(|_| ())
            .unwrap_err()
            .to_string(),
    };
    // Where the volumes start: pv0 after /boot (1 MiB + 32 MiB), data 1 MiB into it.
    let pv0 = (1 + 32) << 20;
    let root_fs = pv0 + (1 << 20);
    // The root volume's superblock names a root inode outside the filesystem.
    let mut bad = bytes.clone();
    bad[root_fs + 56..root_fs + 64].copy_from_slice(&u64::MAX.to_be_bytes());
    let e = err(&write("rootino.raw", &bad));
    assert!(e.contains("XFS") && e.contains("rl/root"), "{e}");
    // The striped volume's chunk size does not divide its stripes' areas.
    // Every copy of the metadata, on both physical volumes, says so.
    let mut bad = bytes.clone();
    let pv1 = pv0 + (160 << 20);
    for pv in [pv0, pv1] {
        let head = &mut bad[pv..pv + (1 << 20)];
        let mut n = 0;
        while let Some(at) = head.windows(17).position(|w| w == b"stripe_size = 128") {
            head[at..at + 17].copy_from_slice(b"stripe_size = 96 ");
            n += 1;
        }
        assert!(n > 0);
    }
    let e = err(&write("chunk.raw", &bad));
    assert!(e.contains("rl/var") && e.contains("whole"), "{e}");
}
