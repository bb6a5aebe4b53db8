//! Two services, one trace: `frontend` calls `inventory` over HTTP, and both services' JSON
//! log lines carry the same `trace_id` (and the same `request_id`).
//!
//! ```text
//! cargo run --example tracing_otel --features tower,otel
//! # with a collector (OTLP/HTTP protobuf, e.g. an OpenTelemetry Collector or Jaeger on 4318):
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=shop \
//!   cargo run --example tracing_otel --features tower,otel
//! ```
//!
//! Both services run in this process on two loopback ports; the example sends one request
//! to `frontend` (with an upstream `traceparent`, as a load balancer or another traced
//! service would), prints the trace id, and exits after flushing the spans. Without
//! `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is exported, but spans still get ids, so the logs
//! still correlate.
//!
//! What it shows:
//! - `OtelLayer` inside `RequestIdLayer`: the server span continues the inbound trace;
//! - `.with_request_id().with_trace_context()` on the outgoing reqwest call: `inventory`
//!   continues the same trace (its server span is a child of `frontend`'s) with the same
//!   request id;
//! - `obs_core::logging` + `obs_telemetry::otel` on one registry: every log line inside a
//!   request has `trace_id` and `span_id`.

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use obs::core::config::Config;
use obs::tower::otel::{OtelLayer, RequestBuilderExt as _};
use obs::tower::propagate::RequestBuilderExt as _;
use obs::tower::RequestIdLayer;
use tracing_subscriber::prelude::*;

/// The upstream caller's trace context (W3C example values).
const UPSTREAM_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn stock(Path(sku): Path<String>) -> String {
    tracing::info!(service = "inventory", %sku, "stock looked up");
    "7".to_owned()
}

async fn order(
    State((client, inventory)): State<(reqwest::Client, String)>,
    Path(id): Path<u64>,
) -> String {
    tracing::info!(service = "frontend", order_id = id, "loading order");
    let stock = client
        .get(format!("{inventory}/stock/sku-{id}"))
        .with_request_id()
        .with_trace_context()
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    let stock = match stock {
        Ok(res) => res.text().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(service = "frontend", error = %e, "inventory unavailable");
            "unknown".to_owned()
        }
    };
    tracing::info!(service = "frontend", %stock, "order ready");
    format!("order {id}: {stock} in stock\n")
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let otel = obs_telemetry::otel::init(&config.otel)?;
    tracing_subscriber::registry()
        .with(obs::core::logging::layer(&config.log, std::io::stdout))
        .with(otel.layer())
        .init();
    tracing::info!(
        exporting = otel.is_exporting(),
        endpoint = ?config.otel.exporter_otlp_endpoint.as_ref().map(|u| u.as_str()),
        "OpenTelemetry ready"
    );

    let inventory = serve(
        Router::new()
            .route("/stock/{sku}", get(stock))
            .layer(OtelLayer::new())
            .layer(RequestIdLayer::new()),
    )
    .await?;
    let client = reqwest::Client::new();
    let frontend = serve(
        Router::new()
            .route("/orders/{id}", get(order))
            .with_state((client.clone(), format!("http://{inventory}")))
            .layer(OtelLayer::new())
            .layer(RequestIdLayer::new()),
    )
    .await?;

    let res = client
        .get(format!("http://{frontend}/orders/42"))
        .header("traceparent", UPSTREAM_TRACEPARENT)
        .send()
        .await?;
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await?;
    println!("{}", body.trim_end());
    println!(
        "request_id={request_id} trace_id={}: look for both in the frontend and inventory lines above",
        &UPSTREAM_TRACEPARENT[3..35]
    );

    // Flush the spans; a missing collector is worth a line, not a failure.
    if let Err(e) = otel.shutdown_async().await {
        tracing::warn!(error = %e, "exporting the last spans failed");
    }
    Ok(())
}
