//! The scanner's fast paths (timestamps skipped in one step, one-word keys looked up
//! directly, byte-set key filter, eight-byte skipping to trigger bytes) must give exactly the
//! results of the slow paths: these cases pin the outputs of the scanner before the fast paths
//! were added, and place secrets at every offset around the eight-byte steps.

use obs_core::redact::Scrubber;

fn scrub(s: &Scrubber, text: &str) -> String {
    s.scrub_str(text).0.into_owned()
}

/// `(input, default scrubber, scrubber with the extra key "t")`.
const TIMESTAMP_CASES: &[(&str, &str, &str)] = &[
    (
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:[t]",
    ),
    (
        "2024-01-15T10:30:00Z jane@example.com",
        "2024-01-15T10:30:00Z [email]",
        "2024-01-15T10:[t] [email]",
    ),
    // not followed by a token end: slow path, as before
    (
        "2024-01-15T10:30:00Z@example.com",
        "2024-01-15T10:30:[email]",
        "2024-01-15T10:[t]",
    ),
    (
        "2024-01-15T10:30:00.123+01:00 password=hunter2",
        "2024-01-15T10:30:00.123+01:00 password=[password]",
        "2024-01-15T10:[t] password=[password]",
    ),
    (
        "ts=2024-01-15T10:30:00.123456789Z card 4111 1111 1111 1111",
        "ts=2024-01-15T10:30:00.123456789Z card [card]",
        "ts=2024-01-15T10:[t] card [card]",
    ),
    // a `,` fraction can start a card: it is not part of the skipped timestamp
    (
        "2024-01-15 10:30:00,4111 1111 1111 1111",
        "2024-01-15 10:30:00,[card]",
        "2024-01-15 10:30:00,[card]",
    ),
    (
        "2024-01-15 10:30:00,411111 1111 1111 11",
        "2024-01-15 10:30:00,[card]",
        "2024-01-15 10:30:00,[card]",
    ),
    (
        "2024-01-15 10:30:00.1234567890",
        "2024-01-15 10:30:00.1234567890",
        "2024-01-15 10:30:00.1234567890",
    ),
    (
        "2024-01-15T10:30:00Z:password=x",
        "2024-01-15T10:30:00Z:password=[password]",
        "2024-01-15T10:[t]",
    ),
    (
        "x2024-01-15T10:30:00Z",
        "x2024-01-15T10:30:00Z",
        "x2024-01-15T10:[t]",
    ),
    (
        "pass-2024-01-15T10:30:00Z",
        "pass-2024-01-15T10:30:00Z",
        "pass-2024-01-15T10:[t]",
    ),
    (
        r#""2024-01-15T10:30:00+0100","2026-11-22T03:54:13-05:00""#,
        r#""2024-01-15T10:30:00+0100","2026-11-22T03:54:13-05:00""#,
        r#""2024-01-15T10:[t]","2026-11-22T03:[t]""#,
    ),
    (
        "2024-01-15 203.0.113.7",
        "2024-01-15 [ip]",
        "2024-01-15 [ip]",
    ),
    (
        "2024-01-15T10:30 token=abc",
        "2024-01-15T10:30 token=[token]",
        "2024-01-15T10:[t] token=[token]",
    ),
    (
        "2024-01-15T10:30:00Z\n2024-01-15 10:30:00 ssn 123456789",
        "2024-01-15T10:30:00Z\n2024-01-15 10:30:00 ssn [ssn]",
        "2024-01-15T10:[t]\n2024-01-15 10:30:00 ssn [ssn]",
    ),
    ("(2024-01-15)", "(2024-01-15)", "(2024-01-15)"),
    (
        "2024-01-15T10:30:00.123Z|2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00.123Z|2024-01-15T10:30:00Z",
        "2024-01-15T10:[t]",
    ),
    (
        "2024-01-15T10:30:00.ab",
        "2024-01-15T10:30:00.ab",
        "2024-01-15T10:[t]",
    ),
    (
        "2024-01-15T10:30:00Z2001:db8::1",
        "2024-01-15T10:30:00Z2001:db8::1",
        "2024-01-15T10:[t]",
    ),
];

#[test]
fn timestamps_skip_exactly() {
    let default = Scrubber::default();
    // a key entry made of digits and `t` can match a timestamp's words: no fast path then
    let with_t = Scrubber::builder()
        .with_defaults()
        .add_key("t")
        .build()
        .unwrap();
    for (input, want, want_t) in TIMESTAMP_CASES {
        assert_eq!(scrub(&default, input), *want, "default on {input:?}");
        assert_eq!(scrub(&with_t, input), *want_t, "key `t` on {input:?}");
    }
}

#[test]
fn one_word_keys_match_like_split_keys() {
    let s = Scrubber::default();
    for (input, want) in [
        ("Password: hunter2", "Password: [password]"),
        ("PASSWORD=hunter2", "PASSWORD=[password]"),
        ("TOKEN=abc", "TOKEN=[token]"),
        ("Session=abc", "Session=[session]"),
        ("cookie: a=b; c=d", "cookie: [cookie]"),
        ("Tokens: 5", "Tokens: 5"),
        ("tokens: 5 total_tokens=9", "tokens: 5 total_tokens=9"),
        // lower then upper: two words `t` + `oken` whose concatenation is `token`
        ("tOKEN=abc", "tOKEN=[token]"),
        (
            "Author=Jane authenticated=true",
            "Author=Jane authenticated=true",
        ),
        // multi-word keys still go through the word split
        (
            "apiKey=abc X-Auth-Token: xyz",
            "apiKey=[api_key] X-Auth-Token: [token]",
        ),
        ("user.password_hash=abc", "user.password_hash=[password]"),
        (
            "status=200 route=/a duration_ms=3",
            "status=200 route=/a duration_ms=3",
        ),
    ] {
        assert_eq!(scrub(&s, input), want, "{input:?}");
    }
}

#[test]
fn short_and_user_keys() {
    let s = Scrubber::builder()
        .with_defaults()
        .add_key("ab")
        .add_key("x")
        .build()
        .unwrap();
    assert_eq!(scrub(&s, "ab=1 a=2 x=3 y=4"), "ab=[ab] a=2 x=[x] y=4");
    assert_eq!(
        scrub(&s, "my_ab: 5 AB=6 aB=7"),
        "my_ab: [ab] AB=[ab] aB=[ab]"
    );
    // JSON keys use the same matcher
    let mut v = serde_json::json!({ "AB": 1, "ba": 2, "X": 3, "Pwd": "p" });
    s.scrub_json(&mut v);
    assert_eq!(
        v,
        serde_json::json!({ "AB": "[ab]", "ba": 2, "X": "[x]", "Pwd": "[pwd]" })
    );
}

#[test]
fn secrets_at_every_offset_around_eight_byte_steps() {
    let s = Scrubber::default();
    for (secret, rule) in [
        ("jane@example.com", "email"),
        ("password=hunter2", "password"),
        ("4111111111111111", "card"),
        ("203.0.113.7", "ip"),
        ("Bearer abcdef123456", "bearer"),
        ("AKIAIOSFODNN7EXAMPLE", "aws_key"),
    ] {
        for pad in 0..20 {
            for tail in 0..10 {
                let text = format!(
                    "{}{secret}{}",
                    "x y ".repeat(pad / 4) + &" ".repeat(pad % 4),
                    " .".repeat(tail)
                );
                let (out, report) = s.scrub_str(&text);
                assert!(!out.contains(secret), "{secret} at {pad}/{tail}: {out:?}");
                assert_eq!(report.count(rule), 1, "{secret} at {pad}/{tail}: {report}");
            }
        }
    }
    // a key whose bytes straddle a step: the look-back is not limited by the step
    for pad in 1..16 {
        let text = format!("{}x-api-key={}", "q".repeat(pad) + " ", "k".repeat(pad));
        assert_eq!(
            scrub(&s, &text),
            format!("{} x-api-key=[api_key]", "q".repeat(pad)),
            "{text:?}"
        );
    }
}

#[test]
fn dense_clean_log_lines_survive() {
    let s = Scrubber::default();
    let line = "2024-01-15T10:30:00.123Z INFO request completed for user Accept author \
                order_id=ORD-000123 status=200 duration_ms=17 version 1.2.3.45 tokens: 42 \
                route=/users/{id} ts=1700000000123\n";
    let text = line.repeat(50);
    let (out, report) = s.scrub_str(&text);
    assert!(report.is_empty(), "{report}");
    assert_eq!(out, text);
}

/// `(input, default scrubber)`: outputs of the scanner before the shape pre-checks (digit
/// run shapes, `_`/`-` token prefixes, the word-wise version-word and timestamp checks,
/// the copy-free one-word key filter), which must reject exactly what the validators
/// behind them rejected.
const SHAPE_CASES: &[(&str, &str)] = &[
    ("version 1.2.3.4 and 10.0.0.1", "version 1.2.3.4 and [ip]"),
    ("Version: 203.0.113.7", "Version: 203.0.113.7"),
    ("appVersion=203.0.113.7", "appVersion=203.0.113.7"),
    ("xVERSION 203.0.113.7", "xVERSION 203.0.113.7"),
    ("XVERSION 203.0.113.7", "XVERSION [ip]"),
    ("firmware 203.0.113.7", "firmware 203.0.113.7"),
    ("myfirmware 203.0.113.7", "myfirmware [ip]"),
    ("v 203.0.113.7", "v [ip]"),
    ("ver 203.0.113.7", "ver 203.0.113.7"),
    ("build:\"203.0.113.7\"", "build:\"203.0.113.7\""),
    ("unbuild 203.0.113.7", "unbuild [ip]"),
    ("rebuild 203.0.113.7", "rebuild [ip]"),
    ("1.2.3.4.5 then 203.0.113.7", "1.2.3.4.5 then [ip]"),
    ("3.14 4111 1111 1111 1111", "3.14 [card]"),
    ("ts=1700000000000 card=4111111111111111 n=4111111111111111", "ts=1700000000000 card=[card] n=[card]"),
    ("x 4111111111111111 y 1411111111111111 z", "x [card] y 1411111111111111 z"),
    ("2024-01-15T10:30:00Z 2024-01-15T10:30:00.123456789Z 2024-01-15 10:30:00.1234567890", "2024-01-15T10:30:00Z 2024-01-15T10:30:00.123456789Z 2024-01-15 10:30:00.1234567890"),
    ("2024-01-15T10:30:00+01:00 2024-01-15T10:30:00-0530 2024-01-15T10:30:00+01 x", "2024-01-15T10:30:00+01:00 2024-01-15T10:30:00-0530 2024-01-15T10:30:00+01 x"),
    ("2024-01-15X10:30:00Z jane@example.com", "2024-01-15X10:30:00Z [email]"),
    ("2024-01-15T10:30:0 jane@example.com", "2024-01-15T10:30:0 [email]"),
    ("2024-01-15T10:3a:00Z jane@example.com", "2024-01-15T10:3a:00Z [email]"),
    ("order_id=ORD-1 ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 xghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "order_id=ORD-1 [github_token] xghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("sk_live_abcdefghij12 rk_test_0123456789 npm_abcdefghijklmnopqrstuvwxyz0123456789", "[stripe_key] [stripe_key] [npm_token]"),
    ("github_pat_11ABCDEFG0123456789abcdefghij", "[github_token]"),
    ("xoxb-1234567890-abc glpat-abcdefghij0123456789 -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- x", "[slack_token] [gitlab_token] [pem_key] x"),
    ("tokens: 5 Tokens: 6 TOKEN: 7 Token: 8 token: 9", "tokens: 5 Tokens: 6 TOKEN: [token] Token: [token] token: [token]"),
    // the third number is beyond the `ssn` context window in the input, but within it once
    // the first two are replaced: the fixed point (what a second scrub would give) has it too
    ("ssn 123 45 6789 and 123-45-6789 and 123456789", "ssn [ssn] and [ssn] and [ssn]"),
];

#[test]
fn shape_prechecks_reject_exactly() {
    let s = Scrubber::default();
    for (input, expected) in SHAPE_CASES {
        assert_eq!(scrub(&s, input), *expected, "{input:?}");
    }
    // a version word right at the start (fewer than eight bytes before the quad)
    for (input, expected) in [
        ("ver 1.2.3.4", "ver 1.2.3.4"),
        ("v1 1.2.3.4", "v1 [ip]"),
        ("build=1.2.3.4", "build=1.2.3.4"),
        ("rebuilt 1.2.3.4", "rebuilt [ip]"),
    ] {
        assert_eq!(scrub(&s, input), expected, "{input:?}");
    }
}
