//! Quickstart: an axum service with JSON/pretty logs, request IDs, an access log, HTTP RED
//! metrics and health endpoints.
//!
//! ```text
//! cargo run --example quickstart            # PORT=3000 by default
//! LOG_FORMAT=json cargo run --example quickstart
//! ```
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
//! - `/health/live|ready|startup|deep`: disk and memory checks with latencies (details hidden
//!   unless you send `Authorization: Bearer $HEALTH_TOKEN` when `HEALTH_TOKEN` is set).
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
//! ```
//!
//! Needs no external service. Stop with Ctrl-C (graceful shutdown).
use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use obs_core::RequestContext;
use obs_health::checks::{DiskCheck, MemoryCheck};
use obs_health::{check_fn, Health, Probes, Registration};
use obs_metrics::{http::HttpMetrics, Registry};
use obs_tower::extract::{Ctx, ReqId};
use obs_tower::health::{DetailsAccess, HealthEndpoints};
use obs_tower::metrics::{metrics_router, HttpMetricsLayer};
use obs_tower::{AccessLogLayer, RequestIdLayer};

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

/// Health checks that need no external service: the process itself (liveness), free disk
/// space and memory (readiness/deep).
fn health() -> Health {
    Health::builder()
        .service("quickstart", env!("CARGO_PKG_VERSION"))
        .register(Registration::new("process", check_fn(|| async { true })).probes(Probes::LIVE))
        .check("disk", DiskCheck::new("."))
        .check("memory", MemoryCheck::new())
        .build()
        .expect("static health registrations are valid")
}

/// The service: four routes, request IDs, access log, RED metrics, health endpoints (also
/// used by `tests/quickstart.rs`).
pub(crate) fn app(log: &obs_core::logging::LogConfig) -> Router {
    let registry = Registry::new();
    registry
        .register_process_metrics()
        .expect("process metrics register once");
    let http = HttpMetrics::register(&registry).expect("HTTP metrics register once");
    let details = match std::env::var("HEALTH_TOKEN") {
        Ok(token) if !token.is_empty() => DetailsAccess::bearer(token),
        _ => DetailsAccess::Hidden,
    };
    Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user))
        .route("/fail", get(fail))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        // Router::layer wraps every route, so the layers see the matched route template.
        // The last one added is the outermost: RequestIdLayer creates the context first.
        .layer(HttpMetricsLayer::new(http))
        .layer(AccessLogLayer::from_config(log))
        .layer(RequestIdLayer::new())
        // Merged after layering: probes and scrapes are not counted as traffic, but they
        // still get request IDs and (when LOG_HEALTH_REQUESTS=true) access lines.
        .merge(
            HealthEndpoints::new(health())
                .details(details)
                .router()
                .merge(metrics_router(registry))
                .layer(AccessLogLayer::from_config(log))
                .layer(RequestIdLayer::new()),
        )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = obs_core::logging::LogConfig::from_env()?;
    obs_core::logging::init(&log);

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT must be a port number (0-65535), got {p:?}"))?,
        Err(_) => 3000,
    };

    let app = app(&log);

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
    Ok(())
}
