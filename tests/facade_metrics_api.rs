//! `METRICS_API_URL` / `METRICS_API_TOKEN` through `Obs`: the telemetry recorder posts its
//! batches to a real HTTP receiver on loopback (an axum server in this test) with the bearer
//! token, and the startup summary says so; a configured database stays the store.
#![cfg(all(feature = "telemetry", feature = "tower"))]

mod facade_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use facade_common::env;
use obs::Obs;
use obs_telemetry::{FreeformEvent, MetricName};
use serde_json::Value;

type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A metrics API on loopback that records each request's `Authorization` header and body.
async fn receiver() -> (SocketAddr, Received) {
    async fn record(
        State(got): State<Received>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> StatusCode {
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        got.lock().unwrap().push((auth, body));
        StatusCode::OK
    }
    let got = Received::default();
    let app = Router::new()
        .route("/api/metrics/record", post(record))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

#[tokio::test]
async fn telemetry_goes_to_the_metrics_api_with_the_bearer_token() {
    let (addr, got) = receiver().await;
    let url = format!("http://{addr}/api/metrics/record");
    let obs = Obs::builder()
        .env_lookup(env(&[
            ("METRICS_API_URL", &url),
            ("METRICS_API_TOKEN", "api-tok-77"),
            ("TELEMETRY_ENABLED", "true"),
        ]))
        .logging(false)
        .build()
        .await
        .unwrap();
    let summary = obs.summary();
    assert!(
        summary.contains(&format!("telemetry=http({addr})")),
        "{summary}"
    );
    assert!(!summary.contains("api-tok-77"), "{summary}");
    assert!(
        obs.analytics_store().is_none(),
        "no SQL store behind /api/analytics"
    );

    obs.recorder().record_freeform(
        FreeformEvent::new("run.completed")
            .property("repo", "acme/widgets")
            .property("note", "mail jane@example.com"),
    );
    obs.recorder()
        .record_metric("run-42", MetricName::DURATION_MS, 5432.0);
    obs.recorder()
        .record_metric("run-42", MetricName::TOKENS_USED, 1250.0);
    obs.shutdown().await; // flushes the queue to the receiver

    let got = got.lock().unwrap();
    assert!(!got.is_empty(), "nothing reached the metrics API");
    let mut events = Vec::new();
    let mut metrics = Vec::new();
    for (auth, body) in got.iter() {
        assert_eq!(auth.as_deref(), Some("Bearer api-tok-77"));
        events.extend(body["events"].as_array().unwrap().iter().cloned());
        metrics.extend(body["metrics"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "run.completed");
    assert_eq!(events[0]["event_data"]["repo"], "acme/widgets");
    assert_eq!(
        events[0]["event_data"]["note"], "mail [email]",
        "scrubbed before it leaves the process"
    );
    let pairs: Vec<(String, String, f64)> = metrics
        .iter()
        .map(|m| {
            (
                m["run_id"].as_str().unwrap().to_owned(),
                m["metric_name"].as_str().unwrap().to_owned(),
                m["metric_value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("run-42".into(), "duration_ms".into(), 5432.0),
            ("run-42".into(), "tokens_used".into(), 1250.0),
        ]
    );
}

/// In the reference layout both variables are in one `.env` and `METRICS_API_URL` points at
/// the service itself: the database stays the store, nothing is posted.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_configured_database_stays_the_store() {
    let (addr, got) = receiver().await;
    let url = format!("http://{addr}/api/metrics/record");
    let obs = Obs::builder()
        .env_lookup(env(&[
            ("METRICS_API_URL", &url),
            ("DATABASE_URL", "sqlite::memory:"),
        ]))
        .logging(false)
        .build()
        .await
        .unwrap();
    let summary = obs.summary();
    assert!(
        summary.contains("telemetry=sqlite(DATABASE_URL)(METRICS_API_URL unused)"),
        "{summary}"
    );
    assert!(obs.analytics_store().is_some());
    obs.recorder()
        .record_metric("run-1", MetricName::DURATION_MS, 1.0);
    obs.shutdown().await;
    assert!(
        got.lock().unwrap().is_empty(),
        "posted although the database is the store"
    );
}

/// Without feature `sentry` obs has no TLS client: an `https://` endpoint fails at startup,
/// naming the variable, instead of failing every batch later.
#[cfg(not(feature = "sentry"))]
#[tokio::test]
async fn https_without_tls_fails_at_startup() {
    let err = Obs::builder()
        .env_lookup(env(&[(
            "METRICS_API_URL",
            "https://metrics.example.com/record",
        )]))
        .logging(false)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.var(), Some("METRICS_API_URL"), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
