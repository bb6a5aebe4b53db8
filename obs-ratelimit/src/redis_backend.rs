//! The Redis backend: one Lua script per decision over a multiplexed, auto-reconnecting connection.
//!
//! - **One round trip**: `EVALSHA` of a script that trims, counts, adds and sets the TTL;
//!   `redis::Script` reloads it automatically on `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).
//! - **Time from Redis only**: the script reads `TIME`, so client clocks cannot skew windows.
//! - **Every key has a TTL** (`PEXPIRE` as long as its newest admission matters).
//! - **One slot per decision**: the key is `{prefix:key}` (a hash tag), and a decision touches
//!   only that key, so Redis Cluster never answers `CROSSSLOT`.
//! - **Pipelining**: single nodes use [`redis::aio::ConnectionManager`] (a multiplexed
//!   connection: concurrent callers' commands share one socket and are pipelined), clusters use
//!   the async cluster client, which does the same per node.
//!
//! ```
//! use obs_ratelimit::{DecisionSource, Limiter};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
//! let prefix = format!("doc-{}", std::process::id());
//! let limiter = Limiter::builder("api")
//!     .prefix(&prefix)
//!     .limit(10)
//!     .window(Duration::from_secs(1))
//!     .build_redis(&url) // `.build_redis_cluster(&urls)` for Redis Cluster
//!     .await
//!     .expect("Redis reachable (start one with `cargo xtask services`)");
//! assert_eq!(limiter.redis_key("198.51.100.7").unwrap(), format!("{{{prefix}:198.51.100.7}}"));
//! let d = limiter.check("198.51.100.7").await;
//! assert!(d.allowed && d.source == DecisionSource::Backend);
//! assert_eq!(d.remaining, 9);
//! # });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::Script;

use crate::algo::Outcome;
use crate::{Error, Mode};

/// A connection the backend can run its scripts on.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// Source of the exact-mode scripts (public so benches and peers can run the very same script).
pub const EXACT_SCRIPT: &str = include_str!("lua/exact.lua");
/// Source of the approximate-mode script.
pub const APPROX_SCRIPT: &str = include_str!("lua/approx.lua");
const REFUND_SCRIPT: &str = include_str!("lua/refund.lua");

#[derive(Debug)]
pub(crate) struct RedisStore {
    conn: Conn,
    script: Script,
    refund: Script,
    mode: Mode,
    prefix: String,
    limit: u32,
    window_us: u64,
    nonce_seed: u64,
    nonce_ctr: AtomicU64,
}

impl RedisStore {
    pub(crate) fn new(conn: Conn, mode: Mode, prefix: String, limit: u32, window_us: u64) -> Self {
        let script = Script::new(match mode {
            Mode::Exact => EXACT_SCRIPT,
            Mode::Approximate => APPROX_SCRIPT,
        });
        Self {
            conn,
            script,
            refund: Script::new(REFUND_SCRIPT),
            mode,
            prefix,
            limit,
            window_us,
            nonce_seed: process_seed(),
            nonce_ctr: AtomicU64::new(0),
        }
    }

    /// The Redis key for a limiter key: `{prefix:key}` (hash-tagged).
    pub(crate) fn redis_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len() + 3);
        k.push('{');
        k.push_str(&self.prefix);
        k.push(':');
        k.push_str(key);
        k.push('}');
        k
    }

    fn next_nonce(&self) -> u64 {
        self.nonce_seed ^ self.nonce_ctr.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) async fn decide(&self, key: &str, cost: u32) -> Result<(Outcome, u64), Error> {
        let rkey = self.redis_key(key);
        let nonce = self.next_nonce();
        let mut inv = self.script.prepare_invoke();
        inv.key(&rkey).arg(self.limit).arg(self.window_us).arg(cost);
        if self.mode == Mode::Exact {
            inv.arg(format!("{nonce:016x}"));
        }
        let r: (u8, u64, u64, u64, u64, u64) = match self.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await?,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await?,
        };
        Ok((
            Outcome {
                allowed: r.0 == 1,
                remaining: r.1,
                retry_us: r.2,
                blocked_us: r.3,
                reset_us: r.4,
                now_us: r.5,
            },
            nonce,
        ))
    }

    pub(crate) async fn refund(
        &self,
        key: &str,
        at_us: u64,
        nonce: u64,
        cost: u32,
    ) -> Result<(), Error> {
        let rkey = self.redis_key(key);
        let mut inv = self.refund.prepare_invoke();
        inv.key(&rkey);
        match self.mode {
            Mode::Exact => inv.arg("exact").arg(cost).arg(format!("{nonce:016x}")),
            Mode::Approximate => inv.arg("approx").arg(cost).arg(at_us / self.window_us),
        };
        let _: i64 = match self.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await?,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await?,
        };
        Ok(())
    }
}

/// A connection manager that fails fast and reconnects quickly (the limiter's circuit breaker
/// decides what to do meanwhile).
pub(crate) async fn connect_single(url: &str, timeout: Duration) -> Result<Conn, Error> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100))
        .set_number_of_retries(2);
    let manager = ConnectionManager::new_with_config(client, config).await?;
    Ok(Conn::Single(manager))
}

pub(crate) async fn connect_cluster(urls: &[String], timeout: Duration) -> Result<Conn, Error> {
    let client = redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
        .response_timeout(timeout)
        .connection_timeout(timeout.max(Duration::from_millis(200)))
        .retries(1)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .build()?;
    Ok(Conn::Cluster(client.get_async_connection().await?))
}

/// 64 random-enough bits per process, so admission members never collide across processes.
fn process_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}
