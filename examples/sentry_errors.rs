//! Sentry errors: an axum service that reports failures to the DSN in `SENTRY_DSN` — and
//! works exactly the same without one (every Sentry call is then a no-op, and one startup
//! line says Sentry is disabled).
//!
//! ```text
//! cargo run --example sentry_errors --features sentry        # PORT=3000 by default
//! curl -i http://127.0.0.1:3000/health/live
//! ```
//!
//! Point it at a local Bugsink (a Sentry-compatible server, from PyPI):
//!
//! ```text
//! cargo xtask bugsink          # installs/starts Bugsink on 127.0.0.1:8765, prints its DSN
//! SENTRY_DSN=http://<key>@127.0.0.1:8765/1 cargo run --example sentry_errors --features sentry
//! curl -i 'http://127.0.0.1:3000/checkout/42?password=hunter2' -H 'Authorization: Bearer abc123def456'
//! # then open http://127.0.0.1:8765 (user/password from target/bugsink/8765/bugsink_conf.py,
//! # or create one with bugsink-manage createsuperuser) and look at the issue
//! ```
//!
//! What it shows:
//! - `/checkout/{id}` fails with a 500: `SentryLayer` captures it with the request id tag,
//!   method, route template, user id, the breadcrumbs the handler left (explicit and from
//!   `tracing::info!`) and the `cart` context; the password in the query string, the
//!   `Authorization` header and the email in the breadcrumb are scrubbed before sending;
//! - `/orders/{id}` captures a handled error with `capture_error` and still answers 200;
//! - `/panic` panics: captured as a fatal event, then turned into a 500 by tower-http's
//!   `CatchPanicLayer` (outermost, with a custom handler: the default one logs an ERROR that
//!   the tracing layer would report as a second event);
//! - `/missing` answers 404: not reported (4xx are not errors of the service);
//! - `/health/live|ready` answer outside the Sentry and access-log layers (probes are
//!   neither reported nor logged).
use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use obs::core::config::Config;
use obs::core::sentry as report;
use obs::health::{check_fn, Health, Probes, Registration};
use obs::tower::health::HealthEndpoints;
use obs::tower::{AccessLogLayer, RequestIdLayer, SentryLayer};
use tracing_subscriber::prelude::*;

async fn checkout(Path(id): Path<u64>) -> (StatusCode, &'static str) {
    report::set_user(&format!("user-{id}"));
    report::breadcrumb(
        "auth",
        "login by jane.doe@example.com",
        [("method", "password")],
    );
    tracing::info!(cart_id = id, "charging card");
    report::with_context("cart", [("items", 3), ("total_cents", 4200)]);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "payment provider unavailable\n",
    )
}

async fn order(Path(id): Path<u64>) -> String {
    let err = std::io::Error::other(format!("inventory lookup failed for order {id}"));
    report::capture_error(&err, [("order_id", id)]);
    format!("order {id}: served from cache\n")
}

async fn panics() -> &'static str {
    if std::hint::black_box(true) {
        panic!("this handler always panics");
    }
    "unreachable"
}

fn app() -> Router {
    Router::new()
        .route("/checkout/{id}", get(checkout))
        .route("/orders/{id}", get(order))
        .route("/panic", get(panics))
        // Router::layer wraps every route: SentryLayer sees the route template and, inside
        // RequestIdLayer (added after, so outer), the request context.
        .layer(SentryLayer::new())
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new())
        // Outermost: turns the (already reported) panic into a 500. `custom` because the
        // default handler logs an ERROR, which the tracing layer would report a second time.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .merge(health_router())
}

/// `/health/*` with a liveness check of the process only (this service has no dependency).
fn health_router() -> Router {
    let health = Health::builder()
        .service("sentry-errors-example", env!("CARGO_PKG_VERSION"))
        .register(Registration::new("process", check_fn(|| async {})).probes(Probes::LIVE))
        .build()
        .expect("valid health registrations");
    HealthEndpoints::new(health).router()
}

fn panic_response(_: Box<dyn std::any::Any + Send>) -> axum::http::Response<String> {
    let mut res = axum::http::Response::new("internal error\n".to_owned());
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    // Logging plus the Sentry tracing layer (INFO/WARN → breadcrumbs, ERROR → events).
    tracing_subscriber::registry()
        .with(obs::core::logging::layer(&config.log, std::io::stdout))
        .with(report::tracing_layer())
        .init();
    // Before the runtime starts its worker threads; keep the guard until the end (flushes).
    let sentry = obs::sentry::init(&config.sentry);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let port: u16 = match std::env::var("PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("PORT must be a port number (0-65535), got {p:?}"))?,
            Err(_) => 3000,
        };
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        println!(
            "sentry_errors listening on {base} (Sentry {}) — try:",
            if sentry.is_enabled() { "on" } else { "off" }
        );
        println!("  curl -i '{base}/checkout/42?password=hunter2' -H 'Authorization: Bearer abc123def456'");
        println!("  curl -i {base}/orders/7");
        println!("  curl -i {base}/panic");
        println!("  curl -i {base}/missing");
        println!("  curl -i {base}/health/live");
        axum::serve(
            listener,
            app().into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    drop(sentry);
    Ok(())
}
