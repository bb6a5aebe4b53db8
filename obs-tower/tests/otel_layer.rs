//! `OtelLayer` with the OpenTelemetry SDK's in-memory exporter: W3C parent/child across an
//! inbound `traceparent`, semantic-convention attributes, error status on 5xx, propagation
//! into a second local service over HTTP, and log correlation. Each test installs its
//! subscriber for the current thread only (current-thread runtimes).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::Logs;
use obs_core::config::{OtelConfig, TracesSampler};
use obs_core::logging::LogConfig;
use obs_core::{RequestContext, TraceIds};
use obs_telemetry::otel::Otel;
use obs_tower::otel::{OtelLayer, RequestBuilderExt as _};
use obs_tower::propagate::RequestBuilderExt as _;
use obs_tower::RequestIdLayer;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tower::ServiceExt as _;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{PARENT}-01")
}

struct Harness {
    exporter: InMemorySpanExporter,
    logs: Logs,
    _otel: Otel,
    _guard: DefaultGuard,
}

impl Harness {
    /// JSON logs (obs-core) + OpenTelemetry (obs-telemetry) on one registry, for this thread.
    fn new(config: &OtelConfig) -> Self {
        let exporter = InMemorySpanExporter::default();
        let otel = Otel::builder(config)
            .with_simple_exporter(exporter.clone())
            .build()
            .unwrap();
        let logs = Logs::default();
        let subscriber = tracing_subscriber::registry()
            .with(obs_core::logging::layer(
                &LogConfig::default(),
                logs.clone(),
            ))
            .with(otel.layer());
        let guard = tracing::subscriber::set_default(subscriber);
        Harness {
            exporter,
            logs,
            _otel: otel,
            _guard: guard,
        }
    }

    fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }

    fn server_spans(&self) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .collect()
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

/// What a handler saw of its request context.
type Seen = Arc<Mutex<Vec<Option<TraceIds>>>>;

fn app(seen: Seen) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(move || {
                let seen = seen.clone();
                async move {
                    let ids = RequestContext::current().and_then(|c| c.trace_ids().copied());
                    seen.lock().unwrap().push(ids);
                    tracing::info_span!("load_user").in_scope(|| tracing::info!("loading user"));
                    "user"
                }
            }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(OtelLayer::new())
        .layer(RequestIdLayer::new())
}

fn get_req(path: &str, traceparent: Option<&str>) -> Request<Body> {
    let mut b =
        Request::get(path).extension(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 4711))));
    if let Some(tp) = traceparent {
        b = b
            .header("traceparent", tp)
            .header("tracestate", "vendor=abc");
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn inbound_traceparent_is_the_parent_of_the_server_span() {
    let h = Harness::new(&OtelConfig::default());
    let seen = Seen::default();
    let res = app(seen.clone())
        .oneshot(get_req("/users/42", Some(&traceparent())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let spans = h.spans();
    assert!(
        spans.iter().all(|s| s.name != "request"),
        "the RequestIdLayer span is not exported: {spans:?}"
    );
    let server = h.server_spans();
    assert_eq!(server.len(), 1, "{spans:?}");
    let server = &server[0];
    assert_eq!(server.name, "GET /users/{id}");
    assert_eq!(
        server.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(server.parent_span_id, SpanId::from_hex(PARENT).unwrap());
    assert!(server.parent_span_is_remote);
    assert!(server.span_context.is_sampled());
    assert_eq!(server.status, Status::Unset);

    // Semantic conventions and the request id.
    assert_eq!(
        attr_str(server, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr_str(server, "http.route").as_deref(),
        Some("/users/{id}")
    );
    assert_eq!(attr_str(server, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr_str(server, "client.address").as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(attr_str(server, "request_id"), Some(request_id.clone()));
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(&Value::I64(200))
    );

    // A span opened in the handler is the server span's child in the same trace.
    let child = spans.iter().find(|s| s.name == "load_user").unwrap();
    assert_eq!(child.parent_span_id, server.span_context.span_id());
    assert_eq!(
        child.span_context.trace_id(),
        server.span_context.trace_id()
    );

    // The request context (task-local, the extension's Arc) names the server span.
    let seen = seen.lock().unwrap();
    let ids = seen[0].expect("trace ids set before the handler ran");
    assert_eq!(ids.trace_id.to_string(), TRACE);
    assert_eq!(
        ids.span_id.to_string(),
        server.span_context.span_id().to_string()
    );

    // Log correlation: the handler's JSON line carries the same trace id and the span id.
    let lines = h.logs.lines();
    let line = lines
        .iter()
        .find(|l| l["message"] == "loading user")
        .unwrap();
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(
        line["span_id"],
        server.span_context.span_id().to_string().as_str()
    );
    assert_eq!(line["request_id"], request_id.as_str());
}

#[tokio::test]
async fn without_or_with_invalid_traceparent_a_new_trace_starts() {
    let h = Harness::new(&OtelConfig::default());
    let invalid = [
        None,
        Some("garbage".to_owned()),
        Some(format!("00-{}-{PARENT}-01", "0".repeat(32))),
        Some(format!("00-{TRACE}-{}-01", "0".repeat(16))),
        Some(format!("ff-{TRACE}-{PARENT}-01")),
        Some(format!("00-{}-{PARENT}-01", TRACE.to_uppercase())),
        Some(format!("00-{TRACE}-{PARENT}-01-extra")),
        Some("00-".repeat(2000)),
    ];
    for tp in &invalid {
        let res = app(Seen::default())
            .oneshot(get_req("/users/1", tp.as_deref()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{tp:?}");
    }
    let server = h.server_spans();
    assert_eq!(server.len(), invalid.len());
    let mut trace_ids = Vec::new();
    for s in &server {
        assert_eq!(s.parent_span_id, SpanId::INVALID, "{:?}", s.attributes);
        assert!(!s.parent_span_is_remote);
        assert!(s.span_context.is_valid());
        assert_ne!(s.span_context.trace_id(), TraceId::from_hex(TRACE).unwrap());
        trace_ids.push(s.span_context.trace_id().to_bytes());
    }
    trace_ids.sort();
    trace_ids.dedup();
    assert_eq!(
        trace_ids.len(),
        invalid.len(),
        "every request its own trace"
    );
}

#[tokio::test]
async fn server_errors_set_error_status_and_client_errors_do_not() {
    let h = Harness::new(&OtelConfig::default());
    for path in ["/fail", "/missing"] {
        app(Seen::default())
            .oneshot(get_req(path, None))
            .await
            .unwrap();
    }
    let server = h.server_spans();
    let fail = server.iter().find(|s| s.name == "GET /fail").unwrap();
    assert!(
        matches!(fail.status, Status::Error { .. }),
        "{:?}",
        fail.status
    );
    assert_eq!(
        attr(fail, "http.response.status_code"),
        Some(&Value::I64(503))
    );
    assert_eq!(attr_str(fail, "error.type").as_deref(), Some("503"));
    let missing = server.iter().find(|s| s.name == "GET /missing").unwrap();
    assert_eq!(missing.status, Status::Unset);
    assert_eq!(
        attr(missing, "http.response.status_code"),
        Some(&Value::I64(404))
    );
    assert!(attr(missing, "error.type").is_none());
}

#[tokio::test]
async fn outgoing_calls_carry_traceparent_to_a_second_service() {
    let h = Harness::new(&OtelConfig::default());

    // Service B, over real HTTP on loopback: records what it received.
    let received: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let rec = received.clone();
    let b = Router::new()
        .route(
            "/inventory",
            get(move |headers: HeaderMap| {
                let rec = rec.clone();
                async move {
                    rec.lock().unwrap().push(headers);
                    tracing::info!("inventory checked");
                    "ok"
                }
            }),
        )
        .layer(OtelLayer::new())
        .layer(RequestIdLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}/inventory", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, b).await.unwrap() });

    // Service A calls B with the request id and the trace context.
    let client = reqwest::Client::new();
    let a = Router::new()
        .route(
            "/orders",
            get(move || async move {
                let res = client
                    .get(&b_url)
                    .with_request_id()
                    .with_trace_context()
                    .send()
                    .await
                    .unwrap();
                res.text().await.unwrap()
            }),
        )
        .layer(OtelLayer::new())
        .layer(RequestIdLayer::new());
    let res = a
        .oneshot(get_req("/orders", Some(&traceparent())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let a_request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let server = h.server_spans();
    let a_span = server.iter().find(|s| s.name == "GET /orders").unwrap();
    let b_span = server.iter().find(|s| s.name == "GET /inventory").unwrap();

    let got = received.lock().unwrap()[0].clone();
    assert_eq!(
        got["traceparent"].to_str().unwrap(),
        format!("00-{TRACE}-{}-01", a_span.span_context.span_id())
    );
    assert_eq!(got["tracestate"], "vendor=abc");
    assert_eq!(got["x-request-id"].to_str().unwrap(), a_request_id);

    // B continued A's trace: one trace id, B's server span is A's server span's child.
    assert_eq!(
        b_span.span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(b_span.parent_span_id, a_span.span_context.span_id());
    assert!(b_span.parent_span_is_remote);
    let line = h
        .logs
        .lines()
        .into_iter()
        .find(|l| l["message"] == "inventory checked")
        .unwrap();
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["request_id"], a_request_id.as_str());
}

#[tokio::test]
async fn unsampled_requests_export_nothing_but_logs_still_name_the_trace() {
    let mut config = OtelConfig::default();
    config.traces_sampler = TracesSampler::ParentBasedTraceIdRatio;
    config.traces_sampler_arg = Some(0.0);
    let h = Harness::new(&config);
    let seen = Seen::default();
    app(seen.clone())
        .oneshot(get_req("/users/7", None))
        .await
        .unwrap();
    // The parent's decision wins over the ratio: a sampled inbound parent is exported.
    app(seen.clone())
        .oneshot(get_req("/users/8", Some(&traceparent())))
        .await
        .unwrap();
    let server = h.server_spans();
    assert_eq!(
        server.len(),
        1,
        "only the parent-sampled request is exported"
    );
    assert_eq!(
        server[0].span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );

    let ids = seen.lock().unwrap()[0].expect("ids without sampling");
    assert_ne!(ids.trace_id.0, [0; 16]);
    let line = h
        .logs
        .lines()
        .into_iter()
        .find(|l| l["message"] == "loading user")
        .unwrap();
    assert_eq!(line["trace_id"], ids.trace_id.to_string().as_str());
}

#[tokio::test]
async fn misordered_or_without_otel_subscriber_it_never_panics() {
    // Outside RequestIdLayer: the parent is still honoured, only the correlation is lost.
    let h = Harness::new(&OtelConfig::default());
    let seen = Seen::default();
    let misordered = Router::new()
        .route(
            "/users/{id}",
            get({
                let seen = seen.clone();
                move || async move {
                    let ids = RequestContext::current().and_then(|c| c.trace_ids().copied());
                    seen.lock().unwrap().push(ids);
                    "user"
                }
            }),
        )
        .layer(RequestIdLayer::new())
        .layer(OtelLayer::new());
    let res = misordered
        .oneshot(get_req("/users/1", Some(&traceparent())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let server = h.server_spans();
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].parent_span_id, SpanId::from_hex(PARENT).unwrap());
    assert!(attr(&server[0], "request_id").is_none());
    assert_eq!(seen.lock().unwrap()[0], None);
    drop(h);

    // No OpenTelemetry layer at all: plain tracing span, no ids, no panic.
    let (logs, _guard) = common::capture();
    let seen = Seen::default();
    let res = app(seen.clone())
        .oneshot(get_req("/users/2", Some(&traceparent())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap()[0], None);
    assert!(obs_tower::otel::trace_context_headers().is_empty());
    assert!(logs.text().contains("loading user"));
}
