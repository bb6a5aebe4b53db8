//! End to end: a real `prometheus` server (Debian package; `cargo xtask test` installs it)
//! scrapes the `business_metrics` example service on loopback, and its HTTP query API must
//! report the request and business counters the test produced.
//!
//! Prometheus 2.x asks for OpenMetrics first, so this also proves that Prometheus ingests our
//! OpenMetrics exposition (exemplars included).

#[path = "../examples/business_metrics.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use obs_core::{RequestContext, RequestId, SpanId, TraceId, TraceIds};
use obs_metrics::{opts, Registry, Scope};

/// Kills the Prometheus server and removes its temp dir when the test ends (even on panic).
struct PromServer {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Minimal HTTP/1.1 client over std (one request per connection).
fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn start_prometheus(target: SocketAddr) -> PromServer {
    obs_test_support::require_tool("prometheus", "apt-get install prometheus");
    let dir = std::env::temp_dir().join(obs_test_support::unique_name("prom-e2e"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: obs-system
    metrics_path: /metrics
    static_configs: [{{targets: ["{target}"]}}]
  - job_name: obs-business
    metrics_path: /metrics/business
    static_configs: [{{targets: ["{target}"]}}]
"#
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    PromServer { child, dir, addr }
}

/// Value of an instant query that returns one sample, if it does yet.
fn query_one(prom: SocketAddr, q: &str) -> Option<f64> {
    let (status, body) = http(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", urlencode(q)),
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// Exemplars Prometheus stored for the series selected by `q` in the last/next hour.
fn query_exemplars(prom: SocketAddr, q: &str) -> Vec<serde_json::Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let Ok((200, body)) = http(
        prom,
        "GET",
        &format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            urlencode(q),
            now - 3600,
            now + 3600
        ),
    ) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn prometheus_scrapes_http_and_business_counters() {
    // The example service on an ephemeral loopback port.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registry = Registry::new();
    let app = service::app(&registry);
    // A histogram with exemplars, observed inside a traced request context.
    let traced = registry
        .histogram::<()>(
            "e2e_job_duration_seconds",
            "Job time (exemplar check).",
            Scope::Business,
            opts().buckets(&[1.0, 10.0]).exemplars(),
        )
        .unwrap();
    let request_id = RequestId::generate();
    let ctx = RequestContext::new(request_id.clone());
    assert!(ctx.set_trace_ids(TraceIds {
        trace_id: TraceId([0xab; 16]),
        span_id: SpanId([1; 8]),
    }));
    rt.block_on(ctx.scope(async { traced.observe((), 2.5) }));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let target = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });

    for _ in 0..3 {
        let (s, _) = http(target, "POST", "/api/assets/model/generate?seconds=42").unwrap();
        assert_eq!(s, 201);
    }
    let (s, _) = http(
        target,
        "POST",
        "/api/assets/texture/generate?seconds=7&fail=timeout",
    )
    .unwrap();
    assert_eq!(s, 502);
    let (s, _) = http(target, "GET", "/wp-login.php").unwrap();
    assert_eq!(s, 404);

    let prom = start_prometheus(target);
    let expectations: &[(&str, f64)] = &[
        (r#"up{job="obs-system"}"#, 1.0),
        (r#"up{job="obs-business"}"#, 1.0),
        (
            r#"http_requests_total{job="obs-system",method="POST",route="/api/assets/{type}/generate",status="2xx"}"#,
            3.0,
        ),
        (
            r#"http_requests_total{job="obs-system",method="POST",route="/api/assets/{type}/generate",status="5xx"}"#,
            1.0,
        ),
        (r#"sum(http_requests_total{route="__unmatched__"})"#, 1.0),
        (
            r#"asset_generations_total{job="obs-business",type="model",status="success"}"#,
            3.0,
        ),
        (
            r#"asset_generation_errors_total{type="texture",error_type="timeout"}"#,
            1.0,
        ),
        (
            r#"ai_tokens_used_total{provider="openai",model="gpt-4o",type="completion"}"#,
            4800.0,
        ),
        (
            r#"asset_generation_duration_seconds_bucket{type="model",le="60.0"}"#,
            3.0,
        ),
        (
            r#"count(process_resident_memory_bytes{job="obs-system"} > 0)"#,
            1.0,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let (last, exemplars) = loop {
        let last: Vec<_> = expectations
            .iter()
            .map(|(q, want)| (*q, *want, query_one(prom.addr, q)))
            .collect();
        let exemplars = (
            query_exemplars(prom.addr, "e2e_job_duration_seconds_bucket"),
            query_exemplars(prom.addr, "asset_generations_total"),
        );
        if last.iter().all(|(_, want, got)| *got == Some(*want))
            && !exemplars.0.is_empty()
            && !exemplars.1.is_empty()
        {
            break (last, exemplars);
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(prom.dir.join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not report the expected values within 60 s:\n{last:#?}\nexemplars: {exemplars:#?}\n--- prometheus log ---\n{log}");
        }
        // Bounded poll of the external server's state (scrape interval 1 s).
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(last.len(), expectations.len());
    // Prometheus parsed and stored our histogram bucket exemplar (OpenMetrics scrape).
    let (hist, counter) = exemplars;
    assert_eq!(hist.len(), 1, "{hist:#?}");
    assert_eq!(hist[0]["labels"]["trace_id"], "ab".repeat(16), "{hist:#?}");
    assert_eq!(hist[0]["labels"]["request_id"], request_id.as_str());
    assert_eq!(hist[0]["value"], "2.5", "{hist:#?}");
    // ...and the request-ID exemplars of the example's counter.
    assert!(
        counter.iter().all(|e| e["labels"]["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())),
        "{counter:#?}"
    );
    // Raw paths never become series.
    assert_eq!(
        query_one(
            prom.addr,
            r#"count(http_requests_total{route="/wp-login.php"})"#
        ),
        None
    );
    drop(prom);
    rt.shutdown_background();
}
