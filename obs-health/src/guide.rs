//! # Writing a health check
//!
//! This page is for library authors who want their crate's users to be able to say "is your
//! thing working?" on `/health/ready`. It contains no code of its own.
//!
//! ## 1. Implement [`HealthCheck`](crate::HealthCheck)
//!
//! The trait has one method returning a boxed, `Send` future ([`CheckFuture`](crate::CheckFuture)).
//! It is object-safe (the registry stores `Arc<dyn HealthCheck>`) and needs no `async-trait`:
//! write the body as `Box::pin(async move { ... })`. The future may borrow `self`.
//!
//! Return a [`CheckResult`](crate::CheckResult):
//! - [`CheckResult::healthy`](crate::CheckResult::healthy) — working;
//! - [`CheckResult::degraded`](crate::CheckResult::degraded) — working but impaired (slow,
//!   backlog, nearly full). Degraded still answers HTTP 200: the instance keeps its traffic;
//! - [`CheckResult::unhealthy`](crate::CheckResult::unhealthy) — not working (503 on the probes
//!   it is required for).
//!
//! Put numbers a human needs into `details` ([`with_detail`](crate::CheckResult::with_detail)):
//! they are shown to authorized callers only, so they may mention internals — but never put
//! secrets (connection strings with passwords, tokens) in messages or details.
//!
//! ## 2. A complete example: queue depth
//!
//! A job queue is healthy while its backlog is small, degraded above a warning threshold and
//! unhealthy above a critical one or when the broker cannot be asked.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use obs_health::{CheckFuture, CheckResult, Health, HealthCheck, Probe, Registration, Status};
//!
//! /// Stand-in for a real broker client.
//! #[derive(Debug, Default)]
//! pub struct Queue {
//!     depth: AtomicU64,
//! }
//!
//! impl Queue {
//!     pub async fn depth(&self) -> Result<u64, std::io::Error> {
//!         Ok(self.depth.load(Ordering::Relaxed))
//!     }
//! }
//!
//! /// Degraded above `warn`, unhealthy above `critical` or when the broker does not answer.
//! #[derive(Debug)]
//! pub struct QueueDepthCheck {
//!     queue: Arc<Queue>,
//!     warn: u64,
//!     critical: u64,
//! }
//!
//! impl HealthCheck for QueueDepthCheck {
//!     fn check(&self) -> CheckFuture<'_> {
//!         Box::pin(async move {
//!             let depth = match self.queue.depth().await {
//!                 Ok(depth) => depth,
//!                 Err(e) => return CheckResult::unhealthy(format!("cannot read queue depth: {e}")),
//!             };
//!             let result = if depth > self.critical {
//!                 CheckResult::unhealthy(format!("{depth} jobs queued (critical above {})", self.critical))
//!             } else if depth > self.warn {
//!                 CheckResult::degraded(format!("{depth} jobs queued (warning above {})", self.warn))
//!             } else {
//!                 CheckResult::healthy()
//!             };
//!             result
//!                 .with_detail("depth", depth)
//!                 .with_detail("warn_above", self.warn)
//!                 .with_detail("critical_above", self.critical)
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let queue = Arc::new(Queue::default());
//! let health = Health::builder()
//!     .register(
//!         Registration::new("jobs", QueueDepthCheck { queue: queue.clone(), warn: 1_000, critical: 10_000 })
//!             .timeout(Duration::from_millis(500))
//!             .cache_ttl(Duration::from_secs(1)),
//!     )
//!     .build()
//!     .unwrap();
//!
//! queue.depth.store(5_000, Ordering::Relaxed);
//! let report = health.probe(Probe::Ready).await;
//! assert_eq!(report.status, Status::Degraded);
//! assert_eq!(report.checks["jobs"].details["depth"], 5_000);
//! # }
//! ```
//!
//! The same check as a closure, when no type is worth naming:
//!
//! ```
//! # use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
//! use obs_health::{check_fn, CheckResult};
//! let depth = Arc::new(AtomicU64::new(0));
//! let check = check_fn(move || {
//!     let depth = depth.clone();
//!     async move {
//!         match depth.load(Ordering::Relaxed) {
//!             d if d > 1_000 => CheckResult::degraded("backlog").with_detail("depth", d),
//!             d => CheckResult::healthy().with_detail("depth", d),
//!         }
//!     }
//! });
//! # let _ = check;
//! ```
//!
//! ## 3. Rules for a good check
//!
//! - **Do not enforce your own overall timeout, do not retry for long.** The runner wraps every
//!   run in `tokio::time::timeout` (default 2 s, per registration) and *drops the future* at the
//!   deadline, releasing whatever it owns. A hung dependency therefore never hangs a probe.
//!   Inner timeouts are fine when they give a better message ("acquiring a connection timed out").
//! - **Do not `tokio::spawn` work you do not own.** A dropped future cancels everything it polls,
//!   but a spawned task keeps running. If you must spawn, keep the `JoinHandle` in a guard that
//!   aborts it on `Drop`.
//! - **Do not panic on purpose.** Panics are contained (reported unhealthy with the panic
//!   message), but they print a backtrace and skip your cleanup.
//! - **Be cheap.** Probes may come every few seconds from several sources. Users can set a cache
//!   TTL or a background interval on the registration; concurrent probes already share one
//!   in-flight run.
//! - **Liveness is special.** Checks registered for [`Probes::LIVE`](crate::Probes::LIVE) must
//!   test only the process itself (a deadlocked worker, a full event loop, memory). They must
//!   never touch a database, cache or another service: when a dependency goes down, restarting
//!   every instance makes things worse. Library checks about dependencies should leave the
//!   default probes ([`Probes::DEPENDENCY`](crate::Probes::DEPENDENCY)).
//! - **Degraded vs unhealthy.** Use degraded for "still serving, someone should look" (slow,
//!   nearly full); unhealthy for "requests will fail". Users decide whether your check is
//!   required or optional; an optional unhealthy check only degrades the aggregate.
//!
//! ## 4. Let users register it
//!
//! Expose a constructor and let the user wrap it in a
//! [`Registration`](crate::Registration) with the options they want:
//!
//! ```
//! # use obs_health::{check_fn, Health, Registration, Probes};
//! # use std::time::Duration;
//! # let my_check = check_fn(|| async { true });
//! let health = Health::builder()
//!     .register(
//!         Registration::new("search", my_check)
//!             .optional()                       // a search outage degrades, never fails, readiness
//!             .probes(Probes::READY | Probes::DEEP)
//!             .hysteresis(3, 2)                 // ignore single blips
//!             .background(Duration::from_secs(10)), // probes read the last snapshot
//!     )
//!     .build()
//!     .unwrap();
//! # let _ = health;
//! ```
