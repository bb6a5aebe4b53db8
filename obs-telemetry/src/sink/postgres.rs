//! PostgreSQL sink: each batch is one transaction with one `INSERT ... SELECT FROM UNNEST(...)`
//! per table — a handful of round trips per batch instead of one per row.
//!
//! ```no_run
//! use obs_telemetry::{sink::postgres::PostgresSink, Recorder};
//!
//! # async fn f() -> Result<(), obs_telemetry::Error> {
//! let sink = PostgresSink::connect("postgres://postgres@127.0.0.1/test").await?; // runs migrations
//! let recorder = Recorder::builder().sink(sink).build()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{epoch_micros, Batch, Sink, SinkError};

const INSERT_EVENTS: &str = "INSERT INTO telemetry_events \
    (event_type, event_data, request_id, route, subject_hash, subject_key_version, occurred_at, redactions, schema_version) \
    SELECT t, d::jsonb, r, rt, s, k, TIMESTAMPTZ 'epoch' + o * INTERVAL '1 microsecond', x::jsonb, v \
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::int8[], $8::text[], $9::int4[]) \
    AS u(t, d, r, rt, s, k, o, x, v)";

const INSERT_METRICS: &str =
    "INSERT INTO run_metrics (run_id, metric_name, metric_value, recorded_at) \
    SELECT r, n, v, TIMESTAMPTZ 'epoch' + t * INTERVAL '1 microsecond' \
    FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::int8[]) AS u(r, n, v, t)";

/// Writes batches to `telemetry_events` and `run_metrics` in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresSink {
    pool: PgPool,
}

impl PostgresSink {
    /// A sink on an existing pool (whose schema already has the tables: see
    /// [`migrate`](Self::migrate)).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects to `url` (pool of at most 4 connections, 5 s acquire timeout) and runs the
    /// shipped migrations.
    pub async fn connect(url: &str) -> Result<Self, crate::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
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
        crate::migrate::run_postgres(&self.pool).await
    }

    /// The pool (e.g. for [`analytics`](crate::analytics)).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !batch.events.is_empty() {
            let n = batch.events.len();
            let mut types = Vec::with_capacity(n);
            let mut data = Vec::with_capacity(n);
            let mut request_ids = Vec::with_capacity(n);
            let mut routes = Vec::with_capacity(n);
            let mut subjects = Vec::with_capacity(n);
            let mut key_versions = Vec::with_capacity(n);
            let mut times = Vec::with_capacity(n);
            let mut redactions = Vec::with_capacity(n);
            let mut versions = Vec::with_capacity(n);
            for e in &batch.events {
                types.push(no_nul(&e.event_type));
                data.push(json_for_pg(&e.event_data));
                request_ids.push(e.request_id.as_deref().map(no_nul));
                routes.push(e.route.as_deref().map(no_nul));
                subjects.push(e.subject_hash.clone());
                key_versions.push(e.subject_key_version.map(|v| v as i16));
                times.push(epoch_micros(e.occurred_at));
                redactions.push(json_for_pg(&e.redactions));
                versions.push(i32::try_from(e.schema_version).unwrap_or(i32::MAX));
            }
            sqlx::query(INSERT_EVENTS)
                .bind(types)
                .bind(data)
                .bind(request_ids)
                .bind(routes)
                .bind(subjects)
                .bind(key_versions)
                .bind(times)
                .bind(redactions)
                .bind(versions)
                .execute(&mut *tx)
                .await?;
        }
        if !batch.metrics.is_empty() {
            let n = batch.metrics.len();
            let mut runs = Vec::with_capacity(n);
            let mut names = Vec::with_capacity(n);
            let mut values = Vec::with_capacity(n);
            let mut times = Vec::with_capacity(n);
            for m in &batch.metrics {
                runs.push(no_nul(&m.run_id));
                names.push(m.metric_name.as_str().to_owned());
                values.push(m.metric_value);
                times.push(epoch_micros(m.recorded_at));
            }
            sqlx::query(INSERT_METRICS)
                .bind(runs)
                .bind(names)
                .bind(values)
                .bind(times)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

impl Sink for PostgresSink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.write_batch(batch).await.map_err(classify) })
    }
}

/// PostgreSQL text cannot hold NUL; replace it.
fn no_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_owned()
    }
}

/// JSON text for a `jsonb` cast: jsonb rejects `\u0000`, so it becomes U+FFFD.
fn json_for_pg<T: serde::Serialize>(value: &T) -> String {
    let s = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    if s.contains("\\u0000") {
        s.replace("\\u0000", "\\ufffd")
    } else {
        s
    }
}

/// Connection-level failures and transient server states are retryable; anything the server
/// rejects on its merits (syntax, constraint, type) is not.
fn classify(e: sqlx::Error) -> SinkError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // 08: connection exception; 53: insufficient resources; 57P0x: shutdown/crash;
            // 40001/40P01: serialization failure/deadlock.
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
            {
                SinkError::Unavailable(e.to_string())
            } else {
                SinkError::Rejected(e.to_string())
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => SinkError::Unavailable(e.to_string()),
        _ => SinkError::Rejected(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_for_postgres() {
        assert_eq!(no_nul("a\0b"), "a\u{fffd}b");
        assert_eq!(
            json_for_pg(&serde_json::json!({"k": "a\u{0}b"})),
            r#"{"k":"a\ufffdb"}"#
        );
    }

    #[test]
    fn io_errors_are_retryable() {
        let e = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(classify(e).is_retryable());
        assert!(!classify(sqlx::Error::RowNotFound).is_retryable());
    }
}
