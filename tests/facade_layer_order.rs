//! The layer order of `obs.apply`, observed in the access log: request id outside the rate
//! limiter, so a 429 still carries the request id and gets its access line.
//!
//! In its own test binary on purpose: it asserts on `obs::access` log lines, and tracing caches
//! callsite interest per process; other facade tests hit the same callsite without a subscriber,
//! and a concurrent first registration can cache it as disabled (a flake seen in CI runs).
#![cfg(all(
    feature = "tower",
    feature = "metrics",
    feature = "health",
    feature = "ratelimit",
    feature = "telemetry"
))]

mod facade_common;

use facade_common::*;
use http::StatusCode;
use obs_core::logging::{self, LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn layer_order_rate_limit_inside_access_log_and_metrics() {
    let obs = build(&[("RATE_LIMIT_MAX", "2"), ("RATE_LIMIT_WINDOW", "60")]).await;
    let app = app(&obs);
    let out = Buf::default();
    let writer = out.clone();
    let config = LogConfig {
        format: LogFormat::Json,
        ..LogConfig::default()
    };
    let subscriber =
        tracing_subscriber::registry().with(logging::layer(&config, move || writer.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    assert_eq!(send(&app, "/hello", Some("rl-1")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, "/fail", Some("rl-2")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let (status, headers, _) = send(&app, "/hello", Some("rl-3")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        headers["x-request-id"], "rl-3",
        "request id outside the limiter"
    );
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 60, "{retry_after}");
    // Probes are outside the limiter.
    assert_eq!(send(&app, "/health/live", None).await.0, StatusCode::OK);

    let lines = out.lines();
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "obs::access")
        .collect();
    assert_eq!(access.len(), 3, "{lines:#?}");
    assert_eq!(access[0]["request_id"], "rl-1");
    assert_eq!(access[1]["request_id"], "rl-2");
    assert_eq!(access[1]["status"], 500);
    assert_eq!(access[2]["request_id"], "rl-3");
    assert_eq!(
        access[2]["status"], 429,
        "the 429 is logged with its request id"
    );
    assert_eq!(access[2]["route"], "/hello");

    let (_, _, metrics) = send(&app, "/metrics", None).await;
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/hello",status="4xx"} 1"#),
        "the 429 is counted: {metrics}"
    );
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/fail",status="5xx"} 1"#),
        "{metrics}"
    );
    assert_eq!(obs.limiter().limit(), 2);
}
