//! Sinks: where batches of scrubbed events and run metrics go.
//!
//! The recorder's background batcher hands each [`Batch`] to one [`Sink`]. A sink reports
//! failures as [`SinkError`]; [`SinkError::is_retryable`] decides whether the batcher retries
//! (with exponential backoff and jitter) or gives the batch up. Built-in sinks, each behind a
//! feature: PostgreSQL and SQLite (`postgres`, `sqlite`), HTTP (`http`), plus [`TracingSink`]
//! for development and [`MemorySink`] for tests.
//!
//! ```
//! use obs_telemetry::sink::{Batch, MemorySink, Sink};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let sink = MemorySink::new();
//! sink.write(&Batch::default()).await.unwrap();
//! assert_eq!(sink.batches(), 1);
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::metric::RunMetric;
use crate::scrub::Redactions;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

/// One telemetry event after consent, property filtering, scrubbing and subject hashing:
/// exactly what is stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Event name, e.g. `test.run.completed`.
    pub event_type: String,
    /// The scrubbed properties (a JSON object).
    pub event_data: Value,
    /// Request id of the request that recorded it, if any.
    pub request_id: Option<String>,
    /// Route template of that request, if any.
    pub route: Option<String>,
    /// HMAC-SHA256 (hex) of the subject, if there was one and a hasher is configured.
    pub subject_hash: Option<String>,
    /// Version of the key that produced `subject_hash`.
    pub subject_key_version: Option<u16>,
    /// When `record` was called.
    #[serde(serialize_with = "ser_time")]
    pub occurred_at: SystemTime,
    /// What the scrubber removed or replaced: rule ids and counts, never values.
    pub redactions: Redactions,
    /// The event's schema version.
    pub schema_version: u32,
}

/// What a sink receives: events and run metrics, in recording order within each kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Batch {
    /// Telemetry events.
    pub events: Vec<StoredEvent>,
    /// Run metrics.
    pub metrics: Vec<RunMetric>,
}

impl Batch {
    /// Number of items (events + metrics).
    pub fn len(&self) -> usize {
        self.events.len() + self.metrics.len()
    }

    /// `true` if there is nothing in the batch.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.metrics.is_empty()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.events.clear();
        self.metrics.clear();
    }
}

/// A sink's failure to store a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The destination is unreachable, overloaded or timed out: retry later.
    #[error("telemetry sink unavailable: {0}")]
    Unavailable(String),
    /// The destination refused the batch (bad request, auth, constraint): retrying will not help.
    #[error("telemetry sink rejected the batch: {0}")]
    Rejected(String),
}

impl SinkError {
    /// Whether the batcher should retry the batch.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }
}

/// A destination for batches. Implementations must be cancel-safe enough that a batch
/// reported as failed can be written again (the PostgreSQL and SQLite sinks write a batch in
/// one transaction).
pub trait Sink: Send + Sync + 'static {
    /// Stores `batch` (all of it, or nothing when returning an error).
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>>;
}

impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        (**self).write(batch)
    }
}

/// Logs every event and metric as a `tracing` event at INFO (target `obs_telemetry`); for
/// development. Never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl Sink for TracingSink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        for e in &batch.events {
            tracing::info!(
                target: "obs_telemetry",
                event_type = %e.event_type,
                event_data = %e.event_data,
                request_id = e.request_id.as_deref(),
                route = e.route.as_deref(),
                subject_hash = e.subject_hash.as_deref(),
                redactions = %serde_json::to_string(&e.redactions).unwrap_or_default(),
                schema_version = e.schema_version,
                "telemetry event"
            );
        }
        for m in &batch.metrics {
            tracing::info!(
                target: "obs_telemetry",
                run_id = %m.run_id,
                metric_name = %m.metric_name,
                metric_value = m.metric_value,
                "run metric"
            );
        }
        Box::pin(async { Ok(()) })
    }
}

/// Keeps every batch in memory; for tests and examples.
#[derive(Clone, Default)]
pub struct MemorySink {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    batches: usize,
    events: Vec<StoredEvent>,
    metrics: Vec<RunMetric>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of batches written.
    pub fn batches(&self) -> usize {
        self.lock().batches
    }

    /// Every event written so far.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.lock().events.clone()
    }

    /// Every run metric written so far.
    pub fn metrics(&self) -> Vec<RunMetric> {
        self.lock().metrics.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemorySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemorySink")
            .field("batches", &inner.batches)
            .field("events", &inner.events.len())
            .field("metrics", &inner.metrics.len())
            .finish()
    }
}

impl Sink for MemorySink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        let mut inner = self.lock();
        inner.batches += 1;
        inner.events.extend(batch.events.iter().cloned());
        inner.metrics.extend(batch.metrics.iter().cloned());
        Box::pin(async { Ok(()) })
    }
}

/// Microseconds since the Unix epoch (negative before it).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn epoch_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// RFC 3339 UTC with milliseconds: `2026-01-07T14:32:15.000Z` (the CSV and SQLite format).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_formats() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_796_335_000);
        assert_eq!(rfc3339_millis(t), "2026-01-07T14:32:15.000Z");
        assert_eq!(epoch_micros(t), 1_767_796_335_000_000);
        assert_eq!(epoch_micros(UNIX_EPOCH - Duration::from_micros(5)), -5);
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(SinkError::Unavailable("x".into()).is_retryable());
        assert!(!SinkError::Rejected("x".into()).is_retryable());
    }
}
