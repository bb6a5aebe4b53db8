//! PII-scrubbing telemetry recorder: typed events, consent, a non-blocking bounded queue to
//! batched PostgreSQL/SQLite/HTTP sinks, run metrics and analytics.
//!
//! - [`Event`] / [`event!`]: typed events with declared properties (undeclared ones are
//!   dropped); [`FreeformEvent`] for everything else (fully scrubbed).
//! - [`Recorder`]: `record` never blocks or fails; a background batcher scrubs, hashes subject
//!   ids ([`SubjectHasher`]), batches and writes to a [`Sink`](sink::Sink) with retries;
//!   [`Recorder::shutdown`] flushes everything.
//! - [`Consent`]: per-subject opt-in, checked before any work.
//! - Run metrics ([`MetricName`], [`Recorder::record_metric`]) and, on the SQL stores,
//!   [`analytics`] (aggregates and streamed CSV export).
//!
//! ```
//! use obs_telemetry::{event, sink::MemorySink, CachedConsent, Recorder, Recorded, SubjectHasher};
//! use obs_core::{RequestContext, RequestId};
//! use std::sync::Arc;
//!
//! event! {
//!     /// A test run finished.
//!     pub struct TestRunCompleted: "test.run.completed" {
//!         pub repo_id: String,
//!         pub run_id: String,
//!         pub test_count: u64,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let consent = Arc::new(CachedConsent::new());
//! consent.set("user-1", true);
//! let sink = MemorySink::new();
//! let recorder = Recorder::builder()
//!     .sink(sink.clone())
//!     .consent_shared(consent.clone())
//!     .subject_hasher(SubjectHasher::new(b"0123456789abcdef0123", 1).unwrap())
//!     .build()
//!     .unwrap();
//!
//! let ctx = RequestContext::builder(RequestId::parse("req-789").unwrap()).route("/runs/{id}").build();
//! ctx.set_user_id("user-1");
//! let r = ctx.scope(async {
//!     recorder.record(TestRunCompleted { repo_id: "repo-123".into(), run_id: "run-456".into(), test_count: 100 })
//! }).await;
//! assert_eq!(r, Recorded::Queued);
//! assert_eq!(recorder.record_for("user-2", TestRunCompleted {
//!     repo_id: "r".into(), run_id: "x".into(), test_count: 1 }), Recorded::NoConsent);
//!
//! recorder.shutdown().await;
//! let stored = &sink.events()[0];
//! assert_eq!(stored.request_id.as_deref(), Some("req-789"));
//! assert_eq!(stored.route.as_deref(), Some("/runs/{id}"));
//! assert_eq!(stored.subject_hash.as_ref().map(String::len), Some(64));
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analytics;
pub mod consent;
pub mod error;
pub mod event;
pub mod metric;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub mod migrate;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
pub mod recorder;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod recorder_metrics;
pub mod scrub;
pub mod sink;
pub mod subject;

pub use consent::{AllowAll, CachedConsent, Consent};
pub use error::Error;
pub use event::{Event, FreeformEvent};
pub use metric::{MetricName, RunMetric};
pub use recorder::{Recorded, Recorder, RecorderBuilder, RecorderStats};
pub use scrub::Redactions;
pub use subject::SubjectHasher;

#[doc(hidden)]
pub mod __private {
    pub use serde;
}
