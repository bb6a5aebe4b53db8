//! [`AccessLogLayer`]: one structured log event per completed request.
//!
//! Each request that completes produces one `tracing` event with target `obs::access` and the
//! message `request completed`, carrying:
//!
//! | field | value |
//! |---|---|
//! | `request_id` | from the [`RequestContext`] that [`RequestIdLayer`](crate::RequestIdLayer) inserted |
//! | `method` | HTTP method |
//! | `route` | matched route template (`/users/{id}`), absent when unmatched — never the raw path |
//! | `status` | response status code |
//! | `duration_ms` | time from the call to the response head, in milliseconds (`f64`) |
//! | `client_ip` | from the context (trusted proxies honoured there), else the peer address |
//!
//! Level: INFO, and [`server_error_level`](AccessLogLayer::server_error_level) (default WARN)
//! for 5xx responses and inner-service errors (those have `error = true` and no `status`).
//! 5xx lines are not ERROR by default on purpose: the failure itself is reported by the
//! handler or the Sentry layer, and with `sentry-tracing`'s default filter an ERROR access
//! line would become a second Sentry event for the same failure.
//!
//! The event is emitted when the inner service returns the response head: `duration_ms`
//! does not include streaming the body (as tower-http's `on_response`), and a request whose
//! future is dropped before completing (client gone) is not logged.
//!
//! # Toggles
//!
//! As `LOG_REQUESTS` / `LOG_HEALTH_REQUESTS` in the reference services, two independent
//! switches: [`log_requests`](AccessLogLayer::log_requests) (default on) logs non-health
//! requests; [`log_health_requests`](AccessLogLayer::log_health_requests) (default off) logs
//! health-probe requests. A health request is one whose path is one of
//! [`DEFAULT_HEALTH_PATHS`] or below it (`/health/live`), changeable with
//! [`health_paths`](AccessLogLayer::health_paths). Skipped requests cost one path check, or
//! none when both switches are off (or both on).
//!
//! # Order
//!
//! Put `RequestIdLayer` *outside* the access log (with axum's `Router::layer`, add it
//! *after*), so the access log finds the [`RequestContext`] in the extensions and its event is
//! emitted inside the `request` span. Without a context, the event is logged without
//! `request_id`, with the route from axum's `MatchedPath` and the peer address.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use obs_tower::{AccessLogLayer, RequestIdLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new()) // outer: creates the context
//!     .layer(AccessLogLayer::new().log_health_requests(false))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//! // Logs: request completed request_id=… method="GET" status=200 duration_ms=0.01
//! let res = svc.clone().oneshot(Request::get("/orders").body(()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! // Not logged: a health probe.
//! svc.oneshot(Request::get("/health/live").body(()).unwrap()).await.unwrap();
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use obs_core::RequestContext;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Level;

use crate::client_ip::peer_addr;

/// Target of the access-log events (filter with e.g. `RUST_LOG=info,obs::access=off`).
pub const TARGET: &str = "obs::access";

/// Path prefixes treated as health probes by default.
pub const DEFAULT_HEALTH_PATHS: &[&str] = &[
    "/health", "/healthz", "/ready", "/readyz", "/live", "/livez",
];

#[derive(Clone)]
struct Config {
    log_requests: bool,
    log_health_requests: bool,
    health_paths: Vec<Cow<'static, str>>,
    server_error_level: Level,
}

impl Config {
    fn should_log(&self, path: &str) -> bool {
        // Both toggles alike (e.g. `LOG_REQUESTS=false` and health logging off): no path check.
        if self.log_requests == self.log_health_requests {
            return self.log_requests;
        }
        if self.is_health(path) {
            self.log_health_requests
        } else {
            self.log_requests
        }
    }

    fn is_health(&self, path: &str) -> bool {
        self.health_paths.iter().any(|p| {
            path.strip_prefix(&**p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// Layer that applies [`AccessLog`]; see the [module docs](self).
#[derive(Clone)]
pub struct AccessLogLayer {
    config: Arc<Config>,
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AccessLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("AccessLogLayer")
            .field("log_requests", &c.log_requests)
            .field("log_health_requests", &c.log_health_requests)
            .field("health_paths", &c.health_paths)
            .field("server_error_level", &c.server_error_level)
            .finish()
    }
}

impl AccessLogLayer {
    /// Logs every request except health probes; 5xx at WARN.
    pub fn new() -> Self {
        AccessLogLayer {
            config: Arc::new(Config {
                log_requests: true,
                log_health_requests: false,
                health_paths: DEFAULT_HEALTH_PATHS
                    .iter()
                    .map(|p| Cow::Borrowed(*p))
                    .collect(),
                server_error_level: Level::WARN,
            }),
        }
    }

    /// From the logging settings: `LOG_REQUESTS` and `LOG_HEALTH_REQUESTS` as read by
    /// [`LogConfig::from_env`](obs_core::logging::LogConfig::from_env).
    ///
    /// ```
    /// use obs_core::logging::LogConfig;
    /// use obs_tower::AccessLogLayer;
    ///
    /// let config = LogConfig::from_lookup(|var| match var {
    ///     "LOG_HEALTH_REQUESTS" => Some("true".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// let layer = AccessLogLayer::from_config(&config);
    /// # let _ = layer;
    /// ```
    pub fn from_config(config: &obs_core::logging::LogConfig) -> Self {
        Self::new()
            .log_requests(config.log_requests)
            .log_health_requests(config.log_health_requests)
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Whether to log non-health requests (`LOG_REQUESTS`; default true for this layer).
    pub fn log_requests(self, enabled: bool) -> Self {
        self.edit(|c| c.log_requests = enabled)
    }

    /// Whether to log health-probe requests too (`LOG_HEALTH_REQUESTS`, default false).
    pub fn log_health_requests(self, enabled: bool) -> Self {
        self.edit(|c| c.log_health_requests = enabled)
    }

    /// Replaces the health path prefixes (default [`DEFAULT_HEALTH_PATHS`]). A path matches
    /// a prefix when it equals it or continues with `/`: `/health` matches `/health/live` but
    /// not `/healthcare`. Add `"/metrics"` to silence Prometheus scrapes as well.
    pub fn health_paths<I, P>(self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Cow<'static, str>>,
    {
        let paths: Vec<Cow<'static, str>> = paths
            .into_iter()
            .map(|p| {
                let p: Cow<'static, str> = p.into();
                match p.strip_suffix('/') {
                    Some(trimmed) if !trimmed.is_empty() => Cow::Owned(trimmed.to_owned()),
                    _ => p,
                }
            })
            .collect();
        self.edit(|c| c.health_paths = paths)
    }

    /// Level for 5xx responses and inner-service errors (default WARN; others are INFO).
    pub fn server_error_level(self, level: Level) -> Self {
        self.edit(|c| c.server_error_level = level)
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Middleware that logs completed requests; built by [`AccessLogLayer`].
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for AccessLog<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> AccessLog<S> {
    /// Wraps `inner` with the default [`AccessLogLayer`] settings.
    pub fn new(inner: S) -> Self {
        AccessLogLayer::new().layer(inner)
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What is known about the request when it was called.
struct Pending {
    start: Instant,
    context: Option<RequestContext>,
    /// Used only when there is no context.
    method: Method,
    route: Option<Box<str>>,
    peer: Option<IpAddr>,
    server_error_level: Level,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let pending = if self.config.should_log(req.uri().path())
            && tracing::enabled!(target: TARGET, Level::ERROR)
        {
            let context = req.extensions().get::<RequestContext>().cloned();
            let (route, peer) = if context.is_none() {
                (
                    crate::route::route_template(&req).map(Box::from),
                    peer_addr(req.extensions()).map(|a| a.ip().to_canonical()),
                )
            } else {
                (None, None)
            };
            Some(Pending {
                start: Instant::now(),
                context,
                method: req.method().clone(),
                route,
                peer,
                server_error_level: self.config.server_error_level,
            })
        } else {
            None
        };
        ResponseFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

pin_project! {
    /// Response future of [`AccessLog`]: emits the access event when the inner future
    /// completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("logging", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

macro_rules! access_event {
    ($level:expr, $($fields:tt)*) => {{
        let level = $level;
        if level == Level::INFO {
            tracing::info!(target: TARGET, $($fields)*)
        } else if level == Level::WARN {
            tracing::warn!(target: TARGET, $($fields)*)
        } else if level == Level::ERROR {
            tracing::error!(target: TARGET, $($fields)*)
        } else if level == Level::DEBUG {
            tracing::debug!(target: TARGET, $($fields)*)
        } else {
            tracing::trace!(target: TARGET, $($fields)*)
        }
    }};
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(p) = this.pending.take() {
            let duration_ms = p.start.elapsed().as_secs_f64() * 1000.0;
            let ctx = p.context.as_ref();
            let request_id = ctx.map(|c| c.request_id().as_str());
            let method = ctx.and_then(|c| c.method()).unwrap_or(p.method.as_str());
            let route = match ctx {
                Some(c) => c.route(),
                None => p.route.as_deref(),
            };
            let client_ip = ctx.and_then(|c| c.client_ip()).or(p.peer);
            let client_ip = client_ip.map(tracing::field::display);
            match &result {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let level = if res.status().is_server_error() {
                        p.server_error_level
                    } else {
                        Level::INFO
                    };
                    access_event!(
                        level,
                        request_id,
                        method,
                        route,
                        status,
                        duration_ms,
                        client_ip,
                        "request completed"
                    );
                }
                Err(_) => {
                    access_event!(
                        p.server_error_level,
                        request_id,
                        method,
                        route,
                        duration_ms,
                        client_ip,
                        error = true,
                        "request failed"
                    );
                }
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_match_on_segment_boundaries() {
        let c = AccessLogLayer::new().config;
        for p in ["/health", "/health/live", "/healthz", "/readyz", "/live/x"] {
            assert!(c.is_health(p), "{p}");
        }
        for p in ["/", "/healthcare", "/api/health", "/users/1", "/metrics"] {
            assert!(!c.is_health(p), "{p}");
        }
        let c = AccessLogLayer::new()
            .health_paths(["/metrics/", "/ping"])
            .config;
        assert!(c.is_health("/metrics"));
        assert!(c.is_health("/metrics/business"));
        assert!(!c.is_health("/health"));
    }

    #[test]
    fn from_config_reads_the_toggles() {
        let config = obs_core::logging::LogConfig::from_lookup(|var| match var {
            "LOG_REQUESTS" => Some("false".into()),
            "LOG_HEALTH_REQUESTS" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        let c = AccessLogLayer::from_config(&config).config;
        assert!(!c.log_requests);
        assert!(c.log_health_requests);
        let c = AccessLogLayer::from_config(&Default::default()).config;
        assert!(c.log_requests && !c.log_health_requests);
    }

    #[test]
    fn toggles() {
        let c = AccessLogLayer::new().config;
        assert!(c.should_log("/users"));
        assert!(!c.should_log("/health"));
        let c = AccessLogLayer::new().log_health_requests(true).config;
        assert!(c.should_log("/health"));
        let c = AccessLogLayer::new()
            .log_requests(false)
            .log_health_requests(true)
            .config;
        assert!(!c.should_log("/users"));
        // Independent, as in the reference services: health requests alone.
        assert!(c.should_log("/health"));
        let c = AccessLogLayer::new().log_requests(false).config;
        assert!(!c.should_log("/users") && !c.should_log("/health"));
        let c = AccessLogLayer::new().log_health_requests(true).config;
        assert!(c.should_log("/users") && c.should_log("/health/live"));
    }
}
