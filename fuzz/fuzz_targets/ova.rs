#![no_main]
// OVAs come from builds and stores, possibly from outside: the tar index, the OVF descriptor's
// references and the manifest are read from untrusted bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let reader = imagepipe::store::MemoryReader(data.to_vec());
    if let Ok(package) = rt.block_on(imagepipe::ova::read(&reader)) {
        // Every part the parser hands on lies inside the artifact.
        for m in package.parts() {
            assert!(m.offset + m.size <= data.len() as u64);
        }
    }
    let _ = imagepipe::ova::references(data);
    let _ = imagepipe::ova::parse_manifest(data);
});
