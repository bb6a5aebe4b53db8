//! Built-in checks against real services: PostgreSQL and Redis (via obs-test-support, failing
//! loudly when absent), SQLite in memory, a local HTTP server, this machine's disk and memory.

use obs_health::checks::{
    DiskCheck, HttpCheck, MemoryCheck, PostgresCheck, RedisCheck, SqliteCheck,
};
use obs_health::{Health, HealthCheck, Probe, Status};
use obs_test_support::{require_redis, PgSchema};
use std::time::Duration;

#[tokio::test]
async fn postgres_healthy_reports_pool_details() {
    let schema = PgSchema::create("health_pg_ok", 3).await;
    let r = PostgresCheck::new(schema.pool.clone()).check().await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
    assert_eq!(r.details["connected"], true);
    assert_eq!(r.details["pool_max"], 3);
    assert!(r.details["pool_size"].as_u64().unwrap() >= 1);
    assert!(r.details.contains_key("pool_idle"));
    assert!(r.details["acquire_ms"].is_number());
    schema.drop_schema().await;
}

#[tokio::test]
async fn postgres_slow_acquire_is_degraded_and_exhausted_pool_unhealthy() {
    let schema = PgSchema::create("health_pg_slow", 1).await;
    // every acquire counts as slow
    let r = PostgresCheck::new(schema.pool.clone())
        .slow_acquire(Duration::ZERO)
        .check()
        .await;
    assert_eq!(r.status, Status::Degraded, "{r:?}");
    assert!(r.message.unwrap().contains("acquiring a connection took"));

    // the only connection is held elsewhere: acquire times out
    let held = schema.pool.acquire().await.unwrap();
    let r = PostgresCheck::new(schema.pool.clone())
        .acquire_timeout(Duration::from_millis(100))
        .check()
        .await;
    assert_eq!(r.status, Status::Unhealthy, "{r:?}");
    assert!(r.message.unwrap().contains("timed out"));
    assert_eq!(r.details["pool_idle"], 0);
    drop(held);
    schema.drop_schema().await;
}

#[tokio::test]
async fn postgres_wrong_port_and_closed_pool_are_unhealthy() {
    obs_test_support::require_postgres();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/test")
        .unwrap();
    let health = Health::builder()
        .check("database", PostgresCheck::new(pool))
        .build()
        .unwrap();
    let report = health.probe(Probe::Ready).await;
    assert_eq!(report.status, Status::Unhealthy);
    assert!(report.checks["database"]
        .message
        .as_deref()
        .unwrap()
        .contains("acquiring a connection"));

    let schema = PgSchema::create("health_pg_closed", 2).await;
    let pool = schema.pool.clone();
    let name = schema.name.clone();
    schema.drop_schema().await; // closes the pool
    let r = PostgresCheck::new(pool).check().await;
    assert_eq!(r.status, Status::Unhealthy, "{name}: {r:?}");
    assert_eq!(r.message.as_deref(), Some("connection pool is closed"));
}

#[tokio::test]
async fn redis_healthy_via_connection_and_client() {
    let url = require_redis();
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let r = RedisCheck::new(conn).check().await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
    assert!(r.details["latency_ms"].is_number());

    let manager = client.get_connection_manager().await.unwrap();
    assert_eq!(
        RedisCheck::new(manager).check().await.status,
        Status::Healthy
    );
    assert_eq!(
        RedisCheck::from_client(client.clone()).check().await.status,
        Status::Healthy
    );
    // any PING slower than zero is "slow"
    let r = RedisCheck::from_client(client)
        .slow_threshold(Duration::ZERO)
        .check()
        .await;
    assert_eq!(r.status, Status::Degraded, "{r:?}");
}

#[tokio::test]
async fn redis_wrong_port_is_unhealthy() {
    require_redis();
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
    let r = RedisCheck::from_client(client).check().await;
    assert_eq!(r.status, Status::Unhealthy);
    assert!(r.message.unwrap().contains("connecting to Redis failed"));
}

#[tokio::test]
async fn redis_killed_connection_is_unhealthy() {
    let url = require_redis();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let r = RedisCheck::new(conn).check().await;
    assert_eq!(r.status, Status::Unhealthy, "{r:?}");
    assert!(r.message.unwrap().contains("PING failed"));
}

#[tokio::test]
async fn sqlite_healthy_and_closed() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let r = SqliteCheck::new(pool.clone()).check().await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
    assert_eq!(r.details["database"], "sqlite");
    pool.close().await;
    assert_eq!(
        SqliteCheck::new(pool).check().await.status,
        Status::Unhealthy
    );
}

#[tokio::test]
async fn http_dependency_status_ranges() {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/moved", get(|| async { StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");

    let r = HttpCheck::new(client.clone(), format!("{base}/ok"))
        .check()
        .await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
    assert_eq!(r.details["status_code"], 200);

    let r = HttpCheck::new(client.clone(), format!("{base}/broken"))
        .check()
        .await;
    assert_eq!(r.status, Status::Unhealthy);
    assert!(r.message.unwrap().contains("unexpected status 500"));

    let r = HttpCheck::new(client.clone(), format!("{base}/moved"))
        .expect_status(200..=200)
        .check()
        .await;
    assert_eq!(r.status, Status::Unhealthy);

    let r = HttpCheck::new(client.clone(), format!("{base}/ok"))
        .slow_threshold(Duration::ZERO)
        .check()
        .await;
    assert_eq!(r.status, Status::Degraded);

    let r = HttpCheck::new(client, "http://127.0.0.1:1/")
        .request_timeout(Duration::from_secs(1))
        .check()
        .await;
    assert_eq!(r.status, Status::Unhealthy);
    assert!(r.message.unwrap().contains("request failed"));
    server.abort();
}

#[tokio::test]
async fn disk_on_this_machine() {
    let r = DiskCheck::new("/")
        .degraded_below_percent(0.0)
        .unhealthy_below_percent(0.0)
        .check()
        .await;
    assert_eq!(r.status, Status::Healthy, "{r:?}");
    assert!(r.details["total_bytes"].as_u64().unwrap() > 0);
    // nobody has a disk that is 100 % free
    let r = DiskCheck::new("/")
        .degraded_below_percent(100.0)
        .unhealthy_below_percent(0.0)
        .check()
        .await;
    assert_eq!(r.status, Status::Degraded);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn memory_on_this_machine() {
    let r = MemoryCheck::new().check().await;
    assert!(
        r.details["process"]["rss_mb"].as_f64().unwrap() > 0.0,
        "{r:?}"
    );
    assert!(r.details["system"]["total_mb"].as_f64().unwrap() > 0.0);
    // a threshold of 0 % makes any RSS unhealthy
    let r = MemoryCheck::new()
        .degraded_above_percent(0.0)
        .unhealthy_above_percent(0.0)
        .check()
        .await;
    assert_eq!(r.status, Status::Unhealthy);
}
