//! SQLite sink (the embedded default): each batch is one transaction of prepared inserts.
//!
//! ```
//! use obs_telemetry::{sink::sqlite::SqliteSink, Recorder, MetricName};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), obs_telemetry::Error> {
//! let sink = SqliteSink::connect("sqlite::memory:").await?; // runs migrations
//! let recorder = Recorder::builder().sink(sink.clone()).build()?;
//! recorder.record_metric("run-1", MetricName::TOKENS_USED, 1250.0);
//! recorder.shutdown().await;
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM run_metrics").fetch_one(sink.pool()).await?;
//! assert_eq!(n, 1);
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{rfc3339_millis, Batch, Sink, SinkError};

const INSERT_EVENT: &str = "INSERT INTO telemetry_events \
    (event_type, event_data, request_id, route, subject_hash, subject_key_version, occurred_at, redactions, schema_version) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_METRIC: &str =
    "INSERT INTO run_metrics (run_id, metric_name, metric_value, recorded_at) VALUES (?, ?, ?, ?)";

/// Writes batches to `telemetry_events` and `run_metrics` in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteSink {
    pool: SqlitePool,
}

impl SqliteSink {
    /// A sink on an existing pool (see [`migrate`](Self::migrate)).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Opens (creating if missing) the database at `url` (`sqlite://path.db`,
    /// `sqlite::memory:`), in WAL mode with a 5 s busy timeout, and runs the migrations.
    ///
    /// An in-memory database uses a single connection so every query sees the same data.
    pub async fn connect(url: &str) -> Result<Self, crate::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let sink = Self::new(pool);
        sink.migrate().await?;
        Ok(sink)
    }

    /// [`connect`](Self::connect) to `DATABASE_URL` as read by `obs_core::config`.
    pub async fn from_config(
        config: &obs_core::config::DatabaseConfig,
    ) -> Result<Self, crate::Error> {
        Self::connect(config.url()).await
    }

    /// Applies the shipped migrations (idempotent).
    pub async fn migrate(&self) -> Result<usize, crate::Error> {
        crate::migrate::run_sqlite(&self.pool).await
    }

    /// The pool (e.g. for [`analytics`](crate::analytics)).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for e in &batch.events {
            sqlx::query(INSERT_EVENT)
                .bind(&e.event_type)
                .bind(serde_json::to_string(&e.event_data).unwrap_or_else(|_| "{}".into()))
                .bind(e.request_id.as_deref())
                .bind(e.route.as_deref())
                .bind(e.subject_hash.as_deref())
                .bind(e.subject_key_version.map(i64::from))
                .bind(rfc3339_millis(e.occurred_at))
                .bind(serde_json::to_string(&e.redactions).unwrap_or_else(|_| "{}".into()))
                .bind(i64::from(e.schema_version))
                .execute(&mut *tx)
                .await?;
        }
        for m in &batch.metrics {
            sqlx::query(INSERT_METRIC)
                .bind(&m.run_id)
                .bind(m.metric_name.as_str())
                .bind(m.metric_value)
                .bind(rfc3339_millis(m.recorded_at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

impl Sink for SqliteSink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.write_batch(batch).await.map_err(classify) })
    }
}

/// Busy/locked databases and I/O trouble are retryable; everything else is not.
fn classify(e: sqlx::Error) -> SinkError {
    match &e {
        sqlx::Error::Database(db) => {
            // SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10), SQLITE_FULL (13) and
            // their extended codes (low byte).
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(5 | 6 | 10 | 13) => SinkError::Unavailable(e.to_string()),
                _ => SinkError::Rejected(e.to_string()),
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => {
            SinkError::Unavailable(e.to_string())
        }
        _ => SinkError::Rejected(e.to_string()),
    }
}
