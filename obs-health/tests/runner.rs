//! Runner semantics: concurrency, timeouts, cancellation, single-flight, caching, panics,
//! hysteresis, startup latch, liveness isolation, background refresh.

use obs_health::{
    check_fn, CheckEvent, CheckFuture, CheckResult, Health, HealthCheck, HealthObserver, Probe,
    Probes, Registration, Status,
};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts live check futures: +1 on creation, -1 in `Drop`.
#[derive(Debug, Default)]
struct LiveFutures {
    created: AtomicUsize,
    alive: AtomicUsize,
}

struct Guard(Arc<LiveFutures>);

impl Guard {
    fn new(c: &Arc<LiveFutures>) -> Guard {
        c.created.fetch_add(1, Ordering::SeqCst);
        c.alive.fetch_add(1, Ordering::SeqCst);
        Guard(c.clone())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A check that never finishes, holding a drop guard.
struct Hang(Arc<LiveFutures>);

impl HealthCheck for Hang {
    fn check(&self) -> CheckFuture<'_> {
        let guard = Guard::new(&self.0);
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            CheckResult::healthy()
        })
    }
}

/// A check that sleeps `delay` and counts executions.
fn counting(delay: Duration, runs: Arc<AtomicU32>) -> impl HealthCheck {
    check_fn(move || {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            CheckResult::healthy()
        }
    })
}

/// A check whose status is switched from the test.
fn switchable(up: Arc<AtomicBool>) -> impl HealthCheck {
    check_fn(move || {
        let up = up.clone();
        async move {
            if up.load(Ordering::SeqCst) {
                CheckResult::healthy()
            } else {
                CheckResult::unhealthy("down")
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_checks_with_one_hanging_answer_within_timeout_plus_100ms() {
    let live = Arc::new(LiveFutures::default());
    let timeout = Duration::from_millis(300);
    let mut b = Health::builder();
    for i in 0..49 {
        b = b.register(
            Registration::new(
                format!("ok{i}"),
                check_fn(|| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    true
                }),
            )
            .timeout(timeout),
        );
    }
    b = b.register(Registration::new("hang", Hang(live.clone())).timeout(timeout));
    let health = b.build().unwrap();

    let started = std::time::Instant::now();
    let report = health.probe(Probe::Ready).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed >= timeout,
        "returned before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(100),
        "took {elapsed:?}, more than timeout + 100 ms (checks not concurrent?)"
    );
    assert_eq!(report.checks.len(), 50);
    assert_eq!(report.status, Status::Unhealthy);
    let hang = &report.checks["hang"];
    assert_eq!(hang.status, Status::Unhealthy);
    assert!(hang.message.as_deref().unwrap().contains("timed out"));
    assert_eq!(report.checks["ok7"].status, Status::Healthy);
    assert_eq!(
        live.alive.load(Ordering::SeqCst),
        0,
        "timed-out future still alive"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_timed_out_runs_leave_nothing_alive() {
    let live = Arc::new(LiveFutures::default());
    let health = Health::builder()
        .register(Registration::new("hang", Hang(live.clone())).timeout(Duration::from_millis(5)))
        .build()
        .unwrap();
    for _ in 0..10_000 {
        let r = health.probe(Probe::Deep).await;
        assert_eq!(r.status, Status::Unhealthy);
    }
    assert_eq!(live.created.load(Ordering::SeqCst), 10_000);
    assert_eq!(live.alive.load(Ordering::SeqCst), 0);

    // Probes dropped mid-flight (client went away) drop their check futures too.
    let probe = health.probe(Probe::Deep);
    let cancelled = tokio::time::timeout(Duration::from_millis(1), probe).await;
    assert!(cancelled.is_err());
    assert_eq!(live.created.load(Ordering::SeqCst), 10_001);
    assert_eq!(live.alive.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_probes_execute_each_check_once_per_ttl() {
    let a = Arc::new(AtomicU32::new(0));
    let b = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(
            Registration::new("a", counting(Duration::from_millis(50), a.clone()))
                .cache_ttl(Duration::from_secs(10)),
        )
        .register(
            Registration::new("b", counting(Duration::from_millis(80), b.clone()))
                .cache_ttl(Duration::from_secs(10)),
        )
        .build()
        .unwrap();

    let probes = (0..1_000).map(|i| {
        let h = health.clone();
        async move {
            h.probe(if i % 2 == 0 {
                Probe::Ready
            } else {
                Probe::Deep
            })
            .await
        }
    });
    let reports = futures_join_all(probes).await;
    assert!(reports.iter().all(|r| r.status == Status::Healthy));
    assert_eq!(a.load(Ordering::SeqCst), 1);
    assert_eq!(b.load(Ordering::SeqCst), 1);

    // Still within the TTL: served from cache.
    tokio::time::advance(Duration::from_secs(5)).await;
    futures_join_all((0..100).map(|_| health.probe(Probe::Ready))).await;
    assert_eq!(a.load(Ordering::SeqCst), 1);

    // TTL expired: exactly one more execution for another burst.
    tokio::time::advance(Duration::from_secs(6)).await;
    futures_join_all((0..1_000).map(|_| health.probe(Probe::Ready))).await;
    assert_eq!(a.load(Ordering::SeqCst), 2);
    assert_eq!(b.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn without_ttl_concurrent_probes_still_share_the_in_flight_run() {
    let runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(Registration::new(
            "slow",
            counting(Duration::from_millis(100), runs.clone()),
        ))
        .build()
        .unwrap();
    futures_join_all((0..500).map(|_| health.probe(Probe::Ready))).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A later probe runs it again (no TTL).
    health.probe(Probe::Ready).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn aggregate_latency_is_the_slowest_check_not_the_sum() {
    let mut b = Health::builder();
    for ms in [10u64, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
        let d = Duration::from_millis(ms);
        b = b.check(
            format!("c{ms}"),
            check_fn(move || async move {
                tokio::time::sleep(d).await;
                true
            }),
        );
    }
    let health = b.build().unwrap();
    let r = health.probe(Probe::Ready).await;
    assert!(r.latency >= Duration::from_millis(100));
    assert!(r.latency < Duration::from_millis(150), "{:?}", r.latency);
    assert!(r.checks["c30"].latency >= Duration::from_millis(30));
    assert!(r.checks["c30"].latency < Duration::from_millis(40));
}

#[tokio::test]
async fn panicking_check_is_unhealthy_with_its_message_and_probe_still_answers() {
    let health = Health::builder()
        .check("ok", check_fn(|| async { true }))
        .check(
            "boom",
            check_fn(|| async {
                if true {
                    panic!("disk controller on fire");
                }
                true
            }),
        )
        .build()
        .unwrap();
    for _ in 0..2 {
        let r = health.probe(Probe::Ready).await;
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.checks["ok"].status, Status::Healthy);
        let boom = &r.checks["boom"];
        assert_eq!(boom.status, Status::Unhealthy);
        let msg = boom.message.as_deref().unwrap();
        assert!(
            msg.contains("panicked") && msg.contains("disk controller on fire"),
            "{msg}"
        );
    }
}

/// A check whose `check()` itself panics before returning a future.
struct PanicsEagerly;
impl HealthCheck for PanicsEagerly {
    fn check(&self) -> CheckFuture<'_> {
        panic!("eager {}", 42)
    }
}

#[tokio::test]
async fn panic_while_building_the_future_is_contained_too() {
    let health = Health::builder()
        .check("eager", PanicsEagerly)
        .build()
        .unwrap();
    let r = health.probe(Probe::Deep).await;
    assert_eq!(r.checks["eager"].status, Status::Unhealthy);
    assert!(r.checks["eager"]
        .message
        .as_deref()
        .unwrap()
        .contains("eager 42"));
}

#[tokio::test]
async fn optional_failure_degrades_never_fails_the_aggregate() {
    let health = Health::builder()
        .check("db", check_fn(|| async { true }))
        .register(Registration::new("qdrant", check_fn(|| async { false })).optional())
        .build()
        .unwrap();
    let r = health.probe(Probe::Ready).await;
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(r.checks["qdrant"].status, Status::Unhealthy);
    assert!(!r.checks["qdrant"].required);
}

#[tokio::test]
async fn worst_required_status_wins() {
    let health = Health::builder()
        .check("a", check_fn(|| async { Status::Degraded }))
        .check("b", check_fn(|| async { Status::Healthy }))
        .build()
        .unwrap();
    assert_eq!(health.probe(Probe::Ready).await.status, Status::Degraded);
    let health = Health::builder()
        .check("a", check_fn(|| async { Status::Degraded }))
        .check("b", check_fn(|| async { Status::Unhealthy }))
        .build()
        .unwrap();
    assert_eq!(health.probe(Probe::Ready).await.status, Status::Unhealthy);
}

#[tokio::test]
async fn liveness_never_runs_dependency_checks() {
    let dep_runs = Arc::new(AtomicU32::new(0));
    let live_runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(Registration::new(
            "db",
            counting(Duration::ZERO, dep_runs.clone()),
        ))
        .register(
            Registration::new("loop", counting(Duration::ZERO, live_runs.clone()))
                .probes(Probes::LIVE),
        )
        .build()
        .unwrap();
    let r = health.probe(Probe::Live).await;
    assert_eq!(r.status, Status::Healthy);
    assert_eq!(r.checks.keys().collect::<Vec<_>>(), ["loop"]);
    assert_eq!(dep_runs.load(Ordering::SeqCst), 0);
    assert_eq!(live_runs.load(Ordering::SeqCst), 1);
    // ready/deep do not include the live-only check
    let r = health.probe(Probe::Deep).await;
    assert_eq!(r.checks.keys().collect::<Vec<_>>(), ["db"]);
}

#[tokio::test]
async fn startup_latches_once_passed() {
    let up = Arc::new(AtomicBool::new(false));
    let health = Health::builder()
        .check("migrations", switchable(up.clone()))
        .build()
        .unwrap();
    assert_eq!(health.probe(Probe::Startup).await.status, Status::Unhealthy);
    assert!(!health.startup_passed());
    up.store(true, Ordering::SeqCst);
    assert_eq!(health.probe(Probe::Startup).await.status, Status::Healthy);
    assert!(health.startup_passed());
    up.store(false, Ordering::SeqCst);
    // startup stays passed; readiness reflects reality
    assert_eq!(health.probe(Probe::Startup).await.status, Status::Healthy);
    assert_eq!(health.probe(Probe::Ready).await.status, Status::Unhealthy);
}

#[derive(Default)]
struct Recorder {
    transitions: std::sync::Mutex<Vec<(String, Option<Status>, Status)>>,
    runs: AtomicU32,
}

impl HealthObserver for Recorder {
    fn on_check(&self, _event: &CheckEvent<'_>) {
        self.runs.fetch_add(1, Ordering::SeqCst);
    }
    fn on_transition(&self, name: &str, from: Option<Status>, to: Status) {
        self.transitions
            .lock()
            .unwrap()
            .push((name.to_owned(), from, to));
    }
}

#[tokio::test(start_paused = true)]
async fn hysteresis_fails_after_n_and_recovers_after_m_and_transitions_are_reported_once() {
    let up = Arc::new(AtomicBool::new(true));
    let rec = Arc::new(Recorder::default());
    let health = Health::builder()
        .register(Registration::new("db", switchable(up.clone())).hysteresis(3, 2))
        .observer(rec.clone())
        .build()
        .unwrap();
    let status = |h: &Health| {
        let h = h.clone();
        async move { h.probe(Probe::Ready).await }
    };
    assert_eq!(status(&health).await.status, Status::Healthy);

    up.store(false, Ordering::SeqCst);
    let r = status(&health).await;
    assert_eq!(r.status, Status::Healthy, "1st failure held back");
    assert_eq!(r.checks["db"].observed, Some(Status::Unhealthy));
    assert_eq!(
        status(&health).await.status,
        Status::Healthy,
        "2nd failure held back"
    );
    assert_eq!(
        status(&health).await.status,
        Status::Unhealthy,
        "3rd failure reported"
    );
    assert_eq!(status(&health).await.status, Status::Unhealthy);

    up.store(true, Ordering::SeqCst);
    assert_eq!(
        status(&health).await.status,
        Status::Unhealthy,
        "1st success held back"
    );
    // a failure in between resets the success streak
    up.store(false, Ordering::SeqCst);
    assert_eq!(status(&health).await.status, Status::Unhealthy);
    up.store(true, Ordering::SeqCst);
    assert_eq!(status(&health).await.status, Status::Unhealthy);
    assert_eq!(
        status(&health).await.status,
        Status::Healthy,
        "2nd success in a row"
    );

    let t = rec.transitions.lock().unwrap().clone();
    assert_eq!(
        t,
        vec![
            ("db".to_owned(), None, Status::Healthy),
            ("db".to_owned(), Some(Status::Healthy), Status::Unhealthy),
            ("db".to_owned(), Some(Status::Unhealthy), Status::Healthy),
        ]
    );
    assert_eq!(rec.runs.load(Ordering::SeqCst), 9);
}

#[tokio::test(start_paused = true)]
async fn cache_ttl_reuses_results_until_expiry() {
    let runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(
            Registration::new("db", counting(Duration::ZERO, runs.clone()))
                .cache_ttl(Duration::from_secs(5)),
        )
        .build()
        .unwrap();
    health.probe(Probe::Ready).await;
    tokio::time::advance(Duration::from_millis(4_999)).await;
    health.probe(Probe::Ready).await;
    health.check("db").await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    health.probe(Probe::Deep).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(health.check("nope").await.is_none());
}

#[tokio::test(start_paused = true)]
async fn background_checks_feed_probes_from_the_last_snapshot() {
    let runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(
            Registration::new("db", counting(Duration::from_millis(10), runs.clone()))
                .background(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    let tasks = health.spawn_background();
    assert_eq!(tasks.len(), 1);
    // let the first (immediate) background run finish
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    for _ in 0..50 {
        assert_eq!(health.probe(Probe::Ready).await.status, Status::Healthy);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "probes must not run background checks"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    drop(tasks);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "dropping the handle stops the task"
    );
    // Without a live background task, probes no longer trust the old snapshot.
    health.probe(Probe::Ready).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn background_registration_without_spawned_tasks_is_not_cached_forever() {
    let runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(
            Registration::new("db", counting(Duration::ZERO, runs.clone()))
                .background(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    health.probe(Probe::Ready).await;
    health.probe(Probe::Ready).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn startup_latched_report_is_restamped_without_running_checks() {
    let runs = Arc::new(AtomicU32::new(0));
    let health = Health::builder()
        .register(Registration::new(
            "db",
            counting(Duration::from_millis(5), runs.clone()),
        ))
        .build()
        .unwrap();
    let first = health.probe(Probe::Startup).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let again = health.probe(Probe::Startup).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(again.latency, Duration::ZERO);
    assert_eq!(again.checks["db"].checked_at, first.checks["db"].checked_at);
}

#[test]
fn invalid_registrations_are_rejected() {
    use obs_health::HealthError;
    let ok = || check_fn(|| async { true });
    let err = |r: Registration| Health::builder().register(r).build().unwrap_err();
    assert_eq!(
        err(Registration::new("x", ok()).timeout(Duration::ZERO)),
        HealthError::ZeroTimeout("x".into())
    );
    assert_eq!(
        err(Registration::new("x", ok()).hysteresis(0, 1)),
        HealthError::ZeroHysteresis("x".into())
    );
    assert_eq!(err(Registration::new("", ok())), HealthError::EmptyName);
    assert_eq!(
        err(Registration::new("x", ok()).probes(Probes::empty())),
        HealthError::NoProbe("x".into())
    );
}

#[tokio::test]
async fn report_json_has_the_reference_shape() {
    let health = Health::builder()
        .service("svc", "1.2.3")
        .environment("test")
        .check(
            "database",
            check_fn(|| async { CheckResult::healthy().with_detail("connected", true) }),
        )
        .check(
            "queue",
            check_fn(|| async { CheckResult::degraded("backlog") }),
        )
        .build()
        .unwrap();
    let json = serde_json::to_value(health.probe(Probe::Deep).await).unwrap();
    assert_eq!(json["status"], "degraded");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(json["latency_ms"].is_number());
    assert_eq!(json["checks"]["database"]["status"], "healthy");
    assert_eq!(json["checks"]["database"]["details"]["connected"], true);
    assert!(json["checks"]["database"]["latency_ms"].is_number());
    assert!(json["checks"]["database"].get("error").is_none());
    assert_eq!(json["checks"]["queue"]["error"], "backlog");
    assert_eq!(json["system"]["version"], "1.2.3");
    assert_eq!(json["system"]["environment"], "test");
    assert_eq!(json["system"]["pid"], std::process::id());
    assert!(json["system"]["uptime"].is_u64());
    let redacted = serde_json::to_value(health.probe(Probe::Deep).await.redacted()).unwrap();
    assert_eq!(redacted["checks"]["queue"]["status"], "degraded");
    assert!(redacted["checks"]["queue"].get("error").is_none());
    assert!(redacted["checks"]["database"].get("details").is_none());
    assert!(redacted.get("system").is_none());
}

async fn futures_join_all<F: std::future::Future>(
    it: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    // Polled concurrently on this task.
    futures_util::future::join_all(it).await
}
