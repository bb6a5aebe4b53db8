//! `cargo xtask <task>`: the workspace's own tasks.
//!
//! - `cargo xtask test [-- cargo test args]`: make sure the real services the suites need are
//!   running on loopback (installing them with apt-get on a fresh Debian machine), then run the
//!   whole workspace's tests (unit, integration, doc tests) with all features.
//! - `cargo xtask services`: only the first half; prints what it used.
//! - `cargo xtask bugsink`: a local Bugsink (Sentry-compatible server) for the Sentry example;
//!   prints `SENTRY_DSN=...` to export.
//!
//! Services already running (or pointed to by `REDIS_URL` / `DATABASE_URL`) are used as they
//! are. Nothing here is a mock: when a service cannot be provided, the task fails and says why.

mod bench_e2e;
mod bugsink;
mod examples;
mod prometheus;
mod redis_extra;
mod services;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "services" => services::ensure_all().map(|_| ()),
        "test" => test(rest),
        "bugsink" => bugsink(),
        "examples" => examples::run(),
        "bench-e2e" => bench_e2e::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test [-- ARGS]  start/install the services the tests need, then run every test\n  \
                 services        only start/install the services and print what is used\n  \
                 bugsink         start a local Bugsink (Sentry-compatible) server and print its DSN\n  \
                 examples        smoke-test every example: one-shots exit 0 with their output, services answer /health/live and their curls\n  \
                 bench-e2e       wrk load on loopback: hello-world axum bare vs with obs.layer()"
            );
            return if task == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    let used = services::ensure_all()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features", "--all-targets"]);
    for (var, value) in &used.env {
        cmd.env(var, value);
    }
    let extra: Vec<&String> = extra.iter().skip_while(|a| *a == "--").collect();
    if !extra.is_empty() {
        cmd.arg("--").args(extra.iter().map(|s| s.as_str()));
    }
    run(&mut cmd)?;
    // `--all-targets` skips doc tests; run them separately.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--all-features", "--doc"]);
    for (var, value) in &used.env {
        doc.env(var, value);
    }
    run(&mut doc)?;
    println!("xtask test: all suites passed against: {}", used.summary());
    Ok(())
}

fn bugsink() -> Result<(), String> {
    let mut used = services::Used::default();
    bugsink::ensure(&mut used)?;
    println!("{}", used.summary());
    for (var, value) in &used.env {
        if var == "BUGSINK_DSN" {
            println!("export SENTRY_DSN={value}");
        } else {
            println!("{var}={value}");
        }
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// Runs a command with inherited stdio; an error if it cannot start or exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}
