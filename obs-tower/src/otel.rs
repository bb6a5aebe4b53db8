//! OpenTelemetry server spans with W3C trace context in and out (feature `otel`).
//!
//! [`OtelLayer`] opens the request's server span (`otel.kind = server`, named
//! `"{method} {route}"`), takes its parent from the inbound `traceparent`/`tracestate`
//! headers (W3C trace context; a missing or invalid header starts a new trace, never an
//! error), sets the semantic-convention attributes `http.request.method`, `http.route`,
//! `url.scheme`, `client.address` and `request_id`, and on completion
//! `http.response.status_code` (5xx responses and inner errors set error status). It records
//! the span's trace and span ids on the request's [`RequestContext`] (see
//! [`RequestContext::set_trace_ids`]) so JSON log lines, Sentry events and metric exemplars
//! of the request name its trace.
//!
//! **Order**: put it *inside* [`RequestIdLayer`](crate::RequestIdLayer) (with axum: add it
//! with `.layer()` *before* `RequestIdLayer`), so the request's context exists when the span
//! starts. Placed outside, it still traces (and honours `traceparent`) but cannot record the
//! ids on the context or the `request_id` attribute; it never panics.
//!
//! The spans become OpenTelemetry spans through a `tracing_opentelemetry` layer on the
//! subscriber (`obs_telemetry::otel::Otel::layer`); without one the layer costs one disabled
//! span. Outgoing calls: [`inject_context`] writes `traceparent`/`tracestate` of the current
//! span into headers, and with feature `reqwest` [`RequestBuilderExt::with_trace_context`]
//! does it for a reqwest request (use it next to `with_request_id()`).
//!
//! The span ends when the response head is ready (like `RequestIdLayer`'s `request` span), not
//! when a streamed body finishes.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use obs_tower::{otel::OtelLayer, RequestIdLayer};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .layer(OtelLayer::new()) // inside
//!     .layer(RequestIdLayer::new()); // outside
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use obs_core::context::{SpanId, TraceId, TraceIds};
use obs_core::RequestContext;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Target of the server spans [`OtelLayer`] opens (for filters).
pub const SPAN_TARGET: &str = "obs_tower::otel";

/// Opens the request's OpenTelemetry server span; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct OtelLayer {
    scheme: &'static str,
}

impl Default for OtelLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelLayer {
    /// A layer reporting `url.scheme = http` unless the request URI has a scheme.
    pub fn new() -> Self {
        OtelLayer { scheme: "http" }
    }

    /// The `url.scheme` reported when the request URI has none (e.g. `"https"` behind a
    /// TLS-terminating listener).
    pub fn scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = scheme;
        self
    }
}

impl<S> Layer<S> for OtelLayer {
    type Service = OtelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtelService {
            inner,
            scheme: self.scheme,
        }
    }
}

/// The service built by [`OtelLayer`].
#[derive(Debug, Clone)]
pub struct OtelService<S> {
    inner: S,
    scheme: &'static str,
}

impl<S> OtelService<S> {
    /// Wraps `inner` with the default [`OtelLayer`].
    pub fn new(inner: S) -> Self {
        OtelLayer::new().layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Reads W3C trace-context headers from an [`http::HeaderMap`].
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes W3C trace-context headers into an [`http::HeaderMap`].
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Opens the server span for `req` and makes it the request's span.
fn server_span<B>(req: &Request<B>, scheme: &'static str) -> Span {
    let method = req.method().as_str();
    let route = crate::route::route_template(req);
    let ctx = req.extensions().get::<RequestContext>();
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "HTTP request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.scheme = req.uri().scheme_str().unwrap_or(scheme),
        client.address = ctx.and_then(RequestContext::client_ip).map(display),
        request_id = ctx.map(|c| c.request_id().as_str()),
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    match route {
        Some(route) => span.record("otel.name", format_args!("{method} {route}")),
        None => span.record("otel.name", method),
    };
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    // Err: no OpenTelemetry layer on the subscriber; the span is then a plain tracing span.
    if span.set_parent(parent).is_ok() {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            let ids = TraceIds {
                trace_id: TraceId(sc.trace_id().to_bytes()),
                span_id: SpanId(sc.span_id().to_bytes()),
            };
            match ctx {
                Some(ctx) => {
                    ctx.set_trace_ids(ids);
                }
                None => {
                    RequestContext::with_current(|c| c.map(|c| c.set_trace_ids(ids)));
                }
            }
        }
    }
    span
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OtelService<S>
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
        let span = server_span(&req, self.scheme);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture { inner, span }
    }
}

pin_project! {
    /// Response future of [`OtelService`]: polls the inner future inside the server span and
    /// records the response status on it.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            match this.inner.poll(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            }
        };
        let span = &*this.span;
        match &result {
            Ok(res) => {
                let status = res.status();
                span.record("http.response.status_code", i64::from(status.as_u16()));
                if status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", status.as_str());
                }
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", "_OTHER");
            }
        }
        Poll::Ready(result)
    }
}

/// Writes `traceparent` (and `tracestate`) of the current span into `headers`, so the callee
/// continues this trace. Does nothing when the current span has no OpenTelemetry context.
pub fn inject_context(headers: &mut HeaderMap) {
    let cx = Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// The current span's W3C trace-context headers (`traceparent`, `tracestate` if any); empty
/// when the current span has no OpenTelemetry context.
pub fn trace_context_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject_context(&mut headers);
    headers
}

/// Adds the current span's W3C trace context to a `reqwest` request (feature `reqwest`).
///
/// ```
/// use obs_tower::otel::RequestBuilderExt as _;
/// use obs_tower::propagate::RequestBuilderExt as _;
///
/// let req = reqwest::Client::new()
///     .get("http://127.0.0.1:9/users")
///     .with_request_id()
///     .with_trace_context()
///     .build()
///     .unwrap();
/// // Outside a traced span nothing is added.
/// assert!(req.headers().get("traceparent").is_none());
/// ```
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub trait RequestBuilderExt: Sized {
    /// Sets `traceparent` (and `tracestate`) from the current span; unchanged outside one.
    fn with_trace_context(self) -> Self;
}

#[cfg(feature = "reqwest")]
impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_trace_context(self) -> Self {
        let headers = trace_context_headers();
        if headers.is_empty() {
            self
        } else {
            self.headers(headers)
        }
    }
}

/// [`RequestBuilderExt::with_trace_context`] as a function.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub fn inject_trace_context(builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    builder.with_trace_context()
}
