//! Any JSON document: no panic, output is valid JSON, limits respected.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use obs_core::redact::Scrubber;

static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(|| {
    Scrubber::builder()
        .with_defaults()
        .max_depth(8)
        .max_properties(256)
        .build()
        .expect("valid rules")
});

fuzz_target!(|data: &[u8]| {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = SCRUBBER.explain_json(&value);
    SCRUBBER.scrub_json(&mut value);
    let text = serde_json::to_string(&value).expect("serialisable");
    let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(back, value);
});
