//! Composable health checks: a [`HealthCheck`] trait for library authors, a concurrent runner
//! with timeouts, single-flight caching, hysteresis and a degraded state, and built-in checks.
//!
//! - **Checks** implement [`HealthCheck`] (object-safe, async via a boxed future) or come from
//!   an async closure with [`check_fn`]. They return a [`CheckResult`]: [`Status`] (`healthy <
//!   degraded < unhealthy`), a message and a details map. See the [guide] ("Writing a health
//!   check").
//! - **Registrations** ([`Registration`]) say which probes a check belongs to ([`Probes`]:
//!   live / ready / startup / deep), whether it is required or optional (an optional failure
//!   degrades, never fails, the aggregate), its timeout (default 2 s), cache TTL, hysteresis
//!   and background interval.
//! - **The runner** ([`Health`]) runs a probe's checks concurrently in place, drops timed-out
//!   futures, turns panics into unhealthy results, shares one in-flight run between concurrent
//!   probes, measures per-check and total latency, latches the startup probe, logs each status
//!   transition once and tells [`HealthObserver`]s (the metrics seam).
//! - **Built-ins** ([`checks`]), each behind a feature: `postgres`, `sqlite`, `redis`, `http`,
//!   `disk`, `memory`.
//!
//! HTTP endpoints (`/health/live|ready|startup|deep`) live in `obs-tower` (feature `health`);
//! this crate knows nothing about HTTP.
//!
//! ```
//! use std::time::Duration;
//! use obs_health::{check_fn, CheckResult, Health, Probe, Registration, Status};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let health = Health::builder()
//!     .service("billing", "1.4.2")
//!     .register(
//!         Registration::new("database", check_fn(|| async { CheckResult::healthy() }))
//!             .timeout(Duration::from_secs(1))
//!             .cache_ttl(Duration::from_secs(2)),
//!     )
//!     .build()
//!     .expect("valid registrations");
//!
//! let report = health.probe(Probe::Ready).await;
//! assert_eq!(report.status, Status::Healthy);
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
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

mod check;
pub mod checks;
mod error;
pub mod guide;
mod observer;
mod registration;
mod report;
mod runner;
mod status;
mod system;

pub use check::{check_fn, CheckFuture, FnCheck, HealthCheck};
pub use error::HealthError;
pub use observer::{CheckEvent, HealthObserver};
pub use registration::{Probe, Probes, Registration, DEFAULT_TIMEOUT};
pub use report::{CheckReport, Report};
pub use runner::{BackgroundTasks, Health, HealthBuilder};
pub use status::{CheckResult, Details, IntoCheckResult, Status};
pub use system::SystemInfo;
