//! `obs::Obs` on embedded defaults, built from a map (the process environment is untouched):
//! endpoints answer, the layer stack is ordered (request id → access log → metrics → limiter),
//! misconfiguration names the variable, shutdown flushes telemetry.
#![cfg(all(
    feature = "tower",
    feature = "metrics",
    feature = "health",
    feature = "ratelimit",
    feature = "telemetry"
))]

mod facade_common;

use axum::body::Body;
use facade_common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use obs::Obs;
use tower::ServiceExt;

#[tokio::test]
async fn endpoints_answer_and_summary_lists_what_is_on() {
    let obs = build(&[("HEALTH_TOKEN", "tok-123")]).await;
    let summary = obs.summary();
    assert!(summary.contains("metrics"), "{summary}");
    assert!(
        summary.contains("health=[process,disk,memory]"),
        "{summary}"
    );
    assert!(summary.contains("ratelimit=memory(5/60s)"), "{summary}");
    #[cfg(feature = "otel")]
    assert!(
        summary.contains("otel=ids"),
        "no OTLP endpoint: ids only: {summary}"
    );
    let app = app(&obs);

    let (status, headers, body) = send(&app, "/hello", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    assert_eq!(headers["x-request-id"].len(), 36);

    for path in [
        "/health/live",
        "/health/ready",
        "/health/startup",
        "/health/deep",
    ] {
        let (status, headers, body) = send(&app, path, None).await;
        assert!(
            headers.contains_key("x-request-id"),
            "{path}: endpoints get request ids"
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        // The disk check may be degraded or unhealthy on a full build machine: the status
        // code must agree with the reported status (503 only for unhealthy).
        let expected = if json["status"] == "unhealthy" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{path}: {body}");
        if path == "/health/live" {
            assert_eq!(
                status,
                StatusCode::OK,
                "liveness never runs dependency checks"
            );
        }
        if path != "/health/live" {
            assert!(json["checks"]["memory"].is_object(), "{path}: {body}");
            assert!(json["checks"]["disk"].is_object(), "{path}: {body}");
        }
    }
    // HEALTH_TOKEN from the lookup unlocks details.
    let req = Request::get("/health/ready")
        .header("authorization", "Bearer tok-123")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json.get("system").is_some(),
        "details shown with the token: {json}"
    );

    let (status, _, body) = send(&app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"http_requests_total{method="GET",route="/hello",status="2xx"} 1"#),
        "{body}"
    );
    assert!(!body.contains("/health/"), "probes are not counted: {body}");
    assert!(body.contains("health_check_status"), "{body}");
    assert!(body.contains("ratelimit_"), "{body}");
    assert!(
        body.contains(r#"telemetry_events_dropped_total{reason="queue_full"} 0"#),
        "{body}"
    );
    let (status, _, _) = send(&app, "/metrics/business", None).await;
    assert_eq!(status, StatusCode::OK);

    #[cfg(feature = "sqlite")]
    {
        assert!(summary.contains("telemetry=sqlite(memory)"), "{summary}");
        let (status, _, body) = send(
            &app,
            "/api/analytics/metrics?metric=duration_ms&aggregation=count",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    obs.shutdown().await;
}

#[tokio::test]
async fn misconfiguration_fails_at_startup_naming_the_variable() {
    let err = Obs::builder()
        .env_lookup(env(&[("RATE_LIMIT_MAX", "zero"), ("LOG_FORMAT", "xml")]))
        .logging(false)
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, obs::Error::Config(_)));
    assert!(text.contains("RATE_LIMIT_MAX"), "{text}");
    assert!(text.contains("LOG_FORMAT"), "{text}");
    assert!(err.var().is_some());

    // HEALTH_TOKEN is validated with the rest, and never shown.
    let err = Obs::builder()
        .env_lookup(env(&[("HEALTH_TOKEN", "two words")]))
        .logging(false)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.var(), Some("HEALTH_TOKEN"), "{err}");
    assert!(!err.to_string().contains("two words"), "{err}");

    // A configured service that cannot be used at startup names its variable too.
    #[cfg(feature = "redis")]
    {
        let err = Obs::builder()
            .env_lookup(env(&[("REDIS_URL", "redis://127.0.0.1:1")]))
            .logging(false)
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.var(), Some("REDIS_URL"), "{err}");
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }
}

#[tokio::test]
async fn shutdown_flushes_telemetry() {
    let sink = obs_telemetry::sink::MemorySink::new();
    let recorder = obs_telemetry::Recorder::builder()
        .sink(sink.clone())
        .flush_interval(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let obs = Obs::builder()
        .env_lookup(env(&[]))
        .logging(false)
        .recorder(recorder)
        .build()
        .await
        .unwrap();
    obs.recorder()
        .record_metric("run-1", obs_telemetry::MetricName::DURATION_MS, 42.0);
    assert!(sink.metrics().is_empty(), "still queued before shutdown");
    obs.shutdown().await;
    let metrics = sink.metrics();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].metric_value, 42.0);
    obs.shutdown().await; // idempotent
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn shutdown_flushes_to_the_embedded_sqlite_store() {
    let obs = build(&[]).await;
    let app = app(&obs);
    obs.recorder()
        .record_metric("run-7", obs_telemetry::MetricName::DURATION_MS, 1500.0);
    obs.shutdown().await;
    let (status, _, body) = send(
        &app,
        "/api/analytics/metrics?metric=duration_ms&aggregation=max",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["count"], 1, "{json}");
    assert_eq!(json["value"], 1500.0, "{json}");
}

/// The token travels in [`Config`](obs::core::config::Config) (`HEALTH_TOKEN`), so an explicit
/// configuration carries it too; [`ObsBuilder::health_token`](obs::ObsBuilder::health_token)
/// overrides it.
#[tokio::test]
async fn health_token_comes_from_the_config_and_the_builder_overrides_it() {
    async fn details_shown(obs: &Obs, token: &str) -> bool {
        let req = Request::get("/health/ready")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = obs.router::<()>().oneshot(req).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json.get("system").is_some()
    }
    let config = obs::core::config::Config::builder()
        .health_token("from-config")
        .build()
        .unwrap();
    let obs = Obs::builder()
        .config(config.clone())
        .logging(false)
        .build()
        .await
        .unwrap();
    assert!(details_shown(&obs, "from-config").await);
    assert!(!details_shown(&obs, "other").await);
    obs.shutdown().await;

    let obs = Obs::builder()
        .config(config)
        .health_token("from-builder")
        .logging(false)
        .build()
        .await
        .unwrap();
    assert!(details_shown(&obs, "from-builder").await);
    assert!(!details_shown(&obs, "from-config").await);
    obs.shutdown().await;
}
