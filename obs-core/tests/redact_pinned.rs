//! Pins the scrubber's exact output on a deterministic generated corpus, so a change to the
//! scanner's fast paths (candidate classification, dispatch, pre-checks) that alters any
//! output, report or `explain` span fails here, not only the recall/precision tests.
//!
//! The corpus: ~12 000 strings built from ~250 fragments (PII of every rule, near misses,
//! keys, timestamps, version words, token prefixes, markers, punctuation, non-ASCII) glued
//! at random, random cuts of them, random runs of trigger bytes, windows of log lines at
//! every offset around the 64-byte classification blocks, and the precision corpus; each
//! scrubbed by four configurations. The digests were computed with the scanner before the
//! 64-byte candidate classification (commit 50ef213) and were unchanged by it: a new value
//! means a changed output, to be explained (and re-pinned) deliberately.
//!
//! Re-pinned once since (session 4), for two fixes of idempotence that proptest found
//! (`xoxb-passwordghp_password::` scrubbed to `[slack_token]_password::`, and that to
//! `[slack_token]_password:[password]`; `4111://:Bearer password=@` to `4111://:[bearer]@`,
//! and that to `4111://[url_auth]@`): `scrub_str` now scrubs its output again until nothing
//! matches (a fixed point), and a `key=value` key that runs back into a redaction starts
//! where the redaction ends. Against the previous pins, 538 of the 48 573 outputs changed:
//! 485 redact more (`[pem_key]password: hunter2` → `[pem_key]password: [password]`,
//! `api_key=`, `cookie:`, `Authorization:` after a redacted token, context words brought
//! within reach by a shorter replacement), 53 redact the same bytes under another rule's
//! marker, none redacts less.

use obs_core::redact::{Action, Scrubber};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const FRAGMENTS: &[&str] = &[
    // emails
    "jane.doe@example.com", "a@b.co", "x%40example.com", "@scope/pkg", "user@localhost", "j@x..com",
    // cards, IMEI-like, long numbers
    "4111 1111 1111 1111", "4111111111111111", "5500-0000-0000-0004", "378282246310005",
    "490154203237518", "6011111111111117", "4111 1111 1111 1112", "12345678901234567890",
    "2223003122003222",
    // IBAN
    "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
    "de89370400440532013000",
    // IPv4 / IPv6
    "203.0.113.7", "10.0.0.1", "1.2.3.4", "256.1.1.1", "1.2.3.4.5", "192.168.001.1",
    "2001:db8::1", "::1", "fe80::1%eth0", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ab::c", "a::",
    "::ffff:1.2.3.4",
    // JWT, auth schemes, URL credentials, PEM
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "eyJhbGciOiJIUzI1NiJ9.e30.", "eyJ", "eyJzdWIiOiIxIn0.abc.def",
    "Bearer abc123def456ghi", "bearer abcdefghijklmnopqrstuvwxyz", "Bearer short",
    "Basic dXNlcjpwYXNz", "basic aGVsbG8=",
    "postgres://admin:s3cret@db.example.com/app", "https://user@host/", "redis://:pw@h", "x://a:b@c",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----", "-----BEGIN CERT",
    // vendor tokens
    "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE", "AKIAshort", "Accept", "API",
    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "gho_short", "github_pat_11ABCDEFG0123456789abcdef_xyz",
    "sk_live_abcdefghij0123", "rk_test_abcdefghijk", "sk_", "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "xoxb-1234567890-abcdef", "xoxp-12", "glpat-abcdefghijklmnopqrstu", "glpat-x",
    // SSN, phone, UUID, MAC
    "123-45-6789", "ssn 123456789", "SSN: 123 45 6789", "000-12-3456", "123456789",
    "555-123-4567", "555.123.4567", "+1 555 123 4567", "(555) 123-4567", "+44 20 7946 0958",
    "550e8400-e29b-41d4-a716-446655440000", "00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "a1:b2",
    // keys
    "password=hunter2", "password: hunter2", "\"password\": \"hunter2\"", "\\\"token\\\":\\\"abc\\\"",
    "token=abc&page=2", "?token=abc&page=2", "api_key=XYZ", "apiKey: k", "x-api-key: v",
    "Authorization: Bearer abc123def456ghi", "Authorization: Digest username=x",
    "authorization=Negotiate YIIabc", "Cookie: a=b; c=d", "set-cookie: \"q=1\"; x", "auth=x",
    "author=bob", "authenticated=true", "tokens: 12", "Password=[password]", "session_id=s_9f8",
    "sessionId=9", "otp=123456", "mysql_pwd=x", "t=5", "order_id=ORD-001", "status=200",
    "duration_ms=12", "passwd==x", "a!=b", "x<=y", "pwd = x", "secret:   y", "credential={x}",
    "csrf=[1]", "key='v a'", "k=\"v\\\" w\"",
    // timestamps, versions, numbers
    "2024-01-15T10:30:00Z", "2024-01-15T10:30:00.123Z", "2024-01-15 10:30:00,123",
    "2026-11-22T03:54:13+01:00", "2024-01-15T10:30:00.1234567890", "2024-01-15", "2024-01-15T10:30",
    "2024-01-15T10:30:00-0500", "20240115", "version 1.2.3.4", "ver: 10.0.0.1", "release=1.2.3.4",
    "build 10.1.2.3", "firmware: 4.3.2.1", "appVersion: 1.2.3.4", "app_version=1.2.3.4",
    "Version 1.2.3.4", "VERSION 1.2.3.4", "myversion 1.2.3.4", "1700000000000", "200", "1234",
    "42.5", "3.14159", "0", "007", "1e10", "99999999999999999999999",
    // markers
    "[email]", "[ip]", "[card]", "[password:v1:0123456789abcdef]", "[token:v1:zz]", "[unknown]", "[", "]",
    // separators, punctuation, non-ASCII, words
    "-", "--", "_", "__", "-x", "x-", "a_b", "ORD-", "x-request-id", "--flag", " ", " ", " ", "  ",
    "\t", "\n", "\r\n", ",", ";", ".", ":", "=", "/", "\\", "\"", "'", "(", ")", "{", "}", "&", "<",
    ">", "|", "+", "%", "@", "#", "?", "é", "日本", "ß", "€", "😀", "request", "completed", "user",
    "the", "session", "items", "Accept", "tokens", "profile", "error", "b", "B", "J", "A", "ey", "ssn",
];

/// Bytes that start or end candidates, for random runs.
const TRIGGERS: &[u8] = b"0123456789abcdefABCDEFxyzJ-_.:=@%/ \t\n\"'[]{}+()&,;<>\\|!#?";

fn generated(r: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + r.below(12) {
        match r.below(10) {
            0..=5 => s.push_str(r.pick(FRAGMENTS)),
            6 | 7 => s.push(' '),
            8 => {
                for _ in 0..1 + r.below(6) {
                    s.push(char::from(TRIGGERS[r.below(TRIGGERS.len())]));
                }
            }
            _ => {
                // a random cut of a fragment, head or tail
                let f = r.pick(FRAGMENTS);
                let mut cut = r.below(f.len() + 1);
                while !f.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.push_str(if r.below(2) == 0 {
                    &f[..cut]
                } else {
                    &f[cut..]
                });
            }
        }
    }
    s
}

/// A log line like the bench's, a secret in one of three.
fn log_line(r: &mut Rng) -> String {
    const SECRETS: &[&str] = &[
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "DE89370400440532013000",
        "203.0.113.7",
        "2001:db8::1",
        "password=hunter2",
        "postgres://admin:s3cret@db.example.com/app",
        "AKIAIOSFODNN7EXAMPLE",
        "ssn 123-45-6789",
        "?token=abc&page=2",
    ];
    let mut s = format!(
        "2024-01-{:02}T{:02}:{:02}:{:02}.{:03}Z INFO request completed database Accept ",
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000)
    );
    s.push_str(&format!(
        "order_id=ORD-{:06} status={} duration_ms={} version 1.{}.{}.{} tokens: {} route=/users/{{id}} ts={}",
        r.below(1_000_000),
        r.pick(&["200", "201", "404", "500"]),
        r.below(2000),
        r.below(10),
        r.below(10),
        r.below(100),
        r.below(5000),
        1_700_000_000_000u64 + r.below(1_000_000_000) as u64
    ));
    if r.below(3) == 0 {
        s.push(' ');
        s.push_str(r.pick(SECRETS));
    }
    s.push('\n');
    s
}

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for file in [
        include_str!("redact_corpus/positives.txt"),
        include_str!("redact_corpus/negatives.txt"),
    ] {
        for line in file.lines() {
            let text = line.split_once('\t').map_or(line, |(_, t)| t);
            out.push(text.replace(['⟦', '⟧'], ""));
        }
    }
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut logs = String::new();
    while logs.len() < 40_000 {
        logs.push_str(&log_line(&mut r));
    }
    for _ in 0..3000 {
        // windows at every offset modulo 64, of every length up to 300
        let mut a = r.below(logs.len() - 400);
        while !logs.is_char_boundary(a) {
            a += 1;
        }
        let mut e = a + r.below(300);
        while !logs.is_char_boundary(e) {
            e += 1;
        }
        out.push(logs[a..e].to_owned());
    }
    out.push(logs);
    for _ in 0..8000 {
        out.push(generated(&mut r));
    }
    for _ in 0..1000 {
        let mut s = String::new();
        for _ in 0..1 + r.below(20) {
            s.push_str(&generated(&mut r));
        }
        out.push(s);
    }
    out
}

fn configurations() -> Vec<(&'static str, Scrubber)> {
    vec![
        ("default", Scrubber::default()),
        (
            "all rules, keys t and order_id",
            Scrubber::builder()
                .with_defaults()
                .enable("phone")
                .enable("uuid")
                .enable("imei")
                .enable("mac")
                .add_key("t")
                .add_key("order_id")
                .build()
                .unwrap(),
        ),
        (
            "hash and mask, no ip, 300-byte cap",
            Scrubber::builder()
                .with_defaults()
                .remove_rule("ip")
                .hmac_secret(1, b"pinned")
                .set_all_actions(Action::Hash)
                .set_action("card", Action::Mask { keep_last: 4 })
                .set_action("email", Action::Mask { keep_last: 2 })
                .max_string_len(300)
                .build()
                .unwrap(),
        ),
        (
            "remove, custom regex",
            Scrubber::builder()
                .with_defaults()
                .set_all_actions(Action::Remove)
                .add_regex("order", r"ORD-\d+", Action::Replace)
                .build()
                .unwrap(),
        ),
    ]
}

/// FNV-1a, 64 bits.
fn fnv(h: &mut u64, bytes: &[u8]) {
    for &c in bytes {
        *h ^= u64::from(c);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

#[test]
fn outputs_are_pinned() {
    let corpus = corpus();
    let mut digests = Vec::new();
    let mut scrubbed = 0;
    for (name, scrubber) in configurations() {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for text in &corpus {
            let (out, report) = scrubber.scrub_str(text);
            if report.total() > 0 {
                scrubbed += 1;
            }
            fnv(&mut h, out.as_bytes());
            fnv(&mut h, format!("{report:?}").as_bytes());
            for f in scrubber.explain(text) {
                fnv(
                    &mut h,
                    format!("{}{:?}{:?}", f.rule_id, f.kind, f.span).as_bytes(),
                );
            }
            fnv(&mut h, &[0xff]);
        }
        digests.push((name, h));
    }
    // the corpus exercises the scrubber (not a corpus of clean strings)
    assert!(scrubbed > 10_000, "only {scrubbed} scrubbed strings");
    eprintln!("{digests:#x?}");
    assert_eq!(
        digests,
        [
            ("default", 0xdffb_bfa6_eb74_1ede),
            ("all rules, keys t and order_id", 0xf796_de41_1f0d_0fb8),
            ("hash and mask, no ip, 300-byte cap", 0x18f7_6551_5d6b_5827),
            ("remove, custom regex", 0x0fa3_0e4e_38ff_912f),
        ]
    );
}
