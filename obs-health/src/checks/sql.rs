//! sqlx pool checks: acquire a connection with a timeout, run `SELECT 1`, report pool size/idle;
//! degraded when acquiring is slow (the pool is saturated), unhealthy when it fails or the pool
//! is closed.

use crate::{CheckFuture, CheckResult, HealthCheck};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

macro_rules! sql_check {
    ($(#[$doc:meta])* $name:ident, $db:ty, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: sqlx::Pool<$db>,
            acquire_timeout: Duration,
            slow_acquire: Duration,
        }

        impl $name {
            /// A check on `pool` with the defaults: acquire timeout 1 s, degraded when acquiring
            /// takes 100 ms or more.
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                $name {
                    pool,
                    acquire_timeout: Duration::from_secs(1),
                    slow_acquire: Duration::from_millis(100),
                }
            }

            /// How long to wait for a pooled connection before reporting unhealthy (keep it
            /// below the registration timeout so the message says what was slow).
            #[must_use]
            pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
                self.acquire_timeout = timeout;
                self
            }

            /// Acquire latency from which the check reports degraded.
            #[must_use]
            pub fn slow_acquire(mut self, threshold: Duration) -> Self {
                self.slow_acquire = threshold;
                self
            }
        }

        impl HealthCheck for $name {
            fn check(&self) -> CheckFuture<'_> {
                Box::pin(async move {
                    let pool = &self.pool;
                    let pool_details = |r: CheckResult| {
                        r.with_detail("database", $label)
                            .with_detail("pool_size", pool.size())
                            .with_detail("pool_idle", pool.num_idle() as u64)
                            .with_detail("pool_max", pool.options().get_max_connections())
                    };
                    if pool.is_closed() {
                        return pool_details(CheckResult::unhealthy("connection pool is closed"));
                    }
                    let started = Instant::now();
                    let mut conn =
                        match tokio::time::timeout(self.acquire_timeout, pool.acquire()).await {
                            Ok(Ok(conn)) => conn,
                            Ok(Err(e)) => {
                                return pool_details(CheckResult::unhealthy(format!(
                                    "acquiring a connection failed: {e}"
                                )))
                            }
                            Err(_) => {
                                return pool_details(CheckResult::unhealthy(format!(
                                    "acquiring a connection timed out after {} ms",
                                    self.acquire_timeout.as_millis()
                                )))
                            }
                        };
                    let acquire = started.elapsed();
                    let query_started = Instant::now();
                    if let Err(e) = sqlx::query("SELECT 1").execute(&mut *conn).await {
                        return pool_details(
                            CheckResult::unhealthy(format!("SELECT 1 failed: {e}"))
                                .with_detail("acquire_ms", ms(acquire)),
                        );
                    }
                    let query = query_started.elapsed();
                    drop(conn);
                    let result = if acquire >= self.slow_acquire {
                        CheckResult::degraded(format!(
                            "acquiring a connection took {:.1} ms (threshold {} ms)",
                            ms(acquire),
                            self.slow_acquire.as_millis()
                        ))
                    } else {
                        CheckResult::healthy()
                    };
                    pool_details(
                        result
                            .with_detail("connected", true)
                            .with_detail("acquire_ms", ms(acquire))
                            .with_detail("query_ms", ms(query)),
                    )
                })
            }
        }
    };
}

#[cfg(feature = "postgres")]
sql_check!(
    /// PostgreSQL pool check (feature `postgres`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// use obs_health::{checks::PostgresCheck, Health};
    /// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
    /// let health = Health::builder().check("database", PostgresCheck::new(pool)).build().unwrap();
    /// # let _ = health; Ok(()) }
    /// ```
    PostgresCheck,
    sqlx::Postgres,
    "postgresql"
);

#[cfg(feature = "sqlite")]
sql_check!(
    /// SQLite pool check (feature `sqlite`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sqlx::Error> {
    /// use obs_health::{checks::SqliteCheck, Health, Probe, Status};
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let health = Health::builder().check("database", SqliteCheck::new(pool)).build().unwrap();
    /// assert_eq!(health.probe(Probe::Ready).await.status, Status::Healthy);
    /// # Ok(()) }
    /// ```
    SqliteCheck,
    sqlx::Sqlite,
    "sqlite"
);
