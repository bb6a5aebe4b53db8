//! The result of a probe: [`Report`] (aggregate) and [`CheckReport`] (one check), serialized in
//! the reference services' JSON shape:
//!
//! ```json
//! { "status": "healthy", "probe": "deep", "timestamp": "2025-11-12T10:30:00.000Z", "latency_ms": 45.1,
//!   "checks": { "database": { "status": "healthy", "required": true, "latency_ms": 15.2,
//!                             "details": { "pool_size": 5 } } },
//!   "system": { "uptime": 3600, "version": "1.2.0", "platform": "linux", ... } }
//! ```
//!
//! Non-healthy checks carry `"error"` (their message); a check held back by hysteresis carries
//! `"observed"` (the status of its latest run). [`Report::redacted`] keeps only the statuses and
//! latencies, for callers not allowed to see details.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use obs_health::{check_fn, Health, Probe, Status};
//!
//! let health = Health::builder().check("db", check_fn(|| async { true })).build().unwrap();
//! let report = health.probe(Probe::Ready).await;
//! assert_eq!(report.status, Status::Healthy);
//! let json = serde_json::to_value(&report).unwrap();
//! assert_eq!(json["checks"]["db"]["status"], "healthy");
//! assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
//! # }
//! ```

use crate::registration::Probe;
use crate::status::{Details, Status};
use crate::system::SystemInfo;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The aggregate result of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Worst of the checks (optional checks count as at most degraded).
    pub status: Status,
    /// Which probe produced this report (`None` for a single-check report from
    /// [`Health::check_report`](crate::Health::check_report)).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_probe")]
    pub probe: Option<Probe>,
    /// When the report was produced (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "ser_time")]
    pub timestamp: SystemTime,
    /// Wall time of the whole probe (≈ the slowest check, checks run concurrently).
    #[serde(rename = "latency_ms", serialize_with = "ser_ms")]
    pub latency: Duration,
    /// Per-check results by name.
    pub checks: BTreeMap<String, CheckReport>,
    /// Process / build information; `None` in redacted reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemInfo>,
}

/// One check's entry in a [`Report`].
///
/// Serialized as `{status, required, latency_ms, observed?, error? | message?, details?, checked_at}`:
/// the message goes under `"error"` when the check is not healthy (or hysteresis holds back a
/// worse observation), under `"message"` otherwise.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Reported status (after hysteresis).
    pub status: Status,
    /// Whether the check is required (an optional check never fails the aggregate).
    pub required: bool,
    /// Duration of the run that produced this result.
    pub latency: Duration,
    /// Status of the latest run when hysteresis holds `status` back; `None` otherwise.
    pub observed: Option<Status>,
    /// Message of the latest run.
    pub message: Option<String>,
    /// Details from the check.
    pub details: Details,
    /// When the run that produced this result finished.
    pub checked_at: SystemTime,
}

impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ms(Duration);
        impl Serialize for Ms {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_ms(&self.0, s)
            }
        }
        struct Time(SystemTime);
        impl Serialize for Time {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ser_time(&self.0, s)
            }
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("required", &self.required)?;
        map.serialize_entry("latency_ms", &Ms(self.latency))?;
        if let Some(observed) = self.observed {
            map.serialize_entry("observed", &observed)?;
        }
        if let Some(message) = &self.message {
            let failing = self.status != Status::Healthy
                || self.observed.is_some_and(|o| o != Status::Healthy);
            map.serialize_entry(if failing { "error" } else { "message" }, message)?;
        }
        if !self.details.is_empty() {
            map.serialize_entry("details", &self.details)?;
        }
        map.serialize_entry("checked_at", &Time(self.checked_at))?;
        map.end()
    }
}

impl CheckReport {
    /// A copy with only status, required flag, latency and timestamp.
    #[must_use]
    pub fn redacted(&self) -> CheckReport {
        CheckReport {
            status: self.status,
            required: self.required,
            latency: self.latency,
            observed: None,
            message: None,
            details: Details::new(),
            checked_at: self.checked_at,
        }
    }
}

impl Report {
    /// A copy without details, messages and the system block: what callers without access to
    /// details see. Status and latencies stay visible.
    #[must_use]
    pub fn redacted(&self) -> Report {
        Report {
            status: self.status,
            probe: self.probe,
            timestamp: self.timestamp,
            latency: self.latency,
            checks: self
                .checks
                .iter()
                .map(|(k, v)| (k.clone(), v.redacted()))
                .collect(),
            system: None,
        }
    }

    /// The report as a JSON string.
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail; keep a valid body anyway.
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!("{{\"status\":\"{}\"}}", self.status))
    }
}

fn ser_probe<S: Serializer>(p: &Option<Probe>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(p.as_str()),
        None => s.serialize_none(),
    }
}

pub(crate) fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

pub(crate) fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    // Milliseconds with microsecond precision.
    s.serialize_f64((d.as_micros() as f64) / 1000.0)
}
