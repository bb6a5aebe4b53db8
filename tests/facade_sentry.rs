//! `obs::Obs` with Sentry (feature `sentry`): the layer stack puts request IDs outside Sentry,
//! so a 5xx event carries the same `request_id` as the access-log line. A test transport
//! stands in for the Sentry server (tests/sentry_bugsink.rs covers the real one).
#![cfg(all(
    feature = "tower",
    feature = "sentry",
    feature = "metrics",
    feature = "health"
))]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use obs::Obs;
use obs_core::logging::{self, LogConfig, LogFormat};
use sentry::test::TestTransport;
use sentry::{ClientOptions, Hub};
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

#[tokio::test]
async fn request_id_reaches_access_log_and_sentry_event() {
    let transport = TestTransport::new();
    let options = ClientOptions::new()
        .dsn("https://key@sentry.invalid/1")
        .transport(transport.clone());
    let options = obs_core::sentry::configure(options, Default::default());
    let hub = Arc::new(Hub::new(Some(Arc::new(options.into())), Default::default()));

    let obs = Obs::builder()
        .env_lookup(|_| None)
        .logging(false)
        .sentry_hub(hub)
        .build()
        .await
        .unwrap();
    assert!(obs.summary().contains("sentry=hub"), "{}", obs.summary());
    let app = obs.apply(
        Router::new()
            .route(
                "/orders/{id}",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND }),
    );

    let out = Buf::default();
    let writer = out.clone();
    let config = LogConfig {
        format: LogFormat::Json,
        ..LogConfig::default()
    };
    let subscriber =
        tracing_subscriber::registry().with(logging::layer(&config, move || writer.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut req = Request::get("/orders/7")
        .header("x-request-id", "sentry-facade-1")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4000))));
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    drop(res);

    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(
        event.tags.get("request_id").map(String::as_str),
        Some("sentry-facade-1")
    );
    assert_eq!(
        event.tags.get("http.route").map(String::as_str),
        Some("/orders/{id}")
    );

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let access: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["target"] == "obs::access")
        .collect();
    assert_eq!(access.len(), 1, "{text}");
    assert_eq!(access[0]["request_id"], "sentry-facade-1");
    assert_eq!(access[0]["status"], 500);
    obs.shutdown().await;
}
