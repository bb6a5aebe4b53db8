//! The [`Registry`]: where metric families are declared, validated and exposed.
//!
//! Every family belongs to a [`Scope`]: `System` (process, HTTP, library metrics — served at
//! `/metrics`) or `Business` (app-defined — served at `/metrics/business`). Each scope is a
//! prometheus-client `Registry` holding our storage as [`Collector`]s, so exposition goes
//! through prometheus-client's encoder; [`Registry::encode`] can serve either scope or both
//! in one body, in OpenMetrics or Prometheus text format.
//!
//! Registration validates what the macros validate at compile time (names, units, label names)
//! plus what only a registry can know (duplicates, bucket order, label counts) and returns a
//! [`RegistryError`] that says what is wrong.
//!
//! ```
//! use obs_metrics::{opts, Format, Registry, Scope};
//!
//! let registry = Registry::new();
//! let logins = registry
//!     .counter::<()>("user_logins_total", "Logins.", Scope::Business, opts())
//!     .unwrap();
//! logins.inc(());
//! let body = registry.encode(Format::Prometheus, &[Scope::Business]);
//! assert!(body.contains("# TYPE user_logins_total counter\nuser_logins_total 1\n"));
//! let err = registry
//!     .counter::<()>("user_logins", "Logins.", Scope::Business, opts())
//!     .unwrap_err();
//! assert!(err.to_string().contains("_total"));
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;

use crate::dynamic::{Clock, DynCounter, DynFamily, DynGauge, DynHistogram, OVERFLOW};
use crate::labels::LabelSet;
use crate::metric::{
    check_buckets, write_exemplar_text, Counter, Gauge, Histogram, HistogramExemplars,
    MetricOptions, DEFAULT_BUCKETS,
};
use crate::naming::{check_label_name, check_metric_name, MetricType};

/// Which endpoint a family is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Process, HTTP and library metrics (`/metrics`).
    System,
    /// Application-defined business metrics (`/metrics/business`).
    Business,
}

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (exemplars, `# UNIT`, `# EOF`).
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The `Content-Type` header value of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics when it is asked for, Prometheus
    /// text otherwise.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// Why a family could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The metric name breaks a naming rule.
    #[error("metric `{name}`: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A label name breaks a naming rule.
    #[error("metric `{metric}`, label `{label}`: {reason}")]
    InvalidLabel {
        /// The metric.
        metric: String,
        /// The offending label name.
        label: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A family with this name is already registered.
    #[error("metric `{0}` is already registered")]
    Duplicate(String),
    /// The help text is empty (write a doc comment on the field).
    #[error("metric `{0}` has no help text (write a doc comment)")]
    MissingHelp(String),
    /// The options do not fit the metric (buckets, labels, exemplars).
    #[error("metric `{name}`: {reason}")]
    InvalidOptions {
        /// The metric.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// One label of a family, as the generators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelDescriptor {
    /// Label name.
    pub name: String,
    /// Allowed values (fixed-cardinality labels) or `None` (dynamic, capped).
    pub values: Option<Vec<String>>,
}

/// Everything known about a family: feeds the catalog, rules and dashboard generators.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// Full metric name (`asset_generations_total`).
    pub name: String,
    /// Help text.
    pub help: String,
    /// Counter, gauge or histogram.
    pub metric_type: MetricType,
    /// Endpoint scope.
    pub scope: Scope,
    /// Labels in order.
    pub labels: Vec<LabelDescriptor>,
    /// Histogram bucket bounds (without `+Inf`).
    pub buckets: Option<Vec<f64>>,
    /// Whether updates carry `request_id`/`trace_id` exemplars (counters and histograms).
    pub exemplars: bool,
    /// Series cap of a dynamic family.
    pub max_series: Option<usize>,
}

impl Descriptor {
    /// The unit implied by the name (`seconds`, `bytes`) if any.
    pub fn unit(&self) -> Option<&'static str> {
        crate::naming::split_unit(&self.name).1
    }
}

#[derive(Debug, Default)]
struct OverflowCollector {
    families: Mutex<Vec<(String, Arc<AtomicU64>)>>,
}

impl Collector for OverflowCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let families = self.families.lock();
        if families.is_empty() {
            return Ok(());
        }
        let mut me = encoder.encode_descriptor(
            "obs_metrics_series_overflow",
            "Updates routed to the __overflow__ series because a dynamic family hit its series cap.",
            None,
            PcType::Counter,
        )?;
        for (name, n) in families.iter() {
            let labels = [("metric", name.as_str())];
            me.encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&n.load(Relaxed), None)?;
        }
        Ok(())
    }
}

struct Inner {
    descriptors: Vec<Descriptor>,
    names: HashSet<String>,
    system: prometheus_client::registry::Registry,
    business: prometheus_client::registry::Registry,
    dynamic: Vec<Box<dyn DynFamily>>,
    overflow: Arc<OverflowCollector>,
    clock: Clock,
    /// Histograms with exemplars, spliced into the OpenMetrics text after encoding.
    hist_exemplars: Vec<(Scope, Box<dyn HistogramExemplars>)>,
}

/// The metric registry. Cheap to clone (shared); registration takes `&self`.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Registry")
            .field(
                "families",
                &inner
                    .descriptors
                    .iter()
                    .map(|d| &d.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Clock::default())
    }

    /// An empty registry whose dynamic families use `clock` for idle eviction.
    pub fn with_clock(clock: Clock) -> Self {
        let overflow = Arc::new(OverflowCollector::default());
        let mut system = prometheus_client::registry::Registry::default();
        system.register_collector(Box::new(overflow.clone()));
        Self {
            inner: Arc::new(Mutex::new(Inner {
                descriptors: Vec::new(),
                names: HashSet::new(),
                system,
                business: Default::default(),
                dynamic: Vec::new(),
                overflow,
                clock,
                hist_exemplars: Vec::new(),
            })),
        }
    }

    /// Registers a custom prometheus-client [`Collector`] with the descriptors of the families
    /// it emits (validated like any other family).
    pub fn register_collector(
        &self,
        descriptors: Vec<Descriptor>,
        collector: Box<dyn Collector>,
        scope: Scope,
    ) -> Result<(), RegistryError> {
        let mut inner = self.inner.lock();
        let mut seen = HashSet::new();
        for d in &descriptors {
            validate(&inner, d)?;
            if !seen.insert(d.name.clone()) {
                return Err(RegistryError::Duplicate(d.name.clone()));
            }
        }
        for d in descriptors {
            inner.names.insert(d.name.clone());
            inner.descriptors.push(Descriptor { scope, ..d });
        }
        match scope {
            Scope::System => inner.system.register_collector(collector),
            Scope::Business => inner.business.register_collector(collector),
        }
        Ok(())
    }

    fn add<C: Collector + Clone>(&self, d: Descriptor, c: &C) -> Result<(), RegistryError> {
        let scope = d.scope;
        self.register_collector(vec![d], Box::new(c.clone()), scope)
    }

    fn fixed_descriptor<L: LabelSet>(
        name: &str,
        help: &str,
        ty: MetricType,
        scope: Scope,
        o: &MetricOptions,
    ) -> Result<Descriptor, RegistryError> {
        if o.max_series.is_some() || o.idle_timeout.is_some() || o.label_names.is_some() {
            return Err(RegistryError::InvalidOptions {
                name: name.into(),
                reason: "max_series/idle_timeout/labels apply to dynamic families only; a fixed family's labels come from its LabelSet type".into(),
            });
        }
        Ok(Descriptor {
            name: name.into(),
            help: help.into(),
            metric_type: ty,
            scope,
            labels: L::NAMES
                .iter()
                .zip(L::VALUES)
                .map(|(n, v)| LabelDescriptor {
                    name: (*n).into(),
                    values: Some(v.iter().map(|s| (*s).into()).collect()),
                })
                .collect(),
            buckets: (ty == MetricType::Histogram).then(|| {
                o.buckets
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec())
            }),
            exemplars: o.exemplars,
            max_series: None,
        })
    }

    fn dyn_descriptor<const N: usize>(
        name: &str,
        help: &str,
        ty: MetricType,
        scope: Scope,
        o: &MetricOptions,
    ) -> Result<Descriptor, RegistryError> {
        let names = o.label_names.clone().unwrap_or_default();
        if names.len() != N {
            return Err(RegistryError::InvalidOptions {
                name: name.into(),
                reason: format!(
                    "a dynamic family with {N} labels needs opts().labels(&[..{N} names..]), got {} names",
                    names.len()
                ),
            });
        }
        if o.max_series == Some(0) {
            return Err(RegistryError::InvalidOptions {
                name: name.into(),
                reason: "max_series must be at least 1".into(),
            });
        }
        Ok(Descriptor {
            name: name.into(),
            help: help.into(),
            metric_type: ty,
            scope,
            labels: names
                .into_iter()
                .map(|n| LabelDescriptor {
                    name: n,
                    values: None,
                })
                .collect(),
            buckets: (ty == MetricType::Histogram).then(|| {
                o.buckets
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec())
            }),
            exemplars: o.exemplars,
            max_series: Some(o.max_series.unwrap_or(crate::dynamic::DEFAULT_MAX_SERIES)),
        })
    }

    /// Registers a counter family over the label set `L`.
    pub fn counter<L: LabelSet>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<Counter<L>, RegistryError> {
        let d = Self::fixed_descriptor::<L>(name, help, MetricType::Counter, scope, &o)?;
        let c = Counter::<L>::new(name, help, &o);
        self.add(d, &c)?;
        Ok(c)
    }

    /// Registers an integer gauge family over the label set `L`.
    pub fn gauge<L: LabelSet>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<Gauge<L>, RegistryError> {
        let d = Self::fixed_descriptor::<L>(name, help, MetricType::Gauge, scope, &o)?;
        let g = Gauge::<L>::new(name, help, &o);
        self.add(d, &g)?;
        Ok(g)
    }

    /// Registers a histogram family over the label set `L`.
    pub fn histogram<L: LabelSet>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<Histogram<L>, RegistryError> {
        let d = Self::fixed_descriptor::<L>(name, help, MetricType::Histogram, scope, &o)?;
        let h = Histogram::<L>::new(name, help, &o);
        self.add(d, &h)?;
        if o.exemplars {
            self.inner
                .lock()
                .hist_exemplars
                .push((scope, Box::new(h.clone())));
        }
        Ok(h)
    }

    fn add_dyn<F: DynFamily + Collector + Clone + 'static>(
        &self,
        d: Descriptor,
        f: F,
    ) -> Result<F, RegistryError> {
        self.add(d, &f)?;
        let mut inner = self.inner.lock();
        inner.overflow.families.lock().push(f.overflow_counter());
        inner.dynamic.push(Box::new(f.clone()));
        Ok(f)
    }

    fn clock(&self) -> Clock {
        self.inner.lock().clock.clone()
    }

    /// Registers a counter family with `N` string labels (names in `opts().labels(..)`).
    pub fn dyn_counter<const N: usize>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<DynCounter<N>, RegistryError> {
        let d = Self::dyn_descriptor::<N>(name, help, MetricType::Counter, scope, &o)?;
        self.add_dyn(d, DynCounter::new(name, help, &o, self.clock()))
    }

    /// Registers an integer gauge family with `N` string labels.
    pub fn dyn_gauge<const N: usize>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<DynGauge<N>, RegistryError> {
        let d = Self::dyn_descriptor::<N>(name, help, MetricType::Gauge, scope, &o)?;
        self.add_dyn(d, DynGauge::new(name, help, &o, self.clock()))
    }

    /// Registers a histogram family with `N` string labels.
    pub fn dyn_histogram<const N: usize>(
        &self,
        name: &str,
        help: &str,
        scope: Scope,
        o: MetricOptions,
    ) -> Result<DynHistogram<N>, RegistryError> {
        let d = Self::dyn_descriptor::<N>(name, help, MetricType::Histogram, scope, &o)?;
        self.add_dyn(d, DynHistogram::new(name, help, &o, self.clock()))
    }

    /// Registers the Linux process metrics (`process_*`) in the system scope.
    pub fn register_process_metrics(&self) -> Result<(), RegistryError> {
        self.register_collector(
            crate::process::descriptors(),
            Box::new(crate::process::ProcessCollector),
            Scope::System,
        )
    }

    /// Descriptors of every registered family, in registration order.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        self.inner.lock().descriptors.clone()
    }

    /// Drops idle series of every dynamic family; returns how many. [`Registry::encode`]
    /// calls it before encoding.
    pub fn evict_idle(&self) -> usize {
        self.inner
            .lock()
            .dynamic
            .iter()
            .map(|f| f.evict_idle())
            .sum()
    }

    /// Encodes the given scopes (in order) into one exposition body.
    ///
    /// In OpenMetrics, counter exemplars are written by prometheus-client; histogram bucket
    /// exemplars are appended to the `_bucket` lines by us (see
    /// [`MetricOptions::exemplars`](crate::MetricOptions::exemplars)), because
    /// prometheus-client 0.25 cannot build a histogram `Exemplar` from external storage.
    pub fn encode(&self, format: Format, scopes: &[Scope]) -> String {
        self.evict_idle();
        let inner = self.inner.lock();
        let mut om = String::with_capacity(4096);
        let mut done = Vec::new();
        for s in scopes {
            if done.contains(s) {
                continue;
            }
            done.push(*s);
            let reg = match s {
                Scope::System => &inner.system,
                Scope::Business => &inner.business,
            };
            prometheus_client::encoding::text::encode_registry(&mut om, reg)
                .expect("writing to a String cannot fail");
        }
        let hist_exemplars: Vec<(&str, Vec<_>)> = match format {
            Format::OpenMetrics => inner
                .hist_exemplars
                .iter()
                .filter(|(s, _)| done.contains(s))
                .map(|(_, h)| (h.name(), h.exemplars()))
                .filter(|(_, e)| e.iter().any(Option::is_some))
                .collect(),
            Format::Prometheus => Vec::new(),
        };
        if !hist_exemplars.is_empty() {
            om = splice_histogram_exemplars(&om, &hist_exemplars);
        }
        drop(hist_exemplars);
        drop(inner);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_eof(&mut om)
                    .expect("writing to a String cannot fail");
                om
            }
            Format::Prometheus => openmetrics_to_prometheus(&om),
        }
    }
}

fn validate(inner: &Inner, d: &Descriptor) -> Result<(), RegistryError> {
    check_metric_name(&d.name, d.metric_type).map_err(|reason| RegistryError::InvalidName {
        name: d.name.clone(),
        reason,
    })?;
    if inner.names.contains(&d.name) {
        return Err(RegistryError::Duplicate(d.name.clone()));
    }
    if d.help.trim().is_empty() {
        return Err(RegistryError::MissingHelp(d.name.clone()));
    }
    let mut seen = HashSet::new();
    for l in &d.labels {
        check_label_name(&l.name).map_err(|reason| RegistryError::InvalidLabel {
            metric: d.name.clone(),
            label: l.name.clone(),
            reason,
        })?;
        if !seen.insert(&l.name) {
            return Err(RegistryError::InvalidLabel {
                metric: d.name.clone(),
                label: l.name.clone(),
                reason: "label name used twice",
            });
        }
        if let Some(vals) = &l.values {
            if vals.iter().any(|v| v == OVERFLOW) {
                return Err(RegistryError::InvalidLabel {
                    metric: d.name.clone(),
                    label: l.name.clone(),
                    reason: "the value `__overflow__` is reserved",
                });
            }
        }
    }
    if let Some(b) = &d.buckets {
        check_buckets(b).map_err(|reason| RegistryError::InvalidOptions {
            name: d.name.clone(),
            reason,
        })?;
    }
    if d.exemplars && d.metric_type == MetricType::Gauge {
        return Err(RegistryError::InvalidOptions {
            name: d.name.clone(),
            reason: "exemplars are supported on counters and histograms, not gauges".into(),
        });
    }
    if d.exemplars && d.metric_type == MetricType::Histogram && d.max_series.is_some() {
        return Err(RegistryError::InvalidOptions {
            name: d.name.clone(),
            reason: "exemplars are supported on fixed-label histograms, not dynamic ones (their series come and go between encoding and exemplar placement)".into(),
        });
    }
    Ok(())
}

/// Appends each histogram family's bucket exemplars to its `_bucket` lines, in order.
///
/// prometheus-client encodes a fixed histogram as `_sum`, `_count`, then one `_bucket` line
/// per bound plus `+Inf`, series by series; `exemplars[k]` belongs to the k-th `_bucket` line
/// of the family named in the `# TYPE` line.
fn splice_histogram_exemplars(
    om: &str,
    families: &[(&str, Vec<Option<crate::metric::ExemplarData<f64>>>)],
) -> String {
    let mut out = String::with_capacity(om.len() + 128 * families.len());
    let mut current: Option<(&str, &[Option<crate::metric::ExemplarData<f64>>])> = None;
    let mut k = 0;
    for line in om.split_inclusive('\n') {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let name = t.split(' ').next().unwrap_or("");
            current = families
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, e)| (*n, e.as_slice()));
            k = 0;
        } else if let Some((name, ex)) = current {
            if line
                .strip_prefix(name)
                .is_some_and(|r| r.starts_with("_bucket{"))
            {
                if let Some(Some(e)) = ex.get(k) {
                    out.push_str(line.trim_end_matches('\n'));
                    write_exemplar_text(&mut out, e);
                    out.push('\n');
                    k += 1;
                    continue;
                }
                k += 1;
            }
        }
        out.push_str(line);
    }
    out
}

/// Converts an OpenMetrics text exposition into the Prometheus text format 0.0.4: counter
/// families are named with `_total`, and `# UNIT`, `# EOF` and exemplars are dropped.
pub fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<&str> = None;
    let mut rest = om;
    while !rest.is_empty() {
        if rest.starts_with('#') {
            // One comment line.
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let line = rest[..end].trim_end_matches('\n');
            rest = &rest[end..];
            if let Some(h) = line.strip_prefix("# HELP ") {
                pending_help = Some(h);
            } else if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, ty) = t.rsplit_once(' ').unwrap_or((t, "untyped"));
                let suffix = if ty == "counter" { "_total" } else { "" };
                if let Some(h) = pending_help.take() {
                    let (hn, text) = h.split_once(' ').unwrap_or((h, ""));
                    out.push_str("# HELP ");
                    out.push_str(hn);
                    out.push_str(suffix);
                    out.push(' ');
                    out.push_str(text);
                    out.push('\n');
                }
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push_str(suffix);
                out.push(' ');
                out.push_str(if ty == "unknown" { "untyped" } else { ty });
                out.push('\n');
            }
            // `# UNIT` and `# EOF` are dropped.
            continue;
        }
        // A block of sample lines, up to the next comment line: copied in one go unless it
        // may hold exemplars.
        let end = rest.find("\n#").map_or(rest.len(), |i| i + 1);
        let block = &rest[..end];
        rest = &rest[end..];
        if block.contains(" # ") {
            for line in block.lines() {
                out.push_str(strip_exemplar(line));
                out.push('\n');
            }
        } else {
            out.push_str(block);
        }
    }
    out
}

fn strip_exemplar(line: &str) -> &str {
    let b = line.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_quotes = false;
            }
        } else if c == b'"' {
            in_quotes = true;
        } else if c == b'#' && i > 0 && b[i - 1] == b' ' {
            return line[..i - 1].trim_end();
        }
        i += 1;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_openmetrics_to_prometheus_text() {
        let om = "# HELP a Things.\n# TYPE a counter\na_total{x=\"1\"} 2 # {request_id=\"r\"} 1.0 1.5\na_total{x=\"2\"} 3\n# HELP b_seconds B.\n# TYPE b_seconds gauge\n# UNIT b_seconds seconds\nb_seconds 1.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(om),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3\n# HELP b_seconds B.\n# TYPE b_seconds gauge\nb_seconds 1.5\n"
        );
    }

    #[test]
    fn strips_exemplars_outside_quotes_only() {
        assert_eq!(
            strip_exemplar(r#"a_total{x="p # {q}"} 3 # {request_id="r"} 1 1.5"#),
            r#"a_total{x="p # {q}"} 3"#
        );
        assert_eq!(strip_exemplar("a 1"), "a 1");
    }
}
