//! # obs — production observability for Rust services
//!
//! One dependency, features named after the crates. Every piece also works on its own.
//!
//! Start with [`Obs`]: `Obs::from_env().await?` builds what the environment and the features
//! enable, `obs.apply(router)` adds the layers and the endpoints, `obs.shutdown().await`
//! flushes (see the [`obs`](mod@obs) module).
//!
//! | feature | crate | what it gives |
//! |---|---|---|
//! | (always) | [`core`] (`obs-core`) | `RequestId`, `RequestContext`, env config, logging |
//! | `tower` (default) | [`tower`] (`obs-tower`) | request-ID and access-log layers, axum extractors |
//! | `metrics` | `metrics` (`obs-metrics`) | typed business metrics, HTTP RED layer + `/metrics` endpoints (with `tower`), SLO rules, dashboards |
//! | `health` | `health` (`obs-health`) | composable health checks, `/health/*` endpoints (with `tower`) |
//! | `ratelimit` | `ratelimit` (`obs-ratelimit`) | sliding-window rate limiter, `RateLimitLayer` (with `tower`) |
//! | `telemetry` | `telemetry` (`obs-telemetry`) | PII-scrubbing telemetry recorder, run metrics, analytics |
//! | `sentry` | `obs-core`'s `sentry` + `SentryLayer` (with `tower`) | Sentry bridge, per-request hubs, 5xx/panic capture, `obs::sentry::init` |
//! | `otel` | `obs-telemetry`'s `otel` + `OtelLayer` (with `tower`) | OpenTelemetry tracer provider from `OTEL_*`, W3C trace context in and out, trace ids on logs and Sentry events |
//! | `redis`, `postgres`, `sqlite` | backends | turn on that backend in every enabled engine (limiter, health checks, telemetry store) |
//! | `full` | all of the above | |
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

pub mod obs;
#[cfg(feature = "tower")]
pub use obs::ObsLayer;
pub use obs::{Error, Obs, ObsBuilder};
