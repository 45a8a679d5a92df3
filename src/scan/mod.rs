//! Scanning built images offline (`imagepipe-scan`, in progress): what is installed, which
//! known vulnerabilities affect it, and whether it meets the hardening baseline.
//!
//! So far: the version orderings of the package managers whose databases the scan reads, which
//! every vulnerability range is evaluated with.

pub mod version;
