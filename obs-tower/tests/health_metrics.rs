//! `HealthMetrics`: health check results exported as `health_check_status{check}` and
//! `health_check_duration_seconds{check}`.

use obs_health::{check_fn, CheckResult, Health, Probe, Registration};
use obs_metrics::{Format, Registry, Scope};
use obs_tower::health::HealthMetrics;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn status_and_duration_are_exported_per_check() {
    let registry = Registry::new();
    let state = Arc::new(AtomicU8::new(0));
    let s = state.clone();
    let health = Health::builder()
        .check(
            "database",
            check_fn(move || {
                let s = s.clone();
                async move {
                    match s.load(Ordering::SeqCst) {
                        0 => CheckResult::healthy(),
                        1 => CheckResult::degraded("slow"),
                        _ => CheckResult::unhealthy("down"),
                    }
                }
            }),
        )
        .register(
            Registration::new("cache", check_fn(|| async { true }))
                .cache_ttl(Duration::from_secs(3600)),
        )
        .observer(HealthMetrics::register(&registry).unwrap())
        .build()
        .unwrap();

    let scrape = || registry.encode(Format::Prometheus, &[Scope::System]);
    health.probe(Probe::Ready).await;
    let text = scrape();
    assert!(
        text.contains("health_check_status{check=\"database\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("health_check_status{check=\"cache\"} 0"),
        "{text}"
    );

    state.store(1, Ordering::SeqCst);
    health.probe(Probe::Ready).await;
    assert!(scrape().contains("health_check_status{check=\"database\"} 1"));

    state.store(2, Ordering::SeqCst);
    health.probe(Probe::Deep).await;
    let text = scrape();
    assert!(
        text.contains("health_check_status{check=\"database\"} 2"),
        "{text}"
    );
    // three real runs of database, one of cache (the others were cache hits)
    assert!(
        text.contains("health_check_duration_seconds_count{check=\"database\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("health_check_duration_seconds_count{check=\"cache\"} 1"),
        "{text}"
    );
    // a second registration of the same families is refused
    assert!(HealthMetrics::register(&registry).is_err());
}
