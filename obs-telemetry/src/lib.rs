//! PII-scrubbing telemetry recorder: typed events, consent, a non-blocking bounded queue to batched PostgreSQL/SQLite/HTTP sinks, run metrics and analytics.
//!
//! **Not implemented yet.** This crate is an empty shell reserved by the workspace layout;
//! its engine is built under issue #8. It exports nothing, so nothing can mistake it for
//! working code.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
