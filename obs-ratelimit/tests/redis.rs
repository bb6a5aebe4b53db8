//! The Redis backend against a real Redis (`REDIS_URL`, default 127.0.0.1:6379).
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::time::Duration;

use obs_ratelimit::clock::ManualClock;
use obs_ratelimit::{DecisionSource, Limiter, Mode};
use obs_test_support::{require_redis, unique_name};

async fn redis_limiter(prefix: &str, mode: Mode, limit: u32, window: Duration) -> Limiter {
    let url = require_redis();
    Limiter::builder("test")
        .prefix(prefix)
        .limit(limit)
        .window(window)
        .mode(mode)
        .timeout(Duration::from_secs(2))
        .build_redis(&url)
        .await
        .expect("connect to Redis")
}

async fn raw_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(require_redis())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn exact_mode_counts_and_denies_on_redis() {
    let prefix = unique_name("rl-exact");
    let l = redis_limiter(&prefix, Mode::Exact, 3, Duration::from_secs(30)).await;
    for want in [2, 1, 0] {
        let d = l.check("k").await;
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.source, DecisionSource::Backend);
        assert_eq!(d.remaining, want);
    }
    let d = l.check("k").await;
    assert!(!d.allowed);
    assert_eq!(
        d.source,
        DecisionSource::DenyCache,
        "the last admission already filled the cache"
    );
    assert!(d.retry_after > Duration::from_secs(29) && d.retry_after <= Duration::from_secs(30));
    assert_eq!(d.retry_after_secs(), 30);
    // A second limiter (another process, in effect) sees the same budget on Redis.
    let other = redis_limiter(&prefix, Mode::Exact, 3, Duration::from_secs(30)).await;
    let d = other.check("k").await;
    assert!(!d.allowed);
    assert_eq!(d.source, DecisionSource::Backend);
    assert!(other.check("k2").await.allowed);
    // check_n is all or nothing
    assert!(!other.check_n("k2", 3).await.allowed);
    assert!(other.check_n("k2", 2).await.allowed);
}

#[tokio::test]
async fn approximate_mode_counts_and_denies_on_redis() {
    let prefix = unique_name("rl-approx");
    let l = redis_limiter(&prefix, Mode::Approximate, 3, Duration::from_secs(30)).await;
    for _ in 0..3 {
        assert!(l.check("k").await.allowed);
    }
    let d = l.check("k").await;
    assert!(!d.allowed);
    assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_secs(60));
    let mut con = raw_conn().await;
    let key = l.redis_key("k").unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
}

#[tokio::test]
async fn waiting_exactly_retry_after_is_admitted() {
    // Real time is the subject here (Redis TIME), so the test waits the advertised time.
    for mode in [Mode::Exact, Mode::Approximate] {
        let prefix = unique_name("rl-retry");
        let l = redis_limiter(&prefix, mode, 2, Duration::from_millis(300)).await;
        let mut denials = 0;
        for _ in 0..5 {
            let d = loop {
                let d = l.check("k").await;
                if !d.allowed {
                    break d;
                }
            };
            denials += 1;
            tokio::time::sleep(d.retry_after).await;
            let again = l.check("k").await;
            assert!(
                again.allowed,
                "{mode:?}: denied after waiting {:?}: {again:?}",
                d.retry_after
            );
        }
        assert_eq!(denials, 5);
    }
}

#[tokio::test]
async fn keys_are_hash_tagged_and_every_key_has_a_ttl_after_a_fuzzed_run() {
    let prefix = unique_name("rl-ttl");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let limiters = [
        redis_limiter(&prefix, Mode::Exact, 5, Duration::from_millis(700)).await,
        redis_limiter(
            &format!("{prefix}-a"),
            Mode::Approximate,
            5,
            Duration::from_millis(700),
        )
        .await,
        redis_limiter(
            &format!("{prefix}-big"),
            Mode::Exact,
            3,
            Duration::from_secs(3600),
        )
        .await,
    ];
    let mut keys = HashSet::new();
    for _ in 0..2_000 {
        let l = &limiters[(next() % 3) as usize];
        let key = format!("user{}", next() % 50);
        let cost = (next() % 7) as u32; // includes 0 (peek) and over-limit costs
        let d = l.check_n(&key, cost).await;
        if d.allowed && next() % 5 == 0 {
            l.refund(&key, &d).await;
        }
        keys.insert(l.redis_key(&key).unwrap());
    }
    let mut con = raw_conn().await;
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        found.len() > 50,
        "expected keys under the prefix, found {}",
        found.len()
    );
    for key in &found {
        assert!(
            key.starts_with('{') && key.ends_with('}'),
            "not hash-tagged: {key}"
        );
        assert!(keys.contains(key), "unexpected key {key}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has PTTL {ttl}");
    }
    for l in &limiters {
        assert_eq!(l.stats().backend_errors, 0);
    }
}

#[tokio::test]
async fn client_clock_skew_has_no_effect() {
    // Two limiters whose local clocks disagree by an hour share one budget on Redis.
    let prefix = unique_name("rl-skew");
    let url = require_redis();
    let fast = ManualClock::new();
    fast.advance(Duration::from_secs(3600));
    let build = |clock: ManualClock| {
        Limiter::builder("skew")
            .prefix(&prefix)
            .limit(4)
            .window(Duration::from_secs(60))
            .clock(clock)
            .build_redis(&url)
    };
    let a = build(ManualClock::new()).await.unwrap();
    let b = build(fast.clone()).await.unwrap();
    assert!(a.check("k").await.allowed);
    assert!(b.check("k").await.allowed);
    assert!(a.check("k").await.allowed);
    assert!(b.check("k").await.allowed);
    let d = b.check("k").await;
    assert!(!d.allowed);
    // Jumping the local clock forward a day does not free budget: Redis decides.
    fast.advance(Duration::from_secs(86_400));
    let d = b.check("k").await;
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.source, DecisionSource::Backend);
    assert!(d.retry_after > Duration::from_secs(58), "{d:?}");
    assert!(!a.check("k").await.allowed);
}

#[tokio::test]
async fn noscript_is_reloaded_transparently() {
    let prefix = unique_name("rl-noscript");
    let l = redis_limiter(&prefix, Mode::Exact, 100, Duration::from_secs(10)).await;
    assert!(l.check("k").await.allowed);
    let mut con = raw_conn().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let d = l.check("k").await;
    assert!(d.allowed && d.source == DecisionSource::Backend, "{d:?}");
    assert_eq!(d.remaining, 98);
    assert_eq!(l.stats().backend_errors, 0);
}

#[tokio::test]
async fn refund_on_redis_restores_budget() {
    for mode in [Mode::Exact, Mode::Approximate] {
        let prefix = unique_name("rl-refund");
        let l = redis_limiter(&prefix, mode, 2, Duration::from_secs(60)).await;
        let a = l.check("k").await;
        let b = l.check_n("k", 1).await;
        assert!(a.allowed && b.allowed);
        l.refund("k", &b).await;
        let c = l.check("k").await;
        assert!(c.allowed, "{mode:?} {c:?}");
        assert_eq!(c.remaining, 0);
        assert!(!l.check("k").await.allowed);
    }
}
