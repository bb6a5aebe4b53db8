//! In-memory backend semantics with an injected clock (no sleeping).

use std::time::Duration;

use obs_ratelimit::clock::ManualClock;
use obs_ratelimit::{DecisionSource, Error, Limiter, Mode, OutagePolicy, MAX_EXACT_LIMIT};
use proptest::prelude::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn limiter(mode: Mode, limit: u32, window: Duration, clock: &ManualClock, cache: bool) -> Limiter {
    Limiter::builder("t")
        .limit(limit)
        .window(window)
        .mode(mode)
        .deny_cache(cache)
        .clock(clock.clone())
        .build_in_memory()
        .unwrap()
}

/// Largest number of admissions (with costs) inside any half-open trailing window `(t-w, t]`.
fn max_in_any_window(admissions: &[(u64, u32)], window: u64) -> u64 {
    let mut max = 0;
    let mut lo = 0;
    let mut sum = 0u64;
    for (hi, &(t, n)) in admissions.iter().enumerate() {
        sum += u64::from(n);
        while admissions[lo].0 + window <= t {
            sum -= u64::from(admissions[lo].1);
            lo += 1;
        }
        let _ = hi;
        max = max.max(sum);
    }
    max
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Exact mode: never more than `limit` in any trailing window, whatever the arrival pattern.
    #[test]
    fn exact_never_over_admits(
        limit in 1u32..20,
        steps in prop::collection::vec((0u64..400_000, 1u32..4), 1..300),
    ) {
        let clock = ManualClock::new();
        let window = 1_000_000u64;
        let l = limiter(Mode::Exact, limit, Duration::from_micros(window), &clock, true);
        let mut admitted = Vec::new();
        rt().block_on(async {
            for (gap, cost) in steps {
                clock.advance_micros(gap);
                let d = l.check_n("k", cost).await;
                if d.allowed {
                    admitted.push((d.admitted_at_micros().unwrap(), cost));
                }
            }
        });
        prop_assert!(max_in_any_window(&admitted, window) <= u64::from(limit));
    }

    /// Both modes: a client that waits exactly `retry_after` is admitted.
    #[test]
    fn waiting_retry_after_is_enough(
        approximate in any::<bool>(),
        limit in 1u32..30,
        window_ms in 1u64..5_000,
        steps in prop::collection::vec((0u64..2_000_000, 1u32..3), 1..80),
        cost in 1u32..3,
    ) {
        let mode = if approximate { Mode::Approximate } else { Mode::Exact };
        let clock = ManualClock::new();
        let l = limiter(mode, limit.max(cost), Duration::from_millis(window_ms), &clock, false);
        rt().block_on(async {
            for (gap, c) in steps {
                clock.advance_micros(gap);
                l.check_n("k", c).await;
            }
            let d = l.check_n("k", cost).await;
            if !d.allowed {
                clock.advance(d.retry_after);
                let again = l.check_n("k", cost).await;
                assert!(again.allowed, "{mode:?}: denied after waiting retry_after {:?}: {again:?}", d.retry_after);
            }
        });
    }

    /// Approximate mode: the documented worst case holds — strictly less than 2 x limit in any
    /// trailing window.
    #[test]
    fn approximate_stays_under_twice_the_limit(
        limit in 1u32..40,
        steps in prop::collection::vec(0u64..300_000, 1..400),
    ) {
        let clock = ManualClock::new();
        let window = 1_000_000u64;
        let l = limiter(Mode::Approximate, limit, Duration::from_micros(window), &clock, true);
        let mut admitted = Vec::new();
        rt().block_on(async {
            for gap in steps {
                clock.advance_micros(gap);
                let d = l.check("k").await;
                if d.allowed {
                    admitted.push((d.admitted_at_micros().unwrap(), 1));
                }
            }
        });
        prop_assert!(max_in_any_window(&admitted, window) < 2 * u64::from(limit));
    }
}

#[test]
fn approximate_worst_case_is_real_and_bounded() {
    // All of a window's budget at its very end, then hammering through the next window: the
    // trailing window that straddles the boundary holds more than `limit` (documented).
    let clock = ManualClock::new();
    let window = 1_000_000u64;
    let limit = 100;
    let l = limiter(
        Mode::Approximate,
        limit,
        Duration::from_micros(window),
        &clock,
        false,
    );
    // Align to just before a window boundary (ManualClock starts at 1000 s = window-aligned).
    clock.advance_micros(window - 1);
    let mut admitted = Vec::new();
    rt().block_on(async {
        for _ in 0..limit {
            let d = l.check("k").await;
            assert!(d.allowed);
            admitted.push((d.admitted_at_micros().unwrap(), 1));
        }
        for _ in 0..2_000 {
            clock.advance_micros(500);
            let d = l.check("k").await;
            if d.allowed {
                admitted.push((d.admitted_at_micros().unwrap(), 1));
            }
        }
    });
    let worst = max_in_any_window(&admitted, window);
    assert!(
        worst > u64::from(limit),
        "expected the documented over-admission, got {worst}"
    );
    assert!(
        worst < 2 * u64::from(limit),
        "worst case {worst} must stay under 2 x limit"
    );
}

#[test]
fn decision_fields_follow_the_log() {
    let clock = ManualClock::new();
    let l = limiter(Mode::Exact, 3, Duration::from_secs(10), &clock, true);
    rt().block_on(async {
        let d1 = l.check("a").await;
        assert!(d1.allowed);
        assert_eq!((d1.limit, d1.remaining), (3, 2));
        assert_eq!(d1.reset_after, Duration::from_secs(10));
        clock.advance(Duration::from_secs(4));
        assert_eq!(l.check("a").await.remaining, 1);
        let d3 = l.check("a").await;
        assert_eq!(d3.remaining, 0);
        assert_eq!(d3.source, DecisionSource::Backend);
        // Exhausted: the next answer comes from the deny cache, until the oldest admission frees.
        let d4 = l.check("a").await;
        assert!(!d4.allowed);
        assert_eq!(d4.source, DecisionSource::DenyCache);
        assert_eq!(d4.retry_after, Duration::from_secs(6));
        assert_eq!(d4.retry_after_secs(), 6);
        assert_eq!(d4.reset_after, Duration::from_secs(10));
        // Other keys are independent.
        assert!(l.check("b").await.allowed);
        clock.advance(Duration::from_secs(6));
        let d5 = l.check("a").await;
        assert!(d5.allowed, "{d5:?}");
        assert_eq!(d5.source, DecisionSource::Backend);
        let s = l.stats();
        assert_eq!((s.allowed, s.denied, s.deny_cache_hits), (5, 1, 1));
        assert!(!s.degraded);
    });
}

#[test]
fn retry_after_secs_rounds_up_and_is_at_least_one() {
    let clock = ManualClock::new();
    let l = limiter(Mode::Exact, 1, Duration::from_millis(1_500), &clock, false);
    rt().block_on(async {
        assert!(l.check("k").await.allowed);
        clock.advance(Duration::from_millis(1));
        let d = l.check("k").await;
        assert_eq!(d.retry_after, Duration::from_millis(1_499));
        assert_eq!(d.retry_after_secs(), 2);
        clock.advance(Duration::from_millis(1_498));
        let d = l.check("k").await;
        assert_eq!(d.retry_after, Duration::from_millis(1));
        assert_eq!(d.retry_after_secs(), 1);
    });
}

#[test]
fn cost_is_all_or_nothing_and_over_limit_costs_never_pass() {
    let clock = ManualClock::new();
    let l = limiter(Mode::Exact, 5, Duration::from_secs(1), &clock, false);
    rt().block_on(async {
        assert!(l.check_n("k", 3).await.allowed);
        let d = l.check_n("k", 3).await;
        assert!(!d.allowed);
        assert_eq!(d.remaining, 2);
        assert!(l.check_n("k", 2).await.allowed);
        let big = l.check_n("other", 6).await;
        assert!(!big.allowed);
        assert_eq!(big.retry_after, Duration::from_secs(1));
        // cost 0 reads without consuming
        let peek = l.check_n("other", 0).await;
        assert!(peek.allowed);
        assert_eq!(peek.remaining, 5);
    });
}

#[test]
fn refund_gives_the_budget_back() {
    for mode in [Mode::Exact, Mode::Approximate] {
        let clock = ManualClock::new();
        let l = limiter(mode, 2, Duration::from_secs(60), &clock, true);
        rt().block_on(async {
            let a = l.check("k").await;
            clock.advance_micros(10);
            let b = l.check("k").await;
            assert!(a.allowed && b.allowed);
            assert_eq!(l.check("k").await.source, DecisionSource::DenyCache);
            l.refund("k", &b).await;
            let c = l.check("k").await;
            assert!(c.allowed, "{mode:?}: {c:?}");
            assert!(!l.check("k").await.allowed);
            // Refunding a denial is a no-op.
            let denied = l.check("k").await;
            l.refund("k", &denied).await;
            assert!(!l.check("k").await.allowed);
        });
    }
}

#[test]
fn idle_keys_are_swept() {
    let clock = ManualClock::new();
    let l = limiter(Mode::Exact, 5, Duration::from_secs(1), &clock, false);
    rt().block_on(async {
        for i in 0..10_000 {
            l.check(&format!("k{i}")).await;
        }
        assert!(l.memory_keys() >= 9_000);
        clock.advance(Duration::from_secs(2));
        for i in 0..(2 * 64 * 4096) {
            l.check(&format!("fresh{}", i % 512)).await;
        }
        assert!(l.memory_keys() < 1_000, "{} keys left", l.memory_keys());
    });
}

#[test]
fn bad_configs_are_rejected_with_reasons() {
    let err = |b: obs_ratelimit::LimiterBuilder| match b.build_in_memory() {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert!(err(Limiter::builder("x").limit(0)).contains("at least 1"));
    assert!(err(Limiter::builder("x").limit(MAX_EXACT_LIMIT + 1)).contains("Approximate"));
    assert!(Limiter::builder("x")
        .limit(MAX_EXACT_LIMIT + 1)
        .mode(Mode::Approximate)
        .build_in_memory()
        .is_ok());
    assert!(err(Limiter::builder("x").window(Duration::ZERO)).contains("window"));
    assert!(err(Limiter::builder("x").prefix("a{b")).contains("prefix"));
    let l = Limiter::builder("x").build_in_memory().unwrap();
    assert_eq!(
        (l.limit(), l.window(), l.mode(), l.policy()),
        (
            100,
            Duration::from_secs(60),
            Mode::Exact,
            OutagePolicy::FailOpen
        )
    );
}
