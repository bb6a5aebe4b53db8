//! Recorder metrics on an `obs-metrics` [`Registry`] (feature `metrics`).
//!
//! The counters live in the recorder (atomics, see [`Recorder::stats`]); a collector reads them
//! at scrape time, so `record` costs nothing extra. Families (scope `System`, i.e. `/metrics`):
//!
//! - `telemetry_events_dropped_total{reason}` — items lost: `queue_full` (the bounded queue
//!   was full), `shutdown` (recorded while shutting down), `sink_failed` (given up after a
//!   non-retryable sink error, `max_retries`, or the shutdown deadline), `serialize_error`;
//! - `telemetry_events_queued_total` — items accepted into the queue;
//! - `telemetry_events_written_total{kind}` — `event` or `metric` rows written by the sink;
//! - `telemetry_sink_retries_total` — sink writes that were retried;
//! - `telemetry_queue_depth` / `telemetry_queue_capacity` — items waiting now, and the bound.
//!
//! Alert on `rate(telemetry_events_dropped_total[5m]) > 0`: telemetry never blocks or fails
//! the request that records, so drops are the only sign of an undersized queue or a dead sink.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use obs_metrics::{Format, Registry, Scope};
//! use obs_telemetry::recorder_metrics::TelemetryMetrics;
//! use obs_telemetry::Recorder;
//!
//! let registry = Registry::new();
//! let recorder = Recorder::builder().build().unwrap();
//! TelemetryMetrics::register(&registry, &recorder).unwrap();
//! let text = registry.encode(Format::Prometheus, &[Scope::System]);
//! assert!(text.contains(r#"telemetry_events_dropped_total{reason="queue_full"} 0"#));
//! recorder.shutdown().await;
//! # }
//! ```

use std::fmt;

use obs_metrics::naming::MetricType;
use obs_metrics::registry::LabelDescriptor;
use obs_metrics::{Descriptor, Registry, RegistryError, Scope};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;

use crate::Recorder;

const DROPPED_HELP: &str = "Telemetry items lost, by reason.";
const QUEUED_HELP: &str = "Telemetry items accepted into the recorder's queue.";
const WRITTEN_HELP: &str = "Telemetry rows written by the sink, by kind.";
const RETRIES_HELP: &str = "Telemetry sink writes that were retried.";
const DEPTH_HELP: &str = "Telemetry items waiting in the recorder's queue.";
const CAPACITY_HELP: &str = "Capacity of the recorder's bounded queue.";

/// Exports one recorder's counters; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TelemetryMetrics {
    recorder: Recorder,
}

fn descriptor(
    name: &str,
    help: &str,
    metric_type: MetricType,
    label: Option<(&str, &[&str])>,
) -> Descriptor {
    Descriptor {
        name: name.into(),
        help: help.into(),
        metric_type,
        scope: Scope::System,
        labels: label
            .map(|(name, values)| LabelDescriptor {
                name: name.into(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            })
            .into_iter()
            .collect(),
        buckets: None,
        exemplars: false,
        max_series: None,
    }
}

const REASONS: [&str; 4] = ["queue_full", "shutdown", "sink_failed", "serialize_error"];
const KINDS: [&str; 2] = ["event", "metric"];

impl TelemetryMetrics {
    /// Registers the `telemetry_*` families on `registry`, reading `recorder` at scrape time.
    pub fn register(registry: &Registry, recorder: &Recorder) -> Result<Self, RegistryError> {
        let this = TelemetryMetrics {
            recorder: recorder.clone(),
        };
        registry.register_collector(
            vec![
                descriptor(
                    "telemetry_events_dropped_total",
                    DROPPED_HELP,
                    MetricType::Counter,
                    Some(("reason", &REASONS)),
                ),
                descriptor(
                    "telemetry_events_queued_total",
                    QUEUED_HELP,
                    MetricType::Counter,
                    None,
                ),
                descriptor(
                    "telemetry_events_written_total",
                    WRITTEN_HELP,
                    MetricType::Counter,
                    Some(("kind", &KINDS)),
                ),
                descriptor(
                    "telemetry_sink_retries_total",
                    RETRIES_HELP,
                    MetricType::Counter,
                    None,
                ),
                descriptor("telemetry_queue_depth", DEPTH_HELP, MetricType::Gauge, None),
                descriptor(
                    "telemetry_queue_capacity",
                    CAPACITY_HELP,
                    MetricType::Gauge,
                    None,
                ),
            ],
            Box::new(RecorderCollector(this.clone())),
            Scope::System,
        )?;
        Ok(this)
    }
}

#[derive(Debug)]
struct RecorderCollector(TelemetryMetrics);

impl Collector for RecorderCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let s = self.0.recorder.stats();
        let mut family = encoder.encode_descriptor(
            "telemetry_events_dropped",
            DROPPED_HELP,
            None,
            PcType::Counter,
        )?;
        for (reason, v) in REASONS.into_iter().zip([
            s.dropped_queue_full,
            s.dropped_closed,
            s.failed,
            s.serialize_errors,
        ]) {
            family
                .encode_family(&[("reason", reason)])?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        encoder
            .encode_descriptor(
                "telemetry_events_queued",
                QUEUED_HELP,
                None,
                PcType::Counter,
            )?
            .encode_counter::<NoLabelSet, u64, u64>(&s.queued, None)?;
        let mut family = encoder.encode_descriptor(
            "telemetry_events_written",
            WRITTEN_HELP,
            None,
            PcType::Counter,
        )?;
        for (kind, v) in KINDS.into_iter().zip([s.written_events, s.written_metrics]) {
            family
                .encode_family(&[("kind", kind)])?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        encoder
            .encode_descriptor(
                "telemetry_sink_retries",
                RETRIES_HELP,
                None,
                PcType::Counter,
            )?
            .encode_counter::<NoLabelSet, u64, u64>(&s.retries, None)?;
        encoder
            .encode_descriptor("telemetry_queue_depth", DEPTH_HELP, None, PcType::Gauge)?
            .encode_gauge(&i64::try_from(s.queue_len).unwrap_or(i64::MAX))?;
        encoder
            .encode_descriptor(
                "telemetry_queue_capacity",
                CAPACITY_HELP,
                None,
                PcType::Gauge,
            )?
            .encode_gauge(&i64::try_from(s.queue_capacity).unwrap_or(i64::MAX))?;
        Ok(())
    }
}
