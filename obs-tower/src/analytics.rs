//! `/api/analytics/metrics` and `/api/analytics/export`: the run-metric analytics of
//! [`obs_telemetry::analytics`] as axum handlers (feature `telemetry`).
//!
//! - `GET /api/analytics/metrics?metric=duration_ms&aggregation=avg[&from=..][&to=..]` answers
//!   `{"metric","aggregation","value","count","min","max","sum","avg","stddev"}`
//!   (`metricName` is accepted for `metric`; `aggregation` is one of
//!   `sum|avg|min|max|count|stddev`, default `avg`; `from`/`to` are RFC 3339, `[from, to)`).
//! - `GET /api/analytics/export?metricName=duration_ms&format=csv&limit=100[&runId=..][&from=..][&to=..]`
//!   streams `text/csv` with the columns `id,run_id,metric_name,metric_value,recorded_at`,
//!   straight from a database cursor (nothing is materialised).
//!
//! Bad parameters get `400` with `{"error": "..."}`; a failing query gets `500` (details are
//! logged, not returned). The export contains run ids: mount the router behind your
//! authentication.
//!
//! ```
//! use axum::{body::Body, Router};
//! use obs_telemetry::{analytics::MetricsStore, sink::sqlite::SqliteSink, MetricName, Recorder};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sink = SqliteSink::connect("sqlite::memory:").await?;
//! let recorder = Recorder::builder().sink(sink.clone()).build()?;
//! recorder.record_metric("run-1", MetricName::DURATION_MS, 5432.0);
//! recorder.shutdown().await;
//!
//! let app: Router = Router::new().merge(obs_tower::analytics::router(MetricsStore::from(sink.pool().clone())));
//! let res = app
//!     .oneshot(http::Request::get("/api/analytics/metrics?metric=duration_ms&aggregation=max").body(Body::empty())?)
//!     .await?;
//! assert_eq!(res.status(), 200);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use http::{header, StatusCode};
use obs_telemetry::analytics::{self, Aggregation, ExportQuery, MetricsStore, TimeRange};
use obs_telemetry::MetricName;

/// Path of the aggregate endpoint.
pub const METRICS_PATH: &str = "/api/analytics/metrics";
/// Path of the CSV export endpoint.
pub const EXPORT_PATH: &str = "/api/analytics/export";

/// A router with both endpoints, on `store`.
pub fn router<S>(store: MetricsStore) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .route(EXPORT_PATH, get(export))
        .with_state(store)
}

/// `GET /api/analytics/metrics`: one aggregate of one metric over a time range.
pub async fn metrics(
    State(store): State<MetricsStore>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let metric = match metric_param(&params) {
        Ok(Some(m)) => m,
        Ok(None) => return bad_request("the metric parameter is required"),
        Err(r) => return *r,
    };
    let aggregation = match params.get("aggregation").map(|a| a.parse::<Aggregation>()) {
        None => Aggregation::Avg,
        Some(Ok(a)) => a,
        Some(Err(e)) => return bad_request(&e.to_string()),
    };
    let range = match range_params(&params) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match analytics::aggregate(&store, &metric, range).await {
        Ok(agg) => {
            let body = serde_json::json!({
                "metric": agg.metric,
                "aggregation": aggregation.as_str(),
                "value": agg.value(aggregation),
                "count": agg.count,
                "min": agg.min,
                "max": agg.max,
                "sum": agg.sum,
                "avg": agg.avg,
                "stddev": agg.stddev,
            });
            json(StatusCode::OK, &body)
        }
        Err(e) => {
            tracing::error!(error = %e, "analytics aggregate query failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "analytics query failed"}),
            )
        }
    }
}

/// `GET /api/analytics/export`: the matching `run_metrics` rows as streamed CSV.
pub async fn export(
    State(store): State<MetricsStore>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(format) = params.get("format") {
        if !format.eq_ignore_ascii_case("csv") {
            return bad_request("format must be csv");
        }
    }
    let metric = match metric_param(&params) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => return bad_request("limit must be a non-negative integer"),
    };
    let range = match range_params(&params) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let run_id = params
        .get("runId")
        .or_else(|| params.get("run_id"))
        .cloned();
    let mut stream = analytics::export_csv(
        &store,
        ExportQuery {
            metric,
            run_id,
            range,
            limit,
        },
    );
    // The first chunk tells whether the query started: fail with a status, not a cut body.
    let first = match stream.next().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => {
            tracing::error!(error = %e, "analytics export query failed");
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "analytics query failed"}),
            );
        }
        None => bytes::Bytes::from_static(b""),
    };
    let body = futures_util::stream::once(async move { Ok(first) }).chain(stream);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"run_metrics.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

type Rejection = Box<Response>;

fn metric_param(params: &HashMap<String, String>) -> Result<Option<MetricName>, Rejection> {
    params
        .get("metric")
        .or_else(|| params.get("metricName"))
        .map(|name| {
            name.parse::<MetricName>()
                .map_err(|e| Box::new(bad_request(&e.to_string())))
        })
        .transpose()
}

fn range_params(params: &HashMap<String, String>) -> Result<TimeRange, Rejection> {
    let time = |key: &str| -> Result<Option<SystemTime>, Rejection> {
        params
            .get(key)
            .map(|v| {
                humantime::parse_rfc3339_weak(v).map_err(|_| {
                    Box::new(bad_request(&format!(
                        "{key} must be an RFC 3339 timestamp, e.g. 2026-01-07T14:32:15Z"
                    )))
                })
            })
            .transpose()
    };
    Ok(TimeRange {
        from: time("from")?,
        to: time("to")?,
    })
}

fn bad_request(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": message }),
    )
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use obs_telemetry::sink::sqlite::SqliteSink;
    use obs_telemetry::sink::{Batch, Sink};
    use obs_telemetry::RunMetric;
    use std::time::Duration;
    use tower::ServiceExt;

    async fn store() -> MetricsStore {
        let sink = SqliteSink::connect("sqlite::memory:").await.unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_796_335);
        let mut batch = Batch::default();
        for (i, v) in [1200.0, 4852.5, 8950.0, 4408.0].into_iter().enumerate() {
            let mut m = RunMetric::new(format!("run-{i}"), MetricName::DURATION_MS, v);
            m.recorded_at = t0 + Duration::from_secs(i as u64 * 60);
            batch.metrics.push(m);
        }
        batch
            .metrics
            .push(RunMetric::new("run-0", MetricName::TOKENS_USED, 1250.0));
        sink.write(&batch).await.unwrap();
        MetricsStore::from(sink.pool().clone())
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, Option<String>, String) {
        let res = app
            .oneshot(http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn aggregates_as_json() {
        let app = router(store().await);
        let (status, ct, body) = get(
            app.clone(),
            "/api/analytics/metrics?metric=duration_ms&aggregation=avg",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["metric"], "duration_ms");
        assert_eq!(v["aggregation"], "avg");
        assert_eq!(v["value"], 4852.625);
        assert_eq!(v["count"], 4);
        assert_eq!(
            (v["min"].as_f64(), v["max"].as_f64()),
            (Some(1200.0), Some(8950.0))
        );

        let (_, _, body) = get(
            app.clone(),
            "/api/analytics/metrics?metricName=duration_ms&aggregation=sum\
             &from=2026-01-07T14:33:15Z&to=2026-01-07T14:35:15Z",
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["value"].as_f64(), v["count"].as_u64()),
            (Some(4852.5 + 8950.0), Some(2))
        );

        for bad in [
            "/api/analytics/metrics",
            "/api/analytics/metrics?metric=duration_ms&aggregation=median",
            "/api/analytics/metrics?metric=DROP%20TABLE",
            "/api/analytics/metrics?metric=duration_ms&from=yesterday",
        ] {
            let (status, _, body) = get(app.clone(), bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(body.contains("\"error\""), "{bad}: {body}");
        }
    }

    #[tokio::test]
    async fn exports_csv() {
        let app = router(store().await);
        let (status, ct, body) = get(
            app.clone(),
            "/api/analytics/export?metricName=duration_ms&format=csv&limit=3",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("text/csv; charset=utf-8"));
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "id,run_id,metric_name,metric_value,recorded_at");
        assert_eq!(
            lines[1],
            "1,run-0,duration_ms,1200,2026-01-07T14:32:15.000Z"
        );
        assert_eq!(lines.len(), 4);

        let (_, _, body) = get(app.clone(), "/api/analytics/export?runId=run-0").await;
        assert_eq!(body.lines().count(), 3);
        let (status, _, _) = get(app.clone(), "/api/analytics/export?format=xlsx").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = get(app, "/api/analytics/export?limit=-1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_failing_query_is_a_500_without_details() {
        let sink = SqliteSink::connect("sqlite::memory:").await.unwrap();
        sqlx_drop(&sink).await;
        let app = router(MetricsStore::from(sink.pool().clone()));
        let (status, _, body) = get(app.clone(), "/api/analytics/export").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("run_metrics"), "{body}");
        let (status, _, _) = get(app, "/api/analytics/metrics?metric=cost_usd").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    async fn sqlx_drop(sink: &SqliteSink) {
        use sqlx::Executor;
        sink.pool().execute("DROP TABLE run_metrics").await.unwrap();
    }
}
