//! Scanning built images offline (`imagepipe-scan`, in progress): what is installed, which
//! known vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! So far: reading disk images in place (raw, qcow2, VMDK, OVA; GPT and MBR; ext2/3/4 with
//! fstab mounts), the inventory of a root filesystem (the OS and the dpkg and apk packages),
//! the version orderings every vulnerability range is evaluated with, and matching against an
//! offline OSV database with CVSS v3 scores. Not yet: LVM, tarballs, rpm databases, CVSS v4,
//! the hardening policy, SBOMs, reports, waivers, the gate and the step itself.

pub mod disk;
pub mod inventory;
pub mod osv;
pub mod rootfs;
pub mod version;
