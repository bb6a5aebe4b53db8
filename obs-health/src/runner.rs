//! The registry and runner: [`Health`] (built with [`HealthBuilder`]) runs the checks of a
//! probe concurrently, enforces timeouts, contains panics, shares in-flight runs, caches,
//! applies hysteresis and aggregates.
//!
//! ```
//! use std::time::Duration;
//! use obs_health::{check_fn, CheckResult, Health, Probe, Probes, Registration, Status};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let health = Health::builder()
//!     .register(Registration::new("database", check_fn(|| async { CheckResult::healthy() })))
//!     .register(
//!         Registration::new("search", check_fn(|| async { Err::<(), _>("connection refused") }))
//!             .optional()
//!             .timeout(Duration::from_millis(300)),
//!     )
//!     .register(
//!         Registration::new("event_loop", check_fn(|| async { true })).probes(Probes::LIVE),
//!     )
//!     .build()
//!     .unwrap();
//!
//! // The optional "search" is down: degraded, not unhealthy.
//! let ready = health.probe(Probe::Ready).await;
//! assert_eq!(ready.status, Status::Degraded);
//! assert_eq!(ready.checks["search"].status, Status::Unhealthy);
//! // Liveness runs only checks registered for it, never the dependencies.
//! let live = health.probe(Probe::Live).await;
//! assert_eq!(live.checks.keys().collect::<Vec<_>>(), ["event_loop"]);
//! # }
//! ```
//!
//! # How a probe runs
//! 1. The probe's checks are polled concurrently *inside the probe's future* (`join_all`, no
//!    `tokio::spawn`): the aggregate takes as long as the slowest check, and dropping the probe
//!    (e.g. the HTTP client went away) drops every check future with it.
//! 2. Each run is wrapped in `tokio::time::timeout` and `catch_unwind`: a check that hangs is
//!    dropped at its timeout and reported unhealthy; a check that panics is reported unhealthy
//!    with the panic message.
//! 3. Single-flight: each check has an async lock. A caller that finds a run in flight waits for
//!    it and uses its result instead of starting another, so N concurrent probes cause one
//!    execution. Results younger than the cache TTL are reused without locking.
//! 4. Hysteresis turns the raw result into the reported status; transitions are logged once and
//!    passed to the [`HealthObserver`]s.
//! 5. Aggregate: worst status wins; optional checks count as at most degraded. The startup probe
//!    latches its first passing (healthy or degraded) report and never runs checks again.

use crate::error::HealthError;
use crate::observer::{CheckEvent, HealthObserver};
use crate::registration::{Probe, Registration};
use crate::report::{CheckReport, Report};
use crate::status::{CheckResult, Status};
use crate::system::{SystemInfo, SystemStatic};
use crate::HealthCheck;
use futures_util::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Builder for [`Health`]; see [`Health::builder`].
#[derive(Default)]
pub struct HealthBuilder {
    registrations: Vec<Registration>,
    observers: Vec<Arc<dyn HealthObserver>>,
    service: Option<String>,
    version: Option<String>,
    environment: Option<String>,
}

impl fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthBuilder")
            .field("registrations", &self.registrations)
            .field("observers", &self.observers.len())
            .field("service", &self.service)
            .field("version", &self.version)
            .field("environment", &self.environment)
            .finish()
    }
}

impl HealthBuilder {
    /// Adds a registration.
    #[must_use]
    pub fn register(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// Shorthand for `register(Registration::new(name, check))` (a required dependency check
    /// with the defaults).
    #[must_use]
    pub fn check(self, name: impl Into<String>, check: impl HealthCheck + 'static) -> Self {
        self.register(Registration::new(name, check))
    }

    /// Adds an observer (metrics exporter, alerting hook).
    #[must_use]
    pub fn observer(mut self, observer: impl HealthObserver) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Service name and version for the `system` block.
    #[must_use]
    pub fn service(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self.version = Some(version.into());
        self
    }

    /// Deployment environment for the `system` block (e.g. `production`).
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Validates the registrations and builds the registry.
    ///
    /// # Errors
    /// [`HealthError`] for duplicate or empty names, zero timeouts, zero hysteresis thresholds,
    /// zero background intervals, or a check in no probe.
    pub fn build(self) -> Result<Health, HealthError> {
        let mut seen = HashSet::new();
        for r in &self.registrations {
            if r.name.is_empty() {
                return Err(HealthError::EmptyName);
            }
            if !seen.insert(r.name.as_str()) {
                return Err(HealthError::DuplicateName(r.name.clone()));
            }
            if r.timeout.is_zero() {
                return Err(HealthError::ZeroTimeout(r.name.clone()));
            }
            if r.fail_after == 0 || r.recover_after == 0 {
                return Err(HealthError::ZeroHysteresis(r.name.clone()));
            }
            if r.background.is_some_and(|d| d.is_zero()) {
                return Err(HealthError::ZeroInterval(r.name.clone()));
            }
            if r.probes.is_empty() {
                return Err(HealthError::NoProbe(r.name.clone()));
            }
        }
        let mut by_probe: [Vec<usize>; 4] = Default::default();
        for (i, r) in self.registrations.iter().enumerate() {
            for p in Probe::ALL {
                if r.probes.contains(p.flag()) {
                    by_probe[p.index()].push(i);
                }
            }
        }
        let cells = self.registrations.into_iter().map(Cell::new).collect();
        Ok(Health {
            inner: Arc::new(Inner {
                cells,
                by_probe,
                observers: self.observers,
                startup_latch: OnceLock::new(),
                system: SystemStatic {
                    started: std::time::Instant::now(),
                    service: self.service,
                    version: self.version,
                    environment: self.environment,
                },
            }),
        })
    }
}

/// The health registry and runner. Cheap to clone (an `Arc`); share one per process.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field(
                "checks",
                &self
                    .inner
                    .cells
                    .iter()
                    .map(|c| &c.reg.name)
                    .collect::<Vec<_>>(),
            )
            .field("startup_latched", &self.inner.startup_latch.get().is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    cells: Vec<Cell>,
    by_probe: [Vec<usize>; 4],
    observers: Vec<Arc<dyn HealthObserver>>,
    startup_latch: OnceLock<Report>,
    system: SystemStatic,
}

struct Cell {
    reg: Registration,
    /// Held while a run is in flight (single-flight).
    run_lock: tokio::sync::Mutex<()>,
    state: parking_lot::Mutex<CellState>,
    /// Number of live background tasks refreshing this cell.
    background_tasks: AtomicUsize,
}

#[derive(Default)]
struct CellState {
    /// Incremented after each completed run.
    generation: u64,
    last: Option<Snapshot>,
    reported: Option<Status>,
    worse_streak: u32,
    better_streak: u32,
}

#[derive(Clone)]
struct Snapshot {
    result: CheckResult,
    reported: Status,
    latency: Duration,
    finished: Instant,
    finished_wall: SystemTime,
}

impl Cell {
    fn new(reg: Registration) -> Self {
        Cell {
            reg,
            run_lock: tokio::sync::Mutex::new(()),
            state: parking_lot::Mutex::new(CellState::default()),
            background_tasks: AtomicUsize::new(0),
        }
    }

    fn is_fresh(&self, snap: &Snapshot) -> bool {
        let age = snap.finished.elapsed();
        if let Some(every) = self.reg.background {
            // Fed by a live background task and not stale (a stalled or stopped task must not
            // leave probes serving an old snapshot forever).
            if self.background_tasks.load(Ordering::Acquire) > 0
                && age <= every.saturating_mul(2).saturating_add(self.reg.timeout)
            {
                return true;
            }
        }
        !self.reg.cache_ttl.is_zero() && age < self.reg.cache_ttl
    }

    fn report(&self, snap: &Snapshot) -> CheckReport {
        CheckReport {
            status: snap.reported,
            required: self.reg.required,
            latency: snap.latency,
            observed: (snap.result.status != snap.reported).then_some(snap.result.status),
            message: snap.result.message.clone(),
            details: snap.result.details.clone(),
            checked_at: snap.finished_wall,
        }
    }
}

/// Outcome of executing a check future once.
struct Run {
    result: CheckResult,
    latency: Duration,
    timed_out: bool,
    panicked: bool,
}

async fn execute(check: &dyn HealthCheck, timeout: Duration) -> Run {
    let start = Instant::now();
    // The call to `check()` happens inside the future so a panic while building it is caught too.
    let fut = AssertUnwindSafe(async { check.check().await }).catch_unwind();
    let (result, timed_out, panicked) = match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(result)) => (result, false, false),
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            (
                CheckResult::unhealthy(format!("check panicked: {msg}")),
                false,
                true,
            )
        }
        Err(_elapsed) => (
            CheckResult::unhealthy(format!("check timed out after {} ms", timeout.as_millis()))
                .with_detail("timeout_ms", timeout.as_millis() as u64),
            true,
            false,
        ),
    };
    Run {
        result,
        latency: start.elapsed(),
        timed_out,
        panicked,
    }
}

impl Inner {
    /// The current snapshot of cell `i`: cached if fresh (and `!force`), else shared from an
    /// in-flight run, else from a new run.
    async fn snapshot(&self, i: usize, force: bool) -> Snapshot {
        let cell = &self.cells[i];
        let seen = {
            let st = cell.state.lock();
            if !force {
                if let Some(snap) = st.last.as_ref().filter(|s| cell.is_fresh(s)) {
                    return snap.clone();
                }
            }
            st.generation
        };
        let _flight = cell.run_lock.lock().await;
        {
            let st = cell.state.lock();
            if st.generation != seen {
                // A run finished while we waited: share its result.
                if let Some(snap) = &st.last {
                    return snap.clone();
                }
            }
        }
        let run = execute(&*cell.reg.check, cell.reg.timeout).await;
        let (snap, transition) = {
            let mut st = cell.state.lock();
            let observed = run.result.status;
            let previous = st.reported;
            let reported = match previous {
                None => observed,
                Some(cur) if observed == cur => {
                    st.worse_streak = 0;
                    st.better_streak = 0;
                    cur
                }
                Some(cur) if observed > cur => {
                    st.worse_streak += 1;
                    st.better_streak = 0;
                    if st.worse_streak >= cell.reg.fail_after {
                        observed
                    } else {
                        cur
                    }
                }
                Some(cur) => {
                    st.better_streak += 1;
                    st.worse_streak = 0;
                    if st.better_streak >= cell.reg.recover_after {
                        observed
                    } else {
                        cur
                    }
                }
            };
            if Some(reported) != previous {
                st.worse_streak = 0;
                st.better_streak = 0;
            }
            st.reported = Some(reported);
            let snap = Snapshot {
                result: run.result,
                reported,
                latency: run.latency,
                finished: Instant::now(),
                finished_wall: SystemTime::now(),
            };
            st.last = Some(snap.clone());
            st.generation += 1;
            let transition = (Some(reported) != previous).then_some((previous, reported));
            (snap, transition)
        };
        let name = cell.reg.name.as_str();
        if let Some((from, to)) = transition {
            log_transition(name, from, to, &snap.result);
            for o in &self.observers {
                o.on_transition(name, from, to);
            }
        }
        let event = CheckEvent {
            name,
            status: snap.reported,
            result: &snap.result,
            latency: snap.latency,
            required: cell.reg.required,
            timed_out: run.timed_out,
            panicked: run.panicked,
        };
        for o in &self.observers {
            o.on_check(&event);
        }
        snap
    }
}

fn log_transition(name: &str, from: Option<Status>, to: Status, result: &CheckResult) {
    let message = result.message.as_deref().unwrap_or("");
    match from {
        None if to == Status::Healthy => {
            tracing::debug!(check = name, status = %to, "health check initial status");
        }
        None => {
            tracing::warn!(check = name, status = %to, message, "health check initial status");
        }
        Some(from) if to > from => {
            tracing::warn!(check = name, from = %from, to = %to, message, "health check status changed");
        }
        Some(from) => {
            tracing::info!(check = name, from = %from, to = %to, "health check recovered");
        }
    }
}

impl Health {
    /// Starts a builder.
    pub fn builder() -> HealthBuilder {
        HealthBuilder::default()
    }

    /// Runs (or reads from cache / in-flight runs / background snapshots) the checks of `probe`
    /// and aggregates them.
    pub async fn probe(&self, probe: Probe) -> Report {
        if probe == Probe::Startup {
            if let Some(latched) = self.inner.startup_latch.get() {
                // The passing report, re-stamped: no check runs once startup has passed.
                let mut report = latched.clone();
                report.timestamp = SystemTime::now();
                report.latency = Duration::ZERO;
                report.system = Some(self.inner.system.snapshot());
                return report;
            }
        }
        let start = Instant::now();
        let indices = &self.inner.by_probe[probe.index()];
        let snaps =
            futures_util::future::join_all(indices.iter().map(|&i| self.inner.snapshot(i, false)))
                .await;
        let mut status = Status::Healthy;
        let mut checks = BTreeMap::new();
        for (&i, snap) in indices.iter().zip(&snaps) {
            let cell = &self.inner.cells[i];
            let contribution = if cell.reg.required {
                snap.reported
            } else {
                snap.reported.min(Status::Degraded)
            };
            status = status.worst(contribution);
            checks.insert(cell.reg.name.clone(), cell.report(snap));
        }
        let report = Report {
            status,
            probe: Some(probe),
            timestamp: SystemTime::now(),
            latency: start.elapsed(),
            checks,
            system: Some(self.inner.system.snapshot()),
        };
        if probe == Probe::Startup
            && status.is_passing()
            && self.inner.startup_latch.set(report.clone()).is_ok()
        {
            tracing::info!(status = %status, "startup probe passed; latched");
        }
        report
    }

    /// Runs (or reads from cache) one check by name, as the probes would. `None` if no check has
    /// that name.
    pub async fn check(&self, name: &str) -> Option<CheckReport> {
        let i = self.inner.cells.iter().position(|c| c.reg.name == name)?;
        let snap = self.inner.snapshot(i, false).await;
        Some(self.inner.cells[i].report(&snap))
    }

    /// One check as a whole report (status = that check's status), for per-dependency
    /// endpoints like `/health/checks/db`. `None` if no check has that name.
    pub async fn check_report(&self, name: &str) -> Option<Report> {
        let start = Instant::now();
        let report = self.check(name).await?;
        Some(Report {
            status: report.status,
            probe: None,
            timestamp: SystemTime::now(),
            latency: start.elapsed(),
            checks: BTreeMap::from([(name.to_owned(), report)]),
            system: Some(self.inner.system.snapshot()),
        })
    }

    /// Names of the registered checks, in registration order.
    pub fn check_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.cells.iter().map(|c| c.reg.name.as_str())
    }

    /// Whether the startup probe has passed (and is latched).
    pub fn startup_passed(&self) -> bool {
        self.inner.startup_latch.get().is_some()
    }

    /// The current `system` block.
    pub fn system_info(&self) -> SystemInfo {
        self.inner.system.snapshot()
    }

    /// Spawns one task per check registered with
    /// [`background`](Registration::background), running it every interval (the first run
    /// immediately). Needs a Tokio runtime.
    ///
    /// The tasks stop when the returned handle is dropped (call
    /// [`BackgroundTasks::detach`] to keep them for the life of the registry) or when every
    /// clone of this `Health` is dropped.
    #[must_use = "dropping the handle stops the background checks; call .detach() to keep them"]
    pub fn spawn_background(&self) -> BackgroundTasks {
        let mut handles = Vec::new();
        for (i, cell) in self.inner.cells.iter().enumerate() {
            let Some(every) = cell.reg.background else {
                continue;
            };
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            cell.background_tasks.fetch_add(1, Ordering::AcqRel);
            // Decrements the cell's task count however the task ends (abort included, even
            // before its first poll: the future owns it).
            let registered = TaskCount(weak.clone(), i);
            handles.push(tokio::spawn(async move {
                let _registered = registered;
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    inner.snapshot(i, true).await;
                }
            }));
        }
        BackgroundTasks { handles }
    }
}

struct TaskCount(Weak<Inner>, usize);

impl Drop for TaskCount {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.cells[self.1]
                .background_tasks
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Handle to the background refresh tasks from [`Health::spawn_background`]. Dropping it
/// aborts them.
#[derive(Debug)]
pub struct BackgroundTasks {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl BackgroundTasks {
    /// Number of background tasks.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether no check runs in the background.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Lets the tasks run until every clone of the `Health` is dropped.
    pub fn detach(mut self) {
        self.handles.clear();
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}
