//! Shared driver for the per-request middleware benches (`request_id`, `sentry`, `otel`,
//! `stack`; `metrics` and `redact` use only the count mode):
//! a realistic request, a no-op service, and one request driven by polling directly with a
//! no-op waker, so no runtime overhead is measured.
#![allow(dead_code)] // each bench uses a subset

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, Request, Response};
use tower::{service_fn, Service};

/// The inbound request ID the `inbound` cases send (a UUIDv7, as obs would generate).
pub const INBOUND_ID: &str = "0195f0c8-5c4f-7d3a-9b1e-2f4a6c8d0e12";

/// `GET path` with `host`, `user-agent` and `accept` headers like a real request, and the
/// inbound `x-request-id` when `with_id`. Header values are `from_static`, so cloning one
/// is free, as cheap as cloning a value hyper parsed (which shares the read buffer): neither
/// side pays a setup artefact.
pub fn request(path: &str, with_id: bool) -> Request<()> {
    let mut b = Request::get(path)
        .header("host", HeaderValue::from_static("api.example.com"))
        .header("user-agent", HeaderValue::from_static("curl/8.5.0"))
        .header("accept", HeaderValue::from_static("*/*"));
    if with_id {
        b = b.header("x-request-id", HeaderValue::from_static(INBOUND_ID));
    }
    b.body(()).expect("static request parts are valid")
}

/// A service that drops the request and answers an empty 200 at once.
pub fn noop() -> impl Service<
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

/// One request through `svc`: `poll_ready`, `call`, poll the future once (the stacks under
/// test wrap the no-op service, which is always ready and completes immediately).
pub fn drive<S, B>(svc: &mut S, req: Request<()>) -> Response<B>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
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

/// Instruction-count mode: when `OBS_BENCH_COUNT=<case>:<n>` is set, the bench runs `n`
/// requests (updates, scrubs) of `case` and exits instead of running criterion. `benches/instructions.sh`
/// runs this under `valgrind --tool=callgrind` at two `n` and divides the difference, which
/// gives instructions per request without startup cost — deterministic, unlike wall time on
/// a shared machine.
pub fn count_mode() -> Option<(String, u64)> {
    let spec = std::env::var("OBS_BENCH_COUNT").ok()?;
    let (case, n) = spec
        .rsplit_once(':')
        .expect("OBS_BENCH_COUNT must be <case>:<n>, e.g. obs/inbound:10000 or clean_1mb/obs:3");
    let n = n
        .parse()
        .expect("OBS_BENCH_COUNT must be <case>:<n> with a whole number n");
    Some((case.to_owned(), n))
}

/// Runs `n` requests built by `make_request` through `svc` (count mode).
pub fn run_n<S, B>(svc: &mut S, n: u64, make_request: impl Fn() -> Request<()>)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    for _ in 0..n {
        std::hint::black_box(drive(svc, std::hint::black_box(make_request())));
    }
}
