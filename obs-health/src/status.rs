//! Check outcomes: [`Status`] (ordered, worst wins) and [`CheckResult`] (status + message + details).
//!
//! ```
//! use obs_health::{CheckResult, Status};
//!
//! let r = CheckResult::degraded("queue is backing up").with_detail("depth", 1200);
//! assert_eq!(r.status, Status::Degraded);
//! assert!(Status::Unhealthy > Status::Degraded && Status::Degraded > Status::Healthy);
//! assert_eq!(Status::Healthy.worst(Status::Degraded), Status::Degraded);
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// Free-form, JSON-serializable details attached to a check result (`"details"` in the report).
pub type Details = serde_json::Map<String, serde_json::Value>;

/// Health of one check or of an aggregate. Ordered `Healthy < Degraded < Unhealthy`: the worst wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Working normally.
    Healthy,
    /// Working, but impaired (slow, nearly full, an optional dependency is down). Still serves traffic.
    Degraded,
    /// Not working. A required unhealthy check makes the aggregate unhealthy (HTTP 503 by default).
    Unhealthy,
}

impl Status {
    /// The lowercase name used in JSON: `healthy`, `degraded` or `unhealthy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// The worse of the two.
    #[must_use]
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }

    /// `true` for `Healthy` and `Degraded` (the instance can serve traffic).
    pub const fn is_passing(self) -> bool {
        !matches!(self, Status::Unhealthy)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found: a status, an optional human-readable message (the error when
/// not healthy) and a details map.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The check's verdict.
    pub status: Status,
    /// Why (for degraded/unhealthy this is reported as `"error"`).
    pub message: Option<String>,
    /// Extra data (latencies, pool sizes, free space, ...), shown as `"details"`.
    pub details: Details,
}

impl CheckResult {
    /// A result with `status` and nothing else.
    pub fn new(status: Status) -> Self {
        CheckResult {
            status,
            message: None,
            details: Details::new(),
        }
    }

    /// `Healthy`, no message.
    pub fn healthy() -> Self {
        Self::new(Status::Healthy)
    }

    /// `Degraded` with a message saying why.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self::new(Status::Degraded).with_message(message)
    }

    /// `Unhealthy` with a message saying why.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self::new(Status::Unhealthy).with_message(message)
    }

    /// Sets the message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds one detail.
    #[must_use]
    pub fn with_detail(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Adds every entry of `details`.
    #[must_use]
    pub fn with_details(mut self, details: Details) -> Self {
        self.details.extend(details);
        self
    }
}

/// Conversion of a check's output into a [`CheckResult`], so closures passed to
/// [`check_fn`](crate::check_fn) can return whatever is natural.
///
/// | type | becomes |
/// |---|---|
/// | `CheckResult` | itself |
/// | `Status` | that status, no message |
/// | `bool` | `true` → healthy, `false` → unhealthy |
/// | `()` | healthy |
/// | `Result<T, E>` (`T: IntoCheckResult`, `E: Display`) | `Ok(t)` → `t`, `Err(e)` → unhealthy with `e` as message |
pub trait IntoCheckResult {
    /// Performs the conversion.
    fn into_check_result(self) -> CheckResult;
}

impl IntoCheckResult for CheckResult {
    fn into_check_result(self) -> CheckResult {
        self
    }
}

impl IntoCheckResult for Status {
    fn into_check_result(self) -> CheckResult {
        CheckResult::new(self)
    }
}

impl IntoCheckResult for bool {
    fn into_check_result(self) -> CheckResult {
        if self {
            CheckResult::healthy()
        } else {
            CheckResult::new(Status::Unhealthy)
        }
    }
}

impl IntoCheckResult for () {
    fn into_check_result(self) -> CheckResult {
        CheckResult::healthy()
    }
}

impl<T: IntoCheckResult, E: fmt::Display> IntoCheckResult for Result<T, E> {
    fn into_check_result(self) -> CheckResult {
        match self {
            Ok(t) => t.into_check_result(),
            Err(e) => CheckResult::unhealthy(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_and_json_names() {
        let mut all = [Status::Unhealthy, Status::Healthy, Status::Degraded];
        all.sort();
        assert_eq!(all, [Status::Healthy, Status::Degraded, Status::Unhealthy]);
        assert_eq!(
            serde_json::to_string(&Status::Degraded).unwrap(),
            "\"degraded\""
        );
        assert!(!Status::Unhealthy.is_passing());
        assert!(Status::Degraded.is_passing());
    }

    #[test]
    fn conversions() {
        let err: Result<(), &str> = Err("boom");
        let r = err.into_check_result();
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.message.as_deref(), Some("boom"));
        assert_eq!(
            Ok::<_, String>(Status::Degraded).into_check_result().status,
            Status::Degraded
        );
        assert_eq!(false.into_check_result().status, Status::Unhealthy);
        assert_eq!(().into_check_result().status, Status::Healthy);
    }
}
