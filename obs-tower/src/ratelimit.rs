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
//! - **Cost**: with an in-memory limiter the decision is made in `call` (no boxed future, no
//!   clone of the inner service), the client-IP key is formatted on the stack, and header
//!   values below 1000 come from a static table; a Redis check is one boxed future.
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
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use http::header::{Entry, HeaderName, HeaderValue, RETRY_AFTER};
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

/// A user key function of the request head.
type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// Where the limiter key of a request comes from.
enum KeySource {
    /// The client IP, formatted on the stack (no allocation).
    ClientIp(TrustedProxies),
    /// A user function of the request head.
    Custom(Box<KeyFn>),
}

/// Everything a layer and its services share (one `Arc`, cloned with every per-request
/// service clone).
struct Shared {
    limiter: Limiter,
    key: KeySource,
    warned: AtomicBool,
    /// Every check completes synchronously (the in-memory backend): decide in `call`, with no
    /// boxed future and no clone of the inner service. A Redis check may pend and must not be
    /// dropped unpolled (it may hold the circuit breaker's probe slot), so it is boxed.
    sync: bool,
    /// The limiter's limit and its `X-RateLimit-Limit` value, built once.
    limit: u32,
    limit_value: HeaderValue,
}

/// Applies a [`Limiter`] to every request; see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
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
        Self::with_key(limiter, KeySource::Custom(Box::new(key)))
    }

    /// Limits per client IP address (see [`TrustedProxies::client_ip`]); the key is the
    /// address as `Display` writes it (`192.0.2.1`, `2001:db8::1`).
    pub fn per_client_ip(limiter: Limiter, proxies: TrustedProxies) -> Self {
        Self::with_key(limiter, KeySource::ClientIp(proxies))
    }

    fn with_key(limiter: Limiter, key: KeySource) -> Self {
        Self {
            shared: Arc::new(Shared {
                sync: limiter.redis_key("").is_none(),
                limit: limiter.limit(),
                limit_value: number_value(u64::from(limiter.limit())),
                limiter,
                key,
                warned: AtomicBool::new(false),
            }),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service produced by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limiter", &self.shared.limiter)
            .finish()
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A request's limiter key: a client IP formatted on the stack, or a user key.
#[derive(Clone)]
enum Key {
    Ip(IpKey),
    Owned(String),
}

impl Key {
    fn as_str(&self) -> &str {
        match self {
            Key::Ip(k) => k.as_str(),
            Key::Owned(s) => s,
        }
    }
}

/// A user key function sees the request head as `Parts`.
fn custom_key<B>(f: &KeyFn, req: Request<B>) -> (Request<B>, Option<Key>) {
    let (parts, body) = req.into_parts();
    let key = f(&parts).map(Key::Owned);
    (Request::from_parts(parts, body), key)
}

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
        let shared = &*self.shared;
        let (req, key) = match &shared.key {
            KeySource::ClientIp(proxies) => {
                let ip = proxies.client_ip_from(req.headers(), req.extensions());
                (req, ip.map(|ip| Key::Ip(IpKey::new(ip))))
            }
            KeySource::Custom(f) => custom_key(&**f, req),
        };
        let Some(key) = key else {
            if !shared.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limiter = shared.limiter.name(),
                    "rate limit key unavailable (no peer address? serve with ConnectInfo); such requests are not limited"
                );
            }
            return ResponseFuture {
                state: State::Calling {
                    fut: self.inner.call(req),
                },
                ctx: None,
            };
        };
        if shared.sync {
            // In-memory checks never pend; should one ever, it takes the boxed path below.
            let decided = shared.limiter.check(key.as_str()).now_or_never().ok();
            if let Some(decision) = decided {
                if !decision.allowed {
                    // As on the boxed path, the readied service is dropped unused (releasing
                    // whatever readiness reserved) and a fresh clone takes its place.
                    let clone = self.inner.clone();
                    drop(std::mem::replace(&mut self.inner, clone));
                    return ResponseFuture {
                        state: State::Denied {
                            response: Some(too_many_requests(shared.limiter.name(), &decision)),
                        },
                        ctx: None,
                    };
                }
                return ResponseFuture {
                    state: State::Calling {
                        fut: self.inner.call(req),
                    },
                    ctx: Some(Ctx {
                        shared: Arc::clone(&self.shared),
                        key,
                        decision: Some(decision),
                    }),
                };
            }
        }
        // The readied service handles this request (after the decision); a clone takes its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let check_shared = Arc::clone(&self.shared);
        let check_key = key.clone();
        let check: BoxFut<Decision> =
            Box::pin(async move { check_shared.limiter.check(check_key.as_str()).await });
        ResponseFuture {
            state: State::Checking {
                check,
                req: Some(req),
                inner,
            },
            ctx: Some(Ctx {
                shared: Arc::clone(&self.shared),
                key,
                decision: None,
            }),
        }
    }
}

struct Ctx {
    shared: Arc<Shared>,
    key: Key,
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
        Denied { response: Option<S::Response> },
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
                        let response = too_many_requests(ctx.shared.limiter.name(), &decision);
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
                        set_headers_if_more_restrictive(
                            response.headers_mut(),
                            &decision,
                            ctx.shared.limit,
                            &ctx.shared.limit_value,
                        );
                        return Poll::Ready(Ok(response));
                    }
                    let shared = Arc::clone(&ctx.shared);
                    let key = ctx.key.clone();
                    let refund: BoxFut<()> =
                        Box::pin(
                            async move { shared.limiter.refund(key.as_str(), &decision).await },
                        );
                    this.state.set(State::Refunding {
                        refund,
                        response: Some(response),
                    });
                }
                StateProj::Refunding { refund, response } => {
                    ready!(refund.as_mut().poll(cx));
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Denied { response } => {
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
    headers.insert(RETRY_AFTER, number_value(decision.retry_after_secs()));
    set_headers(headers, decision);
    response.extensions_mut().insert(RateLimited {
        limiter: limiter.to_owned(),
        decision: decision.clone(),
    });
    response
}

/// Sets `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` from `decision`.
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    insert_headers(headers, decision, number_value(u64::from(decision.limit)));
}

fn insert_headers(headers: &mut HeaderMap, decision: &Decision, limit: HeaderValue) {
    headers.insert(X_RATELIMIT_LIMIT, limit);
    headers.insert(
        X_RATELIMIT_REMAINING,
        number_value(u64::from(decision.remaining)),
    );
    headers.insert(X_RATELIMIT_RESET, number_value(decision.reset_after_secs()));
}

/// `limit` is the layer's limiter's limit, `limit_value` its pre-built header value.
///
/// One lookup of `X-RateLimit-Remaining` both reads an inner layer's value and places ours.
fn set_headers_if_more_restrictive(
    headers: &mut HeaderMap,
    decision: &Decision,
    limit: u32,
    limit_value: &HeaderValue,
) {
    let remaining = number_value(u64::from(decision.remaining));
    match headers.entry(X_RATELIMIT_REMAINING) {
        Entry::Occupied(mut slot) => {
            let existing = slot.get().to_str().ok().and_then(|v| v.parse::<u64>().ok());
            if existing.is_some_and(|r| u64::from(decision.remaining) >= r) {
                return;
            }
            slot.insert(remaining);
        }
        Entry::Vacant(slot) => {
            slot.insert(remaining);
        }
    }
    let limit = if decision.limit == limit {
        limit_value.clone()
    } else {
        number_value(u64::from(decision.limit))
    };
    headers.insert(X_RATELIMIT_LIMIT, limit);
    headers.insert(X_RATELIMIT_RESET, number_value(decision.reset_after_secs()));
}

/// Header values for `0..SMALL` share static storage: cloning one copies no bytes and
/// allocates nothing (`HeaderValue::from(n)` allocates for every value).
const SMALL: usize = 1000;
const SMALL_DIGITS_LEN: usize = 10 + 90 * 2 + 900 * 3;

/// `0123…9101112…999`: the decimal digits of `0..SMALL`, concatenated.
static SMALL_DIGITS: [u8; SMALL_DIGITS_LEN] = {
    let mut out = [0u8; SMALL_DIGITS_LEN];
    let (mut n, mut i) = (0, 0);
    while n < SMALL {
        if n >= 100 {
            out[i] = b'0' + (n / 100) as u8;
            i += 1;
        }
        if n >= 10 {
            out[i] = b'0' + (n / 10 % 10) as u8;
            i += 1;
        }
        out[i] = b'0' + (n % 10) as u8;
        i += 1;
        n += 1;
    }
    out
};

/// `n` in decimal as a header value.
fn number_value(n: u64) -> HeaderValue {
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    match usize::try_from(n) {
        Ok(small) if small < SMALL => TABLE.get_or_init(|| {
            let mut table = Vec::with_capacity(SMALL);
            let mut at = 0;
            for n in 0..SMALL {
                let len = if n >= 100 {
                    3
                } else if n >= 10 {
                    2
                } else {
                    1
                };
                let digits = std::str::from_utf8(&SMALL_DIGITS[at..at + len])
                    .expect("the table holds ASCII digits");
                table.push(HeaderValue::from_static(digits));
                at += len;
            }
            table
        })[small]
            .clone(),
        _ => HeaderValue::from(n),
    }
}

/// An IP address as `Display` writes it, formatted on the stack: the per-client-IP key
/// without a heap allocation (and, for IPv4, without `fmt` machinery).
#[derive(Clone, Copy)]
struct IpKey {
    buf: [u8; IpKey::CAP],
    len: u8,
}

impl IpKey {
    /// `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff` (39) or an IPv4-mapped form (≤ 22).
    const CAP: usize = 39;

    fn new(ip: IpAddr) -> Self {
        let mut key = IpKey {
            buf: [0; Self::CAP],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => key.push_v4(v4),
            IpAddr::V6(v6) => {
                std::fmt::Write::write_fmt(&mut key, format_args!("{v6}"))
                    .expect("an IPv6 address fits in 39 bytes");
            }
        }
        key
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).expect("an IP key is ASCII")
    }

    fn push(&mut self, b: u8) {
        self.buf[usize::from(self.len)] = b;
        self.len += 1;
    }

    fn push_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            self.push(b);
        }
    }

    fn push_dec(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' + n / 100);
        }
        if n >= 10 {
            self.push(b'0' + n / 10 % 10);
        }
        self.push(b'0' + n % 10);
    }

    fn push_v4(&mut self, ip: Ipv4Addr) {
        let [a, b, c, d] = ip.octets();
        self.push_dec(a);
        for octet in [b, c, d] {
            self.push(b'.');
            self.push_dec(octet);
        }
    }
}

/// IPv6 keys take `Display` itself (formatted on the stack by std, no allocation): rarer than
/// IPv4 on most services, and RFC 5952's zero-run compression is not worth a second copy.
impl std::fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if usize::from(self.len) + s.len() > Self::CAP {
            return Err(std::fmt::Error);
        }
        self.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn ip_keys_match_display() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.0.255",
            "127.0.0.1",
            "192.0.2.1",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "0:0:1:0:0:1:0:0",
            "1:0:1:0:1:0:1:0",
            "fe80::1:2",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.0.2.1",
            "::ffff:0.0.0.0",
            "::1.2.3.4",
            "::ffff:0:1.2.3.4",
            "64:ff9b::192.0.2.33",
            "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
            "1:20:300:4000::",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        // Every zero/non-zero pattern of the eight groups, with varied digit counts.
        for mask in 0u32..256 {
            let mut segments = [0u16; 8];
            for (i, s) in segments.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *s = [0x1, 0x2a, 0x3bc, 0xdef0][i % 4] ^ (mask as u16);
                }
            }
            ips.push(IpAddr::V6(Ipv6Addr::from(segments)));
        }
        // A deterministic spread of IPv4 addresses.
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ips.push(IpAddr::V4(Ipv4Addr::from(x)));
            ips.push(IpAddr::V6(Ipv4Addr::from(x).to_ipv6_mapped()));
        }
        for ip in ips {
            assert_eq!(IpKey::new(ip).as_str(), ip.to_string(), "{ip:?}");
        }
    }

    #[test]
    fn number_values_match_from() {
        let mut numbers: Vec<u64> = (0..1100).collect();
        numbers.extend([9_999, 65_536, u64::from(u32::MAX), u64::MAX]);
        for n in numbers {
            assert_eq!(number_value(n), HeaderValue::from(n), "{n}");
            assert_eq!(number_value(n).to_str().unwrap(), n.to_string(), "{n}");
        }
    }
}
