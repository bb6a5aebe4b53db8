//! Asset-Forge's business metrics (see `shared/reference/asset-forge-observability.txt`)
//! defined as types with obs-metrics, incremented by handlers, served at `/metrics/business`
//! next to process + HTTP RED metrics at `/metrics`.
//!
//! ```text
//! cargo run --example business_metrics --features tower,metrics
//! curl -X POST 'localhost:3004/api/assets/model/generate?seconds=42'
//! curl -X POST 'localhost:3004/api/assets/texture/generate?seconds=7&fail=timeout'
//! curl -X POST localhost:3004/api/login/github
//! curl localhost:3004/metrics/business
//! curl localhost:3004/health/live      # with feature `health` (on by default)
//! ```
//!
//! The generation handler does not really generate anything: it records the duration given
//! in `?seconds=` so the example (and the Prometheus end-to-end test that scrapes it) stays
//! deterministic.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use obs_metrics::http::HttpMetrics;
use obs_metrics::{opts, Counter, DynCounter, DynHistogram, Gauge, Histogram, LabelValue};
use obs_metrics::{MetricGroup, Registry};
use obs_tower::metrics::{metrics_router, HttpMetricsLayer};
use obs_tower::RequestIdLayer;

obs_metrics::label_enum! {
    /// Kind of generated asset.
    pub enum AssetType { Model = "model", Texture = "texture", Audio = "audio", Sprite = "sprite" }
}
obs_metrics::label_enum! {
    /// Outcome of an operation.
    pub enum Status { Success = "success", Failure = "failure" }
}
obs_metrics::label_enum! {
    /// Why a generation failed.
    pub enum ErrorType { Timeout = "timeout", Provider = "provider_error", Invalid = "invalid_input" }
}
obs_metrics::label_enum! {
    /// Login identity provider.
    pub enum AuthProvider { Github = "github", Google = "google", Email = "email" }
}
obs_metrics::label_enum! {
    /// What a user did.
    pub enum Action { Create = "create", Update = "update", Delete = "delete" }
}
obs_metrics::label_enum! {
    /// What a user acted on.
    pub enum ResourceType { Asset = "asset", Project = "project" }
}

obs_metrics::label_set! {
    /// `type`, `status`.
    pub struct Generation { kind as "type": AssetType, status: Status }
}
obs_metrics::label_set! {
    /// `type`.
    pub struct Kind { kind as "type": AssetType }
}
obs_metrics::label_set! {
    /// `type`, `error_type`.
    pub struct GenerationError { kind as "type": AssetType, error_type: ErrorType }
}
obs_metrics::label_set! {
    /// `provider`.
    pub struct Login { provider: AuthProvider }
}
obs_metrics::label_set! {
    /// `action`, `resource_type`.
    pub struct UserAction { action: Action, resource_type: ResourceType }
}

obs_metrics::metric_group! {
    /// Asset generation.
    pub struct AssetMetrics {
        /// Total asset generations by type and status.
        pub asset_generations_total: Counter<Generation> = opts().exemplars(),
        /// Time taken to generate assets.
        pub asset_generation_duration_seconds: Histogram<Kind> =
            opts().buckets(&[5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0]),
        /// Failed generations by type and error type.
        pub asset_generation_errors_total: Counter<GenerationError>,
    }
}

obs_metrics::metric_group! {
    /// AI/LLM usage. Models are open-ended strings: dynamic labels with a series cap.
    pub struct AiMetrics {
        /// AI API calls by provider, model and status.
        pub ai_api_calls_total: DynCounter<3> =
            opts().labels(&["provider", "model", "status"]).max_series(200),
        /// AI API latency.
        pub ai_api_latency_seconds: DynHistogram<2> =
            opts().labels(&["provider", "model"]).max_series(100).buckets(&[0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        /// Token usage by provider, model and type (prompt, completion).
        pub ai_tokens_used_total: DynCounter<3> =
            opts().labels(&["provider", "model", "type"]).max_series(200),
    }
}

obs_metrics::metric_group! {
    /// User activity.
    pub struct UserMetrics {
        /// Total logins by provider.
        pub user_logins_total: Counter<Login>,
        /// Currently active user sessions.
        pub user_active_sessions: Gauge,
        /// User actions by type and resource type.
        pub user_actions_total: Counter<UserAction>,
    }
}

/// All business metric groups of the service.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Asset generation.
    pub assets: AssetMetrics,
    /// AI usage.
    pub ai: AiMetrics,
    /// Users.
    pub users: UserMetrics,
}

impl Metrics {
    /// Registers every group as business metrics.
    pub fn register(registry: &Registry) -> Result<Self, obs_metrics::RegistryError> {
        Ok(Self {
            assets: AssetMetrics::register(registry)?,
            ai: AiMetrics::register(registry)?,
            users: UserMetrics::register(registry)?,
        })
    }
}

/// The service's objectives, next to its metrics (SLO-as-code): they drive the generated
/// recording and alert rules (`cargo run --example metrics_artifacts`).
pub fn slos() -> Vec<obs_metrics::generate::Slo> {
    use obs_metrics::generate::Slo;
    vec![
        Slo::http_availability("api-availability", 0.999),
        Slo::http_latency("api-latency", 0.99, 0.5),
        Slo::error_ratio(
            "asset-generation-success",
            0.99,
            "asset_generations_total",
            &[r#"status="failure""#],
        ),
        Slo::latency(
            "asset-generation-latency",
            0.95,
            "asset_generation_duration_seconds",
            120.0,
        )
        .filter(r#"type="model""#),
    ]
}

#[derive(Debug, serde::Deserialize)]
struct GenerateParams {
    seconds: Option<f64>,
    fail: Option<String>,
}

/// The service: business routes with HTTP metrics and request IDs, plus the two metrics
/// endpoints. Registers process, HTTP and business metrics in `registry`.
pub fn app(registry: &Registry) -> Router {
    registry
        .register_process_metrics()
        .expect("process metrics register once");
    let http = HttpMetrics::register(registry).expect("HTTP metrics register once");
    let m = Metrics::register(registry).expect("business metrics are valid");

    let gen = m.clone();
    let login = m.clone();
    let logout = m.clone();
    let act = m;
    Router::new()
        .route(
            "/api/assets/{type}/generate",
            post(
                move |Path(kind): Path<String>, Query(p): Query<GenerateParams>| async move {
                    let Some(kind) = AssetType::from_label(&kind) else {
                        return StatusCode::NOT_FOUND;
                    };
                    let error = match p.fail.as_deref() {
                        None => None,
                        Some(e) => match ErrorType::from_label(e) {
                            Some(e) => Some(e),
                            None => return StatusCode::BAD_REQUEST,
                        },
                    };
                    let status = if error.is_some() {
                        Status::Failure
                    } else {
                        Status::Success
                    };
                    gen.assets
                        .asset_generations_total
                        .inc(Generation { kind, status });
                    gen.assets
                        .asset_generation_duration_seconds
                        .observe(Kind { kind }, p.seconds.unwrap_or(1.0));
                    gen.ai
                        .ai_api_calls_total
                        .inc(["openai", "gpt-4o", status.as_str()]);
                    gen.ai
                        .ai_api_latency_seconds
                        .observe(["openai", "gpt-4o"], 1.2);
                    gen.ai
                        .ai_tokens_used_total
                        .inc_by(["openai", "gpt-4o", "prompt"], 350);
                    gen.ai
                        .ai_tokens_used_total
                        .inc_by(["openai", "gpt-4o", "completion"], 1200);
                    match error {
                        Some(error_type) => {
                            gen.assets
                                .asset_generation_errors_total
                                .inc(GenerationError { kind, error_type });
                            StatusCode::BAD_GATEWAY
                        }
                        None => StatusCode::CREATED,
                    }
                },
            ),
        )
        .route(
            "/api/login/{provider}",
            post(move |Path(provider): Path<String>| async move {
                let Some(provider) = AuthProvider::from_label(&provider) else {
                    return StatusCode::NOT_FOUND;
                };
                login.users.user_logins_total.inc(Login { provider });
                login.users.user_active_sessions.inc(());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/api/logout",
            post(move || async move {
                logout.users.user_active_sessions.dec(());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/api/{resource}/{action}",
            post(
                move |Path((resource, action)): Path<(String, String)>| async move {
                    match (
                        ResourceType::from_label(&resource),
                        Action::from_label(&action),
                    ) {
                        (Some(resource_type), Some(action)) => {
                            act.users.user_actions_total.inc(UserAction {
                                action,
                                resource_type,
                            });
                            StatusCode::NO_CONTENT
                        }
                        _ => StatusCode::NOT_FOUND,
                    }
                },
            ),
        )
        // An explicit fallback is layered too, so unmatched requests are counted under
        // `route="__unmatched__"` (merging into a router with the default fallback would
        // otherwise replace it with an unlayered one).
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(HttpMetricsLayer::new(http))
        .layer(RequestIdLayer::new())
        .merge(metrics_router(registry.clone()))
}

#[allow(dead_code)] // `main` of the example; unused where the file is included as a module.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3004".into());
    let registry = Registry::new();
    let app = app(&registry);
    // Probes for the orchestrator (and `cargo xtask examples`). Behind `cfg` because this file
    // is also compiled, as a module, by `metrics_artifacts` and the Prometheus tests, which
    // need only `tower,metrics`.
    #[cfg(feature = "health")]
    let app = app.merge(health_router()?);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "business_metrics listening on http://{}  (GET /metrics, /metrics/business, /health/live)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `/health/live|ready|startup|deep`: this service has no dependency to check, so only a
/// liveness check of the process itself.
#[cfg(feature = "health")]
fn health_router() -> Result<Router, obs_health::HealthError> {
    let health = obs_health::Health::builder()
        .service("business-metrics-example", env!("CARGO_PKG_VERSION"))
        .register(
            obs_health::Registration::new("process", obs_health::check_fn(|| async {}))
                .probes(obs_health::Probes::LIVE),
        )
        .build()?;
    Ok(obs_tower::health::HealthEndpoints::new(health).router())
}
