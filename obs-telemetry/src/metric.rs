//! Run metrics: one number about one run (`duration_ms`, `tokens_used`, ...), stored in
//! `run_metrics(id, run_id, metric_name, metric_value, recorded_at)`.
//!
//! The reference services' metric names are typed constants on [`MetricName`]; other names
//! are accepted through [`MetricName::custom`] when they are `snake_case` ASCII.
//!
//! ```
//! use obs_telemetry::MetricName;
//!
//! assert_eq!(MetricName::TOKENS_USED.as_str(), "tokens_used");
//! assert_eq!(MetricName::custom("retries").unwrap().as_str(), "retries");
//! assert!(MetricName::custom("Robert'); DROP TABLE").is_err());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use crate::Error;

/// Longest metric name accepted, in bytes.
pub const MAX_METRIC_NAME_LEN: usize = 64;
/// Longest run id accepted, in bytes (longer ids are cut).
pub const MAX_RUN_ID_LEN: usize = 128;

/// A run-metric name: one of the typed constants, or a validated custom name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricName(Cow<'static, str>);

impl MetricName {
    /// Total execution time, milliseconds.
    pub const DURATION_MS: MetricName = MetricName(Cow::Borrowed("duration_ms"));
    /// Process exit code (0 = success).
    pub const EXIT_CODE: MetricName = MetricName(Cow::Borrowed("exit_code"));
    /// LLM tokens consumed, count.
    pub const TOKENS_USED: MetricName = MetricName(Cow::Borrowed("tokens_used"));
    /// Files modified in the diff, count.
    pub const FILES_CHANGED: MetricName = MetricName(Cow::Borrowed("files_changed"));
    /// Computed cost, USD.
    pub const COST_USD: MetricName = MetricName(Cow::Borrowed("cost_usd"));

    /// The reference services' metric names.
    pub const KNOWN: [MetricName; 5] = [
        Self::DURATION_MS,
        Self::EXIT_CODE,
        Self::TOKENS_USED,
        Self::FILES_CHANGED,
        Self::COST_USD,
    ];

    /// A custom name: 1..=64 bytes of `[a-z0-9_.]`, starting with a letter.
    pub fn custom(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if let Some(known) = Self::KNOWN.iter().find(|k| k.as_str() == name) {
            return Ok(known.clone());
        }
        if Self::is_valid(&name) {
            Ok(Self(Cow::Owned(name)))
        } else {
            Err(Error::InvalidMetricName(name))
        }
    }

    /// Whether `name` would be accepted by [`custom`](Self::custom).
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_METRIC_NAME_LEN
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    }

    /// The name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::str::FromStr for MetricName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::custom(s)
    }
}

impl Serialize for MetricName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One run-metric sample as written to a sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunMetric {
    /// The run the value belongs to.
    pub run_id: String,
    /// What was measured.
    pub metric_name: MetricName,
    /// The value.
    pub metric_value: f64,
    /// When it was recorded.
    #[serde(serialize_with = "crate::sink::ser_time")]
    pub recorded_at: SystemTime,
}

impl RunMetric {
    /// A sample recorded now; `run_id` is cut to [`MAX_RUN_ID_LEN`] bytes.
    pub fn new(run_id: impl Into<String>, name: MetricName, value: f64) -> Self {
        let mut run_id = run_id.into();
        truncate(&mut run_id, MAX_RUN_ID_LEN);
        Self {
            run_id,
            metric_name: name,
            metric_value: value,
            recorded_at: SystemTime::now(),
        }
    }
}

pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_names_are_validated() {
        assert_eq!(
            MetricName::custom("duration_ms").unwrap(),
            MetricName::DURATION_MS
        );
        assert!(MetricName::custom("").is_err());
        assert!(MetricName::custom("9lives").is_err());
        assert!(MetricName::custom("a".repeat(65)).is_err());
        assert!(MetricName::custom("a-b").is_err());
        assert!(MetricName::custom("llm.calls_total").is_ok());
    }

    #[test]
    fn run_ids_are_cut_at_char_boundaries() {
        let m = RunMetric::new("é".repeat(100), MetricName::EXIT_CODE, 0.0);
        assert!(m.run_id.len() <= MAX_RUN_ID_LEN);
        assert!(m.run_id.chars().all(|c| c == 'é'));
    }
}
