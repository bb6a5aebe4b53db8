//! The exposition and the generated rules checked by the real `promtool` (Debian package
//! `prometheus`; `cargo xtask test` installs it).

#[path = "../examples/business_metrics.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use obs_metrics::generate::{rules, Slo};
use obs_metrics::http::HttpMetrics;
use obs_metrics::{opts, Format, Registry, Scope};
use tower::ServiceExt;

fn require_promtool() {
    obs_test_support::require_tool("promtool", "apt-get install prometheus");
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("promtool runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn call(app: &axum::Router, method: &str, uri: &str) -> (u16, String) {
    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn served_exposition_passes_promtool_check_metrics() {
    require_promtool();
    let registry = Registry::new();
    let app = service::app(&registry);
    for uri in [
        "/api/assets/model/generate?seconds=42",
        "/api/assets/texture/generate?seconds=7&fail=timeout",
        "/api/login/github",
        "/api/asset/create",
    ] {
        let (status, _) = call(&app, "POST", uri).await;
        assert!(status < 500 || status == 502, "{uri}: {status}");
    }
    let (status, _) = call(&app, "GET", "/wp-login.php").await;
    assert_eq!(status, 404);
    // A capped dynamic family that overflowed, as the rate-limit/health crates will register.
    let limiter = registry
        .dyn_counter::<2>(
            "ratelimit_requests_total",
            "Rate-limit decisions by limiter and decision.",
            Scope::System,
            opts().labels(&["limiter", "decision"]).max_series(1),
        )
        .unwrap();
    limiter.inc(["api", "allowed"]);
    limiter.inc(["api", "denied \"quoted\" \\ value"]);

    let (status, system) = call(&app, "GET", "/metrics").await;
    assert_eq!(status, 200);
    let (status, business) = call(&app, "GET", "/metrics/business").await;
    assert_eq!(status, 200);
    assert!(system.contains("http_requests_total{method=\"POST\",route=\"/api/assets/{type}/generate\",status=\"2xx\"} 1\n"), "{system}");
    assert!(
        system.contains(
            "http_requests_total{method=\"GET\",route=\"__unmatched__\",status=\"4xx\"} 1\n"
        ),
        "{system}"
    );
    assert!(system.contains("process_resident_memory_bytes "));
    assert!(system
        .contains("obs_metrics_series_overflow_total{metric=\"ratelimit_requests_total\"} 1\n"));
    assert!(
        business.contains("asset_generations_total{type=\"model\",status=\"success\"} 1\n"),
        "{business}"
    );
    assert!(business.contains(
        "ai_tokens_used_total{provider=\"openai\",model=\"gpt-4o\",type=\"completion\"} 2400\n"
    ));
    assert!(
        !system.contains("asset_generations_total") && !business.contains("http_requests_total")
    );

    // RequestIdLayer scopes the request context, so the opt-in counter carries an exemplar.
    let om = registry.encode(Format::OpenMetrics, &[Scope::Business]);
    assert!(
        om.contains(
            "asset_generations_total{type=\"model\",status=\"success\"} 1 # {request_id=\""
        ),
        "{om}"
    );

    for (what, body) in [
        ("/metrics", system),
        ("/metrics/business", business),
        (
            "both scopes",
            registry.encode(Format::Prometheus, &[Scope::System, Scope::Business]),
        ),
    ] {
        let out = promtool(&["check", "metrics"], Some(&body));
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "promtool check metrics failed for {what}:\n{}\n--- exposition ---\n{body}",
            text(&out)
        );
    }
}

#[tokio::test]
async fn exposition_with_histogram_and_counter_exemplars_passes_promtool() {
    // promtool 2.x `check metrics` parses the Prometheus text format only, so it checks the
    // Prometheus body of a registry holding exemplars (they must be stripped cleanly); the
    // OpenMetrics body with exemplars is ingested by a real Prometheus in prometheus_e2e.rs.
    require_promtool();
    let registry = Registry::new();
    let h = registry
        .histogram::<()>(
            "job_duration_seconds",
            "Job time.",
            Scope::Business,
            opts().buckets(&[0.1, 1.0]).exemplars(),
        )
        .unwrap();
    let c = registry
        .counter::<()>("jobs_total", "Jobs.", Scope::Business, opts().exemplars())
        .unwrap();
    let ctx = obs_core::RequestContext::new(obs_core::RequestId::generate());
    assert!(ctx.set_trace_ids(obs_core::TraceIds {
        trace_id: obs_core::TraceId([0x11; 16]),
        span_id: obs_core::SpanId([0x22; 8]),
    }));
    ctx.scope(async {
        h.observe((), 0.5);
        h.observe((), 5.0);
        c.inc(());
    })
    .await;
    let om = registry.encode(Format::OpenMetrics, &[Scope::Business]);
    assert_eq!(om.matches(" # {request_id=").count(), 3, "{om}");
    let body = registry.encode(Format::Prometheus, &[Scope::Business]);
    assert!(!body.contains(" # "), "{body}");
    let out = promtool(&["check", "metrics"], Some(&body));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "promtool check metrics failed:\n{}\n--- exposition ---\n{body}",
        text(&out)
    );
}

#[test]
fn promtool_check_metrics_rejects_what_our_names_rules_prevent() {
    // Proves the check above can fail: a hand-written counter without `_total` is flagged.
    require_promtool();
    let bad = "# HELP logins Logins.\n# TYPE logins counter\nlogins 1\n";
    let out = promtool(&["check", "metrics"], Some(bad));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("_total"), "{}", text(&out));
}

fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(obs_test_support::unique_name(label));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn generated_rules_pass_promtool_check_rules() {
    require_promtool();
    let registry = Registry::new();
    let _app = service::app(&registry);
    let yaml = rules(&service::slos(), &registry.descriptors()).unwrap();
    let dir = temp_dir("rules");
    let file = dir.join("rules.yml");
    std::fs::write(&file, &yaml).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()], None);
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}\n{yaml}", text(&out));
    // 4 SLOs x (7 recording windows + page + ticket alerts).
    assert!(
        text(&out).contains("SUCCESS: 36 rules found"),
        "{}",
        text(&out)
    );
}

#[test]
fn burn_rate_page_alert_fires_on_fast_burn_and_not_on_healthy_traffic() {
    require_promtool();
    let registry = Registry::new();
    HttpMetrics::register(&registry).unwrap();
    let yaml = rules(
        &[Slo::http_availability("api", 0.999)],
        &registry.descriptors(),
    )
    .unwrap();
    let dir = temp_dir("rules-test");
    std::fs::write(dir.join("rules.yml"), &yaml).unwrap();
    let summary = "SLO api is burning its error budget fast";
    let description = "The error ratio of http_requests_total is consuming the 0.100% error budget of objective 0.999 too fast.";
    let test = format!(
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{{method="GET",route="/x",status="2xx"}}'
        values: '0+90x120'
      - series: 'http_requests_total{{method="GET",route="/x",status="5xx"}}'
        values: '0+10x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: SloErrorBudgetBurnPage
        exp_alerts:
          - exp_labels: {{severity: page, slo: api}}
            exp_annotations: {{summary: "{summary}", description: "{description}"}}
  - interval: 1m
    input_series:
      - series: 'http_requests_total{{method="GET",route="/x",status="2xx"}}'
        values: '0+9999x120'
      - series: 'http_requests_total{{method="GET",route="/x",status="5xx"}}'
        values: '0+1x120'
    alert_rule_test:
      - eval_time: 90m
        alertname: SloErrorBudgetBurnPage
        exp_alerts: []
      - eval_time: 90m
        alertname: SloErrorBudgetBurnTicket
        exp_alerts: []
"#
    );
    std::fs::write(dir.join("test.yml"), &test).unwrap();
    let out = promtool(
        &["test", "rules", dir.join("test.yml").to_str().unwrap()],
        None,
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}\n{yaml}", text(&out));
}
