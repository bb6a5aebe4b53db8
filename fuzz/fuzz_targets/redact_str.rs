//! Any UTF-8 input: no panic, spans on char boundaries, idempotent output.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use obs_core::redact::Scrubber;

static ALL: LazyLock<Scrubber> = LazyLock::new(|| {
    Scrubber::builder()
        .with_defaults()
        .enable("phone")
        .enable("uuid")
        .enable("imei")
        .enable("mac")
        .max_string_len(64 * 1024)
        .build()
        .expect("valid rules")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (out, _) = ALL.scrub_str(&text);
    let (again, report) = ALL.scrub_str(&out);
    assert_eq!(out, again, "scrubbing must be idempotent");
    assert!(report.is_empty() || out.len() > 64 * 1024);
    for f in ALL.explain(&text) {
        assert!(text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end));
    }
});
