//! The SQLite sink (the embedded default) and analytics on a temporary database file.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use obs_telemetry::analytics::{self, Aggregation, ExportQuery, MetricsStore, TimeRange};
use obs_telemetry::sink::sqlite::SqliteSink;
use obs_telemetry::sink::{Batch, Sink};
use obs_telemetry::{
    event, CachedConsent, FreeformEvent, MetricName, Recorded, Recorder, RunMetric,
};
use serde_json::{json, Value};
use sqlx::Row;

event! {
    /// A test run finished.
    pub struct TestRunCompleted: "test.run.completed" {
        pub repo_id: String,
        pub test_count: u64,
    }
}

#[derive(serde::Serialize)]
struct Leaky {
    repo_id: &'static str,
    ip: &'static str,
}
impl obs_telemetry::Event for Leaky {
    const NAME: &'static str = "repo.viewed";
    const PROPERTIES: &'static [&'static str] = &["repo_id"];
}

async fn open(dir: &tempfile::TempDir) -> SqliteSink {
    let url = format!("sqlite://{}", dir.path().join("telemetry.db").display());
    let sink = SqliteSink::connect(&url).await.unwrap();
    assert_eq!(sink.migrate().await.unwrap(), 0, "connect already migrated");
    sink
}

#[tokio::test]
async fn events_land_scrubbed_and_refused_ones_do_not_land() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(&dir).await;
    let consent = CachedConsent::new();
    consent.set("in", true);
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .consent(consent)
        .build()
        .unwrap();
    recorder.record_for(
        "in",
        TestRunCompleted {
            repo_id: "see jane@example.com".into(),
            test_count: 3,
        },
    );
    recorder.record_for(
        "in",
        Leaky {
            repo_id: "r1",
            ip: "10.0.0.1",
        },
    );
    recorder.record_freeform_for(
        "in",
        FreeformEvent::new("free").property("secret", "s3cr3t"),
    );
    assert_eq!(
        recorder.record_for(
            "out",
            TestRunCompleted {
                repo_id: "x".into(),
                test_count: 1
            }
        ),
        Recorded::NoConsent
    );
    recorder.shutdown().await;

    let rows = sqlx::query(
        "SELECT event_type, event_data, redactions, occurred_at FROM telemetry_events ORDER BY id",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    let json_of = |i: usize, col: &str| -> Value {
        serde_json::from_str(rows[i].get::<&str, _>(col)).unwrap()
    };
    assert_eq!(
        json_of(0, "event_data"),
        json!({"repo_id": "see [email]", "test_count": 3})
    );
    assert_eq!(json_of(0, "redactions"), json!({"rules": {"email": 1}}));
    assert_eq!(json_of(1, "event_data"), json!({"repo_id": "r1"}));
    assert_eq!(json_of(1, "redactions"), json!({"undeclared_dropped": 1}));
    assert_eq!(json_of(2, "event_data"), json!({"secret": "[secret]"}));
    let at = humantime::parse_rfc3339(rows[0].get::<&str, _>("occurred_at")).unwrap();
    assert!(SystemTime::now().duration_since(at).unwrap() < Duration::from_secs(60));
}

#[tokio::test]
async fn analytics_and_csv_match_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(&dir).await;
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_796_335);
    let values: Vec<f64> = (0..25)
        .map(|i| ((i * 7919) % 1000) as f64 * 1.5 + 1.0)
        .collect();
    let mut batch = Batch::default();
    for (i, v) in values.iter().enumerate() {
        let mut m = RunMetric::new(format!("run-{i}"), MetricName::TOKENS_USED, *v);
        m.recorded_at = t0 + Duration::from_secs(i as u64);
        batch.metrics.push(m);
    }
    let mut other = RunMetric::new("=cmd|' /C calc'!A0", MetricName::EXIT_CODE, 1.0);
    other.recorded_at = t0;
    batch.metrics.push(other);
    sink.write(&batch).await.unwrap();
    let store = MetricsStore::from(sink.pool().clone());

    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let mean = sum / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let agg = analytics::aggregate(&store, &MetricName::TOKENS_USED, TimeRange::default())
        .await
        .unwrap();
    assert_eq!(agg.count, 25);
    assert!((agg.sum.unwrap() - sum).abs() < 1e-9);
    assert!((agg.avg.unwrap() - mean).abs() < 1e-9);
    assert!(
        (agg.stddev.unwrap() - sd).abs() < 1e-9,
        "{:?} vs {sd}",
        agg.stddev
    );
    assert_eq!(
        agg.value(Aggregation::Min),
        values.iter().cloned().reduce(f64::min)
    );
    assert_eq!(
        agg.value(Aggregation::Max),
        values.iter().cloned().reduce(f64::max)
    );

    let range = TimeRange {
        from: Some(t0 + Duration::from_secs(5)),
        to: Some(t0 + Duration::from_secs(10)),
    };
    let agg = analytics::aggregate(&store, &MetricName::TOKENS_USED, range)
        .await
        .unwrap();
    assert_eq!(agg.count, 5);
    assert!((agg.sum.unwrap() - values[5..10].iter().sum::<f64>()).abs() < 1e-9);
    let one = analytics::aggregate(&store, &MetricName::EXIT_CODE, TimeRange::default())
        .await
        .unwrap();
    assert_eq!(
        (one.count, one.stddev),
        (1, None),
        "stddev needs two values"
    );

    let mut bytes = Vec::new();
    let mut stream = analytics::export_csv(&store, ExportQuery::default());
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 26);
    for (i, (rec, m)) in records.iter().zip(&batch.metrics).enumerate() {
        assert_eq!(rec[0].parse::<usize>().unwrap(), i + 1);
        assert_eq!(rec[2].to_owned(), m.metric_name.to_string());
        assert_eq!(rec[3].parse::<f64>().unwrap(), m.metric_value);
        assert_eq!(humantime::parse_rfc3339(&rec[4]).unwrap(), m.recorded_at);
        if i < 25 {
            assert_eq!(&rec[1], m.run_id);
        }
    }
    // A run id that a spreadsheet would execute is defused with a leading quote.
    assert_eq!(&records[25][1], "'=cmd|' /C calc'!A0");

    let mut bytes = Vec::new();
    let mut stream = analytics::export_csv(
        &store,
        ExportQuery {
            run_id: Some("run-3".into()),
            ..Default::default()
        },
    );
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("4,run-3,tokens_used,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_recorded_is_stored_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sink = open(&dir).await;
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .queue_capacity(20_000)
        .max_batch(1_000)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let r = recorder.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2_500u64 {
                r.record(TestRunCompleted {
                    repo_id: format!("t{t}"),
                    test_count: i,
                });
                r.record_metric(format!("run-{t}"), MetricName::FILES_CHANGED, i as f64);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = recorder.shutdown().await;
    assert_eq!(stats.dropped(), 0);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry_events")
        .fetch_one(sink.pool())
        .await
        .unwrap();
    let metrics: i64 = sqlx::query_scalar("SELECT count(*) FROM run_metrics")
        .fetch_one(sink.pool())
        .await
        .unwrap();
    assert_eq!((events, metrics), (10_000, 10_000));
}
