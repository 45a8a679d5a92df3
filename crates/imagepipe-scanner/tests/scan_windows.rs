//! Windows images as Windows Setup lays them out (`imagepipe_testkit::windows`): GPT with EFI,
//! MSR, the NTFS OS volume and a recovery volume (and a BIOS/MBR variant), made by mkntfs,
//! ntfs-3g and ntfscp, with registry hives written by hivex. Read from raw, qcow2,
//! stream-optimized VMDK and OVA, the inventory must be what `hivexregedit --export` shows of
//! the same keys; BitLocker and dynamic disks must be refused by name.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use imagepipe_testkit::{images, windows};

use imagepipe_scanner::policy;
use imagepipe_scanner::rootfs;
use imagepipe_scanner::windows as win;

struct Built {
    _dir: tempfile::TempDir,
    hives: windows::Hives,
    gpt: PathBuf,
    mbr: PathBuf,
}

/// One image for the whole file: making it takes a few seconds.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // 400 foundation packages: subkey lists as long as a real system's, over several bins.
        let hives = windows::server_2022_hives(&dir.path().join("hives"), 400);
        let gpt = windows::gpt_disk(dir.path(), &hives, windows::GPT_BASIC_DATA);
        let mbr = windows::mbr_disk(dir.path(), &hives);
        Built {
            _dir: dir,
            hives,
            gpt,
            mbr,
        }
    })
}

/// What the inventory must be, from `hivexregedit --export` of the hives.
#[derive(Debug, PartialEq)]
struct Expected {
    product_name: String,
    edition: String,
    build: String,
    display_version: String,
    installation_type: String,
    programs: BTreeSet<(String, String, String, String)>,
    kbs: BTreeSet<String>,
}

fn kb_in(text: &str) -> Option<String> {
    // "…_for_KB5046616~…" or "…-KB5046616-x64.cab": KB and at least six digits.
    let upper = text.to_uppercase();
    upper.match_indices("KB").find_map(|(at, _)| {
        let digits: String = upper[at + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (digits.len() >= 6).then(|| format!("KB{digits}"))
    })
}

fn expected(software: &Path) -> Expected {
    let cv = windows::export(software, "\\Microsoft\\Windows NT\\CurrentVersion");
    let v = &cv["Microsoft\\Windows NT\\CurrentVersion"];
    let t = |n: &str| {
        v.get(&n.to_lowercase())
            .map(|x| x.text())
            .unwrap_or_default()
    };
    let build = format!(
        "{}.{}.{}.{}",
        t("CurrentMajorVersionNumber"),
        t("CurrentMinorVersionNumber"),
        t("CurrentBuild"),
        t("UBR")
    );
    let mut programs = BTreeSet::new();
    for (base, arch) in [
        ("Microsoft\\Windows\\CurrentVersion\\Uninstall", "x64"),
        (
            "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
            "x86",
        ),
    ] {
        for (key, values) in windows::export(software, &format!("\\{base}")) {
            let Some(sub) = key.strip_prefix(&format!("{base}\\")) else {
                continue;
            };
            if sub.contains('\\') {
                continue;
            }
            let Some(name) = values.get("displayname") else {
                continue;
            };
            let get = |n: &str| values.get(n).map(|x| x.text()).unwrap_or_default();
            programs.insert((
                name.text(),
                get("displayversion"),
                get("publisher"),
                arch.to_string(),
            ));
        }
    }
    let cbs = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages";
    let mut kbs = BTreeSet::new();
    for (key, values) in windows::export(software, &format!("\\{cbs}")) {
        let Some(package) = key.strip_prefix(&format!("{cbs}\\")) else {
            continue;
        };
        let installed = matches!(
            values.get("currentstate"),
            Some(windows::Exported::Number(0x70 | 0x80))
        );
        if !installed {
            continue;
        }
        let name = package.split('~').next().unwrap();
        if let Some(kb) =
            kb_in(name).or_else(|| values.get("installlocation").and_then(|l| kb_in(&l.text())))
        {
            kbs.insert(kb);
        }
    }
    Expected {
        product_name: t("ProductName"),
        edition: t("EditionID"),
        build,
        display_version: t("DisplayVersion"),
        installation_type: t("InstallationType"),
        programs,
        kbs,
    }
}

fn inventory_of(image: &Path) -> (win::Inventory, u64, u64) {
    let tree = rootfs::open(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let (inv, _) = win::inventory(tree.as_ref()).unwrap().unwrap();
    (inv, tree.bytes_read(), tree.size())
}

fn actual(inv: &win::Inventory) -> Expected {
    Expected {
        product_name: inv.os.product_name.clone(),
        edition: inv.os.edition.clone(),
        build: inv.os.build.clone(),
        display_version: inv.os.display_version.clone(),
        installation_type: inv.os.installation_type.clone(),
        programs: inv
            .programs
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.version.clone(),
                    p.publisher.clone(),
                    p.arch.clone(),
                )
            })
            .collect(),
        kbs: inv.updates.iter().map(|u| u.kb.clone()).collect(),
    }
}

#[test]
fn every_format_yields_the_inventory_hivex_exports() {
    let b = built();
    let want = expected(&b.hives.path("SOFTWARE"));
    // The oracle itself sees the layout the test wrote.
    assert_eq!(want.build, "10.0.20348.2849");
    assert_eq!(want.programs.len(), windows::PROGRAMS.len());
    assert_eq!(
        want.kbs,
        windows::KBS.iter().map(|k| k.to_string()).collect()
    );

    let images = [
        ("raw GPT", b.gpt.clone()),
        ("raw MBR", b.mbr.clone()),
        ("qcow2", images::qcow2(&b.gpt, false)),
        ("compressed qcow2", images::qcow2(&b.gpt, true)),
        (
            "stream-optimized VMDK",
            images::vmdk(&b.gpt, "streamOptimized"),
        ),
        ("OVA", images::ova(&b.gpt, "windows")),
    ];
    for (what, image) in &images {
        let (inv, read, size) = inventory_of(image);
        assert_eq!(actual(&inv), want, "{what}");
        assert_eq!(
            inv.os.product.as_deref(),
            Some("Windows Server 2022"),
            "{what}"
        );
        assert_eq!(
            inv.os.cpe.as_deref(),
            Some("cpe:2.3:o:microsoft:windows_server_2022:10.0.20348.2849:*:*:*:*:*:*:*")
        );
        assert_eq!(inv.os.architecture, "AMD64", "{what}");
        // Only what the inventory needs is read, under 5% of the disk.
        eprintln!("{what}: read {read} of {size} bytes");
        assert!(read * 20 < size, "{what}: read {read} of {size} bytes");
    }
}

#[test]
fn the_os_volume_s_files_read_back_byte_for_byte() {
    let b = built();
    let tree = rootfs::open(&b.gpt).unwrap();
    for name in &b.hives.names {
        let on_volume = tree
            .read(&format!("/Windows/System32/config/{name}"))
            .unwrap()
            .unwrap();
        assert_eq!(
            on_volume,
            std::fs::read(b.hives.path(name)).unwrap(),
            "{name}"
        );
    }
    // Names compare as Windows compares them; directories list their long names once.
    assert!(
        tree.read("/windows/system32/CONFIG/software")
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tree.read("/Windows/System32/ntoskrnl.exe")
            .unwrap()
            .unwrap(),
        b"MZ not a kernel"
    );
    let listed: BTreeSet<String> = tree
        .list("/Windows/System32/config")
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        b.hives.names.iter().map(|n| n.to_string()).collect()
    );
    assert!(
        tree.read("/Windows/System32/config/DEFAULT")
            .unwrap()
            .is_none()
    );
    // The recovery volume is not the OS volume.
    assert!(
        tree.read("/Recovery/WindowsRE/Winre.wim")
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_windows_baseline_finds_exactly_the_planted_breaches() {
    let b = built();
    let tree = rootfs::open(&b.gpt).unwrap();
    let rules: Vec<policy::Rule> = policy::rules(&[], &[])
        .unwrap()
        .into_iter()
        .filter(|r| r.os == policy::Platform::Windows)
        .collect();
    assert!(rules.len() >= 6);
    let results = policy::evaluate(&rules, tree.as_ref(), &[]).unwrap();
    let failed: BTreeSet<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from([
            "win-smb1-server-disabled",
            "win-guest-disabled",
            "win-rdp-nla",
            "win-firewall-public",
            "win-no-autologon-password",
        ])
    );
    for r in &results {
        assert!(!r.detail.contains("Winter2024"), "{}: {}", r.id, r.detail);
    }
    // Every rule cites the benchmark item it implements.
    for r in &rules {
        assert!(r.title.contains("CIS WS2022"), "{}", r.title);
    }
}

#[test]
fn bitlocker_and_dynamic_disks_are_refused_by_name() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &Path| rootfs::open(p).map(|_| ()).unwrap_err().to_string();

    // BitLocker writes -FVE-FS- where NTFS has its OEM id.
    let mut disk = std::fs::read(&b.gpt).unwrap();
    let at = windows::gpt_os_offset() as usize + 3;
    disk[at..at + 8].copy_from_slice(b"-FVE-FS-");
    let locked = dir.path().join("bitlocker.raw");
    std::fs::write(&locked, &disk).unwrap();
    let e = err(&locked);
    assert!(e.contains("BitLocker"), "{e}");

    // A dynamic disk: the OS partition is a Logical Disk Manager data partition (GPT) ...
    let ldm_dir = dir.path().join("ldm");
    std::fs::create_dir_all(&ldm_dir).unwrap();
    let ldm = windows::gpt_disk(&ldm_dir, &b.hives, windows::GPT_LDM_DATA);
    let e = err(&ldm);
    assert!(e.contains("dynamic disk"), "{e}");
    // ... or of type 0x42 (MBR).
    let mut mbr = std::fs::read(&b.mbr).unwrap();
    mbr[446 + 16 + 4] = 0x42;
    let dynamic = dir.path().join("dynamic.raw");
    std::fs::write(&dynamic, &mbr).unwrap();
    let e = err(&dynamic);
    assert!(e.contains("dynamic disk"), "{e}");
}

#[test]
fn broken_volumes_and_hives_are_errors_not_panics() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let inventory_err = |p: &Path| match rootfs::open(p) {
        Err(e) => e.to_string(),
        Ok(tree) => win::inventory(tree.as_ref())
            .map(|_| ())
            .unwrap_err()
            .to_string(),
    };
    let disk = std::fs::read(&b.gpt).unwrap();
    let os = windows::gpt_os_offset() as usize;

    // The OS volume's MFT wiped: the volume is refused, naming where it lies.
    let mut wiped = disk.clone();
    let cluster =
        u64::from(u16::from_le_bytes([disk[os + 11], disk[os + 12]])) * u64::from(disk[os + 13]);
    let mft = u64::from_le_bytes(disk[os + 0x30..os + 0x38].try_into().unwrap()) * cluster;
    let mft = os + mft as usize;
    wiped[mft..mft + 64 * 1024].fill(0xa5);
    let e = inventory_err(&write("wiped-mft.raw", &wiped));
    assert!(e.contains(&format!("byte {os}")), "{e}");

    // The disk cut inside the OS volume.
    let e = inventory_err(&write("cut.raw", &disk[..os + (4 << 20)]));
    assert!(!e.is_empty());

    // Hives: one written back only half (sequence numbers differ), one whose root cell lies
    // outside the hive; read from a directory tree, as a mounted volume would be.
    let software = std::fs::read(b.hives.path("SOFTWARE")).unwrap();
    let tree_with = |name: &str, hive: &[u8]| {
        let root = dir.path().join(name);
        let config = root.join("Windows/System32/config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("SOFTWARE"), hive).unwrap();
        root
    };
    let mut dirty = software.clone();
    dirty[4] = dirty[4].wrapping_add(1);
    let e = inventory_err(&tree_with("dirty", &dirty));
    assert!(e.contains("transaction logs"), "{e}");
    let mut outside = software.clone();
    outside[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
    let sum = (0..508).step_by(4).fold(0u32, |x, at| {
        x ^ u32::from_le_bytes(outside[at..at + 4].try_into().unwrap())
    });
    outside[508..512].copy_from_slice(&sum.to_le_bytes());
    let e = inventory_err(&tree_with("outside", &outside));
    assert!(
        e.contains("SOFTWARE") && e.contains("beyond the hive"),
        "{e}"
    );
}

/// Writes the base inputs of the `ntfs` and `hive` fuzz targets (`fuzz/windows-base/`): the
/// SOFTWARE hive of the Windows Server 2022 layout (with 40 foundation packages) and a 4 MiB
/// NTFS volume holding the four hives and a directory of 300 files (an index B+tree), as the
/// tests make them. Run with `--ignored write_fuzz_bases` after changing the layout.
#[test]
#[ignore = "writes the fuzz targets' base inputs"]
fn write_fuzz_bases() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/windows-base");
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hives = windows::server_2022_hives(&dir.path().join("hives"), 40);
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let names: Vec<String> = (0..300)
        .map(|i| format!("/Windows/WinSxS/manifest-{i:03}.manifest"))
        .collect();
    let mut files: Vec<(String, PathBuf)> = hives
        .names
        .iter()
        .map(|n| (format!("/Windows/System32/config/{n}"), hives.path(n)))
        .collect();
    files.extend(names.iter().map(|n| (n.clone(), empty.clone())));
    let refs: Vec<(&str, &Path)> = files
        .iter()
        .map(|(p, f)| (p.as_str(), f.as_path()))
        .collect();
    let volume = dir.path().join("volume.ntfs");
    windows::ntfs(&volume, 4, "Windows", 0, &refs);
    let gzip = |from: &Path, to: &str| {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(out.join(to)).unwrap(),
            flate2::Compression::best(),
        );
        std::io::Write::write_all(&mut gz, &std::fs::read(from).unwrap()).unwrap();
        gz.finish().unwrap();
    };
    gzip(&volume, "ntfs.img.gz");
    gzip(&hives.path("SOFTWARE"), "SOFTWARE.gz");
}

/// The `ntfs` fuzz target's base volume with the changes of one of its inputs applied, as the
/// target applies them.
fn fuzzed_volume(input: &[u8], out: &Path) {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/windows-base/ntfs.img.gz"),
        )
        .unwrap(),
    )
    .read_to_end(&mut bytes)
    .unwrap();
    let sectors: Vec<usize> = (0..bytes.len())
        .step_by(512)
        .filter(|&at| bytes[at..at + 512].iter().any(|&b| b != 0))
        .collect();
    let (&mode, changes) = input.split_first().unwrap();
    for c in changes.chunks_exact(5) {
        let sector = sectors[usize::from(u16::from_le_bytes([c[0], c[1]])) % sectors.len()];
        bytes[sector + usize::from(u16::from_le_bytes([c[2], c[3]])) % 512] ^= c[4];
    }
    if mode & 1 != 0 {
        bytes.truncate((bytes.len() / 2 + usize::from(mode >> 1) * 4096).min(bytes.len()));
    }
    std::fs::write(out, bytes).unwrap();
}

#[test]
fn ntfs_structures_the_ntfs_crate_would_panic_on_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/ntfs");
    let mut seen = 0;
    for entry in std::fs::read_dir(regressions).unwrap() {
        let input = std::fs::read(entry.unwrap().path()).unwrap();
        let volume = dir.path().join("volume.ntfs");
        fuzzed_volume(&input, &volume);
        // An error or a result, never a panic out of the scanner.
        if let Ok(tree) = rootfs::open(&volume) {
            for d in [
                "/",
                "/Windows",
                "/Windows/System32/config",
                "/Windows/WinSxS",
            ] {
                let _ = tree.list(d);
            }
            let _ = win::inventory(tree.as_ref());
        }
        seen += 1;
    }
    assert!(seen > 0);
}
