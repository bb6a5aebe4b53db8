//! [`RateLimitLayer`]: per-client (or per-anything) rate limiting with the `obs-ratelimit`
//! engine, answering `429 Too Many Requests` with `Retry-After`.
//!
//! - **Key**: the client IP ([`RateLimitLayer::per_client_ip`], honouring `X-Forwarded-For` /
//!   `Forwarded` only from [`TrustedProxies`]) or any function of the request head
//!   ([`RateLimitLayer::new`]). Requests without a key (no peer address known) pass unlimited,
//!   and a warning is logged once per layer.
//! - **Responses**: a denial is a `429` with `Retry-After` (whole seconds, rounded **up**, at
//!   least 1), `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the
//!   full budget is back, rounded up) and an empty body; the [`RateLimited`] response extension
//!   says which limiter denied. Admitted responses carry the `X-RateLimit-*` headers too.
//! - **Stacking** (per-IP + per-route, or a per-repository check in a handler): limiters run in
//!   order, outermost first. When an inner limiter (or a handler, see [`too_many_requests`])
//!   denies, each outer layer sees the [`RateLimited`] extension on the response and
//!   **refunds** its admission before passing the response on, so a denial by one limiter never
//!   consumes another's budget. With several layers the `X-RateLimit-*` headers describe the
//!   most restrictive limiter (the lowest `remaining`).
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use obs_ratelimit::Limiter;
//! use obs_tower::client_ip::TrustedProxies;
//! use obs_tower::ratelimit::RateLimitLayer;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let limiter = Limiter::builder("ip")
//!     .limit(1)
//!     .window(Duration::from_secs(60))
//!     .build_in_memory()
//!     .unwrap();
//! let svc = RateLimitLayer::per_client_ip(limiter, TrustedProxies::none())
//!     .layer(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//! let req = || {
//!     let mut r = Request::new(String::new());
//!     r.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 1], 4711)));
//!     r
//! };
//! let ok = svc.clone().oneshot(req()).await.unwrap();
//! assert_eq!(ok.headers()["x-ratelimit-remaining"], "0");
//! let denied = svc.clone().oneshot(req()).await.unwrap();
//! assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(denied.headers()["retry-after"], "60");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use obs_ratelimit::{Decision, Limiter};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::client_ip::TrustedProxies;

/// `X-RateLimit-Limit`
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset` (seconds until the full budget is available again)
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Response extension on a rate-limit rejection: which limiter denied, and its decision.
///
/// Outer [`RateLimitLayer`]s refund their admission when they see it.
#[derive(Debug, Clone)]
pub struct RateLimited {
    /// The denying limiter's name.
    pub limiter: String,
    /// The denial.
    pub decision: Decision,
}

type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Applies a [`Limiter`] to every request; see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Limiter,
    key: KeyFn,
    warned: Arc<AtomicBool>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Limits by `key(request head)`; `None` means "do not limit this request".
    ///
    /// For example a per-route limiter: `|p| Some(p.uri.path().to_owned())` (prefer a route
    /// template over the raw path so an attacker cannot mint fresh keys).
    pub fn new<F>(limiter: Limiter, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self {
            limiter,
            key: Arc::new(key),
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Limits per client IP address (see [`TrustedProxies::client_ip`]).
    pub fn per_client_ip(limiter: Limiter, proxies: TrustedProxies) -> Self {
        Self::new(limiter, move |p| {
            proxies
                .client_ip_from(&p.headers, &p.extensions)
                .map(|ip| ip.to_string())
        })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Request<ReqBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The readied service handles this request (after the decision); a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let key = (self.layer.key)(&parts);
        let req = Request::from_parts(parts, body);
        let Some(key) = key else {
            if !self.layer.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limiter = self.layer.limiter.name(),
                    "rate limit key unavailable (no peer address? serve with ConnectInfo); such requests are not limited"
                );
            }
            let mut inner = inner;
            return ResponseFuture {
                state: State::Calling {
                    fut: inner.call(req),
                },
                ctx: None,
            };
        };
        let limiter = self.layer.limiter.clone();
        let check_key = key.clone();
        let check: BoxFut<Decision> = Box::pin(async move { limiter.check(&check_key).await });
        ResponseFuture {
            state: State::Checking {
                check,
                req: Some(req),
                inner,
            },
            ctx: Some(Ctx {
                limiter: self.layer.limiter.clone(),
                key,
                decision: None,
            }),
        }
    }
}

struct Ctx {
    limiter: Limiter,
    key: String,
    decision: Option<Decision>,
}

pin_project! {
    /// Response future of [`RateLimit`].
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
        ctx: Option<Ctx>,
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        Checking { check: BoxFut<Decision>, req: Option<Req>, inner: S },
        Calling { #[pin] fut: S::Future },
        Refunding { refund: BoxFut<()>, response: Option<S::Response> },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, Request<ReqBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, req, inner } => {
                    let decision = ready!(check.as_mut().poll(cx));
                    let ctx = this.ctx.as_mut().expect("a checked request has a context");
                    if !decision.allowed {
                        let response = too_many_requests(ctx.limiter.name(), &decision);
                        return Poll::Ready(Ok(response));
                    }
                    let req = req.take().expect("polled after completion");
                    let fut = inner.call(req);
                    ctx.decision = Some(decision);
                    this.state.set(State::Calling { fut });
                }
                StateProj::Calling { fut } => {
                    let mut response = ready!(fut.poll(cx))?;
                    let Some(ctx) = this.ctx.as_mut() else {
                        return Poll::Ready(Ok(response));
                    };
                    let decision = ctx
                        .decision
                        .take()
                        .expect("an admitted request has a decision");
                    let rejected_inside = response.extensions().get::<RateLimited>().is_some();
                    if !rejected_inside {
                        set_headers_if_more_restrictive(response.headers_mut(), &decision);
                        return Poll::Ready(Ok(response));
                    }
                    let limiter = ctx.limiter.clone();
                    let key = std::mem::take(&mut ctx.key);
                    let refund: BoxFut<()> =
                        Box::pin(async move { limiter.refund(&key, &decision).await });
                    this.state.set(State::Refunding {
                        refund,
                        response: Some(response),
                    });
                }
                StateProj::Refunding { refund, response } => {
                    ready!(refund.as_mut().poll(cx));
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            }
        }
    }
}

/// A `429 Too Many Requests` for `decision` (empty body): `Retry-After`, the `X-RateLimit-*`
/// headers and the [`RateLimited`] extension, so outer [`RateLimitLayer`]s refund their
/// admission. Use it for limits checked in handlers (e.g. per repository).
pub fn too_many_requests<B: Default>(limiter: &str, decision: &Decision) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(decision.retry_after_secs()));
    set_headers(headers, decision);
    response.extensions_mut().insert(RateLimited {
        limiter: limiter.to_owned(),
        decision: decision.clone(),
    });
    response
}

/// Sets `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` from `decision`.
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        X_RATELIMIT_RESET,
        HeaderValue::from(decision.reset_after_secs()),
    );
}

fn set_headers_if_more_restrictive(headers: &mut HeaderMap, decision: &Decision) {
    let existing = headers
        .get(&X_RATELIMIT_REMAINING)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if existing.is_none_or(|r| u64::from(decision.remaining) < r) {
        set_headers(headers, decision);
    }
}
