//! Recorder behaviour without a database: consent, scrubbing, context, hashing, queue bound,
//! batching, retries and shutdown. Time-dependent tests run on Tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use obs_core::{RequestContext, RequestId};
use obs_telemetry::sink::{Batch, MemorySink, Sink, SinkError};
use obs_telemetry::{
    event, CachedConsent, FreeformEvent, MetricName, Recorded, Recorder, SubjectHasher,
};
use serde_json::json;
use tokio::sync::Semaphore;

event! {
    /// A test run finished.
    pub struct TestRunCompleted: "test.run.completed" {
        pub repo_id: String,
        pub run_id: String,
        pub test_count: u64,
    }
}

/// An event whose struct has a field it does not declare (as if added without review).
#[derive(serde::Serialize)]
struct SignupCompleted {
    plan: &'static str,
    email: String,
}
impl obs_telemetry::Event for SignupCompleted {
    const NAME: &'static str = "signup.completed";
    const PROPERTIES: &'static [&'static str] = &["plan"];
    const SCHEMA_VERSION: u32 = 2;
}

fn run_event(n: u64) -> TestRunCompleted {
    TestRunCompleted {
        repo_id: "repo-123".into(),
        run_id: format!("run-{n}"),
        test_count: n,
    }
}

#[tokio::test]
async fn typed_events_keep_only_declared_properties_and_are_scrubbed() {
    let sink = MemorySink::new();
    let recorder = Recorder::builder().sink(sink.clone()).build().unwrap();
    assert_eq!(
        recorder.record(SignupCompleted {
            plan: "pro",
            email: "jane@example.com".into()
        }),
        Recorded::Queued
    );
    recorder.record(TestRunCompleted {
        repo_id: "contact jane.doe@example.com".into(),
        run_id: "run-1".into(),
        test_count: 3,
    });
    recorder.shutdown().await;
    let events = sink.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "signup.completed");
    assert_eq!(events[0].event_data, json!({"plan": "pro"}));
    assert_eq!(events[0].redactions.undeclared_dropped, 1);
    assert_eq!(events[0].schema_version, 2);
    assert_eq!(
        events[1].event_data,
        json!({"repo_id": "contact [email]", "run_id": "run-1", "test_count": 3})
    );
    assert_eq!(events[1].redactions.rules.get("email"), Some(&1));
}

#[tokio::test]
async fn freeform_events_go_through_every_rule_including_the_name() {
    let sink = MemorySink::new();
    let recorder = Recorder::builder().sink(sink.clone()).build().unwrap();
    recorder.record_freeform(
        FreeformEvent::new("login for bob@example.com")
            .property("password", "hunter2")
            .property("note", "card 4111 1111 1111 1111")
            .property("count", 2),
    );
    recorder.shutdown().await;
    let e = &sink.events()[0];
    assert_eq!(e.event_type, "login for [email]");
    assert_eq!(e.event_data["password"], "[password]");
    assert_eq!(e.event_data["note"], "card [card]");
    assert_eq!(e.event_data["count"], 2);
    let r = &e.redactions;
    assert_eq!(
        (r.rules["email"], r.rules["password"], r.rules["card"]),
        (1, 1, 1)
    );
    let stored = serde_json::to_string(e).unwrap();
    assert!(!stored.contains("hunter2") && !stored.contains("bob@") && !stored.contains("4111"));
}

#[tokio::test]
async fn request_context_is_attached_and_subjects_are_only_hashed() {
    let sink = MemorySink::new();
    let hasher = SubjectHasher::new(b"0123456789abcdef-secret", 7).unwrap();
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .subject_hasher(hasher.clone())
        .build()
        .unwrap();
    let ctx = RequestContext::builder(RequestId::parse("req-789").unwrap())
        .route("/api/runs/{id}")
        .build();
    ctx.set_user_id("user-42");
    ctx.scope(async { recorder.record(run_event(1)) }).await;
    recorder.record_for("session-9", run_event(2));
    recorder.record(run_event(3)); // outside any request, no subject
    recorder.shutdown().await;

    let events = sink.events();
    assert_eq!(events[0].request_id.as_deref(), Some("req-789"));
    assert_eq!(events[0].route.as_deref(), Some("/api/runs/{id}"));
    assert_eq!(events[0].subject_hash, Some(hasher.hash("user-42")));
    assert_eq!(events[0].subject_key_version, Some(7));
    assert_eq!(events[1].request_id, None);
    assert_eq!(events[1].subject_hash, Some(hasher.hash("session-9")));
    assert_eq!(events[2].subject_hash, None);
    assert_eq!(events[2].subject_key_version, None);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("user-42") && !all.contains("session-9"));
}

#[tokio::test]
async fn subjects_are_dropped_without_a_hasher() {
    let sink = MemorySink::new();
    let recorder = Recorder::builder().sink(sink.clone()).build().unwrap();
    recorder.record_for("user-1", run_event(1));
    recorder.shutdown().await;
    assert_eq!(sink.events()[0].subject_hash, None);
}

#[tokio::test]
async fn no_consent_and_disabled_store_nothing() {
    let sink = MemorySink::new();
    let consent = Arc::new(CachedConsent::new());
    consent.set("yes", true);
    consent.set("no", false);
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .consent_shared(consent.clone())
        .build()
        .unwrap();
    assert_eq!(recorder.record_for("no", run_event(1)), Recorded::NoConsent);
    assert_eq!(
        recorder.record_for("stranger", run_event(2)),
        Recorded::NoConsent
    );
    assert_eq!(recorder.record(run_event(3)), Recorded::NoConsent); // anonymous
    let ctx = RequestContext::new(RequestId::generate());
    ctx.set_user_id("no");
    assert_eq!(
        ctx.clone()
            .scope(async { recorder.record(run_event(4)) })
            .await,
        Recorded::NoConsent
    );
    consent.set("no", true); // opting in takes effect at once
    assert_eq!(
        ctx.scope(async { recorder.record(run_event(5)) }).await,
        Recorded::Queued
    );
    assert_eq!(recorder.record_for("yes", run_event(6)), Recorded::Queued);
    let stats = recorder.shutdown().await;
    assert_eq!(stats.no_consent, 4);
    let counts: Vec<_> = sink
        .events()
        .iter()
        .map(|e| e.event_data["test_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![5, 6]);

    let sink = MemorySink::new();
    let off = Recorder::builder()
        .sink(sink.clone())
        .enabled(false)
        .build()
        .unwrap();
    assert_eq!(off.record(run_event(1)), Recorded::Disabled);
    // Run metrics are operational data, not subject to the telemetry switch.
    assert_eq!(
        off.record_metric("run-1", MetricName::EXIT_CODE, 0.0),
        Recorded::Queued
    );
    let stats = off.shutdown().await;
    assert_eq!(
        (stats.disabled, stats.written_events, stats.written_metrics),
        (1, 0, 1)
    );
    assert!(sink.events().is_empty());
}

/// A sink that waits for a permit before each write.
#[derive(Clone)]
struct GatedSink {
    gate: Arc<Semaphore>,
    inner: MemorySink,
}
impl Sink for GatedSink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.gate.acquire().await.unwrap().forget();
            self.inner.write(batch).await
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let gate = Arc::new(Semaphore::new(0));
    let memory = MemorySink::new();
    let recorder = Recorder::builder()
        .sink(GatedSink {
            gate: gate.clone(),
            inner: memory.clone(),
        })
        .queue_capacity(10)
        .max_batch(4)
        .build()
        .unwrap();
    // On a current-thread runtime the batcher cannot run until we await: exactly the queue
    // capacity is accepted, the rest is dropped, and `record` returns every time.
    let outcomes: Vec<Recorded> = (0..50).map(|i| recorder.record(run_event(i))).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Recorded::Queued).count(),
        10
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Recorded::QueueFull)
            .count(),
        40
    );
    assert_eq!(recorder.stats().queue_len, 10);
    gate.add_permits(100);
    let stats = recorder.shutdown().await;
    assert_eq!(stats.dropped_queue_full, 40);
    assert_eq!(stats.dropped(), 40);
    assert_eq!(stats.written_events, 10);
    assert_eq!(memory.batches(), 3); // 4 + 4 + 2
    assert_eq!(recorder.record(run_event(99)), Recorded::Closed);
    assert_eq!(recorder.stats().dropped_closed, 1);
}

/// Fails `failures` times with the given error, then succeeds.
struct FlakySink {
    failures: usize,
    retryable: bool,
    calls: AtomicUsize,
    inner: MemorySink,
}
impl Sink for FlakySink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            let e = if self.retryable {
                SinkError::Unavailable("down".into())
            } else {
                SinkError::Rejected("bad".into())
            };
            return Box::pin(async move { Err(e) });
        }
        self.inner.write(batch)
    }
}

fn flaky(failures: usize, retryable: bool) -> (Arc<FlakySink>, MemorySink) {
    let inner = MemorySink::new();
    (
        Arc::new(FlakySink {
            failures,
            retryable,
            calls: AtomicUsize::new(0),
            inner: inner.clone(),
        }),
        inner,
    )
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_with_backoff() {
    let (sink, memory) = flaky(3, true);
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .retry_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    recorder.record(run_event(1));
    let start = tokio::time::Instant::now();
    let stats = recorder.shutdown().await;
    assert_eq!(
        (stats.retries, stats.written_events, stats.failed),
        (3, 1, 0)
    );
    assert_eq!(sink.calls.load(Ordering::SeqCst), 4);
    assert_eq!(memory.events().len(), 1);
    // Backoffs of [50,100] + [100,200] + [200,400] ms on the paused clock.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited <= Duration::from_millis(700),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_batches_are_not_retried() {
    let (sink, memory) = flaky(1, false);
    let recorder = Recorder::builder().sink(sink.clone()).build().unwrap();
    recorder.record(run_event(1));
    recorder.record_metric("run-1", MetricName::DURATION_MS, 5.0);
    let stats = recorder.shutdown().await;
    assert_eq!(
        (stats.retries, stats.failed, stats.written_events),
        (0, 2, 0)
    );
    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    assert!(memory.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_retries_and_shutdown_deadline_bound_the_retrying() {
    let (sink, _) = flaky(usize::MAX, true);
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .max_retries(Some(2))
        .build()
        .unwrap();
    recorder.record(run_event(1));
    let stats = recorder.shutdown().await;
    assert_eq!((stats.retries, stats.failed), (2, 1));

    let (sink, _) = flaky(usize::MAX, true);
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .max_batch(1)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..3 {
        recorder.record(run_event(i));
    }
    let start = tokio::time::Instant::now();
    let stats = recorder.shutdown().await;
    // The first batch is retried until the deadline; the others are given up without
    // waiting on the failing sink again.
    assert_eq!(stats.failed, 3);
    assert!(start.elapsed() >= Duration::from_secs(5) && start.elapsed() < Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn batches_flush_by_interval_and_by_size() {
    let memory = MemorySink::new();
    let recorder = Recorder::builder()
        .sink(memory.clone())
        .max_batch(3)
        .flush_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    recorder.record(run_event(1));
    tokio::time::sleep(Duration::from_millis(999)).await; // paused clock: advances instantly
    assert_eq!(memory.batches(), 0, "flushed before the interval");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(memory.batches(), 1, "not flushed after the interval");

    for i in 0..7 {
        recorder.record(run_event(i));
    }
    tokio::task::yield_now().await;
    let stats = recorder.shutdown().await;
    assert_eq!(stats.written_events, 8);
    assert_eq!(memory.batches(), 4); // 1, then 3 + 3 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_lose_nothing_on_graceful_shutdown() {
    let memory = MemorySink::new();
    let recorder = Recorder::builder()
        .sink(memory.clone())
        .queue_capacity(50_000)
        .max_batch(1000)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let r = recorder.clone();
        tasks.push(tokio::spawn(async move {
            let mut max = Duration::ZERO;
            for i in 0..5_000u64 {
                let start = Instant::now();
                assert_eq!(r.record(run_event(t * 10_000 + i)), Recorded::Queued);
                max = max.max(start.elapsed());
                if i % 256 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            max
        }));
    }
    for t in tasks {
        let max = t.await.unwrap();
        assert!(max < Duration::from_millis(100), "record took {max:?}");
    }
    let stats = recorder.shutdown().await;
    assert_eq!(stats.written_events, 40_000);
    assert_eq!(stats.dropped(), 0);
    assert_eq!(memory.events().len(), 40_000);
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn drops_and_queue_depth_are_exported_as_metrics() {
    use obs_metrics::{Format, Registry, Scope};
    use obs_telemetry::recorder_metrics::TelemetryMetrics;

    let registry = Registry::new();
    // On a current-thread runtime the batcher cannot run before the first await: with a
    // queue of 2, the third and fourth items are dropped.
    let recorder = Recorder::builder()
        .sink(MemorySink::new())
        .queue_capacity(2)
        .max_batch(1000)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    TelemetryMetrics::register(&registry, &recorder).unwrap();
    for i in 0..4 {
        recorder.record_metric(format!("run-{i}"), MetricName::TOKENS_USED, 1.0);
    }
    let text = registry.encode(Format::Prometheus, &[Scope::System]);
    assert!(
        text.contains(r#"telemetry_events_dropped_total{reason="queue_full"} 2"#),
        "{text}"
    );
    assert!(text.contains("telemetry_events_queued_total 2"), "{text}");
    assert!(text.contains("telemetry_queue_capacity 2"), "{text}");
    recorder.shutdown().await;
    let text = registry.encode(Format::Prometheus, &[Scope::System]);
    assert!(
        text.contains(r#"telemetry_events_written_total{kind="metric"} 2"#),
        "{text}"
    );
    assert!(text.contains("telemetry_queue_depth 0"), "{text}");
}
