#![no_main]
// Disk images are untrusted: qcow2, VMDK and OVA tables, partition tables, LVM labels and
// metadata, ext4 structures and root filesystem tarballs (plain or gzip) are all read from the
// input's own bytes. Whatever they say, opening and reading the inventory must end with a
// result or an error.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, data).expect("write");
    if let Ok(tree) = imagepipe::scan::rootfs::open(file.path()) {
        let _ = imagepipe::scan::inventory::from_tree(tree.as_ref());
    }
});
