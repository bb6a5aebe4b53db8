//! Zero over-admission in exact mode: 64 concurrent tasks in each of 2 processes hammer one
//! key on a real Redis; every admission's Redis timestamp is audited against the trailing
//! window afterwards. The second process is this test binary re-invoked with
//! `OBS_RL_CHILD_KEY` set (it then only hammers and prints its admissions).
#![cfg(feature = "redis")]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_ratelimit::{Limiter, Mode};
use obs_test_support::{require_redis, unique_name};

const TASKS: usize = 64;
const LIMIT: u32 = 40;
const WINDOW: Duration = Duration::from_millis(500);
const RUN_FOR: Duration = Duration::from_millis(2_500);
const CHILD_ENV: &str = "OBS_RL_CHILD_KEY";

/// Hammers `prefix`/"hot" from 64 tasks for `RUN_FOR`; returns admission times (Redis µs).
async fn hammer(prefix: &str) -> Vec<u64> {
    let limiter = Limiter::builder("hammer")
        .prefix(prefix)
        .limit(LIMIT)
        .window(WINDOW)
        .mode(Mode::Exact)
        // The audit needs every admission to be a real Redis decision.
        .timeout(Duration::from_secs(5))
        .build_redis(&require_redis())
        .await
        .expect("connect to Redis");
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    let limiter = Arc::new(limiter);
    for _ in 0..TASKS {
        let l = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let mut admitted = Vec::new();
            while Instant::now() < deadline {
                let d = l.check("hot").await;
                assert!(!d.source.is_degraded(), "Redis failed mid-test: {d:?}");
                if let Some(t) = d.admitted_at_micros() {
                    admitted.push(t);
                }
                if !d.allowed {
                    // Yield so the deny-cache fast path does not starve the runtime.
                    tokio::task::yield_now().await;
                }
            }
            admitted
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_mode_never_over_admits_across_two_processes() {
    if let Ok(prefix) = std::env::var(CHILD_ENV) {
        for t in hammer(&prefix).await {
            println!("ADMIT {t}");
        }
        return;
    }
    let prefix = unique_name("rl-2proc");
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "exact_mode_never_over_admits_across_two_processes",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-invoke the test binary");
    let mine = hammer(&prefix).await;
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "child process failed");
    let theirs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ADMIT ")?.trim().parse().ok())
        .collect();
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "both processes must be admitted sometimes"
    );
    let mut all: Vec<u64> = mine.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    // Trailing-window audit: admissions i and i+LIMIT must be a full window apart, i.e. no
    // window (t - WINDOW, t] ever holds LIMIT + 1 of them.
    let window_us = WINDOW.as_micros() as u64;
    let limit = LIMIT as usize;
    for i in 0..all.len().saturating_sub(limit) {
        assert!(
            all[i + limit] - all[i] >= window_us,
            "over-admission: {} admissions within {} µs (from {} to {})",
            limit + 1,
            all[i + limit] - all[i],
            all[i],
            all[i + limit]
        );
    }
    // And the limiter was not trivially strict: over ~5 windows, close to LIMIT per window.
    let windows = RUN_FOR.as_micros() as f64 / window_us as f64;
    assert!(
        all.len() as f64 >= (windows - 1.0) * f64::from(LIMIT),
        "only {} admissions in {windows} windows of {LIMIT}",
        all.len()
    );
}
