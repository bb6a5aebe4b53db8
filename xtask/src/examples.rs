//! `cargo xtask examples`: smoke tests of the example services.
//!
//! 1. builds every example of the `obs` package (all features);
//! 2. runs `tour`, which must exit 0 within 120 s;
//! 3. starts each service example on a free loopback port (`PORT=<port>`), waits (at most
//!    30 s) until `GET /health/live` answers 200, then stops it with SIGINT (graceful
//!    shutdown, at most 10 s, then SIGKILL).
//!
//! No service is configured for them (`REDIS_URL`, `DATABASE_URL`, `SENTRY_DSN`, ... are
//! removed from their environment): each must work on its embedded defaults.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Example services that must start and answer `/health/live`.
const SERVICES: &[&str] = &[
    "quickstart",
    "webhook_service",
    "api_gateway",
    "asset_service",
];

/// Variables that would point the examples at real services.
const SERVICE_VARS: &[&str] = &[
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "DATABASE_URL",
    "SENTRY_DSN",
    "METRICS_API_URL",
    "METRICS_API_TOKEN",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "PORT",
];

pub(crate) fn run() -> Result<(), String> {
    let mut build = crate::cargo();
    build.args(["build", "-p", "obs", "--all-features", "--examples"]);
    crate::run(&mut build)?;
    let dir = examples_dir();

    let started = Instant::now();
    let mut tour = command(&dir, "tour")?;
    let mut child = tour
        .spawn()
        .map_err(|e| format!("could not start tour: {e}"))?;
    let status = wait_timeout(&mut child, Duration::from_secs(120))?
        .ok_or_else(|| "tour did not finish within 120 s".to_owned())?;
    if !status.success() {
        return Err(format!("tour exited with {status}"));
    }
    println!(
        "xtask examples: tour exited 0 in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for name in SERVICES {
        if !dir.join(name).is_file() {
            return Err(format!(
                "example {name} was not built (is it in Cargo.toml?)"
            ));
        }
        smoke(&dir, name)?;
    }
    println!(
        "xtask examples: tour and {} services passed",
        SERVICES.len()
    );
    Ok(())
}

fn examples_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("xtask is inside the workspace")
                .join("target")
        });
    target.join("debug").join("examples")
}

fn command(dir: &std::path::Path, name: &str) -> Result<Command, String> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(format!("{} not found", path.display()));
    }
    let mut cmd = Command::new(path);
    for var in SERVICE_VARS {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

fn smoke(dir: &std::path::Path, name: &str) -> Result<(), String> {
    let port = free_port()?;
    let mut cmd = command(dir, name)?;
    cmd.env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {name}: {e}"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{name} exited early with {status}"));
        }
        let last = match get_status(addr, "/health/live") {
            Ok(200) => break Ok(()),
            Ok(code) => format!("status {code}"),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            break Err(format!(
                "{name}: GET /health/live did not answer 200 within 30 s ({last})"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let up = started.elapsed();
    stop(&mut child, name)?;
    result?;
    println!(
        "xtask examples: {name} answered /health/live 200 after {:.1} s and stopped",
        up.as_secs_f64()
    );
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A minimal HTTP/1.1 GET: the response's status code.
fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("unexpected response {text:?}"))
}

/// SIGINT (graceful shutdown), then SIGKILL after 10 s.
fn stop(child: &mut Child, name: &str) -> Result<(), String> {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    match wait_timeout(child, Duration::from_secs(10))? {
        Some(_) => Ok(()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{name} did not stop within 10 s of SIGINT"))
        }
    }
}

fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
