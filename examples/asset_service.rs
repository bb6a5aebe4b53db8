//! An Asset-Forge-shaped service on obs (see `reference/asset-forge-observability.txt`):
//! business metrics at `/metrics/business` (`asset_generations_total{type,status}`,
//! `asset_generation_duration_seconds{type}`, `asset_generation_errors_total{type,error_type}`),
//! `/api/health/live|ready|deep` with a required database check (when `DATABASE_URL` is set)
//! and an **optional** Qdrant check (a failure degrades, never fails, readiness), and Sentry
//! events with a severity and the breadcrumbs that led to them (feature `sentry`).
//!
//! ```text
//! cargo run --example asset_service                       # PORT=3000, embedded defaults
//! QDRANT_ADDR=127.0.0.1:6333 cargo run --example asset_service
//! SENTRY_DSN=... DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example asset_service --features full
//! ```
//!
//! Try:
//!
//! ```text
//! curl -i -X POST http://127.0.0.1:3000/api/assets/model            # 201, counted
//! curl -i -X POST http://127.0.0.1:3000/api/assets/texture?fail=1   # 502, error counted, Sentry event (severity error)
//! curl -s http://127.0.0.1:3000/metrics/business
//! curl -s http://127.0.0.1:3000/api/health/ready    # degraded (200): optional qdrant unreachable
//! curl -s http://127.0.0.1:3000/api/health/deep
//! ```
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use obs::health::{check_fn, CheckResult, Probes, Registration};
use obs::metrics::{opts, Counter, Histogram, LabelValue, MetricGroup};
use obs::tower::health::HealthEndpoints;
use obs::Obs;

obs::metrics::label_enum! {
    /// Kind of generated asset.
    pub enum AssetType { Model = "model", Texture = "texture", Audio = "audio", Sprite = "sprite" }
}
obs::metrics::label_enum! {
    /// Outcome.
    pub enum Outcome { Success = "success", Failure = "failure" }
}
obs::metrics::label_enum! {
    /// Why a generation failed.
    pub enum ErrorType { Timeout = "timeout", Provider = "provider_error" }
}
obs::metrics::label_set! {
    /// `type`, `status`.
    pub struct Generation { kind as "type": AssetType, status: Outcome }
}
obs::metrics::label_set! {
    /// `type`.
    pub struct Kind { kind as "type": AssetType }
}
obs::metrics::label_set! {
    /// `type`, `error_type`.
    pub struct GenerationError { kind as "type": AssetType, error_type: ErrorType }
}
obs::metrics::metric_group! {
    /// Asset generation (served at /metrics/business).
    pub struct AssetMetrics {
        /// Total asset generations by type and status.
        pub asset_generations_total: Counter<Generation>,
        /// Time taken to generate assets.
        pub asset_generation_duration_seconds: Histogram<Kind> =
            opts().buckets(&[0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
        /// Failed generations by type and error type.
        pub asset_generation_errors_total: Counter<GenerationError>,
    }
}

#[derive(serde::Deserialize)]
struct GenerateParams {
    fail: Option<u8>,
}

async fn generate(
    State(metrics): State<std::sync::Arc<AssetMetrics>>,
    Path(kind): Path<String>,
    Query(params): Query<GenerateParams>,
) -> (StatusCode, String) {
    let Some(kind) = AssetType::from_label(&kind) else {
        return (StatusCode::NOT_FOUND, "unknown asset type\n".into());
    };
    let started = Instant::now();
    #[cfg(feature = "sentry")]
    obs::core::sentry::breadcrumb(
        "generation",
        "Starting asset generation",
        [("assetType", kind.as_str())],
    );
    tracing::info!(asset_type = kind.as_str(), "starting asset generation");
    let failed = params.fail.unwrap_or(0) != 0;
    metrics
        .asset_generation_duration_seconds
        .observe(Kind { kind }, started.elapsed().as_secs_f64());
    if failed {
        metrics.asset_generations_total.inc(Generation {
            kind,
            status: Outcome::Failure,
        });
        metrics.asset_generation_errors_total.inc(GenerationError {
            kind,
            error_type: ErrorType::Provider,
        });
        tracing::warn!(
            asset_type = kind.as_str(),
            "provider rejected the generation"
        );
        #[cfg(feature = "sentry")]
        obs::core::sentry::capture_message(
            "asset_generation_failed",
            obs::core::sentry::Level::Error,
            [
                ("assetType", kind.as_str()),
                ("errorType", "provider_error"),
                ("endpoint", "/api/assets"),
            ],
        );
        return (StatusCode::BAD_GATEWAY, "generation failed\n".into());
    }
    metrics.asset_generations_total.inc(Generation {
        kind,
        status: Outcome::Success,
    });
    (
        StatusCode::CREATED,
        format!("{} generated\n", kind.as_str()),
    )
}

/// Qdrant (vector database): optional — when it is down, search degrades but the service
/// still serves; the readiness probe says `degraded` with 200.
fn qdrant_check() -> Registration {
    let addr = std::env::var("QDRANT_ADDR").unwrap_or_else(|_| "127.0.0.1:6333".into());
    Registration::new(
        "qdrant",
        check_fn(move || {
            let addr = addr.clone();
            async move {
                match tokio::time::timeout(
                    Duration::from_secs(1),
                    tokio::net::TcpStream::connect(&addr),
                )
                .await
                {
                    Ok(Ok(_)) => CheckResult::healthy(),
                    Ok(Err(e)) => CheckResult::unhealthy(format!("{addr}: {e}")),
                    Err(_) => CheckResult::unhealthy(format!("{addr}: connect timed out")),
                }
            }
        }),
    )
    .probes(Probes::READY | Probes::DEEP)
    .optional()
}

pub(crate) fn app(obs: &Obs) -> Result<Router, Box<dyn std::error::Error>> {
    let metrics = std::sync::Arc::new(AssetMetrics::register(obs.metrics())?);
    let routes = Router::new()
        .route("/api/assets/{type}", post(generate))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .with_state(metrics);
    // Asset-Forge's probe paths (/api/health/*) next to obs's /health/*.
    let api_health = HealthEndpoints::new(obs.health().clone()).router_at("/api/health");
    Ok(obs.apply(routes).merge(api_health))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = Obs::builder()
        .service("asset_service", env!("CARGO_PKG_VERSION"))
        .register(qdrant_check())
        .build()
        .await?;
    let app = app(&obs)?;
    let listener =
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, obs.config().server.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("asset_service listening on {base}");
    println!("  curl -i -X POST {base}/api/assets/model");
    println!("  curl -i -X POST '{base}/api/assets/texture?fail=1'");
    println!("  curl -s {base}/metrics/business");
    println!("  curl -s {base}/api/health/ready");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    obs.shutdown().await;
    Ok(())
}
