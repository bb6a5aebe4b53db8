//! The HTTP edge of obs: tower layers and endpoints that adapt the obs engines to HTTP.
//!
//! | module | what |
//! |---|---|
//! | [`request_id`] | [`RequestIdLayer`]: validated request IDs, `RequestContext`, `request` span, task-local |
//! | [`access_log`] | [`AccessLogLayer`]: one structured event per completed request |
//! | [`client_ip`] | [`TrustedProxies`]: client IP honouring `X-Forwarded-For` from trusted proxies only |
//! | `ratelimit` (feature `ratelimit`) | `RateLimitLayer`: 429 + `Retry-After` from an `obs-ratelimit` limiter |
//! | `sentry` (feature `sentry`) | `SentryLayer`: per-request Sentry hub (kept while the body streams), 5xx and panics captured |
//! | [`route`] | the matched route template (axum `MatchedPath`), never the raw path |
//! | `extract` (feature `axum`) | `ReqId` / `Ctx` extractors |
//! | `propagate` (feature `reqwest`) | put the current request ID on outgoing reqwest calls |
//! | `health` (feature `health`) | `/health/live|ready|startup|deep` endpoints over an `obs_health::Health` |
//! | `otel` (feature `otel`) | `OtelLayer`: the request's OpenTelemetry server span, W3C `traceparent` in and out |
//! | `analytics` (feature `telemetry`) | `/api/analytics/metrics` and `/api/analytics/export` over `obs-telemetry` run metrics |
//!
//! With axum, add the layers with `Router::layer`, request IDs last (outermost):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use obs_tower::{AccessLogLayer, RequestIdLayer};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .layer(AccessLogLayer::new())
//!     .layer(RequestIdLayer::new());
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

pub mod access_log;
#[cfg(feature = "telemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "telemetry")))]
pub mod analytics;
pub mod client_ip;
#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub mod health;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
#[cfg(feature = "reqwest")]
pub mod propagate;
#[cfg(feature = "ratelimit")]
#[cfg_attr(docsrs, doc(cfg(feature = "ratelimit")))]
pub mod ratelimit;
pub mod request_id;
pub mod route;
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub mod sentry;

pub use access_log::AccessLogLayer;
pub use client_ip::TrustedProxies;
#[cfg(feature = "ratelimit")]
pub use ratelimit::RateLimitLayer;
pub use request_id::{RequestIdLayer, Trust};
#[cfg(feature = "sentry")]
pub use sentry::SentryLayer;
