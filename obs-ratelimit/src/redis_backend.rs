//! The Redis backend: Lua scripts over a multiplexed, auto-reconnecting connection, with
//! concurrent decisions coalesced into one script call.
//!
//! - **One round trip per batch of concurrent decisions**: a decision that finds the
//!   connection idle goes out at once as one `EVALSHA` of a script that trims, counts, adds and
//!   sets the TTL (no added latency at concurrency 1). Decisions that arrive while
//!   [`MAX_IN_FLIGHT`] calls are already in flight queue, and the next free slot sends the
//!   queue (up to [`MAX_BATCH`] decisions) as **one** `EVALSHA` of the same script with
//!   `KEYS` = the batch's keys (one script per mode: a lone decision is a batch of one). The
//!   script runs the per-key arithmetic in order inside one atomic call, so exactness holds (a key that appears twice in a batch
//!   sees its first decision's admission) and each caller gets its own result. Redis-side
//!   cost per decision drops (one command dispatch, one script call and one `TIME` per batch),
//!   which is what bounds throughput when Redis is the bottleneck.
//! - `redis::Script` reloads a script automatically on `NOSCRIPT` (after a restart or
//!   `SCRIPT FLUSH`).
//! - **Time from Redis only**: the scripts read `TIME`, so client clocks cannot skew windows.
//! - **Every key has a TTL** (`PEXPIRE` as long as its newest admission matters).
//! - **One slot per decision**: the key is `{prefix:key}` (a hash tag), and a decision touches
//!   only that key, so Redis Cluster never answers `CROSSSLOT`. Batching is single-node only:
//!   a batch's keys would have to share a slot, and random keys over 16 384 slots almost never
//!   do, so on a cluster every decision stays its own call (the cluster client pipelines them
//!   per node).
//! - **Timeouts stay per decision**: the limiter bounds each caller's wait (queueing included)
//!   by its timeout; a queued decision whose caller gave up is dropped before it is sent, so it
//!   consumes nothing.
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
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, Script};
use tokio::sync::oneshot;

use crate::algo::Outcome;
use crate::{Error, Mode};

/// Script calls one limiter keeps in flight on a single node before decisions queue (and then
/// leave as batches). Small: enough to keep Redis busy while the client handles the previous
/// reply, few enough that batches grow under load.
pub const MAX_IN_FLIGHT: usize = 2;
/// The most decisions sent in one batched call (bounds one script run's time on Redis).
pub const MAX_BATCH: usize = 64;

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

/// Source of the exact-mode script (public so benches and peers can run the very same
/// script). One call decides one key or a batch of keys; a single decision is a batch of one.
pub const EXACT_SCRIPT: &str = include_str!("lua/exact.lua");
/// Source of the approximate-mode script (one key or a batch of keys per call).
pub const APPROX_SCRIPT: &str = include_str!("lua/approx.lua");
const REFUND_SCRIPT: &str = include_str!("lua/refund.lua");

#[derive(Debug)]
pub(crate) struct RedisStore {
    shared: Arc<Shared>,
    refund: Script,
    prefix: String,
    nonce_seed: u64,
    nonce_ctr: AtomicU64,
}

/// What the spawned batch senders need: the connection, the scripts and the queue.
#[derive(Debug)]
struct Shared {
    conn: Conn,
    script: Script,
    mode: Mode,
    limit: u32,
    window_us: u64,
    timeout: Duration,
    /// Present on a single node: batching is on.
    batcher: Option<Batcher>,
}

#[derive(Debug)]
struct Batcher {
    queue: Mutex<Queue>,
    /// Where batch senders run (the runtime the connection was built on) when the slot is
    /// handed on outside a runtime context (e.g. a check future dropped elsewhere).
    runtime: tokio::runtime::Handle,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: Vec<Job>,
    in_flight: usize,
}

#[derive(Debug)]
struct Job {
    key: String,
    cost: u32,
    nonce: u64,
    tx: oneshot::Sender<Result<Outcome, Error>>,
}

impl RedisStore {
    pub(crate) fn new(
        conn: Conn,
        mode: Mode,
        prefix: String,
        limit: u32,
        window_us: u64,
        timeout: Duration,
    ) -> Self {
        let source = match mode {
            Mode::Exact => EXACT_SCRIPT,
            Mode::Approximate => APPROX_SCRIPT,
        };
        let batcher = match (&conn, tokio::runtime::Handle::try_current()) {
            (Conn::Single(_), Ok(runtime)) => Some(Batcher {
                queue: Mutex::new(Queue::default()),
                runtime,
            }),
            _ => None,
        };
        Self {
            shared: Arc::new(Shared {
                conn,
                script: Script::new(source),
                mode,
                limit,
                window_us,
                timeout,
                batcher,
            }),
            refund: Script::new(REFUND_SCRIPT),
            prefix,
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
        let shared = &self.shared;
        let Some(batcher) = &shared.batcher else {
            return Ok((shared.single(&rkey, cost, nonce).await?, nonce));
        };
        let route = {
            let mut q = batcher.queue.lock();
            if q.in_flight < MAX_IN_FLIGHT {
                q.in_flight += 1;
                Route::Now(rkey)
            } else {
                let (tx, rx) = oneshot::channel();
                q.jobs.push(Job {
                    key: rkey,
                    cost,
                    nonce,
                    tx,
                });
                Route::Queued(rx)
            }
        };
        let outcome = match route {
            // A free slot: go out now, alone (latency as without batching).
            Route::Now(rkey) => {
                let _slot = Slot(shared);
                shared.single(&rkey, cost, nonce).await?
            }
            // Queued: the next free slot sends it with the others.
            Route::Queued(rx) => rx.await.map_err(|_| {
                Error::Redis(RedisError::from((
                    ErrorKind::Client,
                    "rate limiter batch abandoned (runtime shutting down)",
                )))
            })??,
        };
        Ok((outcome, nonce))
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
        match self.shared.mode {
            Mode::Exact => inv.arg("exact").arg(cost).arg(format!("{nonce:016x}")),
            Mode::Approximate => inv
                .arg("approx")
                .arg(cost)
                .arg(at_us / self.shared.window_us),
        };
        let _: i64 = match self.shared.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await?,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await?,
        };
        Ok(())
    }
}

/// Where a decision goes: out now on a free slot, or into the queue for the next batch.
enum Route {
    Now(String),
    Queued(oneshot::Receiver<Result<Outcome, Error>>),
}

/// An occupied in-flight slot; dropping it (call done, or the caller gave up) hands it on.
struct Slot<'a>(&'a Arc<Shared>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        Shared::release(self.0, Vec::new());
    }
}

impl Shared {
    /// One decision: the script with one key.
    async fn single(&self, rkey: &str, cost: u32, nonce: u64) -> Result<Outcome, Error> {
        let mut outcomes = self.run_script([(rkey, cost, nonce)]).await?;
        Ok(outcomes
            .pop()
            .expect("run_script checked the reply's length"))
    }
    /// A slot is free again: keep it and send what queued meanwhile, or give it back.
    /// `spare` is an empty vector to reuse for the next batch.
    fn release(this: &Arc<Self>, mut spare: Vec<Job>) {
        let Some(batcher) = &this.batcher else { return };
        let mut q = batcher.queue.lock();
        if q.jobs.is_empty() {
            q.in_flight -= 1;
            return;
        }
        take_batch(&mut q.jobs, &mut spare);
        drop(q);
        let shared = Arc::clone(this);
        let send = async move { shared.run_batches(spare).await };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(send)),
            Err(_) => drop(batcher.runtime.spawn(send)),
        }
    }

    /// Sends batches while decisions keep queueing, then frees the slot.
    async fn run_batches(self: Arc<Self>, mut batch: Vec<Job>) {
        loop {
            // A caller that already timed out is not decided at all (consumes nothing).
            batch.retain(|j| !j.tx.is_closed());
            if !batch.is_empty() {
                let r = tokio::time::timeout(self.timeout, self.batched(&batch))
                    .await
                    .unwrap_or(Err(Error::Timeout(self.timeout)));
                match r {
                    Ok(outcomes) => {
                        for (j, o) in batch.drain(..).zip(outcomes) {
                            let _ = j.tx.send(Ok(o));
                        }
                    }
                    Err(e) => {
                        for j in batch.drain(..) {
                            let _ = j.tx.send(Err(e.clone()));
                        }
                    }
                }
            }
            let Some(batcher) = &self.batcher else { return };
            let mut q = batcher.queue.lock();
            if q.jobs.is_empty() {
                q.in_flight -= 1;
                return;
            }
            take_batch(&mut q.jobs, &mut batch);
        }
    }

    /// Several decisions, one `EVALSHA`; outcomes in batch order.
    async fn batched(&self, batch: &[Job]) -> Result<Vec<Outcome>, Error> {
        self.run_script(batch.iter().map(|j| (j.key.as_str(), j.cost, j.nonce)))
            .await
    }

    /// One `EVALSHA` of the mode's script over `(key, cost, nonce)` decisions, in order.
    async fn run_script<'k>(
        &self,
        decisions: impl IntoIterator<Item = (&'k str, u32, u64)>,
    ) -> Result<Vec<Outcome>, Error> {
        let mut inv = self.script.prepare_invoke();
        inv.arg(self.limit).arg(self.window_us);
        let mut n = 0;
        for (key, cost, nonce) in decisions {
            inv.key(key).arg(cost);
            if self.mode == Mode::Exact {
                inv.arg(format!("{nonce:016x}"));
            }
            n += 1;
        }
        let r: Vec<u64> = match self.conn.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await?,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await?,
        };
        if r.len() != 1 + 5 * n {
            return Err(Error::Redis(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "rate limit script returned the wrong number of values",
            ))));
        }
        let now_us = r[0];
        Ok(r[1..]
            .chunks_exact(5)
            .map(|v| Outcome {
                allowed: v[0] == 1,
                remaining: v[1],
                retry_us: v[2],
                blocked_us: v[3],
                reset_us: v[4],
                now_us,
            })
            .collect())
    }
}

/// Moves up to [`MAX_BATCH`] of the oldest queued jobs into `batch` (empty on entry).
fn take_batch(jobs: &mut Vec<Job>, batch: &mut Vec<Job>) {
    debug_assert!(batch.is_empty());
    if jobs.len() <= MAX_BATCH {
        std::mem::swap(jobs, batch);
    } else {
        batch.extend(jobs.drain(..MAX_BATCH));
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
