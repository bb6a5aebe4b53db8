//! A GitTinkerer-shaped webhook service on obs (see
//! `reference/gittinkerer-observability.txt`): GitHub webhooks with two rate-limit layers
//! (per client IP on the whole service, per repository inside the handler), Sentry events
//! tagged with `run_id` and `repo`, run metrics (`duration_ms`, `tokens_used`,
//! `files_changed`) recorded per run and flushed at shutdown, request IDs on every log line,
//! and the analytics API over the run metrics.
//!
//! ```text
//! cargo run --example webhook_service                     # PORT=3000, embedded defaults
//! cargo run --example webhook_service --features sqlite   # + /api/analytics/* (in-memory SQLite)
//! REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   SENTRY_DSN=... cargo run --example webhook_service --features full
//! ```
//!
//! Try:
//!
//! ```text
//! H='-H content-type:application/json -H x-github-event:issue_comment'
//! curl -i $H -d '{"repository":{"full_name":"acme/api"},"issue":{"number":7}}' http://127.0.0.1:3000/webhooks/github
//! # the 6th delivery for acme/api within RATE_LIMIT_WINDOW: 429 "Rate limited per repository"
//! curl -i $H -d '{"repository":{"full_name":"acme/broken"}}' http://127.0.0.1:3000/webhooks/github   # 500, Sentry event
//! curl -i -H content-type:application/json -d '{}' http://127.0.0.1:3000/webhooks/github             # 400 invalid
//! curl -s 'http://127.0.0.1:3000/api/analytics/metrics?metric=duration_ms&aggregation=avg'           # with a SQL store
//! curl -s http://127.0.0.1:3000/metrics | grep -E 'http_requests_total|ratelimit_requests_total'
//! curl -s http://127.0.0.1:3000/health/ready
//! ```
//!
//! The per-IP limit (`RATE_LIMIT_MAX` per `RATE_LIMIT_WINDOW`, default 5/60 s) comes from
//! `obs.layer()`; the per-repository limiter has the same settings and the same backend
//! (Redis when `REDIS_URL` is set and the `redis` feature is on). A repository refused by
//! its own limit is answered by `too_many_requests`, so the per-IP layer refunds its
//! admission: one repository cannot eat a caller's whole budget.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use obs::ratelimit::Limiter;
use obs::telemetry::MetricName;
use obs::Obs;
use serde_json::{json, Value};

#[derive(Clone)]
struct AppState {
    obs: Obs,
    per_repo: Limiter,
}

async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(payload): Json<Value>,
) -> Response {
    let started = Instant::now();
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(repo) = payload["repository"]["full_name"].as_str() else {
        tracing::warn!(event, "webhook validation failed: no repository");
        #[cfg(feature = "sentry")]
        obs::core::sentry::capture_message(
            "webhook validation failed",
            obs::core::sentry::Level::Warning,
            [("event", event), ("source", "webhook")],
        );
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "missing repository.full_name"})),
        )
            .into_response();
    };

    // Layer 2: per repository.
    let decision = state.per_repo.check(repo).await;
    if !decision.allowed {
        tracing::warn!(
            repo,
            retry_after = decision.retry_after_secs(),
            "rate limited per repository"
        );
        let mut res: Response = obs::tower::ratelimit::too_many_requests("repo", &decision);
        *res.body_mut() = Json(json!({
            "error": "Rate limited per repository",
            "retryAfter": decision.retry_after_secs(),
            "remainingRequests": decision.remaining,
        }))
        .into_response()
        .into_body();
        return res;
    }

    let run_id = obs::RequestId::generate().to_string();
    let span = tracing::info_span!("run", run_id = %run_id, repo);
    let _enter = span.enter();
    #[cfg(feature = "sentry")]
    {
        // On this request's own hub (SentryLayer): the tags never reach other requests.
        obs::core::sentry::set_tag("run_id", &run_id);
        obs::core::sentry::set_tag("repo", repo);
        obs::core::sentry::set_tag("source", "webhook");
        obs::core::sentry::breadcrumb("webhook", "webhook accepted", [("event", event)]);
    }
    tracing::info!(run_id, repo, event, "processing webhook");

    if repo.ends_with("/broken") {
        tracing::error!(run_id, repo, "run failed: could not clone repository");
        #[cfg(feature = "sentry")]
        obs::core::sentry::capture_message(
            "run failed: could not clone repository",
            obs::core::sentry::Level::Error,
            [("run_id", run_id.as_str()), ("repo", repo)],
        );
        state
            .obs
            .recorder()
            .record_metric(run_id.clone(), MetricName::EXIT_CODE, 1.0);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "run failed", "run_id": run_id})),
        )
            .into_response();
    }

    // The run's metrics, queued now, written in batches (and flushed at shutdown).
    let recorder = state.obs.recorder();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    recorder.record_metric(run_id.clone(), MetricName::DURATION_MS, ms);
    recorder.record_metric(run_id.clone(), MetricName::TOKENS_USED, 1250.0);
    recorder.record_metric(run_id.clone(), MetricName::FILES_CHANGED, 3.0);
    recorder.record_metric(run_id.clone(), MetricName::EXIT_CODE, 0.0);
    tracing::info!(run_id, duration_ms = ms, "webhook processed");
    (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "repo": repo, "remaining": decision.remaining})),
    )
        .into_response()
}

async fn per_repo_limiter(obs: &Obs) -> Result<Limiter, Box<dyn std::error::Error>> {
    let builder = Limiter::builder("repo").config(&obs.config().rate_limit);
    #[cfg(feature = "redis")]
    if let Some(redis) = &obs.config().redis {
        return Ok(builder.build_redis(redis.url()).await?);
    }
    Ok(builder.build_in_memory()?)
}

pub(crate) async fn app(obs: &Obs) -> Result<Router, Box<dyn std::error::Error>> {
    let per_repo = per_repo_limiter(obs).await?;
    let state = AppState {
        obs: obs.clone(),
        per_repo,
    };
    Ok(obs.apply(
        Router::new()
            .route("/webhooks/github", post(webhook))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
            .with_state(state),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = Obs::builder()
        .service("webhook_service", env!("CARGO_PKG_VERSION"))
        .build()
        .await?;
    let app = app(&obs).await?;
    let listener =
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, obs.config().server.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("webhook_service listening on {base}");
    println!("  curl -i -H content-type:application/json -H x-github-event:issue_comment -d '{{\"repository\":{{\"full_name\":\"acme/api\"}}}}' {base}/webhooks/github");
    println!("  curl -s {base}/health/ready");
    println!("  curl -s {base}/metrics");
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
