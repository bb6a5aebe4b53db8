//! axum extractors for the request ID and context (feature `axum`).
//!
//! [`RequestId`] and [`RequestContext`] live in `obs-core`, which knows nothing about HTTP,
//! and Rust's orphan rule forbids implementing axum's `FromRequestParts` for them here. So
//! the extractors are thin newtypes: [`ReqId`] and [`Ctx`] (both `Deref` to the inner value).
//! They read what [`RequestIdLayer`](crate::RequestIdLayer) put into the request extensions;
//! if the layer is missing they reject with **500** and a message saying so (it is a wiring
//! bug, not a client error). Use `Option<ReqId>` / `Option<Ctx>` to make them optional.
//!
//! ```
//! use axum::{routing::get, Router};
//! use obs_tower::extract::{Ctx, ReqId};
//! use obs_tower::RequestIdLayer;
//!
//! async fn handler(ReqId(id): ReqId, Ctx(ctx): Ctx) -> String {
//!     format!("{id} {}", ctx.route().unwrap_or("-"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(handler))
//!     .layer(RequestIdLayer::new());
//! ```

use std::convert::Infallible;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use obs_core::{RequestContext, RequestId};

/// Extracts the [`RequestId`] set by [`RequestIdLayer`](crate::RequestIdLayer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqId(pub RequestId);

/// Extracts the [`RequestContext`] set by [`RequestIdLayer`](crate::RequestIdLayer).
#[derive(Debug, Clone)]
pub struct Ctx(pub RequestContext);

impl Deref for ReqId {
    type Target = RequestId;
    fn deref(&self) -> &RequestId {
        &self.0
    }
}

impl Deref for Ctx {
    type Target = RequestContext;
    fn deref(&self) -> &RequestContext {
        &self.0
    }
}

/// Rejection of [`ReqId`] / [`Ctx`] when `RequestIdLayer` did not run: 500 with a message
/// naming the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request ID missing: add obs_tower::RequestIdLayer with Router::layer before using the ReqId/Ctx extractors"
)]
pub struct MissingRequestId;

impl IntoResponse for MissingRequestId {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReqId {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .map(ReqId)
            .ok_or(MissingRequestId)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ReqId {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().map(ReqId))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .map(Ctx)
            .ok_or(MissingRequestId)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<RequestContext>().cloned().map(Ctx))
    }
}
