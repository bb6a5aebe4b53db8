//! A webhook API rate-limited in two layers, like the reference services:
//!
//! 1. a global **per-IP** limit (`RateLimitLayer`): `RATE_LIMIT_MAX` requests per
//!    `RATE_LIMIT_WINDOW` seconds, 429 with `Retry-After` and `X-RateLimit-*` headers;
//! 2. a **per-repository** check in the handler (`REPO_RATE_LIMIT_MAX`, default 2, per window) (`checkLimit(repoName)` → allowed, remaining,
//!    retryAfter), whose 429 refunds the per-IP admission.
//!
//! On Redis when `REDIS_URL` is set (shared by every instance), in memory otherwise.
//! `/health/live|ready` sit outside the limit layer: probes are never rate limited.
//!
//! ```text
//! cargo run --example ratelimited_api --features ratelimit          # serves on 127.0.0.1:$PORT (3000)
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example ratelimited_api --features ratelimit
//! curl -i -X POST localhost:3000/repos/octo/hello/webhook
//! curl -i localhost:3000/health/live
//! cargo run --example ratelimited_api --features ratelimit -- demo  # sends requests, prints, exits
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Response};
use axum::routing::post;
use axum::Router;
use obs_core::config::{RateLimitConfig, ServerConfig};
use obs_health::{check_fn, Health, Probes, Registration};
use obs_ratelimit::{Limiter, LimiterBuilder, OutagePolicy};
use obs_tower::client_ip::TrustedProxies;
use obs_tower::health::HealthEndpoints;
use obs_tower::ratelimit::{set_headers, too_many_requests, RateLimitLayer};

async fn build(builder: LimiterBuilder) -> Limiter {
    match std::env::var("REDIS_URL") {
        Ok(url) => builder
            .build_redis(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to Redis at {url}: {e}")),
        Err(_) => builder.build_in_memory().expect("valid limiter settings"),
    }
}

async fn webhook(
    State(per_repo): State<Limiter>,
    Path((owner, repo)): Path<(String, String)>,
) -> Response<Body> {
    let name = format!("{owner}/{repo}");
    let d = per_repo.check(&name).await;
    tracing::info!(repo = %name, remaining = d.remaining, limit = d.limit, allowed = d.allowed, "[rate-limit] repo check");
    if !d.allowed {
        let mut resp = too_many_requests::<Body>(per_repo.name(), &d);
        *resp.body_mut() = Body::from(format!(
            r#"{{"error":"Rate limited per repository","retryAfter":{},"remainingRequests":{}}}"#,
            d.retry_after_secs(),
            d.remaining
        ));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        return resp;
    }
    let mut resp = Response::new(Body::from(format!("processed webhook for {name}\n")));
    set_headers(resp.headers_mut(), &d);
    resp
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().init();
    let config = RateLimitConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    let server = ServerConfig::from_env().unwrap_or_else(|e| panic!("{e}"));
    let backend = if std::env::var("REDIS_URL").is_ok() {
        "Redis"
    } else {
        "in-memory"
    };
    let per_ip = build(
        Limiter::builder("ip")
            .config(&config)
            .policy(OutagePolicy::FailOpen),
    )
    .await;
    let repo_max: u32 = std::env::var("REPO_RATE_LIMIT_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let per_repo = build(
        Limiter::builder("repo")
            .config(&config)
            .limit(repo_max)
            .policy(OutagePolicy::FallbackToMemory),
    )
    .await;
    println!(
        "rate limits on {backend}: {} requests per {:?} per IP, {repo_max} per repository",
        config.max, config.window
    );

    // Liveness only: the limiter's own outage policy decides what happens without Redis.
    let health = Health::builder()
        .service("ratelimited-api-example", env!("CARGO_PKG_VERSION"))
        .register(Registration::new("process", check_fn(|| async {})).probes(Probes::LIVE))
        .build()
        .expect("valid health registrations");
    let app = Router::new()
        .route("/repos/{owner}/{repo}/webhook", post(webhook))
        .with_state(per_repo)
        .layer(RateLimitLayer::per_client_ip(
            per_ip,
            TrustedProxies::loopback(),
        ))
        // Merged after the layer: probes are not rate limited.
        .merge(HealthEndpoints::new(health).router());

    let demo = std::env::args().nth(1).as_deref() == Some("demo");
    let port = if demo { 0 } else { server.port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    println!("listening on http://{addr}");
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !demo {
        server
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .unwrap();
        return;
    }
    tokio::spawn(async move { server.await.unwrap() });
    // Demo: one client hits one repository until the per-repository limit answers 429 (which
    // refunds the per-IP admission), then another repository until the per-IP limit answers
    // 429 (empty body). Statuses, rate-limit headers and bodies are printed.
    let repos = [
        "octo/a", "octo/a", "octo/a", "octo/b", "octo/b", "octo/c", "octo/d",
    ];
    for (i, repo) in repos.iter().enumerate() {
        let (status, headers) = post_once(addr, repo).await;
        println!("#{i} POST /repos/{repo}/webhook -> {status} {headers}");
    }
}

/// A minimal HTTP/1.1 POST (the example needs no HTTP client dependency).
async fn post_once(addr: SocketAddr, repo: &str) -> (String, String) {
    let repo = repo.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "POST /repos/{repo}/webhook HTTP/1.1\r\nHost: demo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default().to_owned();
        let mut interesting: Vec<&str> = lines
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("x-ratelimit") || l.starts_with("retry-after")
            })
            .collect();
        let body = body.trim();
        if !body.is_empty() {
            interesting.push(body);
        }
        (status, interesting.join("; "))
    })
    .await
    .unwrap()
}
