//! [`Limiter`]: the algorithm (mode), the state store (backend), the clock, the deny cache and
//! the outage policy put together.
//!
//! ```
//! use obs_ratelimit::{Limiter, Mode};
//! use std::time::Duration;
//!
//! # tokio_test_block_on(async {
//! let limiter = Limiter::builder("repo")
//!     .limit(2)
//!     .window(Duration::from_secs(60))
//!     .mode(Mode::Exact)
//!     .build_in_memory()
//!     .unwrap();
//! assert!(limiter.check("owner/repo").await.allowed);
//! assert!(limiter.check("owner/repo").await.allowed);
//! let third = limiter.check("owner/repo").await;
//! assert!(!third.allowed);
//! assert_eq!(third.remaining, 0);
//! assert!(third.retry_after > Duration::from_secs(59));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::algo::Outcome;
use crate::clock::{duration_micros, Clock, SystemClock};
use crate::deny_cache::{Denied, DenyCache};
use crate::memory::MemoryStore;
#[cfg(feature = "redis")]
use crate::redis_backend::RedisStore;
use crate::{Error, Mode, OutagePolicy, MAX_EXACT_LIMIT};

/// The answer to one `check`. Being limited is a value: `allowed == false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request (of the given cost) was admitted and its cost consumed.
    pub allowed: bool,
    /// The limiter's limit per window.
    pub limit: u32,
    /// Units still available in the current trailing window after this decision.
    pub remaining: u32,
    /// When denied: how long until the same cost would be admitted (zero when allowed).
    /// A client that waits exactly this long is admitted (absent other traffic).
    pub retry_after: Duration,
    /// How long until the whole budget is available again.
    pub reset_after: Duration,
    /// Who made the decision (backend, deny cache, or the outage policy).
    pub source: DecisionSource,
    grant: Option<Grant>,
}

impl Decision {
    /// `Retry-After` as whole seconds: rounded **up**, and at least 1 (a client obeying a
    /// rounded-down value would be denied again).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }

    /// For an admission: its time on the backend's clock in µs (Redis `TIME` since the Unix
    /// epoch, or the in-memory clock). Lets tests audit admissions across processes.
    pub fn admitted_at_micros(&self) -> Option<u64> {
        self.grant.map(|g| g.at_us)
    }

    /// `reset_after` in whole seconds, rounded up.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The future returned by [`Limiter::check`] / [`Limiter::check_n`].
///
/// Already complete when no Redis call is needed (in-memory backend, deny-cache hit, open
/// circuit); [`Check::now_or_never`] takes such an answer without polling.
#[must_use = "a check does nothing unless awaited"]
pub struct Check<'a> {
    state: CheckState<'a>,
}

enum CheckState<'a> {
    Ready(Option<Decision>),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Pending(Pin<Box<dyn Future<Output = Decision> + Send + 'a>>),
}

impl<'a> Check<'a> {
    fn ready(d: Decision) -> Self {
        Check {
            state: CheckState::Ready(Some(d)),
        }
    }

    #[cfg(feature = "redis")]
    fn pending(f: Pin<Box<dyn Future<Output = Decision> + Send + 'a>>) -> Self {
        Check {
            state: CheckState::Pending(f),
        }
    }

    /// The decision if it was made synchronously, or the still-pending check.
    pub fn now_or_never(self) -> Result<Decision, Self> {
        match self.state {
            CheckState::Ready(Some(d)) => Ok(d),
            state => Err(Check { state }),
        }
    }
}

impl fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            CheckState::Ready(d) => f.debug_tuple("Check::Ready").field(d).finish(),
            CheckState::Pending(_) => f.write_str("Check::Pending"),
        }
    }
}

impl Future for Check<'_> {
    type Output = Decision;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Decision> {
        match &mut self.state {
            CheckState::Ready(d) => Poll::Ready(d.take().expect("Check polled after completion")),
            CheckState::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

/// Who made a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecisionSource {
    /// The configured backend (Redis or the in-memory store) answered.
    Backend,
    /// The local deny cache answered: the key is known to be exhausted, no backend call made.
    DenyCache,
    /// The backend is unavailable and the policy is [`OutagePolicy::FailOpen`]: admitted unchecked.
    FailOpen,
    /// The backend is unavailable and the policy is [`OutagePolicy::FailClosed`]: denied.
    FailClosed,
    /// The backend is unavailable and the in-memory fallback limiter decided.
    Fallback,
}

impl DecisionSource {
    /// `true` when the decision was made without the configured backend because it is down.
    pub fn is_degraded(self) -> bool {
        matches!(self, Self::FailOpen | Self::FailClosed | Self::Fallback)
    }
}

/// What is needed to take an admission back ([`Limiter::refund`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    fallback: bool,
    at_us: u64,
    nonce: u64,
    cost: u32,
}

/// A snapshot of a limiter's counters (monotonic since it was built) and its current mode.
///
/// These are what the metrics adapter exports: `ratelimit_requests_total{limiter,decision}`
/// (`allowed`/`denied`), `ratelimit_backend_errors_total{limiter}` and
/// `ratelimit_degraded{limiter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LimiterStats {
    /// Decisions that admitted.
    pub allowed: u64,
    /// Decisions that denied (including deny-cache hits and fail-closed denials).
    pub denied: u64,
    /// Denials answered by the local deny cache.
    pub deny_cache_hits: u64,
    /// Failed or timed-out backend calls.
    pub backend_errors: u64,
    /// Decisions made by the outage policy instead of the backend.
    pub degraded_decisions: u64,
    /// Whether the backend is currently considered down (circuit open).
    pub degraded: bool,
}

#[derive(Debug, Default)]
struct Stats {
    allowed: AtomicU64,
    denied: AtomicU64,
    deny_cache_hits: AtomicU64,
    backend_errors: AtomicU64,
    degraded_decisions: AtomicU64,
}

/// Circuit breaker: while open, one caller per probe interval tries the backend.
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct Breaker {
    open: AtomicBool,
    next_probe_us: AtomicU64,
    interval_us: u64,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl Breaker {
    fn try_pass(&self, now: u64) -> bool {
        if !self.open.load(Ordering::Acquire) {
            return true;
        }
        let next = self.next_probe_us.load(Ordering::Acquire);
        now >= next
            && self
                .next_probe_us
                .compare_exchange(
                    next,
                    now + self.interval_us,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Returns `true` on the open -> closed transition.
    fn success(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.open.swap(false, Ordering::AcqRel)
    }

    /// Returns `true` on the closed -> open transition.
    fn failure(&self, now: u64) -> bool {
        self.next_probe_us
            .store(now + self.interval_us, Ordering::Release);
        !self.open.swap(true, Ordering::AcqRel)
    }
}

#[derive(Debug)]
enum Backend {
    Memory(MemoryStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

struct Inner {
    name: String,
    limit: u32,
    window: Duration,
    mode: Mode,
    policy: OutagePolicy,
    timeout: Duration,
    backend: Backend,
    fallback: Option<MemoryStore>,
    deny_cache: Option<DenyCache>,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    stats: Stats,
}

/// A sliding-window rate limiter. Cheap to clone (shared state); `Send + Sync`.
///
/// Built with [`Limiter::builder`]. See the crate docs for modes, backends and outage policy.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Limiter")
            .field("name", &i.name)
            .field("limit", &i.limit)
            .field("window", &i.window)
            .field("mode", &i.mode)
            .field("policy", &i.policy)
            .field("timeout", &i.timeout)
            .field("backend", &i.backend)
            .field("deny_cache", &i.deny_cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Starts a builder; `name` labels logs and metrics (`limiter="name"`) and is the default
    /// Redis key prefix.
    pub fn builder(name: impl Into<String>) -> LimiterBuilder {
        let name = name.into();
        LimiterBuilder {
            prefix: format!("rl:{name}"),
            name,
            limit: 100,
            window: Duration::from_secs(60),
            mode: Mode::Exact,
            policy: OutagePolicy::FailOpen,
            timeout: Duration::from_millis(50),
            probe_interval: Duration::from_millis(250),
            deny_cache: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The limiter's name (its `limiter` label).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Units admitted per window.
    pub fn limit(&self) -> u32 {
        self.inner.limit
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// The algorithm in use.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The outage policy in use.
    pub fn policy(&self) -> OutagePolicy {
        self.inner.policy
    }

    /// Checks and, if admitted, consumes one unit for `key`.
    pub fn check<'a>(&'a self, key: &'a str) -> Check<'a> {
        self.check_n(key, 1)
    }

    /// Checks and, if admitted, consumes `cost` units for `key` (all or nothing).
    ///
    /// A `cost` above the limit is never admitted (`retry_after` = the window). A `cost` of 0
    /// reads the state without consuming anything.
    ///
    /// The in-memory backend, the deny cache and the outage policy answer synchronously: the
    /// returned [`Check`] is then already complete (no allocation, no state machine); only a
    /// Redis call is a real (boxed) future.
    pub fn check_n<'a>(&'a self, key: &'a str, cost: u32) -> Check<'a> {
        let inner = &*self.inner;
        let now = inner.clock.now_micros();
        if cost > 0 {
            if let Some(d) = inner.deny_cache.as_ref().and_then(|c| c.get(key, now)) {
                inner.stats.deny_cache_hits.fetch_add(1, Ordering::Relaxed);
                return Check::ready(self.count(Decision {
                    allowed: false,
                    limit: inner.limit,
                    remaining: 0,
                    retry_after: Duration::from_micros(d.retry_at_us.saturating_sub(now)),
                    reset_after: Duration::from_micros(d.reset_at_us.saturating_sub(now)),
                    source: DecisionSource::DenyCache,
                    grant: None,
                }));
            }
        }
        match &inner.backend {
            Backend::Memory(store) => {
                let o = store.decide(key, cost, now);
                Check::ready(self.count(self.finish(key, now, o, DecisionSource::Backend, cost, 0)))
            }
            #[cfg(feature = "redis")]
            Backend::Redis(store) => {
                if !inner.breaker.try_pass(now) {
                    return Check::ready(self.count(self.degraded(key, cost, now)));
                }
                Check::pending(Box::pin(async move {
                    let d = self.redis_decide(store, key, cost, now).await;
                    self.count(d)
                }))
            }
        }
    }

    fn count(&self, decision: Decision) -> Decision {
        let stats = &self.inner.stats;
        let counter = if decision.allowed {
            &stats.allowed
        } else {
            &stats.denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
        decision
    }

    /// One Redis call (the breaker already let it through).
    #[cfg(feature = "redis")]
    async fn redis_decide(&self, store: &RedisStore, key: &str, cost: u32, now: u64) -> Decision {
        let inner = &*self.inner;
        let err = match tokio::time::timeout(inner.timeout, store.decide(key, cost)).await {
            Ok(Ok((o, nonce))) => {
                if inner.breaker.success() {
                    tracing::info!(limiter = %inner.name, "rate limiter backend recovered; deciding on Redis again");
                }
                return self.finish(key, now, o, DecisionSource::Backend, cost, nonce);
            }
            Ok(Err(e)) => e,
            Err(_) => Error::Timeout(inner.timeout),
        };
        inner.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
        if inner.breaker.failure(inner.clock.now_micros()) {
            tracing::warn!(
                limiter = %inner.name,
                error = %err,
                policy = ?inner.policy,
                "rate limiter backend unavailable; deciding by outage policy until it answers again"
            );
        } else {
            tracing::debug!(limiter = %inner.name, error = %err, "rate limiter backend probe failed");
        }
        self.degraded(key, cost, now)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn degraded(&self, key: &str, cost: u32, now: u64) -> Decision {
        let inner = &*self.inner;
        inner
            .stats
            .degraded_decisions
            .fetch_add(1, Ordering::Relaxed);
        let o = match (&inner.policy, &inner.fallback) {
            (OutagePolicy::FallbackToMemory, Some(store)) => {
                let o = store.decide(key, cost, now);
                return self.finish(key, now, o, DecisionSource::Fallback, cost, 0);
            }
            (OutagePolicy::FailClosed, _) => (
                Outcome {
                    allowed: false,
                    remaining: 0,
                    retry_us: duration_micros(inner.window.min(Duration::from_secs(1))),
                    blocked_us: 0,
                    reset_us: 0,
                    now_us: now,
                },
                DecisionSource::FailClosed,
            ),
            _ => (
                Outcome {
                    allowed: true,
                    remaining: u64::from(inner.limit),
                    retry_us: 0,
                    blocked_us: 0,
                    reset_us: 0,
                    now_us: now,
                },
                DecisionSource::FailOpen,
            ),
        };
        Decision {
            allowed: o.0.allowed,
            limit: inner.limit,
            remaining: u32::try_from(o.0.remaining).unwrap_or(u32::MAX),
            retry_after: Duration::from_micros(o.0.retry_us),
            reset_after: Duration::ZERO,
            source: o.1,
            grant: None,
        }
    }

    /// Turns a backend outcome into a decision and feeds the deny cache.
    fn finish(
        &self,
        key: &str,
        now: u64,
        o: Outcome,
        source: DecisionSource,
        cost: u32,
        nonce: u64,
    ) -> Decision {
        let inner = &*self.inner;
        if o.blocked_us > 0 && source == DecisionSource::Backend {
            if let Some(cache) = &inner.deny_cache {
                // The backend decided somewhere between `now` (read before the call) and
                // `after`: stop answering locally at the earliest moment its answer could
                // change, but tell clients the latest, so waiting `retry_after` always works.
                let after = inner.clock.now_micros().max(now);
                cache.insert(
                    key,
                    Denied {
                        until_us: now + o.blocked_us,
                        retry_at_us: after + o.blocked_us,
                        reset_at_us: after + o.reset_us,
                    },
                    now,
                );
            }
        }
        Decision {
            allowed: o.allowed,
            limit: inner.limit,
            remaining: u32::try_from(o.remaining).unwrap_or(u32::MAX),
            retry_after: Duration::from_micros(o.retry_us),
            reset_after: Duration::from_micros(o.reset_us),
            source,
            grant: (o.allowed && cost > 0).then_some(Grant {
                fallback: source == DecisionSource::Fallback,
                at_us: o.now_us,
                nonce,
                cost,
            }),
        }
    }

    /// Takes back what `decision` admitted for `key` (no-op for denials and fail-open passes).
    ///
    /// Used by stacked limiters: when a later limiter denies a request, the earlier ones refund
    /// it, so a denial by one does not consume the others' budget. Best effort: a failed Redis
    /// call is counted as a backend error and otherwise ignored.
    pub async fn refund(&self, key: &str, decision: &Decision) {
        let Some(g) = decision.grant else { return };
        let inner = &*self.inner;
        if let Some(cache) = &inner.deny_cache {
            cache.remove(key);
        }
        if g.fallback {
            if let Some(store) = &inner.fallback {
                store.refund(key, g.at_us, g.cost);
            }
            return;
        }
        match &inner.backend {
            Backend::Memory(store) => store.refund(key, g.at_us, g.cost),
            #[cfg(feature = "redis")]
            Backend::Redis(store) => {
                if inner.breaker.open.load(Ordering::Acquire) {
                    // Redis is down: a refund would only cost a timeout. The admission
                    // stays until it leaves the window (best effort, as documented).
                    return;
                }
                let r = tokio::time::timeout(
                    inner.timeout,
                    store.refund(key, g.at_us, g.nonce, g.cost),
                )
                .await;
                if !matches!(r, Ok(Ok(()))) {
                    inner.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A snapshot of the counters and the current mode.
    pub fn stats(&self) -> LimiterStats {
        let s = &self.inner.stats;
        LimiterStats {
            allowed: s.allowed.load(Ordering::Relaxed),
            denied: s.denied.load(Ordering::Relaxed),
            deny_cache_hits: s.deny_cache_hits.load(Ordering::Relaxed),
            backend_errors: s.backend_errors.load(Ordering::Relaxed),
            degraded_decisions: s.degraded_decisions.load(Ordering::Relaxed),
            degraded: self.inner.breaker.open.load(Ordering::Relaxed),
        }
    }

    /// Keys currently held by the in-memory store (primary or fallback); for tests and debugging.
    pub fn memory_keys(&self) -> usize {
        let primary = match &self.inner.backend {
            Backend::Memory(m) => m.len(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => 0,
        };
        primary + self.inner.fallback.as_ref().map_or(0, MemoryStore::len)
    }

    /// The Redis key this limiter uses for `key` (`{prefix:key}`), if it is on Redis.
    pub fn redis_key(&self, key: &str) -> Option<String> {
        match &self.inner.backend {
            #[cfg(feature = "redis")]
            Backend::Redis(store) => Some(store.redis_key(key)),
            Backend::Memory(_) => {
                let _ = key;
                None
            }
        }
    }
}

/// Builder for [`Limiter`]. Defaults: 100 per 60 s, exact mode, fail-open, 50 ms timeout,
/// 250 ms probe interval, deny cache on for Redis (off in memory), key prefix `rl:{name}`.
#[derive(Debug, Clone)]
pub struct LimiterBuilder {
    name: String,
    prefix: String,
    limit: u32,
    window: Duration,
    mode: Mode,
    policy: OutagePolicy,
    timeout: Duration,
    probe_interval: Duration,
    deny_cache: Option<bool>,
    clock: Arc<dyn Clock>,
}

impl LimiterBuilder {
    /// Units admitted per window (`RATE_LIMIT_MAX`). At least 1; at most
    /// [`MAX_EXACT_LIMIT`] in exact mode.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// The window length (`RATE_LIMIT_WINDOW`); between 1 ms and 366 days.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Limit and window from the environment's settings (`RATE_LIMIT_MAX`,
    /// `RATE_LIMIT_WINDOW`), e.g. `Limiter::builder("ip").config(&Config::from_env()?.rate_limit)`.
    pub fn config(self, config: &obs_core::config::RateLimitConfig) -> Self {
        self.limit(config.max).window(config.window)
    }

    /// Exact sliding log or approximate two-window counter.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What to do while the backend is down.
    pub fn policy(mut self, policy: OutagePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound on every decision's backend wait, from the caller's view (default 50 ms). On Redis
    /// this includes time queued behind in-flight calls while concurrent decisions are batched.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// While the backend is down, one call per this interval probes it (default 250 ms).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Redis key prefix (keys are `{prefix:key}`); must not contain `{` or `}`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Turns the local deny cache on or off. Default: on for Redis (it saves a round trip per
    /// repeated denial), off for the in-memory backend (the store answers as fast as the cache).
    pub fn deny_cache(mut self, enabled: bool) -> Self {
        self.deny_cache = Some(enabled);
        self
    }

    /// The clock for the in-memory store, the deny cache and the breaker (tests inject a
    /// [`ManualClock`](crate::clock::ManualClock)). Redis windows always use Redis time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        if self.limit == 0 {
            return bad(format!("limiter {:?}: limit must be at least 1", self.name));
        }
        if self.mode == Mode::Exact && self.limit > MAX_EXACT_LIMIT {
            return bad(format!(
                "limiter {:?}: exact mode keeps one entry per admission, so limit must be at most {MAX_EXACT_LIMIT}, got {} (use Mode::Approximate)",
                self.name, self.limit
            ));
        }
        if self.window < Duration::from_millis(1) || self.window > Duration::from_secs(366 * 86_400)
        {
            return bad(format!(
                "limiter {:?}: window must be between 1 ms and 366 days, got {:?}",
                self.name, self.window
            ));
        }
        if self.timeout.is_zero() {
            return bad(format!("limiter {:?}: timeout must be positive", self.name));
        }
        if self.prefix.contains(['{', '}']) {
            return bad(format!(
                "limiter {:?}: prefix {:?} must not contain '{{' or '}}'",
                self.name, self.prefix
            ));
        }
        Ok(())
    }

    fn assemble(self, backend: Backend) -> Limiter {
        let deny_cache = self
            .deny_cache
            .unwrap_or(!matches!(backend, Backend::Memory(_)));
        let window_us = duration_micros(self.window);
        let fallback = (self.policy == OutagePolicy::FallbackToMemory)
            .then(|| MemoryStore::new(self.mode, self.limit, window_us));
        Limiter {
            inner: Arc::new(Inner {
                name: self.name,
                limit: self.limit,
                window: self.window,
                mode: self.mode,
                policy: self.policy,
                timeout: self.timeout,
                backend,
                fallback,
                deny_cache: deny_cache.then(DenyCache::new),
                breaker: Breaker {
                    open: AtomicBool::new(false),
                    next_probe_us: AtomicU64::new(0),
                    interval_us: duration_micros(self.probe_interval).max(1),
                },
                clock: self.clock,
                stats: Stats::default(),
            }),
        }
    }

    /// A limiter on the in-memory backend (single process; the embedded default).
    pub fn build_in_memory(self) -> Result<Limiter, Error> {
        self.validate()?;
        let store = MemoryStore::new(self.mode, self.limit, duration_micros(self.window));
        Ok(self.assemble(Backend::Memory(store)))
    }

    /// A limiter on a single Redis node (`redis://[:password@]host:port[/db]`).
    ///
    /// Connects now (an error if Redis is unreachable at startup); afterwards the connection
    /// reconnects by itself and outages are handled by the outage policy.
    #[cfg(feature = "redis")]
    pub async fn build_redis(self, url: &str) -> Result<Limiter, Error> {
        self.validate()?;
        let conn = crate::redis_backend::connect_single(url, self.timeout).await?;
        Ok(self.with_conn(conn))
    }

    /// A limiter on a Redis Cluster, given some of its nodes' URLs.
    #[cfg(feature = "redis")]
    pub async fn build_redis_cluster(self, urls: &[String]) -> Result<Limiter, Error> {
        self.validate()?;
        let conn = crate::redis_backend::connect_cluster(urls, self.timeout).await?;
        Ok(self.with_conn(conn))
    }

    #[cfg(feature = "redis")]
    fn with_conn(self, conn: crate::redis_backend::Conn) -> Limiter {
        let store = RedisStore::new(
            conn,
            self.mode,
            self.prefix.clone(),
            self.limit,
            duration_micros(self.window),
            self.timeout,
        );
        self.assemble(Backend::Redis(store))
    }
}
