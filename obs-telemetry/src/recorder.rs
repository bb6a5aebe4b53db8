//! The [`Recorder`]: a non-blocking front (consent, context capture, bounded queue) and a
//! background batcher (property filtering, scrubbing, subject hashing, batching, retries).
//!
//! `record` does only what must happen in the caller's task: the global switch and the
//! consent check (before any allocation), capturing the current
//! [`RequestContext`] (one reference-count increment), and a
//! `try_send` into a bounded queue. A full queue drops the event and counts it; `record`
//! never waits. Serialisation, property filtering, scrubbing and HMAC hashing run on the
//! batcher task, which flushes when a batch is full or the flush interval passes, retries
//! retryable sink failures with exponential backoff and jitter, and on
//! [`Recorder::shutdown`] drains the queue completely before returning.
//!
//! Delivery is at least once: a batch whose write failed after the destination stored it
//! (a lost acknowledgement) is written again. Dropping every clone of a recorder without
//! calling `shutdown` lets the batcher flush in the background, but nothing waits for it.
//!
//! ```
//! use obs_telemetry::{event, sink::MemorySink, Recorded, Recorder};
//!
//! event! {
//!     /// A test run finished.
//!     pub struct TestRunCompleted: "test.run.completed" {
//!         pub repo_id: String,
//!         pub test_count: u64,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let sink = MemorySink::new();
//! let recorder = Recorder::builder().sink(sink.clone()).build().unwrap();
//! let r = recorder.record(TestRunCompleted { repo_id: "repo-123".into(), test_count: 100 });
//! assert_eq!(r, Recorded::Queued);
//! recorder.shutdown().await;
//! assert_eq!(sink.events()[0].event_type, "test.run.completed");
//! assert_eq!(recorder.stats().written_events, 1);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use obs_core::RequestContext;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::consent::Consent;
use crate::event::{retain_declared, ErasedEvent, Event, FreeformEvent};
use crate::metric::{MetricName, RunMetric};
use crate::scrub::{scrub_freeform, scrub_typed, Redactions};
use crate::sink::{Batch, Sink, SinkError, StoredEvent, TracingSink};
use crate::subject::SubjectHasher;
use crate::Error;
use obs_core::redact::Scrubber;

/// Longest free-form event name kept, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 128;

/// What happened to one `record` call. Recording never fails the caller; this says why an
/// event was not queued, for callers and tests that care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Accepted into the queue; the batcher will store it.
    Queued,
    /// Telemetry is globally disabled (`TELEMETRY_ENABLED=false`).
    Disabled,
    /// The subject has not consented.
    NoConsent,
    /// The queue was full; the event was dropped and counted.
    QueueFull,
    /// The recorder is shutting down; the event was dropped and counted.
    Closed,
}

/// Counters of a [`Recorder`], read with [`Recorder::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Events and metrics accepted into the queue.
    pub queued: u64,
    /// Events refused because telemetry is disabled.
    pub disabled: u64,
    /// Events refused for lack of consent.
    pub no_consent: u64,
    /// Items dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Items dropped because the recorder was shutting down.
    pub dropped_closed: u64,
    /// Items given up after a non-retryable sink error, after `max_retries`, or at the
    /// shutdown deadline.
    pub failed: u64,
    /// Typed events whose serialisation failed (dropped).
    pub serialize_errors: u64,
    /// Events written by the sink.
    pub written_events: u64,
    /// Run metrics written by the sink.
    pub written_metrics: u64,
    /// Batches written.
    pub batches: u64,
    /// Sink write attempts that were retried.
    pub retries: u64,
    /// Items waiting in the queue right now.
    pub queue_len: u64,
    /// Queue capacity.
    pub queue_capacity: u64,
}

impl RecorderStats {
    /// Everything lost after being offered to the recorder: queue full, closed, failed,
    /// unserialisable (the value behind `telemetry_events_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_closed + self.failed + self.serialize_errors
    }
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    disabled: AtomicU64,
    no_consent: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    failed: AtomicU64,
    serialize_errors: AtomicU64,
    written_events: AtomicU64,
    written_metrics: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Payload {
    Typed(Box<dyn ErasedEvent>),
    Free(FreeformEvent),
}

struct PendingEvent {
    payload: Payload,
    context: Option<RequestContext>,
    subject: Option<String>,
    at: SystemTime,
}

enum Item {
    Event(PendingEvent),
    Metric(RunMetric),
}

/// Records telemetry events and run metrics without blocking. Cheap to clone (one `Arc`);
/// every clone feeds the same queue.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    enabled: bool,
    consent: Option<Arc<dyn Consent>>,
    tx: mpsc::Sender<Item>,
    closed: AtomicBool,
    counters: Arc<Counters>,
    shutdown_tx: watch::Sender<bool>,
    worker: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("enabled", &self.shared.enabled)
            .field("consent", &self.shared.consent.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Recorder {
    /// Starts building a recorder.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// Records a typed event; its subject is the current request's user id, if any.
    ///
    /// Never blocks and never fails; see [`Recorded`] for what happened.
    pub fn record<E: Event>(&self, event: E) -> Recorded {
        self.submit(None, move || Payload::Typed(Box::new(event)))
    }

    /// Records a typed event about `subject` (a user or session id; stored only as its HMAC).
    pub fn record_for<E: Event>(&self, subject: &str, event: E) -> Recorded {
        self.submit(Some(subject), move || Payload::Typed(Box::new(event)))
    }

    /// Records a free-form event (every property goes through the full scrubber).
    pub fn record_freeform(&self, event: FreeformEvent) -> Recorded {
        self.submit(None, move || Payload::Free(event))
    }

    /// Records a free-form event about `subject`.
    pub fn record_freeform_for(&self, subject: &str, event: FreeformEvent) -> Recorded {
        self.submit(Some(subject), move || Payload::Free(event))
    }

    /// Records one run metric (`run_metrics` row). Run metrics are operational data about a
    /// run, not about a person: neither the global switch nor consent applies to them.
    pub fn record_metric(
        &self,
        run_id: impl Into<String>,
        name: MetricName,
        value: f64,
    ) -> Recorded {
        if self.shared.closed.load(Ordering::Relaxed) {
            inc(&self.shared.counters.dropped_closed);
            return Recorded::Closed;
        }
        self.send(Item::Metric(RunMetric::new(run_id, name, value)))
    }

    fn submit(&self, subject: Option<&str>, payload: impl FnOnce() -> Payload) -> Recorded {
        let shared = &*self.shared;
        if !shared.enabled {
            inc(&shared.counters.disabled);
            return Recorded::Disabled;
        }
        if shared.closed.load(Ordering::Relaxed) {
            inc(&shared.counters.dropped_closed);
            return Recorded::Closed;
        }
        let context = RequestContext::current();
        if let Some(consent) = &shared.consent {
            let who = subject.or_else(|| context.as_ref().and_then(|c| c.user_id()));
            if !consent.allows(who) {
                inc(&shared.counters.no_consent);
                return Recorded::NoConsent;
            }
        }
        self.send(Item::Event(PendingEvent {
            payload: payload(),
            context,
            subject: subject.map(str::to_owned),
            at: SystemTime::now(),
        }))
    }

    fn send(&self, item: Item) -> Recorded {
        let counters = &self.shared.counters;
        match self.shared.tx.try_send(item) {
            Ok(()) => {
                inc(&counters.queued);
                Recorded::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                inc(&counters.dropped_queue_full);
                Recorded::QueueFull
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inc(&counters.dropped_closed);
                Recorded::Closed
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RecorderStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cap = self.shared.tx.max_capacity();
        RecorderStats {
            queued: get(&c.queued),
            disabled: get(&c.disabled),
            no_consent: get(&c.no_consent),
            dropped_queue_full: get(&c.dropped_queue_full),
            dropped_closed: get(&c.dropped_closed),
            failed: get(&c.failed),
            serialize_errors: get(&c.serialize_errors),
            written_events: get(&c.written_events),
            written_metrics: get(&c.written_metrics),
            batches: get(&c.batches),
            retries: get(&c.retries),
            queue_len: (cap - self.shared.tx.capacity()) as u64,
            queue_capacity: cap as u64,
        }
    }

    /// Whether events are recorded at all (`TELEMETRY_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled
    }

    /// Stops accepting events, writes everything already queued (retrying failures until the
    /// shutdown timeout), and returns the final counters. Later calls return at once.
    pub async fn shutdown(&self) -> RecorderStats {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.shutdown_tx.send_replace(true);
        let handle = self.shared.worker.lock().await.take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                tracing::error!(target: "obs_telemetry", error = %e, "telemetry batcher task failed");
            }
        }
        self.stats()
    }
}

/// Builds a [`Recorder`]. Every setting has a default; only the sink usually needs choosing.
pub struct RecorderBuilder {
    enabled: bool,
    sink: Option<Arc<dyn Sink>>,
    consent: Option<Arc<dyn Consent>>,
    hasher: Option<SubjectHasher>,
    scrubber: Scrubber,
    queue_capacity: usize,
    max_batch: usize,
    flush_interval: Duration,
    write_timeout: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retries: Option<u32>,
    shutdown_timeout: Duration,
}

impl Default for RecorderBuilder {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: None,
            consent: None,
            hasher: None,
            scrubber: Scrubber::default(),
            queue_capacity: 10_000,
            max_batch: 500,
            flush_interval: Duration::from_secs(1),
            write_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_retries: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for RecorderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderBuilder")
            .field("enabled", &self.enabled)
            .field("sink", &self.sink.is_some())
            .field("consent", &self.consent.is_some())
            .field("hasher", &self.hasher)
            .field("scrubber_rules", &self.scrubber.rules().count())
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch", &self.max_batch)
            .field("flush_interval", &self.flush_interval)
            .field("write_timeout", &self.write_timeout)
            .field("backoff", &(self.backoff_base, self.backoff_max))
            .field("max_retries", &self.max_retries)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl RecorderBuilder {
    /// A builder with the settings of `config` (`TELEMETRY_ENABLED`; opt-in, default off).
    ///
    /// ```
    /// let config = obs_core::config::TelemetryConfig::default();
    /// let builder = obs_telemetry::RecorderBuilder::from_config(&config);
    /// # let _ = builder;
    /// ```
    ///
    /// With `TELEMETRY_SUBJECT_SECRET` set, subjects are hashed with it (key version from
    /// `TELEMETRY_SUBJECT_KEY_VERSION`); without it, subject identifiers are not stored.
    pub fn from_config(config: &obs_core::config::TelemetryConfig) -> Self {
        let builder = Self::default().enabled(config.enabled);
        match &config.subject_secret {
            // obs-core validated the length, which is SubjectHasher's only failure mode.
            Some(secret) => match SubjectHasher::new(secret.expose(), config.subject_key_version) {
                Ok(hasher) => builder.subject_hasher(hasher),
                Err(_) => builder,
            },
            None => builder,
        }
    }

    /// Global switch (`TELEMETRY_ENABLED`); default `true`. When off, `record` returns
    /// [`Recorded::Disabled`] at once.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Where batches go; default [`TracingSink`].
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Per-subject consent, checked before any work; default: everyone.
    pub fn consent(mut self, consent: impl Consent) -> Self {
        self.consent = Some(Arc::new(consent));
        self
    }

    /// Per-subject consent shared with the app (e.g. an `Arc<CachedConsent>` it keeps current).
    pub fn consent_shared(mut self, consent: Arc<dyn Consent>) -> Self {
        self.consent = Some(consent);
        self
    }

    /// Hashes subjects with HMAC-SHA256. Without a hasher, subjects are not stored at all.
    pub fn subject_hasher(mut self, hasher: SubjectHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Queue capacity (default 10 000); when full, new events are dropped and counted.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Largest batch handed to the sink (default 500).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Longest time an item waits for its batch to fill (default 1 s).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }

    /// Time limit of one sink write; a timeout is retried (default 10 s).
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// Retry backoff: the n-th retry waits a random time in `[d/2, d]` with
    /// `d = min(max, base * 2^n)` (defaults 100 ms and 10 s).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Give a batch up after this many retries (default: retry until shutdown).
    pub fn max_retries(mut self, n: Option<u32>) -> Self {
        self.max_retries = n;
        self
    }

    /// How long [`Recorder::shutdown`] keeps retrying a failing sink before giving the rest
    /// up (default 30 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// The PII scrubber (default: `Scrubber::default()`, every default rule). There is no way
    /// to turn scrubbing off; build a scrubber with fewer rules if needed.
    pub fn scrubber(mut self, scrubber: Scrubber) -> Self {
        self.scrubber = scrubber;
        self
    }

    /// Starts the batcher task and returns the recorder.
    ///
    /// # Errors
    /// [`Error::NoRuntime`] outside a Tokio runtime; [`Error::InvalidConfig`] for a zero
    /// queue capacity, batch size or flush interval.
    pub fn build(self) -> Result<Recorder, Error> {
        if self.queue_capacity == 0 {
            return Err(Error::InvalidConfig("queue_capacity must be at least 1"));
        }
        if self.max_batch == 0 {
            return Err(Error::InvalidConfig("max_batch must be at least 1"));
        }
        if self.flush_interval.is_zero() {
            return Err(Error::InvalidConfig("flush_interval must be positive"));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            rx,
            sink: self.sink.unwrap_or_else(|| Arc::new(TracingSink)),
            scrubber: self.scrubber,
            hasher: self.hasher,
            counters: counters.clone(),
            shutdown_rx,
            closing: false,
            deadline: None,
            max_batch: self.max_batch,
            flush_interval: self.flush_interval,
            write_timeout: self.write_timeout,
            backoff_base: self.backoff_base,
            backoff_max: self.backoff_max,
            max_retries: self.max_retries,
            shutdown_timeout: self.shutdown_timeout,
            failing: false,
        };
        let join = handle.spawn(worker.run());
        Ok(Recorder {
            shared: Arc::new(Shared {
                enabled: self.enabled,
                consent: self.consent,
                tx,
                closed: AtomicBool::new(false),
                counters,
                shutdown_tx,
                worker: tokio::sync::Mutex::new(Some(join)),
            }),
        })
    }
}

struct Worker {
    rx: mpsc::Receiver<Item>,
    sink: Arc<dyn Sink>,
    scrubber: Scrubber,
    hasher: Option<SubjectHasher>,
    counters: Arc<Counters>,
    shutdown_rx: watch::Receiver<bool>,
    closing: bool,
    deadline: Option<Instant>,
    max_batch: usize,
    flush_interval: Duration,
    write_timeout: Duration,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retries: Option<u32>,
    shutdown_timeout: Duration,
    failing: bool,
}

impl Worker {
    async fn run(mut self) {
        let mut items: Vec<Item> = Vec::with_capacity(self.max_batch);
        let mut batch = Batch::default();
        loop {
            if items.is_empty() {
                let n = if self.closing {
                    self.rx.recv_many(&mut items, self.max_batch).await
                } else {
                    tokio::select! {
                        n = self.rx.recv_many(&mut items, self.max_batch) => n,
                        _ = self.shutdown_rx.changed() => {
                            self.begin_close();
                            continue;
                        }
                    }
                };
                if n == 0 {
                    break;
                }
            }
            self.fill(&mut items).await;
            self.prepare(&mut items, &mut batch);
            if !batch.is_empty() {
                self.deliver(&batch).await;
            }
            batch.clear();
        }
    }

    /// Tops `items` up to a full batch, waiting at most the flush interval (not at all when
    /// closing: then only what is already queued is taken).
    async fn fill(&mut self, items: &mut Vec<Item>) {
        if self.closing {
            while items.len() < self.max_batch {
                if self.rx.recv_many(items, self.max_batch - items.len()).await == 0 {
                    break;
                }
            }
            return;
        }
        let deadline = Instant::now() + self.flush_interval;
        while items.len() < self.max_batch {
            let want = self.max_batch - items.len();
            tokio::select! {
                n = self.rx.recv_many(items, want) => if n == 0 { break },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.shutdown_rx.changed() => {
                    self.begin_close();
                    while items.len() < self.max_batch {
                        if self.rx.recv_many(items, self.max_batch - items.len()).await == 0 {
                            break;
                        }
                    }
                    break;
                }
            }
        }
    }

    fn begin_close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.rx.close();
            self.deadline = Some(Instant::now() + self.shutdown_timeout);
        }
    }

    fn prepare(&self, items: &mut Vec<Item>, batch: &mut Batch) {
        for item in items.drain(..) {
            match item {
                Item::Metric(m) => batch.metrics.push(m),
                Item::Event(e) => match self.process(e) {
                    Some(stored) => batch.events.push(stored),
                    None => inc(&self.counters.serialize_errors),
                },
            }
        }
    }

    fn process(&self, pending: PendingEvent) -> Option<StoredEvent> {
        let mut redactions = Redactions::default();
        let (event_type, data, schema_version) = match pending.payload {
            Payload::Typed(event) => {
                let mut value = match event.to_value() {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(target: "obs_telemetry", event = event.name(), error = %e,
                            "telemetry event does not serialise; dropped");
                        return None;
                    }
                };
                redactions.undeclared_dropped = retain_declared(&mut value, event.declared());
                scrub_typed(&self.scrubber, &mut value, &mut redactions);
                (event.name().to_owned(), value, event.schema_version())
            }
            Payload::Free(event) => {
                let (mut name, props, version) = event.into_parts();
                // Names are free text too: cut, strip control characters, scrub.
                crate::metric::truncate(&mut name, MAX_EVENT_NAME_LEN);
                name.retain(|c| !c.is_control());
                let report = self.scrubber.scrub_string(&mut name);
                redactions.merge_report(&report);
                let mut value = Value::Object(props);
                scrub_freeform(&self.scrubber, &mut value, &mut redactions);
                (name, value, version)
            }
        };
        let context = pending.context.as_ref();
        let subject = pending
            .subject
            .as_deref()
            .or_else(|| context.and_then(|c| c.user_id()));
        let (subject_hash, subject_key_version) = match (subject, &self.hasher) {
            (Some(s), Some(h)) => (Some(h.hash(s)), Some(h.key_version())),
            _ => (None, None),
        };
        Some(StoredEvent {
            event_type,
            event_data: data,
            request_id: context.map(|c| c.request_id().as_str().to_owned()),
            route: context.and_then(|c| c.route()).map(str::to_owned),
            subject_hash,
            subject_key_version,
            occurred_at: pending.at,
            redactions,
            schema_version,
        })
    }

    async fn deliver(&mut self, batch: &Batch) {
        // Past the shutdown deadline with a sink that is still failing: give the rest up
        // without waiting on it again (a healthy sink still gets every batch).
        if self.failing && self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.counters
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        }
        let mut attempt: u32 = 0;
        loop {
            let result =
                match tokio::time::timeout(self.write_timeout, self.sink.write(batch)).await {
                    Ok(r) => r,
                    Err(_) => Err(SinkError::Unavailable(format!(
                        "write timed out after {:?}",
                        self.write_timeout
                    ))),
                };
            let err = match result {
                Ok(()) => {
                    let c = &self.counters;
                    c.written_events
                        .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    c.written_metrics
                        .fetch_add(batch.metrics.len() as u64, Ordering::Relaxed);
                    inc(&c.batches);
                    if std::mem::take(&mut self.failing) {
                        tracing::info!(target: "obs_telemetry", "telemetry sink recovered");
                    }
                    return;
                }
                Err(e) => e,
            };
            let past_deadline = self.deadline.is_some_and(|d| Instant::now() >= d);
            let out_of_retries = self.max_retries.is_some_and(|m| attempt >= m);
            if !err.is_retryable() || past_deadline || out_of_retries {
                tracing::error!(target: "obs_telemetry", error = %err, items = batch.len(),
                    "telemetry batch given up");
                self.counters
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            if !std::mem::replace(&mut self.failing, true) {
                tracing::warn!(target: "obs_telemetry", error = %err,
                    "telemetry sink failing; retrying with backoff");
            }
            inc(&self.counters.retries);
            let mut delay = backoff(self.backoff_base, self.backoff_max, attempt);
            attempt = attempt.saturating_add(1);
            if let Some(d) = self.deadline {
                delay = delay.min(d.saturating_duration_since(Instant::now()));
            }
            if self.closing {
                tokio::time::sleep(delay).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.shutdown_rx.changed() => self.begin_close(),
                }
            }
        }
    }
}

/// Exponential backoff with "equal jitter": a random delay in `[d/2, d]`,
/// `d = min(max, base * 2^attempt)`.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let d = base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let half = d / 2;
    let jitter_nanos = fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64);
    half + Duration::from_nanos(jitter_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..40 {
            let d = backoff(base, max, attempt);
            let cap = (base * 2u32.saturating_pow(attempt.min(20))).min(max);
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} vs {cap:?}"
            );
        }
    }
}
