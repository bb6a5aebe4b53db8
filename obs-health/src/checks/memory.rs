//! Memory check: process RSS against the memory limit (cgroup v2 `memory.max`, cgroup v1
//! `memory.limit_in_bytes`, else `MemTotal` from `/proc/meminfo`). Linux only; elsewhere it
//! reports healthy with `"supported": false`.

use crate::{CheckFuture, CheckResult, HealthCheck, Status};
use std::path::PathBuf;

/// Process memory check (feature `memory`).
///
/// Reads `/proc/self/status` (`VmRSS`), `/sys/fs/cgroup/memory.max` (or the cgroup v1 limit) and
/// `/proc/meminfo`. Degraded when RSS exceeds `degraded_above_percent` of the limit (default
/// 85 %), unhealthy above `unhealthy_above_percent` (default 95 %). Details: `process.rss_mb`,
/// `limit_mb`, `limit_source`, `used_percent`, and `system.{total_mb, available_mb, used_percent}`.
///
/// Memory is a *liveness*-style signal about this process (no dependency), so it is reasonable
/// to register it for [`Probes::LIVE`](crate::Probes::LIVE) as well as `DEEP`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use obs_health::{checks::MemoryCheck, HealthCheck, Status};
/// let result = MemoryCheck::new().check().await;
/// # #[cfg(target_os = "linux")]
/// assert!(result.details["process"]["rss_mb"].as_f64().unwrap() > 0.0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    degraded_percent: f64,
    unhealthy_percent: f64,
    root: PathBuf,
}

impl Default for MemoryCheck {
    fn default() -> Self {
        Self::new()
    }
}

const MB: f64 = 1024.0 * 1024.0;

impl MemoryCheck {
    /// Defaults: degraded above 85 %, unhealthy above 95 % of the limit.
    pub fn new() -> Self {
        MemoryCheck {
            degraded_percent: 85.0,
            unhealthy_percent: 95.0,
            root: PathBuf::from("/"),
        }
    }

    /// Degraded when RSS is above this percentage of the limit.
    #[must_use]
    pub fn degraded_above_percent(mut self, percent: f64) -> Self {
        self.degraded_percent = percent;
        self
    }

    /// Unhealthy when RSS is above this percentage of the limit.
    #[must_use]
    pub fn unhealthy_above_percent(mut self, percent: f64) -> Self {
        self.unhealthy_percent = percent;
        self
    }

    /// Reads `proc/` and `sys/` under `root` instead of `/` (for tests and chroots).
    #[must_use]
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    fn measure(&self) -> CheckResult {
        let Some(rss) = self
            .read("proc/self/status")
            .and_then(|s| kb_field(&s, "VmRSS:"))
        else {
            return CheckResult::healthy()
                .with_message("process memory statistics are not available on this platform")
                .with_detail("supported", false);
        };
        let meminfo = self.read("proc/meminfo").unwrap_or_default();
        let total = kb_field(&meminfo, "MemTotal:");
        let available = kb_field(&meminfo, "MemAvailable:");
        let cgroup = self
            .read("sys/fs/cgroup/memory.max")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|v| (v, "cgroup"))
            .or_else(|| {
                self.read("sys/fs/cgroup/memory/memory.limit_in_bytes")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|v| (v, "cgroup_v1"))
            })
            // cgroup v1 reports "no limit" as a huge number; a limit above RAM is no limit.
            .filter(|(v, _)| total.is_none_or(|t| *v < t));
        let (limit, source) = match (cgroup, total) {
            (Some((v, src)), _) => (Some(v), src),
            (None, Some(t)) => (Some(t), "system"),
            (None, None) => (None, "none"),
        };

        let mut system = serde_json::Map::new();
        if let Some(t) = total {
            system.insert("total_mb".into(), round1(t as f64 / MB).into());
            if let Some(a) = available {
                system.insert("available_mb".into(), round1(a as f64 / MB).into());
                system.insert(
                    "used_percent".into(),
                    round1((t.saturating_sub(a)) as f64 * 100.0 / t.max(1) as f64).into(),
                );
            }
        }
        let mut process = serde_json::Map::new();
        process.insert("rss_mb".into(), round1(rss as f64 / MB).into());

        let mut result = match limit {
            Some(limit) => {
                let pct = rss as f64 * 100.0 / limit.max(1) as f64;
                let status = if pct > self.unhealthy_percent {
                    Status::Unhealthy
                } else if pct > self.degraded_percent {
                    Status::Degraded
                } else {
                    Status::Healthy
                };
                let mut r = CheckResult::new(status);
                if status != Status::Healthy {
                    r = r.with_message(format!(
                        "process RSS is {pct:.1} % of the {source} memory limit"
                    ));
                }
                r.with_detail("limit_mb", round1(limit as f64 / MB))
                    .with_detail("used_percent", round1(pct))
            }
            None => CheckResult::healthy(),
        };
        result = result
            .with_detail("limit_source", source)
            .with_detail("process", process)
            .with_detail("system", system);
        result
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `Name:   1234 kB` → bytes.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

impl HealthCheck for MemoryCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { self.measure() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(rss_kb: u64, total_kb: u64, cgroup_max: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "obs-health-mem-{}-{rss_kb}-{total_kb}-{}",
            std::process::id(),
            cgroup_max.unwrap_or("none")
        ));
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::create_dir_all(dir.join("sys/fs/cgroup")).unwrap();
        std::fs::write(
            dir.join("proc/self/status"),
            format!("Name:\tx\nVmRSS:\t{rss_kb} kB\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("proc/meminfo"),
            format!(
                "MemTotal: {total_kb} kB\nMemAvailable: {} kB\n",
                total_kb / 2
            ),
        )
        .unwrap();
        if let Some(m) = cgroup_max {
            std::fs::write(dir.join("sys/fs/cgroup/memory.max"), m).unwrap();
        }
        dir
    }

    #[test]
    fn cgroup_limit_wins_over_system_total() {
        // 900 MiB RSS against a 1 GiB cgroup limit on a 16 GiB machine: 87.9 % → degraded
        let root = fake_root(900 * 1024, 16 * 1024 * 1024, Some("1073741824\n"));
        let r = MemoryCheck::new().root(&root).measure();
        assert_eq!(r.status, Status::Degraded, "{r:?}");
        assert_eq!(r.details["limit_source"], "cgroup");
        assert_eq!(r.details["limit_mb"], 1024.0);
        assert_eq!(r.details["system"]["used_percent"], 50.0);
    }

    #[test]
    fn unlimited_cgroup_falls_back_to_system() {
        let root = fake_root(1000 * 1024, 1024 * 1024, Some("max\n"));
        let r = MemoryCheck::new().root(&root).measure();
        // 1000 MiB of 1024 MiB: 97.7 % → unhealthy
        assert_eq!(r.status, Status::Unhealthy, "{r:?}");
        assert_eq!(r.details["limit_source"], "system");
        let r = MemoryCheck::new()
            .unhealthy_above_percent(99.0)
            .root(&root)
            .measure();
        assert_eq!(r.status, Status::Degraded);
    }

    #[test]
    fn missing_proc_is_reported_unsupported() {
        let r = MemoryCheck::new().root("/definitely/not/here").measure();
        assert_eq!(r.status, Status::Healthy);
        assert_eq!(r.details["supported"], false);
    }
}
