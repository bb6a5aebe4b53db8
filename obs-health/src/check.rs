//! The [`HealthCheck`] trait library authors implement, and the [`check_fn`] closure adapter.
//!
//! The trait is object-safe (the registry stores `Arc<dyn HealthCheck>`) and async without the
//! `async-trait` crate: `check` returns a boxed future ([`CheckFuture`]). Write the body as
//! `Box::pin(async move { ... })`.
//!
//! ```
//! use obs_health::{check_fn, CheckFuture, CheckResult, HealthCheck};
//!
//! struct AlwaysUp;
//!
//! impl HealthCheck for AlwaysUp {
//!     fn check(&self) -> CheckFuture<'_> {
//!         Box::pin(async { CheckResult::healthy().with_detail("answer", 42) })
//!     }
//! }
//!
//! // Or from an async closure returning anything `IntoCheckResult` (here a `Result`):
//! let ping = check_fn(|| async { Ok::<_, std::io::Error>(()) });
//! # let _ = (AlwaysUp, ping);
//! ```

use crate::status::{CheckResult, IntoCheckResult};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future a [`HealthCheck`] returns: boxed, `Send`, borrowing the check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// One health check: "is this dependency / subsystem working?".
///
/// Implementations should:
/// - return quickly and report problems as values ([`CheckResult::unhealthy`],
///   [`CheckResult::degraded`]) rather than panicking — although a panic is contained by the
///   runner and reported as unhealthy;
/// - not enforce their own overall timeout: the runner wraps every run in
///   `tokio::time::timeout` and *drops the future* when it expires, so anything the future owns
///   (connections, buffers) is released. Work the check hands to `tokio::spawn` is *not*
///   cancelled by that drop — avoid spawning, or abort your own tasks in a `Drop` guard;
/// - be cheap enough to run at probe frequency, or be registered with a cache TTL / background
///   interval.
///
/// See the [guide](crate::guide) for a complete example.
pub trait HealthCheck: Send + Sync {
    /// Runs the check once.
    fn check(&self) -> CheckFuture<'_>;
}

impl<T: HealthCheck + ?Sized> HealthCheck for Arc<T> {
    fn check(&self) -> CheckFuture<'_> {
        (**self).check()
    }
}

impl<T: HealthCheck + ?Sized> HealthCheck for Box<T> {
    fn check(&self) -> CheckFuture<'_> {
        (**self).check()
    }
}

/// A [`HealthCheck`] made from an async closure; see [`check_fn`].
#[derive(Clone)]
pub struct FnCheck<F> {
    f: F,
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").finish_non_exhaustive()
    }
}

/// Makes a [`HealthCheck`] from a closure returning a future whose output is
/// [`IntoCheckResult`] (`CheckResult`, `Status`, `bool`, `()`, or a `Result` of those).
///
/// ```
/// use obs_health::{check_fn, CheckResult, HealthCheck, Status};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let depth = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(7));
/// let check = check_fn(move || {
///     let depth = depth.clone();
///     async move {
///         let d = depth.load(std::sync::atomic::Ordering::Relaxed);
///         if d > 100 { CheckResult::degraded("backlog") } else { CheckResult::healthy() }
///             .with_detail("depth", d)
///     }
/// });
/// assert_eq!(check.check().await.status, Status::Healthy);
/// # }
/// ```
pub fn check_fn<F, Fut, R>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoCheckResult,
{
    FnCheck { f }
}

impl<F, Fut, R> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoCheckResult,
{
    fn check(&self) -> CheckFuture<'_> {
        let fut = (self.f)();
        Box::pin(async move { fut.await.into_check_result() })
    }
}
