#![no_main]
// Disk images are untrusted: qcow2, VMDK and OVA tables, partition tables and ext4 structures
// are all read from the image's own bytes. Whatever they say, opening and reading the
// inventory must end with a result or an error.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, data).expect("write");
    if let Ok(tree) = imagepipe::scan::rootfs::ImageTree::open(file.path()) {
        let _ = imagepipe::scan::inventory::from_tree(&tree);
    }
});
