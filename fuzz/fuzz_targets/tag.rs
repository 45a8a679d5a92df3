#![no_main]
// Tags arrive from git refs and CI variables. Whatever parses must render back to the same tag
// (custom formats can make some tags ambiguous, but never unstable).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (format, tag) = text.split_once('\n').unwrap_or(("{image}/v{version}", text));
    if let Ok(f) = imagepipe::image::TagFormat::parse(format) {
        if let Ok(r) = f.parse_tag(tag) {
            let rendered = f.render(&r.name, &r.version);
            assert_eq!(rendered, tag.strip_prefix("refs/tags/").unwrap_or(tag));
            assert_eq!(f.parse_tag(&rendered).expect("rendered tags parse"), r);
        }
    }
});
