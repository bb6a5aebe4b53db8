//! [`RequestIdLayer`]: give every request a validated ID and a [`RequestContext`].
//!
//! For each request the layer:
//!
//! 1. reads the inbound ID from the configured header names (default `x-request-id`) if the
//!    [`Trust`] policy allows it and the value is a valid [`RequestId`] (1..=128 bytes of
//!    `[A-Za-z0-9._:-]`, one distinct value); anything else — empty, too long, control
//!    characters, non-UTF-8, unicode look-alikes, conflicting duplicates — is **replaced** by a
//!    freshly generated UUIDv7 and never echoed or logged;
//!    If an outer `RequestIdLayer` already ran (a `RequestId` extension is present, e.g.
//!    layers on both an outer and a nested axum router), its ID is kept;
//! 2. overwrites the request's primary header with the chosen ID (and removes rejected values
//!    of the other accepted names), so downstream code never sees a rejected value;
//! 3. inserts the [`RequestId`] and a [`RequestContext`] (method, route template, client IP,
//!    sanitized user agent) into the request extensions;
//! 4. runs the inner service's `call` and polls its future inside a `request` tracing span
//!    (fields `request_id`, `method`, `route`; level INFO by default) and inside the
//!    task-local [`RequestContext::scope`], so [`RequestContext::current`] works anywhere in
//!    the handler;
//! 5. sets the ID on the response header (the primary name), replacing any value the inner
//!    service set.
//!
//! The response body is not wrapped: the span and the task-local cover the handler up to the
//! response head; a streaming body is polled by the server outside of them.
//!
//! Order with the other obs layers: `RequestIdLayer` goes *outside* (added *after*, with
//! axum's `Router::layer`) the access log, metrics and rate-limit layers, so they find the
//! context in the extensions. See [`crate::route`] for why `Router::layer` and not a layer
//! around the whole router.
//!
//! # Cost
//!
//! The hot path does no string formatting and, for generated IDs, no system call per request:
//! randomness is drawn from the OS CSPRNG in batches of 32 IDs (own code, because uuid's
//! `now_v7` makes one `getrandom` call per ID, which dominated the cost), the ID is encoded
//! into inline storage and the header value shares one allocation with it
//! (`Bytes::from_owner`). An accepted inbound value is reused as is for the response header;
//! with one accepted header name (the default) and up to 24 header lines, the ID and the user
//! agent are found in one pass over the lines (comparing names is cheaper than hashing two of
//! them), and the ID is validated 16 bytes at a time on its inline copy. The context is
//! assembled once and moved into its one allocation
//! ([`RequestContext::from_parts`]; the user agent and route are stored inline — switch the
//! user agent off with [`record_user_agent(false)`](RequestIdLayer::record_user_agent)). With
//! no subscriber interested in the span, the span costs one level check. `call` and the
//! returned future share one [`Scope`] (the context is moved into it, not cloned). The paths
//! that rewrite the request's headers (generated, rejected, alternative name, outer layer)
//! are kept out of line.
//!
//! Per request it allocates the context and two extension boxes (`RequestId` and
//! `RequestContext`) — work tower-http's request-id layers do not do — and still executes
//! about as many instructions as tower-http's `SetRequestIdLayer` + `PropagateRequestIdLayer`
//! for an accepted inbound ID (1.03x over the whole request, 1.05x in the part criterion
//! times), fewer for a generated one. Numbers and the exact commands: `benches/README.md`.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use obs_core::{RequestContext, RequestId};
//! use obs_tower::request_id::{RequestIdLayer, Trust};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = RequestIdLayer::new()
//!     .trust(Trust::Always)
//!     .layer(service_fn(|req: Request<()>| async move {
//!         // Extensions and the task-local carry the same ID.
//!         let id = req.extensions().get::<RequestId>().unwrap().clone();
//!         assert_eq!(RequestContext::current_request_id().unwrap(), id);
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//!
//! let req = Request::get("/").header("x-request-id", "req-789").body(()).unwrap();
//! let res = svc.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-request-id"], "req-789");
//!
//! // A hostile value is replaced, never echoed.
//! let req = Request::get("/").header("x-request-id", "a b\tc").body(()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! let id = res.headers()["x-request-id"].to_str().unwrap();
//! assert_eq!(id.len(), 36); // a fresh UUIDv7
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, Response};
use obs_core::context::Scope;
use obs_core::{RequestContext, RequestId};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::level_filters::LevelFilter;
use tracing::{Level, Span};

use crate::client_ip::{peer_addr, TrustedProxies};

/// The default request-ID header, `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whose inbound request IDs are believed.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// Accept a valid inbound ID from anyone (services behind a gateway that sets it, or
    /// internal services). Invalid values are still replaced.
    #[default]
    Always,
    /// Always generate a new ID; inbound IDs are ignored and overwritten.
    Never,
    /// Accept a valid inbound ID only when the TCP peer is one of these proxies (peer address
    /// from `ConnectInfo<SocketAddr>` or a `SocketAddr` extension; unknown peer = untrusted).
    FromProxies(TrustedProxies),
}

#[derive(Clone)]
struct Config {
    header: HeaderName,
    /// Inbound names, `header` first.
    accept: Vec<HeaderName>,
    trust: Trust,
    proxies: TrustedProxies,
    level: Level,
    user_agent: bool,
}

/// Layer that applies [`RequestIdService`]; see the [module docs](self).
///
/// Cheap to clone (one `Arc`), so axum can apply it to every route.
#[derive(Clone)]
pub struct RequestIdLayer {
    config: Arc<Config>,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RequestIdLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.config;
        f.debug_struct("RequestIdLayer")
            .field("header", &c.header)
            .field("accept", &c.accept)
            .field("trust", &c.trust)
            .field("trusted_proxies", &c.proxies)
            .field("span_level", &c.level)
            .field("user_agent", &c.user_agent)
            .finish()
    }
}

impl RequestIdLayer {
    /// `x-request-id`, [`Trust::Always`], no trusted proxies for the client IP, span at INFO,
    /// user agent recorded.
    pub fn new() -> Self {
        RequestIdLayer {
            config: Arc::new(Config {
                header: X_REQUEST_ID,
                accept: vec![X_REQUEST_ID],
                trust: Trust::Always,
                proxies: TrustedProxies::none(),
                level: Level::INFO,
                user_agent: true,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The primary header: read first on the way in, always set on the response and on the
    /// request passed inward.
    pub fn header_name(self, name: HeaderName) -> Self {
        self.edit(|c| {
            c.accept.retain(|n| *n != name);
            c.accept.insert(0, name.clone());
            c.header = name;
        })
    }

    /// Also accept an inbound ID from `name` (e.g. `x-correlation-id`), checked after the
    /// primary and earlier alternatives. The response still uses the primary name.
    pub fn accept_header(self, name: HeaderName) -> Self {
        self.edit(|c| {
            if !c.accept.contains(&name) {
                c.accept.push(name);
            }
        })
    }

    /// Whose inbound IDs are believed (default [`Trust::Always`]).
    pub fn trust(self, trust: Trust) -> Self {
        self.edit(|c| c.trust = trust)
    }

    /// Proxies whose `X-Forwarded-For`/`Forwarded` headers are honoured when resolving the
    /// client IP of the [`RequestContext`] (default none: the peer address is the client).
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.edit(|c| c.proxies = proxies)
    }

    /// Shorthand for a service behind `proxies`: trust their request IDs
    /// ([`Trust::FromProxies`]) and their forwarding headers for the client IP.
    pub fn behind_proxies(self, proxies: TrustedProxies) -> Self {
        self.edit(|c| {
            c.trust = Trust::FromProxies(proxies.clone());
            c.proxies = proxies;
        })
    }

    /// Level of the `request` span (default INFO). A span below the subscriber's level is
    /// not created, and log lines then only get `request_id` from the task-local context.
    pub fn span_level(self, level: Level) -> Self {
        self.edit(|c| c.level = level)
    }

    /// Whether to record the (sanitized, bounded) user agent in the context (default true).
    pub fn record_user_agent(self, enabled: bool) -> Self {
        self.edit(|c| c.user_agent = enabled)
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Middleware that assigns request IDs; built by [`RequestIdLayer`].
///
/// (Named `RequestIdService` rather than `RequestId` to avoid clashing with
/// [`obs_core::RequestId`].)
#[derive(Clone)]
pub struct RequestIdService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for RequestIdService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdService")
            .field("inner", &self.inner)
            .field("header", &self.config.header)
            .finish_non_exhaustive()
    }
}

impl<S> RequestIdService<S> {
    /// Wraps `inner` with the default [`RequestIdLayer`] settings.
    pub fn new(inner: S) -> Self {
        RequestIdLayer::new().layer(inner)
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

/// Outcome of looking at the inbound headers.
enum Inbound<'h> {
    /// One trusted value (all lines agreeing) under the primary name, not validated yet:
    /// validated where the ID is built, so the ID is not moved through this enum.
    Primary(&'h HeaderValue),
    /// A valid, trusted value under an alternative name.
    Alternative(RequestId, HeaderValue),
    /// No accepted header present.
    Absent,
    /// Something was present and rejected (or not trusted): it must be scrubbed from the
    /// request.
    Rejected,
}

impl Config {
    #[inline]
    fn trusted(&self, extensions: &http::Extensions) -> bool {
        match &self.trust {
            Trust::Always => true,
            Trust::Never => false,
            Trust::FromProxies(p) => trusted_peer(p, extensions),
        }
    }

    /// The inbound ID and the user agent (if recorded). With one accepted name (the default)
    /// and up to [`SCAN_MAX`] header lines, one pass comparing names finds both: cheaper than
    /// hashing two names for the hashed look-ups (~130 and ~200 instructions), and the same
    /// result (first value of each name; every line of the ID header seen for the
    /// duplicate check).
    #[inline]
    fn lookup<'h>(&self, headers: &'h HeaderMap, trusted: bool) -> (Inbound<'h>, Option<&'h [u8]>) {
        if self.accept.len() == 1 && headers.len() <= SCAN_MAX && self.header != USER_AGENT {
            let mut first: Option<&HeaderValue> = None;
            let mut conflict = false;
            let mut user_agent = None;
            for (name, value) in headers {
                if *name == USER_AGENT {
                    user_agent = user_agent.or(Some(value));
                } else if *name == self.header {
                    match first {
                        None => first = Some(value),
                        Some(first) => conflict |= first != value,
                    }
                }
            }
            let inbound = match first {
                None => Inbound::Absent,
                Some(_) if !trusted || conflict => Inbound::Rejected,
                Some(first) => Inbound::Primary(first),
            };
            let user_agent = user_agent.filter(|_| self.user_agent);
            return (inbound, user_agent.map(HeaderValue::as_bytes));
        }
        (self.inbound(headers, trusted), self.user_agent(headers))
    }

    /// The inbound ID by hashed look-ups, name by name in `accept` order.
    fn inbound<'h>(&self, headers: &'h HeaderMap, trusted: bool) -> Inbound<'h> {
        for (i, name) in self.accept.iter().enumerate() {
            let mut values = headers.get_all(name).iter();
            let Some(first) = values.next() else {
                continue;
            };
            if !trusted {
                return Inbound::Rejected;
            }
            // Duplicate header lines must agree, or nobody knows which one is meant.
            if values.any(|other| other != first) {
                return Inbound::Rejected;
            }
            if i == 0 {
                return Inbound::Primary(first);
            }
            return match RequestId::from_bytes(first.as_bytes()) {
                Ok(id) => Inbound::Alternative(id, first.clone()),
                Err(_) => Inbound::Rejected,
            };
        }
        Inbound::Absent
    }

    /// The user agent's raw value, if recorded: checked once by the context (printable
    /// ASCII, block-wise); other UTF-8 is sanitized, anything else is not recorded.
    #[inline]
    fn user_agent<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        if self.user_agent {
            headers.get(USER_AGENT).map(HeaderValue::as_bytes)
        } else {
            None
        }
    }
}

/// Up to this many header lines, [`Config::lookup`] scans them instead of hashing names.
/// Typical requests have 5–20; a scan step is a few compares.
const SCAN_MAX: usize = 24;

#[inline(never)]
fn trusted_peer(proxies: &TrustedProxies, extensions: &http::Extensions) -> bool {
    peer_addr(extensions).is_some_and(|peer| proxies.contains(peer.ip()))
}

/// The header value for a request ID, sharing one allocation with a clone of the ID.
fn header_value(id: &RequestId) -> HeaderValue {
    // A RequestId is visible ASCII by construction, so this cannot fail; the fallback is
    // never taken but keeps the code panic-free.
    HeaderValue::from_maybe_shared(Bytes::from_owner(id.clone()))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

macro_rules! request_span {
    ($level:expr, $($fields:tt)*) => {
        if $level == Level::INFO {
            tracing::info_span!("request", $($fields)*)
        } else if $level == Level::DEBUG {
            tracing::debug_span!("request", $($fields)*)
        } else if $level == Level::TRACE {
            tracing::trace_span!("request", $($fields)*)
        } else if $level == Level::WARN {
            tracing::warn_span!("request", $($fields)*)
        } else {
            tracing::error_span!("request", $($fields)*)
        }
    };
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestIdService<S>
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let (ctx, value) = context(config, &mut req);
        let extensions = req.extensions_mut();
        extensions.insert(ctx.request_id().clone());
        extensions.insert(ctx.clone());

        // `call` runs inside the request's context and the future keeps it (moved, not
        // cloned). The span opens inside the context, so a logging layer can take the
        // request's fields from it instead of copying them (obs-core's does).
        let inner = &mut self.inner;
        let mut span = None;
        let future = ctx.scope_with(|| {
            // Checked here too so that a process without any subscriber skips the macro's
            // `log` fallback (it formats the fields into a `log` record per request).
            if config.level <= LevelFilter::current() {
                span = Some(request_span(config.level, &req));
            }
            let _entered = span.as_ref().map(Span::enter);
            inner.call(req)
        });
        ResponseFuture {
            inner: future,
            span,
            header: config.header.clone(),
            value: Some(value),
        }
    }
}

/// Chooses the request's ID and builds its context, then rewrites the request's ID header
/// when the ID is not the accepted primary value. Returns the response header value.
#[inline]
fn context<B>(config: &Config, req: &mut Request<B>) -> (RequestContext, HeaderValue) {
    // An outer RequestIdLayer (e.g. around a nested router) already chose the ID: keep
    // it, so the whole request has one ID whatever this layer's trust policy.
    if let Some(id) = req.extensions().get::<RequestId>() {
        let id = id.clone();
        let value = header_value(&id);
        let ctx = build_context(config, req, id, config.user_agent(req.headers()));
        set_id_header(config, req, &value, false);
        return (ctx, value);
    }
    let trusted = config.trusted(req.extensions());
    let (inbound, user_agent) = config.lookup(req.headers(), trusted);
    // `rewrite`: `Some(scrub)` when the request's header must be set to the chosen ID, `scrub`
    // also removing the other accepted names (their values were rejected).
    let (id, value, rewrite) = match inbound {
        // The usual inbound case: nothing to rewrite.
        Inbound::Primary(value) => match RequestId::from_bytes(value.as_bytes()) {
            Ok(id) => (id, value.clone(), None),
            Err(_) => generated(true),
        },
        Inbound::Alternative(id, value) => (id, value, Some(false)),
        Inbound::Absent => generated(false),
        Inbound::Rejected => generated(true),
    };
    // Built before the header is rewritten, so the user agent found by the scan is reused.
    let ctx = build_context(config, req, id, user_agent);
    if let Some(scrub) = rewrite {
        set_id_header(config, req, &value, scrub);
    }
    (ctx, value)
}

/// A fresh ID and its header value, to be set on the request (`scrub`: see [`context`]).
#[inline(never)]
fn generated(scrub: bool) -> (RequestId, HeaderValue, Option<bool>) {
    let id = RequestId::generate();
    let value = header_value(&id);
    (id, value, Some(scrub))
}

/// Sets the chosen ID on the request's primary header (`insert` replaces every line of it),
/// after removing the other accepted names if `scrub`.
#[inline(never)]
fn set_id_header<B>(config: &Config, req: &mut Request<B>, value: &HeaderValue, scrub: bool) {
    let headers = req.headers_mut();
    if scrub {
        for name in &config.accept[1..] {
            headers.remove(name);
        }
    }
    headers.insert(config.header.clone(), value.clone());
}

#[inline(always)]
fn build_context<B>(
    config: &Config,
    req: &Request<B>,
    id: RequestId,
    user_agent: Option<&[u8]>,
) -> RequestContext {
    RequestContext::from_parts(
        id,
        req.method().as_str(),
        crate::route::route_template(req),
        config.proxies.client_ip(req),
        user_agent,
    )
}

/// The `request` span, once a subscriber may want it. Kept out of line: the five expansions
/// of the span macro are large and cold, and inlined into `call` they spread its hot path
/// over more instruction-cache lines.
#[cold]
#[inline(never)]
fn request_span<B>(level: Level, req: &Request<B>) -> Span {
    // The context was moved into the scope; read the fields from its extension clone.
    let ctx = req.extensions().get::<RequestContext>();
    request_span!(
        level,
        request_id = ctx.map(|ctx| ctx.request_id().as_str()),
        method = req.method().as_str(),
        route = ctx.and_then(RequestContext::route),
    )
}

pin_project! {
    /// Response future of [`RequestIdService`]: polls the inner future inside the request
    /// span and task-local context, then sets the response header.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Scope<F>,
        span: Option<Span>,
        header: HeaderName,
        value: Option<HeaderValue>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.as_ref().map(Span::enter);
            ready!(this.inner.poll(cx))
        };
        let mut response = result?;
        if let Some(value) = this.value.take() {
            response.headers_mut().insert(this.header.clone(), value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use tower::{service_fn, ServiceExt};

    use super::*;

    /// What the inner service saw: the ID and context extensions and the request's ID lines.
    type Seen = (RequestId, RequestContext, Vec<Vec<u8>>);

    async fn run(layer: RequestIdLayer, req: Request<()>) -> (Response<()>, Seen) {
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        let svc = layer.layer(service_fn(move |req: Request<()>| {
            let ext = req.extensions();
            *seen2.lock().unwrap() = Some((
                ext.get::<RequestId>()
                    .cloned()
                    .expect("RequestId extension"),
                ext.get::<RequestContext>()
                    .cloned()
                    .expect("context extension"),
                req.headers()
                    .get_all(X_REQUEST_ID)
                    .iter()
                    .map(|v| v.as_bytes().to_vec())
                    .collect(),
            ));
            async { Ok::<_, Infallible>(Response::new(())) }
        }));
        let res = svc.oneshot(req).await.unwrap();
        let seen = seen.lock().unwrap().take().expect("handler ran");
        (res, seen)
    }

    /// `lookup` scans the header lines when there are few of them (the usual request) and
    /// uses hashed look-ups otherwise: both must decide the same, and as documented.
    #[tokio::test]
    async fn few_and_many_header_lines_give_the_same_outcome() {
        let ua_latin1 = HeaderValue::from_bytes(b"caf\xe9/1.0").unwrap();
        let v = HeaderValue::from_static;
        // (label, layer, headers, expected: ID echoed?, user agent recorded)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            RequestIdLayer,
            Vec<(&str, HeaderValue)>,
            bool,
            Option<&str>,
        )> = vec![
            (
                "accepted",
                RequestIdLayer::new(),
                vec![
                    ("user-agent", v("curl/8.5.0")),
                    ("x-request-id", v("req-1")),
                ],
                true,
                Some("curl/8.5.0"),
            ),
            (
                "agreeing duplicates",
                RequestIdLayer::new(),
                vec![
                    ("x-request-id", v("dup-1")),
                    ("user-agent", v("ua/1")),
                    ("x-request-id", v("dup-1")),
                ],
                true,
                Some("ua/1"),
            ),
            (
                "conflicting duplicates",
                RequestIdLayer::new(),
                vec![("x-request-id", v("dup-1")), ("x-request-id", v("dup-2"))],
                false,
                None,
            ),
            (
                "hostile",
                RequestIdLayer::new(),
                vec![("x-request-id", v("a b"))],
                false,
                None,
            ),
            ("absent", RequestIdLayer::new(), vec![], false, None),
            (
                "untrusted",
                RequestIdLayer::new().trust(Trust::Never),
                vec![("x-request-id", v("req-1"))],
                false,
                None,
            ),
            (
                "two user agents: the first is recorded",
                RequestIdLayer::new(),
                vec![
                    ("user-agent", v("first/1")),
                    ("user-agent", v("second/2")),
                    ("x-request-id", v("req-2")),
                ],
                true,
                Some("first/1"),
            ),
            (
                "user agent not UTF-8",
                RequestIdLayer::new(),
                vec![("user-agent", ua_latin1), ("x-request-id", v("req-3"))],
                true,
                None,
            ),
            (
                "user agent not recorded",
                RequestIdLayer::new().record_user_agent(false),
                vec![
                    ("user-agent", v("curl/8.5.0")),
                    ("x-request-id", v("req-4")),
                ],
                true,
                None,
            ),
        ];
        for (label, layer, headers, echoes, user_agent) in cases {
            let inbound: Vec<&[u8]> = headers
                .iter()
                .filter(|(name, _)| *name == "x-request-id")
                .map(|(_, v)| v.as_bytes())
                .collect();
            // No filler: scanned; more filler lines than SCAN_MAX: hashed look-ups.
            for filler in [0, SCAN_MAX + 1] {
                let label = format!("{label}, {filler} filler lines");
                let mut b = Request::get("/orders/7");
                for i in 0..filler {
                    b = b.header(format!("x-filler-{i}"), "1");
                }
                for (name, value) in &headers {
                    b = b.header(*name, value.clone());
                }
                let (res, (ext_id, ctx, request_lines)) =
                    run(layer.clone(), b.body(()).unwrap()).await;
                let response: Vec<_> = res.headers().get_all(X_REQUEST_ID).iter().collect();
                assert_eq!(response.len(), 1, "{label}");
                let id = RequestId::from_bytes(response[0].as_bytes()).unwrap();
                assert_eq!(ext_id, id, "{label}");
                assert_eq!(ctx.request_id(), &id, "{label}");
                let echoed = inbound.first().is_some_and(|v| *v == id.as_bytes());
                assert_eq!(echoed, echoes, "{label}");
                if !echoed {
                    assert_eq!(id.as_str().len(), 36, "{label}: a fresh UUID");
                }
                // An accepted value is left as it came (agreeing duplicate lines too); a
                // fresh ID replaces every line.
                let lines: Vec<Vec<u8>> = if echoed {
                    inbound.iter().map(|v| v.to_vec()).collect()
                } else {
                    vec![id.as_bytes().to_vec()]
                };
                assert_eq!(request_lines, lines, "{label}");
                assert_eq!(ctx.user_agent(), user_agent, "{label}");
                assert_eq!(ctx.method(), Some("GET"), "{label}");
            }
        }
    }
}
