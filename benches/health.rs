//! Health runner: cached probe latency, and the uncached aggregate of 10 checks with different
//! simulated latencies (1..=10 ms) run concurrently by `obs_health` vs a sequential baseline
//! (how Spring Actuator runs checks) in the same group. The concurrent aggregate should be close
//! to the slowest check (~10 ms), the sequential one close to the sum (~55 ms).
//!
//! ```text
//! cargo bench -p obs --features tower,health --bench health
//! ```
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use obs_health::{check_fn, Health, HealthCheck, Probe, Registration};

fn sleeper(ms: u64) -> impl HealthCheck + Clone {
    check_fn(move || async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        true
    })
}

fn registry(ttl: Duration) -> Health {
    let mut b = Health::builder();
    for ms in 1..=10u64 {
        b = b.register(Registration::new(format!("dep{ms}"), sleeper(ms)).cache_ttl(ttl));
    }
    b.build().expect("valid registrations")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("health");
    g.sample_size(20).measurement_time(Duration::from_secs(6));

    // Cached: every check answered from its TTL cache (what a probe costs between refreshes).
    let cached = registry(Duration::from_secs(3600));
    rt.block_on(cached.probe(Probe::Ready));
    g.bench_function("cached_probe_10_checks", |b| {
        b.to_async(&rt).iter(|| cached.probe(Probe::Ready))
    });

    // Uncached aggregate: the 10 checks run concurrently on every probe.
    let uncached = registry(Duration::ZERO);
    g.bench_function("uncached_aggregate_10_checks_concurrent", |b| {
        b.to_async(&rt).iter(|| uncached.probe(Probe::Ready))
    });

    // Baseline: the same 10 checks awaited one after another.
    let checks: Vec<_> = (1..=10u64).map(sleeper).collect();
    g.bench_function("uncached_aggregate_10_checks_sequential_baseline", |b| {
        b.to_async(&rt).iter(|| async {
            let mut worst = obs_health::Status::Healthy;
            for c in &checks {
                worst = worst.worst(c.check().await.status);
            }
            worst
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
