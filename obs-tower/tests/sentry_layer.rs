//! `SentryLayer` against sentry's test transport: per-request isolation under concurrency,
//! 5xx/4xx policy, panics, streaming bodies, scrubbing, layer order, PII.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use obs_core::sentry::{self as bridge, Level};
use obs_tower::sentry::StatusClasses;
use obs_tower::{RequestIdLayer, SentryLayer};
use sentry_core::protocol::Event;
use sentry_core::test::TestTransport;
use sentry_core::{ClientOptions, Hub};
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn hub_with(pii: bool) -> (Arc<Hub>, Arc<TestTransport>) {
    let transport = TestTransport::new();
    let options = ClientOptions::new()
        .dsn("https://public@sentry.invalid/1")
        .send_default_pii(pii)
        .transport(transport.clone());
    let options = bridge::configure(options, Default::default());
    let hub = Arc::new(Hub::new(Some(Arc::new(options.into())), Default::default()));
    (hub, transport)
}

fn install_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(bridge::tracing_layer());
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

fn json(event: &Event<'static>) -> String {
    serde_json::to_string(event).unwrap()
}

async fn status_handler(Path(code): Path<u16>) -> StatusCode {
    bridge::breadcrumb("handler", "about to answer", [("code", code)]);
    StatusCode::from_u16(code).unwrap()
}

fn app(layer: SentryLayer) -> Router {
    Router::new()
        .route("/status/{code}", get(status_handler))
        .route(
            "/panic",
            get(|| async {
                bridge::breadcrumb("handler", "before panic", ());
                if std::hint::black_box(true) {
                    panic!("handler exploded");
                }
                "unreachable"
            }),
        )
        .layer(layer)
        .layer(RequestIdLayer::new())
}

async fn get_with_id(app: &Router, uri: &str, id: &str) -> Response<Body> {
    app.clone()
        .oneshot(
            Request::get(uri)
                .header("x-request-id", id)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_requests_keep_their_own_breadcrumbs_and_request_id() {
    install_tracing();
    let (hub, transport) = hub_with(false);
    let app = Router::new()
        .route(
            "/work/{n}",
            get(|Path(n): Path<u32>| async move {
                for step in 0..3 {
                    bridge::breadcrumb("work", &format!("req {n} step {step}"), [("n", n)]);
                    tracing::info!(n, step, "traced step");
                    tokio::task::yield_now().await;
                }
                bridge::set_user(&format!("user-{n}"));
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .layer(SentryLayer::new().hub(hub))
        .layer(RequestIdLayer::new());
    let mut tasks = Vec::new();
    for n in 0..100u32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let res = get_with_id(&app, &format!("/work/{n}"), &format!("req-{n}")).await;
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 100);
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        let id = &e.tags["request_id"];
        let n: u32 = id.strip_prefix("req-").unwrap().parse().unwrap();
        assert!(seen.insert(n), "one event per request");
        assert_eq!(e.user.as_ref().unwrap().id, Some(format!("user-{n}")));
        assert_eq!(e.tags["http.route"], "/work/{n}");
        let crumbs = &e.breadcrumbs.values;
        assert_eq!(
            crumbs.len(),
            6,
            "3 explicit + 3 traced, own only: {crumbs:?}"
        );
        for c in crumbs {
            assert_eq!(c.data["request_id"], id.as_str(), "{c:?}");
            assert_eq!(c.data["n"], n, "{c:?}");
        }
    }
}

#[tokio::test]
async fn server_errors_are_captured_client_errors_are_not_by_default() {
    let (hub, transport) = hub_with(false);
    let app = app(SentryLayer::new().hub(hub));
    for (code, id) in [
        (503, "r-503"),
        (404, "r-404"),
        (200, "r-200"),
        (422, "r-422"),
    ] {
        let res = get_with_id(&app, &format!("/status/{code}"), id).await;
        assert_eq!(res.status().as_u16(), code);
    }
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.tags["request_id"], "r-503");
    assert_eq!(e.tags["http.status_code"], "503");
    assert_eq!(e.tags["http.method"], "GET");
    assert_eq!(e.level, Level::Error);
    assert_eq!(
        e.message.as_deref(),
        Some("503 Service Unavailable: GET /status/{code}")
    );
    assert_eq!(e.transaction.as_deref(), Some("GET /status/{code}"));
    assert_eq!(e.breadcrumbs.values.len(), 1);
    let req = e.request.as_ref().unwrap();
    assert_eq!(req.method.as_deref(), Some("GET"));
    assert_eq!(req.url.as_ref().unwrap().path(), "/status/503");
}

#[tokio::test]
async fn client_errors_are_captured_when_configured() {
    let (hub, transport) = hub_with(false);
    let layer = SentryLayer::new()
        .hub(hub)
        .capture_status(StatusClasses::CLIENT_ERROR | StatusClasses::SERVER_ERROR);
    let app = app(layer);
    get_with_id(&app, "/status/404", "r-a").await;
    get_with_id(&app, "/status/500", "r-b").await;
    get_with_id(&app, "/status/201", "r-c").await;
    let events = transport.fetch_and_clear_events();
    let ids: Vec<_> = events
        .iter()
        .map(|e| e.tags["request_id"].as_str())
        .collect();
    assert_eq!(ids, ["r-a", "r-b"]);
    assert_eq!(events[0].level, Level::Warning);

    let (hub, transport) = hub_with(false);
    let app = self::app(
        SentryLayer::new()
            .hub(hub)
            .capture_status(StatusClasses::NONE),
    );
    get_with_id(&app, "/status/500", "r-d").await;
    assert!(transport.fetch_and_clear_events().is_empty());
}

#[tokio::test]
async fn panics_are_captured_with_request_context_and_resumed() {
    let (hub, transport) = hub_with(false);
    let app = app(SentryLayer::new().hub(hub));
    let join = tokio::spawn(async move { get_with_id(&app, "/panic", "r-panic").await }).await;
    assert!(join.unwrap_err().is_panic(), "the panic is resumed");
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.level, Level::Fatal);
    assert_eq!(e.tags["request_id"], "r-panic");
    let exc = &e.exception.values[0];
    assert_eq!(exc.ty, "panic");
    assert_eq!(exc.value.as_deref(), Some("handler exploded"));
    assert_eq!(exc.mechanism.as_ref().unwrap().handled, Some(false));
    assert_eq!(
        e.breadcrumbs.values[0].message.as_deref(),
        Some("before panic")
    );
}

/// A body that records a breadcrumb and captures a message while it streams.
struct ReportingBody {
    frames: u8,
}

impl http_body::Body for ReportingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.frames += 1;
        match self.frames {
            1 => {
                bridge::breadcrumb("body", "first chunk", ());
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"a")))))
            }
            2 => {
                bridge::capture_message("while streaming", Level::Warning, ());
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"b")))))
            }
            _ => Poll::Ready(None),
        }
    }
}

#[tokio::test]
async fn the_request_hub_stays_bound_while_the_body_streams() {
    let (hub, transport) = hub_with(false);
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(SentryLayer::new().hub(hub))
        .service(service_fn(|_req: Request<()>| async {
            bridge::breadcrumb("handler", "headers sent", ());
            Ok::<_, Infallible>(Response::new(ReportingBody { frames: 0 }))
        }));
    let res = svc
        .oneshot(
            Request::get("/stream")
                .header("x-request-id", "r-stream")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ab");
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.message.as_deref(), Some("while streaming"));
    assert_eq!(
        e.request.as_ref().unwrap().url.as_ref().unwrap().path(),
        "/stream"
    );
    let crumbs: Vec<_> = e
        .breadcrumbs
        .values
        .iter()
        .map(|c| c.message.as_deref().unwrap())
        .collect();
    assert_eq!(crumbs, ["headers sent", "first chunk"]);
    assert_eq!(e.breadcrumbs.values[1].data["request_id"], "r-stream");
}

#[tokio::test]
async fn secrets_in_query_headers_and_breadcrumbs_are_scrubbed() {
    let (hub, transport) = hub_with(false);
    let app = Router::new()
        .route(
            "/login",
            get(|| async {
                bridge::breadcrumb(
                    "auth",
                    "login attempt by jane.doe@example.com",
                    [("email", "jane.doe@example.com")],
                );
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .layer(SentryLayer::new().hub(hub))
        .layer(RequestIdLayer::new());
    app.oneshot(
        Request::get("/login?user=jane&password=hunter2secret")
            .header("authorization", "Bearer abc123def456ghi789")
            .header("cookie", "session=s3ss10nvalue")
            .header("x-request-id", "r-scrub")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    let text = json(&events[0]);
    for secret in [
        "hunter2secret",
        "abc123def456ghi789",
        "s3ss10nvalue",
        "jane.doe@example.com",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let req = events[0].request.as_ref().unwrap();
    assert_eq!(
        req.query_string.as_deref(),
        Some("user=jane&password=[password]")
    );
    assert!(text.contains("r-scrub"));
}

#[tokio::test]
async fn outside_request_id_layer_the_request_id_comes_from_the_response() {
    let (hub, transport) = hub_with(false);
    let svc = ServiceBuilder::new()
        .layer(SentryLayer::new().hub(hub))
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            bridge::breadcrumb("handler", "inside", ());
            bridge::capture_message("from handler", Level::Error, ());
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, Infallible>(res)
        }));
    svc.oneshot(
        Request::get("/x")
            .header("x-request-id", "r-outer")
            .body(())
            .unwrap(),
    )
    .await
    .unwrap();
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.tags["request_id"], "r-outer", "{e:?}");
        assert_eq!(e.breadcrumbs.values.len(), 1);
    }
}

#[tokio::test]
async fn client_ip_only_with_send_default_pii() {
    for pii in [false, true] {
        let (hub, transport) = hub_with(pii);
        let svc = ServiceBuilder::new()
            .layer(RequestIdLayer::new())
            .layer(SentryLayer::new().hub(hub))
            .service(service_fn(|_req: Request<()>| async {
                let mut res = Response::new(());
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Ok::<_, Infallible>(res)
            }));
        let mut req = Request::get("/ip").body(()).unwrap();
        req.extensions_mut()
            .insert(std::net::SocketAddr::from(([198, 51, 100, 7], 4000)));
        svc.oneshot(req).await.unwrap();
        let events = transport.fetch_and_clear_events();
        assert_eq!(events.len(), 1);
        let ip = events[0]
            .user
            .as_ref()
            .and_then(|u| u.ip_address.as_ref())
            .map(|ip| ip.to_string());
        if pii {
            assert_eq!(ip.as_deref(), Some("198.51.100.7"));
        } else {
            assert_eq!(ip, None);
            assert!(!json(&events[0]).contains("198.51.100.7"));
        }
    }
}

#[tokio::test]
async fn without_a_client_the_layer_only_forwards() {
    let hub = Arc::new(Hub::new(None, Default::default()));
    let app = app(SentryLayer::new().hub(hub));
    let res = get_with_id(&app, "/status/500", "r-off").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().contains_key("x-request-id"));
}

/// A body that panics on its first frame.
struct PanickingBody;

impl http_body::Body for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if std::hint::black_box(true) {
            panic!("body exploded");
        }
        Poll::Ready(None)
    }
}

#[tokio::test]
async fn panics_while_the_body_streams_are_captured_and_resumed() {
    let (hub, transport) = hub_with(false);
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(SentryLayer::new().hub(hub))
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(PanickingBody))
        }));
    let res = svc
        .oneshot(
            Request::get("/body")
                .header("x-request-id", "r-body")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let join = tokio::spawn(async move { res.into_body().collect().await.map(|_| ()) }).await;
    assert!(join.unwrap_err().is_panic());
    let events = transport.fetch_and_clear_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tags["request_id"], "r-body");
    assert_eq!(events[0].tags["panic.during"], "body");
    assert_eq!(
        events[0].exception.values[0].value.as_deref(),
        Some("body exploded")
    );
}
