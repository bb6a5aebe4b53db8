//! Put the current request ID on outgoing `reqwest` requests (feature `reqwest`).
//!
//! Inside a request served behind [`RequestIdLayer`](crate::RequestIdLayer), the task-local
//! [`obs_core::RequestContext`] holds the request ID; these helpers copy it
//! into the `x-request-id` header of calls to other services, so one ID follows the request
//! across services. Outside a request they do nothing.
//!
//! Spawned tasks do not inherit the task-local: run them inside `RequestContext::scope`
//! (or read the ID before spawning) if they make calls on the request's behalf.
//!
//! ```
//! use obs_core::{RequestContext, RequestId};
//! use obs_tower::propagate::{request_id_header, RequestBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let client = reqwest::Client::new();
//! assert!(request_id_header().is_none()); // not in a request
//!
//! let ctx = RequestContext::new(RequestId::parse("req-789").unwrap());
//! ctx.scope(async {
//!     let req = client.get("http://127.0.0.1:9/users").with_request_id().build().unwrap();
//!     assert_eq!(req.headers()["x-request-id"], "req-789");
//! })
//! .await;
//! # }
//! ```

use http::header::{HeaderName, HeaderValue};
use obs_core::RequestContext;

use crate::request_id::X_REQUEST_ID;

/// The current request's ID as an `x-request-id` header, or `None` outside a request.
pub fn request_id_header() -> Option<(HeaderName, HeaderValue)> {
    request_id_header_value().map(|v| (X_REQUEST_ID, v))
}

/// The current request's ID as a header value, or `None` outside a request.
pub fn request_id_header_value() -> Option<HeaderValue> {
    RequestContext::with_current(|ctx| {
        // A RequestId is visible ASCII by construction, so this only fails outside a request.
        ctx.and_then(|c| HeaderValue::from_bytes(c.request_id().as_bytes()).ok())
    })
}

/// Adds the current request ID to a `reqwest` request.
pub trait RequestBuilderExt: Sized {
    /// Sets `x-request-id` to the current request's ID; unchanged outside a request.
    fn with_request_id(self) -> Self {
        self.with_request_id_header(X_REQUEST_ID)
    }

    /// Sets header `name` to the current request's ID; unchanged outside a request.
    fn with_request_id_header(self, name: HeaderName) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_request_id_header(self, name: HeaderName) -> Self {
        match request_id_header_value() {
            Some(value) => self.header(name, value),
            None => self,
        }
    }
}
