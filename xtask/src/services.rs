//! Finding, installing and starting the real services the test suites talk to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::run;

/// What the suites will use: environment for the test processes and a line per service.
#[derive(Debug, Default)]
pub(crate) struct Used {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) lines: Vec<String>,
}

impl Used {
    pub(crate) fn summary(&self) -> String {
        self.lines.join("; ")
    }
}

/// Makes sure every service the suites need is reachable; prints and returns what is used.
pub(crate) fn ensure_all() -> Result<Used, String> {
    let mut used = Used::default();
    build_prerequisites()?;
    redis(&mut used)?;
    postgres(&mut used)?;
    crate::redis_extra::ensure(&mut used)?;
    crate::prometheus::ensure(&mut used)?;
    crate::bugsink::ensure(&mut used)?;
    println!("xtask: services in use:");
    for line in &used.lines {
        println!("  - {line}");
    }
    Ok(used)
}

/// System libraries the workspace links against: OpenSSL for the Sentry transport's TLS
/// (native-tls), found through pkg-config.
fn build_prerequisites() -> Result<(), String> {
    let has_openssl = Command::new("pkg-config")
        .args(["--exists", "openssl"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_openssl {
        apt_install(&["pkg-config", "libssl-dev"])?;
    }
    Ok(())
}

fn redis(used: &mut Used) -> Result<(), String> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        used.lines.push(format!("Redis at {url} (from REDIS_URL)"));
        return Ok(());
    }
    let addr: SocketAddr = "127.0.0.1:6379".parse().expect("literal address");
    let url = "redis://127.0.0.1:6379".to_owned();
    if redis_ping(addr) {
        used.lines.push(format!("Redis at {url} (already running)"));
    } else {
        if !on_path("redis-server") {
            apt_install(&["redis-server", "redis-tools"])?;
        }
        run(Command::new("redis-server").args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ]))?;
        wait_for("Redis on 127.0.0.1:6379", || redis_ping(addr))?;
        used.lines
            .push(format!("Redis at {url} (started by xtask)"));
    }
    used.env.push(("REDIS_URL".into(), url));
    Ok(())
}

fn postgres(used: &mut Used) -> Result<(), String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        used.lines
            .push(format!("PostgreSQL at {url} (from DATABASE_URL)"));
        return Ok(());
    }
    let addr: SocketAddr = "127.0.0.1:5432".parse().expect("literal address");
    let url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    let how = if tcp_open(addr) {
        "already running"
    } else {
        if !on_path("pg_lsclusters") {
            apt_install(&["postgresql"])?;
        }
        let version = pg_cluster_version()?;
        run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "start",
        ]))
        .or_else(|e| if tcp_open(addr) { Ok(()) } else { Err(e) })?;
        wait_for("PostgreSQL on 127.0.0.1:5432", || tcp_open(addr))?;
        "started by xtask"
    };
    pg_prepare()?;
    used.lines.push(format!("PostgreSQL at {url} ({how})"));
    used.env.push(("DATABASE_URL".into(), url));
    Ok(())
}

/// Ensures the `test` database exists and that `postgres` may connect over loopback TCP
/// without a password (the machine's convention; a fresh Debian install asks for one).
fn pg_prepare() -> Result<(), String> {
    let psql = |db: &str, sql: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
    };
    let probe = psql("postgres", "SELECT 1").map_err(|e| format!("could not run psql: {e}"))?;
    if !probe.status.success() {
        let err = String::from_utf8_lossy(&probe.stderr).into_owned();
        if !err.contains("password") && !err.contains("authentication") {
            return Err(format!("psql against 127.0.0.1:5432 failed: {err}"));
        }
        // Fresh install: allow trust auth for loopback TCP, then reload.
        let version = pg_cluster_version()?;
        let hba = format!("/etc/postgresql/{version}/main/pg_hba.conf");
        let old = std::fs::read_to_string(&hba).map_err(|e| format!("reading {hba}: {e}"))?;
        let new = format!("host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n{old}");
        std::fs::write(&hba, new).map_err(|e| format!("writing {hba}: {e}"))?;
        run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "reload",
        ]))?;
        let again = psql("postgres", "SELECT 1").map_err(|e| format!("psql: {e}"))?;
        if !again.status.success() {
            return Err(format!(
                "PostgreSQL still refuses postgres@127.0.0.1: {}",
                String::from_utf8_lossy(&again.stderr)
            ));
        }
    }
    let exists = psql(
        "postgres",
        "SELECT 1 FROM pg_database WHERE datname = 'test'",
    )
    .map_err(|e| format!("psql: {e}"))?;
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        let created = psql("postgres", "CREATE DATABASE test").map_err(|e| format!("psql: {e}"))?;
        if !created.status.success() {
            return Err(format!(
                "CREATE DATABASE test failed: {}",
                String::from_utf8_lossy(&created.stderr)
            ));
        }
    }
    Ok(())
}

fn pg_cluster_version() -> Result<String, String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("no PostgreSQL cluster under /etc/postgresql: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no PostgreSQL cluster under /etc/postgresql".to_owned())
}

/// `apt-get install -y` (after one `apt-get update` per run).
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    static UPDATE: Once = Once::new();
    println!("xtask: installing {} with apt-get", packages.join(" "));
    let mut update_result = Ok(());
    UPDATE.call_once(|| {
        update_result = run(Command::new("apt-get").args(["update", "-q"]));
    });
    update_result?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

pub(crate) fn tcp_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

pub(crate) fn redis_ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Polls `ready` every 100 ms for up to 30 s.
pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{what} did not become ready within 30 s"))
}
