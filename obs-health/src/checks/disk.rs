//! Disk check: free space of the filesystem holding a path (`statvfs` through `rustix`).

use crate::{CheckFuture, CheckResult, HealthCheck, Status};
use std::path::PathBuf;

/// Free-space check (feature `disk`, unix).
///
/// Degraded below `degraded_below_percent` free (default 10 %) or `degraded_below_bytes`,
/// unhealthy below `unhealthy_below_percent` (default 5 %) or `unhealthy_below_bytes`. "Free"
/// is the space available to unprivileged users (`f_bavail`). The `statvfs` call is made inline
/// (it is fast on local filesystems; a hung network mount is cut off by the runner's timeout).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use obs_health::{checks::DiskCheck, HealthCheck};
/// let result = DiskCheck::new("/").check().await;
/// assert!(result.details.contains_key("free_bytes"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DiskCheck {
    path: PathBuf,
    degraded_percent: f64,
    unhealthy_percent: f64,
    degraded_bytes: u64,
    unhealthy_bytes: u64,
}

impl DiskCheck {
    /// Checks the filesystem that holds `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DiskCheck {
            path: path.into(),
            degraded_percent: 10.0,
            unhealthy_percent: 5.0,
            degraded_bytes: 0,
            unhealthy_bytes: 0,
        }
    }

    /// Degraded when less than this percentage of the filesystem is free.
    #[must_use]
    pub fn degraded_below_percent(mut self, percent: f64) -> Self {
        self.degraded_percent = percent;
        self
    }

    /// Unhealthy when less than this percentage of the filesystem is free.
    #[must_use]
    pub fn unhealthy_below_percent(mut self, percent: f64) -> Self {
        self.unhealthy_percent = percent;
        self
    }

    /// Degraded when fewer than this many bytes are free.
    #[must_use]
    pub fn degraded_below_bytes(mut self, bytes: u64) -> Self {
        self.degraded_bytes = bytes;
        self
    }

    /// Unhealthy when fewer than this many bytes are free.
    #[must_use]
    pub fn unhealthy_below_bytes(mut self, bytes: u64) -> Self {
        self.unhealthy_bytes = bytes;
        self
    }

    fn evaluate(&self, free: u64, total: u64) -> CheckResult {
        let free_percent = if total == 0 {
            100.0
        } else {
            free as f64 * 100.0 / total as f64
        };
        let status = if free_percent < self.unhealthy_percent || free < self.unhealthy_bytes {
            Status::Unhealthy
        } else if free_percent < self.degraded_percent || free < self.degraded_bytes {
            Status::Degraded
        } else {
            Status::Healthy
        };
        let mut r = CheckResult::new(status);
        if status != Status::Healthy {
            r = r.with_message(format!(
                "{:.1} % free ({} MiB) on {}",
                free_percent,
                free / (1024 * 1024),
                self.path.display()
            ));
        }
        r.with_detail("path", self.path.display().to_string())
            .with_detail("free_bytes", free)
            .with_detail("total_bytes", total)
            .with_detail("free_gb", round2(free as f64 / 1e9))
            .with_detail("free_percent", round2(free_percent))
            .with_detail("used_percent", round2(100.0 - free_percent))
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl HealthCheck for DiskCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            match rustix::fs::statvfs(&self.path) {
                Ok(st) => {
                    let frsize = st.f_frsize.max(1);
                    self.evaluate(
                        st.f_bavail.saturating_mul(frsize),
                        st.f_blocks.saturating_mul(frsize),
                    )
                }
                Err(e) => {
                    CheckResult::unhealthy(format!("statvfs({}) failed: {e}", self.path.display()))
                        .with_detail("path", self.path.display().to_string())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let c = DiskCheck::new("/data")
            .degraded_below_percent(20.0)
            .unhealthy_below_percent(5.0)
            .unhealthy_below_bytes(1000);
        assert_eq!(c.evaluate(50_000, 100_000).status, Status::Healthy);
        assert_eq!(c.evaluate(10_000, 100_000).status, Status::Degraded);
        assert_eq!(c.evaluate(4_000, 100_000).status, Status::Unhealthy);
        // absolute floor wins even when the percentage is fine
        assert_eq!(c.evaluate(900, 1_000).status, Status::Unhealthy);
        let r = c.evaluate(10_000, 100_000);
        assert_eq!(r.details["used_percent"], 90.0);
        assert!(r.message.unwrap().contains("/data"));
    }

    #[tokio::test]
    async fn missing_path_is_unhealthy() {
        let r = DiskCheck::new("/definitely/not/here").check().await;
        assert_eq!(r.status, Status::Unhealthy);
        assert!(r.message.unwrap().contains("statvfs"));
    }
}
