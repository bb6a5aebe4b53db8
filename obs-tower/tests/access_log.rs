//! AccessLogLayer: fields, levels, toggles, order with RequestIdLayer.
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use obs_tower::{AccessLogLayer, RequestIdLayer};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

fn status_service(
    status: StatusCode,
) -> impl tower::Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_req: Request<()>| async move {
        Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
    })
}

async fn send(access: AccessLogLayer, status: StatusCode, req: Request<()>) -> Response<()> {
    ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(access)
        .service(status_service(status))
        .oneshot(req)
        .await
        .unwrap()
}

fn req(path: &str) -> Request<()> {
    let mut r = Request::get(path)
        .header("x-request-id", "acc-1")
        .body(())
        .unwrap();
    r.extensions_mut()
        .insert(SocketAddr::from(([203, 0, 113, 5], 4444)));
    r
}

#[tokio::test]
async fn one_event_per_request_with_all_fields() {
    let (logs, _g) = common::capture();
    let res = send(AccessLogLayer::new(), StatusCode::OK, req("/orders")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    let l = &lines[0];
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["fields"]["message"], "request completed");
    assert_eq!(l["fields"]["request_id"], "acc-1");
    assert_eq!(l["fields"]["method"], "GET");
    assert_eq!(l["fields"]["status"], 200);
    assert_eq!(l["fields"]["client_ip"], "203.0.113.5");
    let d = l["fields"]["duration_ms"]
        .as_f64()
        .expect("duration_ms is a number");
    assert!((0.0..10_000.0).contains(&d), "{d}");
    assert!(l["fields"].get("route").is_none(), "no router, no route");
    // Emitted inside the request span.
    assert_eq!(l["span"]["name"], "request");
    assert_eq!(l["span"]["request_id"], "acc-1");
}

#[tokio::test]
async fn server_errors_use_the_configured_level() {
    let (logs, _g) = common::capture();
    send(
        AccessLogLayer::new(),
        StatusCode::INTERNAL_SERVER_ERROR,
        req("/fail"),
    )
    .await;
    send(
        AccessLogLayer::new(),
        StatusCode::NOT_FOUND,
        req("/missing"),
    )
    .await;
    send(
        AccessLogLayer::new().server_error_level(tracing::Level::ERROR),
        StatusCode::BAD_GATEWAY,
        req("/upstream"),
    )
    .await;
    let lines = logs.with_target("obs::access");
    let levels: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["fields"]["status"].as_u64().unwrap(),
                l["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        vec![
            (500, "WARN".into()),
            (404, "INFO".into()),
            (502, "ERROR".into())
        ]
    );
}

#[tokio::test]
async fn inner_errors_are_logged_as_failed() {
    let (logs, _g) = common::capture();
    let svc = AccessLogLayer::new().layer(service_fn(|_req: Request<()>| async {
        Err::<Response<()>, _>(std::io::Error::other("down"))
    }));
    let err = svc.oneshot(req("/x")).await.unwrap_err();
    assert_eq!(err.to_string(), "down");
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["fields"]["message"], "request failed");
    assert_eq!(lines[0]["fields"]["error"], true);
    assert!(lines[0]["fields"].get("status").is_none());
}

#[tokio::test]
async fn health_requests_are_silent_unless_enabled() {
    let (logs, _g) = common::capture();
    for path in ["/health", "/health/live", "/healthz", "/readyz"] {
        send(AccessLogLayer::new(), StatusCode::OK, req(path)).await;
    }
    assert_eq!(logs.with_target("obs::access").len(), 0, "{}", logs.text());

    send(
        AccessLogLayer::new().log_health_requests(true),
        StatusCode::OK,
        req("/health/ready"),
    )
    .await;
    // /healthcare is not a probe.
    send(AccessLogLayer::new(), StatusCode::OK, req("/healthcare")).await;
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn log_requests_false_silences_non_health_requests() {
    let (logs, _g) = common::capture();
    let layer = AccessLogLayer::new().log_requests(false);
    send(layer.clone(), StatusCode::OK, req("/orders")).await;
    assert!(logs.with_target("obs::access").is_empty());
    send(
        layer.log_health_requests(true),
        StatusCode::OK,
        req("/health"),
    )
    .await;
    assert_eq!(logs.with_target("obs::access").len(), 1);
}

#[tokio::test]
async fn custom_health_paths() {
    let (logs, _g) = common::capture();
    let layer = AccessLogLayer::new().health_paths(["/metrics", "/ping"]);
    send(layer.clone(), StatusCode::OK, req("/metrics")).await;
    send(layer.clone(), StatusCode::OK, req("/ping")).await;
    send(layer, StatusCode::OK, req("/health")).await;
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["fields"]["status"], 200);
}

#[tokio::test]
async fn without_request_id_layer_logs_without_request_id() {
    let (logs, _g) = common::capture();
    AccessLogLayer::new()
        .layer(status_service(StatusCode::OK))
        .oneshot(req("/orders"))
        .await
        .unwrap();
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["fields"].get("request_id").is_none());
    assert_eq!(lines[0]["fields"]["client_ip"], "203.0.113.5");
    assert_eq!(lines[0]["fields"]["method"], "GET");
    assert!(
        !logs.text().contains("acc-1"),
        "the raw inbound header is never logged"
    );
}

#[tokio::test]
async fn nothing_captured_when_the_target_is_disabled() {
    let _serial = common::serial();
    use tracing_subscriber::layer::SubscriberExt;
    let logs = common::Logs::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::TRACE)
        .with_target("obs::access", tracing_subscriber::filter::LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(logs.clone()),
        )
        .with(filter);
    let _g = tracing::subscriber::set_default(subscriber);
    send(AccessLogLayer::new(), StatusCode::OK, req("/orders")).await;
    assert!(logs.with_target("obs::access").is_empty());
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn route_template_and_fallback_with_axum() {
    use axum::{body::Body, routing::get, Router};
    let (logs, _g) = common::capture();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "u" }))
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new());
    for path in ["/users/42", "/nope/secret-token"] {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
    }
    let lines = logs.with_target("obs::access");
    assert_eq!(lines.len(), 2, "{}", logs.text());
    assert_eq!(lines[0]["fields"]["route"], "/users/{id}");
    assert_eq!(lines[0]["fields"]["status"], 200);
    assert!(lines[1]["fields"].get("route").is_none());
    assert_eq!(lines[1]["fields"]["status"], 404);
    let text = logs.text();
    assert!(
        !text.contains("/users/42") && !text.contains("secret-token"),
        "{text}"
    );
}
