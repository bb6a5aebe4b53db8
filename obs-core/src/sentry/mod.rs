//! The Sentry bridge (feature `sentry`): errors, messages, breadcrumbs, user and context, each
//! tagged with the current [`RequestContext`], scrubbed by [`redact`](crate::redact) before
//! it leaves the process.
//!
//! Built on `sentry-core`; the bridge works with whatever client is bound to the current hub
//! (the app's `sentry::init`, or `obs::sentry::init` in the facade). Without a client every
//! call is a no-op that allocates nothing: each function first checks that a client is bound
//! ([`Hub::with_active`]) and only then builds anything.
//!
//! | call | what it records |
//! |---|---|
//! | [`capture_error`] | an error event (the `source()` chain as exceptions) + extra data |
//! | [`capture_message`] | a message event at a [`Level`] + extra data |
//! | [`breadcrumb`] | a breadcrumb (category, message, data) on the current request's scope |
//! | [`set_user`] | the user id, on the request's scope and its [`RequestContext`] |
//! | [`with_context`] | a named context map on the request's scope |
//! | [`set_tag`] | a tag (searchable in Sentry, e.g. `run_id`, `repo`) on the request's scope |
//!
//! Every event gets `request_id` as a tag, `http.method` and `http.route` as tags, the
//! transaction `METHOD /route` and the user id from the current [`RequestContext`] (see
//! [`apply_request_context`]); every breadcrumb gets `request_id` in its data.
//!
//! # Per-request hubs and leaks
//!
//! Breadcrumbs, user and contexts live on the hub's scope. A hub shared by concurrent requests
//! mixes them (sentry-rust #616/#836), so the HTTP edge (`obs_tower::SentryLayer`) runs every
//! request on its own hub through [`run_in_request_hub`] / [`bind_request_hub`]. Scope changes
//! made *inside* a request ([`RequestContext::current`] is set) while no request hub is bound
//! would leak into other requests: they are dropped ([`breadcrumb`], [`with_context`]) or
//! kept on the [`RequestContext`] only ([`set_user`]). Outside requests (startup, jobs)
//! everything goes to the current hub as usual.
//!
//! # Scrubbing
//!
//! [`configure`] (or [`client_options`], which calls it) installs `before_send` and
//! `before_breadcrumb` hooks that run the [`Scrubber`] over messages, exception values, request
//! URL, query string, headers, cookies and body, `extra`, context maps, tags, breadcrumb
//! messages and data and user fields. Without `send_default_pii` (the default) cookies, the
//! user's IP address, email and username are removed outright. Hooks already on the options
//! run first.
//!
//! # Tracing
//!
//! [`tracing_layer`] reuses `sentry-tracing`'s `BreadcrumbLayer` and `ErrorLayer`: `INFO`
//! and `WARN` events become breadcrumbs, but only while a request hub is bound (so startup
//! logs never end up in every request's events), and `ERROR` events become Sentry events.
//!
//! # Example
//!
//! ```
//! use obs_core::sentry::{self, Level};
//! use obs_core::{RequestContext, RequestId};
//! use sentry_core::test::with_captured_events;
//!
//! let events = with_captured_events(|| {
//!     let ctx = RequestContext::builder(RequestId::parse("req-1").unwrap())
//!         .method("POST")
//!         .route("/orders")
//!         .build();
//!     ctx.sync_scope(|| {
//!         sentry::run_in_request_hub(&sentry::request_hub(), || {
//!             sentry::breadcrumb("db", "insert order", [("rows", 1)]);
//!             sentry::set_user("user-7");
//!             let err = std::io::Error::other("disk full");
//!             sentry::capture_error(&err, [("order_id", "o-42")]);
//!         })
//!     });
//! });
//! assert_eq!(events.len(), 1);
//! let event = &events[0];
//! assert_eq!(event.tags["request_id"], "req-1");
//! assert_eq!(event.transaction.as_deref(), Some("POST /orders"));
//! assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("user-7"));
//! assert_eq!(event.extra["order_id"], "o-42");
//! assert_eq!(event.breadcrumbs[0].data["request_id"], "req-1");
//!
//! // No client bound: nothing happens, nothing is allocated.
//! assert!(sentry::capture_message("ignored", Level::Info, ()).is_none());
//! ```

mod extra;
mod scrub;

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use sentry_core::protocol::{Breadcrumb, Context, Event, User};
use sentry_core::types::Uuid;
use sentry_core::{ClientOptions, Hub};
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{dynamic_filter_fn, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::SentryConfig;
use crate::redact::Scrubber;
use crate::{RequestContext, TraceIds};

pub use extra::IntoExtra;
pub use scrub::{scrub_breadcrumb, scrub_event};
pub use sentry_core::Level;

/// Tag holding the request ID on every event.
pub const REQUEST_ID_TAG: &str = "request_id";
/// Tag holding the HTTP method.
pub const METHOD_TAG: &str = "http.method";
/// Tag holding the matched route template.
pub const ROUTE_TAG: &str = "http.route";

thread_local! {
    /// Depth of [`run_in_request_hub`] calls on this thread.
    static REQUEST_HUB_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// True when a client is bound to the current hub (events would be sent).
pub fn is_enabled() -> bool {
    Hub::with_active(|_| true)
}

/// A fresh hub for one request, forked from the current one (same client, a copy of its top
/// scope): what the request records stays on it.
pub fn request_hub() -> Arc<Hub> {
    Arc::new(Hub::new_from_top(Hub::current()))
}

/// Runs `f` with `hub` bound as the current hub, marked as a request hub (see the module
/// docs). Used by the HTTP edge on every poll of the request's future and body.
pub fn run_in_request_hub<R>(hub: &Arc<Hub>, f: impl FnOnce() -> R) -> R {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            REQUEST_HUB_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    REQUEST_HUB_DEPTH.with(|d| d.set(d.get() + 1));
    let _depth = Depth;
    Hub::run(Arc::clone(hub), f)
}

/// Runs `fut` with `hub` bound as a request hub on every poll (for work outside `obs-tower`:
/// a queue consumer, a job).
pub async fn bind_request_hub<F: Future>(hub: Arc<Hub>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| run_in_request_hub(&hub, || fut.as_mut().poll(cx))).await
}

/// True while a request hub is bound on this thread.
pub fn in_request_hub() -> bool {
    REQUEST_HUB_DEPTH.with(|d| d.get() > 0)
}

/// True when writing to the current hub's scope would leak into other requests.
fn would_leak() -> bool {
    !in_request_hub() && RequestContext::with_current(|c| c.is_some())
}

/// Captures an error (with its `source()` chain) plus `extra` data; returns the event id, or
/// `None` when no client is bound.
pub fn capture_error<E>(err: &E, extra: impl IntoExtra) -> Option<Uuid>
where
    E: std::error::Error + ?Sized,
{
    Hub::with_active(|hub| {
        let mut event = sentry_core::event_from_error(err);
        extra.into_extra(&mut event.extra);
        with_request_context(&mut event);
        Some(hub.capture_event(event))
    })
}

/// Captures a message at `level` plus `extra` data; returns the event id, or `None` when no
/// client is bound.
pub fn capture_message(message: &str, level: Level, extra: impl IntoExtra) -> Option<Uuid> {
    Hub::with_active(|hub| {
        let mut event = Event {
            message: Some(message.to_owned()),
            level,
            ..Event::default()
        };
        extra.into_extra(&mut event.extra);
        with_request_context(&mut event);
        Some(hub.capture_event(event))
    })
}

/// Records a breadcrumb (level info, type `default`) on the current request's scope; `data`
/// gets the `request_id`. Dropped inside a request without a request hub (it would leak).
pub fn breadcrumb(category: &str, message: &str, data: impl IntoExtra) {
    Hub::with_active(|hub| {
        if would_leak() {
            return;
        }
        let mut crumb = Breadcrumb {
            category: Some(category.to_owned()),
            message: Some(message.to_owned()),
            ..Breadcrumb::default()
        };
        data.into_extra(&mut crumb.data);
        add_request_id(&mut crumb);
        hub.add_breadcrumb(crumb);
    })
}

/// Sets the user id: on the current [`RequestContext`] (first write wins, see
/// [`RequestContext::set_user_id`]) and on the request's scope.
pub fn set_user(id: &str) {
    RequestContext::with_current(|c| c.map(|c| c.set_user_id(id)));
    Hub::with_active(|hub| {
        if would_leak() {
            return;
        }
        hub.configure_scope(|scope| {
            scope.set_user(Some(User {
                id: Some(id.to_owned()),
                ..User::default()
            }))
        });
    })
}

/// Adds the context map `key` to the current request's scope (reported under `contexts`).
/// Dropped inside a request without a request hub (it would leak).
pub fn with_context(key: &str, map: impl IntoExtra) {
    Hub::with_active(|hub| {
        if would_leak() {
            return;
        }
        let mut data = sentry_core::protocol::Map::new();
        map.into_extra(&mut data);
        hub.configure_scope(|scope| scope.set_context(key, Context::Other(data)));
    })
}

/// Sets the tag `key` to `value` on the current request's scope: every event captured later
/// in the request carries it (Sentry indexes tags, so issues can be searched and grouped by
/// them, e.g. `run_id` and `repo` as GitTinkerer does). A later call with the same key
/// replaces the value. Tags go through the scrubber like every other field. Dropped inside a
/// request without a request hub (it would leak).
///
/// The request-context tags (`request_id`, `http.method`, `http.route`) are filled in only
/// where absent, so setting one of them here overrides the request's own value.
pub fn set_tag(key: &str, value: impl std::fmt::Display) {
    Hub::with_active(|hub| {
        if would_leak() {
            return;
        }
        hub.configure_scope(|scope| scope.set_tag(key, value));
    })
}

fn with_request_context(event: &mut Event<'static>) {
    RequestContext::with_current(|ctx| {
        if let Some(ctx) = ctx {
            apply_request_context(event, ctx);
        }
    });
}

/// Puts `ctx` on `event` without overwriting what is there: the `request_id`, `http.method`
/// and `http.route` tags, the transaction `METHOD /route` and the user id.
pub fn apply_request_context(event: &mut Event<'static>, ctx: &RequestContext) {
    let tags = &mut event.tags;
    tags.entry(REQUEST_ID_TAG.to_owned())
        .or_insert_with(|| ctx.request_id().as_str().to_owned());
    if let Some(method) = ctx.method() {
        tags.entry(METHOD_TAG.to_owned())
            .or_insert_with(|| method.to_owned());
    }
    if let Some(route) = ctx.route() {
        tags.entry(ROUTE_TAG.to_owned())
            .or_insert_with(|| route.to_owned());
        if event.transaction.is_none() {
            event.transaction = Some(match ctx.method() {
                Some(m) => format!("{m} {route}"),
                None => route.to_owned(),
            });
        }
    }
    if let Some(user_id) = ctx.user_id() {
        let user = event.user.get_or_insert_with(User::default);
        if user.id.is_none() {
            user.id = Some(user_id.to_owned());
        }
    }
    if let Some(ids) = ctx.trace_ids() {
        apply_trace_ids(event, ids);
    }
}

/// Names the request's OpenTelemetry trace in the event's `trace` context, so the event and
/// the trace join on one id. A trace context from an active Sentry span (it has an `op`) is
/// kept: Sentry's own tracing links it.
fn apply_trace_ids(event: &mut Event<'static>, ids: &TraceIds) {
    let trace = event
        .contexts
        .entry("trace".to_owned())
        .or_insert_with(|| Context::Trace(Box::default()));
    if let Context::Trace(trace) = trace {
        if trace.op.is_none() {
            trace.trace_id = ids.trace_id.0.into();
            trace.span_id = ids.span_id.0.into();
            trace.parent_span_id = None;
        }
    }
}

fn add_request_id(crumb: &mut Breadcrumb) {
    if crumb.data.contains_key(REQUEST_ID_TAG) {
        return;
    }
    if let Some(id) =
        RequestContext::with_current(|c| c.map(|c| c.request_id().as_str().to_owned()))
    {
        crumb.data.insert(REQUEST_ID_TAG.to_owned(), id.into());
    }
}

/// Client options from [`SentryConfig`] (DSN, environment, release, traces sample rate),
/// `send_default_pii` off, with [`configure`]'s hooks and the default [`Scrubber`].
///
/// Without a DSN the options have none, and a client built from them sends nothing.
pub fn client_options(config: &SentryConfig) -> ClientOptions {
    let dsn = config.dsn.as_ref().and_then(|d| d.expose().parse().ok());
    let mut options = ClientOptions::new()
        .environment(config.environment.clone())
        .maybe_release(config.release.clone())
        .send_default_pii(false)
        .traces_sample_rate(config.traces_sample_rate as f32);
    options.dsn = dsn;
    configure(options, Scrubber::default())
}

/// Installs the scrubbing and request-context hooks on `options` (see the module docs);
/// hooks already set run first. Reads `send_default_pii` from `options` when called.
pub fn configure(mut options: ClientOptions, scrubber: Scrubber) -> ClientOptions {
    let pii = options.send_default_pii;
    let prev_send = options.before_send.take();
    let send_scrubber = scrubber.clone();
    options.before_send = Some(Arc::new(move |event| {
        let mut event = match &prev_send {
            Some(prev) => prev(event)?,
            None => event,
        };
        with_request_context(&mut event);
        scrub_event(&send_scrubber, pii, &mut event);
        Some(event)
    }));
    let prev_crumb = options.before_breadcrumb.take();
    options.before_breadcrumb = Some(Arc::new(move |crumb| {
        let mut crumb = match &prev_crumb {
            Some(prev) => prev(crumb)?,
            None => crumb,
        };
        add_request_id(&mut crumb);
        scrub_breadcrumb(&scrubber, &mut crumb);
        Some(crumb)
    }));
    options
}

/// The line to log once at startup: whether Sentry is on, and where events go (host only).
pub fn status_line(config: &SentryConfig) -> String {
    match &config.dsn {
        None => "Sentry disabled: SENTRY_DSN is not set; error capture calls are no-ops".to_owned(),
        Some(dsn) => {
            let host = url::Url::parse(dsn.expose())
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "Sentry enabled: reporting to {host} (environment {})",
                config.environment
            )
        }
    }
}

/// Logs [`status_line`] once, at INFO (target `obs::sentry`): call it at startup.
pub fn log_status(config: &SentryConfig) {
    tracing::info!(target: "obs::sentry", "{}", status_line(config));
}

/// A `tracing` layer: `INFO`/`WARN` events become breadcrumbs of the current request (only
/// while a request hub is bound), `ERROR` events become Sentry events. Reuses
/// `sentry-tracing`'s `BreadcrumbLayer` and `ErrorLayer`.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(obs_core::sentry::tracing_layer());
/// # drop(subscriber);
/// ```
pub fn tracing_layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    sentry_tracing::BreadcrumbLayer::new()
        .with_filter(breadcrumb_filter())
        .and_then(sentry_tracing::ErrorLayer::new().with_filter(error_filter()))
}

fn is_breadcrumb_level(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_event() && matches!(*meta.level(), tracing::Level::INFO | tracing::Level::WARN)
}

/// INFO/WARN events while a request hub is bound. A dynamic filter: whether a request hub is
/// bound changes from one call of the same callsite to the next, so the answer must not be
/// cached per callsite (as `filter_fn` does); only the level part is.
fn breadcrumb_filter<S: 'static>() -> impl Filter<S> + Send + Sync + 'static {
    dynamic_filter_fn(|meta, _cx| is_breadcrumb_level(meta) && in_request_hub())
        .with_callsite_filter(|meta| {
            if is_breadcrumb_level(meta) {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        })
}

fn error_filter<S>() -> impl Filter<S> + Send + Sync + 'static {
    filter_fn(|meta| meta.is_event() && *meta.level() == tracing::Level::ERROR)
}

#[cfg(test)]
mod tests;
