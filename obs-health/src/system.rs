//! The `system` block of a report: uptime, version, rustc / target, platform, pid, environment.
//!
//! `rustc` and `target` are recorded at build time (by this crate's build script);
//! `version`, `service` and `environment` come from the application through
//! [`HealthBuilder`](crate::HealthBuilder).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use obs_health::Health;
//!
//! let health = Health::builder()
//!     .service("billing", env!("CARGO_PKG_VERSION"))
//!     .environment("production")
//!     .build()
//!     .unwrap();
//! let system = health.system_info();
//! assert_eq!(system.environment.as_deref(), Some("production"));
//! assert_eq!(system.pid, std::process::id());
//! assert!(system.rustc_version.starts_with("rustc"));
//! # }
//! ```

use serde::Serialize;
use std::time::Instant;

/// Process and build facts reported under `"system"`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SystemInfo {
    /// Seconds since the [`Health`](crate::Health) registry was built (≈ service uptime).
    pub uptime: u64,
    /// Service name, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Service version, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `rustc --version` of the compiler that built this binary.
    pub rustc_version: &'static str,
    /// Target triple the binary was built for.
    pub target: &'static str,
    /// Operating system (`linux`, `macos`, ...).
    pub platform: &'static str,
    /// CPU architecture (`x86_64`, `aarch64`, ...).
    pub arch: &'static str,
    /// Process ID.
    pub pid: u32,
    /// Deployment environment, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

#[derive(Debug)]
pub(crate) struct SystemStatic {
    pub(crate) started: Instant,
    pub(crate) service: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) environment: Option<String>,
}

impl SystemStatic {
    pub(crate) fn snapshot(&self) -> SystemInfo {
        SystemInfo {
            uptime: self.started.elapsed().as_secs(),
            service: self.service.clone(),
            version: self.version.clone(),
            rustc_version: env!("OBS_HEALTH_RUSTC_VERSION"),
            target: env!("OBS_HEALTH_TARGET"),
            platform: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            pid: std::process::id(),
            environment: self.environment.clone(),
        }
    }
}
