#![no_main]
// rpm databases are untrusted: BerkeleyDB hash pages (metadata, buckets, page chains,
// overflow chains) and NDB slot pages and blobs are read from the image's bytes, and each
// header blob they hold is parsed. Whatever they say, reading must end with the blobs or an
// error, never a panic, a hang or memory beyond the file's size; the blobs returned fit in
// the file and come in header-number order.
use imagepipe_rpmdb::{bdb_packages, ndb_packages};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for read in [bdb_packages, ndb_packages] {
        if let Ok(blobs) = read(&mut &data[..]) {
            let total: usize = blobs.iter().map(|(_, b)| b.len()).sum();
            assert!(
                total <= data.len(),
                "{total} bytes of headers from {}",
                data.len()
            );
            assert!(
                blobs.windows(2).all(|w| w[0].0 < w[1].0),
                "header numbers out of order"
            );
            for (_, blob) in &blobs {
                let _ = imagepipe_scanner::rpm::parse_header(blob);
            }
        }
    }
});
