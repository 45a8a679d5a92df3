#![no_main]
// The manifest is written by templates the pipeline does not control.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = imagepipe::packer::Manifest::parse(data) {
        let _ = m.last_run();
    }
});
