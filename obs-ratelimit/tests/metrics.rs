//! The `ratelimit_*` families on an obs-metrics registry reflect the limiters' counters.
#![cfg(feature = "metrics")]

use std::time::Duration;

use obs_metrics::{Format, Registry, Scope};
use obs_ratelimit::metrics::RateLimitMetrics;
use obs_ratelimit::Limiter;

#[tokio::test]
async fn families_follow_the_limiters() {
    let registry = Registry::new();
    let metrics = RateLimitMetrics::register(&registry).unwrap();
    let ip = Limiter::builder("ip")
        .limit(2)
        .window(Duration::from_secs(60))
        .deny_cache(true)
        .build_in_memory()
        .unwrap();
    let repo = Limiter::builder("repo").limit(1).build_in_memory().unwrap();
    metrics.add(&ip);
    metrics.add(&repo);
    for _ in 0..5 {
        ip.check("a").await;
    }
    repo.check("r").await;
    let text = registry.encode(Format::Prometheus, &[Scope::System]);
    for line in [
        r#"ratelimit_requests_total{limiter="ip",decision="allowed"} 2"#,
        r#"ratelimit_requests_total{limiter="ip",decision="denied"} 3"#,
        r#"ratelimit_requests_total{limiter="repo",decision="allowed"} 1"#,
        r#"ratelimit_deny_cache_hits_total{limiter="ip"} 3"#,
        r#"ratelimit_backend_errors_total{limiter="ip"} 0"#,
        r#"ratelimit_degraded{limiter="repo"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // Registering twice is refused by the registry (names are unique).
    assert!(RateLimitMetrics::register(&registry).is_err());
}
