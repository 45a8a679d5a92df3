//! Scanning built images offline (`imagepipe-scan`, in progress): what is installed, which
//! known vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! So far: the inventory of a root filesystem directory (the OS and the dpkg and apk
//! packages), the version orderings every vulnerability range is evaluated with, and matching
//! against an offline OSV database with CVSS v3 scores. Not yet: reading disk images, rpm
//! databases, CVSS v4, policy, reports, the gate and the step itself.

pub mod disk;
pub mod inventory;
pub mod osv;
pub mod rootfs;
pub mod version;
