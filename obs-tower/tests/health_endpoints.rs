//! `/health/*` endpoints: status codes, headers, JSON shape, details access, liveness isolation,
//! startup latch, per-check route, panic containment, and real PostgreSQL / Redis behind them.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use obs_health::checks::{PostgresCheck, RedisCheck};
use obs_health::{check_fn, CheckResult, Health, Probes, Registration, Status};
use obs_tower::health::{DetailsAccess, HealthEndpoints, StatusCodes};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

async fn get(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, json)
}

fn switchable(up: Arc<AtomicBool>) -> impl obs_health::HealthCheck {
    check_fn(move || {
        let up = up.clone();
        async move {
            if up.load(Ordering::SeqCst) {
                CheckResult::healthy().with_detail("host", "db.internal")
            } else {
                CheckResult::unhealthy("connection refused by db.internal")
            }
        }
    })
}

#[tokio::test]
async fn ready_maps_status_to_http_and_sets_headers() {
    let db_up = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check("database", switchable(db_up.clone()))
        .register(
            Registration::new("qdrant", check_fn(|| async { Err::<(), _>("timeout") })).optional(),
        )
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router();

    let (code, headers, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::OK, "{json}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["probe"], "ready");
    assert_eq!(json["checks"]["database"]["status"], "healthy");
    assert_eq!(json["checks"]["qdrant"]["status"], "unhealthy");
    assert!(json["latency_ms"].is_number());
    assert!(json["timestamp"].is_string());

    db_up.store(false, Ordering::SeqCst);
    let (code, headers, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(json["status"], "unhealthy");
}

#[tokio::test]
async fn details_hidden_unless_bearer_token_matches() {
    let health = Health::builder()
        .service("svc", "9.9.9")
        .check(
            "database",
            check_fn(|| async { CheckResult::unhealthy("password auth failed for user app") }),
        )
        .check(
            "cache",
            check_fn(|| async { CheckResult::healthy().with_detail("keys", 12) }),
        )
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health.clone())
        .details(DetailsAccess::bearer("let-me-in"))
        .router();

    for token in [
        None,
        Some("wrong"),
        Some("let-me-i"),
        Some("let-me-in-please"),
    ] {
        let (code, _, json) = get(&app, "/health/deep", token).await;
        assert_eq!(
            code,
            StatusCode::SERVICE_UNAVAILABLE,
            "status is always visible"
        );
        assert_eq!(json["checks"]["database"]["status"], "unhealthy");
        assert!(
            json["checks"]["database"].get("error").is_none(),
            "{token:?}: {json}"
        );
        assert!(json["checks"]["cache"].get("details").is_none());
        assert!(json.get("system").is_none());
    }
    let (_, _, json) = get(&app, "/health/deep", Some("let-me-in")).await;
    assert_eq!(
        json["checks"]["database"]["error"],
        "password auth failed for user app"
    );
    assert_eq!(json["checks"]["cache"]["details"]["keys"], 12);
    assert_eq!(json["system"]["version"], "9.9.9");

    // Public: everyone sees details
    let app: axum::Router = HealthEndpoints::new(health)
        .details(DetailsAccess::Public)
        .router();
    let (_, _, json) = get(&app, "/health/deep", None).await;
    assert_eq!(json["checks"]["cache"]["details"]["keys"], 12);
}

#[tokio::test]
async fn status_code_mapping_is_configurable() {
    let health = Health::builder()
        .check("slow", check_fn(|| async { Status::Degraded }))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health)
        .status_codes(StatusCodes {
            degraded: StatusCode::SERVICE_UNAVAILABLE,
            ..StatusCodes::default()
        })
        .router();
    let (code, _, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "degraded");
}

#[tokio::test]
async fn live_never_runs_dependency_checks() {
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let health = Health::builder()
        .check(
            "database",
            check_fn(move || {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    false
                }
            }),
        )
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router();
    for _ in 0..10 {
        let (code, _, json) = get(&app, "/health/live", None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(json["status"], "healthy");
        assert_eq!(json["checks"], serde_json::json!({}));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let (code, _, _) = get(&app, "/health/deep", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn live_runs_checks_registered_for_it() {
    let health = Health::builder()
        .register(Registration::new("worker", check_fn(|| async { false })).probes(Probes::LIVE))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router();
    let (code, _, json) = get(&app, "/health/live", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["checks"]["worker"]["status"], "unhealthy");
}

#[tokio::test]
async fn startup_latches() {
    let up = Arc::new(AtomicBool::new(false));
    let health = Health::builder()
        .check("migrations", switchable(up.clone()))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router();
    assert_eq!(
        get(&app, "/health/startup", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    up.store(true, Ordering::SeqCst);
    assert_eq!(get(&app, "/health/startup", None).await.0, StatusCode::OK);
    up.store(false, Ordering::SeqCst);
    assert_eq!(get(&app, "/health/startup", None).await.0, StatusCode::OK);
    assert_eq!(
        get(&app, "/health/ready", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn per_check_route() {
    let health = Health::builder()
        .check("db", check_fn(|| async { true }))
        .check("mq", check_fn(|| async { false }))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router();
    let (code, _, json) = get(&app, "/health/checks/db", None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(json["checks"]["db"]["status"], "healthy");
    assert!(json.get("probe").is_none());
    let (code, _, json) = get(&app, "/health/checks/mq", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "unhealthy");
    let (code, _, _) = get(&app, "/health/checks/storage", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn panicking_check_still_gets_an_answer() {
    let health = Health::builder()
        .check(
            "boom",
            check_fn(|| async {
                if true {
                    panic!("kaboom");
                }
                true
            }),
        )
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health)
        .details(DetailsAccess::Public)
        .router();
    let (code, _, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json["checks"]["boom"]["error"]
        .as_str()
        .unwrap()
        .contains("kaboom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_check_answers_within_timeout_over_http() {
    let mut b = Health::builder();
    for i in 0..49 {
        b = b.check(format!("ok{i}"), check_fn(|| async { true }));
    }
    let b = b.register(
        Registration::new("hang", check_fn(std::future::pending::<bool>))
            .timeout(Duration::from_millis(250)),
    );
    let app: axum::Router = HealthEndpoints::new(b.build().unwrap()).router();
    let started = std::time::Instant::now();
    let (code, _, json) = get(&app, "/health/ready", None).await;
    let elapsed = started.elapsed();
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["checks"].as_object().unwrap().len(), 50);
    assert!(elapsed < Duration::from_millis(350), "{elapsed:?}");
}

#[tokio::test]
async fn real_postgres_and_redis_behind_the_endpoints() {
    let schema = obs_test_support::PgSchema::create("health_tower", 2).await;
    let redis_url = obs_test_support::require_redis();
    let redis_ok = redis::Client::open(redis_url.as_str()).unwrap();
    let redis_down = redis::Client::open("redis://127.0.0.1:1").unwrap();

    let healthy = Health::builder()
        .check("database", PostgresCheck::new(schema.pool.clone()))
        .check("redis", RedisCheck::from_client(redis_ok))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(healthy)
        .details(DetailsAccess::Public)
        .router();
    let (code, _, json) = get(&app, "/health/deep", None).await;
    assert_eq!(code, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["checks"]["database"]["details"]["connected"], true);
    assert!(json["checks"]["redis"]["details"]["latency_ms"].is_number());

    let broken = Health::builder()
        .check("database", PostgresCheck::new(schema.pool.clone()))
        .check("redis", RedisCheck::from_client(redis_down))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(broken)
        .details(DetailsAccess::Public)
        .router();
    let (code, _, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["checks"]["database"]["status"], "healthy");
    assert_eq!(json["checks"]["redis"]["status"], "unhealthy");
    assert!(json["checks"]["redis"]["error"]
        .as_str()
        .unwrap()
        .contains("connecting to Redis failed"));

    let pool = schema.pool.clone();
    schema.drop_schema().await; // pool closed: "stopped connection"
    let closed = Health::builder()
        .check("database", PostgresCheck::new(pool))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(closed).router();
    let (code, _, json) = get(&app, "/health/ready", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["checks"]["database"]["status"], "unhealthy");
}

#[tokio::test]
async fn router_at_serves_the_reference_paths() {
    let health = Health::builder()
        .check("db", check_fn(|| async { true }))
        .build()
        .unwrap();
    let app: axum::Router = HealthEndpoints::new(health).router_at("/api/health/");
    for path in [
        "/api/health/live",
        "/api/health/ready",
        "/api/health/startup",
        "/api/health/deep",
        "/api/health/checks/db",
    ] {
        let (code, headers, json) = get(&app, path, None).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(json["status"], "healthy", "{path}");
    }
}
