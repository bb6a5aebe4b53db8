//! How a check is registered: probe membership, required/optional, timeout, cache TTL,
//! hysteresis and background refresh.
//!
//! ```
//! use std::time::Duration;
//! use obs_health::{check_fn, Probes, Registration};
//!
//! let reg = Registration::new("qdrant", check_fn(|| async { true }))
//!     .optional() // failure degrades, never fails, the aggregate
//!     .probes(Probes::READY | Probes::DEEP)
//!     .timeout(Duration::from_millis(500))
//!     .cache_ttl(Duration::from_secs(5))
//!     .hysteresis(3, 2); // unhealthy after 3 failures in a row, healthy again after 2 successes
//! assert!(!reg.is_required());
//! ```

use crate::check::HealthCheck;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

bitflags::bitflags! {
    /// The set of probes a check belongs to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Probes: u8 {
        /// Liveness: "is the process itself working?". Must never touch dependencies (a database
        /// outage must not make Kubernetes restart every pod). Only checks registered with `LIVE`
        /// explicitly run here.
        const LIVE = 1;
        /// Readiness: "can this instance serve traffic now?" (dependencies).
        const READY = 1 << 1;
        /// Startup: "has the instance finished starting?"; latches once passed.
        const STARTUP = 1 << 2;
        /// Deep: every dependency with full details, for dashboards and humans.
        const DEEP = 1 << 3;
    }
}

impl Probes {
    /// The default for a registration: `READY | STARTUP | DEEP` — a dependency check, not `LIVE`.
    pub const DEPENDENCY: Probes = Probes::READY.union(Probes::STARTUP).union(Probes::DEEP);
}

/// One probe (endpoint) of the four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// `/health/live`.
    Live,
    /// `/health/ready`.
    Ready,
    /// `/health/startup`.
    Startup,
    /// `/health/deep`.
    Deep,
}

impl Probe {
    /// All four, in order.
    pub const ALL: [Probe; 4] = [Probe::Live, Probe::Ready, Probe::Startup, Probe::Deep];

    /// The flag of this probe in [`Probes`].
    pub const fn flag(self) -> Probes {
        match self {
            Probe::Live => Probes::LIVE,
            Probe::Ready => Probes::READY,
            Probe::Startup => Probes::STARTUP,
            Probe::Deep => Probes::DEEP,
        }
    }

    /// `live`, `ready`, `startup` or `deep`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Probe::Live => "live",
            Probe::Ready => "ready",
            Probe::Startup => "startup",
            Probe::Deep => "deep",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Probe::Live => 0,
            Probe::Ready => 1,
            Probe::Startup => 2,
            Probe::Deep => 3,
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default per-run timeout: 2 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A check plus how to run it. Build with [`Registration::new`] and the builder methods, then
/// hand it to [`HealthBuilder::register`](crate::HealthBuilder::register).
#[derive(Clone)]
pub struct Registration {
    pub(crate) name: String,
    pub(crate) check: Arc<dyn HealthCheck>,
    pub(crate) probes: Probes,
    pub(crate) required: bool,
    pub(crate) timeout: Duration,
    pub(crate) cache_ttl: Duration,
    pub(crate) fail_after: u32,
    pub(crate) recover_after: u32,
    pub(crate) background: Option<Duration>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("probes", &self.probes)
            .field("required", &self.required)
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("fail_after", &self.fail_after)
            .field("recover_after", &self.recover_after)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// A required dependency check named `name` with the defaults: probes
    /// [`Probes::DEPENDENCY`], timeout [`DEFAULT_TIMEOUT`], no cache, no hysteresis, no
    /// background refresh.
    pub fn new(name: impl Into<String>, check: impl HealthCheck + 'static) -> Self {
        Self::from_arc(name, Arc::new(check))
    }

    /// Like [`new`](Self::new) with an already shared check.
    pub fn from_arc(name: impl Into<String>, check: Arc<dyn HealthCheck>) -> Self {
        Registration {
            name: name.into(),
            check,
            probes: Probes::DEPENDENCY,
            required: true,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: Duration::ZERO,
            fail_after: 1,
            recover_after: 1,
            background: None,
        }
    }

    /// The probes this check runs in (any subset). A check in [`Probes::LIVE`] must not touch
    /// external dependencies.
    #[must_use]
    pub fn probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// Required (the default): an unhealthy result makes the aggregate unhealthy.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Optional: an unhealthy result makes the aggregate at most degraded.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Per-run timeout enforced by the runner (default 2 s). On expiry the check's future is
    /// dropped and the run reports unhealthy.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reuse a result for this long before running the check again (default: zero, every
    /// probe runs it — concurrent probes still share one in-flight run).
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Hysteresis: the reported status only gets worse after `fail_after` consecutive worse
    /// results, and only gets better after `recover_after` consecutive better results. Both
    /// default to 1 (report every result as is); values of 0 are rejected by
    /// [`HealthBuilder::build`](crate::HealthBuilder::build). The very first result is reported
    /// as is.
    #[must_use]
    pub fn hysteresis(mut self, fail_after: u32, recover_after: u32) -> Self {
        self.fail_after = fail_after;
        self.recover_after = recover_after;
        self
    }

    /// Run the check in the background every `interval` (once
    /// [`Health::spawn_background`](crate::Health::spawn_background) is called); probes then
    /// read the last snapshot and never run the check themselves — except when no snapshot
    /// exists yet, when no background task is running (never spawned, handle dropped), or when
    /// the last snapshot is older than `2 × interval + timeout` (task stalled): then probes run
    /// the check as usual, with the registration's cache TTL.
    #[must_use]
    pub fn background(mut self, interval: Duration) -> Self {
        self.background = Some(interval);
        self
    }

    /// The check's name (the key under `"checks"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the check is required.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The probes the check belongs to.
    pub fn probe_set(&self) -> Probes {
        self.probes
    }
}
