//! Precision corpus: every positive must be caught by its rule (recall 100%) and every
//! negative must survive the default scrubber unchanged (0 false positives).

use std::borrow::Cow;

use obs_core::redact::{FindingKind, Scrubber};

const POSITIVES: &str = include_str!("redact_corpus/positives.txt");
const NEGATIVES: &str = include_str!("redact_corpus/negatives.txt");

fn lines(corpus: &str) -> impl Iterator<Item = &str> {
    corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

/// `(rule, input, secret)` from `rule<TAB>text with ⟦secret⟧`.
fn positives() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in lines(POSITIVES) {
        let (rule, text) = line.split_once('\t').expect("rule<TAB>text");
        let open = text.find('⟦').expect("⟦ marker");
        let close = text.find('⟧').expect("⟧ marker");
        let secret = text[open + '⟦'.len_utf8()..close].to_owned();
        let input = text.replace(['⟦', '⟧'], "");
        out.push((rule.to_owned(), input.clone(), secret.clone()));
        if input.contains("\\n") {
            // the same text with real newlines
            out.push((
                rule.to_owned(),
                input.replace("\\n", "\n"),
                secret.replace("\\n", "\n"),
            ));
        }
    }
    out
}

#[test]
fn corpus_recall_is_total() {
    let scrubber = Scrubber::default();
    let cases = positives();
    assert!(cases.len() > 70, "corpus too small: {}", cases.len());
    let mut failures = Vec::new();
    for (rule, input, secret) in &cases {
        let (out, report) = scrubber.scrub_str(input);
        if out.contains(secret.as_str()) || report.count(rule) == 0 {
            failures.push(format!("[{rule}] {input:?} -> {out:?} (report: {report})"));
            continue;
        }
        let findings = scrubber.explain(input);
        let f = findings
            .iter()
            .find(|f| &*f.rule_id == rule)
            .expect("explain agrees with scrub");
        assert!(
            input[f.span.clone()].contains(secret.as_str())
                || secret.contains(&input[f.span.clone()]),
            "explain span of [{rule}] in {input:?} is {:?}",
            f.span
        );
        assert!(matches!(f.kind, FindingKind::Value | FindingKind::KeyValue));
    }
    assert!(
        failures.is_empty(),
        "missed positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn corpus_has_no_false_positives() {
    let scrubber = Scrubber::default();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in lines(NEGATIVES) {
        n += 1;
        let (out, report) = scrubber.scrub_str(line);
        if !matches!(out, Cow::Borrowed(_)) || !report.is_empty() {
            failures.push(format!("{line:?} -> {out:?} (report: {report})"));
        }
        assert!(scrubber.explain(line).is_empty() || !failures.is_empty());
    }
    assert!(n > 50, "corpus too small: {n}");
    assert!(
        failures.is_empty(),
        "false positives:\n{}",
        failures.join("\n")
    );
}

#[test]
fn corpus_positives_survive_as_json_strings() {
    // The same positives embedded as JSON string values (under a neutral key) are caught too.
    let scrubber = Scrubber::default();
    for (rule, input, secret) in positives() {
        let mut v = serde_json::json!({ "message": input });
        let report = scrubber.scrub_json(&mut v);
        let out = v["message"].as_str().unwrap();
        assert!(
            !out.contains(secret.as_str()),
            "[{rule}] {input:?} -> {out:?}"
        );
        assert!(report.count(&rule) >= 1, "[{rule}] {input:?}: {report}");
    }
}

#[test]
fn corpus_negatives_survive_as_json_strings() {
    let scrubber = Scrubber::default();
    for line in lines(NEGATIVES) {
        let mut v = serde_json::json!({ "message": line, "list": [line] });
        let before = v.clone();
        let report = scrubber.scrub_json(&mut v);
        assert_eq!(v, before, "{line:?}: {report}");
        assert!(report.is_empty());
    }
}
