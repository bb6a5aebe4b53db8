//! Property tests: generated secrets never survive, scrubbing is idempotent, output stays
//! valid UTF-8 / JSON, and arbitrary input never panics (the bounded in-CI stand-in for the
//! cargo-fuzz target in `fuzz/`).

use obs_core::redact::{Action, Scrubber};
use proptest::prelude::*;
use serde_json::Value;

fn scrubber() -> Scrubber {
    Scrubber::default()
}

fn luhn_complete(mut digits: Vec<u8>) -> Vec<u8> {
    // append the check digit that makes `digits` Luhn-valid
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    digits.push(((10 - sum % 10) % 10) as u8);
    digits
}

/// Luhn-valid card numbers with real network prefixes and lengths.
fn card_digits() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<(&'static str, usize)> = vec![
        ("4", 16),
        ("4", 13),
        ("4", 19),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("65", 16),
        ("644", 16),
        ("3528", 16),
        ("3589", 19),
        ("300", 14),
        ("36", 14),
        ("62", 16),
        ("62", 19),
    ];
    proptest::sample::select(prefixes).prop_flat_map(|(p, len)| {
        let p: Vec<u8> = p.bytes().map(|b| b - b'0').collect();
        let rest = len - p.len() - 1;
        proptest::collection::vec(0u8..10, rest).prop_map(move |r| {
            let mut d = p.clone();
            d.extend(r);
            luhn_complete(d)
        })
    })
}

fn format_card(d: &[u8], style: u8) -> String {
    let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
    match style {
        0 => s,
        1 | 2 => {
            let sep = if style == 1 { " " } else { "-" };
            if d.len() == 15 {
                format!("{}{sep}{}{sep}{}", &s[..4], &s[4..10], &s[10..])
            } else {
                s.as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(sep)
            }
        }
        _ => s,
    }
}

fn email() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9._%+-]{0,20}[a-z0-9]",
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
        proptest::sample::select(vec!["com", "org", "io", "co.uk", "example", "de"]),
    )
        .prop_map(|(l, d, t)| format!("{l}@{d}.{t}"))
        .prop_filter("no double dots", |e| !e.contains(".."))
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn jwt() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(vec!["HS256", "RS256", "ES384", "none"]),
        "[a-z0-9]{1,20}",
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(alg, sub, sig)| {
            format!(
                "{}.{}.{}",
                b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
                b64url(format!(r#"{{"sub":"{sub}"}}"#).as_bytes()),
                b64url(&sig)
            )
        })
}

fn iban() -> impl Strategy<Value = String> {
    // (country, BBAN length, all-digit BBAN)
    let countries = vec![
        ("DE", 18),
        ("FR", 23),
        ("ES", 20),
        ("IT", 23),
        ("NL", 14),
        ("BE", 12),
        ("CH", 17),
        ("AT", 16),
    ];
    proptest::sample::select(countries).prop_flat_map(|(cc, n)| {
        proptest::collection::vec(0u8..10, n).prop_map(move |d| {
            let bban: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            // check digits: 98 - (bban + cc + "00") mod 97
            let mut rem = 0u32;
            let rearranged = format!("{bban}{cc}00");
            for c in rearranged.bytes() {
                rem = if c.is_ascii_digit() {
                    (rem * 10 + u32::from(c - b'0')) % 97
                } else {
                    (rem * 100 + u32::from(c - b'A' + 10)) % 97
                };
            }
            format!("{cc}{:02}{bban}", 98 - rem)
        })
    })
}

fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z ,.!?]{0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn emails_never_survive(pre in filler(), e in email(), post in filler()) {
        let text = format!("{pre} {e} {post}");
        let (out, report) = scrubber().scrub_str(&text);
        prop_assert!(!out.contains(&e), "{text:?} -> {out:?}");
        prop_assert!(report.count("email") >= 1);
    }

    #[test]
    fn cards_never_survive(pre in filler(), d in card_digits(), style in 0u8..3, post in filler()) {
        let card = format_card(&d, style);
        let text = format!("{pre} {card} {post}");
        let (out, report) = scrubber().scrub_str(&text);
        prop_assert!(!out.contains(&card), "{text:?} -> {out:?}");
        prop_assert!(report.count("card") >= 1, "{text:?}: {report}");
    }

    #[test]
    fn jwts_never_survive(pre in filler(), t in jwt(), post in filler()) {
        let text = format!("{pre} {t} {post}");
        let (out, report) = scrubber().scrub_str(&text);
        prop_assert!(!out.contains(&t), "{text:?} -> {out:?}");
        prop_assert!(report.count("jwt") >= 1);
    }

    #[test]
    fn ibans_never_survive(pre in filler(), i in iban(), post in filler()) {
        let text = format!("{pre} {i} {post}");
        let (out, report) = scrubber().scrub_str(&text);
        prop_assert!(!out.contains(&i), "{text:?} -> {out:?}");
        prop_assert!(report.count("iban") >= 1);
    }

    #[test]
    fn secrets_in_json_never_survive(e in email(), d in card_digits(), t in jwt(), i in iban()) {
        let card = format_card(&d, 1);
        let mut v = serde_json::json!({
            "a": e, "b": [card, {"c": t}], "d": format!("iban {i}"), "n": 1,
        });
        let report = scrubber().scrub_json(&mut v);
        let out = v.to_string();
        for secret in [&e, &card, &t, &i] {
            prop_assert!(!out.contains(secret.as_str()), "{out}");
        }
        prop_assert_eq!(report.total(), 4);
    }

    #[test]
    fn idempotent_text(pre in filler(), e in email(), d in card_digits(), t in jwt(), i in iban(), key in proptest::sample::select(vec!["password", "token", "apiKey", "x-auth-token"])) {
        for action in [Action::Replace, Action::Mask { keep_last: 4 }, Action::Hash, Action::Remove] {
            let s = Scrubber::builder().with_defaults().set_all_actions(action).hmac_secret(1, "k").build().unwrap();
            let text = format!("{pre} {e} {} {key}={pre}x {t} {i} ip 10.1.2.3", format_card(&d, 0));
            let (once, _) = s.scrub_str(&text);
            let (twice, report) = s.scrub_str(&once);
            prop_assert_eq!(&once, &twice, "{:?}", action);
            prop_assert!(report.is_empty(), "{:?}: {}", action, report);
        }
    }

    #[test]
    fn idempotent_json(e in email(), d in card_digits(), key in "[a-z_]{1,12}") {
        let s = scrubber();
        let mut v = serde_json::json!({ key.clone(): e, "password": format_card(&d, 2), "nested": {"token": 5, "k": [e]} });
        s.scrub_json(&mut v);
        let once = v.clone();
        let report = s.scrub_json(&mut v);
        prop_assert_eq!(&once, &v);
        prop_assert!(report.is_empty(), "{}", report);
    }
}

// ------------------------------------------------------------------ robustness (fuzz stand-in)

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[ -~]{0,60}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,16}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Inputs biased towards the detectors' triggers.
fn tricky_text() -> impl Strategy<Value = String> {
    let atoms = proptest::sample::select(vec![
        "@",
        ":",
        "::",
        "=",
        "-",
        "_",
        "eyJ",
        "AKIA",
        "Bearer ",
        "Basic ",
        "://",
        "-----BEGIN ",
        "PRIVATE KEY-----",
        "-----END ",
        "[",
        "]",
        "[email]",
        "[token:v1:",
        "4111",
        " ",
        "1",
        "9",
        ".",
        "\"",
        "\\\"",
        "password",
        "token",
        "ghp_",
        "sk_live_",
        "xoxb-",
        "glpat-",
        "npm_",
        "DE89",
        "é",
        "€",
        "\u{1F600}",
        "\n",
        "a",
        "Z",
        "f",
        "+",
        "(",
        "ssn",
        "version ",
        "%40",
    ]);
    proptest::collection::vec(atoms, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let all = Scrubber::builder().with_defaults().enable("phone").enable("uuid").enable("imei").enable("mac").build().unwrap();
        for s in [scrubber(), all] {
            let (out, _) = s.scrub_str(&text);
            // valid UTF-8 by construction (it is a str); rescanning is stable
            let (again, _) = s.scrub_str(&out);
            prop_assert_eq!(&out, &again);
            let _ = s.explain(&text);
        }
    }

    #[test]
    fn tricky_text_never_panics_and_is_idempotent(text in tricky_text()) {
        let s = Scrubber::builder().with_defaults().enable("phone").enable("uuid").enable("imei").enable("mac").build().unwrap();
        let (out, _) = s.scrub_str(&text);
        let (again, report) = s.scrub_str(&out);
        prop_assert_eq!(&out, &again, "{:?}", text);
        prop_assert!(report.is_empty());
        for f in s.explain(&text) {
            prop_assert!(text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end));
        }
    }

    #[test]
    fn arbitrary_json_stays_valid(mut v in json_value()) {
        let s = Scrubber::builder().with_defaults().max_depth(4).max_properties(40).build().unwrap();
        let _ = s.explain_json(&v);
        s.scrub_json(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, v);
    }
}
