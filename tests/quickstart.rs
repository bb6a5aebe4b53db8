//! The quickstart example's service, in process: request IDs on responses and on every log
//! line (through obs-core's JSON logging), one access line per request, probes silent.
#![cfg(all(
    feature = "tower",
    feature = "metrics",
    feature = "health",
    feature = "ratelimit",
    feature = "telemetry"
))]

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use obs_core::logging::{self, LogConfig, LogFormat};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

async fn get(app: &axum::Router, path: &str, id: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::get(path);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, id, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn quickstart_routes_logs_and_access_lines() {
    let config = LogConfig {
        format: LogFormat::Json,
        ..LogConfig::default()
    };
    let out = Buf::default();
    let writer = out.clone();
    let subscriber =
        tracing_subscriber::registry().with(logging::layer(&config, move || writer.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut obs_config = obs_core::config::Config::from_lookup(|_| None).unwrap();
    obs_config.log = config.clone();
    let obs = obs::Obs::builder()
        .config(obs_config)
        .logging(false)
        .build()
        .await
        .unwrap();
    let app = quickstart::app(&obs);

    let (status, id, body) = get(&app, "/users/42", Some("qs-1")).await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, "qs-1"));
    assert!(body.contains("\"route\":\"/users/{id}\""), "{body}");

    let (status, bad_id, _) = get(&app, "/users/42", Some("bad value!")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bad_id.len(), 36, "hostile ID replaced: {bad_id}");

    let (status, fail_id, body) = get(&app, "/fail", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains(&fail_id),
        "the error body quotes the ID: {body}"
    );

    let (status, _, _) = get(&app, "/health/live", None).await;
    assert_eq!(status, StatusCode::OK);

    let lines = out.lines();
    // The handler's own line carries the request ID, method and route.
    let handler = lines
        .iter()
        .find(|l| l["message"] == "loading user" && l["request_id"] == "qs-1")
        .expect("handler line with request_id");
    assert_eq!(handler["route"], "/users/{id}");
    // One access line per non-probe request, in order.
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "obs::access")
        .collect();
    assert_eq!(access.len(), 3, "{lines:#?}");
    assert_eq!(access[0]["request_id"], "qs-1");
    assert_eq!(access[0]["route"], "/users/{id}");
    assert_eq!(access[0]["status"], 200);
    assert!(access[0]["duration_ms"].as_f64().is_some());
    assert_eq!(access[1]["request_id"], bad_id.as_str());
    assert_eq!(access[2]["request_id"], fail_id.as_str());
    assert_eq!(access[2]["status"], 500);
    assert_eq!(access[2]["level"], "warn");
    // The error line inside /fail carries the ID too; the hostile value is nowhere.
    assert!(lines
        .iter()
        .any(|l| l["level"] == "error" && l["request_id"] == fail_id.as_str()));
    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains("bad value"));
    assert!(!all.contains("/users/42"), "raw path never logged");
}
