//! Throughput of the PII scrubber (`obs_core::redact`) against a naive baseline that runs
//! every detector regex (and a key alternation regex) over every string — what a scrubber
//! built from a list of regexes does. Both peers are in the same criterion group, so the
//! ratios come from one run.
//!
//! Corpus (generated deterministically, no files):
//! - `prose_1mb`: 1 MB of plain words and punctuation (no PII, almost no trigger bytes),
//! - `clean_1mb`: 1 MB of log-like text without PII (timestamps, ids, versions, numbers,
//!   `key=value` pairs: dense in trigger bytes),
//! - `mixed_1mb`: the same with a secret or PII value every ~500 bytes,
//! - `log_lines`: 1 000 mixed log lines (~150 bytes each),
//! - `json_events`: 200 JSON events of 0.5–5 KB with nested properties and some PII,
//! - `event_10_props`: one typical 10-property analytics event (ns per event).
//!
//! Run: `cargo bench -p obs --bench redact`; instruction counts: `benches/instructions.sh
//! redact` (see the count mode above `bench`).
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use obs_core::redact::Scrubber;
use regex::Regex;
use serde_json::{json, Map, Value};

mod support;

// ---------------------------------------------------------------------------- corpus

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "order",
    "cache",
    "miss",
    "retry",
    "upstream",
    "latency",
    "the",
    "service",
    "handler",
    "queue",
    "worker",
    "started",
    "finished",
    "author",
    "authenticated",
    "Accept",
    "tokens",
    "session",
    "items",
    "payment",
    "checkout",
    "profile",
    "updated",
    "for",
    "with",
    "status",
    "ok",
    "error",
    "timeout",
    "connection",
    "pool",
    "database",
    "select",
];

fn clean_line(r: &mut Rng) -> String {
    let mut s = format!(
        "2024-01-{:02}T{:02}:{:02}:{:02}.{:03}Z INFO ",
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000)
    );
    for _ in 0..(6 + r.below(10)) {
        s.push_str(r.pick(WORDS));
        s.push(' ');
    }
    s.push_str(&format!(
        "order_id=ORD-{:06} status={} duration_ms={} version 1.{}.{}.{} tokens: {} route=/users/{{id}} ts={}\n",
        r.below(1_000_000),
        r.pick(&["200", "201", "404", "500"]),
        r.below(2000),
        r.below(10),
        r.below(10),
        r.below(100),
        r.below(5000),
        1_700_000_000_000 + r.below(1_000_000_000)
    ));
    s
}

fn prose_line(r: &mut Rng) -> String {
    let mut s = String::new();
    for k in 0..(8 + r.below(12)) {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(r.pick(WORDS));
    }
    s.push_str(r.pick(&[". ", ", ", "! ", "? ", ".\n"]));
    s
}

const SECRETS: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "DE89370400440532013000",
    "203.0.113.7",
    "2001:db8::1",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "Authorization: Bearer abc123def456ghi",
    "password=hunter2",
    "postgres://admin:s3cret@db.example.com/app",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "ssn 123-45-6789",
    "?token=abc&page=2",
];

fn mixed_line(r: &mut Rng) -> String {
    let mut s = clean_line(r);
    s.pop();
    if r.below(3) == 0 {
        s.push(' ');
        s.push_str(r.pick(SECRETS));
    }
    s.push('\n');
    s
}

fn text_of(len: usize, mut line: impl FnMut(&mut Rng) -> String, seed: u64) -> String {
    let mut r = Rng(seed);
    let mut s = String::with_capacity(len + 256);
    while s.len() < len {
        s.push_str(&line(&mut r));
    }
    s.truncate(len);
    s
}

fn event(r: &mut Rng, target: usize) -> Value {
    let mut props = Map::new();
    let mut i = 0;
    while serde_json::to_string(&props).unwrap().len() < target {
        let v = match r.below(8) {
            0 => json!(r.pick(SECRETS)),
            1 => json!(r.below(100_000)),
            2 => json!({ "name": r.pick(WORDS), "count": r.below(100), "note": clean_line(r) }),
            3 => json!([r.pick(WORDS), r.pick(WORDS), r.below(10)]),
            4 => json!(r.below(2) == 0),
            _ => json!(clean_line(r)),
        };
        props.insert(format!("{}_{i}", r.pick(WORDS)), v);
        i += 1;
    }
    json!({
        "event": "checkout",
        "ts": "2024-01-15T10:30:00Z",
        "user": { "id": "u_8f2a", "email": "jane.doe@example.com", "password": "hunter2" },
        "props": props,
    })
}

fn typical_event() -> Value {
    json!({
        "event": "checkout_completed",
        "user_id": "u_12345",
        "email": "jane.doe@example.com",
        "amount": 42.5,
        "currency": "EUR",
        "client_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "ts": "2024-01-15T10:30:00.123Z",
        "session_id": "s_9f8e7d6c",
        "items": 3,
    })
}

// ---------------------------------------------------------------------------- naive baseline

/// Every detector as a regex, each run over every string; keys matched by one alternation
/// regex (substring semantics, as in many scrubbers).
struct Naive {
    detectors: Vec<(Regex, &'static str)>,
    key: Regex,
}

impl Naive {
    fn new() -> Self {
        let d = |p: &str, r: &'static str| (Regex::new(p).unwrap(), r);
        let keys = "password|passwd|pwd|secret|token|api_?key|authorization|auth|cookie|session(?:_?id)?|credentials|private_?key|client_?secret|mysql_pwd|otp|access_?token|refresh_?token|csrf|xsrf";
        Naive {
            detectors: vec![
                d(&format!(r"(?i)\b(?:{keys})\s*[=:]\s*[^\s&,;]+"), "[key]"),
                d(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[email]"),
                d(r"\b(?:\d[ -]?){12,18}\d\b", "[card]"),
                d(
                    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
                    "[iban]",
                ),
                d(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[ip]"),
                d(r"\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b", "[ip]"),
                d(
                    r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
                    "[jwt]",
                ),
                d(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+", "[bearer]"),
                d(r"(?i)basic\s+[A-Za-z0-9+/=]{8,}", "[basic_auth]"),
                d(
                    r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
                    "[url_auth]",
                ),
                d(
                    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
                    "[pem_key]",
                ),
                d(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "[aws_key]"),
                d(
                    r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,})\b",
                    "[github_token]",
                ),
                d(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}\b", "[stripe_key]"),
                d(r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "[slack_token]"),
                d(r"\bglpat-[A-Za-z0-9_-]{20,}", "[gitlab_token]"),
                d(r"\bnpm_[A-Za-z0-9]{36}\b", "[npm_token]"),
                d(r"\b\d{3}-\d{2}-\d{4}\b", "[ssn]"),
            ],
            key: Regex::new(&format!("(?i)(?:{keys})")).unwrap(),
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut s = text.to_owned();
        for (re, rep) in &self.detectors {
            if let std::borrow::Cow::Owned(o) = re.replace_all(&s, *rep) {
                s = o;
            }
        }
        s
    }

    fn scrub_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.scrub_json(x)),
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if self.key.is_match(k) {
                        *x = Value::String("[key]".into());
                    } else {
                        self.scrub_json(x);
                    }
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------- benches

// Instruction-count mode (`support::count_mode`): with `OBS_BENCH_COUNT=<corpus>/<obs|naive_regex>:<n>`
// (corpus `prose_1mb`, `clean_1mb` or `mixed_1mb`) the bench scrubs that corpus `n` times, prints
// the fastest scrub's wall time to stderr and exits instead of running criterion.
// `benches/instructions.sh redact` runs this under `valgrind --tool=callgrind`, counting
// inside the scrub calls only, at two `n` and divides the difference: instructions per
// scrub, deterministic on a loaded machine.

fn bench(c: &mut Criterion) {
    let scrubber = Scrubber::default();
    let naive = Naive::new();

    let prose = text_of(1_000_000, prose_line, 5);
    let clean = text_of(1_000_000, clean_line, 1);
    let mixed = text_of(1_000_000, mixed_line, 2);
    assert!(
        scrubber.scrub_str(&clean).1.is_empty(),
        "the clean corpus must be clean"
    );
    assert!(
        scrubber.scrub_str(&prose).1.is_empty(),
        "the prose corpus must be clean"
    );
    let (scrubbed, report) = scrubber.scrub_str(&mixed);
    eprintln!(
        "mixed_1mb: {} matches, output {} of {} bytes",
        report.total(),
        scrubbed.len(),
        mixed.len()
    );
    assert!(
        scrubbed.len() > mixed.len() * 9 / 10,
        "scrubbing must not swallow the text"
    );
    let mut r = Rng(3);
    let lines: Vec<String> = (0..1000).map(|_| mixed_line(&mut r)).collect();
    let lines_bytes: usize = lines.iter().map(String::len).sum();
    let mut r = Rng(4);
    let events: Vec<Value> = (0..200)
        .map(|_| {
            let size = 500 + r.below(4500) as usize;
            event(&mut r, size)
        })
        .collect();
    let events_bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
    let typical = typical_event();

    if let Some((case, n)) = support::count_mode() {
        // instruction-count mode (see above): `n` scrubs of one case, no criterion
        let (corpus, side) = case
            .split_once('/')
            .expect("case is <corpus>/<obs|naive_regex>");
        let text = match corpus {
            "prose_1mb" => &prose,
            "clean_1mb" => &clean,
            "mixed_1mb" => &mixed,
            _ => panic!("count mode covers prose_1mb, clean_1mb, mixed_1mb"),
        };
        let mut fastest = Duration::MAX;
        for _ in 0..n {
            let start = std::time::Instant::now();
            match side {
                "obs" => drop(black_box(scrubber.scrub_str(black_box(text)))),
                "naive_regex" => drop(black_box(naive.scrub(black_box(text)))),
                _ => panic!("side is obs or naive_regex"),
            }
            fastest = fastest.min(start.elapsed());
        }
        // the fastest of `n` scrubs: the least disturbed by other processes on a shared
        // machine (not an instruction count, but steadier than a mean under load)
        eprintln!("{case}: fastest of {n} scrubs {fastest:?}");
        std::process::exit(0);
    }

    for (name, text) in [
        ("prose_1mb", &prose),
        ("clean_1mb", &clean),
        ("mixed_1mb", &mixed),
    ] {
        let mut g = c.benchmark_group(format!("redact/{name}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("obs", |b| {
            b.iter(|| black_box(scrubber.scrub_str(black_box(text))))
        });
        g.bench_function("naive_regex", |b| {
            b.iter(|| black_box(naive.scrub(black_box(text))))
        });
        g.finish();
    }

    let mut g = c.benchmark_group("redact/log_lines");
    g.throughput(Throughput::Bytes(lines_bytes as u64));
    g.bench_function("obs", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(scrubber.scrub_str(black_box(l)));
            }
        })
    });
    g.bench_function("naive_regex", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(naive.scrub(black_box(l)));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("redact/json_events");
    g.throughput(Throughput::Bytes(events_bytes as u64));
    g.bench_function("obs", |b| {
        b.iter_batched_ref(
            || events.clone(),
            |evs| {
                for e in evs.iter_mut() {
                    black_box(scrubber.scrub_json(e));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("naive_regex", |b| {
        b.iter_batched_ref(
            || events.clone(),
            |evs| {
                for e in evs.iter_mut() {
                    naive.scrub_json(e);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("redact/event_10_props");
    g.throughput(Throughput::Elements(1));
    g.bench_function("obs", |b| {
        b.iter_batched_ref(
            || typical.clone(),
            |e| black_box(scrubber.scrub_json(e)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("naive_regex", |b| {
        b.iter_batched_ref(
            || typical.clone(),
            |e| naive.scrub_json(e),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
