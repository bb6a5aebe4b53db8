//! Per-request overhead of obs's `SentryLayer` (fresh hub per request, bound on every poll,
//! request context kept for events) vs sentry-tower's `NewSentryLayer::new_from_top()` +
//! `SentryHttpLayer::new()`, on the same no-op service, one criterion group:
//!
//! - `bare`: the no-op service alone (baseline),
//! - `{sentry-tower,obs}/enabled`: a client is bound (sentry's `TestTransport`, obs's
//!   scrubbing hooks installed); the response is a 200, so no event is sent — this is the
//!   cost every request pays,
//! - `{sentry-tower,obs}/disabled`: the current hub has no client (no `SENTRY_DSN`).
//!
//! Both layers fork their hub from `Hub::current()`; the cases run inside `Hub::run` with the
//! enabled or the client-less hub. The request carries `host`, `user-agent`, `accept`,
//! `x-request-id` headers and the `RequestContext` extension `RequestIdLayer` would insert
//! (setup, not timed). The service is driven by polling its future once with a no-op waker.
//!
//! Run: `cargo bench -p obs --features sentry --bench sentry`
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion};
use http::{Request, Response};
use obs_core::{RequestContext, RequestId};
use obs_tower::SentryLayer;
use sentry::test::TestTransport;
use sentry::{ClientOptions, Hub};
use sentry_tower::{NewSentryLayer, SentryHttpLayer};
use tower::{Layer, Service};

mod support;
use support::{drive, noop, INBOUND_ID};

fn request() -> Request<()> {
    let mut req = support::request("/users/42?page=2", true);
    let ctx = RequestContext::builder(RequestId::parse(INBOUND_ID).unwrap())
        .method("GET")
        .route("/users/{id}")
        .build();
    req.extensions_mut().insert(ctx);
    req
}

fn bench_case<S, B>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    hub: &Arc<Hub>,
    mut svc: S,
) where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    Hub::run(Arc::clone(hub), || {
        g.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| black_box(drive(&mut svc, black_box(req))),
                BatchSize::SmallInput,
            )
        });
    });
}

fn sentry(c: &mut Criterion) {
    let transport = TestTransport::new();
    let options = ClientOptions::new()
        .dsn("https://public@sentry.invalid/1")
        .transport(transport.clone());
    let options = obs_core::sentry::configure(options, Default::default());
    let enabled = Arc::new(Hub::new(Some(Arc::new(options.into())), Default::default()));
    let disabled = Arc::new(Hub::new(None, Default::default()));

    let sentry_tower = || {
        NewSentryLayer::<Request<()>>::new_from_top().layer(SentryHttpLayer::new().layer(noop()))
    };
    let ours = || SentryLayer::new().layer(noop());

    let mut g = c.benchmark_group("sentry");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    bench_case(&mut g, "bare", &disabled, noop());
    bench_case(&mut g, "sentry-tower/enabled", &enabled, sentry_tower());
    bench_case(&mut g, "obs/enabled", &enabled, ours());
    bench_case(&mut g, "sentry-tower/disabled", &disabled, sentry_tower());
    bench_case(&mut g, "obs/disabled", &disabled, ours());
    g.finish();
    assert!(
        transport.fetch_and_clear_events().is_empty(),
        "200 responses send nothing"
    );
}

criterion_group!(benches, sentry);
criterion_main!(benches);
