//! obs-telemetry benches.
//!
//! - `telemetry/record`: the caller-side cost of `Recorder::record` (consent check, context
//!   capture, queue push) for a typical typed event with the default scrubber configured,
//!   next to a refused event (no consent), `record_metric`, and the batcher-side cost of
//!   scrubbing the same event (paid off the caller's task).
//! - `telemetry/postgres`: sustained events/s into PostgreSQL through the recorder (batched
//!   `UNNEST` inserts) vs one `INSERT` per event (awaited, as the reference services do) vs a
//!   raw `COPY ... FROM STDIN` of the same rows as the limit. All three on the same server and
//!   table, in one group, so the ratios come from one run.
//!
//! ```text
//! cargo bench -p obs --features telemetry --bench telemetry
//! ```
//! Needs PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::future::BoxFuture;
use obs_core::redact::Scrubber;
use obs_core::{RequestContext, RequestId};
use obs_telemetry::sink::postgres::PostgresSink;
use obs_telemetry::sink::{Batch, Sink, SinkError};
use obs_telemetry::{event, CachedConsent, MetricName, Recorder};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

event! {
    /// A typical product event: a few structural properties, one free-text field.
    pub struct TestRunCompleted: "test.run.completed" {
        pub repo_id: &'static str,
        pub run_id: &'static str,
        pub test_count: u64,
        pub summary: &'static str,
    }
}

fn typical() -> TestRunCompleted {
    TestRunCompleted {
        repo_id: "repo-123",
        run_id: "run-456",
        test_count: 100,
        summary: "100 passed, 0 failed in 12.3s on runner ci-7",
    }
}

/// Accepts every batch and throws it away.
struct NullSink;
impl Sink for NullSink {
    fn write<'a>(&'a self, _batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

fn record(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let consent = Arc::new(CachedConsent::new());
    consent.set("user-1", true);
    const CAPACITY: usize = 100_000;
    let recorder = {
        let _guard = rt.enter();
        Recorder::builder()
            .sink(NullSink)
            .consent_shared(consent.clone())
            .scrubber(Scrubber::default())
            .queue_capacity(CAPACITY)
            .max_batch(1000)
            .build()
            .unwrap()
    };
    let ctx = RequestContext::builder(RequestId::generate())
        .route("/api/runs/{id}")
        .build();
    ctx.set_user_id("user-1");

    // Time only the `record` calls; let the batcher drain the queue between chunks, outside
    // the measurement, so every measured call takes the accepting path.
    let drain = |r: &Recorder| {
        while r.stats().queue_len > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let mut g = c.benchmark_group("telemetry/record");
    g.measurement_time(Duration::from_secs(4)).sample_size(30);
    g.throughput(Throughput::Elements(1));
    g.bench_function("typed_event_in_request_accepted", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CAPACITY as u64 / 2);
                drain(&recorder);
                ctx.clone().sync_scope(|| {
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(recorder.record(black_box(typical())));
                    }
                    total += start.elapsed();
                });
                left -= n;
            }
            total
        })
    });
    g.bench_function("record_metric_accepted", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CAPACITY as u64 / 2);
                drain(&recorder);
                let start = Instant::now();
                for _ in 0..n {
                    black_box(recorder.record_metric("run-456", MetricName::TOKENS_USED, 1250.0));
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    g.bench_function("typed_event_refused_no_consent", |b| {
        b.iter(|| black_box(recorder.record_for("user-2", black_box(typical()))))
    });
    // What the batcher pays per event, off the caller's task.
    let scrubber = Scrubber::default();
    g.bench_function("batcher_side_serialize_and_scrub", |b| {
        b.iter(|| {
            let mut v = serde_json::to_value(black_box(typical())).unwrap();
            if let serde_json::Value::Object(m) = &mut v {
                for value in m.values_mut() {
                    black_box(scrubber.scrub_json(value));
                }
            }
            v
        })
    });
    g.finish();
    drain(&recorder);
    rt.block_on(recorder.shutdown());
}

const N_EVENTS: u64 = 5_000;
const N_PER_ROW: u64 = 1_000;

async fn bench_schema() -> (PgPool, String) {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("obs_bench_telemetry_{}", std::process::id());
    let admin = PgPool::connect(&url).await.unwrap_or_else(|e| {
        panic!("this bench needs PostgreSQL at {url} (DATABASE_URL): {e}; start it with `cargo xtask services`")
    });
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", format!("\"{schema}\""))]);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    PostgresSink::new(pool.clone()).migrate().await.unwrap();
    (pool, schema)
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (pool, schema) = rt.block_on(bench_schema());
    let truncate = |pool: &PgPool| {
        rt.block_on(async {
            sqlx::query("TRUNCATE telemetry_events")
                .execute(pool)
                .await
                .unwrap();
        })
    };
    let event_json = serde_json::to_string(&typical()).unwrap();

    let mut g = c.benchmark_group("telemetry/postgres");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(N_EVENTS));

    g.bench_function("recorder_batched_unnest", |b| {
        b.iter_batched(
            || truncate(&pool),
            |()| {
                rt.block_on(async {
                    let recorder = Recorder::builder()
                        .sink(PostgresSink::new(pool.clone()))
                        .queue_capacity(N_EVENTS as usize)
                        .max_batch(1000)
                        .build()
                        .unwrap();
                    for _ in 0..N_EVENTS {
                        recorder.record(typical());
                    }
                    let stats = recorder.shutdown().await;
                    assert_eq!(stats.written_events, N_EVENTS);
                })
            },
            BatchSize::PerIteration,
        )
    });

    // Fewer rows per iteration (each INSERT is a commit, ~1 ms): events/s stays comparable.
    g.throughput(Throughput::Elements(N_PER_ROW));
    g.bench_function("insert_per_event", |b| {
        b.iter_batched(
            || truncate(&pool),
            |()| {
                rt.block_on(async {
                    for _ in 0..N_PER_ROW {
                        sqlx::query(
                            "INSERT INTO telemetry_events (event_type, event_data, request_id, occurred_at, redactions, schema_version) \
                             VALUES ($1, $2::jsonb, $3, now(), '{}'::jsonb, 1)",
                        )
                        .bind("test.run.completed")
                        .bind(&event_json)
                        .bind("req-789")
                        .execute(&pool)
                        .await
                        .unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });

    // Raw COPY of the same rows: the ceiling for getting rows into this table.
    let copy_rows: Vec<u8> = {
        let line = format!(
            "test.run.completed\t{}\treq-789\t2026-01-07 14:32:15+00\t{{}}\t1\n",
            event_json.replace('\\', "\\\\")
        );
        line.repeat(N_EVENTS as usize).into_bytes()
    };
    g.throughput(Throughput::Elements(N_EVENTS));
    g.bench_function("raw_copy_limit", |b| {
        b.iter_batched(
            || truncate(&pool),
            |()| {
                rt.block_on(async {
                    let mut conn = pool.acquire().await.unwrap();
                    let mut copy = conn
                        .copy_in_raw(
                            "COPY telemetry_events (event_type, event_data, request_id, occurred_at, redactions, schema_version) FROM STDIN",
                        )
                        .await
                        .unwrap();
                    copy.send(copy_rows.as_slice()).await.unwrap();
                    let n = copy.finish().await.unwrap();
                    assert_eq!(n, N_EVENTS);
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    rt.block_on(async {
        let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&pool)
            .await;
    });
}

criterion_group!(benches, record, postgres);
criterion_main!(benches);
