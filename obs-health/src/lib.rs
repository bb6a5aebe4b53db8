//! Composable health checks: a `HealthCheck` trait for library authors, a concurrent runner with timeouts, single-flight caching, hysteresis and a degraded state, and built-in checks.
//!
//! **Not implemented yet.** This crate is an empty shell reserved by the workspace layout;
//! its engine is built under issue #6. It exports nothing, so nothing can mistake it for
//! working code.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
