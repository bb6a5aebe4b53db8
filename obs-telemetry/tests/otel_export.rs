//! `obs_telemetry::otel` end to end: spans exported over OTLP/HTTP protobuf to a local
//! receiver that decodes them with the official `opentelemetry-proto` types, and the
//! configured sampler ratio honoured. Subscribers are set per thread, never globally.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use obs_core::config::{Config, OtelConfig};
use obs_telemetry::otel::{init, Otel};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use prost::Message as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn otel_config(vars: &[(&str, String)]) -> OtelConfig {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .otel
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// A local OTLP/HTTP receiver: decodes every `POST /v1/traces` body.
async fn receiver() -> (
    String,
    Arc<Mutex<Vec<(HeaderMap, ExportTraceServiceRequest)>>>,
) {
    let got: Arc<Mutex<Vec<(HeaderMap, ExportTraceServiceRequest)>>> = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(req) => {
                        sink.lock().unwrap().push((headers, req));
                        (
                            StatusCode::OK,
                            [("content-type", "application/x-protobuf")],
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    }
                    Err(_) => (
                        StatusCode::BAD_REQUEST,
                        [("content-type", "text/plain")],
                        b"not an ExportTraceServiceRequest".to_vec(),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_at_an_otlp_http_receiver_as_protobuf() {
    let (url, got) = receiver().await;
    let config = otel_config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url),
        ("OTEL_SERVICE_NAME", "checkout".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test".to_owned(),
        ),
    ]);
    let otel = init(&config).unwrap();
    assert!(otel.is_exporting());

    let subscriber = tracing_subscriber::registry().with(otel.layer());
    let (trace_id, root_span_id) = tracing::subscriber::with_default(subscriber, || {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let root = tracing::info_span!("place order", otel.kind = "server", order_id = 42);
        let ids = {
            let cx = root.context();
            let sc = cx.span().span_context().clone();
            (sc.trace_id(), sc.span_id())
        };
        root.in_scope(|| {
            tracing::info_span!("charge card").in_scope(|| tracing::info!("charged"));
        });
        ids
    });
    otel.shutdown_async().await.unwrap();

    let got = got.lock().unwrap();
    assert!(!got.is_empty(), "the receiver got no export request");
    let (headers, _) = &got[0];
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let resource_spans: Vec<_> = got.iter().flat_map(|(_, r)| &r.resource_spans).collect();
    let resource = resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("checkout")
    );
    assert_eq!(
        string_attr(&resource.attributes, "deployment.environment").as_deref(),
        Some("test")
    );
    let spans: Vec<_> = resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let root = spans.iter().find(|s| s.name == "place order").unwrap();
    let child = spans.iter().find(|s| s.name == "charge card").unwrap();
    assert_eq!(root.trace_id, trace_id.to_bytes());
    assert_eq!(root.span_id, root_span_id.to_bytes());
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert!(root.parent_span_id.is_empty());
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.parent_span_id, root.span_id);
    assert!(root.attributes.iter().any(|kv| kv.key == "order_id"));
    assert!(child.events.iter().any(|e| e.name == "charged"));
}

#[test]
fn the_sampler_ratio_is_honoured_for_root_spans() {
    let config = otel_config(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25".to_owned()),
    ]);
    let exporter = InMemorySpanExporter::default();
    let otel = Otel::builder(&config)
        .with_simple_exporter(exporter.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(otel.layer());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..2000 {
            let root = tracing::info_span!("root");
            // Children follow their parent's decision.
            root.in_scope(|| drop(tracing::info_span!("child")));
        }
    });
    otel.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let roots = spans.iter().filter(|s| s.name == "root").count();
    let children = spans.iter().filter(|s| s.name == "child").count();
    assert!((350..650).contains(&roots), "{roots} of 2000 roots sampled");
    assert_eq!(roots, children);
}
