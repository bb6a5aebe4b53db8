//! `cargo xtask bench-e2e [--rounds N] [--duration SECS] [--connections C] [--threads T]`:
//! end-to-end overhead of `obs.layer()` under HTTP load.
//!
//! Builds `examples/e2e_target.rs` in release mode (feature `sentry`, so the Sentry layer is
//! in the stack with a hub that has no DSN), then for each round starts the `bare` and the
//! `obs` variant in turn on a free loopback port (the order alternates between rounds, so
//! drift on a shared machine hits both alike), loads each with
//! `wrk -t<T> -c<C> -d<SECS>s --latency` and stops it. Reports the median requests/s and p99
//! latency of each variant, the throughput ratio obs/bare and the p99 delta, as a Markdown
//! table for `benches/README.md`. `wrk` is installed with apt-get when missing.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::services::{apt_install, on_path};

struct Options {
    rounds: usize,
    duration: u64,
    connections: u32,
    threads: u32,
}

struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut o = Options {
        rounds: 5,
        duration: 10,
        connections: 32,
        threads: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--rounds" => o.rounds = value("--rounds")? as usize,
            "--duration" => o.duration = value("--duration")?,
            "--connections" => o.connections = value("--connections")? as u32,
            "--threads" => o.threads = value("--threads")? as u32,
            "--" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !on_path("wrk") {
        apt_install(&["wrk"])?;
    }
    let mut build = crate::cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "obs",
        "--example",
        "e2e_target",
        "--features",
        "sentry",
    ]);
    crate::run(&mut build)?;
    let bin = target_dir().join("release/examples/e2e_target");

    let mut bare = Vec::new();
    let mut obs = Vec::new();
    for round in 0..o.rounds {
        let order: [&str; 2] = if round % 2 == 0 {
            ["bare", "obs"]
        } else {
            ["obs", "bare"]
        };
        for variant in order {
            let s = measure(&bin, variant, &o)?;
            println!(
                "round {}: {variant:4} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
                round + 1,
                s.rps,
                s.p50_us,
                s.p99_us
            );
            if variant == "bare" {
                bare.push(s);
            } else {
                obs.push(s);
            }
        }
    }
    let med = |v: &[Sample], f: fn(&Sample) -> f64| {
        let mut xs: Vec<f64> = v.iter().map(f).collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs[xs.len() / 2]
    };
    let (b_rps, o_rps) = (med(&bare, |s| s.rps), med(&obs, |s| s.rps));
    let (b_p50, o_p50) = (med(&bare, |s| s.p50_us), med(&obs, |s| s.p50_us));
    let (b_p99, o_p99) = (med(&bare, |s| s.p99_us), med(&obs, |s| s.p99_us));
    println!();
    println!(
        "wrk -t{} -c{} -d{}s, {} interleaved rounds, medians:",
        o.threads, o.connections, o.duration, o.rounds
    );
    println!("| variant | req/s | p50 | p99 |");
    println!("|---|---|---|---|");
    println!("| bare axum | {b_rps:.0} | {b_p50:.0} µs | {b_p99:.0} µs |");
    println!("| `obs.layer()` | {o_rps:.0} | {o_p50:.0} µs | {o_p99:.0} µs |");
    println!(
        "| **ratio / delta** | **{:.3}x** | {:+.0} µs | **{:+.0} µs** |",
        o_rps / b_rps,
        o_p50 - b_p50,
        o_p99 - b_p99
    );
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("xtask is inside the workspace")
                .join("target")
        })
}

fn measure(bin: &std::path::Path, variant: &str, o: &Options) -> Result<Sample, String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut child = Command::new(bin)
        .arg(variant)
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        .env_remove("SENTRY_DSN")
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            stop(&mut child);
            return Err(format!("e2e_target {variant} did not listen within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("wrk")
        .args([
            format!("-t{}", o.threads),
            format!("-c{}", o.connections),
            format!("-d{}s", o.duration),
            "--latency".to_owned(),
            format!("http://{addr}/"),
        ])
        .output();
    stop(&mut child);
    let out = out.map_err(|e| format!("could not run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {text}"));
    }
    parse(&text).ok_or_else(|| format!("could not parse wrk output:\n{text}"))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn parse(text: &str) -> Option<Sample> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => rps = v.parse().ok(),
            (Some("50%"), Some(v)) => p50 = micros(v),
            (Some("99%"), Some(v)) => p99 = micros(v),
            _ => {}
        }
        if line.contains("Non-2xx") {
            eprintln!("warning: {line}");
        }
    }
    Some(Sample {
        rps: rps?,
        p50_us: p50?,
        p99_us: p99?,
    })
}

/// `wrk` latencies: `812.00us`, `1.23ms`, `1.02s`.
fn micros(v: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|x| x * factor)
}
