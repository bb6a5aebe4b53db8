//! [`HealthObserver`]: a hook called with every check run and every status transition — the
//! seam for metrics exporters (e.g. `health_check_status{check}` /
//! `health_check_duration_seconds{check}`) and custom alerting.
//!
//! Status transitions are also logged by the runner itself (once per transition, `warn` when a
//! check gets worse, `info` when it recovers), so an observer is not needed for logs.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use obs_health::{check_fn, CheckEvent, Health, HealthObserver, Probe};
//!
//! #[derive(Debug, Default)]
//! struct CountRuns(AtomicUsize);
//!
//! impl HealthObserver for CountRuns {
//!     fn on_check(&self, _event: &CheckEvent<'_>) {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let runs = Arc::new(CountRuns::default());
//! let health = Health::builder()
//!     .check("db", check_fn(|| async { true }))
//!     .observer(runs.clone())
//!     .build()
//!     .unwrap();
//! health.probe(Probe::Ready).await;
//! assert_eq!(runs.0.load(Ordering::Relaxed), 1);
//! # }
//! ```

use crate::status::{CheckResult, Status};
use std::time::Duration;

/// One completed run of a check (not emitted for cache hits).
#[derive(Debug)]
#[non_exhaustive]
pub struct CheckEvent<'a> {
    /// The check's registered name.
    pub name: &'a str,
    /// Reported status after hysteresis.
    pub status: Status,
    /// The raw result of this run (timeouts and panics appear as unhealthy results).
    pub result: &'a CheckResult,
    /// How long the run took.
    pub latency: Duration,
    /// Whether the check is required.
    pub required: bool,
    /// Whether the run timed out.
    pub timed_out: bool,
    /// Whether the check panicked.
    pub panicked: bool,
}

/// Receives check results and status transitions. Called synchronously on the probing task:
/// keep it cheap (update atomics, send to a channel).
pub trait HealthObserver: Send + Sync + 'static {
    /// Called after every real run of a check.
    fn on_check(&self, event: &CheckEvent<'_>);

    /// Called once when a check's reported status changes; `from` is `None` for its first
    /// result.
    fn on_transition(&self, name: &str, from: Option<Status>, to: Status) {
        let _ = (name, from, to);
    }
}

impl<T: HealthObserver + ?Sized> HealthObserver for std::sync::Arc<T> {
    fn on_check(&self, event: &CheckEvent<'_>) {
        (**self).on_check(event);
    }

    fn on_transition(&self, name: &str, from: Option<Status>, to: Status) {
        (**self).on_transition(name, from, to);
    }
}
