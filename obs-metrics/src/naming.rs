//! Metric and label naming rules, checked at compile time by the declarative macros and at
//! registration time by the runtime API — the same `const fn` does both.
//!
//! Rules (after the Prometheus naming guide):
//! - names are `snake_case`: `[a-z][a-z0-9_]*`, no `__`, no trailing `_`;
//! - counters end in `_total`; gauges and histograms must not;
//! - the reserved suffixes `_bucket`, `_count`, `_sum`, `_created`, `_info` are refused;
//! - durations are in seconds: a name that mentions `duration`, `latency`, `elapsed` or
//!   `time` must carry the `seconds` unit, and `ms`/`millis`/`milliseconds`/`minutes`/... are
//!   refused as units;
//! - sizes are in bytes: a name that mentions `size`, `memory` or `storage` must carry the
//!   `bytes` unit, and `kb`/`mb`/`kilobytes`/... are refused.
//!
//! ```
//! use obs_metrics::naming::{check_metric_name, MetricType};
//!
//! assert!(check_metric_name("http_requests_total", MetricType::Counter).is_ok());
//! let err = check_metric_name("request_latency_ms", MetricType::Histogram).unwrap_err();
//! assert!(err.contains("seconds"));
//! ```

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// Monotonic counter (`_total`).
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution over fixed buckets.
    Histogram,
}

impl MetricType {
    /// The Prometheus type name (`counter`, `gauge`, `histogram`).
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

const fn bytes_eq(a: &[u8], a_start: usize, a_end: usize, b: &[u8]) -> bool {
    if a_end - a_start != b.len() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if a[a_start + i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn ends_with(a: &[u8], suffix: &[u8]) -> bool {
    a.len() >= suffix.len() && bytes_eq(a, a.len() - suffix.len(), a.len(), suffix)
}

const fn word_in(a: &[u8], start: usize, end: usize, words: &[&str]) -> bool {
    let mut i = 0;
    while i < words.len() {
        if bytes_eq(a, start, end, words[i].as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

const TIME_WORDS: &[&str] = &["duration", "latency", "elapsed", "time", "uptime"];
const BAD_TIME_UNITS: &[&str] = &[
    "ms",
    "millis",
    "milliseconds",
    "us",
    "micros",
    "microseconds",
    "ns",
    "nanos",
    "nanoseconds",
    "secs",
    "sec",
    "minutes",
    "mins",
    "hours",
    "days",
];
const SIZE_WORDS: &[&str] = &["size", "memory", "storage"];
const BAD_SIZE_UNITS: &[&str] = &[
    "kb",
    "mb",
    "gb",
    "kib",
    "mib",
    "gib",
    "kilobytes",
    "megabytes",
    "gigabytes",
    "bits",
];
const RESERVED: &[&str] = &["bucket", "count", "sum", "created", "info"];

/// Checks that `name` is valid snake_case (`[a-z][a-z0-9_]*`, no `__`, no trailing `_`).
///
/// Returns an error message naming the rule that failed. Used for metric and label names.
pub const fn check_snake_case(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Err("name is empty");
    }
    if !b[0].is_ascii_lowercase() {
        return Err("name must start with a lowercase ASCII letter (snake_case)");
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
            return Err("name must be snake_case: only [a-z0-9_] allowed");
        }
        if c == b'_' && i + 1 < b.len() && b[i + 1] == b'_' {
            return Err("name must not contain `__` (reserved by Prometheus)");
        }
        i += 1;
    }
    if b[b.len() - 1] == b'_' {
        return Err("name must not end with `_`");
    }
    Ok(())
}

/// Checks a metric family name against the rules of this module for a metric of type `ty`.
///
/// `const fn`: the macros call it in a `const` item so a bad name is a compile error.
pub const fn check_metric_name(name: &str, ty: MetricType) -> Result<(), &'static str> {
    if let Err(e) = check_snake_case(name) {
        return Err(e);
    }
    let b = name.as_bytes();
    let is_total = ends_with(b, b"_total");
    match ty {
        MetricType::Counter => {
            if !is_total {
                return Err("counter names must end in `_total`");
            }
        }
        MetricType::Gauge | MetricType::Histogram => {
            if is_total {
                return Err("only counters may end in `_total`");
            }
        }
    }
    // Walk the `_`-separated words.
    let mut has_time_word = false;
    let mut has_size_word = false;
    let mut has_seconds = false;
    let mut has_bytes = false;
    let mut last_start = 0;
    let mut start = 0;
    let mut i = 0;
    while i <= b.len() {
        if i == b.len() || b[i] == b'_' {
            if word_in(b, start, i, TIME_WORDS) {
                has_time_word = true;
            }
            if word_in(b, start, i, SIZE_WORDS) {
                has_size_word = true;
            }
            if word_in(b, start, i, BAD_TIME_UNITS) {
                return Err(
                    "durations must be in seconds: use the `_seconds` unit, not ms/minutes/...",
                );
            }
            if word_in(b, start, i, BAD_SIZE_UNITS) {
                return Err("sizes must be in bytes: use the `_bytes` unit, not kb/mb/...");
            }
            if bytes_eq(b, start, i, b"seconds") {
                has_seconds = true;
            }
            if bytes_eq(b, start, i, b"bytes") {
                has_bytes = true;
            }
            last_start = start;
            start = i + 1;
        }
        i += 1;
    }
    if word_in(b, last_start, b.len(), RESERVED) {
        return Err(
            "names must not end in a reserved suffix (_bucket, _count, _sum, _created, _info)",
        );
    }
    if has_time_word && !has_seconds {
        return Err("durations must be in seconds: a name mentioning duration/latency/time must end in `_seconds` (counters: `_seconds_total`)");
    }
    if has_size_word && !has_bytes {
        return Err("sizes must be in bytes: a name mentioning size/memory/storage must end in `_bytes` (counters: `_bytes_total`)");
    }
    Ok(())
}

/// Compile-time assertion used by the macros: panics (a compile error in a `const` item)
/// with the rule that `name` breaks.
#[doc(hidden)]
pub const fn assert_metric_name(name: &str, ty: MetricType) {
    if let Err(msg) = check_metric_name(name, ty) {
        panic!("{}", msg);
    }
}

/// Compile-time assertion used by the macros for label names.
#[doc(hidden)]
pub const fn assert_label_name(name: &str) {
    if let Err(msg) = check_label_name(name) {
        panic!("{}", msg);
    }
}

/// Checks a label name: snake_case, not `le`/`quantile` (reserved by histograms/summaries).
pub const fn check_label_name(name: &str) -> Result<(), &'static str> {
    if let Err(e) = check_snake_case(name) {
        return Err(e);
    }
    let b = name.as_bytes();
    if bytes_eq(b, 0, b.len(), b"le") || bytes_eq(b, 0, b.len(), b"quantile") {
        return Err("label names `le` and `quantile` are reserved");
    }
    Ok(())
}

/// The unit a valid metric name carries (`seconds` or `bytes`), if any, and the name without
/// the unit and without `_total`: `("process_cpu", Some("seconds"))` for
/// `process_cpu_seconds_total`.
pub fn split_unit(name: &str) -> (&str, Option<&'static str>) {
    let base = name.strip_suffix("_total").unwrap_or(name);
    for unit in ["seconds", "bytes"] {
        if let Some(stem) = base.strip_suffix(unit).and_then(|s| s.strip_suffix('_')) {
            if !stem.is_empty() {
                return (stem, Some(unit));
            }
        }
    }
    (base, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reference_service_names() {
        for (n, t) in [
            ("asset_generations_total", MetricType::Counter),
            ("asset_generation_duration_seconds", MetricType::Histogram),
            ("ai_tokens_used_total", MetricType::Counter),
            ("rdev_commands_active", MetricType::Gauge),
            ("storage_used_bytes", MetricType::Gauge),
            ("process_cpu_seconds_total", MetricType::Counter),
            ("http_request_duration_seconds", MetricType::Histogram),
            ("process_start_time_seconds", MetricType::Gauge),
        ] {
            assert_eq!(check_metric_name(n, t), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names_with_the_rule() {
        let cases = [
            ("requests", MetricType::Counter, "_total"),
            ("active_total", MetricType::Gauge, "only counters"),
            ("HttpRequests_total", MetricType::Counter, "lowercase"),
            ("http-requests_total", MetricType::Counter, "snake_case"),
            ("a__b_total", MetricType::Counter, "__"),
            ("request_latency_ms", MetricType::Histogram, "seconds"),
            ("request_duration", MetricType::Histogram, "seconds"),
            ("upload_size", MetricType::Histogram, "bytes"),
            ("upload_size_kb", MetricType::Histogram, "bytes"),
            ("queue_sum", MetricType::Gauge, "reserved"),
        ];
        for (n, t, want) in cases {
            let err = check_metric_name(n, t).unwrap_err();
            assert!(err.contains(want), "{n}: {err}");
        }
    }

    #[test]
    fn splits_units() {
        assert_eq!(
            split_unit("process_cpu_seconds_total"),
            ("process_cpu", Some("seconds"))
        );
        assert_eq!(
            split_unit("storage_used_bytes"),
            ("storage_used", Some("bytes"))
        );
        assert_eq!(split_unit("http_requests_total"), ("http_requests", None));
    }

    #[test]
    fn label_names() {
        assert!(check_label_name("route").is_ok());
        assert!(check_label_name("le").is_err());
        assert!(check_label_name("Type").is_err());
    }
}
