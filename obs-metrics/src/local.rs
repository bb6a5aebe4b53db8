//! Per-owner metric handles: [`LocalCounter`] and [`LocalHistogram`].
//!
//! A shared [`Counter`] update is one relaxed `fetch_add` — on x86 a `lock xadd`, the floor for
//! a cell that several threads write. A local handle goes below that floor by not sharing:
//! [`Counter::local`] hands out a handle that owns **exclusive write access to its own
//! shard** (one `AtomicU64` per series; for histograms per series the buckets, `+Inf` and the
//! sum's `f64` bits). Because exactly one handle writes a shard, an update is a relaxed
//! `load` plus a relaxed `store` (no locked read-modify-write, no lock, no thread-local
//! look-up). Scrapes ([`Counter::get`], [`Histogram::snapshot`],
//! [`Registry::encode`](crate::Registry::encode)) add the shared cells and every shard with
//! relaxed loads.
//!
//! # Semantics
//!
//! - **Exact.** Every update of every handle is counted; the shared path and any number of
//!   handles can be mixed on the same metric.
//! - **Single writer.** A handle is `Send` but not `Sync`: it can move to another thread but
//!   not be shared between threads, so its shard never has two concurrent writers. Cloning a
//!   handle acquires another shard.
//! - **Monotonic across drops.** Shards are never folded or freed while the metric lives: a
//!   dropped handle returns its shard (with its values) to the metric's free pool and the next
//!   [`Counter::local`] reuses it. A scrape therefore never sees a counter go backwards or an
//!   update counted twice, whatever handles come and go.
//! - **Memory.** A metric keeps as many shards as it ever had live handles at once. A shard is
//!   the series' cells (8 bytes per counter series; `8 * (buckets + 2)` per histogram series)
//!   plus 256 bytes of padding, so no other allocation shares a cache line with it (writers
//!   on neighbouring shards would otherwise slow each other down, false sharing).
//! - **Cost outside the update.** [`Counter::local`] and dropping a handle take the metric's
//!   shard-pool mutex (uncontended: a few nanoseconds); a scrape (and [`Counter::get`],
//!   [`Histogram::snapshot`]) also takes it and reads every shard. Metrics that never had a
//!   local handle skip the mutex: their reads cost what they did before.
//! - **Exemplars** are recorded exactly as on the shared path (into the metric's shared
//!   exemplar slots, with a `try_lock`).
//!
//! # When to use
//!
//! Hot loops and per-worker state: a worker, connection task or batch job that updates the
//! same metric many times creates one handle up front and keeps it (`tokio`'s per-worker
//! `MetricsBatch` and folly's `ThreadCachedInt` follow the same idea, without their flush
//! delay: local updates are visible to the next scrape). For code that has no natural owner
//! (a request handler called on any thread), keep the shared handle: creating a local handle
//! per update costs a mutex round trip and saves a few nanoseconds.
//!
//! Gauges have no local handle: a `set` cannot be split across shards.
//!
//! ```
//! use obs_metrics::{opts, Counter, Registry, Scope};
//!
//! let registry = Registry::new();
//! let jobs: Counter = registry
//!     .counter("jobs_total", "Jobs run.", Scope::Business, opts())
//!     .unwrap();
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         let local = jobs.local(); // one shard per worker
//!         s.spawn(move || {
//!             for _ in 0..1000 {
//!                 local.inc(());
//!             }
//!         });
//!     }
//! });
//! jobs.inc(()); // the shared path still works
//! assert_eq!(jobs.get(()), 4001);
//! ```

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::labels::LabelSet;
use crate::metric::{Counter, CounterInner, Histogram, HistogramInner, HistogramSnapshot};

/// Cells of padding before and after a shard's live cells: 128 bytes each side, so no other
/// heap allocation shares a cache line (or an adjacent-line prefetch pair) with a shard.
/// A constant offset folds into the address computation of an update: it costs nothing.
pub(crate) const PAD: usize = 16;

/// A single-writer shard: `PAD` cells, the live cells, `PAD` cells.
pub(crate) type Shard = Arc<[AtomicU64]>;

/// The shards of one metric: every shard ever created (scrapes read them all) and the
/// indices of those no live handle owns.
#[derive(Debug, Default)]
pub(crate) struct ShardPool {
    state: Mutex<PoolState>,
    /// Set (under the lock) when the first shard is created, so scrapes of metrics that never
    /// had a local handle skip the mutex and read only the shared cells, as before.
    any: AtomicBool,
}

#[derive(Debug, Default)]
struct PoolState {
    all: Vec<Shard>,
    free: Vec<usize>,
}

impl ShardPool {
    /// A shard no live handle owns (a released one, values kept, or a new zeroed one with
    /// `cells` live cells), and its index for [`release`](Self::release).
    fn acquire(&self, cells: usize) -> (usize, Shard) {
        let mut s = self.state.lock();
        if let Some(k) = s.free.pop() {
            return (k, s.all[k].clone());
        }
        let shard: Shard = (0..PAD + cells + PAD).map(|_| AtomicU64::new(0)).collect();
        s.all.push(shard.clone());
        self.any.store(true, Release);
        (s.all.len() - 1, shard)
    }

    /// Returns shard `k` to the free pool. The mutex orders the releasing handle's last store
    /// before the next owner's first load.
    fn release(&self, k: usize) {
        self.state.lock().free.push(k);
    }

    /// Calls `f` with every shard (under the pool's lock; with none and no lock when no
    /// handle was ever created).
    pub(crate) fn with_shards<R>(&self, f: impl FnOnce(&[Shard]) -> R) -> R {
        if self.any.load(Acquire) {
            f(&self.state.lock().all)
        } else {
            f(&[])
        }
    }

    /// Number of shards (the most handles that were live at once).
    #[cfg(test)]
    pub(crate) fn shards(&self) -> usize {
        self.state.lock().all.len()
    }
}

/// Adds `v` to a cell only this handle writes: relaxed load + relaxed store, no locked RMW.
#[inline(always)]
fn add_owned(cell: &AtomicU64, v: u64) {
    cell.store(cell.load(Relaxed).wrapping_add(v), Relaxed);
}

/// `!Sync` (a handle must not be shared: its shard has one writer), still `Send`.
type NotSync = PhantomData<Cell<()>>;

// ----------------------------------------------------------------------------------------
// Counter

impl<L: LabelSet> Counter<L> {
    /// A handle that owns one shard of this counter: updates through it are a relaxed load and
    /// store, no atomic read-modify-write (see [the module docs](crate::local)).
    ///
    /// Takes the counter's shard-pool mutex; keep the handle for many updates (per worker, per
    /// task, per loop) rather than creating one per update.
    pub fn local(&self) -> LocalCounter<L> {
        let (slot, cells) = self.inner.shards.acquire(L::CARDINALITY);
        LocalCounter {
            cells,
            exemplars: self.inner.exemplars.is_some(),
            slot,
            counter: self.clone(),
            _not_sync: PhantomData,
        }
    }
}

/// A single-writer handle on a [`Counter`], from [`Counter::local`].
///
/// `Send` but not `Sync`; cloning acquires another shard; dropping returns the shard (with its
/// counts, which stay in the counter's total) for the next [`Counter::local`].
///
/// ```
/// use obs_metrics::{opts, Counter, Format, Registry, Scope};
///
/// obs_metrics::label_enum! { /** Outcome. */ pub enum Status { Ok = "ok", Err = "err" } }
/// obs_metrics::label_set! { /** `status`. */ pub struct Outcome { status: Status } }
///
/// let registry = Registry::new();
/// let jobs: Counter<Outcome> = registry
///     .counter("jobs_total", "Jobs run.", Scope::Business, opts())
///     .unwrap();
/// let worker = std::thread::spawn({
///     let local = jobs.local();
///     move || {
///         for _ in 0..10 {
///             local.inc(Outcome { status: Status::Ok });
///         }
///         local.inc_by(Outcome { status: Status::Err }, 2);
///     } // the handle is dropped here; its counts stay
/// });
/// worker.join().unwrap();
/// assert_eq!(jobs.get(Outcome { status: Status::Ok }), 10);
/// let text = registry.encode(Format::OpenMetrics, &[Scope::Business]);
/// assert!(text.contains(r#"jobs_total{status="err"} 2"#));
/// ```
///
/// A handle cannot be shared between threads:
///
/// ```compile_fail
/// fn shared<T: Sync>(_: &T) {}
/// let c: obs_metrics::Counter = obs_metrics::Registry::new()
///     .counter("x_total", "X.", obs_metrics::Scope::Business, obs_metrics::opts())
///     .unwrap();
/// shared(&c.local());
/// ```
pub struct LocalCounter<L: LabelSet = ()> {
    cells: Shard,
    /// Whether the counter records exemplars (kept here: one flag test per update).
    exemplars: bool,
    slot: usize,
    counter: Counter<L>,
    _not_sync: NotSync,
}

impl<L: LabelSet> LocalCounter<L> {
    /// Adds one.
    #[inline]
    pub fn inc(&self, labels: L) {
        self.inc_by(labels, 1);
    }

    /// Adds `v`.
    #[inline]
    pub fn inc_by(&self, labels: L, v: u64) {
        let i = labels.index();
        add_owned(&self.cells[PAD + i], v);
        if self.exemplars {
            self.counter.inner.record_exemplar(i, v);
        }
    }

    /// The counter this handle updates.
    pub fn counter(&self) -> &Counter<L> {
        &self.counter
    }
}

impl<L: LabelSet> Clone for LocalCounter<L> {
    /// Acquires another shard (two handles never share one).
    fn clone(&self) -> Self {
        self.counter.local()
    }
}

impl<L: LabelSet> Drop for LocalCounter<L> {
    fn drop(&mut self) {
        self.counter.inner.shards.release(self.slot);
    }
}

impl<L: LabelSet> fmt::Debug for LocalCounter<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCounter")
            .field("counter", &self.counter)
            .field("shard", &self.slot)
            .finish()
    }
}

/// Sum of series `i` over the shards of a counter.
pub(crate) fn counter_shard_totals(inner: &CounterInner, out: &mut [u64]) {
    inner.shards.with_shards(|shards| {
        for s in shards {
            for (o, c) in out.iter_mut().zip(&s[PAD..]) {
                *o = o.wrapping_add(c.load(Relaxed));
            }
        }
    });
}

// ----------------------------------------------------------------------------------------
// Histogram

impl<L: LabelSet> Histogram<L> {
    /// A handle that owns one shard of this histogram: an observation through it is a relaxed
    /// load and store on the bucket and on the sum, no atomic read-modify-write and no
    /// compare-and-swap loop (see [the module docs](crate::local)).
    ///
    /// Takes the histogram's shard-pool mutex; keep the handle for many observations.
    pub fn local(&self) -> LocalHistogram<L> {
        let (slot, cells) = self
            .inner
            .shards
            .acquire(L::CARDINALITY * (self.inner.bounds.len() + 2));
        LocalHistogram {
            cells,
            stride: self.inner.bounds.len() + 2,
            exemplars: self.inner.exemplars.is_some(),
            slot,
            histogram: self.clone(),
            _not_sync: PhantomData,
        }
    }
}

/// A single-writer handle on a [`Histogram`], from [`Histogram::local`].
///
/// `Send` but not `Sync`; cloning acquires another shard; dropping returns the shard (with its
/// observations, which stay in the histogram) for the next [`Histogram::local`].
///
/// ```
/// use obs_metrics::{opts, Histogram, Registry, Scope};
///
/// let registry = Registry::new();
/// let took: Histogram = registry
///     .histogram("job_duration_seconds", "Job time.", Scope::Business, opts().buckets(&[1.0]))
///     .unwrap();
/// let local = took.local();
/// local.observe((), 0.5);
/// local.observe((), 2.0);
/// took.observe((), 0.25); // shared path, same series
/// let s = took.snapshot(());
/// assert_eq!(s.count, 3);
/// assert_eq!(s.sum, 2.75);
/// assert_eq!(s.buckets, vec![(1.0, 2), (f64::INFINITY, 1)]);
/// ```
pub struct LocalHistogram<L: LabelSet = ()> {
    cells: Shard,
    /// Cells per series in the shard: the buckets, `+Inf` and the sum (`bounds + 2`).
    stride: usize,
    /// Whether the histogram records exemplars (kept here: one flag test per observation).
    exemplars: bool,
    slot: usize,
    histogram: Histogram<L>,
    _not_sync: NotSync,
}

impl<L: LabelSet> LocalHistogram<L> {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, labels: L, v: f64) {
        let inner = &*self.histogram.inner;
        let i = labels.index();
        let b = inner.bounds.bucket_index(v);
        let base = PAD + i * self.stride;
        add_owned(&self.cells[base + b], 1);
        let sum = &self.cells[base + self.stride - 1];
        sum.store((f64::from_bits(sum.load(Relaxed)) + v).to_bits(), Relaxed);
        if self.exemplars {
            inner.record_exemplar(i, b, v);
        }
    }

    /// The histogram this handle updates.
    pub fn histogram(&self) -> &Histogram<L> {
        &self.histogram
    }
}

impl<L: LabelSet> Clone for LocalHistogram<L> {
    /// Acquires another shard (two handles never share one).
    fn clone(&self) -> Self {
        self.histogram.local()
    }
}

impl<L: LabelSet> Drop for LocalHistogram<L> {
    fn drop(&mut self) {
        self.histogram.inner.shards.release(self.slot);
    }
}

impl<L: LabelSet> fmt::Debug for LocalHistogram<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHistogram")
            .field("histogram", &self.histogram)
            .field("shard", &self.slot)
            .finish()
    }
}

/// Adds the shards' buckets and sums of series `i` to `snap` (which holds the shared cells).
pub(crate) fn histogram_add_shards(inner: &HistogramInner, i: usize, snap: &mut HistogramSnapshot) {
    let stride = inner.bounds.len() + 2;
    let base = PAD + i * stride;
    inner.shards.with_shards(|shards| {
        for s in shards {
            let cells = &s[base..base + stride];
            for ((_, c), cell) in snap.buckets.iter_mut().zip(cells) {
                let n = cell.load(Relaxed);
                *c += n;
                snap.count += n;
            }
            snap.sum += f64::from_bits(cells[stride - 1].load(Relaxed));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{opts, Registry, Scope};

    #[test]
    fn shards_are_reused_so_memory_is_the_most_live_handles() {
        let r = Registry::new();
        let c: Counter = r.counter("x_total", "X.", Scope::Business, opts()).unwrap();
        let a = c.local();
        let b = a.clone();
        assert_eq!(c.inner.shards.shards(), 2);
        a.inc(());
        b.inc_by((), 2);
        drop(a);
        drop(b);
        for _ in 0..10 {
            let h = c.local();
            h.inc(());
        }
        assert_eq!(c.inner.shards.shards(), 2, "released shards are reused");
        let (x, y, z) = (c.local(), c.local(), c.local());
        assert_eq!(c.inner.shards.shards(), 3);
        drop((x, y, z));
        assert_eq!(c.get(()), 13);
    }

    #[test]
    fn padding_keeps_shards_off_each_others_cache_lines() {
        let r = Registry::new();
        let c: Counter = r.counter("x_total", "X.", Scope::Business, opts()).unwrap();
        let hs: Vec<_> = (0..8).map(|_| c.local()).collect();
        let live: Vec<usize> = hs
            .iter()
            .map(|h| &h.cells[PAD] as *const AtomicU64 as usize)
            .collect();
        for (a, x) in live.iter().enumerate() {
            for y in &live[a + 1..] {
                // Without the padding, small shards sit 32-64 bytes apart.
                assert!(x.abs_diff(*y) >= 128, "live cells within 128 bytes");
            }
        }
    }
}
