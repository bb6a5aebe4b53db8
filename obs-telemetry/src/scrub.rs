//! How events meet the PII scrubber (`obs_core::redact`), and the per-event redaction report
//! stored in the `redactions` column.
//!
//! ```
//! use obs_telemetry::Redactions;
//!
//! let mut r = Redactions::default();
//! assert!(r.is_empty());
//! r.add_rule("email", 2);
//! r.undeclared_dropped = 1;
//! assert_eq!(
//!     serde_json::to_value(&r).unwrap(),
//!     serde_json::json!({"rules": {"email": 2}, "undeclared_dropped": 1})
//! );
//! ```

use std::collections::BTreeMap;

use obs_core::redact::{Report, Scrubber};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What was removed or replaced in one event: scrubber rule ids with hit counts, limits hit,
/// and the number of undeclared properties dropped. Never contains values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redactions {
    /// Rule id → number of hits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, u64>,
    /// Limits of the scrubber that were hit (depth, length, property count), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Properties of a typed event that were not declared and so were dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub undeclared_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Redactions {
    /// `true` if nothing was redacted or dropped.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.caps.is_empty() && self.undeclared_dropped == 0
    }

    /// Adds `count` hits of `rule`.
    pub fn add_rule(&mut self, rule: impl Into<String>, count: u64) {
        *self.rules.entry(rule.into()).or_default() += count;
    }

    /// Total scrubber hits.
    pub fn total_hits(&self) -> u64 {
        self.rules.values().sum()
    }
}

/// Free-form events: the scrubber's full rule set over the whole object (key rules on every
/// key, value detectors on every value).
pub(crate) fn scrub_freeform(scrubber: &Scrubber, value: &mut Value, out: &mut Redactions) {
    let report = scrubber.scrub_json(value);
    out.merge_report(&report);
}

/// Typed events: each declared property's value is scrubbed on its own, so value detectors
/// (and key rules inside nested objects) apply, but a declared top-level name such as
/// `token_count` is not taken for a secret key.
pub(crate) fn scrub_typed(scrubber: &Scrubber, value: &mut Value, out: &mut Redactions) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                let report = scrubber.scrub_json(v);
                out.merge_report(&report);
            }
        }
        other => {
            let report = scrubber.scrub_json(other);
            out.merge_report(&report);
        }
    }
}

impl Redactions {
    /// Adds a scrubber [`Report`]'s rule counts and caps.
    pub fn merge_report(&mut self, report: &Report) {
        for (rule, n) in report.iter() {
            self.add_rule(rule, n);
        }
        for (cap, _) in report.caps() {
            if !self.caps.iter().any(|c| c == cap.as_str()) {
                self.caps.push(cap.as_str().to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_properties_keep_declared_names_but_values_are_scrubbed() {
        let s = Scrubber::default();
        let mut v = json!({"token_count": 12, "note": "mail jane@example.com"});
        let mut r = Redactions::default();
        scrub_typed(&s, &mut v, &mut r);
        assert_eq!(v, json!({"token_count": 12, "note": "mail [email]"}));
        assert_eq!(r.rules.get("email"), Some(&1));
    }

    #[test]
    fn freeform_events_get_key_rules_too() {
        let s = Scrubber::default();
        let mut v = json!({"password": "hunter2", "n": 1});
        let mut r = Redactions::default();
        scrub_freeform(&s, &mut v, &mut r);
        assert_eq!(v["password"], "[password]");
        assert_eq!(r.total_hits(), 1);
    }
}
