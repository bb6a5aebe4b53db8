//! Core of the obs family: what every other obs crate and every service shares.
//!
//! - [`RequestId`]: a validated, cheap-to-clone request identifier (UUIDv7 when generated).
//! - [`RequestContext`]: who/what the current request is, reachable from any code running
//!   inside the request through [`RequestContext::current`].
//! - [`config`]: typed settings read from the environment, with errors that name the variable.
//! - [`logging`]: one call installs JSON or pretty logs whose lines carry the request ID.
//! - [`redact`]: the PII scrubber for logs, Sentry events and telemetry (rule table, actions,
//!   limits and an example in its docs).
//! - `sentry` (feature `sentry`): the Sentry bridge — `capture_error`, `capture_message`,
//!   `breadcrumb`, `set_user`, `with_context` tagged with the current request, scrubbed before
//!   sending, per-request hubs, a `tracing` layer; no-ops without a client.
//!
//! obs-core knows nothing about HTTP; `obs-tower` adapts it to tower/axum.
//!
//! ```
//! use obs_core::{RequestContext, RequestId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let ctx = RequestContext::builder(RequestId::generate())
//!     .method("GET")
//!     .route("/users/{id}")
//!     .build();
//! let id = ctx.request_id().clone();
//! ctx.scope(async move {
//!     // Anywhere below, without the request in hand:
//!     let current = RequestContext::current().expect("inside a request");
//!     assert_eq!(current.request_id(), &id);
//! })
//! .await;
//! assert!(RequestContext::current().is_none());
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

mod blocks;
pub mod config;
pub mod context;
pub mod logging;
pub mod redact;
pub mod request_id;
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub mod sentry;

pub use config::{Config, ConfigError, ConfigErrors};
pub use context::{RequestContext, RequestContextBuilder, SpanId, TraceId, TraceIds};
pub use request_id::{InvalidRequestId, RequestId};
