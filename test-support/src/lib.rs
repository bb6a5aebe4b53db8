//! Test-only helpers shared by the obs test suites.
//!
//! Tests talk to real services. These helpers find them (`REDIS_URL`, `DATABASE_URL`, loopback
//! defaults), fail loudly with how to start them when they are unreachable — a test never
//! silently passes without its service — and isolate each test (unique key prefixes, fresh
//! PostgreSQL schemas) so suites run in parallel.
//!
//! `cargo xtask test` starts the services before running the suites.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default Redis URL when `REDIS_URL` is unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default PostgreSQL URL when `DATABASE_URL` is unset (trust auth on loopback).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A string unique to this call in this process and across processes: `obs-test:{label}:{pid}:{n}:{nanos}`.
///
/// Use it as a Redis key prefix (or part of a schema name) so parallel tests never share state.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("obs-test:{label}:{}:{n}:{nanos}", std::process::id())
}

/// `REDIS_URL`, or [`DEFAULT_REDIS_URL`].
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// [`redis_url`] after checking that a Redis answers `PING` there.
///
/// # Panics
/// With a message saying how to start Redis, if none answers within 2 seconds.
pub fn require_redis() -> String {
    let url = redis_url();
    if let Err(why) = ping_redis(&url) {
        panic!(
            "this test needs Redis at {url} (REDIS_URL) but {why}.\n\
             Start one with `cargo xtask services` or\n\
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`"
        );
    }
    url
}

/// `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`].
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// [`database_url`] after checking that something accepts TCP connections at its host and port.
///
/// # Panics
/// With a message saying how to start PostgreSQL, if nothing answers within 2 seconds.
pub fn require_postgres() -> String {
    let url = database_url();
    let addr = host_port(&url, 5432);
    if let Err(why) = connect(&addr) {
        panic!(
            "this test needs PostgreSQL at {addr} (DATABASE_URL={url}) but {why}.\n\
             Start it with `cargo xtask services` or\n\
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        );
    }
    url
}

/// Checks that `program --version` runs.
///
/// # Panics
/// Saying that `cargo xtask test` installs it, or how to install it (`install_hint`), if the
/// program is missing or fails.
pub fn require_tool(program: &str, install_hint: &str) {
    let ok = std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{program}` is not on PATH (or `{program} --version` failed). \
         `cargo xtask test` installs it; by hand: {install_hint}"
    );
}

fn ping_redis(url: &str) -> Result<(), String> {
    let mut stream = connect(&host_port(url, 6379))?;
    stream
        .write_all(b"PING\r\n")
        .map_err(|e| format!("writing PING failed: {e}"))?;
    let mut buf = [0u8; 64];
    let n = stream
        .read(&mut buf)
        .map_err(|e| format!("reading the PING reply failed: {e}"))?;
    let reply = String::from_utf8_lossy(&buf[..n]);
    // A password-protected Redis answers -NOAUTH: it is there, the test's client will AUTH.
    if reply.starts_with("+PONG") || reply.contains("NOAUTH") {
        Ok(())
    } else {
        Err(format!("it answered PING with {reply:?}"))
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr} failed: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    Ok(stream)
}

/// `host:port` from a `scheme://[user[:pass]@]host[:port][/...]` URL.
fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port = hostport.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !hostport.ends_with(']')
    });
    if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
    use std::str::FromStr;

    /// A PostgreSQL schema of its own for one test, with a pool whose `search_path` points at it.
    #[derive(Debug)]
    pub struct PgSchema {
        /// Pool whose connections use only this schema (then `public`).
        pub pool: PgPool,
        /// The schema's name.
        pub name: String,
    }

    impl PgSchema {
        /// Creates a fresh schema named after `label` and a pool of at most `max_connections`.
        ///
        /// # Panics
        /// If PostgreSQL is unreachable (with how to start it) or refuses the schema.
        pub async fn create(label: &str, max_connections: u32) -> PgSchema {
            let url = super::require_postgres();
            let name: String = super::unique_name(label)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let admin = PgPool::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {url} failed: {e}"));
            sqlx::query(&format!("CREATE SCHEMA \"{name}\""))
                .execute(&admin)
                .await
                .unwrap_or_else(|e| panic!("CREATE SCHEMA {name} failed: {e}"));
            admin.close().await;
            let options = PgConnectOptions::from_str(&url)
                .expect("DATABASE_URL parses")
                .options([("search_path", format!("\"{name}\",public"))]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {url} failed: {e}"));
            PgSchema { pool, name }
        }

        /// Drops the schema and everything in it, and closes the pool.
        pub async fn drop_schema(self) {
            let _ = sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.name))
                .execute(&self.pool)
                .await;
            self.pool.close().await;
        }
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgSchema;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_handles_the_url_shapes_we_use() {
        assert_eq!(host_port("redis://127.0.0.1:6379", 1), "127.0.0.1:6379");
        assert_eq!(
            host_port("redis://:pw@localhost:7000/0", 1),
            "localhost:7000"
        );
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1/test", 5432),
            "127.0.0.1:5432"
        );
        assert_eq!(host_port("redis://[::1]:6380", 1), "[::1]:6380");
        assert_eq!(host_port("redis://[::1]", 6379), "[::1]:6379");
    }

    #[test]
    #[should_panic(expected = "`obs-no-such-tool` is not on PATH")]
    fn missing_tools_fail_loudly() {
        require_tool("obs-no-such-tool", "apt-get install nothing");
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a"), unique_name("a"));
    }

    #[test]
    fn unreachable_redis_is_an_error_naming_the_address() {
        // Port 1 on loopback: nothing listens there.
        let err = ping_redis("redis://127.0.0.1:1").unwrap_err();
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }
}

/// A `redis-server` of the test's own on a free loopback port (no persistence), for tests that
/// stop Redis or count its commands without touching the shared instance. Killed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one and waits (up to 10 s) until it accepts connections.
    ///
    /// # Panics
    /// Saying how to install `redis-server` if it cannot be run, or if it does not start.
    pub fn start() -> Self {
        // Let the OS pick a free port, then hand it to redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart();
        redis
    }

    /// Its URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`kill`](Self::kill)), empty.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test starts its own redis-server but could not run it ({e}); install it with `apt-get install redis-server` or run `cargo xtask test`")
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops it (as a crash would: no shutdown handshake).
    ///
    /// # Panics
    /// If the process cannot be killed or waited for.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill the private redis-server");
            child.wait().expect("wait for the private redis-server");
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
