//! Redis stopped mid-load: every decision still returns within timeout + 20 ms under each
//! policy, the breaker stops paying a timeout per request, and decisions are back on Redis
//! within 1 s of a restart. Uses a private `redis-server` on its own port (started and killed
//! here, so the shared Redis is untouched).
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use obs_ratelimit::{DecisionSource, Limiter, Mode, OutagePolicy};
use obs_test_support::PrivateRedis;

const TIMEOUT: Duration = Duration::from_millis(50);
const SLACK: Duration = Duration::from_millis(20);

/// Runs checks on 8 tasks for `dur`, returning (slowest decision, sources seen).
async fn load(l: &Limiter, dur: Duration) -> (Duration, Vec<DecisionSource>) {
    let until = Instant::now() + dur;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut sources = Vec::new();
            let mut i = 0u64;
            while Instant::now() < until {
                let start = Instant::now();
                let d = l.check(&format!("user{t}-{i}")).await;
                worst = worst.max(start.elapsed());
                sources.push(d.source);
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (worst, sources)
        }));
    }
    let mut worst = Duration::ZERO;
    let mut sources = Vec::new();
    for t in tasks {
        let (w, s) = t.await.unwrap();
        worst = worst.max(w);
        sources.extend(s);
    }
    (worst, sources)
}

async fn outage_under(policy: OutagePolicy) {
    let mut redis = PrivateRedis::start();
    let l = Limiter::builder("outage")
        .limit(5)
        .window(Duration::from_secs(60))
        .mode(Mode::Exact)
        .policy(policy)
        .timeout(TIMEOUT)
        .build_redis(&redis.url())
        .await
        .unwrap();
    let (_, before) = load(&l, Duration::from_millis(200)).await;
    assert!(before.contains(&DecisionSource::Backend));
    assert!(!l.stats().degraded);

    redis.kill();
    let (worst, during) = load(&l, Duration::from_millis(800)).await;
    assert!(
        worst <= TIMEOUT + SLACK,
        "{policy:?}: slowest decision took {worst:?} with Redis down"
    );
    let expected = match policy {
        OutagePolicy::FailOpen => DecisionSource::FailOpen,
        OutagePolicy::FailClosed => DecisionSource::FailClosed,
        OutagePolicy::FallbackToMemory => DecisionSource::Fallback,
    };
    assert!(
        during.contains(&expected),
        "{policy:?}: no {expected:?} decision"
    );
    let stats = l.stats();
    assert!(stats.degraded, "{policy:?}: {stats:?}");
    // The breaker: far fewer backend errors than decisions (one probe per 250 ms + first wave).
    assert!(stats.backend_errors <= 8 + 8, "{policy:?}: {stats:?}");
    assert!(
        stats.degraded_decisions as usize >= during.len() / 2,
        "{policy:?}: {stats:?}"
    );
    if policy == OutagePolicy::FallbackToMemory {
        // The fallback still limits (5 per minute for this key).
        for _ in 0..5 {
            let d = l.check("fallback-only").await;
            assert!(d.allowed && d.source == DecisionSource::Fallback, "{d:?}");
        }
        let d = l.check("fallback-only").await;
        assert!(!d.allowed && d.source == DecisionSource::Fallback, "{d:?}");
    }

    redis.restart();
    let restarted = Instant::now();
    loop {
        let start = Instant::now();
        let d = l.check("after").await;
        assert!(
            start.elapsed() <= TIMEOUT + SLACK,
            "{policy:?}: {:?}",
            start.elapsed()
        );
        if d.source == DecisionSource::Backend {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(1),
            "{policy:?}: still degraded 1 s after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!l.stats().degraded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_outage() {
    outage_under(OutagePolicy::FailOpen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_outage() {
    outage_under(OutagePolicy::FailClosed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_to_memory_outage() {
    outage_under(OutagePolicy::FallbackToMemory).await;
}
