//! Fixed-cardinality metric families: [`Counter`], [`Gauge`], [`Histogram`].
//!
//! A family over a [`LabelSet`] `L` stores one flat `Box<[AtomicU64]>` with a slot per label
//! combination; an update is `slots[labels.index()]` plus one atomic read-modify-write. No
//! lock, no hash, no allocation. Histograms keep per-bucket atomic counters and the sum as
//! `f64` bits updated with a compare-and-swap loop (no mutex, unlike prometheus-client).
//!
//! Handles are cheap clones (`Arc`) and are registered in a [`Registry`](crate::Registry),
//! usually through [`metric_group!`](crate::metric_group). For hot loops and per-worker state,
//! [`Counter::local`] and [`Histogram::local`] hand out single-writer handles that update
//! without any atomic read-modify-write ([`local`](crate::local)).
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

use obs_core::{RequestContext, RequestId, TraceId};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::registry::Unit;

use crate::labels::LabelSet;
use crate::local::{counter_shard_totals, histogram_add_shards, ShardPool};
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
    ///
    /// Up to 15 bounds, an observation finds its bucket with a fixed-depth branch-free search
    /// (four compares, whatever the value); longer lists use a branch-free count (up to 32)
    /// or a binary search.
    pub fn buckets(mut self, buckets: &[f64]) -> Self {
        self.buckets = Some(buckets.to_vec());
        self
    }
    /// Attach the current request's `request_id` and `trace_id` (from
    /// [`RequestContext::current`]) as an OpenMetrics exemplar to counter increments and
    /// histogram observations (one exemplar per series, or per bucket for histograms).
    ///
    /// Fixed-label counters and histograms and dynamic counters support it; gauges and
    /// dynamic histograms refuse it at registration. Exemplars appear only in the OpenMetrics
    /// format. Cost: one task-local lookup outside a request; inside one, an uncontended
    /// `try_lock`, a clock read and a request-ID clone (see `benches/metrics.rs`).
    ///
    /// ```
    /// use obs_core::{RequestContext, RequestId};
    /// use obs_metrics::{opts, Format, Histogram, Registry, Scope};
    ///
    /// let registry = Registry::new();
    /// let took: Histogram = registry
    ///     .histogram("job_duration_seconds", "Job time.", Scope::Business,
    ///         opts().buckets(&[1.0]).exemplars())
    ///     .unwrap();
    /// let id = RequestId::parse("req-1").unwrap();
    /// RequestContext::new(id).sync_scope(|| took.observe((), 0.5));
    /// let om = registry.encode(Format::OpenMetrics, &[Scope::Business]);
    /// assert!(om.contains(r#"job_duration_seconds_bucket{le="1.0"} 1 # {request_id="req-1"} 0.5 "#));
    /// let text = registry.encode(Format::Prometheus, &[Scope::Business]);
    /// assert!(!text.contains("req-1"));
    /// ```
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

/// Most characters OpenMetrics allows in an exemplar's label set (names and values combined).
pub const EXEMPLAR_MAX_LABEL_CHARS: usize = 128;

/// The exemplar label set: `request_id` and `trace_id` of the current request.
///
/// Together they must fit in [`EXEMPLAR_MAX_LABEL_CHARS`]; `trace_id` (8 + 32 characters) is
/// kept first because it links to the trace, and `request_id` is dropped when it would not fit.
#[derive(Debug, Clone)]
pub(crate) struct ExemplarLabels {
    pub(crate) request_id: Option<RequestId>,
    pub(crate) trace_id: Option<TraceId>,
}

impl ExemplarLabels {
    /// The labels for `request_id` and `trace_id` within the OpenMetrics size limit, or `None`
    /// when nothing fits.
    pub(crate) fn fit(request_id: Option<&RequestId>, trace_id: Option<TraceId>) -> Option<Self> {
        let trace_chars = trace_id.map_or(0, |_| "trace_id".len() + 32);
        let request_id = request_id
            .filter(|r| {
                // Request IDs are ASCII (`[A-Za-z0-9._:-]`): bytes are characters.
                trace_chars + "request_id".len() + r.as_str().len() <= EXEMPLAR_MAX_LABEL_CHARS
            })
            .cloned();
        (request_id.is_some() || trace_id.is_some()).then_some(Self {
            request_id,
            trace_id,
        })
    }

    /// The labels of the current request, if inside one.
    fn of(ctx: &RequestContext) -> Option<Self> {
        Self::fit(Some(ctx.request_id()), ctx.trace_ids().map(|t| t.trace_id))
    }

    /// Combined characters of names and values (what the 128 limit counts).
    #[cfg(test)]
    pub(crate) fn chars(&self) -> usize {
        self.request_id
            .as_ref()
            .map_or(0, |r| "request_id".len() + r.as_str().chars().count())
            + self.trace_id.map_or(0, |_| "trace_id".len() + 32)
    }

    /// Writes `request_id="..",trace_id=".."` (both values need no escaping: request IDs are
    /// `[A-Za-z0-9._:-]`, trace IDs hex).
    pub(crate) fn write_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        let mut sep = "";
        if let Some(r) = &self.request_id {
            let _ = write!(out, "request_id=\"{}\"", r.as_str());
            sep = ",";
        }
        if let Some(t) = &self.trace_id {
            let _ = write!(out, "{sep}trace_id=\"{t}\"");
        }
    }
}

impl EncodeLabelSet for ExemplarLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        if let Some(r) = &self.request_id {
            prometheus_client::encoding::EncodeLabel::encode(
                &("request_id", r.as_str()),
                encoder.encode_label(),
            )?;
        }
        if let Some(t) = &self.trace_id {
            prometheus_client::encoding::EncodeLabel::encode(
                &("trace_id", t.to_string().as_str()),
                encoder.encode_label(),
            )?;
        }
        Ok(())
    }
}

/// Latest exemplar of one series (counters: `V = u64`) or bucket (histograms: `V = f64`).
#[derive(Debug, Clone)]
pub(crate) struct ExemplarData<V> {
    pub(crate) labels: ExemplarLabels,
    pub(crate) value: V,
    pub(crate) at: SystemTime,
}

/// One exemplar slot per series (counters) or per bucket (histograms).
///
/// Updated with `try_lock`: a contended update skips the exemplar rather than waiting, so the
/// hot path never blocks (an exemplar is a sample; losing one under contention is fine).
/// Outside a request context nothing is recorded and the cost is one task-local lookup.
#[derive(Debug)]
pub(crate) struct ExemplarSlot<V>(Mutex<Option<ExemplarData<V>>>);

impl<V> Default for ExemplarSlot<V> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<V: Copy> ExemplarSlot<V> {
    #[inline]
    pub(crate) fn record(&self, value: V) {
        RequestContext::with_current(|ctx| {
            let Some(ctx) = ctx else { return };
            if let Some(mut g) = self.0.try_lock() {
                if let Some(labels) = ExemplarLabels::of(ctx) {
                    *g = Some(ExemplarData {
                        labels,
                        value,
                        at: SystemTime::now(),
                    });
                }
            }
        });
    }
    pub(crate) fn get(&self) -> Option<ExemplarData<V>> {
        self.0.lock().clone()
    }
}

/// Encodes one counter sample, with its exemplar when there is one (through
/// prometheus-client's `CounterWithExemplar`, whose `Exemplar` has no public constructor).
pub(crate) fn encode_counter_sample(
    enc: &mut MetricEncoder<'_>,
    value: u64,
    exemplar: Option<ExemplarData<u64>>,
) -> fmt::Result {
    match exemplar {
        Some(ex) if ex.value <= value => {
            let tmp: CounterWithExemplar<ExemplarLabels, u64> = CounterWithExemplar::default();
            tmp.inc_by(value - ex.value, None, None);
            tmp.inc_by(ex.value, Some(ex.labels), Some(ex.at));
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

pub(crate) struct CounterInner {
    name: String,
    help: String,
    values: Box<[AtomicU64]>,
    pub(crate) exemplars: Option<Box<[ExemplarSlot<u64>]>>,
    /// Shards of [`LocalCounter`](crate::LocalCounter) handles.
    pub(crate) shards: ShardPool,
}

impl CounterInner {
    /// Records an increment by `v` of series `i` as its exemplar, if this counter has
    /// exemplars. Out of line, like [`HistogramInner::record_exemplar`].
    #[cold]
    #[inline(never)]
    pub(crate) fn record_exemplar(&self, i: usize, v: u64) {
        if let Some(ex) = &self.exemplars {
            ex[i].record(v);
        }
    }
}

/// A counter family over the fixed label set `L` (default: no labels).
pub struct Counter<L: LabelSet = ()> {
    pub(crate) inner: Arc<CounterInner>,
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
                shards: ShardPool::default(),
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
        if self.inner.exemplars.is_some() {
            self.inner.record_exemplar(i, v);
        }
    }

    /// Current value of one series (shared updates plus those of every
    /// [`LocalCounter`](crate::LocalCounter)).
    pub fn get(&self, labels: L) -> u64 {
        let i = labels.index();
        let shared = self.inner.values[i].load(Relaxed);
        self.inner.shards.with_shards(|shards| {
            shards.iter().fold(shared, |acc, s| {
                acc.wrapping_add(s[crate::local::PAD + i].load(Relaxed))
            })
        })
    }

    /// Every series' value, shared cells plus local shards.
    fn totals(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.inner.values.iter().map(|v| v.load(Relaxed)).collect();
        counter_shard_totals(&self.inner, &mut out);
        out
    }
}

impl<L: LabelSet> Collector for Counter<L> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.inner.name);
        let mut me =
            encoder.encode_descriptor(stem, &self.inner.help, unit.as_ref(), PcType::Counter)?;
        let totals = self.totals();
        for (i, v) in totals.into_iter().enumerate() {
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

/// Histogram bucket upper bounds (ascending, finite; `+Inf` implicit) and the layout the bucket
/// search reads.
///
/// Dereferences to the bounds. Up to [`SMALL_BOUNDS`] bounds (the default list has 11) the
/// search is [`SmallBounds::index`]: branch-free, four dependent compares for every value.
/// Longer lists use [`bucket_index`].
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    bounds: Box<[f64]>,
    small: Option<SmallBounds>,
}

impl Bounds {
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.into(),
            small: SmallBounds::new(bounds),
        }
    }

    /// Index of the bucket `v` falls into: the number of upper bounds below `v`
    /// (`self.len()` is `+Inf`; NaN counts into bucket 0, as with a binary search).
    #[inline(always)]
    pub(crate) fn bucket_index(&self, v: f64) -> usize {
        match &self.small {
            Some(s) => s.index(v),
            None => bucket_index(&self.bounds, v),
        }
    }
}

impl std::ops::Deref for Bounds {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.bounds
    }
}

/// Most bounds [`SmallBounds`] takes: 16 slots, the last always `+Inf`.
pub(crate) const SMALL_BOUNDS: usize = 15;

/// Up to [`SMALL_BOUNDS`] ascending bounds padded with `+Inf` to 16 slots, for a branch-free
/// binary search of fixed depth.
///
/// The bucket of `v` is the number of bounds below `v` (`ub < v`). Padding never counts
/// (`+Inf < v` is false for every `v`, `+Inf` and NaN included) and the padded slots stay
/// ascending, so the count is found in four halving steps, each one compare whose result
/// (0 or 1) is added, scaled, to the index: no branch to mispredict, one load and compare per
/// step. NaN is below nothing: every step adds 0, bucket 0, as `partition_point` gives.
#[derive(Debug, Clone)]
pub(crate) struct SmallBounds {
    slots: [f64; 16],
}

impl SmallBounds {
    /// `None` for more than [`SMALL_BOUNDS`] bounds.
    pub(crate) fn new(bounds: &[f64]) -> Option<Self> {
        if bounds.len() > SMALL_BOUNDS {
            return None;
        }
        let mut slots = [f64::INFINITY; 16];
        slots[..bounds.len()].copy_from_slice(bounds);
        Some(Self { slots })
    }

    /// The number of bounds below `v` (see the type's docs).
    #[inline(always)]
    pub(crate) fn index(&self, v: f64) -> usize {
        let s = &self.slots;
        // After each step, every slot below `i` is below `v`, and none at or after
        // `i + width` is (width 16, 8, 4, 2, 1). The masks only spare bounds checks: every
        // index is at most 15 already.
        let mut i = 8 * usize::from(s[7] < v);
        i += 4 * usize::from(s[(i + 3) & 15] < v);
        i += 2 * usize::from(s[(i + 1) & 15] < v);
        i + usize::from(s[i & 15] < v)
    }
}

/// Index of the bucket `v` falls into for bucket lists longer than [`SMALL_BOUNDS`]: the
/// number of upper bounds below `v` (`bounds.len()` is `+Inf`; NaN counts into bucket 0, as
/// with a binary search).
///
/// Up to 32 bounds this is a branch-free count over all of them, which the compiler
/// vectorizes: no chain of dependent loads and compares as in a binary search. Larger bucket
/// lists use `partition_point`. Both give the same index because bounds are strictly
/// ascending.
#[inline(always)]
pub(crate) fn bucket_index(bounds: &[f64], v: f64) -> usize {
    if bounds.len() <= 32 {
        bounds.iter().map(|ub| usize::from(*ub < v)).sum()
    } else {
        bounds.partition_point(|ub| *ub < v)
    }
}

impl HistCells {
    pub(crate) fn new(series: usize, buckets: usize) -> Self {
        Self {
            cells: (0..series * (buckets + 2))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Records `v`; returns the bucket index it fell into (`bounds.len()` is `+Inf`).
    #[inline]
    pub(crate) fn observe(&self, series: usize, bounds: &Bounds, v: f64) -> usize {
        let stride = bounds.len() + 2;
        let base = series * stride;
        let b = bounds.bucket_index(v);
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
        b
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

/// A histogram family whose bucket exemplars [`Registry::encode`](crate::Registry::encode)
/// splices into the OpenMetrics text after prometheus-client encoded the family.
///
/// prometheus-client 0.25's `MetricEncoder::encode_histogram` takes
/// `Option<&HashMap<usize, Exemplar<S, f64>>>`, but `Exemplar` has only `pub(crate)` fields,
/// no constructor and no `Clone`, and the one type that builds them (`HistogramWithExemplars`)
/// keeps them private; so the exemplar text (` # {labels} value timestamp`) is appended to the
/// family's `_bucket` lines by us, in the order the collector encoded them.
pub(crate) trait HistogramExemplars: Send + Sync {
    /// Full metric name (as on the `# TYPE` line).
    fn name(&self) -> &str;
    /// One entry per `_bucket` line, in encoding order (series, then buckets incl. `+Inf`).
    fn exemplars(&self) -> Vec<Option<ExemplarData<f64>>>;
}

/// Appends ` # {labels} value timestamp` (OpenMetrics exemplar syntax) to `out`.
pub(crate) fn write_exemplar_text(out: &mut String, ex: &ExemplarData<f64>) {
    use std::fmt::Write as _;
    out.push_str(" # {");
    ex.labels.write_text(out);
    out.push_str("} ");
    let _ = write!(out, "{:?}", ex.value);
    if let Ok(d) = ex.at.duration_since(std::time::UNIX_EPOCH) {
        let _ = write!(out, " {}.{:03}", d.as_secs(), d.subsec_millis());
    }
}

pub(crate) fn encode_hist_sample(
    enc: &mut MetricEncoder<'_>,
    s: &HistogramSnapshot,
) -> fmt::Result {
    enc.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
}

pub(crate) struct HistogramInner {
    name: String,
    help: String,
    pub(crate) bounds: Bounds,
    cells: HistCells,
    /// `series * (bounds + 1) + bucket` → latest exemplar of that bucket.
    pub(crate) exemplars: Option<Box<[ExemplarSlot<f64>]>>,
    /// Shards of [`LocalHistogram`](crate::LocalHistogram) handles.
    pub(crate) shards: ShardPool,
}

impl HistogramInner {
    /// Records `v` (when finite) as the exemplar of bucket `b` of series `i`, if this
    /// histogram has exemplars. Out of line: exemplars are opt-in and recording one costs a
    /// task-local look-up anyway, so the call is nothing next to it, and the update path of
    /// histograms without exemplars stays a single test.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_exemplar(&self, i: usize, b: usize, v: f64) {
        if let Some(ex) = &self.exemplars {
            if v.is_finite() {
                ex[i * (self.bounds.len() + 1) + b].record(v);
            }
        }
    }
}

/// A histogram family over the fixed label set `L`.
pub struct Histogram<L: LabelSet = ()> {
    pub(crate) inner: Arc<HistogramInner>,
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
            .field("buckets", &&*self.inner.bounds)
            .field("series", &L::CARDINALITY)
            .finish()
    }
}

impl<L: LabelSet> Histogram<L> {
    pub(crate) fn new(name: &str, help: &str, o: &MetricOptions) -> Self {
        let bounds = Bounds::new(o.buckets.as_deref().unwrap_or(DEFAULT_BUCKETS));
        Self {
            inner: Arc::new(HistogramInner {
                name: name.to_owned(),
                help: help.to_owned(),
                cells: HistCells::new(L::CARDINALITY, bounds.len()),
                exemplars: o.exemplars.then(|| {
                    (0..L::CARDINALITY * (bounds.len() + 1))
                        .map(|_| ExemplarSlot::default())
                        .collect()
                }),
                bounds,
                shards: ShardPool::default(),
            }),
            _labels: PhantomData,
        }
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, labels: L, v: f64) {
        let i = labels.index();
        let b = self.inner.cells.observe(i, &self.inner.bounds, v);
        if self.inner.exemplars.is_some() {
            self.inner.record_exemplar(i, b, v);
        }
    }

    /// Bucket upper bounds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.inner.bounds
    }

    /// Reads one series (shared observations plus those of every
    /// [`LocalHistogram`](crate::LocalHistogram)).
    pub fn snapshot(&self, labels: L) -> HistogramSnapshot {
        self.series(labels.index())
    }

    fn series(&self, i: usize) -> HistogramSnapshot {
        let mut s = self.inner.cells.snapshot(i, &self.inner.bounds);
        histogram_add_shards(&self.inner, i, &mut s);
        s
    }
}

impl<L: LabelSet> HistogramExemplars for Histogram<L> {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn exemplars(&self) -> Vec<Option<ExemplarData<f64>>> {
        self.inner
            .exemplars
            .as_deref()
            .map_or_else(Vec::new, |e| e.iter().map(ExemplarSlot::get).collect())
    }
}

impl<L: LabelSet> Collector for Histogram<L> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.inner.name);
        let mut me =
            encoder.encode_descriptor(stem, &self.inner.help, unit.as_ref(), PcType::Histogram)?;
        for i in 0..L::CARDINALITY {
            let s = self.series(i);
            with_fixed_labels::<L, _>(i, |labels| {
                with_series(&mut me, labels, |e| encode_hist_sample(e, &s))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(len: usize) -> RequestId {
        RequestId::parse(&"r".repeat(len)).unwrap()
    }

    proptest::proptest! {
        /// Every bucket search (the fixed-depth one up to 15 bounds, the branch-free count up
        /// to 32, `partition_point` beyond) agrees with a binary search for any strictly
        /// ascending bounds and any value, including bounds themselves, ±Inf and NaN.
        #[test]
        fn bucket_index_matches_a_binary_search(
            mut bounds in proptest::collection::vec(-1e6f64..1e6, 1..60),
            v in proptest::num::f64::ANY,
            pick in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let on_bound = bounds[pick.index(bounds.len())];
            let prepared = Bounds::new(&bounds);
            for v in [v, on_bound, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
                let expected = bounds.partition_point(|ub| *ub < v);
                proptest::prop_assert_eq!(prepared.bucket_index(v), expected);
                proptest::prop_assert_eq!(bucket_index(&bounds, v), expected);
            }
        }
    }

    proptest::proptest! {
        /// The fixed-depth search agrees with a binary search for every bound list it takes
        /// (any finite bounds, 1 to 15 of them) and any value, including the bounds themselves,
        /// their neighbouring floats, ±0, ±Inf and NaN.
        #[test]
        fn small_bounds_match_a_binary_search(
            mut bounds in proptest::collection::vec(proptest::num::f64::NORMAL
                | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO, 1..=SMALL_BOUNDS),
            v in proptest::num::f64::ANY,
            pick in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            bounds.sort_by(f64::total_cmp);
            bounds.dedup_by(|a, b| a == b); // -0.0 == 0.0: strictly ascending as registered
            let small = SmallBounds::new(&bounds).unwrap();
            let b = bounds[pick.index(bounds.len())];
            for v in [v, b, b.next_up(), b.next_down(), 0.0, -0.0, f64::INFINITY,
                      f64::NEG_INFINITY, f64::NAN, f64::MAX, f64::MIN] {
                proptest::prop_assert_eq!(
                    small.index(v),
                    bounds.partition_point(|ub| *ub < v),
                    "bounds {:?}, v {}", bounds, v
                );
            }
        }
    }

    /// Every length the small search takes, every slot boundary: bounds `1..=n`, values on,
    /// just below and just above each bound.
    #[test]
    fn small_bounds_place_values_on_and_around_every_bound() {
        assert!(SmallBounds::new(&[0.5; SMALL_BOUNDS + 1]).is_none());
        for n in 1..=SMALL_BOUNDS {
            let bounds: Vec<f64> = (1..=n).map(|k| k as f64).collect();
            let small = SmallBounds::new(&bounds).unwrap();
            for (k, b) in bounds.iter().enumerate() {
                assert_eq!(small.index(*b), k, "on bound {b} of {n}: its own bucket");
                assert_eq!(small.index(b.next_down()), k);
                assert_eq!(small.index(b.next_up()), k + 1);
            }
            assert_eq!(small.index(f64::NEG_INFINITY), 0);
            assert_eq!(small.index(f64::NAN), 0, "NaN counts into bucket 0");
            assert_eq!(
                small.index(f64::INFINITY),
                n,
                "+Inf goes to the +Inf bucket"
            );
            assert_eq!(small.index(f64::MAX), n);
        }
    }

    #[test]
    fn exemplar_labels_fit_the_openmetrics_limit_dropping_request_id_first() {
        let trace = Some(TraceId([0xab; 16]));
        // Both fit: 10 + 78 + 8 + 32 = 128.
        let l = ExemplarLabels::fit(Some(&rid(78)), trace).unwrap();
        assert!(l.request_id.is_some() && l.trace_id.is_some());
        assert_eq!(l.chars(), EXEMPLAR_MAX_LABEL_CHARS);
        // One more character: request_id is dropped, trace_id kept.
        let l = ExemplarLabels::fit(Some(&rid(79)), trace).unwrap();
        assert!(l.request_id.is_none() && l.trace_id.is_some());
        assert_eq!(l.chars(), 40);
        // Without a trace, a request id up to 118 characters fits; a longer one gives nothing.
        let l = ExemplarLabels::fit(Some(&rid(118)), None).unwrap();
        assert_eq!(l.chars(), EXEMPLAR_MAX_LABEL_CHARS);
        assert!(ExemplarLabels::fit(Some(&rid(119)), None).is_none());
        assert!(ExemplarLabels::fit(None, None).is_none());
        let mut text = String::new();
        ExemplarLabels::fit(Some(&rid(3)), trace)
            .unwrap()
            .write_text(&mut text);
        assert_eq!(
            text,
            format!("request_id=\"rrr\",trace_id=\"{}\"", "ab".repeat(16))
        );
    }
}
