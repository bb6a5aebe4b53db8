//! [`RequestContext`]: what is known about the request being served, reachable from any code
//! running inside it.
//!
//! The HTTP edge (`obs-tower`'s `RequestIdLayer`) builds one context per request and runs the
//! rest of the request inside [`RequestContext::scope`]. Code that does not have the request
//! in hand — a Sentry capture deep in a repository layer, a telemetry call, an outgoing HTTP
//! client — reads it back with [`RequestContext::current`].
//!
//! A context is reference counted: cloning it is one atomic increment, and every clone sees the
//! same data. The user id can be set once, later than construction (authentication usually
//! runs after the request-id middleware), and is then visible through every clone.
//!
//! ```
//! use obs_core::{RequestContext, RequestId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let ctx = RequestContext::builder(RequestId::parse("req-789").unwrap())
//!     .method("POST")
//!     .route("/api/ingestion")
//!     .client_ip("203.0.113.7".parse().unwrap())
//!     .build();
//!
//! ctx.scope(async {
//!     // e.g. in an auth middleware:
//!     RequestContext::with_current(|ctx| ctx.unwrap().set_user_id("user-123"));
//!     // ...and later, anywhere:
//!     let ctx = RequestContext::current().unwrap();
//!     assert_eq!(ctx.user_id(), Some("user-123"));
//!     assert_eq!(ctx.route(), Some("/api/ingestion"));
//! })
//! .await;
//! # }
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::RequestId;

/// Longest user agent kept, in bytes; longer values are cut at a character boundary.
pub const MAX_USER_AGENT_LEN: usize = 256;
/// Longest user id kept, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;

thread_local! {
    /// The context of the request whose code runs on this thread right now: set while a
    /// [`Scope`] future is polled or a [`RequestContext::sync_scope`] closure runs, and put
    /// back (with whatever was current before) when that poll or closure returns or unwinds.
    /// Like a tokio `task_local!` (which this replaces): swapped in and out around each poll,
    /// so tasks never see each other's context, whatever thread polls them.
    static CURRENT: RefCell<Option<RequestContext>> = const { RefCell::new(None) };
}

/// While alive, the context taken from `slot` is the current one; dropping it (also during a
/// panic's unwinding) puts the context back into `slot` and restores the previous current
/// context. Never handed to user code, so it cannot be leaked with `mem::forget` and scopes
/// always unwind in order.
struct Entered<'a> {
    slot: &'a mut Option<RequestContext>,
    /// False if the thread-local was unavailable (thread exiting) or borrowed: nothing to undo.
    swapped: bool,
}

impl<'a> Entered<'a> {
    /// Makes `slot`'s context current. Panics if called inside a
    /// [`RequestContext::with_current`] closure (the current context is borrowed there), as
    /// tokio's task-locals do; during thread-local destruction it runs without a context.
    #[inline]
    fn enter(slot: &'a mut Option<RequestContext>) -> Self {
        match Self::try_enter(slot) {
            Ok(entered) => entered,
            Err(_) => {
                panic!("cannot enter a RequestContext scope inside RequestContext::with_current")
            }
        }
    }

    /// Like [`enter`](Self::enter), but gives the slot back instead of panicking.
    #[inline]
    fn try_enter(
        slot: &'a mut Option<RequestContext>,
    ) -> Result<Self, &'a mut Option<RequestContext>> {
        let swapped = CURRENT.try_with(|current| match current.try_borrow_mut() {
            Ok(mut current) => {
                std::mem::swap(&mut *current, slot);
                Ok(())
            }
            Err(_) => Err(()),
        });
        match swapped {
            Ok(Ok(())) => Ok(Entered {
                slot,
                swapped: true,
            }),
            Ok(Err(())) => Err(slot),
            // The thread is exiting: no current context to set.
            Err(_) => Ok(Entered {
                slot,
                swapped: false,
            }),
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.swapped {
            // Cannot fail: the thread-local was alive at `enter` and still is (we are still on
            // this thread), and no borrow of it outlives user code (nested scopes and
            // `with_current` borrows end before this guard drops).
            let _ = CURRENT.try_with(|current| {
                if let Ok(mut current) = current.try_borrow_mut() {
                    std::mem::swap(&mut *current, self.slot);
                }
            });
        }
    }
}

pin_project! {
    /// A future that runs with a [`RequestContext`] as the current one: made by
    /// [`RequestContext::scope`] and [`RequestContext::scope_with`].
    ///
    /// The context is current during every poll of the inner future, and while the inner
    /// future is dropped (on completion or when the `Scope` is dropped early).
    pub struct Scope<F> {
        ctx: Option<RequestContext>,
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Scope<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if std::mem::needs_drop::<F>() && future.is_some() {
                // Drop the unfinished future inside its scope if possible (not inside a
                // `with_current` closure: then it is dropped without).
                let _entered = Entered::try_enter(this.ctx);
                future.set(None);
            }
        }
    }
}

impl<F> Scope<F> {
    /// The context this future runs with.
    pub fn context(&self) -> Option<&RequestContext> {
        self.ctx.as_ref()
    }
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        let _entered = Entered::enter(this.ctx);
        let Some(inner) = future.as_mut().as_pin_mut() else {
            panic!("`Scope` polled after completion");
        };
        let poll = inner.poll(cx);
        if poll.is_ready() {
            // Dropped while the context is still current, like an unfinished one.
            future.set(None);
        }
        poll
    }
}

impl<F> fmt::Debug for Scope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("ctx", &self.ctx)
            .field("done", &self.future.is_none())
            .finish()
    }
}

/// What is known about the request being served. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct RequestContext {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    request_id: RequestId,
    method: Option<Method>,
    route: Option<SmallStr<ROUTE_INLINE>>,
    client_ip: Option<IpAddr>,
    user_agent: Option<SmallStr<USER_AGENT_INLINE>>,
    user_id: OnceLock<Box<str>>,
    trace: OnceLock<TraceIds>,
}

/// W3C trace-context identifiers of the request's server span (set by the tracing
/// integration, e.g. obs-tower's OpenTelemetry support), so logs, error reports and metric
/// exemplars of the request can name its trace without depending on a tracing SDK.
///
/// `Display` of [`trace_id`](Self::trace_id) / [`span_id`](Self::span_id) gives the lowercase
/// hex form used in `traceparent` (32 and 16 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The 16-byte trace id (all zero is invalid in W3C trace context).
    pub trace_id: TraceId,
    /// The 8-byte id of the request's server span.
    pub span_id: SpanId,
}

/// A 16-byte W3C trace id; `Display` is 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte W3C span id; `Display` is 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    // Only ASCII hex digits were written.
    f.write_str(std::str::from_utf8(&buf[..2 * bytes.len()]).unwrap_or_default())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Route templates up to this many bytes live inside the context's one allocation.
const ROUTE_INLINE: usize = 64;
/// User agents up to this many bytes (most browsers' and clients') live inline too.
const USER_AGENT_INLINE: usize = 160;

/// A string stored inline up to `N` (< 256) bytes, on the heap above: building a context
/// per request then costs one allocation (the `Arc`) instead of one per string field.
#[derive(Clone)]
enum SmallStr<const N: usize> {
    Inline { len: u8, buf: [u8; N] },
    Heap(Box<str>),
}

impl<const N: usize> SmallStr<N> {
    /// Stores `bytes` (UTF-8 checked by the caller: a `&str`'s, or printable ASCII) into
    /// `slot`, writing an inline value in place: the slot lives in the context's allocation,
    /// so this skips building the value on the stack and copying it over.
    #[inline]
    fn set(slot: &mut Option<Self>, bytes: &[u8]) {
        if bytes.len() <= N && N < 256 {
            if let SmallStr::Inline { len, buf } = slot.insert(SmallStr::Inline {
                len: 0,
                buf: [0; N],
            }) {
                buf[..bytes.len()].copy_from_slice(bytes);
                *len = bytes.len() as u8;
            }
        } else {
            // Valid UTF-8, so this borrows and never replaces anything.
            *slot = Some(SmallStr::Heap(String::from_utf8_lossy(bytes).into()));
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so always valid UTF-8; reads are rare (logs, reports).
            SmallStr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            SmallStr::Heap(s) => s,
        }
    }
}

/// HTTP method names: the standard ones are static, anything else is kept as given.
#[derive(Clone)]
enum Method {
    Static(&'static str),
    Other(Box<str>),
}

impl Method {
    fn new(name: &str) -> Self {
        const STANDARD: [&str; 9] = [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ];
        match STANDARD.iter().find(|m| **m == name) {
            Some(m) => Method::Static(m),
            None => Method::Other(sanitize(name, 32).into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Method::Static(s) => s,
            Method::Other(s) => s,
        }
    }
}

impl RequestContext {
    /// Starts a context for the given request ID.
    #[inline]
    pub fn builder(request_id: RequestId) -> RequestContextBuilder {
        RequestContextBuilder {
            inner: Arc::new(Inner {
                request_id,
                method: None,
                route: None,
                client_ip: None,
                user_agent: None,
                user_id: OnceLock::new(),
                trace: OnceLock::new(),
            }),
        }
    }

    /// Builds a context in one step from what an HTTP edge knows about a request — what
    /// obs-tower's `RequestIdLayer` does per request. The same as
    /// `builder(request_id).method(method)` followed by
    /// [`route`](RequestContextBuilder::route), [`client_ip`](RequestContextBuilder::client_ip)
    /// and [`user_agent_bytes`](RequestContextBuilder::user_agent_bytes) for each `Some`
    /// (the user agent is the raw header value: sanitized and bounded, not recorded if it is
    /// not UTF-8), but cheaper: the context is assembled once and moved into its allocation,
    /// with no reference-count checks per field.
    ///
    /// ```
    /// use obs_core::{RequestContext, RequestId};
    ///
    /// let ctx = RequestContext::from_parts(
    ///     RequestId::parse("req-1").unwrap(),
    ///     "GET",
    ///     Some("/users/{id}"),
    ///     None,
    ///     Some(b"curl/8.5.0"),
    /// );
    /// assert_eq!(ctx.method(), Some("GET"));
    /// assert_eq!(ctx.route(), Some("/users/{id}"));
    /// assert_eq!(ctx.user_agent(), Some("curl/8.5.0"));
    /// ```
    #[inline]
    pub fn from_parts(
        request_id: RequestId,
        method: &str,
        route: Option<&str>,
        client_ip: Option<IpAddr>,
        user_agent: Option<&[u8]>,
    ) -> Self {
        // Assembled in one local, the strings written in place (built separately, each
        // inline value was copied several times), and moved into the allocation once:
        // `Arc::new` moved the ~400 bytes twice (into its header-prefixed value, then to the
        // heap); `new_cyclic` allocates first and writes the closure's result there.
        let inner = Arc::new_cyclic(|_| {
            let mut inner = Inner {
                request_id,
                method: Some(Method::new(method)),
                route: None,
                client_ip,
                user_agent: None,
                user_id: OnceLock::new(),
                trace: OnceLock::new(),
            };
            if let Some(route) = route {
                SmallStr::set(&mut inner.route, route.as_bytes());
            }
            if let Some(user_agent) = user_agent {
                set_user_agent_bytes(&mut inner.user_agent, user_agent);
            }
            inner
        });
        RequestContext { inner }
    }

    /// A context holding only a request ID.
    pub fn new(request_id: RequestId) -> Self {
        Self::builder(request_id).build()
    }

    /// The request's ID.
    pub fn request_id(&self) -> &RequestId {
        &self.inner.request_id
    }

    /// The HTTP method, if known.
    pub fn method(&self) -> Option<&str> {
        self.inner.method.as_ref().map(Method::as_str)
    }

    /// The matched route template (`/users/{id}`), never the raw path; `None` if unmatched.
    pub fn route(&self) -> Option<&str> {
        self.inner.route.as_ref().map(SmallStr::as_str)
    }

    /// The client's IP address as resolved by the edge (trusted proxies honoured there).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.inner.client_ip
    }

    /// The client's user agent, control characters removed, at most [`MAX_USER_AGENT_LEN`] bytes.
    pub fn user_agent(&self) -> Option<&str> {
        self.inner.user_agent.as_ref().map(SmallStr::as_str)
    }

    /// The authenticated user's id, once set with [`set_user_id`](Self::set_user_id).
    pub fn user_id(&self) -> Option<&str> {
        self.inner.user_id.get().map(|s| &**s)
    }

    /// Sets the user id for this request, visible through every clone of this context.
    ///
    /// The first call wins (a request has one authenticated user); returns `false` if a user
    /// id was already set. Control characters are removed and the id is cut at
    /// [`MAX_USER_ID_LEN`] bytes.
    pub fn set_user_id(&self, user_id: impl AsRef<str>) -> bool {
        self.inner
            .user_id
            .set(sanitize(user_id.as_ref(), MAX_USER_ID_LEN).into())
            .is_ok()
    }

    /// The request's trace identifiers, once the tracing integration has set them.
    pub fn trace_ids(&self) -> Option<&TraceIds> {
        self.inner.trace.get()
    }

    /// Records the request's trace identifiers (first call wins; returns `false` if they were
    /// already set). Called by the tracing integration when the server span starts.
    pub fn set_trace_ids(&self, ids: TraceIds) -> bool {
        self.inner.trace.set(ids).is_ok()
    }

    /// The context of the request the current task is serving, if any.
    ///
    /// Clones the context (one atomic increment); use [`with_current`](Self::with_current) to
    /// only look.
    pub fn current() -> Option<RequestContext> {
        Self::with_current(|ctx| ctx.cloned())
    }

    /// Runs `f` with a reference to the current context (or `None` outside a request).
    ///
    /// `f` must not enter another scope ([`scope`](Self::scope) futures polled or
    /// [`sync_scope`](Self::sync_scope) called inside `f` panic), as with tokio's task-locals.
    #[inline]
    pub fn with_current<R>(f: impl FnOnce(Option<&RequestContext>) -> R) -> R {
        let mut f = Some(f);
        let result = CURRENT.try_with(|current| {
            // Only `Entered` borrows mutably, and never while user code runs.
            let current = current.try_borrow().ok();
            (f.take().expect("called once"))(current.as_deref().and_then(Option::as_ref))
        });
        match result {
            Ok(r) => r,
            // The thread is exiting (thread-local destroyed): no request.
            Err(_) => (f.take().expect("not called yet"))(None),
        }
    }

    /// The current request's ID, if inside a request.
    pub fn current_request_id() -> Option<RequestId> {
        Self::with_current(|ctx| ctx.map(|ctx| ctx.request_id().clone()))
    }

    /// Runs `fut` with this context as the current one (for `fut` and everything it awaits).
    ///
    /// The context is current while `fut` is polled (and dropped), on whatever thread polls
    /// it. Work spawned onto other tasks does not inherit it; pass the context along or call
    /// `scope` again there. Scopes nest: an inner scope's context is current inside it, the
    /// outer one again after.
    pub fn scope<F: Future>(self, fut: F) -> Scope<F> {
        Scope {
            ctx: Some(self),
            future: Some(fut),
        }
    }

    /// Runs `make` with this context as the current one, then returns the future it made,
    /// scoped to the same context — what a middleware does around `Service::call`, without
    /// cloning the context for the two scopes.
    ///
    /// ```
    /// use obs_core::{RequestContext, RequestId};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ctx = RequestContext::new(RequestId::parse("req-1").unwrap());
    /// let fut = ctx.scope_with(|| {
    ///     // e.g. `inner.call(request)`: runs with the context current...
    ///     assert_eq!(RequestContext::current_request_id().unwrap(), "req-1");
    ///     // ...and so does the future it returns, whenever it is polled.
    ///     async { RequestContext::current_request_id() }
    /// });
    /// assert_eq!(fut.await.unwrap(), "req-1");
    /// # }
    /// ```
    #[inline]
    pub fn scope_with<F: Future>(self, make: impl FnOnce() -> F) -> Scope<F> {
        let mut ctx = Some(self);
        let future = {
            let _entered = Entered::enter(&mut ctx);
            make()
        };
        Scope {
            ctx,
            future: Some(future),
        }
    }

    /// Runs the closure `f` with this context as the current one.
    #[inline]
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let mut ctx = Some(self);
        let _entered = Entered::enter(&mut ctx);
        f()
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id().as_str())
            .field("method", &self.method())
            .field("route", &self.route())
            .field("client_ip", &self.client_ip())
            .field("user_agent", &self.user_agent())
            .field("user_id", &self.user_id())
            .field("trace_ids", &self.trace_ids())
            .finish()
    }
}

/// Builds a [`RequestContext`]; see [`RequestContext::builder`].
pub struct RequestContextBuilder {
    // The context is built in its final allocation: the builder moves a pointer per method
    // call, not the ~400-byte context (those copies were a third of the layer's cost).
    inner: Arc<Inner>,
}

impl RequestContextBuilder {
    /// The context being built; the builder holds the only reference until `build`.
    #[inline]
    fn inner(&mut self) -> &mut Inner {
        // Never shared before `build`, so this never clones.
        Arc::make_mut(&mut self.inner)
    }

    /// Sets the HTTP method.
    #[inline]
    pub fn method(mut self, method: &str) -> Self {
        self.inner().method = Some(Method::new(method));
        self
    }

    /// Sets the matched route template. Pass the template (`/users/{id}`), never the raw path:
    /// raw paths carry ids and personal data and explode metric cardinality.
    #[inline]
    pub fn route(mut self, route: &str) -> Self {
        SmallStr::set(&mut self.inner().route, route.as_bytes());
        self
    }

    /// Sets the client IP address.
    #[inline]
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.inner().client_ip = Some(ip);
        self
    }

    /// Sets the user agent (control characters removed, cut at [`MAX_USER_AGENT_LEN`] bytes).
    #[inline]
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        let user_agent = sanitize(user_agent, MAX_USER_AGENT_LEN);
        SmallStr::set(&mut self.inner().user_agent, user_agent.as_bytes());
        self
    }

    /// Sets the user agent from a raw header value: the same as
    /// [`user_agent`](Self::user_agent) for a UTF-8 value, and a value that is not UTF-8 is
    /// not recorded. Cheaper than converting the header to `&str` first: the usual value
    /// (printable ASCII) is checked once, 16 bytes at a time.
    #[inline]
    pub fn user_agent_bytes(mut self, user_agent: &[u8]) -> Self {
        set_user_agent_bytes(&mut self.inner().user_agent, user_agent);
        self
    }

    /// Sets the authenticated user's id (see [`RequestContext::set_user_id`]).
    #[inline]
    pub fn user_id(self, user_id: &str) -> Self {
        let _ = self
            .inner
            .user_id
            .set(sanitize(user_id, MAX_USER_ID_LEN).into());
        self
    }

    /// Finishes the context.
    #[inline]
    pub fn build(self) -> RequestContext {
        RequestContext { inner: self.inner }
    }
}

impl fmt::Debug for RequestContextBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContextBuilder")
            .field("request_id", &self.inner.request_id.as_str())
            .finish_non_exhaustive()
    }
}

/// Stores the user agent from a raw header value (see
/// [`RequestContextBuilder::user_agent_bytes`]); the unusual values are handled out of line.
#[inline]
fn set_user_agent_bytes(slot: &mut Option<SmallStr<USER_AGENT_INLINE>>, user_agent: &[u8]) {
    if user_agent.len() <= MAX_USER_AGENT_LEN && is_printable_ascii(user_agent) {
        SmallStr::set(slot, user_agent);
    } else {
        set_user_agent_slow(slot, user_agent);
    }
}

#[cold]
#[inline(never)]
fn set_user_agent_slow(slot: &mut Option<SmallStr<USER_AGENT_INLINE>>, user_agent: &[u8]) {
    if let Ok(user_agent) = std::str::from_utf8(user_agent) {
        SmallStr::set(slot, sanitize(user_agent, MAX_USER_AGENT_LEN).as_bytes());
    }
}

/// Every byte is printable ASCII (`0x20..=0x7e`): nothing for [`sanitize`] to change.
#[inline]
fn is_printable_ascii(bytes: &[u8]) -> bool {
    crate::blocks::all(bytes, b' ', |b| b.wrapping_sub(0x20) < 0x5f)
}

/// Drops control characters and cuts at `max` bytes on a char boundary, so values copied from
/// headers cannot inject lines into logs.
fn sanitize(s: &str, max: usize) -> Cow<'_, str> {
    // Fast path for the usual value (printable ASCII within bounds): no copy, no per-char
    // work, checked 16 bytes at a time. It runs for every request's user agent.
    if s.len() <= max && is_printable_ascii(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RequestId {
        RequestId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn current_is_visible_inside_scope_only() {
        assert!(RequestContext::current().is_none());
        assert!(RequestContext::current_request_id().is_none());
        let ctx = RequestContext::builder(id("r1")).method("GET").build();
        ctx.scope(async {
            tokio::task::yield_now().await;
            assert_eq!(RequestContext::current_request_id().unwrap(), "r1");
            assert_eq!(RequestContext::current().unwrap().method(), Some("GET"));
        })
        .await;
        assert!(RequestContext::current().is_none());
    }

    #[tokio::test]
    async fn concurrent_scopes_do_not_mix() {
        let mut handles = Vec::new();
        for i in 0..50 {
            handles.push(tokio::spawn(async move {
                let want = format!("req-{i}");
                RequestContext::new(id(&want))
                    .scope(async move {
                        for _ in 0..10 {
                            tokio::task::yield_now().await;
                            assert_eq!(RequestContext::current_request_id().unwrap(), *want);
                        }
                    })
                    .await
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    }

    fn current_id() -> Option<String> {
        RequestContext::current_request_id().map(|id| id.as_str().to_owned())
    }

    #[test]
    fn nested_sync_scopes_restore_the_outer_context() {
        RequestContext::new(id("outer")).sync_scope(|| {
            assert_eq!(current_id().as_deref(), Some("outer"));
            RequestContext::new(id("inner")).sync_scope(|| {
                assert_eq!(current_id().as_deref(), Some("inner"));
            });
            assert_eq!(current_id().as_deref(), Some("outer"));
        });
        assert_eq!(current_id(), None);
    }

    #[tokio::test]
    async fn nested_future_scopes_restore_the_outer_context_across_polls() {
        RequestContext::new(id("outer"))
            .scope(async {
                RequestContext::new(id("inner"))
                    .scope(async {
                        tokio::task::yield_now().await;
                        assert_eq!(current_id().as_deref(), Some("inner"));
                    })
                    .await;
                assert_eq!(current_id().as_deref(), Some("outer"));
                tokio::task::yield_now().await;
                assert_eq!(current_id().as_deref(), Some("outer"));
            })
            .await;
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_panic_inside_a_scope_restores_the_previous_context() {
        RequestContext::new(id("outer")).sync_scope(|| {
            let caught = std::panic::catch_unwind(|| {
                RequestContext::new(id("panics")).sync_scope(|| {
                    assert_eq!(current_id().as_deref(), Some("panics"));
                    panic!("handler panicked");
                })
            });
            assert!(caught.is_err());
            assert_eq!(current_id().as_deref(), Some("outer"));
        });
        assert_eq!(current_id(), None);

        // The same for a future that panics while polled.
        let mut fut = Box::pin(RequestContext::new(id("poll-panics")).scope(async {
            assert_eq!(current_id().as_deref(), Some("poll-panics"));
            panic!("future panicked");
        }));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = fut.as_mut().poll(&mut cx);
        }));
        assert!(caught.is_err());
        assert_eq!(current_id(), None);
    }

    #[test]
    fn scope_is_current_only_while_polled_and_while_the_future_drops() {
        struct ReportsOnDrop(std::sync::Arc<std::sync::Mutex<Option<String>>>);
        impl Drop for ReportsOnDrop {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = current_id();
            }
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let guard = ReportsOnDrop(seen.clone());
        let mut fut = Box::pin(RequestContext::new(id("pending")).scope(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(fut.context().unwrap().request_id(), "pending");
        // Between polls, nothing is current.
        assert_eq!(current_id(), None);
        drop(fut);
        // The unfinished future was dropped inside its scope.
        assert_eq!(seen.lock().unwrap().as_deref(), Some("pending"));
        assert_eq!(current_id(), None);
    }

    #[test]
    fn scope_with_runs_the_maker_and_the_future_in_one_context() {
        let ctx = RequestContext::new(id("made"));
        let made_in = std::cell::Cell::new(None);
        let mut fut = Box::pin(ctx.scope_with(|| {
            made_in.set(current_id());
            async { current_id() }
        }));
        assert_eq!(made_in.take().as_deref(), Some("made"));
        assert_eq!(current_id(), None);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(polled_in) => assert_eq!(polled_in.as_deref(), Some("made")),
            Poll::Pending => panic!("ready future"),
        }
        assert_eq!(current_id(), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn spawned_tasks_do_not_inherit_the_context() {
        // One thread: the spawned task runs on the same thread as the scoped one.
        let (tx, rx) = tokio::sync::oneshot::channel();
        RequestContext::new(id("parent"))
            .scope(async move {
                let child = tokio::spawn(async move {
                    let seen = current_id();
                    tx.send(()).unwrap();
                    seen
                });
                // Let the child run while the parent is suspended inside its scope.
                rx.await.unwrap();
                assert_eq!(child.await.unwrap(), None);
                assert_eq!(current_id().as_deref(), Some("parent"));
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn interleaved_tasks_on_one_thread_see_their_own_context() {
        let mut handles = Vec::new();
        for i in 0..8 {
            handles.push(tokio::task::spawn(
                RequestContext::new(id(&format!("t-{i}"))).scope(async move {
                    for _ in 0..5 {
                        tokio::task::yield_now().await;
                        assert_eq!(current_id(), Some(format!("t-{i}")));
                    }
                }),
            ));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(current_id(), None);
    }

    #[test]
    fn entering_a_scope_inside_with_current_panics_and_leaves_state_intact() {
        RequestContext::new(id("outer")).sync_scope(|| {
            let caught = std::panic::catch_unwind(|| {
                RequestContext::with_current(|_| {
                    RequestContext::new(id("nested")).sync_scope(|| ());
                })
            });
            assert!(caught.is_err());
            assert_eq!(current_id().as_deref(), Some("outer"));
        });
    }

    #[test]
    fn user_id_set_once_is_shared_by_clones() {
        let ctx = RequestContext::new(id("r2"));
        let clone = ctx.clone();
        assert!(ctx.set_user_id("u-1"));
        assert!(!clone.set_user_id("u-2"), "first write wins");
        assert_eq!(clone.user_id(), Some("u-1"));
    }

    #[test]
    fn header_derived_values_are_sanitized_and_bounded() {
        let ua = format!("curl/8\r\nX-Injected: 1{}", "é".repeat(500));
        let ctx = RequestContext::builder(id("r3"))
            .user_agent(&ua)
            .method("BREW\n")
            .build();
        let got = ctx.user_agent().unwrap();
        assert!(got.starts_with("curl/8X-Injected: 1"));
        assert!(!got.contains('\n') && !got.contains('\r'));
        assert!(got.len() <= MAX_USER_AGENT_LEN);
        assert_eq!(ctx.method(), Some("BREW"));
    }

    #[test]
    fn clean_values_are_kept_whole_and_long_ones_cut() {
        let clean = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
        let ctx = RequestContext::builder(id("r5")).user_agent(clean).build();
        assert_eq!(ctx.user_agent(), Some(clean));
        let long = "a".repeat(MAX_USER_AGENT_LEN + 10);
        let ctx = RequestContext::builder(id("r6")).user_agent(&long).build();
        assert_eq!(ctx.user_agent().unwrap().len(), MAX_USER_AGENT_LEN);
        // DEL (0x7f) is a control character too.
        let ctx = RequestContext::builder(id("r7"))
            .user_agent("a\x7fb")
            .build();
        assert_eq!(ctx.user_agent(), Some("ab"));
    }

    #[test]
    fn user_agent_bytes_matches_user_agent_for_utf8_and_skips_the_rest() {
        let long = "b".repeat(MAX_USER_AGENT_LEN + 3);
        for ua in [
            "curl/8.5.0",
            "",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "tab\there",
            "caf\u{e9}/1.0 \u{1F600}",
            "line\r\nbreak",
            long.as_str(),
        ] {
            let from_str = RequestContext::builder(id("s")).user_agent(ua).build();
            let from_bytes = RequestContext::builder(id("b"))
                .user_agent_bytes(ua.as_bytes())
                .build();
            assert_eq!(from_bytes.user_agent(), from_str.user_agent(), "{ua:?}");
        }
        let invalid = RequestContext::builder(id("x"))
            .user_agent_bytes(b"bad \xff\xfe utf8")
            .build();
        assert_eq!(invalid.user_agent(), None);
    }

    #[test]
    fn from_parts_matches_the_builder() {
        let long_route = format!("/{}", "r".repeat(100));
        let long_ua = "u".repeat(MAX_USER_AGENT_LEN + 5);
        let user_agents: [Option<&[u8]>; 7] = [
            None,
            Some(b"curl/8.5.0"),
            Some(b""),
            Some(b"caf\xc3\xa9/1.0 tab\there"),
            Some(b"bad \xff utf8"),
            Some(long_ua.as_bytes()),
            Some(&[b'a'; USER_AGENT_INLINE + 1]),
        ];
        for route in [None, Some("/users/{id}"), Some(long_route.as_str())] {
            for user_agent in user_agents {
                for (method, ip) in [("GET", None), ("BREW\n", Some([10, 0, 0, 1].into()))] {
                    let built = {
                        let mut b = RequestContext::builder(id("p")).method(method);
                        if let Some(route) = route {
                            b = b.route(route);
                        }
                        if let Some(ip) = ip {
                            b = b.client_ip(ip);
                        }
                        if let Some(ua) = user_agent {
                            b = b.user_agent_bytes(ua);
                        }
                        b.build()
                    };
                    let direct = RequestContext::from_parts(id("p"), method, route, ip, user_agent);
                    let label = format!("{route:?} {user_agent:?} {method:?}");
                    assert_eq!(direct.request_id(), "p", "{label}");
                    assert_eq!(direct.method(), built.method(), "{label}");
                    assert_eq!(direct.route(), built.route(), "{label}");
                    assert_eq!(direct.route(), route, "{label}");
                    assert_eq!(direct.client_ip(), built.client_ip(), "{label}");
                    assert_eq!(direct.user_agent(), built.user_agent(), "{label}");
                    assert_eq!(direct.user_id(), None, "{label}");
                    assert!(direct.trace_ids().is_none(), "{label}");
                }
            }
        }
        let ctx = RequestContext::from_parts(id("q"), "GET", None, None, Some(long_ua.as_bytes()));
        assert_eq!(ctx.user_agent().map(str::len), Some(MAX_USER_AGENT_LEN));
        assert!(ctx.set_user_id("u-1"));
        assert_eq!(ctx.clone().user_id(), Some("u-1"));
    }

    #[test]
    fn trace_ids_are_set_once_and_print_as_w3c_hex() {
        let ctx = RequestContext::new(id("r8"));
        assert!(ctx.trace_ids().is_none());
        let ids = TraceIds {
            trace_id: TraceId([
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36,
            ]),
            span_id: SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
        };
        assert!(ctx.clone().set_trace_ids(ids));
        assert!(!ctx.set_trace_ids(TraceIds {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
        }));
        let got = ctx.trace_ids().unwrap();
        assert_eq!(got.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(got.span_id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn sync_scope_and_with_current() {
        let ctx = RequestContext::builder(id("r4")).route("/a/{b}").build();
        let route = ctx.sync_scope(|| {
            RequestContext::with_current(|c| c.and_then(|c| c.route().map(str::to_owned)))
        });
        assert_eq!(route.as_deref(), Some("/a/{b}"));
        assert!(RequestContext::with_current(|c| c.is_none()));
    }
}
