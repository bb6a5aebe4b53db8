//! An rdev-shaped API gateway on obs (see `reference/rdev-monitoring.txt`): RED metrics for
//! every route (`http_requests_total`, `http_request_duration_seconds`), command metrics
//! (`rdev_commands_total{project,type,status}`, `rdev_commands_active`,
//! `rdev_command_duration_seconds`), auth metrics with failure reasons
//! (`rdev_auth_requests_total`, `rdev_auth_failures_total{reason}` with `invalid`, `revoked`,
//! `expired`, `ip_blocked`), `/health` and `/ready` as in rdev (readiness includes the
//! PostgreSQL check when `DATABASE_URL` is set with feature `postgres`), and the Prometheus
//! alert rules generated from the SLOs declared in code (`/alerts/rules.yml`).
//!
//! ```text
//! cargo run --example api_gateway                          # PORT=3000, embedded defaults
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example api_gateway --features postgres
//! ```
//!
//! Try:
//!
//! ```text
//! curl -i -X POST -H 'authorization: Bearer good-token' http://127.0.0.1:3000/api/projects/web/commands/shell
//! curl -i -X POST -H 'authorization: Bearer revoked-token' http://127.0.0.1:3000/api/projects/web/commands/git   # 401, reason=revoked
//! curl -i -X POST http://127.0.0.1:3000/api/projects/web/commands/git                                          # 401, reason=invalid
//! curl -s http://127.0.0.1:3000/metrics/business | grep rdev_
//! curl -s http://127.0.0.1:3000/ready                 # 200 / 503, with the database check when configured
//! curl -s http://127.0.0.1:3000/alerts/rules.yml      # recording + burn-rate alert rules (promtool-valid)
//! ```
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, get_service, post};
use axum::Router;
use obs::health::Probe;
use obs::metrics::generate::{rules, Slo};
use obs::metrics::{opts, Counter, DynCounter, DynHistogram, Gauge, LabelValue, MetricGroup};
use obs::tower::health::HealthEndpoints;
use obs::Obs;

obs::metrics::label_enum! {
    /// Why authentication failed.
    pub enum AuthReason { Invalid = "invalid", Revoked = "revoked", Expired = "expired", IpBlocked = "ip_blocked" }
}
obs::metrics::label_set! {
    /// `reason`.
    pub struct AuthFailure { reason: AuthReason }
}

obs::metrics::metric_group! {
    /// Command execution (rdev "Command Metrics"). Projects are open-ended: capped dynamic labels.
    pub struct CommandMetrics {
        /// Total commands executed.
        pub rdev_commands_total: DynCounter<3> =
            opts().labels(&["project", "type", "status"]).max_series(300),
        /// Currently running commands.
        pub rdev_commands_active: Gauge<()>,
        /// Command execution time.
        pub rdev_command_duration_seconds: DynHistogram<2> =
            opts().labels(&["project", "type"]).max_series(100).buckets(&[0.01, 0.1, 1.0, 10.0, 60.0, 300.0]),
    }
}

obs::metrics::metric_group! {
    /// Authentication (rdev "Auth Metrics").
    pub struct AuthMetrics {
        /// Auth attempts.
        pub rdev_auth_requests_total: Counter<()>,
        /// Auth failures by reason.
        pub rdev_auth_failures_total: Counter<AuthFailure>,
    }
}

#[derive(Clone)]
struct AppState {
    commands: std::sync::Arc<CommandMetrics>,
    auth: std::sync::Arc<AuthMetrics>,
    rules: std::sync::Arc<String>,
}

fn authenticate(auth: &AuthMetrics, headers: &HeaderMap) -> Result<(), AuthReason> {
    auth.rdev_auth_requests_total.inc(());
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let reason = match token {
        Some(t) if t.starts_with("good") => return Ok(()),
        Some(t) if t.starts_with("revoked") => AuthReason::Revoked,
        Some(t) if t.starts_with("expired") => AuthReason::Expired,
        Some(t) if t.starts_with("blocked") => AuthReason::IpBlocked,
        _ => AuthReason::Invalid,
    };
    auth.rdev_auth_failures_total.inc(AuthFailure { reason });
    tracing::warn!(reason = reason.as_str(), "authentication failed");
    Err(reason)
}

async fn run_command(
    State(state): State<AppState>,
    Path((project, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if let Err(reason) = authenticate(&state.auth, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            format!("unauthorized: {}\n", reason.as_str()),
        );
    }
    if !matches!(kind.as_str(), "claude" | "shell" | "git") {
        return (
            StatusCode::BAD_REQUEST,
            "type must be claude, shell or git\n".into(),
        );
    }
    let m = &state.commands;
    m.rdev_commands_active.inc(());
    let started = Instant::now();
    tracing::info!(project, r#type = kind, "running command");
    let status = if project == "broken" {
        "failure"
    } else {
        "success"
    };
    m.rdev_commands_active.dec(());
    m.rdev_commands_total
        .inc([project.as_str(), kind.as_str(), status]);
    m.rdev_command_duration_seconds.observe(
        [project.as_str(), kind.as_str()],
        started.elapsed().as_secs_f64(),
    );
    if status == "failure" {
        tracing::error!(project, r#type = kind, "command failed");
        return (StatusCode::INTERNAL_SERVER_ERROR, "command failed\n".into());
    }
    (StatusCode::OK, format!("{kind} command ran in {project}\n"))
}

/// The alert rules: availability and latency SLOs on the RED metrics, and a command
/// success SLO, generated against the registered descriptors (a typo fails here).
fn alert_rules(obs: &Obs) -> Result<String, Box<dyn std::error::Error>> {
    let slos = [
        Slo::http_availability("rdev-api-availability", 0.999),
        Slo::http_latency("rdev-api-latency", 0.99, 0.5),
        Slo::error_ratio(
            "rdev-commands",
            0.99,
            "rdev_commands_total",
            &[r#"status="failure""#],
        ),
    ];
    Ok(rules(&slos, &obs.metrics().descriptors())?)
}

pub(crate) fn app(obs: &Obs) -> Result<Router, Box<dyn std::error::Error>> {
    let state = AppState {
        commands: std::sync::Arc::new(CommandMetrics::register(obs.metrics())?),
        auth: std::sync::Arc::new(AuthMetrics::register(obs.metrics())?),
        rules: std::sync::Arc::new(alert_rules(obs)?),
    };
    // rdev's probe paths, next to obs's /health/*.
    let endpoints = HealthEndpoints::new(obs.health().clone());
    let probes = Router::new()
        .route_service("/health", get_service(endpoints.service(Probe::Live)))
        .route_service("/ready", get_service(endpoints.service(Probe::Ready)));
    let routes = Router::new()
        .route("/api/projects/{project}/commands/{type}", post(run_command))
        .route(
            "/alerts/rules.yml",
            get(|State(s): State<AppState>| async move { (*s.rules).clone() }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .with_state(state);
    Ok(obs.apply(routes).merge(probes))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let obs = Obs::builder()
        .service("api_gateway", env!("CARGO_PKG_VERSION"))
        .build()
        .await?;
    let app = app(&obs)?;
    let listener =
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, obs.config().server.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("api_gateway listening on {base}");
    println!("  curl -i -X POST -H 'authorization: Bearer good-token' {base}/api/projects/web/commands/shell");
    println!("  curl -s {base}/metrics/business | grep rdev_");
    println!("  curl -s {base}/ready");
    println!("  curl -s {base}/alerts/rules.yml");
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
