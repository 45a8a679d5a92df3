#![no_main]
// Disk images are untrusted: qcow2, VMDK and OVA tables, partition tables, LVM labels and
// metadata, ext4 structures and root filesystem tarballs (plain or gzip) are all read from the
// input's own bytes. Whatever they say, opening, reading the inventory and walking the tree for
// the hardening baseline (directory cycles, link loops) must end with a result or an error.
use imagepipe_scanner::{inventory, policy, rootfs};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, data).expect("write");
    if let Ok(tree) = rootfs::open(file.path()) {
        let packages = inventory::from_tree(tree.as_ref()).map_or_else(|_| Vec::new(), |i| i.1);
        let rules = policy::rules(&[], &[]).expect("the embedded baseline parses");
        let _ = policy::evaluate(&rules, tree.as_ref(), &packages);
    }
});
