//! OpenTelemetry traces (feature `otel`): a tracer provider built from the standard `OTEL_*`
//! settings, OTLP/HTTP protobuf export, and the `tracing` layer that turns spans into
//! OpenTelemetry spans.
//!
//! [`init`] reads an [`OtelConfig`] (service name, resource attributes, sampler and ratio,
//! OTLP endpoint and protocol) and returns an [`Otel`] handle. [`Otel::layer`] is a
//! [`tracing_opentelemetry`] layer to put on the same registry as `obs_core::logging::layer`;
//! [`Otel::shutdown`] (or [`Otel::shutdown_async`] from async code) flushes the spans still
//! queued. Without `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is exported, but spans still get trace
//! and span ids, so log lines and error reports can name their trace.
//!
//! Composition with the JSON logs (the server side is `obs_tower::otel::OtelLayer`):
//!
//! ```
//! use obs_core::config::OtelConfig;
//! use obs_core::logging::LogConfig;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let otel = obs_telemetry::otel::init(&OtelConfig::default()).unwrap();
//! let subscriber = tracing_subscriber::registry()
//!     .with(obs_core::logging::layer(&LogConfig::default(), std::io::stdout))
//!     .with(otel.layer());
//! tracing::subscriber::with_default(subscriber, || tracing::info!("traced and logged"));
//! otel.shutdown().unwrap();
//! ```
//!
//! The sampler follows `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`
//! (default `parentbased_always_on`); a span that is not sampled still has ids (and
//! propagates `traceparent` with the sampled flag off) but is not exported.
//!
//! The export runs on the SDK's batch processor thread with a blocking reqwest client, so
//! it never runs on (or needs) the application's async runtime. [`Otel::shutdown`] blocks
//! until the queue is exported: call [`Otel::shutdown_async`] inside a tokio runtime.
//!
//! The layer hides obs-tower's `request` span (target `obs_tower::request_id`): with
//! `obs_tower::otel::OtelLayer` the request's OpenTelemetry span is the server span that layer
//! opens, and the `request` span would otherwise show up as an extra root span.

use std::fmt;

use obs_core::config::{OtelConfig, OtlpProtocol, TracesSampler};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, SpanExporter, TracerProviderBuilder,
};
use opentelemetry_sdk::Resource;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `service.name` when `OTEL_SERVICE_NAME` is unset (the SDK's default).
pub const DEFAULT_SERVICE_NAME: &str = "unknown_service";
/// Name of the tracer (instrumentation scope) the layer uses.
pub const TRACER_NAME: &str = "obs";

/// Errors of [`init`] and [`Otel::shutdown`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol this build does not export.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0} is not supported by obs-telemetry; use http/protobuf"
    )]
    UnsupportedProtocol(&'static str),
    /// The OTLP exporter could not be built (bad endpoint, HTTP client).
    #[error("building the OTLP span exporter failed: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Flushing or shutting down the tracer provider failed (e.g. the collector timed out).
    #[error("flushing OpenTelemetry spans failed: {0}")]
    Flush(#[source] OTelSdkError),
}

/// Builds the tracer provider from `config` (see the [module docs](self)): OTLP export when an
/// endpoint is configured and the SDK is not disabled, the configured sampler otherwise.
///
/// Shorthand for `Otel::builder(config).build()`.
pub fn init(config: &OtelConfig) -> Result<Otel, OtelError> {
    Otel::builder(config).build()
}

/// The installed tracer provider: hands out the tracing layer and flushes on shutdown.
///
/// Cheap to clone (the provider is reference counted); every clone flushes the same queue.
#[derive(Clone)]
pub struct Otel {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exporting: bool,
}

impl fmt::Debug for Otel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otel")
            .field("exporting", &self.exporting)
            .finish_non_exhaustive()
    }
}

impl Otel {
    /// A builder from `config`; add exporters of your own (tests: the SDK's in-memory exporter).
    pub fn builder(config: &OtelConfig) -> OtelBuilder {
        OtelBuilder {
            config: config.clone(),
            provider: SdkTracerProvider::builder(),
            custom_exporter: false,
            sampler: None,
        }
    }

    /// The `tracing` layer recording spans as OpenTelemetry spans through this provider.
    ///
    /// Compose it with `obs_core::logging::layer` on one `tracing_subscriber::registry()`.
    /// Spans carry their code location; thread ids and busy/idle times are not recorded.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            // Per span, these cost a `String` (thread name) and two clock reads per poll
            // (busy/idle time) for attributes few backends use.
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|meta| !is_edge_request_span(meta)))
    }

    /// The tracer the layer uses (for code that creates OpenTelemetry spans directly).
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The tracer provider (e.g. to install it globally with
    /// `opentelemetry::global::set_tracer_provider`).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// True when spans are exported (an OTLP endpoint or an exporter of your own).
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports every finished span still queued, blocking the calling thread.
    pub fn force_flush(&self) -> Result<(), OtelError> {
        self.provider.force_flush().map_err(OtelError::Flush)
    }

    /// Flushes the queue and shuts the provider down, blocking the calling thread (spans
    /// finished later are dropped). Calling it again is harmless.
    ///
    /// Inside a tokio runtime use [`shutdown_async`](Self::shutdown_async): the export may need
    /// the runtime (e.g. a collector served by the same process).
    pub fn shutdown(&self) -> Result<(), OtelError> {
        match self.provider.shutdown() {
            Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
            Err(e) => Err(OtelError::Flush(e)),
        }
    }

    /// [`shutdown`](Self::shutdown) on tokio's blocking pool, so the runtime keeps running
    /// while the last batch is exported.
    pub async fn shutdown_async(&self) -> Result<(), OtelError> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.shutdown()).await {
            Ok(result) => result,
            // The blocking pool is gone (runtime shutting down): do it here.
            Err(_) => self.shutdown(),
        }
    }
}

/// obs-tower's `request` span; the OpenTelemetry server span is obs-tower's `OtelLayer` span.
fn is_edge_request_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.name() == "request" && meta.target() == "obs_tower::request_id"
}

/// Builds an [`Otel`]; see [`Otel::builder`].
pub struct OtelBuilder {
    config: OtelConfig,
    provider: TracerProviderBuilder,
    custom_exporter: bool,
    sampler: Option<Sampler>,
}

impl fmt::Debug for OtelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelBuilder")
            .field("config", &self.config)
            .field("custom_exporter", &self.custom_exporter)
            .finish_non_exhaustive()
    }
}

impl OtelBuilder {
    /// Exports through `exporter` synchronously as each span ends (tests, in-memory
    /// exporters). Replaces the OTLP exporter from the configuration.
    pub fn with_simple_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.provider = self.provider.with_simple_exporter(exporter);
        self.custom_exporter = true;
        self
    }

    /// Exports through `exporter` in batches on a background thread. Replaces the OTLP
    /// exporter from the configuration.
    pub fn with_batch_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.provider = self.provider.with_batch_exporter(exporter);
        self.custom_exporter = true;
        self
    }

    /// Uses `sampler` instead of the configured one.
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Builds the provider (and the OTLP exporter when configured).
    pub fn build(self) -> Result<Otel, OtelError> {
        let config = &self.config;
        let mut provider = self.provider;
        let mut exporting = self.custom_exporter;
        if !self.custom_exporter && config.export_enabled() {
            provider = provider.with_batch_exporter(otlp_exporter(config)?);
            exporting = true;
        }
        let sampler = match self.sampler {
            Some(s) => s,
            None if config.sdk_disabled => Sampler::AlwaysOff,
            None => sampler(config),
        };
        let provider = provider
            .with_sampler(sampler)
            .with_resource(resource(config))
            .build();
        let tracer = provider.tracer(TRACER_NAME);
        Ok(Otel {
            provider,
            tracer,
            exporting,
        })
    }
}

/// The OTLP/HTTP protobuf exporter for `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
fn otlp_exporter(config: &OtelConfig) -> Result<opentelemetry_otlp::SpanExporter, OtelError> {
    match config.exporter_otlp_protocol {
        OtlpProtocol::HttpProtobuf => {}
        other => return Err(OtelError::UnsupportedProtocol(other.as_str())),
    }
    let base = config
        .exporter_otlp_endpoint
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_else(|| OtlpProtocol::HttpProtobuf.default_endpoint().to_owned());
    Ok(opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_timeout(OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT)
        .build()?)
}

/// The sampler named by `OTEL_TRACES_SAMPLER`, ratio from `OTEL_TRACES_SAMPLER_ARG`.
pub fn sampler(config: &OtelConfig) -> Sampler {
    let ratio = config.sampler_ratio().unwrap_or(1.0);
    match config.traces_sampler {
        TracesSampler::AlwaysOn => Sampler::AlwaysOn,
        TracesSampler::AlwaysOff => Sampler::AlwaysOff,
        TracesSampler::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        TracesSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TracesSampler::ParentBasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
        // `parentbased_always_on` and any sampler added later: the OpenTelemetry default.
        _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    }
}

/// `service.name` (default [`DEFAULT_SERVICE_NAME`]) and `OTEL_RESOURCE_ATTRIBUTES`; the
/// service name wins over a `service.name` resource attribute, as the specification says.
fn resource(config: &OtelConfig) -> Resource {
    let from_attributes = config
        .resource_attributes
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let service_name = config
        .service_name
        .clone()
        .or(from_attributes)
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    Resource::builder_empty()
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(service_name)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> OtelConfig {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        obs_core::config::Config::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
        .otel
    }

    #[test]
    fn resource_has_service_name_and_attributes() {
        let c = config(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=x",
            ),
        ]);
        let r = resource(&c);
        let get = |k: &'static str| r.get(&opentelemetry::Key::from_static_str(k));
        assert_eq!(get("service.name").unwrap().as_str(), "checkout");
        assert_eq!(get("deployment.environment").unwrap().as_str(), "prod");
        let r = resource(&config(&[]));
        assert_eq!(
            r.get(&opentelemetry::Key::from_static_str("service.name"))
                .unwrap()
                .as_str(),
            DEFAULT_SERVICE_NAME
        );
    }

    #[test]
    fn sampler_follows_the_configuration() {
        let c = config(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        match sampler(&c) {
            Sampler::ParentBased(inner) => {
                // The ratio sampler is inside: about a quarter of random traces are sampled.
                let sampled = (0..4000u128)
                    .filter(|i| {
                        let id = opentelemetry::trace::TraceId::from(
                            i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
                        );
                        matches!(
                            inner
                                .should_sample(
                                    None,
                                    id,
                                    "s",
                                    &opentelemetry::trace::SpanKind::Server,
                                    &[],
                                    &[]
                                )
                                .decision,
                            opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
                        )
                    })
                    .count();
                assert!((700..1300).contains(&sampled), "sampled {sampled} of 4000");
            }
            other => panic!("expected a parent-based sampler, got {other:?}"),
        }
        assert!(matches!(
            sampler(&config(&[("OTEL_TRACES_SAMPLER", "always_off")])),
            Sampler::AlwaysOff
        ));
    }

    #[test]
    fn grpc_is_reported_as_unsupported() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let err = init(&c).unwrap_err();
        assert!(
            matches!(err, OtelError::UnsupportedProtocol("grpc")),
            "{err}"
        );
        assert!(err.to_string().contains("http/protobuf"));
    }

    #[test]
    fn sdk_disabled_exports_nothing_and_samples_nothing() {
        let otel = init(&config(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ]))
        .unwrap();
        assert!(!otel.is_exporting());
        use opentelemetry::trace::{Span as _, Tracer as _};
        let span = otel.tracer().start("x");
        assert!(!span.span_context().is_sampled());
        let exporting = init(&config(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:9",
        )]))
        .unwrap();
        assert!(exporting.is_exporting());
    }

    #[test]
    fn without_endpoint_nothing_is_exported_but_spans_get_ids() {
        let otel = init(&config(&[])).unwrap();
        assert!(!otel.is_exporting());
        use opentelemetry::trace::{Span as _, Tracer as _};
        let span = otel.tracer().start("x");
        assert!(span.span_context().is_valid());
        otel.shutdown().unwrap();
        otel.shutdown().unwrap();
    }
}
