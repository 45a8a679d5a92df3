#![no_main]
// The text the scan reads out of an image, and the OSV records it is given: dpkg and apk
// databases, rpm package headers, LVM volume group metadata, os-release, sshd_config (with
// Includes), OSV JSON and CVSS vectors.
use std::io;

use imagepipe_scanner::rootfs::{Meta, Tree};

/// An image whose sshd_config and one drop-in are the fuzzer's bytes.
struct OneFile(Vec<u8>);

impl Tree for OneFile {
    fn metadata(&self, _: &str) -> io::Result<Option<Meta>> {
        Ok(None)
    }
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(path.starts_with("/etc/ssh/").then(|| self.0.clone()))
    }
    fn list(&self, _: &str) -> io::Result<Vec<String>> {
        Ok(vec!["a.conf".into(), "b.conf".into()])
    }
    fn canonical(&self, path: &str) -> io::Result<String> {
        Ok(path.to_string())
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = imagepipe_scanner::inventory::parse_dpkg_status(&text, "fuzz");
    let _ = imagepipe_scanner::inventory::parse_apk_installed(&text);
    let _ = imagepipe_scanner::inventory::parse_os_release(&text);
    let _ = imagepipe_scanner::policy::sshd_settings(&OneFile(data.to_vec()));
    let _ = imagepipe_scanner::rpm::parse_header(data);
    let _ = imagepipe_scanner::osv::cvss_base_score(&text);
    // A physical volume the corpus's metadata names (`id = "pv-fuzz"`), 64 MiB at 1 MiB.
    let pvs = std::collections::HashMap::from([(
        "pvfuzz".to_string(),
        imagepipe_scanner::disk::Partition {
            start: 1 << 20,
            len: 64 << 20,
        },
    )]);
    let _ = imagepipe_scanner::lvm::map_volumes(&text, &pvs, &mut Default::default());
    let mut db = imagepipe_scanner::osv::Database::default();
    if db.add(data, "fuzz").is_ok() {
        // Evaluated for the packages the corpus's records name, at the record's own versions
        // and at a version taken from the input.
        let pkg = |source: &str, version: &str| imagepipe_scanner::inventory::Package {
            name: source.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: source.into(),
            source_version: version.into(),
            modularity_label: None,
            scheme: imagepipe_scanner::version::Scheme::Dpkg,
        };
        let tail: String = text.chars().rev().take(16).collect();
        let packages: Vec<_> = ["openssl", "glibc", "a"]
            .into_iter()
            .flat_map(|s| [pkg(s, "1.0-1"), pkg(s, "0"), pkg(s, &tail)])
            .collect();
        for f in db.matches("Debian:12", &packages) {
            // A fix is above the installed version.
            if let Some(fixed) = &f.fixed {
                assert!(
                    imagepipe_scanner::version::Scheme::Dpkg
                        .compare(fixed, &f.installed)
                        .is_gt(),
                    "{fixed} <= {}",
                    f.installed
                );
            }
        }
    }
    for scheme in [
        imagepipe_scanner::version::Scheme::Dpkg,
        imagepipe_scanner::version::Scheme::Rpm,
        imagepipe_scanner::version::Scheme::Apk,
    ] {
        let (a, b) = data.split_at(data.len() / 2);
        let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
        // An ordering: antisymmetric on every pair.
        assert_eq!(
            scheme.compare(&a, &b),
            scheme.compare(&b, &a).reverse(),
            "{scheme:?}: {a:?} {b:?}"
        );
    }
});
