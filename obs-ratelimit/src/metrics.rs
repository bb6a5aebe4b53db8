//! Limiter metrics on an `obs-metrics` [`Registry`] (feature `metrics`).
//!
//! The counters live in each limiter (atomics, see [`Limiter::stats`]); a collector reads them
//! at scrape time, so deciding costs nothing extra. Families (scope `System`, i.e. `/metrics`):
//!
//! - `ratelimit_requests_total{limiter,decision}` — `decision` is `allowed` or `denied`;
//! - `ratelimit_backend_errors_total{limiter}` — failed or timed-out backend calls;
//! - `ratelimit_degraded{limiter}` — 1 while the backend is considered down (circuit open);
//! - `ratelimit_deny_cache_hits_total{limiter}` — denials answered without the backend.
//!
//! ```
//! use obs_metrics::{Format, Registry, Scope};
//! use obs_ratelimit::metrics::RateLimitMetrics;
//! use obs_ratelimit::Limiter;
//!
//! let registry = Registry::new();
//! let metrics = RateLimitMetrics::register(&registry).unwrap();
//! let limiter = Limiter::builder("api").build_in_memory().unwrap();
//! metrics.add(&limiter);
//! let text = registry.encode(Format::Prometheus, &[Scope::System]);
//! assert!(text.contains(r#"ratelimit_requests_total{limiter="api",decision="allowed"} 0"#));
//! ```

use std::fmt;
use std::sync::Arc;

use obs_metrics::naming::MetricType;
use obs_metrics::registry::LabelDescriptor;
use obs_metrics::{Descriptor, Registry, RegistryError, Scope};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;

use crate::Limiter;

/// The set of limiters whose counters are exported. Cheap to clone.
#[derive(Clone, Default)]
pub struct RateLimitMetrics {
    limiters: Arc<Mutex<Vec<Limiter>>>,
}

impl fmt::Debug for RateLimitMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .limiters
            .lock()
            .iter()
            .map(|l| l.name().to_owned())
            .collect();
        f.debug_struct("RateLimitMetrics")
            .field("limiters", &names)
            .finish()
    }
}

fn descriptor(name: &str, help: &str, metric_type: MetricType, decision: bool) -> Descriptor {
    let mut labels = vec![LabelDescriptor {
        name: "limiter".into(),
        values: None,
    }];
    if decision {
        labels.push(LabelDescriptor {
            name: "decision".into(),
            values: Some(vec!["allowed".into(), "denied".into()]),
        });
    }
    Descriptor {
        name: name.into(),
        help: help.into(),
        metric_type,
        scope: Scope::System,
        labels,
        buckets: None,
        exemplars: false,
        max_series: None,
    }
}

const REQUESTS_HELP: &str = "Rate-limit decisions, by limiter and decision.";
const ERRORS_HELP: &str = "Failed or timed-out rate limiter backend calls.";
const DEGRADED_HELP: &str =
    "1 while the rate limiter backend is down and the outage policy decides.";
const CACHE_HELP: &str = "Rate-limit denials answered by the local deny cache.";

impl RateLimitMetrics {
    /// Registers the `ratelimit_*` families on `registry`; add limiters with [`add`](Self::add).
    pub fn register(registry: &Registry) -> Result<Self, RegistryError> {
        let this = Self::default();
        registry.register_collector(
            vec![
                descriptor(
                    "ratelimit_requests_total",
                    REQUESTS_HELP,
                    MetricType::Counter,
                    true,
                ),
                descriptor(
                    "ratelimit_backend_errors_total",
                    ERRORS_HELP,
                    MetricType::Counter,
                    false,
                ),
                descriptor(
                    "ratelimit_degraded",
                    DEGRADED_HELP,
                    MetricType::Gauge,
                    false,
                ),
                descriptor(
                    "ratelimit_deny_cache_hits_total",
                    CACHE_HELP,
                    MetricType::Counter,
                    false,
                ),
            ],
            Box::new(LimiterCollector(this.clone())),
            Scope::System,
        )?;
        Ok(this)
    }

    /// Exports `limiter`'s counters (labelled with its name) from now on.
    pub fn add(&self, limiter: &Limiter) {
        self.limiters.lock().push(limiter.clone());
    }
}

#[derive(Debug)]
struct LimiterCollector(RateLimitMetrics);

impl Collector for LimiterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let limiters = self.0.limiters.lock().clone();
        let stats: Vec<(String, crate::LimiterStats)> = limiters
            .iter()
            .map(|l| (l.name().to_owned(), l.stats()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "ratelimit_requests",
            REQUESTS_HELP,
            None,
            PcType::Counter,
        )?;
        for (name, s) in &stats {
            for (decision, v) in [("allowed", s.allowed), ("denied", s.denied)] {
                let labels = [("limiter", name.as_str()), ("decision", decision)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "ratelimit_backend_errors",
            ERRORS_HELP,
            None,
            PcType::Counter,
        )?;
        for (name, s) in &stats {
            family
                .encode_family(&[("limiter", name.as_str())])?
                .encode_counter::<NoLabelSet, u64, u64>(&s.backend_errors, None)?;
        }
        let mut family =
            encoder.encode_descriptor("ratelimit_degraded", DEGRADED_HELP, None, PcType::Gauge)?;
        for (name, s) in &stats {
            family
                .encode_family(&[("limiter", name.as_str())])?
                .encode_gauge(&i64::from(s.degraded))?;
        }
        let mut family = encoder.encode_descriptor(
            "ratelimit_deny_cache_hits",
            CACHE_HELP,
            None,
            PcType::Counter,
        )?;
        for (name, s) in &stats {
            family
                .encode_family(&[("limiter", name.as_str())])?
                .encode_counter::<NoLabelSet, u64, u64>(&s.deny_cache_hits, None)?;
        }
        Ok(())
    }
}
