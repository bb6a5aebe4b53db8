//! The Redis backend on a 3-master Redis Cluster (`REDIS_CLUSTER_URLS`, provided by
//! `cargo xtask test` / `cargo xtask services` on loopback ports 7101-7103).
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::time::Duration;

use obs_ratelimit::{DecisionSource, Limiter, Mode};
use obs_test_support::unique_name;

fn cluster_urls() -> Vec<String> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!(
            "this test needs a Redis Cluster: set REDIS_CLUSTER_URLS (comma-separated redis:// URLs).\n\
             `cargo xtask services` starts a 3-master cluster on 127.0.0.1:7101-7103 and prints it;\n\
             or run the suite with `cargo xtask test`"
        )
    });
    urls.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn decisions_on_a_cluster_are_correct_and_never_crossslot() {
    let urls = cluster_urls();
    let mut raw = redis::cluster::ClusterClient::new(urls.clone())
        .unwrap()
        .get_async_connection()
        .await
        .expect("connect to the Redis Cluster");
    for mode in [Mode::Exact, Mode::Approximate] {
        let prefix = unique_name("rl-cluster");
        let l = Limiter::builder("cluster")
            .prefix(&prefix)
            .limit(3)
            .window(Duration::from_secs(30))
            .mode(mode)
            .timeout(Duration::from_secs(2))
            .build_redis_cluster(&urls)
            .await
            .expect("connect to the Redis Cluster");
        // Enough keys to land on every master; each gets exactly `limit` admissions.
        let mut slots = HashSet::new();
        let mut owners = HashSet::new();
        for i in 0..60 {
            let key = format!("tenant-{i}");
            for n in 0..5 {
                let d = l.check(&key).await;
                assert!(
                    matches!(
                        d.source,
                        DecisionSource::Backend | DecisionSource::DenyCache
                    ),
                    "{d:?}"
                );
                assert_eq!(d.allowed, n < 3, "{mode:?} {key} #{n}: {d:?}");
            }
            let rkey = l.redis_key(&key).unwrap();
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&rkey)
                .query_async(&mut raw)
                .await
                .unwrap();
            slots.insert(slot);
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&rkey)
                .query_async(&mut raw)
                .await
                .unwrap();
            assert!(ttl > 0, "{rkey} PTTL {ttl}");
            owners.insert(slot * 3 / 16384);
        }
        assert!(slots.len() > 30, "keys should spread over many slots");
        assert_eq!(owners.len(), 3, "keys should land on all three masters");
        // Batches of mixed costs, concurrently: all answered by Redis, no CROSSSLOT/MOVED errors.
        let mut tasks = Vec::new();
        for t in 0..32 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    l.check_n(&format!("burst-{t}-{i}"), 2).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = l.stats();
        assert_eq!(s.backend_errors, 0, "{mode:?}: {s:?}");
        assert!(!s.degraded);
        assert_eq!(s.allowed, 60 * 3 + 32 * 20, "{mode:?}: {s:?}");
    }
}
