//! Built-in checks, each behind its own cargo feature.
//!
//! | feature | check | what it does |
//! |---|---|---|
//! | `postgres` | [`PostgresCheck`] | acquire from an sqlx pool with a timeout, `SELECT 1`; degraded when acquiring is slow; pool size/idle in details |
//! | `sqlite` | [`SqliteCheck`] | the same for an SQLite pool |
//! | `redis` | [`RedisCheck`] | `PING`; degraded above a latency threshold |
//! | `http` | [`HttpCheck`] | GET a URL with reqwest; unhealthy outside the expected status range; degraded when slow |
//! | `disk` | [`DiskCheck`] | free space on a path's filesystem against degraded/unhealthy thresholds |
//! | `memory` | [`MemoryCheck`] | process RSS against the cgroup / system memory limit |
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use obs_health::{checks::MemoryCheck, Health};
//!
//! let health = Health::builder()
//!     .check("memory", MemoryCheck::new().degraded_above_percent(85.0).unhealthy_above_percent(95.0))
//!     .build()
//!     .unwrap();
//! # let _ = health;
//! # }
//! ```

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(feature = "postgres")]
pub use sql::PostgresCheck;
#[cfg(feature = "sqlite")]
pub use sql::SqliteCheck;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisCheck;

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
pub use self::http::HttpCheck;

#[cfg(feature = "disk")]
mod disk;
#[cfg(feature = "disk")]
pub use disk::DiskCheck;

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "memory")]
pub use memory::MemoryCheck;
