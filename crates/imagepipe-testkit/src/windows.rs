//! Windows disk images for the scan's tests, made with the tools that make and edit them
//! outside Windows: registry hives written by hivex (`hivexregedit --merge` of `.reg` text)
//! into a minimal hive that [`minimal_hive`] writes, NTFS volumes made by `mkntfs` and filled
//! by `ntfscp` (ntfs-3g), partitioned with `sfdisk`, converted with `qemu-img`.
//!
//! [`server_2022`] lays out a Windows Server 2022 Datacenter (Desktop Experience) system as
//! Windows installs it on a UEFI machine: GPT with an EFI system partition (FAT32), the
//! Microsoft reserved partition, the NTFS OS volume and an NTFS recovery partition (WinRE).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::images::{run, sbin};

/// The hive bins' first cell (the root key) lies after the 32-byte bin header.
const ROOT_CELL: u32 = 0x20;

/// A cell: its size (negative: allocated), then `data`, padded to a multiple of 8.
pub fn cell(data: &[u8]) -> Vec<u8> {
    let len = (4 + data.len()).div_ceil(8) * 8;
    let mut out = (-(len as i32)).to_le_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(len, 0);
    out
}

/// A registry hive that holds only its root key, named `root_name`: the smallest file hivex
/// opens for writing (hivex edits hives but cannot create one).
///
/// The layout is the one Maxim Suhanov's "Windows registry file format specification"
/// (github.com/msuhanov/regf) describes, version 1.5 (Windows XP and later):
/// - a 4096-byte base block: `regf`, equal primary and secondary sequence numbers (a hive
///   written back completely), format 1.5, type 0 (primary file), format 1 (direct memory
///   load), the root cell's offset, the bins' size, clustering factor 1, and at 508 the XOR of
///   the 127 words before it;
/// - one 4096-byte hive bin (`hbin`, offset 0, size 4096) holding the root key node (`nk`,
///   flags `KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME`, no subkeys, values or class), its
///   security cell (`sk`, linked to itself, one reference, a self-relative descriptor owned by
///   BUILTIN\Administrators with group SYSTEM and no DACL) and one free cell to the bin's end.
pub fn minimal_hive(root_name: &str) -> Vec<u8> {
    let name = root_name.as_bytes();
    assert!(root_name.is_ascii(), "a compressed (Latin-1) root name");
    let nk_len = cell(&vec![0; 0x4c + name.len()]).len() as u32;
    let sk_offset = ROOT_CELL + nk_len;

    let mut nk = vec![0u8; 0x4c];
    nk[0..2].copy_from_slice(b"nk");
    nk[2..4].copy_from_slice(&0x002cu16.to_le_bytes());
    let fields: [(usize, u32); 10] = [
        (0x10, 0),         // parent (none)
        (0x14, 0),         // subkeys
        (0x18, 0),         // volatile subkeys
        (0x1c, u32::MAX),  // subkey list
        (0x20, u32::MAX),  // volatile subkey list
        (0x24, 0),         // values
        (0x28, u32::MAX),  // value list
        (0x2c, sk_offset), // security
        (0x30, u32::MAX),  // class name
        (0x34, 0),         // largest subkey name
    ];
    for (at, v) in fields {
        nk[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    nk[0x48..0x4a].copy_from_slice(&(name.len() as u16).to_le_bytes());
    nk.extend_from_slice(name);

    // Self-relative security descriptor: revision 1, SE_SELF_RELATIVE, owner at 20, group at 36.
    let mut sd = vec![1u8, 0];
    sd.extend_from_slice(&0x8000u16.to_le_bytes());
    for v in [20u32, 36, 0, 0] {
        sd.extend_from_slice(&v.to_le_bytes());
    }
    sd.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 5]); // S-1-5-32-544
    sd.extend_from_slice(&32u32.to_le_bytes());
    sd.extend_from_slice(&544u32.to_le_bytes());
    sd.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5]); // S-1-5-18
    sd.extend_from_slice(&18u32.to_le_bytes());
    let mut sk = b"sk\0\0".to_vec();
    for v in [sk_offset, sk_offset, 1, sd.len() as u32] {
        sk.extend_from_slice(&v.to_le_bytes());
    }
    sk.extend_from_slice(&sd);

    let mut bin = vec![0u8; 4096];
    bin[0..4].copy_from_slice(b"hbin");
    bin[8..12].copy_from_slice(&4096u32.to_le_bytes());
    let cells = [cell(&nk), cell(&sk)].concat();
    let end = ROOT_CELL as usize + cells.len();
    bin[ROOT_CELL as usize..end].copy_from_slice(&cells);
    bin[end..end + 4].copy_from_slice(&((4096 - end) as i32).to_le_bytes());

    let mut base = vec![0u8; 4096];
    base[0..4].copy_from_slice(b"regf");
    let words: [(usize, u32); 10] = [
        (4, 1),  // primary sequence number
        (8, 1),  // secondary sequence number
        (20, 1), // major version
        (24, 5), // minor version
        (28, 0), // primary file
        (32, 1), // direct memory load
        (36, ROOT_CELL),
        (40, 4096), // hive bins data size
        (44, 1),    // clustering factor
        (48, 0),
    ];
    for (at, v) in words {
        base[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    let mut sum = (0..508).step_by(4).fold(0u32, |x, at| {
        x ^ u32::from_le_bytes(base[at..at + 4].try_into().unwrap())
    });
    if sum == 0 {
        sum = 1;
    } else if sum == u32::MAX {
        sum = u32::MAX - 1;
    }
    base[508..512].copy_from_slice(&sum.to_le_bytes());
    [base, bin].concat()
}

/// A registry value as a `.reg` file writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reg {
    Sz(String),
    ExpandSz(String),
    Dword(u32),
    Qword(u64),
    Binary(Vec<u8>),
    MultiSz(Vec<String>),
}

pub fn sz(s: &str) -> Reg {
    Reg::Sz(s.to_string())
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Reg {
    fn reg_text(&self) -> String {
        match self {
            // hivexregedit reads a .reg file as bytes: text beyond ASCII goes in as UTF-16LE.
            Reg::Sz(s) if !s.is_ascii() => format!("hex(1):{}", hex(&utf16z(s))),
            Reg::Sz(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            Reg::ExpandSz(s) => format!("hex(2):{}", hex(&utf16z(s))),
            Reg::Dword(n) => format!("dword:{n:08x}"),
            Reg::Qword(n) => format!("hex(b):{}", hex(&n.to_le_bytes())),
            Reg::Binary(b) => format!("hex:{}", hex(b)),
            Reg::MultiSz(list) => {
                let mut bytes: Vec<u8> = list.iter().flat_map(|s| utf16z(s)).collect();
                bytes.extend_from_slice(&[0, 0]);
                format!("hex(7):{}", hex(&bytes))
            }
        }
    }
}

/// A key with its values; `path` is below the hive's root (`Microsoft\Windows NT\…`).
pub type Key = (String, Vec<(String, Reg)>);

/// `.reg` text for `keys` under `prefix` (`HKEY_LOCAL_MACHINE\SOFTWARE`), every parent key
/// listed before its children (hivexregedit creates a key only under an existing one).
pub fn reg_text(prefix: &str, keys: &[Key]) -> String {
    let mut all: BTreeMap<String, Vec<(String, Reg)>> = BTreeMap::new();
    for (path, values) in keys {
        let parts: Vec<&str> = path.split('\\').collect();
        for i in 1..parts.len() {
            all.entry(parts[..i].join("\\")).or_default();
        }
        all.entry(path.clone())
            .or_default()
            .extend(values.iter().cloned());
    }
    let mut out = String::from("Windows Registry Editor Version 5.00\n\n");
    // Parents sort before their children when `\` sorts first.
    let mut paths: Vec<&String> = all.keys().collect();
    paths.sort_by_key(|p| p.split('\\').map(str::to_string).collect::<Vec<_>>());
    for path in paths {
        out.push_str(&format!("[{prefix}\\{path}]\n"));
        for (name, value) in &all[path] {
            let name = if name.is_empty() {
                "@".to_string()
            } else {
                format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
            };
            out.push_str(&format!("{name}={}\n", value.reg_text()));
        }
        out.push('\n');
    }
    out
}

/// Writes a hive at `out`: the minimal hive, with `keys` merged in by hivexregedit.
pub fn hive(out: &Path, hive_name: &str, keys: &[Key]) {
    std::fs::write(out, minimal_hive(&format!("CMI-CreateHive{{{hive_name}}}"))).unwrap();
    let reg = out.with_extension("reg");
    std::fs::write(
        &reg,
        reg_text(&format!("HKEY_LOCAL_MACHINE\\{hive_name}"), keys),
    )
    .unwrap();
    run(Command::new("hivexregedit")
        .arg("--merge")
        .arg("--prefix")
        .arg(format!("HKEY_LOCAL_MACHINE\\{hive_name}"))
        .arg(out)
        .arg(&reg));
}

/// A value as `hivexregedit --export` shows it, decoded: strings (types 1 and 2) as text up to
/// their NUL, DWORDs and QWORDs as numbers, anything else as its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    Text(String),
    Number(u64),
    Bytes(u32, Vec<u8>),
}

impl Exported {
    pub fn text(&self) -> String {
        match self {
            Exported::Text(s) => s.clone(),
            Exported::Number(n) => n.to_string(),
            Exported::Bytes(_, b) => hex(b).replace(',', ""),
        }
    }
}

fn unquote(s: &str) -> String {
    let inner = &s[1..s.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every key under `key` (`\Microsoft\Windows NT\CurrentVersion`, itself included) of the hive
/// at `path`, as `hivexregedit --export` shows it: key path below the hive → value name
/// (lowercase, as the registry compares them) → value.
pub fn export(path: &Path, key: &str) -> BTreeMap<String, BTreeMap<String, Exported>> {
    let text = run(Command::new("hivexregedit")
        .arg("--export")
        .arg("--prefix")
        .arg("HIVE")
        .arg(path)
        .arg(key));
    let text = text.replace("\\\n  ", "");
    let mut out: BTreeMap<String, BTreeMap<String, Exported>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(k) = line
            .strip_prefix("[HIVE\\")
            .and_then(|l| l.strip_suffix(']'))
        {
            let k = k.trim_end_matches('\\').to_string();
            out.entry(k.clone()).or_default();
            current = Some(k);
            continue;
        }
        let Some(k) = &current else { continue };
        if line.trim().is_empty() || line.starts_with("Windows Registry") {
            continue;
        }
        // The name is quoted (with \\ and \" escapes) or @; the value follows `=`.
        let (name, value) = if let Some(rest) = line.strip_prefix('@') {
            (String::new(), rest.strip_prefix('=').unwrap())
        } else {
            let mut end = 1;
            let bytes = line.as_bytes();
            while bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            (unquote(&line[..=end]), &line[end + 2..])
        };
        let decoded = if let Some(d) = value.strip_prefix("dword:") {
            Exported::Number(u64::from(u32::from_str_radix(d, 16).unwrap()))
        } else if value.starts_with('"') {
            Exported::Text(unquote(value))
        } else {
            let (kind, data) = value.split_once(':').unwrap();
            let kind = match kind {
                "hex" => 3,
                k => u32::from_str_radix(&k[4..k.len() - 1], 16).unwrap(),
            };
            let bytes: Vec<u8> = data
                .split(',')
                .filter(|b| !b.is_empty())
                .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
                .collect();
            match kind {
                1 | 2 => {
                    let units: Vec<u16> = bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    let s = String::from_utf16_lossy(&units);
                    Exported::Text(s.split('\0').next().unwrap().to_string())
                }
                4 => Exported::Number(u64::from(u32::from_le_bytes(
                    bytes[..4].try_into().unwrap(),
                ))),
                11 => Exported::Number(u64::from_le_bytes(bytes[..8].try_into().unwrap())),
                k => Exported::Bytes(k, bytes),
            }
        };
        out.get_mut(k).unwrap().insert(name.to_lowercase(), decoded);
    }
    out
}

/// An NTFS volume of `size_mib` at `out`, labelled `label`, made by mkntfs (with `start` as
/// the partition's first sector, as Windows records it), holding `files` (path on the volume,
/// file to copy): the directories are made through ntfs-3g (ntfscp makes files only, and
/// needs root and /dev/fuse for that mount), every file is written by ntfscp.
pub fn ntfs(out: &Path, size_mib: u64, label: &str, start: u64, files: &[(&str, &Path)]) {
    let _ = std::fs::remove_file(out);
    run(Command::new("truncate")
        .arg(format!("--size={}", size_mib << 20))
        .arg(out));
    run(Command::new(sbin("mkntfs"))
        .args(["-F", "-Q", "-q", "-L", label, "-p"])
        .arg(start.to_string())
        .args(["-H", "255", "-S", "63"])
        .arg(out));
    let mut dirs: Vec<String> = files
        .iter()
        .filter_map(|(p, _)| p.rsplit_once('/').map(|(d, _)| d.to_string()))
        .filter(|d| !d.is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    if !dirs.is_empty() {
        let mnt = out.with_extension("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        run(Command::new("ntfs-3g").arg(out).arg(&mnt));
        let made = dirs
            .iter()
            .try_for_each(|d| std::fs::create_dir_all(mnt.join(d.trim_start_matches('/'))));
        run(Command::new("fusermount").arg("-u").arg(&mnt));
        made.unwrap();
        std::fs::remove_dir(&mnt).unwrap();
    }
    for (path, from) in files {
        run(Command::new(sbin("ntfscp"))
            .arg("-q")
            .arg(out)
            .arg(from)
            .arg(path));
    }
}

/// Copies `from` into `disk` at byte `at`, leaving holes as holes.
pub fn place(disk: &Path, from: &Path, at: u64) {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    let bytes = std::fs::read(from).unwrap();
    for (i, block) in bytes.chunks(64 << 10).enumerate() {
        if block.iter().any(|&b| b != 0) {
            file.write_all_at(block, at + i as u64 * (64 << 10))
                .unwrap();
        }
    }
}

/// Partitions `disk` (`size_mib`) with sfdisk's `script`.
pub fn partition(disk: &Path, size_mib: u64, script: &str) {
    let _ = std::fs::remove_file(disk);
    run(Command::new("truncate")
        .arg(format!("--size={}", size_mib << 20))
        .arg(disk));
    let mut child = Command::new(sbin("sfdisk"))
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk {script}");
}

pub const GPT_EFI: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const GPT_MSR: &str = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";
pub const GPT_BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
pub const GPT_RECOVERY: &str = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC";
pub const GPT_LDM_DATA: &str = "AF9B60A0-1431-4F62-BC68-3311714A69AD";

/// The hive files of a system, by name (`SOFTWARE`, `SYSTEM`, `SAM`, `SECURITY`).
#[derive(Debug)]
pub struct Hives {
    pub dir: PathBuf,
    pub names: Vec<&'static str>,
}

impl Hives {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One installed program of [`server_2022`]: Uninstall subkey, name, version, publisher,
/// 32-bit (`WOW6432Node`).
pub const PROGRAMS: &[(&str, &str, &str, &str, bool)] = &[
    ("7-Zip", "7-Zip 23.01 (x64)", "23.01", "Igor Pavlov", false),
    (
        "{5FCE6D76-F5DC-37AB-B2B8-22AB8CEDB1D4}",
        "VMware Tools",
        "12.4.0.23259341",
        "VMware, Inc.",
        false,
    ),
    (
        "{A9B3E2F0-1C5D-4E0B-9B2F-6B7A2D3C4E5F}",
        "PowerShell 7-x64",
        "7.4.6.0",
        "Microsoft Corporation",
        false,
    ),
    (
        "{C6F4D3A1-2B7E-4D8C-9E1F-0A2B3C4D5E6F}",
        "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810",
        "14.40.33810.0",
        "Microsoft Corporation",
        false,
    ),
    (
        "Editeur-Unicode",
        "Éditeur de texte – Unicode",
        "2.1",
        "Société Exemple",
        false,
    ),
    (
        "Notepad++",
        "Notepad++ (32-bit x86)",
        "8.6.9",
        "Notepad++ Team",
        true,
    ),
    (
        "{2E72FA1F-BADB-4337-B8AE-F7C17EE7D3B5}",
        "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.40.33810",
        "14.40.33810.0",
        "Microsoft Corporation",
        true,
    ),
    (
        "Google Chrome",
        "Google Chrome",
        "131.0.6778.86",
        "Google LLC",
        true,
    ),
];

/// Servicing packages of [`server_2022`]: name, `CurrentState`, `InstallLocation`.
pub const PACKAGES: &[(&str, u32, &str)] = &[
    // The cumulative update: its package is RollupFix, its KB only in where it came from.
    (
        "Package_for_RollupFix~31bf3856ad364e35~amd64~~20348.2849.1.15",
        0x70,
        "\\\\?\\C:\\Windows\\SoftwareDistribution\\Download\\0c1d\\Windows10.0-KB5046616-x64.cab",
    ),
    (
        "Package_for_KB5046616~31bf3856ad364e35~amd64~~20348.2849.1.15",
        0x70,
        "",
    ),
    (
        "Package_2_for_KB5046616~31bf3856ad364e35~amd64~~20348.2849.1.15",
        0x70,
        "",
    ),
    (
        "Package_for_KB5012170~31bf3856ad364e35~amd64~~20348.880.1.1",
        0x70,
        "",
    ),
    (
        "Package_for_KB5044026~31bf3856ad364e35~amd64~~10.0.1.5",
        0x80,
        "",
    ),
    // Superseded by the cumulative update: no longer installed.
    (
        "Package_for_KB5044281~31bf3856ad364e35~amd64~~20348.2762.1.9",
        0x50,
        "",
    ),
    // Staged only.
    (
        "Package_for_KB5048654~31bf3856ad364e35~amd64~~20348.2966.1.3",
        0x40,
        "",
    ),
    (
        "Package_for_ServicingStack_2700~31bf3856ad364e35~amd64~~20348.2700.1.0",
        0x70,
        "",
    ),
];

/// The installed updates [`PACKAGES`] imply.
pub const KBS: &[&str] = &["KB5012170", "KB5044026", "KB5046616"];

/// The Windows Server 2022 hives: build 10.0.20348.2849, [`PROGRAMS`], [`PACKAGES`] (and
/// `filler` foundation packages, for subkey lists of a real system's length), and these
/// breaches of the baseline: the SMBv1 server on, Guest enabled, RDP without NLA, the public
/// firewall profile off, automatic logon with a password in Winlogon. ControlSet002 (not the
/// current one) is compliant, so a reader that ignores `Select\Current` misses the breaches.
pub fn server_2022_hives(dir: &Path, filler: usize) -> Hives {
    std::fs::create_dir_all(dir).unwrap();
    let k = |path: &str, values: Vec<(&str, Reg)>| -> Key {
        (
            path.to_string(),
            values
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        )
    };
    let mut software = vec![
        k(
            "Microsoft\\Windows NT\\CurrentVersion",
            vec![
                ("ProductName", sz("Windows Server 2022 Datacenter")),
                ("EditionID", sz("ServerDatacenter")),
                ("CurrentBuild", sz("20348")),
                ("CurrentBuildNumber", sz("20348")),
                ("UBR", Reg::Dword(2849)),
                ("DisplayVersion", sz("21H2")),
                ("InstallationType", sz("Server")),
                ("CurrentVersion", sz("6.3")),
                ("CurrentMajorVersionNumber", Reg::Dword(10)),
                ("CurrentMinorVersionNumber", Reg::Dword(0)),
                ("BuildLabEx", sz("20348.1.amd64fre.fe_release.210507-1500")),
                ("InstallTime", Reg::Qword(133_000_000_000_000_000)),
                ("SystemRoot", Reg::ExpandSz("C:\\Windows".into())),
            ],
        ),
        k(
            "Microsoft\\Windows NT\\CurrentVersion\\Winlogon",
            vec![
                ("AutoAdminLogon", sz("1")),
                ("DefaultUserName", sz("Administrator")),
                ("DefaultPassword", sz("Winter2024!secret")),
                ("Shell", sz("explorer.exe")),
            ],
        ),
        k(
            "Policies\\Microsoft\\Windows NT\\DNSClient",
            vec![("EnableMulticast", Reg::Dword(0))],
        ),
        // An Uninstall entry Windows hides (no DisplayName): not a program.
        k(
            "Microsoft\\Windows\\CurrentVersion\\Uninstall\\Connection Manager",
            vec![("SystemComponent", Reg::Dword(1))],
        ),
    ];
    for (key, name, version, publisher, x86) in PROGRAMS {
        let base = if *x86 {
            "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall"
        } else {
            "Microsoft\\Windows\\CurrentVersion\\Uninstall"
        };
        software.push(k(
            &format!("{base}\\{key}"),
            vec![
                ("DisplayName", sz(name)),
                ("DisplayVersion", sz(version)),
                ("Publisher", sz(publisher)),
                ("InstallDate", sz("20241112")),
            ],
        ));
    }
    let cbs = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages";
    for (name, state, location) in PACKAGES {
        let mut values = vec![
            ("CurrentState", Reg::Dword(*state)),
            ("Visibility", Reg::Dword(1)),
        ];
        if !location.is_empty() {
            values.push(("InstallLocation", sz(location)));
        }
        software.push(k(&format!("{cbs}\\{name}"), values));
    }
    for i in 0..filler {
        software.push(k(
            &format!(
                "{cbs}\\Microsoft-Windows-Feature{i:04}-Package~31bf3856ad364e35~amd64~~10.0.20348.2849"
            ),
            vec![("CurrentState", Reg::Dword(0x70))],
        ));
    }

    let mut system = vec![k(
        "Select",
        vec![
            ("Current", Reg::Dword(1)),
            ("Default", Reg::Dword(1)),
            ("LastKnownGood", Reg::Dword(2)),
        ],
    )];
    for (set, bad) in [("ControlSet001", true), ("ControlSet002", false)] {
        let on = |breach: bool| Reg::Dword(u32::from(!breach));
        system.extend([
            k(
                &format!("{set}\\Control\\Session Manager\\Environment"),
                vec![("PROCESSOR_ARCHITECTURE", sz("AMD64"))],
            ),
            k(
                &format!("{set}\\Services\\LanmanServer\\Parameters"),
                vec![("SMB1", Reg::Dword(u32::from(bad)))],
            ),
            k(
                &format!("{set}\\Services\\mrxsmb10"),
                vec![("Start", Reg::Dword(4))],
            ),
            k(
                &format!("{set}\\Control\\Terminal Server\\WinStations\\RDP-Tcp"),
                vec![("UserAuthentication", on(bad))],
            ),
            k(
                &format!(
                    "{set}\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile"
                ),
                vec![("EnableFirewall", Reg::Dword(1))],
            ),
            k(
                &format!(
                    "{set}\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile"
                ),
                vec![("EnableFirewall", Reg::Dword(1))],
            ),
            k(
                &format!(
                    "{set}\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile"
                ),
                vec![("EnableFirewall", on(bad))],
            ),
        ]);
    }

    // A SAM account's F value: the account control bits at 0x38 (0x0010 normal account, 0x0200
    // password does not expire, 0x0004 password not required, 0x0001 disabled).
    let f = |acb: u16| {
        let mut f = vec![0u8; 0x50];
        f[0] = 3;
        f[0x30..0x34].copy_from_slice(&0x1f4u32.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&acb.to_le_bytes());
        Reg::Binary(f)
    };
    let sam = vec![
        k(
            "SAM\\Domains\\Account\\Users\\000001F4",
            vec![("F", f(0x0210))],
        ),
        k(
            "SAM\\Domains\\Account\\Users\\000001F5",
            vec![("F", f(0x0214))],
        ),
        k("SAM\\Domains\\Account\\Users\\Names\\Administrator", vec![]),
        k("SAM\\Domains\\Account\\Users\\Names\\Guest", vec![]),
    ];
    let security = vec![k("Policy\\Secrets\\NL$KM", vec![])];

    hive(&dir.join("SOFTWARE"), "SOFTWARE", &software);
    hive(&dir.join("SYSTEM"), "SYSTEM", &system);
    hive(&dir.join("SAM"), "SAM", &sam);
    hive(&dir.join("SECURITY"), "SECURITY", &security);
    for name in ["SOFTWARE", "SYSTEM", "SAM", "SECURITY"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}.reg")));
    }
    Hives {
        dir: dir.to_path_buf(),
        names: vec!["SOFTWARE", "SYSTEM", "SAM", "SECURITY"],
    }
}

/// Partition sizes of [`server_2022`], in MiB: EFI, MSR, OS, recovery.
pub const LAYOUT_MIB: [u64; 4] = [16, 16, 64, 8];

/// A GPT disk at `dir/windows.raw` as Windows Setup lays out a UEFI system: EFI system
/// partition (FAT32), MSR, the OS volume holding `hives` under Windows\System32\config (and
/// a few system files), a recovery volume (WinRE); `os_type` is the OS partition's type GUID.
pub fn gpt_disk(dir: &Path, hives: &Hives, os_type: &str) -> PathBuf {
    let [efi, msr, os, recovery] = LAYOUT_MIB;
    let raw = dir.join("windows.raw");
    let mut starts = Vec::new();
    let mut at = 1u64; // MiB
    for size in LAYOUT_MIB {
        starts.push(at);
        at += size;
    }
    partition(
        &raw,
        at + 1,
        &format!(
            "label: gpt\nstart={}, size={}, type={GPT_EFI}, name=\"EFI system partition\"\nstart={}, size={}, type={GPT_MSR}, name=\"Microsoft reserved partition\"\nstart={}, size={}, type={os_type}, name=\"Basic data partition\"\nstart={}, size={}, type={GPT_RECOVERY}, name=\"Basic data partition\"\n",
            starts[0] * 2048,
            efi * 2048,
            starts[1] * 2048,
            msr * 2048,
            starts[2] * 2048,
            os * 2048,
            starts[3] * 2048,
            recovery * 2048
        ),
    );
    let esp = dir.join("esp.fat");
    let _ = std::fs::remove_file(&esp);
    run(Command::new(sbin("mkfs.vfat"))
        .args(["-F", "32", "-n", "SYSTEM", "-C"])
        .arg(&esp)
        .arg((efi * 1024).to_string()));
    place(&raw, &esp, starts[0] << 20);
    std::fs::remove_file(&esp).unwrap();

    let os_volume = dir.join("os.ntfs");
    let kernel = dir.join("ntoskrnl.exe");
    std::fs::write(&kernel, b"MZ not a kernel").unwrap();
    let mut files: Vec<(String, PathBuf)> = hives
        .names
        .iter()
        .map(|n| (format!("/Windows/System32/config/{n}"), hives.path(n)))
        .collect();
    files.push(("/Windows/System32/ntoskrnl.exe".into(), kernel.clone()));
    let refs: Vec<(&str, &Path)> = files
        .iter()
        .map(|(p, f)| (p.as_str(), f.as_path()))
        .collect();
    ntfs(&os_volume, os, "Windows", starts[2] * 2048, &refs);
    place(&raw, &os_volume, starts[2] << 20);
    std::fs::remove_file(&os_volume).unwrap();

    let re = dir.join("recovery.ntfs");
    let wim = dir.join("Winre.wim");
    std::fs::write(&wim, b"MSWIM\0\0\0 not an image").unwrap();
    ntfs(
        &re,
        recovery,
        "Recovery",
        starts[3] * 2048,
        &[("/Recovery/WindowsRE/Winre.wim", &wim)],
    );
    place(&raw, &re, starts[3] << 20);
    std::fs::remove_file(&re).unwrap();
    std::fs::remove_file(&kernel).unwrap();
    std::fs::remove_file(&wim).unwrap();
    raw
}

/// The byte offset of the OS volume in [`gpt_disk`].
pub fn gpt_os_offset() -> u64 {
    (1 + LAYOUT_MIB[0] + LAYOUT_MIB[1]) << 20
}

/// An MBR (BIOS) disk at `dir/windows-mbr.raw`: the "System Reserved" NTFS partition (active)
/// and the OS volume, both type 0x07.
pub fn mbr_disk(dir: &Path, hives: &Hives) -> PathBuf {
    let raw = dir.join("windows-mbr.raw");
    let (reserved, os) = (8u64, 64u64);
    partition(
        &raw,
        1 + reserved + os + 1,
        &format!(
            "label: dos\nstart=2048, size={}, type=7, bootable\nstart={}, size={}, type=7\n",
            reserved * 2048,
            (1 + reserved) * 2048,
            os * 2048
        ),
    );
    let bootmgr = dir.join("bootmgr");
    std::fs::write(&bootmgr, b"not a boot manager").unwrap();
    let sys = dir.join("reserved.ntfs");
    ntfs(
        &sys,
        reserved,
        "System Reserved",
        2048,
        &[("/bootmgr", &bootmgr)],
    );
    place(&raw, &sys, 1 << 20);
    let files: Vec<(String, PathBuf)> = hives
        .names
        .iter()
        .map(|n| (format!("/Windows/System32/config/{n}"), hives.path(n)))
        .collect();
    let refs: Vec<(&str, &Path)> = files
        .iter()
        .map(|(p, f)| (p.as_str(), f.as_path()))
        .collect();
    let os_volume = dir.join("os-mbr.ntfs");
    ntfs(&os_volume, os, "Windows", (1 + reserved) * 2048, &refs);
    place(&raw, &os_volume, (1 + reserved) << 20);
    for f in [&sys, &os_volume, &bootmgr] {
        std::fs::remove_file(f).unwrap();
    }
    raw
}
