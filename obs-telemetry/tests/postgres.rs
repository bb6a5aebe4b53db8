//! The PostgreSQL sink and analytics against a real server (DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), each test in a schema of its own.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use obs_core::{RequestContext, RequestId};
use obs_telemetry::analytics::{self, Aggregation, ExportQuery, MetricsStore, TimeRange};
use obs_telemetry::sink::postgres::PostgresSink;
use obs_telemetry::sink::{Batch, Sink};
use obs_telemetry::{
    event, CachedConsent, FreeformEvent, MetricName, Recorded, Recorder, RunMetric, SubjectHasher,
};
use obs_test_support::PgSchema;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Row;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

event! {
    /// A test run finished.
    pub struct TestRunCompleted: "test.run.completed" {
        pub repo_id: String,
        pub run_id: String,
        pub test_count: u64,
    }
}

#[derive(serde::Serialize)]
struct Leaky {
    repo_id: &'static str,
    user_email: &'static str,
}
impl obs_telemetry::Event for Leaky {
    const NAME: &'static str = "repo.viewed";
    const PROPERTIES: &'static [&'static str] = &["repo_id"];
}

async fn migrated(label: &str, conns: u32) -> PgSchema {
    let schema = PgSchema::create(label, conns).await;
    let sink = PostgresSink::new(schema.pool.clone());
    assert_eq!(sink.migrate().await.unwrap(), 1);
    assert_eq!(
        sink.migrate().await.unwrap(),
        0,
        "migrations are applied once"
    );
    schema
}

async fn count(schema: &PgSchema, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&schema.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_create_the_reference_tables_and_indexes() {
    let schema = migrated("tel_migr", 2).await;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'run_metrics' ORDER BY ordinal_position",
    )
    .bind(&schema.name)
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    assert_eq!(
        columns,
        ["id", "run_id", "metric_name", "metric_value", "recorded_at"]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
    )
    .bind(&schema.name)
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    for idx in [
        "run_metrics_run_idx",
        "run_metrics_name_idx",
        "run_metrics_recorded_at_idx",
        "telemetry_events_type_idx",
        "telemetry_events_occurred_at_idx",
    ] {
        assert!(
            indexes.iter().any(|i| i == idx),
            "{idx} missing: {indexes:?}"
        );
    }
    schema.drop_schema().await;
}

#[tokio::test]
async fn events_land_scrubbed_with_redaction_reports() {
    let schema = migrated("tel_scrub", 2).await;
    let consent = Arc::new(CachedConsent::new().allow_anonymous(true));
    consent.set("user-1", true);
    consent.set("user-2", false);
    let hasher = SubjectHasher::new("a-test-secret-of-some-length", 3).unwrap();
    let recorder = Recorder::builder()
        .sink(PostgresSink::new(schema.pool.clone()))
        .consent_shared(consent)
        .subject_hasher(hasher.clone())
        .build()
        .unwrap();
    let ctx = RequestContext::builder(RequestId::parse("req-789").unwrap())
        .route("/api/repos/{id}")
        .build();
    ctx.set_user_id("user-1");
    ctx.scope(async {
        recorder.record(TestRunCompleted {
            repo_id: "repo-123".into(),
            run_id: "run-456".into(),
            test_count: 100,
        });
        recorder.record(Leaky {
            repo_id: "repo-1",
            user_email: "jane@example.com",
        });
        recorder.record_freeform(
            FreeformEvent::new("debug.note")
                .property("api_key", "sk_live_abcdefghijklmnop")
                .property("msg", "from 203.0.113.9 token=abc123"),
        );
    })
    .await;
    assert_eq!(
        recorder.record_freeform_for("user-2", FreeformEvent::new("x")),
        Recorded::NoConsent
    );
    let stats = recorder.shutdown().await;
    assert_eq!((stats.written_events, stats.no_consent), (3, 1));

    let rows = sqlx::query(
        "SELECT event_type, event_data, request_id, route, subject_hash, subject_key_version, \
         redactions, schema_version, occurred_at > now() - interval '1 minute' AS recent \
         FROM telemetry_events ORDER BY id",
    )
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "the refused event was not stored");
    let texts =
        sqlx::query("SELECT event_data::text, redactions::text FROM telemetry_events ORDER BY id")
            .fetch_all(&schema.pool)
            .await
            .unwrap();
    let data: Vec<Value> = texts
        .iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
        .collect();
    let redactions: Vec<Value> = texts
        .iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(1)).unwrap())
        .collect();

    assert_eq!(rows[0].get::<String, _>("event_type"), "test.run.completed");
    assert_eq!(
        data[0],
        json!({"repo_id": "repo-123", "run_id": "run-456", "test_count": 100})
    );
    assert_eq!(
        rows[0].get::<Option<String>, _>("request_id").as_deref(),
        Some("req-789")
    );
    assert_eq!(
        rows[0].get::<Option<String>, _>("route").as_deref(),
        Some("/api/repos/{id}")
    );
    assert_eq!(
        rows[0].get::<Option<String>, _>("subject_hash"),
        Some(hasher.hash("user-1"))
    );
    assert_eq!(
        rows[0].get::<Option<i16>, _>("subject_key_version"),
        Some(3)
    );
    assert_eq!(rows[0].get::<i32, _>("schema_version"), 1);
    assert!(rows[0].get::<bool, _>("recent"));
    assert_eq!(redactions[0], json!({}));

    assert_eq!(
        data[1],
        json!({"repo_id": "repo-1"}),
        "undeclared property dropped"
    );
    assert_eq!(redactions[1], json!({"undeclared_dropped": 1}));

    assert_eq!(data[2]["api_key"], "[api_key]");
    assert_eq!(data[2]["msg"], "from [ip] token=[token]");
    assert_eq!(
        redactions[2],
        json!({"rules": {"api_key": 1, "ip": 1, "token": 1}})
    );

    let everything: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM telemetry_events t")
            .fetch_one(&schema.pool)
            .await
            .unwrap();
    for secret in [
        "jane@example.com",
        "sk_live_",
        "203.0.113.9",
        "abc123",
        "user-1",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_events_from_16_tasks_are_all_stored() {
    let schema = migrated("tel_100k", 4).await;
    let recorder = Recorder::builder()
        .sink(PostgresSink::new(schema.pool.clone()))
        .queue_capacity(100_000)
        .max_batch(2_000)
        .flush_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let r = recorder.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..6_250u64 {
                let ev = TestRunCompleted {
                    repo_id: format!("repo-{t}"),
                    run_id: format!("run-{i}"),
                    test_count: i,
                };
                assert_eq!(r.record(ev), Recorded::Queued);
                if i % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = recorder.shutdown().await;
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.written_events, 100_000);
    assert_eq!(count(&schema, "telemetry_events").await, 100_000);
    let per_task: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM telemetry_events GROUP BY event_data->>'repo_id' ORDER BY 1",
    )
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    assert_eq!(per_task, vec![6_250; 16]);
    schema.drop_schema().await;
}

/// A TCP proxy in front of PostgreSQL that can be taken down (connections reset, new ones
/// refused by immediate close) and brought back on the same port.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    refused: Arc<Notify>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let refused = Arc::new(Notify::new());
        let (up2, gen2, refused2) = (up.clone(), generation.clone(), refused.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    refused2.notify_one();
                    continue;
                }
                let mut gen_rx = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = gen_rx.changed() => {} // taken down: drop both sockets
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            generation,
            refused,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_survived_up_to_the_queue_bound_without_blocking_record() {
    let schema = migrated("tel_outage", 2).await;
    let url = obs_test_support::require_postgres();
    let target = {
        let o = PgConnectOptions::from_str(&url).unwrap();
        let host = o.get_host().to_owned();
        let addr = tokio::net::lookup_host((host.as_str(), o.get_port()))
            .await
            .unwrap()
            .next()
            .unwrap();
        addr
    };
    let proxy = Proxy::start(target).await;
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .host("127.0.0.1")
        .port(proxy.addr.port())
        .options([("search_path", format!("\"{}\"", schema.name))]);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with(options);
    // The proxy works: a connection goes through it.
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();

    const CAPACITY: usize = 1_000;
    const BATCH: usize = 100;
    const OFFERED: u64 = 5_000;
    let recorder = Recorder::builder()
        .sink(PostgresSink::new(pool))
        .queue_capacity(CAPACITY)
        .max_batch(BATCH)
        .flush_interval(Duration::from_millis(20))
        .write_timeout(Duration::from_secs(2))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .build()
        .unwrap();

    // Healthy first: one batch goes through the proxy.
    recorder.record_metric("run-before", MetricName::DURATION_MS, 1.0);
    recorder.record(TestRunCompleted {
        repo_id: "before".into(),
        run_id: "r".into(),
        test_count: 0,
    });
    proxy.down();
    let mut max_latency = Duration::ZERO;
    for i in 0..OFFERED {
        let start = Instant::now();
        recorder.record(TestRunCompleted {
            repo_id: "during".into(),
            run_id: format!("run-{i}"),
            test_count: i,
        });
        max_latency = max_latency.max(start.elapsed());
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The batcher is failing against the dead proxy (it saw at least one refused connection).
    proxy.refused.notified().await;
    let during = recorder.stats();
    assert!(
        during.dropped_queue_full > 0,
        "overflow not counted: {during:?}"
    );

    proxy.up();
    let stats = recorder.shutdown().await;
    let stored_during: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM telemetry_events WHERE event_data->>'repo_id' = 'during'",
    )
    .fetch_one(&schema.pool)
    .await
    .unwrap();
    let queued_during = stats.queued - 2;
    assert_eq!(stored_during as u64, queued_during, "{stats:?}");
    assert_eq!(
        queued_during + stats.dropped_queue_full,
        OFFERED,
        "{stats:?}"
    );
    // Overflow happened, so the queue was full once: at least CAPACITY items were accepted
    // (the 2 healthy-phase items may have still been in it). At most one batch in flight plus
    // a full queue (plus the 2 healthy-phase items) can be accepted while the sink is down.
    let queued = stats.queued as usize;
    assert!(
        (CAPACITY..=CAPACITY + BATCH + 2).contains(&queued),
        "{stats:?}"
    );
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(count(&schema, "run_metrics").await, 1);
    // Generous bound for a shared machine; a blocked `record` would take seconds.
    assert!(
        max_latency < Duration::from_millis(250),
        "record blocked for {max_latency:?}"
    );
    schema.drop_schema().await;
}

fn metric(run: &str, name: MetricName, value: f64, at: SystemTime) -> RunMetric {
    let mut m = RunMetric::new(run, name, value);
    m.recorded_at = at;
    m
}

fn stats_of(values: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let mean = sum / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (sum, mean, min, max, var.sqrt())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn analytics_match_values_computed_here_and_csv_round_trips() {
    let schema = migrated("tel_analytics", 2).await;
    let sink = PostgresSink::new(schema.pool.clone());
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_796_335); // 2026-01-07T14:32:15Z
    let mut batch = Batch::default();
    let mut durations = Vec::new();
    for i in 0..40u64 {
        let v = 1000.0 + (i * i * 37 % 9000) as f64 + 0.25;
        durations.push(v);
        batch.metrics.push(metric(
            &format!("550e8400-e29b-41d4-a716-{i:012}"),
            MetricName::DURATION_MS,
            v,
            t0 + Duration::from_secs(60 * i),
        ));
        batch.metrics.push(metric(
            &format!("run,\"{i}\""),
            MetricName::COST_USD,
            i as f64 * 0.002,
            t0 + Duration::from_secs(60 * i),
        ));
    }
    sink.write(&batch).await.unwrap();
    let store = MetricsStore::from(schema.pool.clone());

    let agg = analytics::aggregate(&store, &MetricName::DURATION_MS, TimeRange::default())
        .await
        .unwrap();
    let (sum, mean, min, max, sd) = stats_of(&durations);
    assert_eq!(agg.count, 40);
    assert!(close(agg.sum.unwrap(), sum) && close(agg.avg.unwrap(), mean));
    assert_eq!((agg.min, agg.max), (Some(min), Some(max)));
    assert!(
        close(agg.stddev.unwrap(), sd),
        "{} vs {sd}",
        agg.stddev.unwrap()
    );
    assert_eq!(agg.value(Aggregation::Count), Some(40.0));

    // [t0 + 10 min, t0 + 20 min): rows 10..20.
    let range = TimeRange {
        from: Some(t0 + Duration::from_secs(600)),
        to: Some(t0 + Duration::from_secs(1200)),
    };
    let agg = analytics::aggregate(&store, &MetricName::DURATION_MS, range)
        .await
        .unwrap();
    let (sum, mean, min, max, sd) = stats_of(&durations[10..20]);
    assert_eq!(agg.count, 10);
    assert!(close(agg.sum.unwrap(), sum) && close(agg.avg.unwrap(), mean));
    assert_eq!((agg.min, agg.max), (Some(min), Some(max)));
    assert!(close(agg.stddev.unwrap(), sd));

    let none = analytics::aggregate(&store, &MetricName::TOKENS_USED, TimeRange::default())
        .await
        .unwrap();
    assert_eq!((none.count, none.sum, none.stddev), (0, None, None));

    // CSV: parses back to exactly the rows in the table.
    let mut bytes = Vec::new();
    let mut stream = analytics::export_csv(&store, ExportQuery::default());
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "run_id", "metric_name", "metric_value", "recorded_at"]
    );
    let parsed: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let rows = sqlx::query(
        "SELECT id, run_id, metric_name, metric_value::float8, \
         (extract(epoch from recorded_at) * 1000)::int8 FROM run_metrics ORDER BY id",
    )
    .fetch_all(&schema.pool)
    .await
    .unwrap();
    assert_eq!(parsed.len(), rows.len());
    assert_eq!(parsed.len(), 80);
    for (rec, row) in parsed.iter().zip(&rows) {
        assert_eq!(rec[0].parse::<i64>().unwrap(), row.get::<i64, _>(0));
        assert_eq!(&rec[1], row.get::<&str, _>(1));
        assert_eq!(&rec[2], row.get::<&str, _>(2));
        assert_eq!(rec[3].parse::<f64>().unwrap(), row.get::<f64, _>(3));
        let at = humantime::parse_rfc3339(&rec[4]).unwrap();
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(ms, row.get::<i64, _>(4));
    }
    assert_eq!(&parsed[0][4], "2026-01-07T14:32:15.000Z");
    assert_eq!(&parsed[1][1], "run,\"0\"");

    // Filters and limit.
    let mut bytes = Vec::new();
    let mut stream = analytics::export_csv(
        &store,
        ExportQuery {
            metric: Some(MetricName::DURATION_MS),
            limit: Some(5),
            ..Default::default()
        },
    );
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.lines().skip(1).all(|l| l.contains(",duration_ms,")));
    schema.drop_schema().await;
}
