//! `cargo xtask examples`: smoke tests of every example in `examples/`.
//!
//! 1. builds every example of the `obs` package once (all features);
//! 2. runs each **one-shot** example (`tour`, `metrics_artifacts`, `telemetry`,
//!    `tracing_otel`, `ratelimited_api demo`): it must exit 0 within 120 s, and its output
//!    (stdout, or the files it writes) must show what its header comment promises;
//! 3. starts each **service** example on a free loopback port (`PORT=<port>`, or
//!    `BIND=127.0.0.1:<port>` for `business_metrics`), waits (at most 30 s) until
//!    `GET /health/live` answers 200, sends the requests its header comment tells users to
//!    curl (checking each status, and a body fragment where the comment names one), then
//!    stops it with SIGINT (graceful shutdown, at most 10 s, then SIGKILL).
//!
//! Every `.rs` file in `examples/` must be listed below, so a new example cannot skip the
//! smoke test. No service is configured for them (`REDIS_URL`, `DATABASE_URL`, `SENTRY_DSN`,
//! ... are removed from their environment): each must work on its embedded defaults. A
//! failure names the example and the step, and shows the end of its stdout and stderr
//! (kept in `target/xtask-examples/<name>/`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One HTTP request of a service's smoke test.
struct Req {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    /// Accepted status codes.
    status: &'static [u16],
    /// A fragment the response (head or body) must contain.
    contains: Option<&'static str>,
}

const fn get(path: &'static str, status: &'static [u16]) -> Req {
    Req {
        method: "GET",
        path,
        headers: &[],
        body: "",
        status,
        contains: None,
    }
}

const fn post(path: &'static str, status: &'static [u16]) -> Req {
    Req {
        method: "POST",
        ..get(path, status)
    }
}

impl Req {
    const fn header(mut self, headers: &'static [(&'static str, &'static str)]) -> Self {
        self.headers = headers;
        self
    }
    const fn body(mut self, body: &'static str) -> Self {
        self.body = body;
        self
    }
    const fn contains(mut self, fragment: &'static str) -> Self {
        self.contains = Some(fragment);
        self
    }
}

/// Readiness probes may report a degraded or failing disk/memory check on a busy build
/// machine: 200 and 503 both prove the endpoint answers.
const PROBE: &[u16] = &[200, 503];

/// How a service example is told its address.
#[derive(Clone, Copy)]
enum Bind {
    /// `PORT=<port>` (127.0.0.1).
    Port,
    /// `<VAR>=127.0.0.1:<port>`.
    Addr(&'static str),
}

enum Kind {
    /// Must exit 0; `check` reads its stdout and the scratch directory it may write to.
    OneShot {
        args: &'static [&'static str],
        check: fn(stdout: &str, scratch: &Path) -> Result<(), String>,
    },
    /// Long-running: started, probed, sent `requests`, stopped.
    Service {
        args: &'static [&'static str],
        bind: Bind,
        requests: &'static [Req],
    },
}

struct Example {
    name: &'static str,
    /// Label for the output when one example runs in several ways.
    label: &'static str,
    kind: Kind,
}

const GITHUB: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("x-github-event", "issue_comment"),
];

const EXAMPLES: &[Example] = &[
    Example {
        name: "tour",
        label: "tour",
        kind: Kind::OneShot {
            args: &[],
            check: |out, _| {
                expect_all(
                    out,
                    &[
                        "1. ",
                        "5. health",
                        "429",
                        "http_requests_total",
                        "x-request-id",
                    ],
                )
            },
        },
    },
    Example {
        name: "metrics_artifacts",
        label: "metrics_artifacts",
        kind: Kind::OneShot {
            args: &["{scratch}"],
            check: |_, dir| {
                expect_file(dir, "catalog.md", &["asset_generations_total"])?;
                expect_file(dir, "rules.yml", &["groups:", "alert:"])?;
                expect_file(dir, "dashboard.json", &["\"panels\"", "Asset-Forge"])
            },
        },
    },
    Example {
        name: "telemetry",
        label: "telemetry",
        kind: Kind::OneShot {
            args: &[],
            check: |out, _| expect_all(out, &["CSV export", "run_id,metric_name"]),
        },
    },
    Example {
        name: "tracing_otel",
        label: "tracing_otel",
        kind: Kind::OneShot {
            args: &[],
            check: |out, _| expect_all(out, &["trace_id"]),
        },
    },
    Example {
        name: "ratelimited_api",
        label: "ratelimited_api demo",
        kind: Kind::OneShot {
            args: &["demo"],
            check: |out, _| {
                expect_all(
                    out,
                    &[
                        "200 OK",
                        "429 Too Many Requests",
                        "Rate limited per repository",
                    ],
                )
            },
        },
    },
    Example {
        name: "ratelimited_api",
        label: "ratelimited_api",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[post("/repos/octo/hello/webhook", &[200])
                .contains("processed webhook for octo/hello")],
        },
    },
    Example {
        name: "quickstart",
        label: "quickstart",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                get("/", &[200]),
                get("/users/42", &[200])
                    .header(&[("x-request-id", "my-trace-123")])
                    .contains("my-trace-123"),
                get("/fail", &[500]),
                get("/runs/run-1", &[200]),
                get("/health/ready", PROBE),
                get("/metrics", &[200]).contains("http_requests_total"),
            ],
        },
    },
    Example {
        name: "webhook_service",
        label: "webhook_service",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                post("/webhooks/github", &[202])
                    .header(GITHUB)
                    .body(r#"{"repository":{"full_name":"acme/api"},"issue":{"number":7}}"#),
                post("/webhooks/github", &[500])
                    .header(GITHUB)
                    .body(r#"{"repository":{"full_name":"acme/broken"}}"#),
                post("/webhooks/github", &[400])
                    .header(&[("content-type", "application/json")])
                    .body("{}"),
                get("/metrics", &[200]).contains("http_requests_total"),
                get("/health/ready", PROBE),
            ],
        },
    },
    Example {
        name: "api_gateway",
        label: "api_gateway",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                post("/api/projects/web/commands/shell", &[200])
                    .header(&[("authorization", "Bearer good-token")]),
                post("/api/projects/web/commands/git", &[401])
                    .header(&[("authorization", "Bearer revoked-token")])
                    .contains("revoked"),
                post("/api/projects/web/commands/git", &[401]).contains("invalid"),
                get("/metrics/business", &[200]).contains("rdev_auth_failures_total"),
                get("/ready", PROBE),
                get("/alerts/rules.yml", &[200]).contains("groups:"),
            ],
        },
    },
    Example {
        name: "asset_service",
        label: "asset_service",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                post("/api/assets/model", &[201]),
                post("/api/assets/texture?fail=1", &[502]),
                get("/metrics/business", &[200]).contains("asset_generations_total"),
                get("/api/health/ready", PROBE),
                get("/api/health/deep", PROBE),
            ],
        },
    },
    Example {
        name: "business_metrics",
        label: "business_metrics",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Addr("BIND"),
            requests: &[
                post("/api/assets/model/generate?seconds=42", &[201]),
                post(
                    "/api/assets/texture/generate?seconds=7&fail=timeout",
                    &[502],
                ),
                post("/api/login/github", &[204]),
                get("/metrics/business", &[200]).contains("asset_generations_total"),
            ],
        },
    },
    Example {
        name: "custom_health_check",
        label: "custom_health_check",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                get("/health/ready", PROBE),
                post("/enqueue/250", &[200]).contains("backlog 250"),
                get("/health/ready", PROBE).header(&[("authorization", "Bearer demo-token")]),
                post("/enqueue/5000", &[200]).contains("backlog 5250"),
                get("/health/checks/jobs", PROBE),
                post("/drain", &[200]).contains("backlog 0"),
            ],
        },
    },
    Example {
        name: "sentry_errors",
        label: "sentry_errors",
        kind: Kind::Service {
            args: &[],
            bind: Bind::Port,
            requests: &[
                get("/checkout/42?password=hunter2", &[500])
                    .header(&[("authorization", "Bearer abc123def456")]),
                get("/orders/7", &[200]).contains("served from cache"),
                get("/panic", &[500]),
                get("/missing", &[404]),
            ],
        },
    },
    Example {
        name: "e2e_target",
        label: "e2e_target bare",
        kind: Kind::Service {
            args: &["bare"],
            bind: Bind::Port,
            requests: &[get("/", &[200]).contains("hello, world")],
        },
    },
    Example {
        name: "e2e_target",
        label: "e2e_target obs",
        kind: Kind::Service {
            args: &["obs"],
            bind: Bind::Port,
            requests: &[get("/", &[200]).contains("hello, world")],
        },
    },
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
    "QDRANT_ADDR",
    "PORT",
    "BIND",
];

pub(crate) fn run() -> Result<(), String> {
    let root = workspace_root();
    check_every_example_is_listed(&root)?;
    let mut build = crate::cargo();
    build.args(["build", "-p", "obs", "--all-features", "--examples"]);
    crate::run(&mut build)?;
    let dir = target_dir(&root).join("debug").join("examples");
    let logs = target_dir(&root).join("xtask-examples");

    let started = Instant::now();
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let scratch = logs.join(example.label.replace(' ', "-"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let result = match &example.kind {
            Kind::OneShot { args, check } => one_shot(&dir, example, args, *check, &scratch),
            Kind::Service {
                args,
                bind,
                requests,
            } => service(&dir, example, args, *bind, requests, &scratch),
        };
        match result {
            Ok(line) => println!("xtask examples: {}: {line}", example.label),
            Err(e) => {
                eprintln!(
                    "xtask examples: {} FAILED: {e}\n{}",
                    example.label,
                    output_tail(&scratch)
                );
                failures.push(example.label);
            }
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} of {} example runs failed: {}",
            failures.len(),
            EXAMPLES.len(),
            failures.join(", ")
        ));
    }
    println!(
        "xtask examples: all {} example runs passed in {:.1} s",
        EXAMPLES.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn check_every_example_is_listed(root: &Path) -> Result<(), String> {
    let dir = root.join("examples");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut missing = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if !EXAMPLES.iter().any(|e| e.name == stem) {
                missing.push(stem);
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "examples without a smoke test (add them to EXAMPLES in xtask/src/examples.rs): {}",
            missing.join(", ")
        ))
    }
}

/// The example's command with service variables removed and stdout/stderr going to files in
/// `scratch`.
fn command(dir: &Path, name: &str, args: &[String], scratch: &Path) -> Result<Command, String> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(format!(
            "{} was not built (is the example in Cargo.toml?)",
            path.display()
        ));
    }
    let mut cmd = Command::new(path);
    cmd.args(args);
    for var in SERVICE_VARS {
        cmd.env_remove(var);
    }
    let out = File::create(scratch.join("stdout.log")).map_err(|e| e.to_string())?;
    let err = File::create(scratch.join("stderr.log")).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    Ok(cmd)
}

fn one_shot(
    dir: &Path,
    example: &Example,
    args: &[&str],
    check: fn(&str, &Path) -> Result<(), String>,
    scratch: &Path,
) -> Result<String, String> {
    let out_dir = scratch.join("out");
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{scratch}", &out_dir.to_string_lossy()))
        .collect();
    let started = Instant::now();
    let mut child = command(dir, example.name, &args, scratch)?
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let status = wait_timeout(&mut child, Duration::from_secs(120))?
        .ok_or_else(|| "did not finish within 120 s".to_owned())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    let stdout = std::fs::read_to_string(scratch.join("stdout.log")).unwrap_or_default();
    check(&stdout, &out_dir).map_err(|e| format!("exited 0, but {e}"))?;
    Ok(format!(
        "exited 0 in {:.1} s, output checked",
        started.elapsed().as_secs_f64()
    ))
}

fn service(
    dir: &Path,
    example: &Example,
    args: &[&str],
    bind: Bind,
    requests: &[Req],
    scratch: &Path,
) -> Result<String, String> {
    let port = free_port()?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut cmd = command(dir, example.name, &args, scratch)?;
    match bind {
        Bind::Port => cmd.env("PORT", port.to_string()),
        Bind::Addr(var) => cmd.env(var, format!("127.0.0.1:{port}")),
    };
    cmd.env("LOG_FORMAT", "json");
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("could not start: {e}"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let result = wait_live(&mut child, addr).and_then(|up| {
        for req in requests {
            check_request(addr, req)?;
        }
        Ok(up)
    });
    let stopped = stop(&mut child);
    let up = result?;
    stopped?;
    Ok(format!(
        "answered /health/live 200 after {:.1} s, {} request(s) checked, stopped in {:.1} s total",
        up.as_secs_f64(),
        requests.len(),
        started.elapsed().as_secs_f64()
    ))
}

/// Polls `GET /health/live` until it answers 200 (at most 30 s); the time it took.
fn wait_live(child: &mut Child, addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited early with {status}"));
        }
        let last = match request(addr, &get("/health/live", &[200])) {
            Ok((200, _)) => return Ok(started.elapsed()),
            Ok((code, _)) => format!("status {code}"),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "GET /health/live did not answer 200 within 30 s (last: {last})"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_request(addr: SocketAddr, req: &Req) -> Result<(), String> {
    let what = format!("{} {}", req.method, req.path);
    let (status, response) = request(addr, req).map_err(|e| format!("{what}: {e}"))?;
    if !req.status.contains(&status) {
        return Err(format!(
            "{what} answered {status}, expected {:?}: {}",
            req.status,
            shorten(&response)
        ));
    }
    if let Some(fragment) = req.contains {
        if !response.contains(fragment) {
            return Err(format!(
                "{what} answered {status} without {fragment:?}: {}",
                shorten(&response)
            ));
        }
    }
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

/// A minimal HTTP/1.1 request (`Connection: close`): the status code and the whole response
/// (head and body) as text.
fn request(addr: SocketAddr, req: &Req) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        req.path,
        req.body.len()
    );
    for (name, value) in req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(req.body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("unexpected response {:?}", shorten(&text)))?;
    Ok((code, text))
}

fn shorten(s: &str) -> String {
    const MAX: usize = 600;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

fn expect_all(stdout: &str, fragments: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = fragments
        .iter()
        .copied()
        .filter(|f| !stdout.contains(f))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("its stdout lacks {missing:?}"))
    }
}

fn expect_file(dir: &Path, name: &str, fragments: &[&str]) -> Result<(), String> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    expect_all(&text, fragments).map_err(|e| format!("{name}: {e}"))
}

/// The last lines of the example's stdout and stderr, for failure messages.
fn output_tail(scratch: &Path) -> String {
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log"] {
        let path = scratch.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        out.push_str(&format!(
            "--- {} (last {} of {} lines)\n",
            path.display(),
            tail.len(),
            lines.len()
        ));
        for line in tail {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// SIGINT (graceful shutdown), then SIGKILL after 10 s.
fn stop(child: &mut Child) -> Result<(), String> {
    if child.try_wait().ok().flatten().is_some() {
        return Ok(());
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    match wait_timeout(child, Duration::from_secs(10))? {
        Some(_) => Ok(()),
        None => Err("did not stop within 10 s of SIGINT".to_owned()),
    }
}

/// Waits for `child` to exit; kills it (and returns `None`) after `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>, String> {
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
