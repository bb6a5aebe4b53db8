//! Dynamic-label families: label values are strings known only at run time (`provider`,
//! `model`, `limiter`, a health check's name...).
//!
//! Unlike prometheus-client's `Family` (unbounded `RwLock<HashMap>`, no eviction), every
//! family here has a **series cap**: once `max_series` distinct label sets exist, further new
//! label sets are routed into one series whose labels are all [`OVERFLOW`] and the overflow is
//! counted in `obs_metrics_series_overflow_total{metric="..."}`. Series not updated for
//! `idle_timeout` are evicted at scrape time ([`Registry::evict_idle`](crate::Registry::evict_idle)).
//! A lookup of an existing series hashes the borrowed `&[&str; N]` (no allocation) under a
//! read lock; only the first update of a new series allocates.
//!
//! ```
//! use obs_metrics::{opts, DynCounter, Registry, Scope};
//!
//! let mut registry = Registry::new();
//! let decisions: DynCounter<2> = registry
//!     .dyn_counter(
//!         "ratelimit_requests_total",
//!         "Rate-limit decisions.",
//!         Scope::System,
//!         opts().labels(&["limiter", "decision"]).max_series(100),
//!     )
//!     .unwrap();
//! decisions.inc(["api", "allowed"]);
//! assert_eq!(decisions.get(["api", "allowed"]), 1);
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType as PcType;

use crate::metric::{
    encode_counter_sample, encode_hist_sample, unit_of, with_series, Bounds, ExemplarSlot,
    HistCells, HistogramSnapshot, MetricOptions, SeriesLabels, DEFAULT_BUCKETS,
};

/// Label value of the series that collects updates beyond a family's series cap.
pub const OVERFLOW: &str = "__overflow__";

/// Default series cap of a dynamic family.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// Time source for idle-series eviction: the monotonic clock, or a manual one for tests.
#[derive(Debug, Clone)]
pub enum Clock {
    /// `Instant::now()` relative to the clock's creation.
    System(Instant),
    /// A clock that only moves when told to (tests).
    Manual(Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::System(Instant::now())
    }
}

impl Clock {
    /// A manual clock starting at zero.
    pub fn manual() -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(0)))
    }
    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, d: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(d.as_millis() as u64, Relaxed);
        }
    }
    /// Milliseconds since the clock's origin.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System(base) => base.elapsed().as_millis() as u64,
            Clock::Manual(ms) => ms.load(Relaxed),
        }
    }
}

/// What one series of a dynamic family stores.
pub(crate) trait SeriesKind: Send + Sync + 'static {
    type Series: Send + Sync;
    const TYPE: PcType;
    fn new_series(cfg: &KindCfg) -> Self::Series;
    fn encode(s: &Self::Series, cfg: &KindCfg, e: &mut MetricEncoder<'_>) -> fmt::Result;
}

#[derive(Debug)]
pub(crate) struct KindCfg {
    bounds: Bounds,
    exemplars: bool,
}

pub(crate) struct CounterKind;
pub(crate) struct GaugeKind;
pub(crate) struct HistogramKind;

pub(crate) struct CounterSeries {
    value: AtomicU64,
    exemplar: Option<ExemplarSlot<u64>>,
}

impl SeriesKind for CounterKind {
    type Series = CounterSeries;
    const TYPE: PcType = PcType::Counter;
    fn new_series(cfg: &KindCfg) -> CounterSeries {
        CounterSeries {
            value: AtomicU64::new(0),
            exemplar: cfg.exemplars.then(ExemplarSlot::default),
        }
    }
    fn encode(s: &CounterSeries, _: &KindCfg, e: &mut MetricEncoder<'_>) -> fmt::Result {
        let ex = s.exemplar.as_ref().and_then(ExemplarSlot::get);
        encode_counter_sample(e, s.value.load(Relaxed), ex)
    }
}

impl SeriesKind for GaugeKind {
    type Series = AtomicI64;
    const TYPE: PcType = PcType::Gauge;
    fn new_series(_: &KindCfg) -> AtomicI64 {
        AtomicI64::new(0)
    }
    fn encode(s: &AtomicI64, _: &KindCfg, e: &mut MetricEncoder<'_>) -> fmt::Result {
        e.encode_gauge(&s.load(Relaxed))
    }
}

impl SeriesKind for HistogramKind {
    type Series = HistCells;
    const TYPE: PcType = PcType::Histogram;
    fn new_series(cfg: &KindCfg) -> HistCells {
        HistCells::new(1, cfg.bounds.len())
    }
    fn encode(s: &HistCells, cfg: &KindCfg, e: &mut MetricEncoder<'_>) -> fmt::Result {
        encode_hist_sample(e, &s.snapshot(0, &cfg.bounds))
    }
}

/// One series: its label values packed in one string (`ends[i]` is where value `i` ends), so
/// encoding touches one allocation per series.
struct Entry<K: SeriesKind, const N: usize> {
    text: Box<str>,
    ends: [u32; N],
    last_ms: AtomicU64,
    series: K::Series,
}

impl<K: SeriesKind, const N: usize> Entry<K, N> {
    fn new(values: &[&str; N], now_ms: u64, cfg: &KindCfg) -> Self {
        let mut text = String::with_capacity(values.iter().map(|v| v.len()).sum());
        let mut ends = [0u32; N];
        for (end, v) in ends.iter_mut().zip(values) {
            text.push_str(v);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Self {
            text: text.into(),
            ends,
            last_ms: AtomicU64::new(now_ms),
            series: K::new_series(cfg),
        }
    }

    #[inline]
    fn value(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    #[inline]
    fn matches(&self, values: &[&str; N]) -> bool {
        values.iter().enumerate().all(|(i, v)| self.value(i) == *v)
    }
}

/// Series by hash of their label values; the (astronomically rare) 64-bit hash collisions go
/// to `collided`.
struct Table<K: SeriesKind, const N: usize> {
    map: HashMap<u64, Entry<K, N>>,
    collided: Vec<Entry<K, N>>,
}

impl<K: SeriesKind, const N: usize> Table<K, N> {
    #[inline]
    fn find(&self, h: u64, values: &[&str; N]) -> Option<&Entry<K, N>> {
        match self.map.get(&h) {
            Some(e) if e.matches(values) => Some(e),
            Some(_) => self.collided.iter().find(|e| e.matches(values)),
            None => None,
        }
    }
}

struct Core<K: SeriesKind, const N: usize> {
    name: String,
    help: String,
    label_names: Vec<String>,
    cfg: KindCfg,
    max_series: usize,
    idle_timeout: Option<Duration>,
    clock: Clock,
    hasher: RandomState,
    table: RwLock<Table<K, N>>,
    len: std::sync::atomic::AtomicUsize,
    overflow: Entry<K, N>,
    overflow_used: AtomicBool,
    overflowed: Arc<AtomicU64>,
}

impl<K: SeriesKind, const N: usize> Core<K, N> {
    fn new(name: &str, help: &str, o: &MetricOptions, clock: Clock) -> Self {
        let cfg = KindCfg {
            bounds: Bounds::new(o.buckets.as_deref().unwrap_or(DEFAULT_BUCKETS)),
            exemplars: o.exemplars,
        };
        let overflow = Entry::new(&[OVERFLOW; N], 0, &cfg);
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            label_names: o.label_names.clone().unwrap_or_default(),
            cfg,
            max_series: o.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            idle_timeout: o.idle_timeout,
            clock,
            hasher: RandomState::new(),
            table: RwLock::new(Table {
                map: HashMap::new(),
                collided: Vec::new(),
            }),
            len: Default::default(),
            overflow,
            overflow_used: AtomicBool::new(false),
            overflowed: Arc::new(AtomicU64::new(0)),
        }
    }

    #[inline]
    fn touch(&self, e: &Entry<K, N>) {
        if self.idle_timeout.is_some() {
            let now = self.clock.now_ms();
            if e.last_ms.load(Relaxed) != now {
                e.last_ms.store(now, Relaxed);
            }
        }
    }

    /// Runs `f` on the series for `values`, creating it (or using the overflow series).
    #[inline]
    fn with<R>(&self, values: &[&str; N], f: impl FnOnce(&K::Series) -> R) -> R {
        let h = self.hasher.hash_one(values);
        {
            let table = self.table.read();
            if let Some(e) = table.find(h, values) {
                self.touch(e);
                return f(&e.series);
            }
        }
        self.with_slow(h, values, f)
    }

    #[cold]
    fn with_slow<R>(&self, h: u64, values: &[&str; N], f: impl FnOnce(&K::Series) -> R) -> R {
        let mut table = self.table.write();
        if let Some(e) = table.find(h, values) {
            self.touch(e);
            return f(&e.series);
        }
        if self.len.load(Relaxed) >= self.max_series {
            drop(table);
            self.overflowed.fetch_add(1, Relaxed);
            self.overflow_used.store(true, Relaxed);
            return f(&self.overflow.series);
        }
        let e = Entry::new(values, self.clock.now_ms(), &self.cfg);
        self.len.fetch_add(1, Relaxed);
        let Table { map, collided } = &mut *table;
        let e = match map.entry(h) {
            std::collections::hash_map::Entry::Vacant(v) => v.insert(e),
            std::collections::hash_map::Entry::Occupied(_) => {
                collided.push(e);
                collided.last_mut().expect("just pushed")
            }
        };
        f(&e.series)
    }

    fn read<R>(&self, values: &[&str; N], f: impl FnOnce(&K::Series) -> R) -> Option<R> {
        let h = self.hasher.hash_one(values);
        let table = self.table.read();
        table.find(h, values).map(|e| f(&e.series))
    }

    fn evict_idle(&self) -> usize {
        let Some(timeout) = self.idle_timeout else {
            return 0;
        };
        let now = self.clock.now_ms();
        let limit = timeout.as_millis() as u64;
        let keep = |e: &Entry<K, N>| now.saturating_sub(e.last_ms.load(Relaxed)) <= limit;
        let mut table = self.table.write();
        let before = table.map.len() + table.collided.len();
        table.map.retain(|_, e| keep(e));
        table.collided.retain(keep);
        let removed = before - (table.map.len() + table.collided.len());
        self.len.fetch_sub(removed, Relaxed);
        removed
    }

    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let (stem, unit) = unit_of(&self.name);
        let mut me = encoder.encode_descriptor(stem, &self.help, unit.as_ref(), K::TYPE)?;
        let names: Vec<&str> = self.label_names.iter().map(String::as_str).collect();
        let table = self.table.read();
        let overflow = self.overflow_used.load(Relaxed).then_some(&self.overflow);
        for e in table.map.values().chain(&table.collided).chain(overflow) {
            let values: [&str; N] = std::array::from_fn(|i| e.value(i));
            let labels = SeriesLabels {
                names: &names,
                values: &values,
            };
            with_series(&mut me, &labels, |enc| K::encode(&e.series, &self.cfg, enc))?;
        }
        Ok(())
    }
}

/// Shared behaviour of dynamic families, used by the registry.
pub(crate) trait DynFamily: Send + Sync + fmt::Debug {
    fn evict_idle(&self) -> usize;
    fn overflow_counter(&self) -> (String, Arc<AtomicU64>);
}

macro_rules! dyn_family {
    ($(#[$m:meta])* $name:ident, $kind:ty) => {
        $(#[$m])*
        pub struct $name<const N: usize> {
            core: Arc<Core<$kind, N>>,
        }

        impl<const N: usize> Clone for $name<N> {
            fn clone(&self) -> Self {
                Self { core: self.core.clone() }
            }
        }

        impl<const N: usize> fmt::Debug for $name<N> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("name", &self.core.name)
                    .field("labels", &self.core.label_names)
                    .field("series", &self.series_count())
                    .field("max_series", &self.core.max_series)
                    .finish()
            }
        }

        impl<const N: usize> $name<N> {
            pub(crate) fn new(name: &str, help: &str, o: &MetricOptions, clock: Clock) -> Self {
                Self { core: Arc::new(Core::new(name, help, o, clock)) }
            }
            /// Number of live series (not counting the overflow series).
            pub fn series_count(&self) -> usize {
                self.core.len.load(Relaxed)
            }
            /// How many updates went to the overflow series because the cap was reached.
            pub fn overflowed(&self) -> u64 {
                self.core.overflowed.load(Relaxed)
            }
            /// Drops series idle for longer than the family's `idle_timeout`; returns how many.
            pub fn evict_idle(&self) -> usize {
                self.core.evict_idle()
            }
        }

        impl<const N: usize> Collector for $name<N> {
            fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
                self.core.encode(encoder)
            }
        }

        impl<const N: usize> DynFamily for $name<N> {
            fn evict_idle(&self) -> usize {
                self.core.evict_idle()
            }
            fn overflow_counter(&self) -> (String, Arc<AtomicU64>) {
                (self.core.name.clone(), self.core.overflowed.clone())
            }
        }
    };
}

dyn_family!(
    /// A counter family with `N` string labels.
    DynCounter,
    CounterKind
);
dyn_family!(
    /// An integer gauge family with `N` string labels.
    DynGauge,
    GaugeKind
);
dyn_family!(
    /// A histogram family with `N` string labels.
    DynHistogram,
    HistogramKind
);

impl<const N: usize> DynCounter<N> {
    /// Adds one to the series `values`.
    #[inline]
    pub fn inc(&self, values: [&str; N]) {
        self.inc_by(values, 1);
    }
    /// Adds `v` to the series `values`.
    #[inline]
    pub fn inc_by(&self, values: [&str; N], v: u64) {
        self.core.with(&values, |s| {
            s.value.fetch_add(v, Relaxed);
            if let Some(ex) = &s.exemplar {
                ex.record(v);
            }
        });
    }
    /// Current value of a series (0 if it does not exist).
    pub fn get(&self, values: [&str; N]) -> u64 {
        self.core
            .read(&values, |s| s.value.load(Relaxed))
            .unwrap_or(0)
    }
}

impl<const N: usize> DynGauge<N> {
    /// Adds `v` (may be negative).
    #[inline]
    pub fn add(&self, values: [&str; N], v: i64) {
        self.core.with(&values, |s| s.fetch_add(v, Relaxed));
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self, values: [&str; N]) {
        self.add(values, 1);
    }
    /// Subtracts one.
    #[inline]
    pub fn dec(&self, values: [&str; N]) {
        self.add(values, -1);
    }
    /// Sets the value.
    #[inline]
    pub fn set(&self, values: [&str; N], v: i64) {
        self.core.with(&values, |s| s.store(v, Relaxed));
    }
    /// Current value of a series (0 if it does not exist).
    pub fn get(&self, values: [&str; N]) -> i64 {
        self.core.read(&values, |s| s.load(Relaxed)).unwrap_or(0)
    }
}

impl<const N: usize> DynHistogram<N> {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, values: [&str; N], v: f64) {
        let bounds = &self.core.cfg.bounds;
        self.core.with(&values, |s| {
            s.observe(0, bounds, v);
        });
    }
    /// Reads a series (`None` if it does not exist).
    pub fn snapshot(&self, values: [&str; N]) -> Option<HistogramSnapshot> {
        let bounds = &self.core.cfg.bounds;
        self.core.read(&values, |s| s.snapshot(0, bounds))
    }
}
