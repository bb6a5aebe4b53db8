//! Sliding-window rate limiting: exact and approximate modes, a Redis backend (one Lua script per decision, cluster-safe) and an in-memory backend, with an explicit outage policy.
//!
//! **Not implemented yet.** This crate is an empty shell reserved by the workspace layout;
//! its engine is built under issue #7. It exports nothing, so nothing can mistake it for
//! working code.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
