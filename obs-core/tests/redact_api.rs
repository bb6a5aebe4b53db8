//! Builder, actions, JSON handling, limits and explain.

use std::borrow::Cow;

use obs_core::redact::{
    Action, BuildError, Cap, FindingKind, RuleKind, Scrubber, ALLOWLIST_RULE_ID,
};
use serde_json::json;

#[test]
fn builder_adds_and_removes_rules() {
    let s = Scrubber::builder()
        .with_defaults()
        .remove_rule("ip")
        .add_key("x-internal")
        .enable("uuid")
        .build()
        .unwrap();
    let (out, report) =
        s.scrub_str("from 10.0.0.1 x-internal=abc id 550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(out, "from 10.0.0.1 x-internal=[x-internal] id [uuid]");
    assert_eq!(report.count("x-internal"), 1);
    assert_eq!(report.count("uuid"), 1);
    assert_eq!(report.count("ip"), 0);
    assert!(s
        .rules()
        .any(|(id, kind, _)| id == "x-internal" && kind == RuleKind::Key));
    assert!(s
        .rules()
        .any(|(id, kind, _)| id == "email" && kind == RuleKind::Value));
    assert!(!s.rules().any(|(id, _, _)| id == "ip"));
}

#[test]
fn builder_errors() {
    assert!(matches!(
        Scrubber::builder().remove_rule("nope").build(),
        Err(BuildError::UnknownRule(id)) if id == "nope"
    ));
    assert!(matches!(
        Scrubber::builder().with_defaults().add_key("token").build(),
        Err(BuildError::DuplicateRule(_))
    ));
    assert!(matches!(
        Scrubber::builder()
            .with_defaults()
            .add_key("API-key")
            .build(),
        Err(BuildError::DuplicateRule(_))
    ));
    assert!(matches!(
        Scrubber::builder().add_key("--").build(),
        Err(BuildError::EmptyKey(_))
    ));
    assert!(matches!(
        Scrubber::builder().with_defaults().set_action("email", Action::Hash).build(),
        Err(BuildError::MissingHashSecret(id)) if id == "email"
    ));
    assert!(matches!(
        Scrubber::builder()
            .add_regex("r", "(", Action::Replace)
            .build(),
        Err(BuildError::Regex { .. })
    ));
    assert!(matches!(
        Scrubber::builder()
            .add_regex("Bad Id", "x", Action::Replace)
            .build(),
        Err(BuildError::InvalidRuleId(_))
    ));
    // the Relay crash: a pattern whose compiled size explodes is refused, not built
    assert!(matches!(
        Scrubber::builder()
            .add_regex("huge", r"\w{1000}\w{1000}\w{1000}", Action::Replace)
            .build(),
        Err(BuildError::Regex { .. })
    ));
    assert!(matches!(
        Scrubber::builder().enable("nope").build(),
        Err(BuildError::UnknownRule(_))
    ));
}

#[test]
fn actions() {
    let text = "mail jane@example.com card 4111 1111 1111 1111";
    let replace = Scrubber::default();
    assert_eq!(replace.scrub_str(text).0, "mail [email] card [card]");

    let remove = Scrubber::builder()
        .with_defaults()
        .set_all_actions(Action::Remove)
        .build()
        .unwrap();
    assert_eq!(remove.scrub_str(text).0, "mail  card ");
    assert_eq!(remove.scrub_str("a ?password=x&y=1").0, "a ?&y=1");

    let mask = Scrubber::builder()
        .with_defaults()
        .set_action("card", Action::Mask { keep_last: 4 })
        .set_action("email", Action::Mask { keep_last: 0 })
        .build()
        .unwrap();
    assert_eq!(
        mask.scrub_str(text).0,
        "mail ****@*******.*** card **** **** **** 1111"
    );

    let hash = |secret: &str, version: u32| {
        Scrubber::builder()
            .with_defaults()
            .set_action("email", Action::Hash)
            .hmac_secret(version, secret)
            .build()
            .unwrap()
    };
    let (a, _) = hash("k1", 1).scrub_str("jane@example.com");
    let (b, _) = hash("k1", 1).scrub_str("jane@example.com");
    let (c, _) = hash("k2", 2).scrub_str("jane@example.com");
    let (d, _) = hash("k1", 1).scrub_str("john@example.com");
    assert_eq!(a, b, "same secret, same value: joinable");
    assert_ne!(a, d);
    assert!(
        a.starts_with("[email:v1:") && a.ends_with(']') && a.len() == "[email:v1:]".len() + 16,
        "{a}"
    );
    assert!(c.starts_with("[email:v2:"));
    assert_ne!(a[10..], c[10..]);
}

#[test]
fn json_scrubbing() {
    let s = Scrubber::default();
    let mut v = json!({
        "user": {"email": "a@b.io", "password": "pw", "authorToken": {"x": 1}, "author": "Jane"},
        "items": [{"card": 4111111111111111u64}, "call 203.0.113.5"],
        "apiKey": 12345,
        "session_id": null,
        "password_set": true,
        "app_version": "1.2.3.4",
        "query": "?token=abc&page=2",
    });
    let report = s.scrub_json(&mut v);
    assert_eq!(
        v,
        json!({
            "user": {"email": "[email]", "password": "[password]", "authorToken": "[token]", "author": "Jane"},
            "items": [{"card": "[card]"}, "call [ip]"],
            "apiKey": "[api_key]",
            "session_id": null,
            "password_set": true,
            "app_version": "1.2.3.4",
            "query": "?token=[token]&page=2",
        })
    );
    assert_eq!(report.count("token"), 2);
    assert_eq!(report.total(), 7);
}

#[test]
fn json_remove_drops_entries() {
    let s = Scrubber::builder()
        .with_defaults()
        .set_action("password", Action::Remove)
        .build()
        .unwrap();
    let mut v = json!({"password": "x", "name": "n"});
    s.scrub_json(&mut v);
    assert_eq!(v, json!({"name": "n"}));
}

#[test]
fn allowlist_fails_closed() {
    let s = Scrubber::builder()
        .with_defaults()
        .allow_only_keys(["event", "props", "email", "count"])
        .build()
        .unwrap();
    let mut v = json!({"event": "signup", "props": {"email": "a@b.io", "count": 2, "ssn_raw": "x"}, "extra": 1});
    let report = s.scrub_json(&mut v);
    assert_eq!(
        v,
        json!({"event": "signup", "props": {"email": "[email]", "count": 2}})
    );
    assert_eq!(report.count(ALLOWLIST_RULE_ID), 2);
    let findings = s.explain_json(&json!({"extra": 1}));
    assert_eq!(findings[0].path, "/extra");
    assert_eq!(findings[0].finding.kind, FindingKind::NotAllowed);
}

#[test]
fn limits_are_enforced_and_reported() {
    let s = Scrubber::builder()
        .with_defaults()
        .max_string_len(20)
        .max_depth(2)
        .max_properties(5)
        .build()
        .unwrap();
    let (out, report) = s.scrub_str("hello world, this is long jane@example.com");
    assert_eq!(out, "hello world, this is[truncated]");
    assert_eq!(report.cap_hits(Cap::StringLength), 1);

    let mut deep = json!({"a": {"b": {"c": "jane@example.com"}}});
    let report = s.scrub_json(&mut deep);
    assert_eq!(deep, json!({"a": {"b": "[depth]"}}));
    assert_eq!(report.cap_hits(Cap::Depth), 1);

    let mut wide = json!({"k": [1, 2, 3, 4, 5, 6, 7, 8]});
    let report = s.scrub_json(&mut wide);
    assert_eq!(wide, json!({"k": [1, 2, 3, 4]}));
    assert_eq!(report.cap_hits(Cap::Properties), 1);
    assert_eq!(report.to_string(), "caps: max_properties=1");

    // hostile input: deeply nested JSON built programmatically does not blow the stack
    let mut v = json!("x");
    for _ in 0..10_000 {
        v = serde_json::Value::Array(vec![v]);
    }
    let report = Scrubber::default().scrub_json(&mut v);
    assert_eq!(report.cap_hits(Cap::Depth), 1);
    let mut depth = 0;
    let mut cur = &v;
    while let serde_json::Value::Array(a) = cur {
        depth += 1;
        cur = &a[0];
    }
    assert_eq!(depth, 32);
    assert_eq!(cur, "[depth]");
}

#[test]
fn explain_gives_rule_kind_and_span() {
    let s = Scrubber::default();
    let text = "Authorization: Bearer abc, mail jane@example.com";
    let f = s.explain(text);
    assert_eq!(f.len(), 2);
    assert_eq!(&*f[0].rule_id, "authorization");
    assert_eq!(f[0].kind, FindingKind::KeyValue);
    assert_eq!(&text[f[0].span.clone()], "Bearer abc");
    assert_eq!(&*f[1].rule_id, "email");
    assert_eq!(f[1].kind, FindingKind::Value);
    assert_eq!(&text[f[1].span.clone()], "jane@example.com");

    let j = s.explain_json(
        &json!({"user": {"password": "x", "note": "ip 10.0.0.1"}, "a/b": ["jane@example.com"]}),
    );
    let paths: Vec<_> = j
        .iter()
        .map(|f| (f.path.as_str(), &*f.finding.rule_id))
        .collect();
    assert_eq!(
        paths,
        [
            ("/a~1b/0", "email"),
            ("/user/note", "ip"),
            ("/user/password", "password")
        ]
    );
    assert_eq!(j[2].finding.kind, FindingKind::Key);
}

#[test]
fn custom_regex_rules() {
    let s = Scrubber::builder()
        .with_defaults()
        .add_regex("order_ref", r"\bORD-\d{6}\b", Action::Replace)
        .build()
        .unwrap();
    let (out, report) = s.scrub_str("ref ORD-123456 from jane@example.com");
    assert_eq!(out, "ref [order_ref] from [email]");
    assert_eq!(report.count("order_ref"), 1);
}

#[test]
fn free_text_key_values() {
    let s = Scrubber::default();
    let cases = [
        (
            "GET /?password=hunter2&x=1",
            "GET /?password=[password]&x=1",
        ),
        (
            "Authorization: Bearer abc",
            "Authorization: [authorization]",
        ),
        ("token=abc", "token=[token]"),
        (
            r#"{"api_key": "k 1", "n": 2}"#,
            r#"{"api_key": "[api_key]", "n": 2}"#,
        ),
        (
            "Cookie: a=1; b=2\nnext: line",
            "Cookie: [cookie]\nnext: line",
        ),
        (
            "tokens: 123, author=me, Accept: */*",
            "tokens: 123, author=me, Accept: */*",
        ),
        ("User authenticated", "User authenticated"),
        (
            "sent Bearer abcdef123456 upstream",
            "sent [bearer] upstream",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(s.scrub_str(input).0, expected, "{input}");
    }
}

#[test]
fn scrub_string_in_place_and_borrow_when_clean() {
    let s = Scrubber::default();
    let mut text = String::from("mail jane@example.com");
    let report = s.scrub_string(&mut text);
    assert_eq!(text, "mail [email]");
    assert_eq!(report.count("email"), 1);
    let (out, report) = s.scrub_str("nothing to see here, version 1.2.3.4");
    assert!(matches!(out, Cow::Borrowed(_)));
    assert!(report.is_empty());
}

#[test]
fn optional_detectors() {
    let s = Scrubber::builder()
        .with_defaults()
        .enable("phone")
        .enable("imei")
        .enable("mac")
        .build()
        .unwrap();
    let (out, report) = s.scrub_str(
        "call +44 20 7946 0958 or 555-123-4567, imei 490154203237518, mac 00:1a:2b:3c:4d:5e",
    );
    assert_eq!(out, "call [phone] or [phone], imei [imei], mac [mac]");
    assert_eq!(report.count("phone"), 2);
}

#[test]
fn hostile_inputs_are_scanned_linearly_and_stay_stable() {
    // Patterns that would make a naive scanner go quadratic (every trigger re-scanning the
    // rest of the text). 200 KB each; the scan must finish and be idempotent.
    let s = Scrubber::builder()
        .with_defaults()
        .enable("phone")
        .enable("uuid")
        .enable("mac")
        .enable("imei")
        .build()
        .unwrap();
    let patterns = [
        "a=",
        "token=",
        "@",
        "a@",
        ":",
        "::",
        "1.",
        "1 ",
        "4111 ",
        "eyJ",
        "eyJa.",
        "-----BEGIN ",
        "-----BEGIN RSA PRIVATE KEY-----",
        "Bearer ",
        "[email",
        "\\\"password\\\":\\\"",
        "https://a:",
        "\"token\": \"",
        "ab:cd:",
        "+1 ",
    ];
    for p in patterns {
        let text = p.repeat(200_000 / p.len());
        let (once, _) = s.scrub_str(&text);
        let (twice, report) = s.scrub_str(&once);
        assert_eq!(once, twice, "{p:?}");
        assert!(report.is_empty(), "{p:?}: {report}");
    }
}

#[test]
fn readme_example() {
    let scrubber = Scrubber::builder()
        .with_defaults()
        .add_key("x-internal")
        .set_action("card", Action::Mask { keep_last: 4 })
        .build()
        .unwrap();
    let mut event =
        json!({"email": "jane@example.com", "msg": "GET /?token=abc", "author": "Jane"});
    let report = scrubber.scrub_json(&mut event);
    assert_eq!(event["msg"], "GET /?token=[token]");
    assert_eq!(report.to_string(), "email=1 token=1");
}

#[test]
fn custom_rule_overlapping_a_removed_pair_is_safe() {
    let s = Scrubber::builder()
        .with_defaults()
        .add_regex("pass", "pass", Action::Replace)
        .set_action("password", Action::Remove)
        .build()
        .unwrap();
    let (out, report) = s.scrub_str("a password=hunter2 b");
    assert_eq!(out, "a [pass] b");
    assert_eq!(report.count("pass"), 1);
    assert_eq!(report.count("password"), 1);
}

/// Replacements can join their neighbours into a new match; `scrub_str` returns the fixed
/// point, so scrubbing its output again changes nothing (cases found by `redact_props`).
#[test]
fn output_is_a_fixed_point_when_a_replacement_creates_a_match() {
    let s = Scrubber::default();
    for (input, expected) in [
        // the key ran back into the token: on its own after the replacement
        (
            "xoxb-passwordghp_password::",
            "[slack_token]_password:[password]",
        ),
        // the `Bearer` password's space hid the URL until it was replaced
        ("4111://:Bearer password=@", "4111://[url_auth]@"),
    ] {
        let (out, _) = s.scrub_str(input);
        assert_eq!(out, expected, "{input:?}");
        let (again, report) = s.scrub_str(&out);
        assert_eq!(again, out, "{input:?}");
        assert!(report.is_empty(), "{input:?}: {report}");
    }
}

#[test]
fn custom_rules_do_not_match_inside_markers() {
    let s = Scrubber::builder()
        .add_regex("pass", "pass", Action::Replace)
        .add_regex("h", "[0-9a-f]{4}", Action::Hash)
        .hmac_secret(1, "k")
        .build()
        .unwrap();
    let (out, report) = s.scrub_str("pass and [pass] and beef");
    assert_eq!(report.count("pass"), 1, "{out}");
    assert!(out.starts_with("[pass] and [pass] and [h:v1:"), "{out}");
    let (again, report) = s.scrub_str(&out);
    assert_eq!(again, out);
    assert!(report.is_empty(), "{report}");
}
