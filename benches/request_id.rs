//! Per-request overhead of obs's `RequestIdLayer` vs tower-http's
//! `SetRequestIdLayer` + `PropagateRequestIdLayer`, on the same no-op service.
//!
//! All cases are in one criterion group so their ratios come from one run:
//!
//! - `bare`: the no-op service alone (baseline),
//! - `tower-http/{generated,inbound}`: `SetRequestIdLayer::x_request_id(MakeRequestUuid)` +
//!   `PropagateRequestIdLayer::x_request_id()`,
//! - `obs/{generated,inbound}`: `RequestIdLayer::new()` — validation, request header
//!   rewrite, `RequestId` + `RequestContext` extensions, `request` span (disabled: no
//!   subscriber), task-local scope around `call` and the future, response header,
//! - `obs/inbound-no-user-agent`: `record_user_agent(false)`, to show what copying the user
//!   agent into the context costs,
//! - `obs/generated+info-subscriber`: the same with a JSON fmt subscriber at INFO writing to
//!   `io::sink`, so the span is really created, entered and closed (tower-http has no span;
//!   this case shows the cost of the span itself, not a like-for-like comparison).
//!
//! `generated` = no inbound header, a new UUID is made (tower-http: v4, obs: v7);
//! `inbound` = a valid `x-request-id` is accepted and echoed.
//!
//! Requests carry `host`, `user-agent` and `accept` headers like a real one. Building the
//! request is setup (not timed); the service is driven by polling its future directly with a
//! no-op waker (the no-op service is always ready), so no runtime overhead is measured.
//!
//! Run: `cargo bench -p obs --bench request_id`
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderValue, Request, Response};
use obs_tower::RequestIdLayer;
use tower::{service_fn, Layer, Service};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing_subscriber::layer::SubscriberExt;

const INBOUND_ID: &str = "0195f0c8-5c4f-7d3a-9b1e-2f4a6c8d0e12";

/// Header values are `from_static`, so cloning one is free, as cheap as cloning a value
/// hyper parsed (which shares the read buffer): neither side pays a setup artefact.
fn request(with_id: bool) -> Request<()> {
    let mut b = Request::get("/users/42")
        .header("host", HeaderValue::from_static("api.example.com"))
        .header("user-agent", HeaderValue::from_static("curl/8.5.0"))
        .header("accept", HeaderValue::from_static("*/*"));
    if with_id {
        b = b.header("x-request-id", HeaderValue::from_static(INBOUND_ID));
    }
    b.body(()).unwrap()
}

fn noop() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|req: Request<()>| {
        drop(req);
        std::future::ready(Ok(Response::new(())))
    })
}

/// One request through `svc`: poll_ready, call, poll the future once (the no-op service is
/// always ready and its future completes immediately).
fn drive<S>(svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("no-op service is always ready"),
    }
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => unreachable!("no-op service completes at once"),
    }
}

fn bench_case<S>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
    with_id: bool,
) where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    // Sanity: the layer really sets the response header.
    let res = drive(&mut svc, request(with_id));
    assert!(
        name == "bare" || res.headers().contains_key("x-request-id"),
        "{name}: no response header"
    );
    c.bench_function(name, |b| {
        b.iter_batched(
            || request(with_id),
            |req| black_box(drive(&mut svc, black_box(req))),
            BatchSize::SmallInput,
        )
    });
}

fn request_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_id");
    g.sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));

    let tower_http = || {
        let svc = PropagateRequestIdLayer::x_request_id().layer(noop());
        SetRequestIdLayer::x_request_id(MakeRequestUuid).layer(svc)
    };
    let ours = || RequestIdLayer::new().layer(noop());

    bench_case(&mut g, "bare", noop(), false);
    bench_case(&mut g, "tower-http/generated", tower_http(), false);
    bench_case(&mut g, "obs/generated", ours(), false);
    bench_case(&mut g, "tower-http/inbound", tower_http(), true);
    bench_case(&mut g, "obs/inbound", ours(), true);
    bench_case(
        &mut g,
        "obs/inbound-no-user-agent",
        RequestIdLayer::new().record_user_agent(false).layer(noop()),
        true,
    );

    // Last, so the subscriber's callsite interest does not leak into the cases above.
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink),
        )
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);
    bench_case(&mut g, "obs/generated+info-subscriber", ours(), false);
    g.finish();
}

criterion_group!(benches, request_id);
criterion_main!(benches);
