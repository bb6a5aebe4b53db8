//! HTTP RED metrics ([`HttpMetricsLayer`]) and the `/metrics`, `/metrics/business` endpoints
//! ([`MetricsEndpoint`], [`metrics_router`]).
//!
//! The layer records `http_requests_total{method,route,status}` (status class),
//! `http_request_duration_seconds{method,route}` (until the response head) and
//! `http_requests_in_flight{method,route}` in an [`obs_metrics::http::HttpMetrics`].
//!
//! `route` is, in order: the user's route function ([`HttpMetricsLayer::route_fn`]), axum's
//! `MatchedPath` ([`crate::route::route_template`]), the route of an
//! [`obs_core::RequestContext`] in the request extensions — and otherwise the constant
//! [`UNMATCHED_ROUTE`] (`__unmatched__`). The raw path is never used, so scanners probing
//! random URLs add no series. Methods outside the standard nine are `other`. If the inner
//! service fails, the request is counted as `5xx`; if the response future is dropped before
//! completing, only the in-flight gauge is decremented.
//!
//! With axum, add the layer with `Router::layer` (after routing, so `MatchedPath` is known).
//! To count unmatched requests, give the router an explicit `.fallback(..)` before `.layer(..)`:
//! the default fallback is not kept layered when routers are merged. The metrics endpoints of
//! [`metrics_router`] are merged *after* layering, so scrapes are not counted.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use obs_metrics::{http::HttpMetrics, Registry};
//! use obs_tower::metrics::{metrics_router, HttpMetricsLayer};
//!
//! let registry = Registry::new();
//! registry.register_process_metrics().unwrap();
//! let http = HttpMetrics::register(&registry).unwrap();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .fallback(|| async { http::StatusCode::NOT_FOUND })
//!     .layer(HttpMetricsLayer::new(http))
//!     .merge(metrics_router(registry));
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response};
use obs_metrics::http::{HttpMethod, HttpMetrics, InFlight};
use obs_metrics::{Format, Registry, Scope};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use obs_metrics::http::UNMATCHED_ROUTE;

/// A user function giving the route template of a request (`None`: unmatched).
pub type RouteFn = Arc<dyn Fn(&http::Uri, &http::Extensions) -> Option<String> + Send + Sync>;

/// Layer recording HTTP RED metrics; see the [module docs](self).
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: HttpMetrics,
    route_fn: Option<RouteFn>,
}

impl fmt::Debug for HttpMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetricsLayer")
            .field("metrics", &self.metrics)
            .field("route_fn", &self.route_fn.is_some())
            .finish()
    }
}

impl HttpMetricsLayer {
    /// Records into `metrics` (register it with [`HttpMetrics::register`]).
    pub fn new(metrics: HttpMetrics) -> Self {
        Self {
            metrics,
            route_fn: None,
        }
    }

    /// Uses `f` to find the route template (return a template, not the raw path).
    pub fn route_fn(
        mut self,
        f: impl Fn(&http::Uri, &http::Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.route_fn = Some(Arc::new(f));
        self
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: self.metrics.clone(),
            route_fn: self.route_fn.clone(),
        }
    }
}

/// The service produced by [`HttpMetricsLayer`].
#[derive(Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: HttpMetrics,
    route_fn: Option<RouteFn>,
}

impl<S: fmt::Debug> fmt::Debug for HttpMetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetricsService")
            .field("inner", &self.inner)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for HttpMetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = HttpMethod::from_method(req.method().as_str());
        let in_flight = match &self.route_fn {
            Some(f) => {
                let route = f(req.uri(), req.extensions());
                self.metrics.start(method, route.as_deref())
            }
            None => {
                let route = crate::route::route_template(&req).or_else(|| {
                    req.extensions()
                        .get::<obs_core::RequestContext>()
                        .and_then(|c| c.route())
                });
                self.metrics.start(method, route)
            }
        };
        ResponseFuture {
            inner: self.inner.call(req),
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// Response future of [`HttpMetricsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(r) = this.in_flight.take() {
            r.finish(match &out {
                Ok(res) => res.status().as_u16(),
                Err(_) => 500,
            });
        }
        Poll::Ready(out)
    }
}

/// A tower service serving a [`Registry`]'s exposition (any request path/method).
///
/// Answers OpenMetrics when the `Accept` header asks for `application/openmetrics-text`,
/// Prometheus text 0.0.4 otherwise.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    registry: Registry,
    scopes: Vec<Scope>,
}

impl MetricsEndpoint {
    /// Serves the given scopes, in order, in one body.
    pub fn new(registry: Registry, scopes: &[Scope]) -> Self {
        Self {
            registry,
            scopes: scopes.to_vec(),
        }
    }
    /// Process + HTTP + library metrics (`/metrics`).
    pub fn system(registry: Registry) -> Self {
        Self::new(registry, &[Scope::System])
    }
    /// Application-defined metrics (`/metrics/business`).
    pub fn business(registry: Registry) -> Self {
        Self::new(registry, &[Scope::Business])
    }
    /// Everything in one body.
    pub fn all(registry: Registry) -> Self {
        Self::new(registry, &[Scope::System, Scope::Business])
    }

    /// The response for a request with the given `Accept` header.
    pub fn respond(&self, accept: Option<&str>) -> Response<String> {
        let format = Format::from_accept(accept);
        let body = self.registry.encode(format, &self.scopes);
        let mut res = Response::new(body);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        res
    }
}

impl<B> Service<Request<B>> for MetricsEndpoint {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        std::future::ready(Ok(self.respond(accept)))
    }
}

/// An axum router with `GET /metrics` (system scope) and `GET /metrics/business` (business
/// scope). Use [`MetricsEndpoint::all`] with `route_service` to serve both at one path.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub fn metrics_router<St: Clone + Send + Sync + 'static>(registry: Registry) -> axum::Router<St> {
    use axum::routing::get_service;
    axum::Router::new()
        .route(
            "/metrics",
            get_service(MetricsEndpoint::system(registry.clone())),
        )
        .route(
            "/metrics/business",
            get_service(MetricsEndpoint::business(registry)),
        )
}
