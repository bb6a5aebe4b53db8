//! The HTTP sink against a local axum server: bearer auth, batching, retry on 5xx and
//! timeouts, no retry on 4xx.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use obs_telemetry::sink::http::HttpSink;
use obs_telemetry::{event, MetricName, Recorder};
use serde_json::Value;

event! {
    /// A test run finished.
    pub struct TestRunCompleted: "test.run.completed" {
        pub run_id: String,
        pub test_count: u64,
    }
}

#[derive(Default)]
struct Endpoint {
    /// Answers to give, in order (then 200). `None` = wait 2 s, then 200.
    script: Mutex<VecDeque<Option<u16>>>,
    requests: Mutex<Vec<(Option<String>, Value)>>,
}

async fn handler(
    State(ep): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    ep.requests.lock().unwrap().push((auth, body));
    let next = ep.script.lock().unwrap().pop_front();
    match next {
        Some(Some(code)) => StatusCode::from_u16(code).unwrap(),
        Some(None) => {
            tokio::time::sleep(Duration::from_secs(2)).await; // a slow endpoint
            StatusCode::OK
        }
        None => StatusCode::OK,
    }
}

async fn serve(script: Vec<Option<u16>>) -> (SocketAddr, Arc<Endpoint>) {
    let ep = Arc::new(Endpoint {
        script: Mutex::new(script.into()),
        ..Default::default()
    });
    let app = Router::new()
        .route("/api/metrics/record", post(handler))
        .with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, ep)
}

fn recorder(addr: SocketAddr, batch: usize) -> Recorder {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sink = HttpSink::with_client(
        client,
        format!("http://{addr}/api/metrics/record"),
        Some("s3cret-token".into()),
    );
    Recorder::builder()
        .sink(sink)
        .max_batch(batch)
        .flush_interval(Duration::from_secs(30))
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .unwrap()
}

fn ev(i: u64) -> TestRunCompleted {
    TestRunCompleted {
        run_id: format!("run-{i}"),
        test_count: i,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn batches_are_posted_with_the_bearer_token() {
    let (addr, ep) = serve(vec![]).await;
    let r = recorder(addr, 100);
    for i in 0..250 {
        r.record(ev(i));
    }
    r.record_metric("run-1", MetricName::TOKENS_USED, 1250.0);
    let stats = r.shutdown().await;
    assert_eq!((stats.written_events, stats.written_metrics), (250, 1));

    let requests = ep.requests.lock().unwrap();
    assert_eq!(requests.len(), 3, "251 items in batches of at most 100");
    let mut seen = Vec::new();
    for (auth, body) in requests.iter() {
        assert_eq!(auth.as_deref(), Some("Bearer s3cret-token"));
        let events = body["events"].as_array().unwrap();
        let metrics = body["metrics"].as_array().unwrap();
        assert!(events.len() + metrics.len() <= 100);
        for e in events {
            assert_eq!(e["event_type"], "test.run.completed");
            seen.push(e["event_data"]["test_count"].as_u64().unwrap());
        }
        for m in metrics {
            assert_eq!(m["run_id"], "run-1");
            assert_eq!(m["metric_name"], "tokens_used");
            assert_eq!(m["metric_value"], 1250.0);
            assert!(m["recorded_at"].as_str().unwrap().ends_with('Z'));
        }
    }
    assert_eq!(seen, (0..250).collect::<Vec<_>>());
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried() {
    let (addr, ep) = serve(vec![Some(503), Some(500), None]).await;
    let r = recorder(addr, 10);
    r.record(ev(1));
    let stats = r.shutdown().await;
    assert_eq!(
        (stats.retries, stats.written_events, stats.failed),
        (3, 1, 0)
    );
    let requests = ep.requests.lock().unwrap();
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|(_, b)| b == &requests[0].1),
        "same batch each time"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for code in [400, 401, 422] {
        let (addr, ep) = serve(vec![Some(code)]).await;
        let r = recorder(addr, 10);
        r.record(ev(1));
        r.record(ev(2));
        let stats = r.shutdown().await;
        assert_eq!(
            (stats.retries, stats.failed, stats.written_events),
            (0, 2, 0),
            "{code}"
        );
        assert_eq!(ep.requests.lock().unwrap().len(), 1, "{code}");
    }
}

#[tokio::test]
async fn the_token_is_optional_and_never_printed() {
    let (addr, ep) = serve(vec![]).await;
    let sink = HttpSink::new(format!("http://{addr}/api/metrics/record"), None).unwrap();
    let with = HttpSink::new("http://x/", Some("tok-123".into())).unwrap();
    assert!(!format!("{with:?}").contains("tok-123"));
    let r = Recorder::builder().sink(sink).build().unwrap();
    r.record(ev(1));
    r.shutdown().await;
    assert_eq!(ep.requests.lock().unwrap()[0].0, None);
}

#[tokio::test]
async fn configured_from_metrics_api_url_and_token() {
    let (addr, ep) = serve(vec![]).await;
    let config = obs_core::config::MetricsApiConfig::new(
        &format!("http://{addr}/api/metrics/record"),
        Some(obs_core::config::Secret::new("from-env-token")),
    )
    .unwrap();
    let r = Recorder::builder()
        .sink(HttpSink::from_config(&config).unwrap())
        .build()
        .unwrap();
    r.record_metric("run-9", MetricName::EXIT_CODE, 0.0);
    r.shutdown().await;
    let requests = ep.requests.lock().unwrap();
    assert_eq!(requests[0].0.as_deref(), Some("Bearer from-env-token"));
    assert_eq!(requests[0].1["metrics"][0]["run_id"], "run-9");
}
