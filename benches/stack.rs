//! Per-request cost of the whole obs stack in process, layer by layer — the in-process
//! counterpart of `cargo xtask bench-e2e` (which adds hyper, sockets and `wrk`), so each
//! layer's share of the end-to-end overhead can be seen and counted.
//!
//! Every case is the same axum router (`GET /` → static string, a fallback) like
//! `examples/e2e_target.rs`, under the subscriber `obs::core::logging::try_init` installs (JSON
//! at `info`, here writing to `io::sink`; as in the e2e benchmark, both variants log the same
//! way; `OBS_BENCH_SUBSCRIBER=layer` swaps in `LogLayer` on a `Registry`), with the request
//! carrying a `ConnectInfo` peer address like `axum::serve` adds:
//!
//! - `bare`: the router alone,
//! - `request_id`: + `RequestIdLayer` (the `request` span is really created: a subscriber is
//!   installed),
//! - `request_id+identity`: + `tower::layer::util::Identity`, a layer that does nothing: what
//!   one more `Router::layer` costs by itself (axum boxes each layered route: a boxed clone
//!   and a boxed future per request), to subtract from the cases below,
//! - `request_id+access_log`: + `AccessLogLayer` with `LOG_REQUESTS=false`,
//! - `request_id+metrics`: + `HttpMetricsLayer`,
//! - `request_id+ratelimit`: + `RateLimitLayer` per client IP, in-memory approximate limiter,
//!   a limit no run reaches,
//! - `request_id+sentry`: + `SentryLayer` with a hub without a DSN (feature `sentry`),
//! - `obs.layer()`: the facade's whole stack as `e2e_target obs` builds it.
//!
//! The router's future is polled with a no-op waker (everything here completes without a
//! runtime), so no scheduler cost is measured.
//!
//! ```text
//! cargo bench -p obs --features sentry --bench stack
//! benches/instructions.sh stack          # instructions per request (valgrind)
//! ```
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, BatchSize, Criterion};
use http::{HeaderValue, Request, Response};
use obs::core::config::Config;
use obs::tower::{AccessLogLayer, RequestIdLayer};
use tower::Service;
use tracing_subscriber::layer::SubscriberExt;

mod support;

async fn hello() -> &'static str {
    "hello, world\n"
}

fn app() -> Router {
    Router::new()
        .route("/", get(hello))
        .fallback(|| async { http::StatusCode::NOT_FOUND })
}

fn config() -> Config {
    let mut config = Config::builder().build().expect("default config is valid");
    config.log.log_requests = false;
    config.log.filter = "info".into();
    config
}

fn limiter() -> obs::ratelimit::Limiter {
    obs::ratelimit::Limiter::builder("http")
        .limit(u32::MAX / 2)
        .window(Duration::from_secs(60))
        .mode(obs::ratelimit::Mode::Approximate)
        .build_in_memory()
        .expect("valid limiter")
}

fn request() -> Request<Body> {
    let mut req = Request::get("/")
        .header("host", HeaderValue::from_static("127.0.0.1:3000"))
        .header("user-agent", HeaderValue::from_static("wrk/4.2"))
        .header("accept", HeaderValue::from_static("*/*"))
        .body(Body::empty())
        .expect("static request parts are valid");
    let peer: SocketAddr = ([127, 0, 0, 1], 40_000).into();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn drive(svc: &mut Router, req: Request<Body>) -> Response<Body> {
    let mut cx = Context::from_waker(Waker::noop());
    match Service::<Request<Body>>::poll_ready(svc, &mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("a router is always ready"),
    }
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        Poll::Ready(Err(e)) => match e {},
        Poll::Pending => unreachable!("the stack completes without waiting"),
    }
}

const CASES: [&str; 8] = [
    "bare",
    "request_id",
    "request_id+identity",
    "request_id+access_log",
    "request_id+metrics",
    "request_id+ratelimit",
    "request_id+sentry",
    "obs.layer()",
];

/// Builds the router of one case; `obs` keeps the facade alive for the last one.
fn case(name: &str, rt: &tokio::runtime::Runtime) -> (Router, Option<obs::Obs>) {
    let config = config();
    let with_id = |router: Router| router.layer(RequestIdLayer::new());
    let router = match name {
        "bare" => app(),
        "request_id" => with_id(app()),
        "request_id+identity" => with_id(app().layer(tower::layer::util::Identity::new())),
        "request_id+access_log" => with_id(app().layer(AccessLogLayer::from_config(&config.log))),
        "request_id+metrics" => {
            let registry = obs::metrics::Registry::new();
            let metrics =
                obs::metrics::http::HttpMetrics::register(&registry).expect("fresh registry");
            with_id(app().layer(obs::tower::metrics::HttpMetricsLayer::new(metrics)))
        }
        "request_id+ratelimit" => with_id(app().layer(obs::tower::RateLimitLayer::per_client_ip(
            limiter(),
            obs::tower::TrustedProxies::none(),
        ))),
        "request_id+sentry" => {
            let hub = std::sync::Arc::new(sentry::Hub::new(
                None,
                std::sync::Arc::new(sentry::Scope::default()),
            ));
            with_id(app().layer(obs::tower::SentryLayer::new().hub(hub)))
        }
        "obs.layer()" => {
            let obs = rt
                .block_on(
                    obs::Obs::builder()
                        .config(config)
                        .limiter(limiter())
                        .build(),
                )
                .expect("obs builds from the default config");
            return (app().layer(obs.layer()).with_state(()), Some(obs));
        }
        other => panic!("unknown case {other:?}; cases: {CASES:?}"),
    };
    // What `into_make_service` (so `axum::serve`) does: handlers become routes once, not
    // on every request (a `Router` called directly re-applies its layers per request).
    (router.with_state(()), None)
}

/// The subscriber `logging::try_init` (and so the facade and `e2e_target`) installs, writing
/// to `io::sink`; `OBS_BENCH_SUBSCRIBER=layer` installs obs's `LogLayer` on a
/// `tracing_subscriber::Registry` instead (what services with Sentry or OpenTelemetry layers
/// run), to compare the two.
fn install_subscriber() {
    let dispatch = match std::env::var("OBS_BENCH_SUBSCRIBER").as_deref() {
        Ok("layer") => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(obs::core::logging::layer(&config().log, std::io::sink)),
        ),
        Ok("obs") | Err(_) => obs::core::logging::dispatch(&config().log, std::io::sink)
            .expect("the bench's filter is valid"),
        Ok(other) => panic!("OBS_BENCH_SUBSCRIBER must be obs or layer, got {other:?}"),
    };
    tracing::dispatcher::set_global_default(dispatch).expect("first subscriber");
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("stack");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for name in CASES {
        let (mut router, _obs) = case(name, &rt);
        let res = drive(&mut router, request());
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(
            res.headers().contains_key("x-request-id"),
            name != "bare",
            "{name}: x-request-id"
        );
        g.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| black_box(drive(&mut router, black_box(req))),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, stack);

fn main() {
    install_subscriber();
    if let Some((name, n)) = support::count_mode() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mut router, _obs) = case(&name, &rt);
        for _ in 0..n {
            black_box(drive(&mut router, black_box(request())));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
