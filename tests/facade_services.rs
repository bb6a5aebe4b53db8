//! `obs::Obs` with the real services configured (Redis 127.0.0.1:6379, PostgreSQL
//! 127.0.0.1:5432): Redis limiter, PostgreSQL telemetry, `postgres` and `redis` health checks.
#![cfg(all(
    feature = "tower",
    feature = "health",
    feature = "ratelimit",
    feature = "telemetry",
    feature = "redis",
    feature = "postgres"
))]

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use obs::Obs;
use tower::ServiceExt;

#[tokio::test]
async fn configured_services_are_used() {
    let redis_url = obs_test_support::require_redis();
    let pg_url = obs_test_support::require_postgres();
    // Telemetry tables go to a schema of this test's own.
    let schema = obs_test_support::unique_name("facade")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>();
    let admin = sqlx::PgPool::connect(&pg_url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if pg_url.contains('?') { '&' } else { '?' };
    let db_url = format!("{pg_url}{sep}options=-c%20search_path%3D{schema}");

    let vars = [
        ("REDIS_URL".to_owned(), redis_url),
        ("DATABASE_URL".to_owned(), db_url),
    ];
    let obs = Obs::builder()
        .env_lookup(move |var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
        .logging(false)
        .build()
        .await
        .unwrap();
    let summary = obs.summary().to_owned();
    assert!(summary.contains("ratelimit=redis(5/60s)"), "{summary}");
    assert!(summary.contains("telemetry=postgres"), "{summary}");
    assert!(
        summary.contains("health=[process,disk,memory,postgres,redis]"),
        "{summary}"
    );
    assert!(obs.limiter().redis_key("x").is_some());

    let app: axum::Router = obs.router();
    let res = app
        .clone()
        .oneshot(Request::get("/health/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // The disk check can be unhealthy on a full build machine; the code follows the status.
    let expected = if json["status"] == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    assert_eq!(status, expected, "{json}");
    assert_eq!(json["checks"]["postgres"]["status"], "healthy", "{json}");
    assert_eq!(json["checks"]["redis"]["status"], "healthy", "{json}");

    obs.recorder()
        .record_metric("facade-run", obs_telemetry::MetricName::DURATION_MS, 12.5);
    obs.shutdown().await;
    let (count,): (i64,) = sqlx::query_as(&format!(
        "SELECT count(*) FROM \"{schema}\".run_metrics WHERE run_id = 'facade-run'"
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(count, 1, "shutdown flushed the metric to PostgreSQL");
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
