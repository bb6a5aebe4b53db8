//! [`SentryLayer`] (feature `sentry`): one Sentry hub per request, bound while the response
//! body streams; 5xx responses and handler panics captured as events with request context.
//!
//! What it does per request, when a Sentry client is bound:
//!
//! - forks a fresh hub from the parent hub (`Hub::new_from_top`, the parent defaults to the
//!   current hub, see [`SentryLayer::hub`]) and binds it with
//!   [`obs_core::sentry::run_in_request_hub`] on every poll of the inner future **and of the
//!   response body**, so breadcrumbs, user and contexts recorded by the handler — or while
//!   the body streams (sentry-rust #1208) — stay on this request's hub and never reach another
//!   request (sentry-rust #616, #836);
//! - adds an event processor that fills, at capture time only, the event's `request` (method,
//!   URL, query string, headers), the `request_id`/`http.method`/`http.route` tags, the
//!   transaction `METHOD /route`, the user id and — only with `send_default_pii` — the client
//!   IP ([`RequestContext::client_ip`], else the peer address). Scrubbing happens in the
//!   client's `before_send` ([`obs_core::sentry::configure`]), which also removes
//!   `Authorization`/`Cookie` headers and cookies unless `send_default_pii` is on;
//! - captures a response whose status class is in [`StatusClasses`] (default: 5xx only) as an
//!   error event `500 Internal Server Error: GET /orders/{id}` with tag `http.status_code`;
//! - captures a panic of the inner service (while polling its future or the body) as a fatal
//!   `panic` exception (mechanism `handled: false`), then resumes the panic unchanged, so
//!   tower-http's `CatchPanicLayer` (outside this layer) or the server still decide what the
//!   client sees. Do not also install the `sentry-panic` integration, or panics are reported
//!   twice.
//!
//! Errors of the inner service (`Err` from its future) pass through unchanged and are not
//! captured: with axum they cannot happen (`Infallible`); report them where they are mapped to
//! a response. A panic in the inner service's synchronous `call` (before a future exists) is
//! not caught either; handlers run in the future.
//!
//! Without a client, the layer does nothing but forward: no hub, no allocation, no
//! `catch_unwind`.
//!
//! # Order
//!
//! Any order with [`RequestIdLayer`](crate::RequestIdLayer) works; recommended is *inside* it
//! (with axum's `Router::layer`: add `SentryLayer` first, `RequestIdLayer` after), so the
//! [`RequestContext`] is in the request extensions when the layer runs. Placed outside, the
//! layer finds the context through the task-local [`RequestContext::current`] for events
//! captured inside the handler, and takes the request id of its own 5xx/panic events from the
//! response's `x-request-id` header ([`SentryLayer::request_id_header`]). The route comes from
//! axum's `MatchedPath`, so it is only known when the layer is added with `Router::layer`.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use obs_tower::{RequestIdLayer, SentryLayer};
//! use sentry_core::{test::TestTransport, ClientOptions, Hub};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let transport = TestTransport::new();
//! let options = ClientOptions::new().dsn("https://key@sentry.invalid/1").transport(transport.clone());
//! let options = obs_core::sentry::configure(options, Default::default());
//! let hub = Arc::new(Hub::new(Some(Arc::new(options.into())), Default::default()));
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())
//!     .layer(SentryLayer::new().hub(hub))
//!     .service(service_fn(|_req: Request<()>| async {
//!         obs_core::sentry::breadcrumb("db", "lookup failed", ());
//!         let mut res = Response::new(());
//!         *res.status_mut() = StatusCode::BAD_GATEWAY;
//!         Ok::<_, Infallible>(res)
//!     }));
//! let req = Request::get("/orders?page=2").header("x-request-id", "req-1").body(()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
//!
//! let events = transport.fetch_and_clear_events();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].tags["request_id"], "req-1");
//! assert_eq!(events[0].tags["http.status_code"], "502");
//! assert_eq!(events[0].breadcrumbs[0].message.as_deref(), Some("lookup failed"));
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::ops::BitOr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use obs_core::sentry::{apply_request_context, run_in_request_hub, REQUEST_ID_TAG};
use obs_core::RequestContext;
use pin_project_lite::pin_project;
use sentry_core::protocol::{self, Event, Exception, Mechanism};
use sentry_core::{Hub, Level};
use tower_layer::Layer;
use tower_service::Service;

/// Tag holding the response status code on events captured by the layer.
pub const STATUS_TAG: &str = "http.status_code";

/// A set of HTTP status classes (`4xx`, `5xx`) whose responses are captured as events.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusClasses(u8);

impl StatusClasses {
    /// Capture nothing.
    pub const NONE: Self = Self(0);
    /// `4xx` responses.
    pub const CLIENT_ERROR: Self = Self(1 << 4);
    /// `5xx` responses (the default).
    pub const SERVER_ERROR: Self = Self(1 << 5);

    /// True when `status` belongs to one of the classes.
    pub fn contains(self, status: StatusCode) -> bool {
        let class = status.as_u16() / 100;
        (4..=5).contains(&class) && self.0 & (1 << class) != 0
    }
}

impl BitOr for StatusClasses {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for StatusClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_set();
        if self.0 & Self::CLIENT_ERROR.0 != 0 {
            list.entry(&"4xx");
        }
        if self.0 & Self::SERVER_ERROR.0 != 0 {
            list.entry(&"5xx");
        }
        list.finish()
    }
}

#[derive(Debug, Clone)]
struct Config {
    capture: StatusClasses,
    capture_panics: bool,
    parent: Option<Arc<Hub>>,
    request_id_header: HeaderName,
}

/// Per-request Sentry hub, 5xx and panic capture; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct SentryLayer {
    config: Arc<Config>,
}

impl Default for SentryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SentryLayer {
    /// 5xx and panics captured, hubs forked from the current hub.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                capture: StatusClasses::SERVER_ERROR,
                capture_panics: true,
                parent: None,
                request_id_header: HeaderName::from_static("x-request-id"),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Which status classes become events (default [`StatusClasses::SERVER_ERROR`]), e.g.
    /// `StatusClasses::SERVER_ERROR | StatusClasses::CLIENT_ERROR`.
    pub fn capture_status(mut self, classes: StatusClasses) -> Self {
        self.config_mut().capture = classes;
        self
    }

    /// Whether panics of the inner service are captured (default `true`); they are resumed
    /// either way.
    pub fn capture_panics(mut self, enabled: bool) -> Self {
        self.config_mut().capture_panics = enabled;
        self
    }

    /// The hub each request's hub is forked from (default: [`Hub::current`] at request time).
    /// Set it when the client is not bound on the threads that serve requests, or in tests.
    pub fn hub(mut self, hub: Arc<Hub>) -> Self {
        self.config_mut().parent = Some(hub);
        self
    }

    /// The response header to read the request id from when no [`RequestContext`] is in the
    /// request extensions (layer outside `RequestIdLayer`). Default `x-request-id`.
    pub fn request_id_header(mut self, name: HeaderName) -> Self {
        self.config_mut().request_id_header = name;
        self
    }
}

impl<S> Layer<S> for SentryLayer {
    type Service = SentryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SentryService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`SentryLayer`].
#[derive(Clone)]
pub struct SentryService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for SentryService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> SentryService<S> {
    /// Wraps `inner` with the default [`SentryLayer`].
    pub fn new(inner: S) -> Self {
        SentryLayer::new().layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the event processor needs to describe the request, kept from `call` (only when a
/// client is bound).
struct RequestInfo {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ctx: Option<RequestContext>,
    route: Option<Box<str>>,
    client_ip: Option<IpAddr>,
    pii: bool,
}

impl RequestInfo {
    fn url(&self) -> Option<protocol::Url> {
        let host = self
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                self.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("localhost");
        let scheme = self.uri.scheme_str().unwrap_or("http");
        let path = self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        protocol::Url::parse(&format!("{scheme}://{host}{path}")).ok()
    }

    fn sentry_request(&self) -> protocol::Request {
        protocol::Request {
            url: self.url(),
            method: Some(self.method.as_str().to_owned()),
            query_string: self.uri.query().map(str::to_owned),
            headers: self
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            ..protocol::Request::default()
        }
    }

    fn apply(&self, mut event: Event<'static>) -> Event<'static> {
        if event.request.is_none() {
            event.request = Some(self.sentry_request());
        }
        match &self.ctx {
            Some(ctx) => apply_request_context(&mut event, ctx),
            None => RequestContext::with_current(|ctx| {
                if let Some(ctx) = ctx {
                    apply_request_context(&mut event, ctx);
                }
            }),
        }
        let tags = &mut event.tags;
        tags.entry(obs_core::sentry::METHOD_TAG.to_owned())
            .or_insert_with(|| self.method.as_str().to_owned());
        if let Some(route) = &self.route {
            tags.entry(obs_core::sentry::ROUTE_TAG.to_owned())
                .or_insert_with(|| route.to_string());
            if event.transaction.is_none() {
                event.transaction = Some(format!("{} {route}", self.method));
            }
        }
        if self.pii {
            if let Some(ip) = self.client_ip {
                let user = event.user.get_or_insert_with(Default::default);
                if user.ip_address.is_none() {
                    user.ip_address = Some(protocol::IpAddress::Exact(ip));
                }
            }
        }
        event
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SentryService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<SentryBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let current;
        let parent = match &self.config.parent {
            Some(hub) => hub,
            None => {
                current = Hub::current();
                &current
            }
        };
        let Some(client) = parent.client().filter(|c| c.is_enabled()) else {
            return ResponseFuture {
                inner: self.inner.call(req),
                state: None,
            };
        };
        let pii = client.options().send_default_pii;
        let ctx = req.extensions().get::<RequestContext>().cloned();
        let client_ip = if pii {
            ctx.as_ref()
                .and_then(RequestContext::client_ip)
                .or_else(|| crate::client_ip::peer_addr(req.extensions()).map(|a| a.ip()))
        } else {
            None
        };
        let route = crate::route::route_template(&req)
            .filter(|_| ctx.as_ref().and_then(RequestContext::route).is_none())
            .map(Into::into);
        let info = Arc::new(RequestInfo {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            ctx,
            route,
            client_ip,
            pii,
        });
        let hub = Arc::new(Hub::new_from_top(parent));
        let config = Arc::clone(&self.config);
        let processor_info = Arc::clone(&info);
        hub.configure_scope(move |scope| {
            scope.add_event_processor(move |event| Some(processor_info.apply(event)));
        });
        let inner = run_in_request_hub(&hub, || self.inner.call(req));
        ResponseFuture {
            inner,
            state: Some(State { hub, info, config }),
        }
    }
}

/// Only when a client is bound (the disabled path carries nothing).
struct State {
    hub: Arc<Hub>,
    info: Arc<RequestInfo>,
    config: Arc<Config>,
}

pin_project! {
    /// Response future of [`SentryService`]: polls the inner future on the request's hub,
    /// captures 5xx responses and panics, wraps the body in [`SentryBody`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<State>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("enabled", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<SentryBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(state) = this.state.as_ref() else {
            let result = std::task::ready!(this.inner.poll(cx));
            return Poll::Ready(result.map(|res| res.map(SentryBody::disabled)));
        };
        let mut inner = this.inner;
        let polled = run_in_request_hub(&state.hub, || {
            if state.config.capture_panics {
                std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
            } else {
                Ok(inner.as_mut().poll(cx))
            }
        });
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(payload) => {
                capture_panic(&state.hub, &*payload, None);
                std::panic::resume_unwind(payload);
            }
        };
        let state = this.state.take().expect("checked above");
        let response = result?;
        let status = response.status();
        if state.config.capture.contains(status) {
            let request_id = response
                .headers()
                .get(&state.config.request_id_header)
                .and_then(|v| v.to_str().ok());
            capture_status(&state, status, request_id);
        }
        let ctx = state.info.ctx.clone();
        let hub = state.hub;
        Poll::Ready(Ok(response.map(|body| SentryBody {
            inner: body,
            hub: Some(hub),
            ctx,
            capture_panics: state.config.capture_panics,
        })))
    }
}

fn capture_status(state: &State, status: StatusCode, request_id: Option<&str>) {
    let info = &state.info;
    let target = info
        .ctx
        .as_ref()
        .and_then(RequestContext::route)
        .or(info.route.as_deref())
        .unwrap_or_else(|| info.uri.path());
    let mut event = Event {
        message: Some(format!("{status}: {} {target}", info.method)),
        level: if status.is_server_error() {
            Level::Error
        } else {
            Level::Warning
        },
        ..Event::default()
    };
    event
        .tags
        .insert(STATUS_TAG.to_owned(), status.as_u16().to_string());
    if info.ctx.is_none() {
        if let Some(id) = request_id {
            event.tags.insert(REQUEST_ID_TAG.to_owned(), id.to_owned());
        }
    }
    state.hub.capture_event(event);
}

fn capture_panic(hub: &Hub, payload: &(dyn Any + Send), during: Option<&str>) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned());
    let mut event = Event {
        exception: vec![Exception {
            ty: "panic".to_owned(),
            value: Some(message),
            mechanism: Some(Mechanism {
                ty: "panic".to_owned(),
                handled: Some(false),
                ..Mechanism::default()
            }),
            ..Exception::default()
        }]
        .into(),
        level: Level::Fatal,
        ..Event::default()
    };
    if let Some(during) = during {
        event
            .tags
            .insert("panic.during".to_owned(), during.to_owned());
    }
    hub.capture_event(event);
}

pin_project! {
    /// Response body of [`SentryService`]: polls the inner body on the request's hub and
    /// inside its [`RequestContext`], so what is recorded while streaming stays on the request
    /// and carries its request id (panics while streaming are captured and resumed).
    pub struct SentryBody<B> {
        #[pin]
        inner: B,
        hub: Option<Arc<Hub>>,
        ctx: Option<RequestContext>,
        capture_panics: bool,
    }
}

impl<B> SentryBody<B> {
    fn disabled(inner: B) -> Self {
        Self {
            inner,
            hub: None,
            ctx: None,
            capture_panics: false,
        }
    }
}

impl<B> fmt::Debug for SentryBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryBody")
            .field("hub_bound", &self.hub.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for SentryBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(hub) = this.hub.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        let mut inner = this.inner;
        let capture_panics = *this.capture_panics;
        let mut poll = || {
            run_in_request_hub(hub, || {
                if capture_panics {
                    std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll_frame(cx)))
                } else {
                    Ok(inner.as_mut().poll_frame(cx))
                }
            })
        };
        let polled = match this.ctx {
            Some(ctx) => ctx.clone().sync_scope(poll),
            None => poll(),
        };
        match polled {
            Ok(poll) => poll,
            Err(payload) => {
                capture_panic(hub, &*payload, Some("body"));
                std::panic::resume_unwind(payload)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
