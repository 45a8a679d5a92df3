//! File formats imagepipe knows, and how a file's format is told: from its first bytes, then
//! from its name. The record names each artifact's format; the scan opens disks by it.

use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// File formats imagepipe knows; detected from content first, then from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ova,
    Ovf,
    Vmdk,
    Qcow2,
    Raw,
    Vhd,
    Vhdx,
    Iso,
    /// An OVF manifest (`.mf`).
    Mf,
    Tar,
    Box,
    Other,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("other"))
    }
}

/// How much of a file's start [`detect_format`] looks at.
pub const SNIFF_LEN: usize = 512;

/// Format from magic bytes, then from the extension. Packer's qemu builder names its disk
/// without an extension, so content wins.
pub fn detect_format(path: &Path, head: &[u8]) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if head.starts_with(b"QFI\xfb") {
        return Format::Qcow2;
    }
    if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        return Format::Vmdk;
    }
    if head.starts_with(b"vhdxfile") {
        return Format::Vhdx;
    }
    if head.starts_with(b"conectix") {
        return Format::Vhd;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        // An OVA is a tar whose first member is the OVF descriptor.
        let name_end = head[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let first = String::from_utf8_lossy(&head[..name_end]).to_ascii_lowercase();
        return if first.ends_with(".ovf") || ext.as_deref() == Some("ova") {
            Format::Ova
        } else {
            Format::Tar
        };
    }
    match ext.as_deref() {
        Some("ova") => Format::Ova,
        Some("ovf") => Format::Ovf,
        Some("vmdk") => Format::Vmdk,
        Some("qcow2") => Format::Qcow2,
        Some("raw" | "img") => Format::Raw,
        Some("vhd") => Format::Vhd,
        Some("vhdx") => Format::Vhdx,
        Some("iso") => Format::Iso,
        Some("mf") => Format::Mf,
        Some("tar" | "tgz") => Format::Tar,
        Some("gz") if path.to_string_lossy().ends_with(".tar.gz") => Format::Tar,
        Some("box") => Format::Box,
        _ => Format::Other,
    }
}
