//! Coalescing: concurrent decisions on one limiter leave as batched script calls (fewer
//! `EVALSHA`s than decisions), and every caller still gets exactly the answer a sequential
//! replay of the decisions gives. Runs on a private `redis-server` (own port), so
//! `INFO commandstats` counts only this test's calls.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use obs_ratelimit::{Decision, DecisionSource, Limiter, Mode};
use obs_test_support::PrivateRedis;

/// Long enough that nothing leaves the window during a test (so a replay is pure counting),
/// and approximate mode has no previous window (it counts exactly too).
const WINDOW: Duration = Duration::from_secs(300 * 86_400);

async fn conn(redis: &PrivateRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Script calls Redis has received so far (`EVAL` + `EVALSHA`, including rejected ones).
async fn script_calls(redis: &PrivateRedis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn(redis).await)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .flat_map(|l| l.split(':').nth(1).unwrap_or("").split(','))
        .filter_map(|kv| kv.split_once('='))
        // `calls` includes failed ones (e.g. NOSCRIPT); rejected ones are counted apart.
        .filter(|(k, _)| matches!(*k, "calls" | "rejected_calls"))
        .map(|(_, v)| v.trim().parse::<u64>().unwrap())
        .sum()
}

async fn limiter(redis: &PrivateRedis, mode: Mode, limit: u32) -> Limiter {
    Limiter::builder("batching")
        .prefix(format!("batching-{mode:?}"))
        .limit(limit)
        .window(WINDOW)
        .mode(mode)
        // Every decision must be Redis's (no local denials, no timeouts on a busy machine).
        .deny_cache(false)
        .timeout(Duration::from_secs(5))
        .build_redis(&redis.url())
        .await
        .expect("connect to the private Redis")
}

/// `tasks` tasks released together, each making its list of (key, cost) decisions in order.
async fn run(l: &Limiter, plan: Vec<Vec<(String, u32)>>) -> Vec<(String, u32, Decision)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(plan.len()));
    let mut handles = Vec::new();
    for calls in plan {
        let (l, barrier) = (l.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut out = Vec::new();
            for (key, cost) in calls {
                let d = l.check_n(&key, cost).await;
                out.push((key, cost, d));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

/// Replays one key's decisions sequentially and checks each caller's answer against it.
///
/// Nothing leaves the window, so the count only grows: the admitted decisions ordered by
/// `remaining` (descending) are the execution order, and each one's `remaining` must be the
/// limit minus the running total of the costs admitted so far (its own included). A denial
/// must report a count the key really had and a cost that really did not fit it.
fn replay(mode: Mode, limit: u32, key: &str, decisions: &[(u32, &Decision)]) -> u32 {
    let mut admitted: Vec<(u32, &Decision)> = decisions
        .iter()
        .filter(|(_, d)| d.allowed)
        .copied()
        .collect();
    admitted.sort_by_key(|(_, d)| std::cmp::Reverse(d.remaining));
    let mut total = 0u32;
    let mut counts = vec![0u32];
    let mut last_at = 0u64;
    for (cost, d) in &admitted {
        total += cost;
        assert!(
            total <= limit,
            "{mode:?} {key}: over-admission ({total} > {limit})"
        );
        assert_eq!(
            d.remaining,
            limit - total,
            "{mode:?} {key}: cost {cost}: {d:?}"
        );
        assert_eq!(d.retry_after, Duration::ZERO);
        match mode {
            // The newest admission is this one: the whole budget is back one window later.
            Mode::Exact => assert_eq!(d.reset_after, WINDOW, "{d:?}"),
            // Counts matter until the end of the next fixed window.
            Mode::Approximate => {
                assert!(
                    d.reset_after > WINDOW && d.reset_after <= 2 * WINDOW,
                    "{d:?}"
                )
            }
        }
        // Later in the replay never means earlier on Redis's clock.
        let at = d.admitted_at_micros().expect("an admission has a time");
        assert!(at >= last_at, "{mode:?} {key}: admission order vs time");
        last_at = at;
        counts.push(total);
    }
    for (cost, d) in decisions.iter().filter(|(_, d)| !d.allowed) {
        let count = limit - d.remaining;
        assert!(
            counts.contains(&count),
            "{mode:?} {key}: denial at a count the key never had ({count}; had {counts:?}): {d:?}"
        );
        assert!(
            *cost > d.remaining,
            "{mode:?} {key}: cost {cost} fit: {d:?}"
        );
        assert!(d.retry_after > Duration::ZERO && d.retry_after <= 2 * WINDOW);
        if mode == Mode::Exact {
            // Waiting for the oldest admissions to leave the window: at most a window, and
            // within the test's duration of a full window (everything was admitted just now).
            assert!(d.retry_after <= WINDOW);
            assert!(d.retry_after >= WINDOW - Duration::from_secs(120), "{d:?}");
        }
    }
    total
}

fn check_sources(all: &[(String, u32, Decision)]) {
    for (key, cost, d) in all {
        assert_eq!(d.source, DecisionSource::Backend, "{key} {cost}: {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_are_batched_and_each_caller_gets_its_own_exact_answer() {
    let redis = PrivateRedis::start();
    for mode in [Mode::Exact, Mode::Approximate] {
        const LIMIT: u32 = 60;
        let l = limiter(&redis, mode, LIMIT).await;
        let keys = ["a", "b", "c", "d"];
        // 64 tasks x 12 decisions over 4 keys, costs 1..=3: ~2x the keys' budgets demanded.
        let plan: Vec<Vec<(String, u32)>> = (0..64u32)
            .map(|t| {
                (0..12u32)
                    .map(|i| {
                        let key = keys[((t + i) % 4) as usize].to_owned();
                        (key, 1 + (t * 7 + i) % 3)
                    })
                    .collect()
            })
            .collect();
        let before = script_calls(&redis).await;
        let all = run(&l, plan).await;
        let calls = script_calls(&redis).await - before;
        check_sources(&all);
        let decisions = all.len() as u64;
        assert_eq!(decisions, 64 * 12);
        println!("{mode:?}: {decisions} decisions in {calls} script calls");
        assert!(
            calls * 2 <= decisions,
            "{mode:?}: {calls} script calls for {decisions} concurrent decisions: not batched"
        );
        let mut by_key: HashMap<&str, Vec<(u32, &Decision)>> = HashMap::new();
        for (key, cost, d) in &all {
            by_key.entry(key).or_default().push((*cost, d));
        }
        let mut con = conn(&redis).await;
        for key in keys {
            let total = replay(mode, LIMIT, key, &by_key[key]);
            // Demand was ~2x the budget in costs of 1..=3: the key ends (almost) full.
            assert!(total > LIMIT - 3, "{mode:?} {key}: only {total} admitted");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(l.redis_key(key).unwrap())
                .query_async(&mut con)
                .await
                .unwrap();
            assert!(ttl > 0, "{mode:?} {key}: PTTL {ttl}");
        }
        let s = l.stats();
        assert_eq!(s.allowed + s.denied, decisions);
        assert_eq!(s.backend_errors, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_many_times_in_a_batch_is_exact() {
    let redis = PrivateRedis::start();
    for mode in [Mode::Exact, Mode::Approximate] {
        // 256 callers at once on one key: batches of up to 64 copies of the same key.
        const LIMIT: u32 = 100;
        let l = limiter(&redis, mode, LIMIT).await;
        let plan = (0..256).map(|_| vec![("hot".to_owned(), 1)]).collect();
        let before = script_calls(&redis).await;
        let all = run(&l, plan).await;
        let calls = script_calls(&redis).await - before;
        check_sources(&all);
        println!("{mode:?}: 256 decisions on one key in {calls} script calls");
        assert!(
            calls <= 64,
            "{mode:?}: {calls} script calls for 256 decisions"
        );
        let mut remaining: Vec<u32> = all
            .iter()
            .filter(|(_, _, d)| d.allowed)
            .map(|(_, _, d)| d.remaining)
            .collect();
        remaining.sort_unstable();
        assert_eq!(
            remaining,
            (0..LIMIT).collect::<Vec<_>>(),
            "{mode:?}: exactly {LIMIT} admissions, each seeing its own remaining"
        );
        let denied: Vec<&Decision> = all
            .iter()
            .filter(|(_, _, d)| !d.allowed)
            .map(|(_, _, d)| d)
            .collect();
        assert_eq!(denied.len(), 256 - LIMIT as usize);
        assert!(denied
            .iter()
            .all(|d| d.remaining == 0 && d.retry_after > Duration::ZERO));
        let decisions: Vec<(u32, &Decision)> = all.iter().map(|(_, c, d)| (*c, d)).collect();
        replay(mode, LIMIT, "hot", &decisions);
    }
}
