#![no_main]
// Packer's output is parsed line by line while it runs; a plugin can print anything.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = imagepipe::packer::machine::parse_line(line);
    }
    let _ = imagepipe::packer::machine::unescape(&text);
});
