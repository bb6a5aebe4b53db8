//! Errors of obs-telemetry. Recording never returns one: [`Recorder::record`](crate::Recorder::record)
//! reports what happened as a [`Recorded`](crate::Recorded) value.
//!
//! ```
//! use obs_telemetry::{Error, MetricName, SubjectHasher};
//!
//! assert!(matches!(SubjectHasher::new(b"short", 1), Err(Error::WeakSecret { len: 5, .. })));
//! let err = MetricName::custom("Bad Name").unwrap_err();
//! assert!(err.to_string().starts_with("invalid metric name \"Bad Name\""));
//! ```

/// What can go wrong building the recorder, its sinks, or querying analytics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The subject-hashing secret is shorter than the minimum.
    #[error("telemetry subject secret is {len} bytes; at least {min} are required")]
    WeakSecret {
        /// Length given.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// A metric name is not `snake_case` ASCII of at most 64 bytes.
    #[error(
        "invalid metric name {0:?}: use 1-64 characters of [a-z0-9_.], starting with a letter"
    )]
    InvalidMetricName(String),
    /// A setting is out of range.
    #[error("invalid telemetry setting: {0}")]
    InvalidConfig(&'static str),
    /// The recorder was built outside a Tokio runtime.
    #[error("the telemetry recorder must be built inside a Tokio runtime")]
    NoRuntime,
    /// A database error (connecting, migrating or querying).
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
    #[error("telemetry database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A shipped migration failed.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
    #[error("telemetry migration {version} ({description}) failed: {source}")]
    Migration {
        /// Migration version.
        version: i64,
        /// Migration description.
        description: &'static str,
        /// The database error.
        source: sqlx::Error,
    },
    /// The HTTP client could not be built.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[error("telemetry HTTP client error: {0}")]
    Http(#[from] reqwest::Error),
}
