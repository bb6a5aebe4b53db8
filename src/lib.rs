//! # obs — production observability for Rust services
//!
//! One dependency, features named after the crates. Every piece also works on its own.
//!
//! | feature | crate | what it gives |
//! |---|---|---|
//! | (always) | [`core`] (`obs-core`) | `RequestId`, `RequestContext`, env config, logging |
//! | `tower` (default) | [`tower`] (`obs-tower`) | request-ID and access-log layers, axum extractors |
//! | `metrics` | `metrics` (`obs-metrics`) | typed business metrics, HTTP RED layer + `/metrics` endpoints (with `tower`), SLO rules, dashboards |
//! | `health` | `obs-health` | composable health checks (in progress) |
//! | `ratelimit` | `obs-ratelimit` | sliding-window rate limiter (in progress) |
//! | `telemetry` | `obs-telemetry` | PII-scrubbing telemetry recorder (in progress) |
//! | `sentry` | `obs-core`'s `sentry` + `SentryLayer` (with `tower`) | Sentry bridge, per-request hubs, 5xx/panic capture, [`sentry::init`] |
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use obs_core as core;
pub use obs_core::{RequestContext, RequestId};

#[cfg(feature = "tower")]
pub use obs_tower as tower;

#[cfg(feature = "metrics")]
pub use obs_metrics as metrics;

#[cfg(feature = "health")]
pub use obs_health as health;

#[cfg(feature = "ratelimit")]
pub use obs_ratelimit as ratelimit;

#[cfg(feature = "telemetry")]
pub use obs_telemetry as telemetry;

#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub mod sentry;
