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
//!
//! Instructions per request (deterministic, valgrind): `benches/instructions.sh request_id`
//! (uses the `OBS_BENCH_COUNT=<case>:<n>` mode of this binary, see `support`). A case name
//! with `@batched` appended runs the requests like `iter_batched` does (see `count`), to count
//! only the part criterion times.
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion};
use http::{Request, Response};
use obs_tower::RequestIdLayer;
use tower::{Layer, Service};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing_subscriber::layer::SubscriberExt;

mod support;
use support::{drive, noop};

fn request(with_id: bool) -> Request<()> {
    support::request("/users/42", with_id)
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

fn tower_http() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> {
    let svc = PropagateRequestIdLayer::x_request_id().layer(noop());
    SetRequestIdLayer::x_request_id(MakeRequestUuid).layer(svc)
}

fn ours() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> {
    RequestIdLayer::new().layer(noop())
}

fn ours_no_user_agent() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> {
    RequestIdLayer::new().record_user_agent(false).layer(noop())
}

/// `OBS_BENCH_COUNT` mode (see `support::count_mode`): no subscriber, like the criterion cases.
///
/// A case name with the suffix `@batched` (e.g. `obs/inbound@batched`) runs the requests the
/// way criterion's `iter_batched` times them: 1,000 requests built first, then driven one
/// after the other, the responses dropped after the batch. Under
/// `valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*drive_one*'` that
/// counts instructions and simulated I-cache misses of the timed part alone, with the code
/// that runs between two timed requests what it is under criterion.
fn count(case: &str, n: u64) {
    if let Some(case) = case.strip_suffix("@batched") {
        return match case {
            "bare" => run_batched(&mut noop(), n, false),
            "tower-http/generated" => run_batched(&mut tower_http(), n, false),
            "obs/generated" => run_batched(&mut ours(), n, false),
            "tower-http/inbound" => run_batched(&mut tower_http(), n, true),
            "obs/inbound" => run_batched(&mut ours(), n, true),
            "obs/inbound-no-user-agent" => run_batched(&mut ours_no_user_agent(), n, true),
            other => panic!("unknown case {other:?}"),
        };
    }
    match case {
        "bare" => support::run_n(&mut noop(), n, || request(false)),
        "tower-http/generated" => support::run_n(&mut tower_http(), n, || request(false)),
        "obs/generated" => support::run_n(&mut ours(), n, || request(false)),
        "tower-http/inbound" => support::run_n(&mut tower_http(), n, || request(true)),
        "obs/inbound" => support::run_n(&mut ours(), n, || request(true)),
        "obs/inbound-no-user-agent" => {
            support::run_n(&mut ours_no_user_agent(), n, || request(true))
        }
        other => panic!("unknown case {other:?}"),
    }
}

/// `support::drive`, never inlined: the function `--toggle-collect` names.
#[inline(never)]
fn drive_one<S>(svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    drive(svc, req)
}

/// `n` requests through `svc` in batches of 1,000, like `iter_batched`: the requests are
/// built before a batch, the responses dropped after it.
fn run_batched<S>(svc: &mut S, n: u64, with_id: bool)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        let requests: Vec<_> = (0..k).map(|_| request(with_id)).collect();
        let mut responses = Vec::with_capacity(requests.len());
        for req in requests {
            responses.push(drive_one(svc, black_box(req)));
        }
        black_box(&responses);
        left -= k;
    }
}

fn request_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_id");
    g.sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));

    bench_case(&mut g, "bare", noop(), false);
    bench_case(&mut g, "tower-http/generated", tower_http(), false);
    bench_case(&mut g, "obs/generated", ours(), false);
    bench_case(&mut g, "tower-http/inbound", tower_http(), true);
    bench_case(&mut g, "obs/inbound", ours(), true);
    bench_case(
        &mut g,
        "obs/inbound-no-user-agent",
        ours_no_user_agent(),
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

fn main() {
    if let Some((case, n)) = support::count_mode() {
        count(&case, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
