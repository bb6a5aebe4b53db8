//! Redis check: `PING`, degraded above a latency threshold, unhealthy on error.

use crate::{CheckFuture, CheckResult, HealthCheck};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use std::fmt;
use std::time::{Duration, Instant};

/// Redis `PING` check (feature `redis`).
///
/// Either reuse the application's connection (`MultiplexedConnection`, `ConnectionManager`, any
/// cloneable async `ConnectionLike`) with [`RedisCheck::new`], or let the check open a fresh
/// connection per run from a [`redis::Client`] with [`RedisCheck::from_client`] (also verifies
/// that new connections can be made, at the cost of a connect per run — give it a cache TTL).
///
/// ```no_run
/// # async fn demo() -> redis::RedisResult<()> {
/// use std::time::Duration;
/// use obs_health::{checks::RedisCheck, Health};
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// let conn = client.get_multiplexed_async_connection().await?;
/// let check = RedisCheck::new(conn).slow_threshold(Duration::from_millis(50));
/// let health = Health::builder().check("redis", check).build().unwrap();
/// # let _ = health; Ok(()) }
/// ```
pub struct RedisCheck<C = MultiplexedConnection> {
    source: Source<C>,
    slow: Duration,
}

enum Source<C> {
    Conn(C),
    Client(redis::Client),
}

impl<C> fmt::Debug for RedisCheck<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Conn(_) => "connection",
            Source::Client(_) => "client",
        };
        f.debug_struct("RedisCheck")
            .field("source", &source)
            .field("slow", &self.slow)
            .finish()
    }
}

impl<C> RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A check that PINGs over (a clone of) `conn`. Degraded from 100 ms by default.
    pub fn new(conn: C) -> Self {
        RedisCheck {
            source: Source::Conn(conn),
            slow: Duration::from_millis(100),
        }
    }
}

impl RedisCheck<MultiplexedConnection> {
    /// A check that opens a new connection from `client` on every run, then PINGs.
    pub fn from_client(client: redis::Client) -> Self {
        RedisCheck {
            source: Source::Client(client),
            slow: Duration::from_millis(100),
        }
    }
}

impl<C> RedisCheck<C> {
    /// PING round-trip latency from which the check reports degraded (default 100 ms).
    #[must_use]
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }
}

impl<C> HealthCheck for RedisCheck<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let started = Instant::now();
            let reply = match &self.source {
                Source::Conn(conn) => {
                    let mut conn = conn.clone();
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                }
                Source::Client(client) => match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await,
                    Err(e) => {
                        return CheckResult::unhealthy(format!("connecting to Redis failed: {e}"))
                    }
                },
            };
            let latency = started.elapsed();
            let latency_ms = latency.as_micros() as f64 / 1000.0;
            match reply {
                Err(e) => CheckResult::unhealthy(format!("PING failed: {e}")),
                Ok(reply) if reply != "PONG" => {
                    CheckResult::unhealthy(format!("PING answered {reply:?}"))
                }
                Ok(_) if latency >= self.slow => CheckResult::degraded(format!(
                    "PING took {latency_ms:.1} ms (threshold {} ms)",
                    self.slow.as_millis()
                )),
                Ok(_) => CheckResult::healthy(),
            }
            .with_detail("latency_ms", latency_ms)
        })
    }
}
