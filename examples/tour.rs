//! The one-minute tour: starts an obs service in process on `127.0.0.1:<free port>`, fires a
//! scripted set of requests at it — normal, failing, rate-limited, health, metrics, a
//! telemetry run — prints what each piece recorded, and exits 0.
//!
//! ```text
//! cargo run --example tour                       # embedded defaults, pretty logs
//! cargo run --example tour --features sqlite     # + analytics over in-memory SQLite
//! cargo run --example tour --features sentry     # + the Sentry events a test transport received
//! ```
//!
//! Interleaved with the tour's own output are the service's log lines: the startup line
//! (`obs ready: ...`), one `obs::access` line per request with its `request_id`, and the
//! handlers' lines carrying the same id. The rate limit is set to 5 requests per minute so the
//! sixth request is refused. No external service is needed; with `REDIS_URL` /
//! `DATABASE_URL` set (and the features `redis` / `postgres`) the real ones are used.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use obs::core::config::Config;
use obs::core::logging::LogFormat;
use obs::Obs;

async fn hello() -> &'static str {
    tracing::info!("saying hello");
    "hello\n"
}

async fn fail() -> (StatusCode, &'static str) {
    tracing::warn!("the payment provider said no");
    (StatusCode::BAD_GATEWAY, "upstream failed\n")
}

async fn run(State(obs): State<Obs>, Path(id): Path<String>) -> String {
    let recorded =
        obs.recorder()
            .record_metric(id.clone(), obs::telemetry::MetricName::DURATION_MS, 1234.0);
    format!("run {id}: duration_ms=1234 {recorded:?}\n")
}

fn section(title: &str) {
    println!("\n=== {title}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::from_env()?;
    if std::env::var_os("LOG_FORMAT").is_none() {
        config.log.format = LogFormat::Pretty;
    }
    config.rate_limit.max = 5;
    config.rate_limit.window = Duration::from_secs(60);

    #[allow(unused_mut)]
    let mut builder = Obs::builder().config(config).service("tour", "1.0.0");
    // With feature `sentry`, events go to an in-process test transport so the tour can show
    // them (a real service sets SENTRY_DSN instead).
    #[cfg(feature = "sentry")]
    let transport = {
        let transport = sentry::test::TestTransport::new();
        let options = sentry::ClientOptions::new()
            .dsn("https://public@sentry.invalid/1")
            .transport(transport.clone());
        let options = obs::core::sentry::configure(options, Default::default());
        let hub = std::sync::Arc::new(sentry::Hub::new(
            Some(std::sync::Arc::new(options.into())),
            Default::default(),
        ));
        builder = builder.sentry_hub(hub);
        transport
    };
    let obs = builder.build().await?;
    println!("obs enabled: {}", obs.summary());

    let app = obs.apply(
        Router::new()
            .route("/hello", get(hello))
            .route("/fail", get(fail))
            .route("/runs/{id}", get(run))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
            .with_state(obs.clone()),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    println!("service listening on {base}");
    let client = reqwest::Client::new();
    let get = |path: &str, id: Option<&str>| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };

    section("1. a normal request: request id on the response, access line in the log");
    let res = get("/hello", Some("tour-hello-1")).await?;
    println!(
        "GET /hello -> {} x-request-id={} x-ratelimit-remaining={}",
        res.status(),
        res.headers()["x-request-id"].to_str()?,
        res.headers()["x-ratelimit-remaining"].to_str()?
    );
    let res = get("/hello", Some("bad id!")).await?;
    println!(
        "GET /hello with a hostile id -> {} x-request-id={} (replaced, never echoed)",
        res.status(),
        res.headers()["x-request-id"].to_str()?
    );

    section("2. a failing request: 502, WARN access line, Sentry event (feature sentry)");
    let res = get("/fail", Some("tour-fail-1")).await?;
    println!(
        "GET /fail -> {} x-request-id={}",
        res.status(),
        res.headers()["x-request-id"].to_str()?
    );
    #[cfg(feature = "sentry")]
    for event in transport.fetch_and_clear_events() {
        println!(
            "Sentry event: {:?} level={:?} tags request_id={:?} http.route={:?}",
            event.message.as_deref().unwrap_or_default(),
            event.level,
            event.tags.get("request_id"),
            event.tags.get("http.route")
        );
    }
    #[cfg(not(feature = "sentry"))]
    println!("Sentry: not built in (run with --features sentry to see the captured event)");

    section("3. telemetry: a run metric (written by the batcher, flushed at shutdown)");
    let res = get("/runs/tour-run-1", None).await?;
    println!(
        "GET /runs/tour-run-1 -> {} {}",
        res.status(),
        res.text().await?.trim()
    );

    section("4. rate limiting: 5 per minute per client IP, the 6th request gets 429");
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..2 {
        let res = get("/hello", None).await?;
        statuses.push(res.status().as_u16());
        last = Some(res);
    }
    let res = last.expect("two requests");
    println!("GET /hello x2 more (requests 5 and 6) -> {statuses:?}");
    println!(
        "the refused one: retry-after={:?} x-ratelimit-limit={:?} (still has x-request-id={:?})",
        res.headers().get("retry-after"),
        res.headers().get("x-ratelimit-limit"),
        res.headers().get("x-request-id")
    );
    let stats = obs.limiter().stats();
    println!("limiter stats: {stats:?}");

    section("5. health: probes are neither limited nor counted");
    for path in ["/health/live", "/health/ready"] {
        let res = get(path, None).await?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        let checks: Vec<String> = body["checks"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(name, v)| format!("{name}={}", v["status"].as_str().unwrap_or("?")))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "GET {path} -> {status} status={} checks=[{}]",
            body["status"].as_str().unwrap_or("?"),
            checks.join(", ")
        );
    }

    section("6. metrics: what /metrics says about all of the above");
    let text = get("/metrics", None).await?.text().await?;
    for line in text.lines().filter(|l| {
        (l.starts_with("http_requests_total") || l.starts_with("ratelimit_requests_total"))
            && !l.ends_with(" 0")
    }) {
        println!("{line}");
    }
    let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    println!("({families} metric families in all; business metrics at /metrics/business)");

    section("7. shutdown: telemetry and Sentry flushed");
    obs.shutdown().await;
    let stats = obs.recorder().stats();
    println!(
        "telemetry: {} run metric(s) written, {} dropped",
        stats.written_metrics,
        stats.dropped()
    );
    if obs.analytics_store().is_some() {
        let res = get(
            "/api/analytics/metrics?metric=duration_ms&aggregation=max",
            None,
        )
        .await?;
        println!(
            "GET /api/analytics/metrics -> {} {}",
            res.status(),
            res.text().await?.trim()
        );
    }
    server.abort();
    println!("\ntour done.");
    Ok(())
}
