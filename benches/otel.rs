//! Per-request overhead of OpenTelemetry server spans (`obs_tower::otel::OtelLayer` +
//! `obs_telemetry::otel` layer) at sampling ratios 0, 0.1 and 1.0, against the same stack
//! without OpenTelemetry. One criterion group, so the ratios come from one run:
//!
//! - `no-otel`: `RequestIdLayer` around a no-op service, a bare `tracing_subscriber`
//!   registry (the `request` span is created, entered and closed),
//! - `otel-layer-no-sdk`: `OtelLayer` added, but no OpenTelemetry layer on the subscriber
//!   (the server span as a plain tracing span, `traceparent` not even parsed),
//! - `sampling-0`, `sampling-0.1`, `sampling-1.0`: the registry with `Otel::layer()`,
//!   sampler `parentbased_traceidratio` with that ratio, spans exported through the SDK's
//!   batch processor to a no-op exporter (the batch thread does the export work).
//!
//! Requests carry no `traceparent`, so the ratio decides (root spans). The service is driven
//! by polling its future with a no-op waker: no runtime in the measurement.
//!
//! Run: `cargo bench -p obs --features tower,otel --bench otel`
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use obs_core::config::{OtelConfig, TracesSampler};
use obs_telemetry::otel::Otel;
use obs_tower::otel::OtelLayer;
use obs_tower::RequestIdLayer;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tower::{Layer, Service};
use tracing_subscriber::layer::SubscriberExt;

/// Drops every batch: measures the SDK and the layers, not a network.
#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(black_box(batch));
        Ok(())
    }
}

mod support;
use support::{drive, noop};

fn request() -> Request<()> {
    support::request("/users/42", false)
}

fn bench_case<S>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut svc: S,
) where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    assert!(drive(&mut svc, request())
        .headers()
        .contains_key("x-request-id"));
    g.bench_function(name, |b| {
        b.iter_batched(
            request,
            |req| black_box(drive(&mut svc, black_box(req))),
            BatchSize::SmallInput,
        )
    });
}

fn otel_at(ratio: f64) -> Otel {
    let mut config = OtelConfig::default();
    config.traces_sampler = TracesSampler::ParentBasedTraceIdRatio;
    config.traces_sampler_arg = Some(ratio);
    Otel::builder(&config)
        .with_batch_exporter(NoopExporter)
        .build()
        .unwrap()
}

fn otel(c: &mut Criterion) {
    let mut g = c.benchmark_group("otel");
    g.sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let plain = || RequestIdLayer::new().layer(noop());
    let traced = || RequestIdLayer::new().layer(OtelLayer::new().layer(noop()));

    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        bench_case(&mut g, "no-otel", plain());
        bench_case(&mut g, "otel-layer-no-sdk", traced());
    });
    for (name, ratio) in [
        ("sampling-0", 0.0),
        ("sampling-0.1", 0.1),
        ("sampling-1.0", 1.0),
    ] {
        let otel = otel_at(ratio);
        let subscriber = tracing_subscriber::registry().with(otel.layer());
        tracing::subscriber::with_default(subscriber, || bench_case(&mut g, name, traced()));
        otel.shutdown().unwrap();
    }
    g.finish();
}

criterion_group!(benches, otel);
criterion_main!(benches);
