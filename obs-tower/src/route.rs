//! The matched route template of a request (`/users/{id}`), never the raw path.
//!
//! Raw paths carry ids and personal data and give metrics unbounded cardinality, so obs only
//! ever records the *template* the router matched. With feature `axum` it comes from axum's
//! `MatchedPath` request extension; without it (or when no route matched) it is `None`, and
//! obs records no route rather than falling back to the raw path.
//!
//! # Applying the layers so the template is known
//!
//! axum inserts `MatchedPath` when it routes the request, so only middleware that runs
//! *after* routing sees it. Add obs layers with `axum::Router::layer` (it wraps each route
//! and the fallback), not around the whole router:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use obs_tower::{AccessLogLayer, RequestIdLayer};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     // Sees MatchedPath("/users/{id}"): route = "/users/{id}".
//!     .layer(AccessLogLayer::new())
//!     .layer(RequestIdLayer::new());
//! # }
//! ```
//!
//! Wrapping the router from outside (`ServiceBuilder::new().layer(..).service(router)`) runs
//! the layer before routing: request IDs and logs still work, but `route` is `None`.
//! Unmatched requests (404 from the fallback) also have no route.
//!
//! ```
//! use obs_tower::route::route_template;
//!
//! let req = http::Request::get("/users/42").body(()).unwrap();
//! assert_eq!(route_template(&req), None); // never "/users/42"
//! ```

use http::Request;

/// The route template the router matched for `req` (axum's `MatchedPath`), if any.
///
/// Never returns the raw path. Always `None` without feature `axum`.
pub fn route_template<B>(req: &Request<B>) -> Option<&str> {
    route_from_extensions(req.extensions())
}

/// [`route_template`] from request extensions (e.g. `http::request::Parts::extensions`).
pub fn route_from_extensions(extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    {
        extensions
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str)
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = extensions;
        None
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use super::*;
    use axum::{body::Body, extract::Request as AxumRequest, routing::get, Router};
    use tower::ServiceExt;

    #[tokio::test]
    async fn router_layer_sees_the_template_not_the_path() {
        let app = Router::new()
            .route("/users/{id}", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(
                |req: AxumRequest, next: axum::middleware::Next| async move {
                    let route = route_template(&req).map(str::to_owned);
                    let mut res = next.run(req).await;
                    res.headers_mut().insert(
                        "x-route",
                        http::HeaderValue::from_str(route.as_deref().unwrap_or("none")).unwrap(),
                    );
                    res
                },
            ));
        let res = app
            .clone()
            .oneshot(Request::get("/users/42").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.headers()["x-route"], "/users/{id}");
        let res = app
            .oneshot(Request::get("/nope/42").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["x-route"], "none");
    }
}
