//! Configuration errors of [`HealthBuilder::build`](crate::HealthBuilder::build).
//!
//! Being unhealthy is a value ([`Status`](crate::Status)), never an error; these only report
//! invalid registrations.
//!
//! ```
//! use obs_health::{check_fn, Health, HealthError};
//!
//! let err = Health::builder()
//!     .check("db", check_fn(|| async { true }))
//!     .check("db", check_fn(|| async { true }))
//!     .build()
//!     .unwrap_err();
//! assert!(matches!(err, HealthError::DuplicateName(name) if name == "db"));
//! ```

/// An invalid health registry configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthError {
    /// Two checks were registered under the same name.
    #[error("health check {0:?} is registered twice")]
    DuplicateName(String),
    /// A check name is empty.
    #[error("health check names must not be empty")]
    EmptyName,
    /// A check's timeout is zero.
    #[error("health check {0:?} has a zero timeout")]
    ZeroTimeout(String),
    /// A hysteresis threshold is zero (use 1 for "no hysteresis").
    #[error("health check {0:?} has a zero hysteresis threshold (use 1 to disable hysteresis)")]
    ZeroHysteresis(String),
    /// A background interval is zero.
    #[error("health check {0:?} has a zero background interval")]
    ZeroInterval(String),
    /// A check is registered for no probe at all.
    #[error("health check {0:?} belongs to no probe")]
    NoProbe(String),
}
