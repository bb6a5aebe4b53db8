//! obs-ratelimit throughput.
//!
//! **Criterion part** (`cargo bench -p obs --features ratelimit --bench ratelimit`), one group
//! per question so ratios come from one run:
//!
//! - `ratelimit/admit`: one admitted decision on a rotating set of 10 000 keys — obs in-memory
//!   exact, obs in-memory approximate, and `governor`'s keyed limiter (DashMap + GCRA), the
//!   in-memory peer.
//! - `ratelimit/deny`: a decision on an exhausted key — obs with the deny cache (the hit path
//!   that also spares Redis its round trip), obs without it (the store answers), governor.
//!
//! The in-memory limiter never waits: its decision is taken with `Check::now_or_never` (no
//! runtime, no polling), as an application can.
//!
//! **Redis load mode** (`OBS_RL_REDIS_LOAD=1,16,64 cargo bench -p obs --features ratelimit --bench
//! ratelimit`, used by `benches/peers/run.sh`): for each concurrency, that many tokio tasks
//! hammer random keys on the Redis at `REDIS_URL` (exact mode, or approximate with
//! `OBS_RL_MODE=approx`; every decision admitted, deny cache off) for `OBS_RL_SECONDS` (default
//! 5) and one line `obs c=N decisions_per_sec=X` (`obs-approx ...`) is printed. The same script runs `redis-benchmark` with the same Lua script and the Python and
//! Node peers against the same Redis.
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use obs_ratelimit::{Limiter, Mode};

/// The in-memory limiter answers synchronously: take the decision without polling.
fn now_or_never(check: obs_ratelimit::Check<'_>) -> obs_ratelimit::Decision {
    check
        .now_or_never()
        .unwrap_or_else(|_| panic!("the in-memory limiter never waits"))
}

fn memory(mode: Mode, limit: u32) -> Limiter {
    Limiter::builder("bench")
        .limit(limit)
        .window(Duration::from_secs(1))
        .mode(mode)
        .build_in_memory()
        .unwrap()
}

fn admit(c: &mut Criterion) {
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("198.51.{}.{}", i / 256, i % 256))
        .collect();
    let mut g = c.benchmark_group("ratelimit/admit");
    g.throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("obs-memory-exact", Mode::Exact),
        ("obs-memory-approx", Mode::Approximate),
    ] {
        let l = memory(mode, 100_000);
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let d = now_or_never(l.check(black_box(&keys[i])));
                debug_assert!(d.allowed);
                black_box(d.allowed)
            })
        });
    }
    let gov = RateLimiter::keyed(Quota::per_second(NonZeroU32::new(100_000).unwrap()));
    let mut i = 0usize;
    g.bench_function("governor-keyed", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(gov.check_key(black_box(&keys[i])).is_ok())
        })
    });
    g.finish();
}

fn deny(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit/deny");
    g.throughput(Throughput::Elements(1));
    let key = "203.0.113.7".to_owned();
    for (name, cache) in [
        ("obs-deny-cache-hit", true),
        ("obs-memory-exact-no-cache", false),
    ] {
        let l = Limiter::builder("bench")
            .limit(10)
            .window(Duration::from_secs(3600))
            .deny_cache(cache)
            .build_in_memory()
            .unwrap();
        for _ in 0..10 {
            now_or_never(l.check(&key));
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let d = now_or_never(l.check(black_box(&key)));
                debug_assert!(!d.allowed);
                black_box(d.allowed)
            })
        });
    }
    let gov = RateLimiter::keyed(Quota::per_hour(NonZeroU32::new(10).unwrap()));
    for _ in 0..10 {
        let _ = gov.check_key(&key);
    }
    g.bench_function("governor-keyed", |b| {
        b.iter(|| black_box(gov.check_key(black_box(&key)).is_ok()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    targets = admit, deny
}

/// Decisions per second against Redis at each concurrency in `spec` ("1,16,64").
fn redis_load(spec: &str) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let secs: u64 = std::env::var("OBS_RL_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mode, label) = match std::env::var("OBS_RL_MODE").as_deref() {
        Ok("approx") => (Mode::Approximate, "obs-approx"),
        _ => (Mode::Exact, "obs"),
    };
    rt.block_on(async {
        for c in spec
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
        {
            let limiter = Limiter::builder("bench")
                .prefix(format!("obs-bench:{}", std::process::id()))
                .limit(1_000)
                .window(Duration::from_secs(60))
                .mode(mode)
                .deny_cache(false)
                .timeout(Duration::from_secs(1))
                .build_redis(&url)
                .await
                .unwrap_or_else(|e| panic!("Redis at {url}: {e}"));
            let done = Arc::new(AtomicU64::new(0));
            let errors = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let until = start + Duration::from_secs(secs);
            let tasks: Vec<_> = (0..c)
                .map(|t| {
                    let (l, done, errors) = (limiter.clone(), done.clone(), errors.clone());
                    tokio::spawn(async move {
                        let mut x = (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        let mut key = String::with_capacity(16);
                        while Instant::now() < until {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            key.clear();
                            use std::fmt::Write;
                            let _ = write!(key, "{}", x % 1_000_000);
                            let d = l.check(&key).await;
                            if d.source.is_degraded() {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
            println!(
                "{label} c={c} decisions_per_sec={rate:.0} degraded={}",
                errors.load(Ordering::Relaxed)
            );
        }
    });
}

fn main() {
    if let Ok(spec) = std::env::var("OBS_RL_REDIS_LOAD") {
        redis_load(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
