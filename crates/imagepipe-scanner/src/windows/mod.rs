//! Windows images: the OS volume read in place ([`volume`]: NTFS on GPT or MBR, BitLocker and
//! dynamic disks refused by name), the registry hives read with a reader of our own
//! ([`hive`]), and from them the inventory: the OS and its full build from the SOFTWARE hive,
//! the installed programs from the `Uninstall` keys (64-bit and `WOW6432Node`), and the
//! installed updates from the servicing stack's package list. Vulnerabilities come from
//! Microsoft's CVRF and CSAF documents ([`msrc`]); the baseline's Windows rules read the
//! registry ([`policy`]); the SBOMs get CPEs and generic package URLs ([`sbom`]).
//!
//! Why not the `nt-hive` crate: it is GPL-2.0-or-later, which the Apache-2.0 binaries cannot
//! take in, and a hive whose root cell offset is `0xffffffff` trips an `assert!` in
//! `Hive::root_key_node` (0.3.0): a panic on hostile input.

pub mod hive;
pub mod msrc;
pub mod policy;
pub mod sbom;
pub mod volume;

use hive::{Hive, Key};

use crate::inventory::{InventoryError, Os, Package};
use crate::rootfs::Tree;
use crate::version::Scheme;

/// Where the hives live on the OS volume.
const CONFIG: &str = "/Windows/System32/config";

/// The registry hives of a Windows image that the scan reads.
#[derive(Debug)]
pub struct Hives {
    pub software: Hive,
    pub system: Option<Hive>,
    pub sam: Option<Hive>,
    pub security: Option<Hive>,
}

fn bad(file: &str, message: impl std::fmt::Display) -> InventoryError {
    InventoryError::Bad {
        file: file.to_string(),
        message: message.to_string(),
    }
}

fn load(tree: &dyn Tree, name: &str) -> Result<Option<Hive>, InventoryError> {
    let file = format!("{CONFIG}/{name}");
    let bytes = tree.read(&file).map_err(|source| InventoryError::Io {
        file: file.clone(),
        source,
    })?;
    bytes
        .map(|b| Hive::new(b).map_err(|e| bad(&file, e)))
        .transpose()
}

impl Hives {
    /// The hives of `tree`, or `None` when it has no SOFTWARE hive (not a Windows system).
    pub fn load(tree: &dyn Tree) -> Result<Option<Self>, InventoryError> {
        let Some(software) = load(tree, "SOFTWARE")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            software,
            system: load(tree, "SYSTEM")?,
            sam: load(tree, "SAM")?,
            security: load(tree, "SECURITY")?,
        }))
    }

    /// The key at a full path (`HKLM\SOFTWARE\…`, `HKLM\SYSTEM\CurrentControlSet\…`, `HKLM\SAM\…`,
    /// `HKLM\SECURITY\…`). `CurrentControlSet` exists only on a running system: offline it is
    /// the control set `SYSTEM\Select\Current` names.
    pub fn key(&self, path: &str) -> Result<Option<Key<'_>>, InventoryError> {
        let mut parts = path.split('\\').filter(|p| !p.is_empty());
        let root = parts.next().unwrap_or("");
        if !["HKLM", "HKEY_LOCAL_MACHINE"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(root))
        {
            return Err(bad(
                path,
                "only HKLM (HKEY_LOCAL_MACHINE) paths are on a disk",
            ));
        }
        let hive_name = parts.next().unwrap_or("").to_ascii_uppercase();
        let (hive, file) = match hive_name.as_str() {
            "SOFTWARE" => (Some(&self.software), "SOFTWARE"),
            "SYSTEM" => (self.system.as_ref(), "SYSTEM"),
            "SAM" => (self.sam.as_ref(), "SAM"),
            "SECURITY" => (self.security.as_ref(), "SECURITY"),
            _ => {
                return Err(bad(
                    path,
                    "not a hive the scan reads (SOFTWARE, SYSTEM, SAM, SECURITY)",
                ));
            }
        };
        let Some(hive) = hive else { return Ok(None) };
        let err = |e: hive::HiveError| bad(&format!("{CONFIG}/{file}"), e);
        let mut rest: Vec<String> = parts.map(str::to_string).collect();
        if file == "SYSTEM"
            && rest
                .first()
                .is_some_and(|p| p.eq_ignore_ascii_case("CurrentControlSet"))
        {
            let current = hive
                .root()
                .and_then(|r| r.path("Select"))
                .map_err(err)?
                .map(|k| k.value("Current"))
                .transpose()
                .map_err(err)?
                .flatten()
                .and_then(|v| v.number());
            let Some(n) = current else {
                return Err(bad(
                    &format!("{CONFIG}/SYSTEM"),
                    "SYSTEM\\Select has no Current control set",
                ));
            };
            rest[0] = format!("ControlSet{n:03}");
        }
        hive.root()
            .and_then(|r| r.path(&rest.join("\\")))
            .map_err(err)
    }

    /// The text of a value at `key_path`, named `value`; `None` when the key or value is absent.
    pub fn text(&self, key_path: &str, value: &str) -> Result<Option<String>, InventoryError> {
        let Some(key) = self.key(key_path)? else {
            return Ok(None);
        };
        let v = key.value(value).map_err(|e| bad(key_path, e))?;
        Ok(v.map(|v| v.text()))
    }
}

/// The Windows release, from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowsOs {
    /// `ProductName` ("Windows Server 2022 Datacenter").
    pub product_name: String,
    /// `EditionID` ("ServerDatacenter").
    pub edition: String,
    /// `CurrentBuild` ("20348").
    pub current_build: String,
    /// `UBR`, the update build revision (2849).
    pub ubr: Option<u64>,
    /// The full build: major.minor.CurrentBuild.UBR ("10.0.20348.2849").
    pub build: String,
    /// `DisplayVersion` ("21H2"); empty before Windows 10 20H2.
    pub display_version: String,
    /// `InstallationType`: "Server", "Server Core" or "Client".
    pub installation_type: String,
    /// `PROCESSOR_ARCHITECTURE` of the session environment ("AMD64", "ARM64", "x86").
    pub architecture: String,
    /// The product name Microsoft's security updates are published under, when this release
    /// is one the scan knows ("Windows Server 2022 (Server Core installation)").
    pub product: Option<String>,
    /// Its CPE 2.3 name.
    pub cpe: Option<String>,
}

/// One installed program, from an `Uninstall` subkey with a `DisplayName`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Program {
    pub name: String,
    pub version: String,
    pub publisher: String,
    /// "x64" (the 64-bit view) or "x86" (`WOW6432Node`, 32-bit programs on 64-bit Windows).
    pub arch: String,
    /// The `Uninstall` subkey's name (a product code or a program's own name).
    pub key: String,
}

/// One installed update (a KB), from the servicing stack's package list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Update {
    /// "KB5044281".
    pub kb: String,
    /// The package's version, from its name ("20348.2849.1.15").
    pub version: String,
    /// The first package of the servicing stack that carries it.
    pub package: String,
}

/// What is installed on a Windows image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    pub os: WindowsOs,
    pub programs: Vec<Program>,
    pub updates: Vec<Update>,
}

const CURRENT_VERSION: &str = "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion";
const UNINSTALL: [(&str, &str); 2] = [
    (
        "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "x64",
    ),
    (
        "HKLM\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "x86",
    ),
];
const CBS_PACKAGES: &str =
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\Packages";
/// `CurrentState` of an installed (0x70) or permanent (0x80) servicing package ("CBS
/// Servicing States Chart", Microsoft's Tip of the Day, 2015-10-12).
const CBS_INSTALLED: [u64; 2] = [0x70, 0x80];

/// The server releases by build, and the client releases; names as Microsoft's Security
/// Update Guide writes them, CPE products as NVD's dictionary does.
fn release(build: u32, server: bool) -> Option<(&'static str, &'static str)> {
    Some(match (server, build) {
        (true, 14393) => ("Windows Server 2016", "windows_server_2016"),
        (true, 17763) => ("Windows Server 2019", "windows_server_2019"),
        (true, 20348) => ("Windows Server 2022", "windows_server_2022"),
        (true, 25398) => (
            "Windows Server 2022, 23H2 Edition",
            "windows_server_2022_23h2",
        ),
        (true, 26100) => ("Windows Server 2025", "windows_server_2025"),
        (false, 14393) => ("Windows 10 Version 1607", "windows_10_1607"),
        (false, 17763) => ("Windows 10 Version 1809", "windows_10_1809"),
        (false, 19044) => ("Windows 10 Version 21H2", "windows_10_21h2"),
        (false, 19045) => ("Windows 10 Version 22H2", "windows_10_22h2"),
        (false, 22000) => ("Windows 11 version 21H2", "windows_11_21h2"),
        (false, 22621) => ("Windows 11 Version 22H2", "windows_11_22h2"),
        (false, 22631) => ("Windows 11 Version 23H2", "windows_11_23h2"),
        (false, 26100) => ("Windows 11 Version 24H2", "windows_11_24h2"),
        _ => return None,
    })
}

impl WindowsOs {
    fn identify(&mut self) {
        let server = self.installation_type.starts_with("Server")
            || (self.installation_type.is_empty() && self.product_name.contains("Server"));
        let Some((name, cpe)) = self
            .current_build
            .parse()
            .ok()
            .and_then(|b| release(b, server))
        else {
            return;
        };
        let (suffix, cpe_arch) = match (server, self.architecture.to_ascii_uppercase().as_str()) {
            (true, _) if self.installation_type == "Server Core" => {
                (" (Server Core installation)".to_string(), "*")
            }
            (true, _) => (String::new(), "*"),
            (false, "AMD64" | "") => (" for x64-based Systems".into(), "x64"),
            (false, "ARM64") => (" for ARM64-based Systems".into(), "arm64"),
            (false, "X86") => (" for 32-bit Systems".into(), "x86"),
            (false, _) => return,
        };
        self.product = Some(format!("{name}{suffix}"));
        self.cpe = Some(format!(
            "cpe:2.3:o:microsoft:{cpe}:{}:*:*:*:*:*:{cpe_arch}:*",
            self.build
        ));
    }
}

/// The KB number a servicing package name carries (`Package_for_KB5044281~…`,
/// `Package_2_for_KB5044281~…`).
fn kb_of(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.find("KB")?;
    let digits: String = upper[at + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() >= 6).then(|| format!("KB{digits}"))
}

impl Inventory {
    /// The inventory of a Windows image's hives.
    pub fn from_hives(hives: &Hives) -> Result<Self, InventoryError> {
        let text = |v: &str| {
            hives
                .text(CURRENT_VERSION, v)
                .map(Option::unwrap_or_default)
        };
        let number = |v: &str| -> Result<Option<u64>, InventoryError> {
            let Some(key) = hives.key(CURRENT_VERSION)? else {
                return Ok(None);
            };
            Ok(key
                .value(v)
                .map_err(|e| bad(CURRENT_VERSION, e))?
                .and_then(|v| v.number()))
        };
        if hives.key(CURRENT_VERSION)?.is_none() {
            return Err(bad(
                &format!("{CONFIG}/SOFTWARE"),
                "the hive has no Microsoft\\Windows NT\\CurrentVersion key: not a Windows SOFTWARE hive",
            ));
        }
        let mut current_build = text("CurrentBuild")?;
        if current_build.is_empty() {
            current_build = text("CurrentBuildNumber")?;
        }
        let ubr = number("UBR")?;
        // Windows 10 and later keep 10.0 in these; earlier releases only in CurrentVersion.
        let major_minor = match (
            number("CurrentMajorVersionNumber")?,
            number("CurrentMinorVersionNumber")?,
        ) {
            (Some(a), Some(b)) => format!("{a}.{b}"),
            _ => text("CurrentVersion")?,
        };
        let mut build = format!("{major_minor}.{current_build}");
        if let Some(u) = ubr {
            build.push_str(&format!(".{u}"));
        }
        let architecture = hives
            .text(
                "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment",
                "PROCESSOR_ARCHITECTURE",
            )
            .unwrap_or_default()
            .unwrap_or_default();
        let mut os = WindowsOs {
            product_name: text("ProductName")?,
            edition: text("EditionID")?,
            current_build,
            ubr,
            build,
            display_version: text("DisplayVersion")?,
            installation_type: text("InstallationType")?,
            architecture,
            product: None,
            cpe: None,
        };
        os.identify();

        let mut programs = Vec::new();
        for (path, arch) in UNINSTALL {
            let Some(key) = hives.key(path)? else {
                continue;
            };
            for sub in key.subkeys().map_err(|e| bad(path, e))? {
                let value = |n: &str| -> Result<String, InventoryError> {
                    Ok(sub
                        .value(n)
                        .map_err(|e| bad(path, e))?
                        .map(|v| v.text())
                        .unwrap_or_default())
                };
                let name = value("DisplayName")?;
                if name.trim().is_empty() {
                    continue;
                }
                programs.push(Program {
                    name,
                    version: value("DisplayVersion")?,
                    publisher: value("Publisher")?,
                    arch: arch.to_string(),
                    key: sub.name(),
                });
            }
        }

        let mut updates: Vec<Update> = Vec::new();
        if let Some(key) = hives.key(CBS_PACKAGES)? {
            for sub in key.subkeys().map_err(|e| bad(CBS_PACKAGES, e))? {
                let package = sub.name();
                let state = sub
                    .value("CurrentState")
                    .map_err(|e| bad(CBS_PACKAGES, e))?
                    .and_then(|v| v.number());
                if !state.is_some_and(|s| CBS_INSTALLED.contains(&s)) {
                    continue;
                }
                // A cumulative update's package is named RollupFix; its KB is in the file it
                // was installed from.
                let kb = kb_of(package.split('~').next().unwrap_or("")).or_else(|| {
                    sub.value("InstallLocation")
                        .ok()
                        .flatten()
                        .and_then(|v| kb_of(&v.text()))
                });
                let Some(kb) = kb else { continue };
                if updates.iter().any(|u| u.kb == kb) {
                    continue;
                }
                updates.push(Update {
                    kb,
                    version: package.rsplit('~').next().unwrap_or("").to_string(),
                    package,
                });
            }
        }
        updates.sort_by_key(|u| (u.kb.len(), u.kb.clone()));
        Ok(Self {
            os,
            programs,
            updates,
        })
    }

    /// The inventory as the reports show any OS: the release as the OS (its id `windows`,
    /// its version the full build, its advisory product as the ecosystem), the programs as
    /// packages.
    pub fn as_os_and_packages(&self) -> (Os, Vec<Package>) {
        let mut pretty = self.os.product_name.clone();
        if !self.os.display_version.is_empty() {
            pretty.push_str(&format!(" {}", self.os.display_version));
        }
        let os = Os {
            id: "windows".into(),
            version_id: self.os.build.clone(),
            pretty_name: pretty,
            id_like: Vec::new(),
            ecosystem: self.os.product.clone(),
        };
        let packages = self
            .programs
            .iter()
            .map(|p| Package {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                source: p.name.clone(),
                source_version: p.version.clone(),
                scheme: Scheme::Windows,
                modularity_label: None,
            })
            .collect();
        (os, packages)
    }
}

/// The inventory of `tree` when it is a Windows system (it has a SOFTWARE hive).
pub fn inventory(tree: &dyn Tree) -> Result<Option<(Inventory, Hives)>, InventoryError> {
    let Some(hives) = Hives::load(tree)? else {
        return Ok(None);
    };
    let inventory = Inventory::from_hives(&hives)?;
    Ok(Some((inventory, hives)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_numbers_come_from_package_names_and_install_locations() {
        assert_eq!(kb_of("Package_for_KB5044281").as_deref(), Some("KB5044281"));
        assert_eq!(
            kb_of("Package_2_for_kb5012170").as_deref(),
            Some("KB5012170")
        );
        assert_eq!(
            kb_of("\\\\?\\C:\\Windows\\SoftwareDistribution\\Download\\x\\Windows10.0-KB5044281-x64.cab")
                .as_deref(),
            Some("KB5044281")
        );
        assert_eq!(kb_of("Package_for_RollupFix"), None);
        assert_eq!(kb_of("Package_for_ServicingStack_2700"), None);
    }

    #[test]
    fn releases_have_their_update_guide_names_and_cpes() {
        let mut os = WindowsOs {
            current_build: "20348".into(),
            build: "10.0.20348.2849".into(),
            installation_type: "Server Core".into(),
            ..WindowsOs::default()
        };
        os.identify();
        assert_eq!(
            os.product.as_deref(),
            Some("Windows Server 2022 (Server Core installation)")
        );
        assert_eq!(
            os.cpe.as_deref(),
            Some("cpe:2.3:o:microsoft:windows_server_2022:10.0.20348.2849:*:*:*:*:*:*:*")
        );
        let mut client = WindowsOs {
            current_build: "22631".into(),
            build: "10.0.22631.4460".into(),
            installation_type: "Client".into(),
            architecture: "AMD64".into(),
            ..WindowsOs::default()
        };
        client.identify();
        assert_eq!(
            client.product.as_deref(),
            Some("Windows 11 Version 23H2 for x64-based Systems")
        );
        let mut unknown = WindowsOs {
            current_build: "99999".into(),
            ..WindowsOs::default()
        };
        unknown.identify();
        assert_eq!(unknown.product, None);
    }
}
