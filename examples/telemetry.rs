//! Telemetry: typed events with consent and scrubbing, run metrics, an aggregate and a CSV
//! export.
//!
//! ```text
//! cargo run --example telemetry --features telemetry                  # SQLite in memory
//! DATABASE_URL=postgres://postgres@127.0.0.1/test \
//!     cargo run --example telemetry --features telemetry              # PostgreSQL
//! ```
//!
//! With PostgreSQL the example creates `telemetry_events` and `run_metrics` (if missing) in
//! the database's default schema and adds rows to them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use obs_core::{RequestContext, RequestId};
use obs_telemetry::analytics::{self, Aggregation, ExportQuery, MetricsStore, TimeRange};
use obs_telemetry::sink::postgres::PostgresSink;
use obs_telemetry::sink::sqlite::SqliteSink;
use obs_telemetry::{event, CachedConsent, FreeformEvent, MetricName, Recorder, SubjectHasher};

event! {
    /// A test run finished (the reference services' `test.run.completed`).
    pub struct TestRunCompleted: "test.run.completed" {
        pub repo_id: String,
        pub run_id: String,
        pub test_count: u64,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = SystemTime::now();
    // The store: PostgreSQL with DATABASE_URL, SQLite in memory otherwise.
    let (recorder_builder, store) = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let sink = PostgresSink::connect(&url).await?;
            println!("sink: PostgreSQL ({})", redact_url(&url));
            let store = MetricsStore::from(sink.pool().clone());
            (Recorder::builder().sink(sink), store)
        }
        Err(_) => {
            let sink = SqliteSink::connect("sqlite::memory:").await?;
            println!("sink: SQLite (in memory)");
            let store = MetricsStore::from(sink.pool().clone());
            (Recorder::builder().sink(sink), store)
        }
    };

    // Consent comes from the app's users table (`telemetryOptIn`); here, by hand.
    let consent = Arc::new(CachedConsent::new());
    consent.set("user-1", true);
    consent.set("user-2", false);
    let secret = std::env::var("TELEMETRY_SUBJECT_SECRET")
        .unwrap_or_else(|_| "example-secret-change-me-0123456789".into());
    let recorder = recorder_builder
        .enabled(std::env::var("TELEMETRY_ENABLED").map_or(true, |v| v != "false"))
        .consent_shared(consent)
        .subject_hasher(SubjectHasher::new(secret, 1)?)
        .flush_interval(Duration::from_millis(200))
        .build()?;

    // Inside a request (normally done by obs-tower's RequestIdLayer).
    for (user, run) in [("user-1", "run-456"), ("user-2", "run-457")] {
        let ctx = RequestContext::builder(RequestId::generate())
            .route("/api/runs/{id}/complete")
            .build();
        ctx.set_user_id(user);
        let outcome = ctx
            .scope(async {
                recorder.record(TestRunCompleted {
                    repo_id: "repo-123".into(),
                    run_id: run.into(),
                    test_count: 100,
                })
            })
            .await;
        println!("record for {user}: {outcome:?}");
    }
    // Free-form properties go through every scrubber rule.
    recorder.record_freeform_for(
        "user-1",
        FreeformEvent::new("support.ticket.opened").property("note", "call me at jane@example.com"),
    );

    // Run metrics, as `record_metric "tokens_used" 1250` in the reference scripts.
    for (run, duration, tokens) in [
        ("run-456", 5432.0, 1250.0),
        ("run-457", 4120.0, 900.0),
        ("run-458", 8950.0, 2400.0),
    ] {
        recorder.record_metric(run, MetricName::DURATION_MS, duration);
        recorder.record_metric(run, MetricName::TOKENS_USED, tokens);
        recorder.record_metric(run, MetricName::COST_USD, tokens * 0.002 / 1000.0);
        recorder.record_metric(run, MetricName::EXIT_CODE, 0.0);
    }

    let stats = recorder.shutdown().await;
    println!(
        "written: {} events, {} metrics; refused without consent: {}; dropped: {}",
        stats.written_events,
        stats.written_metrics,
        stats.no_consent,
        stats.dropped()
    );

    let range = TimeRange {
        from: Some(started - Duration::from_secs(1)),
        to: None,
    };
    let agg = analytics::aggregate(&store, &MetricName::DURATION_MS, range).await?;
    println!("\nduration_ms since start:");
    for a in Aggregation::ALL {
        println!("  {:<6} {:?}", a.as_str(), agg.value(a));
    }

    println!("\nCSV export (tokens_used):");
    let mut csv = analytics::export_csv(
        &store,
        ExportQuery {
            metric: Some(MetricName::TOKENS_USED),
            range,
            limit: Some(100),
            ..Default::default()
        },
    );
    while let Some(chunk) = csv.next_chunk().await {
        print!("{}", String::from_utf8_lossy(&chunk?));
    }
    Ok(())
}

/// The URL without its password, for printing.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
