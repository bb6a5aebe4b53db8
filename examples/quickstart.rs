//! Quickstart: an axum service with everything obs has, in one call (`obs::Obs::from_env`):
//! JSON/pretty logs, request IDs, an access log, HTTP RED metrics, health endpoints, a
//! per-client-IP rate limit, telemetry run metrics and (feature `sentry`, `SENTRY_DSN`) Sentry.
//!
//! ```text
//! cargo run --example quickstart            # PORT=3000 by default, embedded defaults
//! LOG_FORMAT=pretty cargo run --example quickstart
//! cargo run --example quickstart --features sqlite      # + /api/analytics/* on in-memory SQLite
//! REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --example quickstart --features full      # Redis limiter, PostgreSQL telemetry
//! ```
//!
//! The first line it logs says what was enabled (`obs ready: logging=json sentry=off metrics
//! health=[process,disk,memory] ratelimit=memory(5/60s) telemetry=tracing ...`).
//!
//! What it shows:
//! - every response carries `x-request-id` (a fresh UUIDv7, or yours if you send a valid one;
//!   invalid ones are replaced, never echoed);
//! - every log line written while handling a request carries that `request_id`;
//! - one `obs::access` line per request with method, route template (`/users/{id}`, never
//!   the raw path), status, duration_ms and client_ip; `/health/*` probes are not logged
//!   unless `LOG_HEALTH_REQUESTS=true`; `LOG_REQUESTS=false` silences the others;
//! - handlers read the ID with the `ReqId`/`Ctx` extractors or `RequestContext::current()`;
//! - `/metrics`: `http_requests_total{method,route,status}` and friends plus process metrics;
//! - `/health/live|ready|startup|deep`: disk and memory checks with latencies, plus PostgreSQL
//!   and Redis when configured (details hidden unless you send
//!   `Authorization: Bearer $HEALTH_TOKEN` when `HEALTH_TOKEN` is set);
//! - a rate limit per client IP (`RATE_LIMIT_MAX=5` per `RATE_LIMIT_WINDOW=60` s by default):
//!   the sixth request within a minute gets `429` with `Retry-After`; probes and scrapes are
//!   never limited;
//! - `/runs/{id}` records a run metric through the telemetry recorder; with a SQL store
//!   (`--features sqlite`, or `DATABASE_URL`) `/api/analytics/metrics` aggregates them.
//!
//! Try (the server prints these too):
//!
//! ```text
//! curl -i http://127.0.0.1:3000/
//! curl -i http://127.0.0.1:3000/users/42 -H 'x-request-id: my-trace-123'
//! curl -i http://127.0.0.1:3000/users/42 -H 'x-request-id: bad value!'   # replaced
//! curl -i http://127.0.0.1:3000/fail                                     # 500, WARN access line
//! curl -i http://127.0.0.1:3000/health/live                              # not logged by default
//! curl -s http://127.0.0.1:3000/health/ready
//! curl -s http://127.0.0.1:3000/metrics | grep http_requests_total
//! for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/; done  # … 429
//! curl -i http://127.0.0.1:3000/runs/run-1                               # records duration_ms
//! curl -s 'http://127.0.0.1:3000/api/analytics/metrics?metric=duration_ms&aggregation=avg'  # with a SQL store
//! ```
//!
//! Needs no external service. Stop with Ctrl-C (graceful shutdown, telemetry and Sentry flushed).
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use obs::Obs;
use obs_core::RequestContext;
use obs_tower::extract::{Ctx, ReqId};

async fn index(ReqId(id): ReqId) -> String {
    tracing::info!("saying hello");
    format!("hello from obs, your request id is {id}\n")
}

async fn user(Path(id): Path<u64>, Ctx(ctx): Ctx) -> Json<serde_json::Value> {
    tracing::info!(user_id = id, "loading user");
    Json(serde_json::json!({
        "id": id,
        "request_id": ctx.request_id(),
        "route": ctx.route(),
        "client_ip": ctx.client_ip(),
    }))
}

async fn fail() -> (StatusCode, String) {
    // Code without the request in hand still finds the ID through the task-local context.
    let id = RequestContext::current_request_id();
    tracing::error!("something went wrong");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "failed; quote request id {} when reporting this\n",
            id.map(|id| id.to_string()).unwrap_or_default()
        ),
    )
}

/// A "run": does some work and records how long it took as a telemetry run metric.
async fn run(State(obs): State<Obs>, Path(run_id): Path<String>) -> String {
    let started = Instant::now();
    let work: u64 = (0..10_000u64).sum();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let recorded =
        obs.recorder()
            .record_metric(run_id.clone(), obs::telemetry::MetricName::DURATION_MS, ms);
    tracing::info!(run_id, duration_ms = ms, ?recorded, "run finished");
    format!("run {run_id} done ({work}), duration_ms={ms:.3} recorded: {recorded:?}\n")
}

/// The service's own routes (also used by `tests/quickstart.rs`).
pub(crate) fn routes(obs: &Obs) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user))
        .route("/fail", get(fail))
        .route("/runs/{id}", get(run))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .with_state(obs.clone())
}

/// The whole service: the routes with obs's layers (request IDs outermost, then Sentry,
/// access log, RED metrics, rate limit) and obs's endpoints (`/metrics`, `/health/*`, and
/// `/api/analytics/*` with a SQL telemetry store), which are not counted or limited.
pub(crate) fn app(obs: &Obs) -> Router {
    obs.apply(routes(obs))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Everything the environment and the features enable; a bad variable stops here with
    // an error that names it.
    let obs = Obs::builder()
        .service("quickstart", env!("CARGO_PKG_VERSION"))
        .build()
        .await?;
    let port = obs.config().server.port;

    let app = app(&obs);

    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("obs quickstart listening on {base} — try:");
    println!("  curl -i {base}/");
    println!("  curl -i {base}/users/42 -H 'x-request-id: my-trace-123'");
    println!("  curl -i {base}/users/42 -H 'x-request-id: bad value!'   # replaced, never echoed");
    println!("  curl -i {base}/fail                                     # 500");
    println!("  curl -i {base}/health/live                              # not in the access log");
    println!("  curl -s {base}/health/ready");
    println!("  curl -s {base}/metrics | grep http_requests_total");
    println!(
        "  curl -i {base}/                                         # request {} within {:?}: 429",
        obs.limiter().limit() + 1,
        obs.limiter().window()
    );
    println!("  curl -i {base}/runs/run-1                               # a telemetry run metric");
    if obs.analytics_store().is_some() {
        println!("  curl -s '{base}/api/analytics/metrics?metric=duration_ms&aggregation=avg'");
    }
    println!("Ctrl-C to stop.");

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    obs.shutdown().await;
    Ok(())
}
