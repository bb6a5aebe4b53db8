//! Analytics over `run_metrics` on the SQL stores: aggregates (count, sum, avg, min, max,
//! sample standard deviation) per metric and time range, and a streamed CSV export with the
//! reference services' columns `id,run_id,metric_name,metric_value,recorded_at`.
//!
//! The export never materialises the result: rows come from a database cursor (sqlx
//! `fetch`) on a background task and are written as CSV chunks of about 8 KiB into a
//! bounded channel, so a slow reader slows the query down instead of growing memory.
//!
//! Time ranges are half-open, `[from, to)`. Timestamps in the CSV are RFC 3339 UTC with
//! milliseconds (`2026-01-07T14:32:15.000Z`).
//!
//! ```
//! # #[cfg(feature = "sqlite")] mod example {
//! use futures_util::StreamExt;
//! use obs_telemetry::analytics::{self, Aggregation, ExportQuery, MetricsStore, TimeRange};
//! use obs_telemetry::{sink::sqlite::SqliteSink, MetricName, Recorder};
//!
//! # #[tokio::main(flavor = "current_thread")] pub async fn main() -> Result<(), obs_telemetry::Error> {
//! let sink = SqliteSink::connect("sqlite::memory:").await?;
//! let recorder = Recorder::builder().sink(sink.clone()).build()?;
//! for (run, ms) in [("run-1", 1200.0), ("run-2", 8950.0)] {
//!     recorder.record_metric(run, MetricName::DURATION_MS, ms);
//! }
//! recorder.shutdown().await;
//!
//! let store = MetricsStore::from(sink.pool().clone());
//! let agg = analytics::aggregate(&store, &MetricName::DURATION_MS, TimeRange::default()).await?;
//! assert_eq!(agg.count, 2);
//! assert_eq!(agg.value(Aggregation::Avg), Some(5075.0));
//!
//! let mut csv = Vec::new();
//! let mut stream = analytics::export_csv(&store, ExportQuery::default());
//! while let Some(chunk) = stream.next().await {
//!     csv.extend_from_slice(&chunk?);
//! }
//! let csv = String::from_utf8(csv).unwrap();
//! assert!(csv.starts_with("id,run_id,metric_name,metric_value,recorded_at\n1,run-1,duration_ms,1200,"));
//! # Ok(()) }
//! # }
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! # #[cfg(feature = "sqlite")] fn main() { example::main().unwrap() }
//! ```
// Without a SQL backend `MetricsStore` has no variants and the query code is compiled out.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(unreachable_code, unused_variables, unused_imports, dead_code)
)]

#[cfg(any(feature = "postgres", feature = "sqlite"))]
use std::fmt::Write as _;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
use sqlx::Row;
use tokio::sync::mpsc;

use crate::metric::MetricName;
#[cfg(feature = "postgres")]
use crate::sink::epoch_micros;
#[cfg(feature = "sqlite")]
use crate::sink::rfc3339_millis;
use crate::Error;

/// The CSV header line (without the newline).
pub const CSV_HEADER: &str = "id,run_id,metric_name,metric_value,recorded_at";
const CHUNK: usize = 8 * 1024;

/// A SQL database holding `run_metrics` (written by the matching sink).
///
/// Without the `postgres` or `sqlite` feature this enum has no variants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MetricsStore {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(sqlx::PgPool),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(sqlx::SqlitePool),
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for MetricsStore {
    fn from(pool: sqlx::PgPool) -> Self {
        MetricsStore::Postgres(pool)
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for MetricsStore {
    fn from(pool: sqlx::SqlitePool) -> Self {
        MetricsStore::Sqlite(pool)
    }
}

/// One aggregation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Sum of values.
    Sum,
    /// Mean.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Number of (non-null) values.
    Count,
    /// Sample standard deviation (n − 1); none for fewer than two values.
    Stddev,
}

impl Aggregation {
    /// Every aggregation.
    pub const ALL: [Aggregation; 6] = [
        Self::Sum,
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Count,
        Self::Stddev,
    ];

    /// Lowercase name (`avg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
            Self::Stddev => "stddev",
        }
    }
}

/// An unknown aggregation name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown aggregation {0:?}: use sum, avg, min, max, count or stddev")]
pub struct UnknownAggregation(pub String);

impl FromStr for Aggregation {
    type Err = UnknownAggregation;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownAggregation(s.to_owned()))
    }
}

/// A half-open time range `[from, to)`; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: Option<SystemTime>,
    /// Exclusive end.
    pub to: Option<SystemTime>,
}

/// Statistics of one metric over a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// The metric.
    pub metric: String,
    /// Number of values.
    pub count: u64,
    /// Sum (none without values).
    pub sum: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Sample standard deviation (none for fewer than two values).
    pub stddev: Option<f64>,
}

impl Aggregate {
    /// The value of one aggregation.
    pub fn value(&self, aggregation: Aggregation) -> Option<f64> {
        match aggregation {
            Aggregation::Sum => self.sum,
            Aggregation::Avg => self.avg,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Count => Some(self.count as f64),
            Aggregation::Stddev => self.stddev,
        }
    }
}

/// Count, sum, avg, min, max and sample standard deviation of `metric` over `range`.
pub async fn aggregate(
    store: &MetricsStore,
    metric: &MetricName,
    range: TimeRange,
) -> Result<Aggregate, Error> {
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    let _ = (metric, range);
    match *store {
        #[cfg(feature = "postgres")]
        MetricsStore::Postgres(ref pool) => {
            let from = range.from.map(epoch_micros);
            let to = range.to.map(epoch_micros);
            let row = sqlx::query(
                "SELECT count(metric_value), sum(metric_value)::float8, avg(metric_value)::float8, \
                 min(metric_value)::float8, max(metric_value)::float8, stddev_samp(metric_value)::float8 \
                 FROM run_metrics WHERE metric_name = $1 \
                 AND ($2::int8 IS NULL OR recorded_at >= TIMESTAMPTZ 'epoch' + $2::int8 * INTERVAL '1 microsecond') \
                 AND ($3::int8 IS NULL OR recorded_at < TIMESTAMPTZ 'epoch' + $3::int8 * INTERVAL '1 microsecond')",
            )
            .bind(metric.as_str())
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?;
            Ok(Aggregate {
                metric: metric.to_string(),
                count: row.try_get::<i64, _>(0)? as u64,
                sum: row.try_get(1)?,
                avg: row.try_get(2)?,
                min: row.try_get(3)?,
                max: row.try_get(4)?,
                stddev: row.try_get(5)?,
            })
        }
        #[cfg(feature = "sqlite")]
        MetricsStore::Sqlite(ref pool) => {
            let from = range.from.map(rfc3339_millis);
            let to = range.to.map(rfc3339_millis);
            // Two passes (mean, then squared deviations) for a numerically sound stddev:
            // SQLite has no stddev aggregate.
            let row = sqlx::query(
                "WITH f AS (SELECT metric_value AS v FROM run_metrics WHERE metric_name = ?1 \
                   AND metric_value IS NOT NULL \
                   AND (?2 IS NULL OR recorded_at >= ?2) AND (?3 IS NULL OR recorded_at < ?3)), \
                 s AS (SELECT count(v) AS n, sum(v) AS total, avg(v) AS mean, min(v) AS lo, max(v) AS hi FROM f) \
                 SELECT s.n, s.total, s.mean, s.lo, s.hi, \
                   (SELECT sum((f.v - s.mean) * (f.v - s.mean)) FROM f) AS ss FROM s",
            )
            .bind(metric.as_str())
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?;
            let count = row.try_get::<i64, _>(0)? as u64;
            let ss: Option<f64> = row.try_get(5)?;
            Ok(Aggregate {
                metric: metric.to_string(),
                count,
                sum: row.try_get(1)?,
                avg: row.try_get(2)?,
                min: row.try_get(3)?,
                max: row.try_get(4)?,
                stddev: ss
                    .filter(|_| count > 1)
                    .map(|ss| (ss / (count - 1) as f64).sqrt()),
            })
        }
    }
}

/// Which rows [`export_csv`] writes: all filters optional, rows in id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportQuery {
    /// Only this metric.
    pub metric: Option<MetricName>,
    /// Only this run.
    pub run_id: Option<String>,
    /// Only this time range.
    pub range: TimeRange,
    /// At most this many rows.
    pub limit: Option<u64>,
}

/// The CSV export as a stream of byte chunks (header first). Dropping it cancels the query.
#[derive(Debug)]
pub struct CsvStream {
    rx: mpsc::Receiver<Result<Bytes, Error>>,
}

impl CsvStream {
    /// The next chunk, or `None` at the end (the same as `StreamExt::next`).
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, Error>> {
        self.rx.recv().await
    }
}

impl Stream for CsvStream {
    type Item = Result<Bytes, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Streams `run_metrics` rows matching `query` as CSV (`id,run_id,metric_name,metric_value,recorded_at`).
///
/// Must be called inside a Tokio runtime (the query runs on a spawned task).
pub fn export_csv(store: &MetricsStore, query: ExportQuery) -> CsvStream {
    let (tx, rx) = mpsc::channel(4);
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = write_csv(&store, &query, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    CsvStream { rx }
}

/// Error type used internally to tell "client went away" from real errors.
enum Stop {
    Gone,
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    Failed(Error),
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

async fn write_csv(
    store: &MetricsStore,
    query: &ExportQuery,
    tx: &mpsc::Sender<Result<Bytes, Error>>,
) -> Result<(), Error> {
    let mut buf = String::with_capacity(CHUNK + 256);
    buf.push_str(CSV_HEADER);
    buf.push('\n');
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    let _ = (query, tx);
    let result: Result<(), Stop> = async {
        match *store {
            #[cfg(feature = "postgres")]
            MetricsStore::Postgres(ref pool) => {
                let mut rows = sqlx::query(
                    "SELECT id, run_id, metric_name, metric_value::text, \
                     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                     FROM run_metrics WHERE ($1::text IS NULL OR metric_name = $1) \
                     AND ($2::text IS NULL OR run_id = $2) \
                     AND ($3::int8 IS NULL OR recorded_at >= TIMESTAMPTZ 'epoch' + $3::int8 * INTERVAL '1 microsecond') \
                     AND ($4::int8 IS NULL OR recorded_at < TIMESTAMPTZ 'epoch' + $4::int8 * INTERVAL '1 microsecond') \
                     ORDER BY id LIMIT $5",
                )
                .bind(query.metric.as_ref().map(MetricName::as_str))
                .bind(query.run_id.as_deref())
                .bind(query.range.from.map(epoch_micros))
                .bind(query.range.to.map(epoch_micros))
                .bind(query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
                .fetch(pool);
                while let Some(row) = rows.next().await {
                    let row = row?;
                    let value: Option<String> = row.try_get(3)?;
                    push_row(
                        &mut buf,
                        row.try_get::<i64, _>(0)?,
                        row.try_get::<&str, _>(1)?,
                        row.try_get::<&str, _>(2)?,
                        value.as_deref().unwrap_or(""),
                        row.try_get::<&str, _>(4)?,
                    );
                    flush_if_full(&mut buf, tx).await?;
                }
            }
            #[cfg(feature = "sqlite")]
            MetricsStore::Sqlite(ref pool) => {
                let mut rows = sqlx::query(
                    "SELECT id, run_id, metric_name, metric_value, recorded_at FROM run_metrics \
                     WHERE (?1 IS NULL OR metric_name = ?1) AND (?2 IS NULL OR run_id = ?2) \
                     AND (?3 IS NULL OR recorded_at >= ?3) AND (?4 IS NULL OR recorded_at < ?4) \
                     ORDER BY id LIMIT ?5",
                )
                .bind(query.metric.as_ref().map(MetricName::as_str))
                .bind(query.run_id.as_deref())
                .bind(query.range.from.map(rfc3339_millis))
                .bind(query.range.to.map(rfc3339_millis))
                .bind(query.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)))
                .fetch(pool);
                let mut value = String::new();
                while let Some(row) = rows.next().await {
                    let row = row?;
                    value.clear();
                    if let Some(v) = row.try_get::<Option<f64>, _>(3)? {
                        let _ = write!(value, "{v}");
                    }
                    push_row(
                        &mut buf,
                        row.try_get::<i64, _>(0)?,
                        row.try_get::<&str, _>(1)?,
                        row.try_get::<&str, _>(2)?,
                        &value,
                        row.try_get::<&str, _>(4)?,
                    );
                    flush_if_full(&mut buf, tx).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            if !buf.is_empty() {
                let _ = tx.send(Ok(Bytes::from(buf))).await;
            }
            Ok(())
        }
        Err(Stop::Gone) => Ok(()),
        Err(Stop::Failed(e)) => Err(e),
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
async fn flush_if_full(
    buf: &mut String,
    tx: &mpsc::Sender<Result<Bytes, Error>>,
) -> Result<(), Stop> {
    if buf.len() >= CHUNK {
        let chunk = std::mem::replace(buf, String::with_capacity(CHUNK + 256));
        tx.send(Ok(Bytes::from(chunk)))
            .await
            .map_err(|_| Stop::Gone)?;
    }
    Ok(())
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn push_row(buf: &mut String, id: i64, run_id: &str, name: &str, value: &str, at: &str) {
    let _ = write!(buf, "{id},");
    push_text(buf, run_id);
    buf.push(',');
    push_text(buf, name);
    let _ = writeln!(buf, ",{value},{at}");
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// RFC 4180 quoting, plus a leading `'` on text that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, tab, carriage return: OWASP CSV injection).
fn push_text(buf: &mut String, s: &str) {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || s.contains([',', '"', '\n', '\r']);
    if quote {
        buf.push('"');
    }
    if formula {
        buf.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            buf.push('"');
        }
        buf.push(c);
    }
    if quote {
        buf.push('"');
    }
}

#[cfg(all(test, any(feature = "postgres", feature = "sqlite")))]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_quoted_and_defused() {
        let mut b = String::new();
        push_row(
            &mut b,
            1,
            "run,\"1\"",
            "duration_ms",
            "5432",
            "2026-01-07T14:32:15.000Z",
        );
        assert_eq!(
            b,
            "1,\"run,\"\"1\"\"\",duration_ms,5432,2026-01-07T14:32:15.000Z\n"
        );
        let mut b = String::new();
        push_text(&mut b, "=HYPERLINK(\"x\")");
        assert_eq!(b, "\"'=HYPERLINK(\"\"x\"\")\"");
    }

    proptest::proptest! {
        /// Any run id and value survive a CSV round trip through a real CSV reader; text a
        /// spreadsheet would execute comes back with one leading `'`.
        #[test]
        fn csv_rows_round_trip(run_id in "\\PC{0,40}", value in proptest::num::f64::NORMAL, id in 0i64..) {
            let mut b = String::from(CSV_HEADER);
            b.push('\n');
            let v = format!("{value}");
            push_row(&mut b, id, &run_id, "duration_ms", &v, "2026-01-07T14:32:15.000Z");
            let mut r = csv::ReaderBuilder::new().from_reader(b.as_bytes());
            let rec = r.records().next().unwrap().unwrap();
            let expected_run = if run_id.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{run_id}")
            } else {
                run_id.clone()
            };
            proptest::prop_assert_eq!(rec.len(), 5);
            proptest::prop_assert_eq!(rec[0].parse::<i64>().unwrap(), id);
            proptest::prop_assert_eq!(&rec[1], expected_run.as_str());
            proptest::prop_assert_eq!(rec[3].parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn aggregations_parse() {
        assert_eq!("AVG".parse::<Aggregation>().unwrap(), Aggregation::Avg);
        assert!("median".parse::<Aggregation>().is_err());
        for a in Aggregation::ALL {
            assert_eq!(a.as_str().parse::<Aggregation>().unwrap(), a);
        }
    }
}
