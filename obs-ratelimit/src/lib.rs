//! Sliding-window rate limiting: exact and approximate modes, a Redis backend (Lua scripts,
//! concurrent decisions batched into one call, cluster-safe) and an in-memory backend, with an
//! explicit outage policy.
//!
//! ```
//! use obs_ratelimit::{Limiter, Mode, OutagePolicy};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // RATE_LIMIT_MAX=5, RATE_LIMIT_WINDOW=60 (the reference services' settings)
//! let limiter = Limiter::builder("webhooks")
//!     .limit(5)
//!     .window(Duration::from_secs(60))
//!     .mode(Mode::Exact)
//!     .policy(OutagePolicy::FailOpen)
//!     .build_in_memory()?; // or `.build_redis("redis://127.0.0.1:6379").await?` (feature `redis`)
//! for _ in 0..5 {
//!     assert!(limiter.check("192.0.2.7").await.allowed);
//! }
//! let d = limiter.check("192.0.2.7").await;
//! assert!(!d.allowed);
//! assert_eq!(d.retry_after_secs(), 60); // whole seconds, rounded up
//! # Ok::<_, obs_ratelimit::Error>(()) }).unwrap();
//! ```
//!
//! # Design
//! The algorithm ([`Mode`]), the state store (backend) and the clock are separate, as in
//! `governor`. Both backends implement the same arithmetic (the Redis scripts mirror
//! `algo.rs`), so a limiter behaves the same on Redis and in memory.
//!
//! - **Exact** ([`Mode::Exact`]): a log of admissions. At most `limit` admissions in *every*
//!   trailing window, whatever the traffic shape. Memory is O(limit) per key and a decision is
//!   O(log n) (trim is amortised O(1) per admission), hence the hard cap
//!   [`MAX_EXACT_LIMIT`].
//! - **Approximate** ([`Mode::Approximate`]): two fixed-window counters, the previous one
//!   weighted by how much of it still overlaps the trailing window. O(1) memory and time.
//!   **Worst case:** it assumes the previous window's admissions were spread evenly; if they all
//!   came at its very end, a trailing window can hold up to (but never) `2 * limit` admissions.
//!   For evenly spread traffic it is within a few percent of exact.
//!
//! # Redis
//! With feature `redis`: see [`redis_backend`] — one round trip per batch of concurrent
//! decisions (a lone decision goes out at once; decisions arriving while calls are in flight
//! leave together as one `EVALSHA` of the same script with the batch's keys; single node only), scripts reloaded on
//! `NOSCRIPT`, time from Redis `TIME` only, a TTL on every key, keys `{prefix:key}`
//! (hash-tagged: one slot per decision, works on Redis Cluster), one multiplexed connection.
//!
//! # Deny cache
//! When a decision shows that not even one more unit fits before `T`, the key is cached locally
//! until `T` and answered without a backend round trip ([`DecisionSource::DenyCache`]).
//!
//! # Outage policy
//! Every backend call runs under a timeout (default 50 ms). A failed or timed-out call opens a
//! circuit breaker: decisions follow the [`OutagePolicy`] immediately, and one call per probe
//! interval (default 250 ms) tries Redis again, so a dead Redis costs one timeout per interval,
//! not one per request, and a returning Redis is used again within about one interval.
//! Transitions are logged once each; [`Limiter::stats`] exposes the counters and the current
//! mode.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algo;
pub mod clock;
mod deny_cache;
pub mod limiter;
mod memory;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "redis")]
pub mod redis_backend;

use std::time::Duration;

pub use limiter::{Check, Decision, DecisionSource, Limiter, LimiterBuilder, LimiterStats};

/// The largest `limit` accepted in [`Mode::Exact`]: the log holds one entry per admission
/// (about 60–100 bytes each in Redis), so 100 000 admissions is ~10 MB for one hot key.
pub const MAX_EXACT_LIMIT: u32 = 100_000;

/// The window algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Sliding log: exact, O(limit) memory per key.
    #[default]
    Exact,
    /// Two weighted fixed windows: O(1) memory, may over-admit (less than 2x) on bursty edges.
    Approximate,
}

/// What a limiter does while its backend is unavailable (errors or timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutagePolicy {
    /// Admit everything (the reference services' "log and allow"); the default.
    #[default]
    FailOpen,
    /// Deny everything.
    FailClosed,
    /// Decide with an in-memory limiter of the same configuration (per process).
    FallbackToMemory,
}

/// Errors building a limiter. Decisions themselves never fail (see [`OutagePolicy`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given settings that cannot work.
    #[error("invalid rate limiter configuration: {0}")]
    Config(String),
    /// Redis refused the connection or answered with an error.
    #[cfg(feature = "redis")]
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A backend call did not complete within the limiter's timeout.
    #[error("backend call timed out after {0:?}")]
    Timeout(Duration),
}
