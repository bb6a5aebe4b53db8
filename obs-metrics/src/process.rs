//! Linux process metrics read from `/proc/self` at scrape time: CPU seconds, resident and
//! virtual memory, open and max file descriptors, start time and threads.
//!
//! Our own ~100 lines instead of a dependency: it reads `stat`, `status`, `limits` and `fd`
//! and nothing else. Clock ticks are taken as `USER_HZ = 100`, the value on every Linux
//! architecture Rust supports. On other systems the collector emits nothing.
//!
//! ```
//! let registry = obs_metrics::Registry::new();
//! registry.register_process_metrics().unwrap();
//! let body = registry.encode(obs_metrics::Format::Prometheus, &[obs_metrics::Scope::System]);
//! # #[cfg(target_os = "linux")]
//! assert!(body.contains("process_resident_memory_bytes "));
//! ```

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::registry::Unit;

use crate::naming::MetricType;
use crate::registry::{Descriptor, Scope};

const USER_HZ: f64 = 100.0;

/// A snapshot of the process metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
    /// Virtual memory size in bytes.
    pub virtual_memory_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Soft limit on open file descriptors.
    pub max_fds: u64,
    /// Start time since the Unix epoch, in seconds.
    pub start_time_seconds: f64,
    /// OS threads.
    pub threads: u64,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where it is not available.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name (which may contain spaces).
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state); field n is f[n - 3].
        let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let utime = num(14)?;
        let stime = num(15)?;
        let threads = num(20)? as u64;
        let start_ticks = num(22)?;
        let vsize = num(23)? as u64;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map(|v| v * 1024)
        };
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
            })
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(Self {
            cpu_seconds: (utime + stime) / USER_HZ,
            resident_memory_bytes: kb("VmRSS:").unwrap_or(0),
            virtual_memory_bytes: vsize,
            open_fds,
            max_fds,
            start_time_seconds: btime + start_ticks / USER_HZ,
            threads,
        })
    }
}

/// Collector for the process metrics (register with
/// [`Registry::register_process_metrics`](crate::Registry::register_process_metrics)).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

const METRICS: &[(&str, &str, MetricType)] = &[
    (
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        MetricType::Counter,
    ),
    (
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        MetricType::Gauge,
    ),
    (
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        MetricType::Gauge,
    ),
    (
        "process_open_fds",
        "Number of open file descriptors.",
        MetricType::Gauge,
    ),
    (
        "process_max_fds",
        "Maximum number of open file descriptors.",
        MetricType::Gauge,
    ),
    (
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge,
    ),
    (
        "process_threads",
        "Number of OS threads in the process.",
        MetricType::Gauge,
    ),
];

pub(crate) fn descriptors() -> Vec<Descriptor> {
    METRICS
        .iter()
        .map(|(name, help, ty)| Descriptor {
            name: (*name).into(),
            help: (*help).into(),
            metric_type: *ty,
            scope: Scope::System,
            labels: vec![],
            buckets: None,
            exemplars: false,
            max_series: None,
        })
        .collect()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(s) = ProcessStats::read() else {
            return Ok(());
        };
        let secs = Some(Unit::Seconds);
        let bytes = Some(Unit::Bytes);
        encoder
            .encode_descriptor("process_cpu", METRICS[0].1, secs.as_ref(), PcType::Counter)?
            .encode_counter::<NoLabelSet, f64, f64>(&s.cpu_seconds, None)?;
        let gauges: [(&str, Option<&Unit>, f64, usize); 6] = [
            (
                "process_resident_memory",
                bytes.as_ref(),
                s.resident_memory_bytes as f64,
                1,
            ),
            (
                "process_virtual_memory",
                bytes.as_ref(),
                s.virtual_memory_bytes as f64,
                2,
            ),
            ("process_open_fds", None, s.open_fds as f64, 3),
            ("process_max_fds", None, s.max_fds as f64, 4),
            ("process_start_time", secs.as_ref(), s.start_time_seconds, 5),
            ("process_threads", None, s.threads as f64, 6),
        ];
        for (name, unit, v, i) in gauges {
            encoder
                .encode_descriptor(name, METRICS[i].1, unit, PcType::Gauge)?
                .encode_gauge(&v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_plausible_values() {
        let s = ProcessStats::read().expect("linux /proc");
        assert!(s.resident_memory_bytes > 1024 * 1024);
        assert!(s.virtual_memory_bytes >= s.resident_memory_bytes);
        assert!(s.open_fds >= 3 && s.max_fds >= s.open_fds);
        assert!(s.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds > now - 3600.0 && s.start_time_seconds <= now + 5.0);
    }
}
