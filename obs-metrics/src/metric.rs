//! Fixed-cardinality metric families: [`Counter`], [`Gauge`], [`Histogram`].
//!
//! A family over a [`LabelSet`] `L` stores one flat `Box<[AtomicU64]>` with a slot per label
//! combination; an update is `slots[labels.index()]` plus one atomic read-modify-write. No
//! lock, no hash, no allocation. Histograms keep per-bucket atomic counters and the sum as
//! `f64` bits updated with a compare-and-swap loop (no mutex, unlike prometheus-client).
//!
//! Handles are cheap clones (`Arc`) and are registered in a [`Registry`](crate::Registry),
//! usually through [`metric_group!`](crate::metric_group).
//!
//! ```
//! use obs_metrics::{opts, Counter, Histogram, Registry, Scope};
//!
//! let mut registry = Registry::new();
//! let jobs: Counter = registry
//!     .counter("jobs_total", "Jobs run.", Scope::Business, opts())
//!     .unwrap();
//! let took: Histogram = registry
//!     .histogram("job_duration_seconds", "Job time.", Scope::Business, opts().buckets(&[0.1, 1.0]))
//!     .unwrap();
//! jobs.inc(());
//! took.observe((), 0.25);
//! assert_eq!(jobs.get(()), 1);
//! assert_eq!(took.snapshot(()).count, 1);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use obs_core::{RequestContext, RequestId};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::registry::Unit;

use crate::labels::LabelSet;
use crate::naming::split_unit;

/// Default histogram buckets (seconds), the Prometheus client defaults.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Per-metric options: histogram buckets, exemplars, dynamic-family limits.
///
/// Built with [`opts()`]; every method is `const`-free and cheap.
#[derive(Debug, Clone, Default)]
pub struct MetricOptions {
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) exemplars: bool,
    pub(crate) max_series: Option<usize>,
    pub(crate) idle_timeout: Option<std::time::Duration>,
    pub(crate) label_names: Option<Vec<String>>,
}

/// Starts a [`MetricOptions`] builder.
pub fn opts() -> MetricOptions {
    MetricOptions::default()
}

impl MetricOptions {
    /// Histogram bucket upper bounds (ascending, finite; `+Inf` is implicit).
    pub fn buckets(mut self, buckets: &[f64]) -> Self {
        self.buckets = Some(buckets.to_vec());
        self
    }
    /// Attach the current request's ID (from [`RequestContext::current`]) as an OpenMetrics
    /// exemplar to counter increments.
    pub fn exemplars(mut self) -> Self {
        self.exemplars = true;
        self
    }
    /// Dynamic families: the most series kept before updates go to the `__overflow__` series.
    pub fn max_series(mut self, n: usize) -> Self {
        self.max_series = Some(n);
        self
    }
    /// Dynamic families: series not updated for this long are dropped by
    /// [`Registry::evict_idle`](crate::Registry::evict_idle).
    pub fn idle_timeout(mut self, d: std::time::Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }
    /// Dynamic families: the label names (as many as the family's `N`).
    pub fn labels(mut self, names: &[&str]) -> Self {
        self.label_names = Some(names.iter().map(|s| (*s).to_owned()).collect());
        self
    }
}

pub(crate) fn unit_of(name: &str) -> (&str, Option<Unit>) {
    let (stem, unit) = split_unit(name);
    let unit = unit.map(|u| match u {
        "seconds" => Unit::Seconds,
        "bytes" => Unit::Bytes,
        other => Unit::Other(other.to_owned()),
    });
    (stem, unit)
}

/// Label names + values of one series, encoded through prometheus-client.
pub(crate) struct SeriesLabels<'a, V: AsRef<str> = &'a str> {
    pub(crate) names: &'a [&'a str],
    pub(crate) values: &'a [V],
}

impl<V: AsRef<str>> EncodeLabelSet for SeriesLabels<'_, V> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        for (n, v) in self.names.iter().zip(self.values) {
            prometheus_client::encoding::EncodeLabel::encode(
                &(*n, v.as_ref()),
                encoder.encode_label(),
            )?;
        }
        Ok(())
    }
}

/// Encodes the labels of fixed series `i` of `L` into a stack buffer, then calls `f`.
fn with_fixed_labels<L: LabelSet, R>(i: usize, f: impl FnOnce(&SeriesLabels<'_>) -> R) -> R {
    let mut buf = [""; crate::labels::MAX_LABELS];
    let n = L::NAMES.len().min(crate::labels::MAX_LABELS);
    for (k, slot) in buf.iter_mut().enumerate().take(n) {
        *slot = L::value_at(i, k);
    }
    f(&SeriesLabels {
        names: L::NAMES,
        values: &buf[..n],
    })
}

/// Encodes one series: through `encode_family` when it has labels, directly when not (so a
/// label-less series is `name 1`, not `name{} 1`).
pub(crate) fn with_series<V: AsRef<str>>(
    me: &mut MetricEncoder<'_>,
    labels: &SeriesLabels<'_, V>,
    f: impl FnOnce(&mut MetricEncoder<'_>) -> fmt::Result,
) -> fmt::Result {
    if labels.names.is_empty() {
        f(me)
    } else {
        let mut fe = me.encode_family(labels)?;
        f(&mut fe)
    }
}

/// The request ID exemplar label set.
#[derive(Debug, Clone)]
pub(crate) struct ExemplarLabels(pub(crate) RequestId);

impl EncodeLabelSet for ExemplarLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        prometheus_client::encoding::EncodeLabel::encode(
            &("request_id", self.0.as_str()),
            encoder.encode_label(),
        )
    }
}

/// Latest exemplar of one series.
#[derive(Debug, Clone)]
pub(crate) struct ExemplarData {
    pub(crate) request_id: RequestId,
    pub(crate) value: u64,
    pub(crate) at: SystemTime,
}

/// One exemplar slot per series. Updated with `try_lock`: a contended update skips the
/// exemplar rather than waiting, so the hot path never blocks.
#[derive(Debug, Default)]
pub(crate) struct ExemplarSlot(Mutex<Option<ExemplarData>>);

impl ExemplarSlot {
    #[inline]
    pub(crate) fn record(&self, value: u64) {
        if let Some(request_id) = RequestContext::current_request_id() {
            if let Some(mut g) = self.0.try_lock() {
                *g = Some(ExemplarData {
                    request_id,
                    value,
                    at: SystemTime::now(),
                });
            }
        }
    }
    pub(crate) fn get(&self) -> Option<ExemplarData> {
        self.0.lock().clone()
    }
}

/// Encodes one counter sample, with its exemplar when there is one (through
/// prometheus-client's `CounterWithExemplar`, whose `Exemplar` has no public constructor).
pub(crate) fn encode_counter_sample(
    enc: &mut MetricEncoder<'_>,
    value: u64,
    exemplar: Option<ExemplarData>,
) -> fmt::Result {
    match exemplar {
        Some(ex) if ex.value <= value && ex.request_id.as_str().len() <= 100 => {
            let tmp: CounterWithExemplar<ExemplarLabels, u64> = CounterWithExemplar::default();
            tmp.inc_by(value - ex.value, None, None);
            tmp.inc_by(ex.value, Some(ExemplarLabels(ex.request_id)), Some(ex.at));
            let (v, e) = tmp.get();
            enc.encode_counter(&v, e.as_ref())
        }
        _ => enc.encode_counter::<NoLabelSet, u64, u64>(&value, None),
    }
}

pub(crate) fn check_buckets(buckets: &[f64]) -> Result<(), String> {
    if buckets.is_empty() {
        return Err("histogram needs at least one bucket".into());
    }
    if buckets.iter().any(|b| !b.is_finite()) {
        return Err("bucket bounds must be finite (+Inf is implicit)".into());
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err("bucket bounds must be strictly ascending".into());
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Counter

struct CounterInner {
    name: String,
    help: String,
    values: Box<[AtomicU64]>,
    exemplars: Option<Box<[ExemplarSlot]>>,
}

/// A counter family over the fixed label set `L` (default: no labels).
pub struct Counter<L: LabelSet = ()> {
    inner: Arc<CounterInner>,
    _labels: PhantomData<fn(L)>,
}

impl<L: LabelSet> Clone for Counter<L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _labels: PhantomData,
        }
    }
}

impl<L: LabelSet> fmt::Debug for Counter<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("name", &self.inner.name)
            .field("series", &L::CARDINALITY)
            .finish()
    }
}

impl<L: LabelSet> Counter<L> {
    pub(crate) fn new(name: &str, help: &str, o: &MetricOptions) -> Self {
        Self {
            inner: Arc::new(CounterInner {
                name: name.to_owned(),
                help: help.to_owned(),
                values: (0..L::CARDINALITY).map(|_| AtomicU64::new(0)).collect(),
                exemplars: o.exemplars.then(|| {
                    (0..L::CARDINALITY)
                        .map(|_| ExemplarSlot::default())
                        .collect()
                }),
            }),
            _labels: PhantomData,
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, labels: L) {
        self.inc_by(labels, 1);
    }

    /// Adds `v`.
    #[inline]
    pub fn inc_by(&self, labels: L, v: u64) {
        let i = labels.index();
        self.inner.values[i].fetch_add(v, Relaxed);
        if let Some(ex) = &self.inner.exemplars {
            ex[i].record(v);
        }
    }

    /// Current value of one series.
    pub fn get(&self, labels: L) -> u64 {
        self.inner.values[labels.index()].load(Relaxed)
    }
}

impl<L: LabelSet> Collector for Counter<L> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.inner.name);
        let mut me =
            encoder.encode_descriptor(stem, &self.inner.help, unit.as_ref(), PcType::Counter)?;
        for i in 0..L::CARDINALITY {
            let v = self.inner.values[i].load(Relaxed);
            let ex = self.inner.exemplars.as_ref().and_then(|e| e[i].get());
            with_fixed_labels::<L, _>(i, |labels| {
                with_series(&mut me, labels, |e| encode_counter_sample(e, v, ex))
            })?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------
// Gauge

struct GaugeInner {
    name: String,
    help: String,
    values: Box<[AtomicI64]>,
}

/// An integer gauge family over the fixed label set `L`.
pub struct Gauge<L: LabelSet = ()> {
    inner: Arc<GaugeInner>,
    _labels: PhantomData<fn(L)>,
}

impl<L: LabelSet> Clone for Gauge<L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _labels: PhantomData,
        }
    }
}

impl<L: LabelSet> fmt::Debug for Gauge<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("name", &self.inner.name)
            .field("series", &L::CARDINALITY)
            .finish()
    }
}

impl<L: LabelSet> Gauge<L> {
    pub(crate) fn new(name: &str, help: &str, _o: &MetricOptions) -> Self {
        Self {
            inner: Arc::new(GaugeInner {
                name: name.to_owned(),
                help: help.to_owned(),
                values: (0..L::CARDINALITY).map(|_| AtomicI64::new(0)).collect(),
            }),
            _labels: PhantomData,
        }
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self, labels: L) {
        self.add(labels, 1);
    }
    /// Subtracts one.
    #[inline]
    pub fn dec(&self, labels: L) {
        self.add(labels, -1);
    }
    /// Adds `v` (may be negative).
    #[inline]
    pub fn add(&self, labels: L, v: i64) {
        self.inner.values[labels.index()].fetch_add(v, Relaxed);
    }
    /// Sets the value.
    #[inline]
    pub fn set(&self, labels: L, v: i64) {
        self.inner.values[labels.index()].store(v, Relaxed);
    }
    /// Current value of one series.
    pub fn get(&self, labels: L) -> i64 {
        self.inner.values[labels.index()].load(Relaxed)
    }
}

impl<L: LabelSet> Collector for Gauge<L> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.inner.name);
        let mut me =
            encoder.encode_descriptor(stem, &self.inner.help, unit.as_ref(), PcType::Gauge)?;
        for i in 0..L::CARDINALITY {
            let v = self.inner.values[i].load(Relaxed);
            with_fixed_labels::<L, _>(i, |labels| {
                with_series(&mut me, labels, |e| e.encode_gauge(&v))
            })?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------
// Histogram

/// Lock-free storage of one histogram series: `[bucket_0 .. bucket_n, +Inf, sum_bits]`.
#[derive(Debug)]
pub(crate) struct HistCells {
    pub(crate) cells: Box<[AtomicU64]>,
}

/// A point-in-time read of one histogram series.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of observed values.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, non-cumulative count)`, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl HistCells {
    pub(crate) fn new(series: usize, buckets: usize) -> Self {
        Self {
            cells: (0..series * (buckets + 2))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn observe(&self, series: usize, bounds: &[f64], v: f64) {
        let stride = bounds.len() + 2;
        let base = series * stride;
        let b = bounds.partition_point(|ub| *ub < v);
        self.cells[base + b].fetch_add(1, Relaxed);
        let sum = &self.cells[base + stride - 1];
        let mut cur = sum.load(Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match sum.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(crate) fn snapshot(&self, series: usize, bounds: &[f64]) -> HistogramSnapshot {
        let stride = bounds.len() + 2;
        let base = series * stride;
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut count = 0;
        for (k, ub) in bounds.iter().copied().chain([f64::INFINITY]).enumerate() {
            let c = self.cells[base + k].load(Relaxed);
            count += c;
            buckets.push((ub, c));
        }
        HistogramSnapshot {
            sum: f64::from_bits(self.cells[base + stride - 1].load(Relaxed)),
            count,
            buckets,
        }
    }
}

pub(crate) fn encode_hist_sample(
    enc: &mut MetricEncoder<'_>,
    s: &HistogramSnapshot,
) -> fmt::Result {
    enc.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
}

struct HistogramInner {
    name: String,
    help: String,
    bounds: Box<[f64]>,
    cells: HistCells,
}

/// A histogram family over the fixed label set `L`.
pub struct Histogram<L: LabelSet = ()> {
    inner: Arc<HistogramInner>,
    _labels: PhantomData<fn(L)>,
}

impl<L: LabelSet> Clone for Histogram<L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _labels: PhantomData,
        }
    }
}

impl<L: LabelSet> fmt::Debug for Histogram<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("name", &self.inner.name)
            .field("buckets", &self.inner.bounds)
            .field("series", &L::CARDINALITY)
            .finish()
    }
}

impl<L: LabelSet> Histogram<L> {
    pub(crate) fn new(name: &str, help: &str, o: &MetricOptions) -> Self {
        let bounds: Box<[f64]> = o.buckets.as_deref().unwrap_or(DEFAULT_BUCKETS).into();
        Self {
            inner: Arc::new(HistogramInner {
                name: name.to_owned(),
                help: help.to_owned(),
                cells: HistCells::new(L::CARDINALITY, bounds.len()),
                bounds,
            }),
            _labels: PhantomData,
        }
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, labels: L, v: f64) {
        self.inner
            .cells
            .observe(labels.index(), &self.inner.bounds, v);
    }

    /// Bucket upper bounds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.inner.bounds
    }

    /// Reads one series.
    pub fn snapshot(&self, labels: L) -> HistogramSnapshot {
        self.inner
            .cells
            .snapshot(labels.index(), &self.inner.bounds)
    }
}

impl<L: LabelSet> Collector for Histogram<L> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.inner.name);
        let mut me =
            encoder.encode_descriptor(stem, &self.inner.help, unit.as_ref(), PcType::Histogram)?;
        for i in 0..L::CARDINALITY {
            let s = self.inner.cells.snapshot(i, &self.inner.bounds);
            with_fixed_labels::<L, _>(i, |labels| {
                with_series(&mut me, labels, |e| encode_hist_sample(e, &s))
            })?;
        }
        Ok(())
    }
}
