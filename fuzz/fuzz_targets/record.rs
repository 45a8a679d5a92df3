#![no_main]
// Records come from stores and files other jobs wrote.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = imagepipe::record::Record::from_slice(data, "fuzz") {
        // Whatever is accepted must survive a round trip unchanged.
        let again = imagepipe::record::Record::from_slice(&r.to_bytes(), "fuzz").expect("round trip");
        assert_eq!(again, r);
    }
});
