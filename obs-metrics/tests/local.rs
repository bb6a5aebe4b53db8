//! Local (single-writer, per-owner) handles: exact totals mixed with the shared path, shards
//! kept across drops, monotonic scrapes while handles come and go, exposition and exemplars.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

use obs_core::{RequestContext, RequestId};
use obs_metrics::{opts, Counter, Format, Histogram, Registry, Scope};

obs_metrics::label_enum! {
    /// Outcome.
    pub enum Status { Ok = "ok", Err = "err", Retry = "retry" }
}
obs_metrics::label_set! {
    /// `status`.
    pub struct Outcome { status: Status }
}

const ALL: [Outcome; 3] = [
    Outcome { status: Status::Ok },
    Outcome {
        status: Status::Err,
    },
    Outcome {
        status: Status::Retry,
    },
];

fn counter(r: &Registry) -> Counter<Outcome> {
    r.counter("jobs_total", "Jobs.", Scope::Business, opts())
        .unwrap()
}

fn histogram(r: &Registry) -> Histogram<Outcome> {
    r.histogram(
        "job_duration_seconds",
        "Job time.",
        Scope::Business,
        opts().buckets(&[0.5, 1.0, 4.0]),
    )
    .unwrap()
}

/// The value of the sample line `line_start` (e.g. `jobs_total{status="ok"}`) in `text`.
fn sample(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {line_start} in\n{text}"))
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn counter_is_exact_with_local_handles_on_several_threads_and_the_shared_path() {
    let r = Registry::new();
    let c = counter(&r);
    const THREADS: u64 = 4;
    const N: u64 = 20_000;
    let start = Barrier::new(THREADS as usize * 2);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let local = c.local();
            let start = &start;
            s.spawn(move || {
                start.wait();
                for k in 0..N {
                    local.inc(ALL[(k % 3) as usize]);
                }
                local.inc_by(ALL[0], 1000);
            });
            let shared = c.clone();
            s.spawn(move || {
                start.wait();
                for k in 0..N {
                    shared.inc(ALL[(k % 3) as usize]);
                }
            });
        }
    });
    // Each thread: k % 3 == 0 for 6667 of 20000, 1 for 6667, 2 for 6666.
    let per = |i: u64| (0..N).filter(|k| k % 3 == i).count() as u64;
    assert_eq!(c.get(ALL[0]), 2 * THREADS * per(0) + THREADS * 1000);
    assert_eq!(c.get(ALL[1]), 2 * THREADS * per(1));
    assert_eq!(c.get(ALL[2]), 2 * THREADS * per(2));
}

#[test]
fn dropping_and_reacquiring_handles_keeps_totals() {
    let r = Registry::new();
    let c = counter(&r);
    let h = histogram(&r);
    for round in 1..=50u64 {
        let lc = c.local();
        let lh = h.local();
        let lc2 = lc.clone(); // another shard
        lc.inc(ALL[0]);
        lc2.inc_by(ALL[1], 2);
        lh.observe(ALL[2], 0.25);
        lh.clone().observe(ALL[2], 2.0);
        drop((lc, lh));
        assert_eq!(c.get(ALL[0]), round);
        assert_eq!(c.get(ALL[1]), 2 * round);
        let s = h.snapshot(ALL[2]);
        assert_eq!(s.count, 2 * round);
        assert_eq!(s.sum, 2.25 * round as f64);
        assert_eq!(
            s.buckets,
            vec![(0.5, round), (1.0, 0), (4.0, round), (f64::INFINITY, 0)]
        );
    }
    // A handle moved to another thread and dropped there keeps its counts too.
    let lc = c.local();
    std::thread::spawn(move || lc.inc_by(ALL[0], 7))
        .join()
        .unwrap();
    assert_eq!(c.get(ALL[0]), 57);
}

#[test]
fn scrapes_never_go_backwards_while_handles_churn() {
    let r = Registry::new();
    let c = counter(&r);
    let h = histogram(&r);
    const WORKERS: u64 = 3;
    const HANDLES: u64 = 200;
    const PER_HANDLE: u64 = 50;
    let done = AtomicBool::new(false);
    let scrapes = AtomicU64::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (c, h, scrapes) = (c.clone(), h.clone(), &scrapes);
                s.spawn(move || {
                    for k in 0..HANDLES {
                        // Stay in step with the scraper, so scrapes really interleave with
                        // acquire / update / drop (progress-based, no timing).
                        while scrapes.load(Ordering::Acquire) < k / 4 {
                            std::thread::yield_now();
                        }
                        // Acquire, update, drop: shards keep changing owner.
                        let lc = c.local();
                        let lh = h.local();
                        for _ in 0..PER_HANDLE {
                            lc.inc(ALL[0]);
                            lh.observe(ALL[0], 2.0);
                            c.inc(ALL[0]);
                        }
                    }
                })
            })
            .collect();
        let closer = s.spawn(|| {
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let (mut last_get, mut last_count, mut last_text) = (0, 0, 0.0);
        loop {
            let finished = done.load(Ordering::Acquire);
            let v = c.get(ALL[0]);
            assert!(v >= last_get, "counter went back: {v} < {last_get}");
            last_get = v;
            let n = h.snapshot(ALL[0]).count;
            assert!(
                n >= last_count,
                "histogram count went back: {n} < {last_count}"
            );
            last_count = n;
            let text = r.encode(Format::OpenMetrics, &[Scope::Business]);
            let t = sample(&text, r#"jobs_total{status="ok"}"#);
            assert!(
                t >= last_text,
                "scraped counter went back: {t} < {last_text}"
            );
            last_text = t;
            scrapes.fetch_add(1, Ordering::Release);
            if finished {
                break;
            }
        }
        closer.join().unwrap();
    });
    let total = WORKERS * HANDLES * PER_HANDLE;
    // At least one scrape per 4 handle generations happened while the workers ran.
    assert!(scrapes.into_inner() >= HANDLES / 4);
    assert_eq!(c.get(ALL[0]), 2 * total);
    let s = h.snapshot(ALL[0]);
    assert_eq!(s.count, total);
    assert_eq!(s.sum, 2.0 * total as f64);
}

#[test]
fn exposition_includes_local_updates() {
    let r = Registry::new();
    let c = counter(&r);
    let h = histogram(&r);
    let lc = c.local();
    let lh = h.local();
    lc.inc_by(ALL[1], 5);
    c.inc(ALL[1]);
    lh.observe(ALL[0], 0.75);
    lh.observe(ALL[0], 3.0);
    h.observe(ALL[0], 0.1);
    for format in [Format::OpenMetrics, Format::Prometheus] {
        let text = r.encode(format, &[Scope::Business]);
        assert_eq!(sample(&text, r#"jobs_total{status="err"}"#), 6.0, "{text}");
        assert_eq!(sample(&text, r#"jobs_total{status="ok"}"#), 0.0);
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(r#"job_duration_seconds_bucket{{le="{le}",status="ok"}}"#),
            )
        };
        // Cumulative: 0.1 | 0.75 | 3.0.
        assert_eq!(bucket("0.5"), 1.0, "{text}");
        assert_eq!(bucket("1.0"), 2.0);
        assert_eq!(bucket("4.0"), 3.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(
            sample(&text, r#"job_duration_seconds_count{status="ok"}"#),
            3.0
        );
        assert_eq!(
            sample(&text, r#"job_duration_seconds_sum{status="ok"}"#),
            3.85
        );
    }
}

#[test]
fn histogram_count_sum_and_buckets_agree_after_joins() {
    let r = Registry::new();
    let h = histogram(&r);
    let values = [0.25, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0];
    const THREADS: usize = 4;
    const N: usize = 7 * 3000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let local = h.local();
            let shared = h.clone();
            s.spawn(move || {
                for k in 0..N {
                    if t == 0 && k % 2 == 0 {
                        shared.observe(ALL[1], values[k % 7]);
                    } else {
                        local.observe(ALL[1], values[k % 7]);
                    }
                }
            });
        }
    });
    let s = h.snapshot(ALL[1]);
    let per_value = (THREADS * N / 7) as u64;
    assert_eq!(s.count, THREADS as u64 * N as u64);
    assert_eq!(s.count, s.buckets.iter().map(|(_, c)| c).sum::<u64>());
    assert_eq!(s.sum, values.iter().sum::<f64>() * per_value as f64);
    // <= 0.5: 0.25, 0.5; <= 1: 0.75, 1.0; <= 4: 2, 4; +Inf: 8.
    assert_eq!(
        s.buckets,
        vec![
            (0.5, 2 * per_value),
            (1.0, 2 * per_value),
            (4.0, 2 * per_value),
            (f64::INFINITY, per_value)
        ]
    );
    assert_eq!(h.snapshot(ALL[0]).count, 0);
}

#[test]
fn local_updates_record_exemplars_like_the_shared_path() {
    let r = Registry::new();
    let c: Counter<Outcome> = r
        .counter("jobs_total", "Jobs.", Scope::Business, opts().exemplars())
        .unwrap();
    let h: Histogram<Outcome> = r
        .histogram(
            "job_duration_seconds",
            "Job time.",
            Scope::Business,
            opts().buckets(&[1.0]).exemplars(),
        )
        .unwrap();
    let (lc, lh) = (c.local(), h.local());
    // Outside a request: counted, no exemplar.
    lc.inc(ALL[0]);
    let id = RequestId::parse("req-local-1").unwrap();
    RequestContext::new(id).sync_scope(|| {
        lc.inc_by(ALL[0], 2);
        lh.observe(ALL[0], 0.5);
    });
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    assert!(
        om.contains(r#"jobs_total{status="ok"} 3 # {request_id="req-local-1"} 2.0 "#),
        "{om}"
    );
    assert!(
        om.contains(
            r#"job_duration_seconds_bucket{le="1.0",status="ok"} 1 # {request_id="req-local-1"} 0.5 "#
        ),
        "{om}"
    );
}

/// Values on, just below and just above every bound, ±0, ±Inf, NaN, the extremes.
fn edge_values(bounds: &[f64]) -> Vec<f64> {
    let mut vs = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE / 2.0,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for b in bounds {
        vs.extend([*b, b.next_down(), b.next_up()]);
    }
    vs
}

/// The local handle and the shared path place every value in the same bucket, the one a
/// binary search over the bounds gives, and count and sum the same, whichever bucket search
/// the list length selects (up to 15 bounds the fixed-depth one, up to 32 the branch-free
/// count, beyond that `partition_point`) and with exemplars off or on.
#[test]
fn local_and_shared_observations_agree_on_edge_values() {
    for n in [1usize, 4, 11, 15, 16, 32, 33, 40] {
        for exemplars in [false, true] {
            let bounds: Vec<f64> = (0..n).map(|k| (k as f64 - 3.0) * 0.25).collect();
            let r = Registry::new();
            let o = opts().buckets(&bounds);
            let h: Histogram<Outcome> = r
                .histogram(
                    "edge_seconds",
                    "Edges.",
                    Scope::Business,
                    if exemplars { o.exemplars() } else { o },
                )
                .unwrap();
            let local = h.local();
            let values = edge_values(&bounds);
            let id = RequestId::parse("req-edge").unwrap();
            RequestContext::new(id).sync_scope(|| {
                for v in &values {
                    local.observe(ALL[0], *v);
                    h.observe(ALL[1], *v);
                }
            });
            let (l, s) = (h.snapshot(ALL[0]), h.snapshot(ALL[1]));
            let mut expected = vec![0u64; n + 1];
            for v in &values {
                expected[bounds.partition_point(|ub| *ub < *v)] += 1;
            }
            let counts = |snap: &obs_metrics::HistogramSnapshot| -> Vec<u64> {
                snap.buckets.iter().map(|(_, c)| *c).collect()
            };
            assert_eq!(
                counts(&l),
                expected,
                "local, {n} bounds, exemplars {exemplars}"
            );
            assert_eq!(
                counts(&s),
                expected,
                "shared, {n} bounds, exemplars {exemplars}"
            );
            assert_eq!(l.count, values.len() as u64);
            assert_eq!(s.count, values.len() as u64);
            // MAX + MIN + Inf + -Inf: NaN on both paths.
            assert!(l.sum.is_nan() && s.sum.is_nan());
            // Without the infinities and extremes, sums are exact and equal.
            let finite: Vec<f64> = values
                .iter()
                .copied()
                .filter(|v| v.is_finite() && v.abs() < 1e300)
                .collect();
            let l2 = h.local();
            for v in &finite {
                l2.observe(ALL[2], *v);
            }
            let local_sum = h.snapshot(ALL[2]).sum;
            let h2: Histogram<Outcome> = Registry::new()
                .histogram(
                    "edge2_seconds",
                    "Edges.",
                    Scope::Business,
                    opts().buckets(&bounds),
                )
                .unwrap();
            for v in &finite {
                h2.observe(ALL[2], *v);
            }
            assert_eq!(local_sum, h2.snapshot(ALL[2]).sum);
            assert_eq!(local_sum, finite.iter().sum::<f64>());
            let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
            assert_eq!(om.contains("req-edge"), exemplars, "{om}");
        }
    }
}

/// A non-finite observation is counted (NaN in bucket 0, `+Inf` in the `+Inf` bucket) but
/// never becomes an exemplar, on the local path as on the shared one.
#[test]
fn local_non_finite_observations_are_counted_but_not_exemplars() {
    let r = Registry::new();
    let h: Histogram<Outcome> = r
        .histogram(
            "nf_seconds",
            "Non-finite.",
            Scope::Business,
            opts().buckets(&[1.0]).exemplars(),
        )
        .unwrap();
    let local = h.local();
    let id = RequestId::parse("req-nf").unwrap();
    RequestContext::new(id).sync_scope(|| {
        local.observe(ALL[0], f64::NAN);
        local.observe(ALL[0], f64::INFINITY);
        local.observe(ALL[0], f64::NEG_INFINITY);
    });
    let s = h.snapshot(ALL[0]);
    assert_eq!(s.count, 3);
    assert_eq!(s.buckets, vec![(1.0, 2), (f64::INFINITY, 1)]);
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    assert!(!om.contains("req-nf"), "{om}");
    RequestContext::new(RequestId::parse("req-fin").unwrap())
        .sync_scope(|| local.observe(ALL[0], 0.5));
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    assert!(
        om.contains(r#"nf_seconds_bucket{le="1.0",status="ok"} 3 # {request_id="req-fin"} 0.5 "#),
        "{om}"
    );
}
