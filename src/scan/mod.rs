//! Scanning built images offline (`imagepipe-scan`, in progress): what is installed, which
//! known vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! So far: the inventory of a root filesystem directory (the OS and the dpkg and apk
//! packages), and the version orderings every vulnerability range is evaluated with.

pub mod inventory;
pub mod version;
