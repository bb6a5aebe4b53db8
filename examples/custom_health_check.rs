//! Writing a custom health check (for library authors) and serving it with the obs health
//! endpoints.
//!
//! ```text
//! cargo run --example custom_health_check --features health   # PORT=3000 by default
//! ```
//!
//! A job queue reports `degraded` once its backlog passes 100 jobs and `unhealthy` past 1,000.
//! The check is a plain type implementing `obs_health::HealthCheck`; the service registers it
//! (required, in the ready/startup/deep probes, 500 ms timeout, 1 s cache) next to a liveness
//! check that touches no dependency, and merges the `/health/*` router into its app.
//!
//! Try (the server prints these too):
//!
//! ```text
//! curl -s localhost:3000/health/ready | jq            # healthy, 200 (details hidden)
//! curl -s -XPOST localhost:3000/enqueue/250           # backlog 250
//! curl -s localhost:3000/health/ready -H 'authorization: Bearer demo-token' | jq
//!                                                     # degraded, still 200, with details
//! curl -s -XPOST localhost:3000/enqueue/5000          # backlog 5250
//! curl -si localhost:3000/health/ready | head -1      # 503 Service Unavailable
//! curl -s localhost:3000/health/live                  # still 200: liveness ignores the queue
//! curl -s localhost:3000/health/checks/jobs           # one check (like /api/health/mq)
//! curl -s -XPOST localhost:3000/drain                 # back to healthy
//! ```
//!
//! Results are cached for 1 s, so a probe right after a change may still show the previous
//! status.
//!
//! Needs no external service. Stop with Ctrl-C.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use obs_health::{check_fn, CheckFuture, CheckResult, Health, HealthCheck, Probes, Registration};
use obs_tower::health::{DetailsAccess, HealthEndpoints};

// ---- the library side: a queue client and its health check ----------------------------------

/// Stand-in for a broker client (RabbitMQ, SQS, a Redis list, ...).
#[derive(Debug, Default)]
struct JobQueue {
    depth: AtomicU64,
}

impl JobQueue {
    /// Asks the broker how many jobs are waiting.
    async fn depth(&self) -> Result<u64, std::io::Error> {
        Ok(self.depth.load(Ordering::Relaxed))
    }
}

/// Healthy up to `warn_above` waiting jobs, degraded up to `critical_above`, unhealthy beyond
/// or when the broker cannot be asked.
#[derive(Debug)]
struct QueueDepthCheck {
    queue: Arc<JobQueue>,
    warn_above: u64,
    critical_above: u64,
}

impl HealthCheck for QueueDepthCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            // No timeout here: the runner enforces the registration's timeout and drops this
            // future if the broker hangs.
            let depth = match self.queue.depth().await {
                Ok(depth) => depth,
                Err(e) => return CheckResult::unhealthy(format!("cannot read queue depth: {e}")),
            };
            let result = if depth > self.critical_above {
                CheckResult::unhealthy(format!(
                    "{depth} jobs waiting (critical above {})",
                    self.critical_above
                ))
            } else if depth > self.warn_above {
                CheckResult::degraded(format!(
                    "{depth} jobs waiting (warning above {})",
                    self.warn_above
                ))
            } else {
                CheckResult::healthy()
            };
            result
                .with_detail("depth", depth)
                .with_detail("warn_above", self.warn_above)
                .with_detail("critical_above", self.critical_above)
        })
    }
}

// ---- the service side -------------------------------------------------------------------------

async fn enqueue(State(queue): State<Arc<JobQueue>>, Path(n): Path<u64>) -> String {
    let depth = queue.depth.fetch_add(n, Ordering::Relaxed) + n;
    format!("backlog {depth}\n")
}

async fn drain(State(queue): State<Arc<JobQueue>>) -> &'static str {
    queue.depth.store(0, Ordering::Relaxed);
    "backlog 0\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();

    let queue = Arc::new(JobQueue::default());
    let health = Health::builder()
        .service("custom-health-check-example", env!("CARGO_PKG_VERSION"))
        .environment(std::env::var("APP_ENV").unwrap_or_else(|_| "development".into()))
        .register(
            Registration::new(
                "jobs",
                QueueDepthCheck {
                    queue: queue.clone(),
                    warn_above: 100,
                    critical_above: 1_000,
                },
            )
            .timeout(Duration::from_millis(500))
            .cache_ttl(Duration::from_secs(1)),
        )
        // Liveness: only the process itself, never a dependency.
        .register(
            Registration::new(
                "runtime",
                check_fn(|| async { tokio::task::yield_now().await }),
            )
            .probes(Probes::LIVE),
        )
        .build()?;

    let endpoints = HealthEndpoints::new(health).details(DetailsAccess::bearer("demo-token"));
    let app = Router::new()
        .route("/enqueue/{n}", post(enqueue))
        .route("/drain", post(drain))
        .with_state(queue)
        .merge(endpoints.router());

    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT must be a port number (0-65535), got {p:?}"))?,
        Err(_) => 3000,
    };
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}; try:");
    for line in [
        format!("curl -s {base}/health/ready"),
        format!("curl -s -XPOST {base}/enqueue/250"),
        format!("curl -s {base}/health/ready -H 'authorization: Bearer demo-token'"),
        format!("curl -s -XPOST {base}/enqueue/5000"),
        format!("curl -si {base}/health/ready"),
        format!("curl -s {base}/health/live"),
        format!("curl -s -XPOST {base}/drain"),
    ] {
        println!("  {line}");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
