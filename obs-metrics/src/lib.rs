//! Typed business metrics: metric groups as types, fixed-cardinality labels as enums, lock-free hot path, Prometheus/OpenMetrics exposition, generated catalog, alert rules and dashboards.
//!
//! **Not implemented yet.** This crate is an empty shell reserved by the workspace layout;
//! its engine is built under issue #5. It exports nothing, so nothing can mistake it for
//! working code.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
