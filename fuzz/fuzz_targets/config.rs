#![no_main]
// imagepipe.toml: every error must be an error, never a panic (line/column arithmetic, spans).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = imagepipe::config::Config::parse(text, std::path::Path::new("/fuzz/imagepipe.toml")) {
            let _ = c.topological();
            for img in &c.images {
                let _ = c.descendants(&img.name);
            }
        }
    }
});
