//! The target of `cargo xtask bench-e2e`: a hello-world axum service, bare or behind
//! `obs.layer()`, for end-to-end overhead under `wrk` load.
//!
//! ```text
//! cargo run --release --example e2e_target --features sentry -- bare   # PORT=3000
//! cargo run --release --example e2e_target --features sentry -- obs
//! ```
//!
//! Both variants install the same obs logging subscriber (JSON, `info`). The `obs` variant
//! adds the whole stack: request IDs, Sentry layer (hub without a DSN, feature `sentry`),
//! access log with `LOG_REQUESTS=false`, HTTP RED metrics, and an in-memory limiter
//! (approximate mode) with a limit no benchmark reaches. It prints its URL once listening.
//!
//! Both answer `GET /health/live` (`curl -i http://127.0.0.1:3000/health/live`) for the
//! smoke test: `obs.router()` in the `obs` variant, the same endpoints over a liveness-only
//! registry in the `bare` one. The benchmark loads `/` only.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use obs::core::config::Config;

async fn hello() -> &'static str {
    "hello, world\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "obs".into());
    let mut config = Config::from_env()?;
    config.log.log_requests = false;
    let app = Router::new()
        .route("/", get(hello))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    let (app, obs) = match variant.as_str() {
        "bare" => {
            obs::core::logging::try_init(&config.log)?;
            let health = obs::health::Health::builder()
                .register(
                    obs::health::Registration::new("process", obs::health::check_fn(|| async {}))
                        .probes(obs::health::Probes::LIVE),
                )
                .build()?;
            let probes = obs::tower::health::HealthEndpoints::new(health).router();
            (app.merge(probes), None)
        }
        "obs" => {
            let limiter = obs::ratelimit::Limiter::builder("http")
                .limit(u32::MAX / 2)
                .window(Duration::from_secs(60))
                .mode(obs::ratelimit::Mode::Approximate)
                .build_in_memory()?;
            let obs = obs::Obs::builder()
                .config(config)
                .limiter(limiter)
                .build()
                .await?;
            (app.layer(obs.layer()).merge(obs.router()), Some(obs))
        }
        other => return Err(format!("variant must be bare or obs, got {other:?}").into()),
    };
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    println!(
        "e2e_target {variant} listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(obs) = obs {
        obs.shutdown().await;
    }
    Ok(())
}
