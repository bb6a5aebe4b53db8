//! Behaviour of the registry, families and exposition (no external tools; promtool checks live
//! in the workspace's `tests/prometheus_*.rs`).

use std::time::Duration;

use obs_core::{RequestContext, RequestId};
use obs_metrics::{
    opts, Clock, Counter, DynCounter, DynHistogram, Format, Gauge, Histogram, MetricGroup,
    Registry, RegistryError, Scope, OVERFLOW,
};

obs_metrics::label_enum! {
    /// Outcome.
    pub enum Status { Success = "success", Failure = "failure" }
}
obs_metrics::label_set! {
    /// status.
    pub struct StatusLabels { status: Status }
}

obs_metrics::metric_group! {
    /// Jobs.
    pub struct Jobs {
        /// Jobs run,
        /// by outcome.
        pub jobs_total: Counter<StatusLabels> = opts().exemplars(),
        /// Jobs running.
        pub jobs_active: Gauge,
        /// Job time.
        pub job_duration_seconds: Histogram = opts().buckets(&[0.1, 1.0, 10.0]),
    }
}

#[test]
fn group_registers_with_doc_help_and_counts() {
    let r = Registry::new();
    let jobs = Jobs::register(&r).unwrap();
    jobs.jobs_total.inc(StatusLabels {
        status: Status::Failure,
    });
    jobs.jobs_total.inc_by(
        StatusLabels {
            status: Status::Success,
        },
        3,
    );
    jobs.jobs_active.inc(());
    jobs.jobs_active.inc(());
    jobs.jobs_active.dec(());
    for v in [0.05, 0.1, 0.5, 20.0] {
        jobs.job_duration_seconds.observe((), v);
    }
    let d = r.descriptors();
    assert_eq!(d[0].help, "Jobs run, by outcome.");
    assert_eq!(d[0].scope, Scope::Business);
    let text = r.encode(Format::Prometheus, &[Scope::Business]);
    assert!(
        text.contains("# HELP jobs_total Jobs run, by outcome.\n# TYPE jobs_total counter\n"),
        "{text}"
    );
    assert!(text.contains("jobs_total{status=\"success\"} 3\n"));
    assert!(text.contains("jobs_total{status=\"failure\"} 1\n"));
    assert!(text.contains("jobs_active 1\n"));
    // le is inclusive: 0.1 falls in the 0.1 bucket.
    assert!(
        text.contains("job_duration_seconds_bucket{le=\"0.1\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("job_duration_seconds_bucket{le=\"10.0\"} 3\n"));
    assert!(text.contains("job_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert!(text.contains("job_duration_seconds_count 4\n"));
    assert!(text.contains("job_duration_seconds_sum 20.65\n"));
    assert!(!text.contains("# EOF"));
    assert!(r
        .encode(Format::Prometheus, &[Scope::System])
        .find("jobs_total")
        .is_none());
}

#[tokio::test]
async fn counter_exemplar_carries_request_id_in_openmetrics_only() {
    let r = Registry::new();
    let jobs = Jobs::register(&r).unwrap();
    let id = RequestId::generate();
    let ctx = RequestContext::new(id.clone());
    let c = jobs.jobs_total.clone();
    ctx.scope(async move {
        c.inc_by(
            StatusLabels {
                status: Status::Success,
            },
            2,
        )
    })
    .await;
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    let want = format!("jobs_total{{status=\"success\"}} 2 # {{request_id=\"{id}\"}} 2.0 ");
    assert!(om.contains(&want), "{om}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE jobs counter\n"));
    assert!(om.contains("# UNIT job_duration_seconds seconds\n"));
    let text = r.encode(Format::Prometheus, &[Scope::Business]);
    assert!(!text.contains("request_id"));
    assert!(text.contains("jobs_total{status=\"success\"} 2\n"));
}

#[test]
fn registration_errors_say_what_is_wrong() {
    let r = Registry::new();
    r.counter::<()>("a_total", "A.", Scope::Business, opts())
        .unwrap();
    let e = |res: Result<(), RegistryError>| res.unwrap_err().to_string();
    assert!(e(r
        .counter::<()>("a_total", "A.", Scope::System, opts())
        .map(drop))
    .contains("already registered"));
    assert!(e(r
        .gauge::<()>("queue_size", "Q.", Scope::Business, opts())
        .map(drop))
    .contains("bytes"));
    assert!(e(r
        .counter::<()>("b_total", " ", Scope::Business, opts())
        .map(drop))
    .contains("help"));
    assert!(e(r
        .histogram::<()>(
            "h_seconds",
            "H.",
            Scope::Business,
            opts().buckets(&[1.0, 0.5])
        )
        .map(drop))
    .contains("ascending"));
    assert!(e(r
        .gauge::<()>("g_bytes", "G.", Scope::Business, opts().exemplars())
        .map(drop))
    .contains("not gauges"));
    assert!(e(r
        .dyn_counter::<2>("d_total", "D.", Scope::Business, opts().labels(&["x"]))
        .map(drop))
    .contains("2 labels"));
    assert!(e(r
        .dyn_counter::<1>("e_total", "E.", Scope::Business, opts().labels(&["Bad"]))
        .map(drop))
    .contains("label `Bad`"));
    assert!(e(r
        .counter::<()>("f_total", "F.", Scope::Business, opts().max_series(3))
        .map(drop))
    .contains("dynamic families only"));
}

#[test]
fn dynamic_family_caps_series_into_overflow_and_counts_it() {
    let r = Registry::new();
    let c: DynCounter<2> = r
        .dyn_counter(
            "ratelimit_requests_total",
            "Decisions.",
            Scope::System,
            opts().labels(&["limiter", "decision"]).max_series(2),
        )
        .unwrap();
    c.inc(["api", "allowed"]);
    c.inc(["api", "denied"]);
    c.inc(["api", "allowed"]);
    for i in 0..5 {
        c.inc(["scanner", &format!("x{i}")]);
    }
    assert_eq!(c.series_count(), 2);
    assert_eq!(c.overflowed(), 5);
    assert_eq!(c.get(["api", "allowed"]), 2);
    let text = r.encode(Format::Prometheus, &[Scope::System]);
    assert!(
        text.contains(&format!(
            "ratelimit_requests_total{{limiter=\"{OVERFLOW}\",decision=\"{OVERFLOW}\"}} 5\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("obs_metrics_series_overflow_total{metric=\"ratelimit_requests_total\"} 5\n")
    );
    assert!(!text.contains("scanner"));
}

#[test]
fn idle_series_are_evicted_on_the_injected_clock() {
    let clock = Clock::manual();
    let r = Registry::with_clock(clock.clone());
    let h: DynHistogram<1> = r
        .dyn_histogram(
            "ai_api_latency_seconds",
            "Latency.",
            Scope::Business,
            opts()
                .labels(&["model"])
                .buckets(&[1.0])
                .idle_timeout(Duration::from_secs(60)),
        )
        .unwrap();
    h.observe(["old"], 0.5);
    clock.advance(Duration::from_secs(45));
    h.observe(["new"], 2.0);
    clock.advance(Duration::from_secs(30));
    let text = r.encode(Format::Prometheus, &[Scope::Business]);
    assert!(!text.contains("old"), "{text}");
    assert!(text.contains("ai_api_latency_seconds_count{model=\"new\"} 1\n"));
    assert_eq!(h.series_count(), 1);
    assert!(h.snapshot(["old"]).is_none());
    // Touching again keeps it alive.
    clock.advance(Duration::from_secs(50));
    h.observe(["new"], 0.1);
    clock.advance(Duration::from_secs(50));
    assert_eq!(r.evict_idle(), 0);
    assert_eq!(h.snapshot(["new"]).unwrap().count, 2);
}

#[test]
fn concurrent_updates_are_not_lost() {
    let r = Registry::new();
    let c: Counter = r
        .counter("hits_total", "Hits.", Scope::Business, opts())
        .unwrap();
    let h: Histogram = r
        .histogram(
            "work_duration_seconds",
            "Work.",
            Scope::Business,
            opts().buckets(&[0.5]),
        )
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    c.inc(());
                    h.observe((), 0.25);
                }
            });
        }
    });
    assert_eq!(c.get(()), 40_000);
    let snap = h.snapshot(());
    assert_eq!(snap.count, 40_000);
    assert_eq!(snap.sum, 10_000.0);
    assert_eq!(snap.buckets[0], (0.5, 40_000));
}
