//! Health endpoints (feature `health`): `/health/live`, `/health/ready`, `/health/startup`,
//! `/health/deep` and `/health/checks/{name}`, serving [`obs_health`] reports as JSON.
//!
//! - Body: `{status, probe, timestamp, latency_ms, checks: {name: {status, required, latency_ms,
//!   details, error}}, system}` — the reference services' shape.
//! - Status code: 200 for healthy and degraded, 503 for unhealthy ([`StatusCodes`] to change).
//! - `Cache-Control: no-store` and `Content-Type: application/json` on every response.
//! - Details (`details`, `error`/`message`, `system`) are hidden unless [`DetailsAccess`] allows
//!   them — by default they are hidden; with [`DetailsAccess::bearer`] a request carrying
//!   `Authorization: Bearer <token>` (compared in constant time) sees them. Check names,
//!   statuses and latencies are always visible.
//! - `/health/live` runs only checks registered for [`Probes::LIVE`](obs_health::Probes::LIVE),
//!   never dependency checks; with none registered it answers healthy as long as the process
//!   can answer at all.
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use obs_health::{check_fn, Health};
//! use obs_tower::health::{DetailsAccess, HealthEndpoints};
//! use tower::ServiceExt;
//!
//! let health = Health::builder().check("database", check_fn(|| async { true })).build().unwrap();
//! let app: axum::Router = HealthEndpoints::new(health)
//!     .details(DetailsAccess::bearer("s3cret"))
//!     .router();
//!
//! let res = app
//!     .oneshot(http::Request::get("/health/ready").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! # }
//! # #[cfg(not(feature = "axum"))] fn main() {}
//! ```
//!
//! Without axum, mount [`HealthService`]s (one per probe) with any tower router, e.g. the
//! reference services' paths `/health` → [`HealthEndpoints::service`]`(Probe::Live)` and
//! `/ready` → `service(Probe::Ready)`.

use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use obs_health::{Health, Probe, Report, Status};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;

/// Who may see details (messages, details maps, the system block).
#[derive(Clone, Default)]
pub enum DetailsAccess {
    /// Nobody: statuses and latencies only (the default).
    #[default]
    Hidden,
    /// Everybody (only on a private port or network).
    Public,
    /// Requests with `Authorization: Bearer <token>`; compared in constant time.
    Bearer(Arc<[u8]>),
}

impl DetailsAccess {
    /// Details for requests bearing `token`.
    pub fn bearer(token: impl AsRef<[u8]>) -> Self {
        DetailsAccess::Bearer(Arc::from(token.as_ref()))
    }

    /// Whether `req` may see details.
    pub fn allows<B>(&self, req: &Request<B>) -> bool {
        match self {
            DetailsAccess::Hidden => false,
            DetailsAccess::Public => true,
            DetailsAccess::Bearer(token) => req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| {
                    let v = v.as_bytes();
                    let scheme = v.get(..7)?;
                    scheme
                        .eq_ignore_ascii_case(b"bearer ")
                        .then(|| v[7..].trim_ascii())
                })
                .is_some_and(|given| bool::from(given.ct_eq(token))),
        }
    }
}

impl fmt::Debug for DetailsAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetailsAccess::Hidden => f.write_str("Hidden"),
            DetailsAccess::Public => f.write_str("Public"),
            DetailsAccess::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// HTTP status per health status. Default: 200 / 200 / 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCodes {
    /// For `healthy`.
    pub healthy: StatusCode,
    /// For `degraded`.
    pub degraded: StatusCode,
    /// For `unhealthy`.
    pub unhealthy: StatusCode,
}

impl Default for StatusCodes {
    fn default() -> Self {
        StatusCodes {
            healthy: StatusCode::OK,
            degraded: StatusCode::OK,
            unhealthy: StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl StatusCodes {
    /// The code for `status`.
    pub fn for_status(&self, status: Status) -> StatusCode {
        match status {
            Status::Healthy => self.healthy,
            Status::Degraded => self.degraded,
            Status::Unhealthy => self.unhealthy,
        }
    }
}

#[derive(Debug)]
struct Config {
    health: Health,
    details: DetailsAccess,
    codes: StatusCodes,
}

/// The health endpoints over one [`Health`] registry: configure, then take a
/// [`router`](Self::router) (feature `axum`) or per-probe [`service`](Self::service)s.
#[derive(Debug, Clone)]
pub struct HealthEndpoints {
    config: Arc<Config>,
}

impl HealthEndpoints {
    /// Endpoints for `health` with details hidden and the default status codes.
    pub fn new(health: Health) -> Self {
        HealthEndpoints {
            config: Arc::new(Config {
                health,
                details: DetailsAccess::Hidden,
                codes: StatusCodes::default(),
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Arc::try_unwrap(self.config).unwrap_or_else(|shared| Config {
            health: shared.health.clone(),
            details: shared.details.clone(),
            codes: shared.codes,
        });
        f(&mut config);
        HealthEndpoints {
            config: Arc::new(config),
        }
    }

    /// Who may see details.
    #[must_use]
    pub fn details(self, access: DetailsAccess) -> Self {
        self.map(|c| c.details = access)
    }

    /// The status-code mapping.
    #[must_use]
    pub fn status_codes(self, codes: StatusCodes) -> Self {
        self.map(|c| c.codes = codes)
    }

    /// The registry behind the endpoints.
    pub fn health(&self) -> &Health {
        &self.config.health
    }

    /// A tower service answering `probe` on any path.
    pub fn service(&self, probe: Probe) -> HealthService {
        HealthService {
            config: self.config.clone(),
            target: Target::Probe(probe),
        }
    }

    /// A tower service answering for the single check named by the last path segment
    /// (`/health/checks/database` → check `database`; 404 for unknown names).
    pub fn check_service(&self) -> HealthService {
        HealthService {
            config: self.config.clone(),
            target: Target::CheckFromPath,
        }
    }

    /// Answers `probe` for `req` (useful inside your own handlers).
    pub async fn respond<B>(&self, probe: Probe, req: &Request<B>) -> Response<String> {
        let show = self.config.details.allows(req);
        let report = self.config.health.probe(probe).await;
        render(&self.config, &report, show)
    }

    /// An axum router with `/health/live`, `/health/ready`, `/health/startup`, `/health/deep`
    /// and `/health/checks/{name}`. Merge it into your app (`app.merge(endpoints.router())`).
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.router_at("/health")
    }

    /// Like [`router`](Self::router) under another prefix, e.g. `"/api/health"` for
    /// `/api/health/live|ready|startup|deep` and `/api/health/checks/{name}`.
    ///
    /// # Panics
    /// If `prefix` does not start with `/` (axum rejects such paths).
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router_at<S>(&self, prefix: &str) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let prefix = prefix.trim_end_matches('/');
        axum::Router::new()
            .route_service(&format!("{prefix}/live"), self.service(Probe::Live))
            .route_service(&format!("{prefix}/ready"), self.service(Probe::Ready))
            .route_service(&format!("{prefix}/startup"), self.service(Probe::Startup))
            .route_service(&format!("{prefix}/deep"), self.service(Probe::Deep))
            .route_service(&format!("{prefix}/checks/{{name}}"), self.check_service())
    }
}

fn render(config: &Config, report: &Report, show_details: bool) -> Response<String> {
    let body = if show_details {
        report.to_json()
    } else {
        report.redacted().to_json()
    };
    json_response(config.codes.for_status(report.status), body)
}

fn json_response(code: StatusCode, body: String) -> Response<String> {
    let mut res = Response::new(body);
    *res.status_mut() = code;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Debug, Clone)]
enum Target {
    Probe(Probe),
    CheckFromPath,
}

/// A tower service answering one probe (or one check) with a JSON report; from
/// [`HealthEndpoints::service`] / [`HealthEndpoints::check_service`]. Never fails.
#[derive(Debug, Clone)]
pub struct HealthService {
    config: Arc<Config>,
    target: Target,
}

/// Response future of [`HealthService`].
pub struct HealthFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>,
}

impl fmt::Debug for HealthFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthFuture").finish_non_exhaustive()
    }
}

impl Future for HealthFuture {
    type Output = Result<Response<String>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B> tower_service::Service<Request<B>> for HealthService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = HealthFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let show = config.details.allows(&req);
        let target = match &self.target {
            Target::Probe(p) => Ok(*p),
            Target::CheckFromPath => Err(req
                .uri()
                .path()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned()),
        };
        HealthFuture {
            inner: Box::pin(async move {
                let report = match target {
                    Ok(probe) => config.health.probe(probe).await,
                    Err(name) => match config.health.check_report(&name).await {
                        Some(report) => report,
                        None => {
                            return Ok(json_response(
                                StatusCode::NOT_FOUND,
                                "{\"error\":\"no such health check\"}".to_owned(),
                            ))
                        }
                    },
                };
                Ok(render(&config, &report, show))
            }),
        }
    }
}

/// Exports check results as Prometheus metrics (features `health` + `metrics`): a
/// [`HealthObserver`](obs_health::HealthObserver) to pass to
/// [`HealthBuilder::observer`](obs_health::HealthBuilder::observer).
///
/// - `health_check_status{check}` (gauge): `0` healthy, `1` degraded, `2` unhealthy — alert on
///   `health_check_status > 1`;
/// - `health_check_duration_seconds{check}` (histogram): duration of each real run (cache hits
///   are not observed).
///
/// Both are in the system scope (`/metrics`), at most 1,000 checks.
///
/// ```
/// use obs_health::{check_fn, Health, Probe};
/// use obs_metrics::{Format, Registry, Scope};
/// use obs_tower::health::HealthMetrics;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = Registry::new();
/// let health = Health::builder()
///     .check("database", check_fn(|| async { true }))
///     .observer(HealthMetrics::register(&registry).unwrap())
///     .build()
///     .unwrap();
/// health.probe(Probe::Ready).await;
/// let text = registry.encode(Format::Prometheus, &[Scope::System]);
/// assert!(text.contains("health_check_status{check=\"database\"} 0"));
/// # }
/// ```
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[derive(Debug, Clone)]
pub struct HealthMetrics {
    status: obs_metrics::DynGauge<1>,
    duration: obs_metrics::DynHistogram<1>,
}

#[cfg(feature = "metrics")]
impl HealthMetrics {
    /// Registers the two families in `registry`.
    ///
    /// # Errors
    /// If the names are already registered.
    pub fn register(registry: &obs_metrics::Registry) -> Result<Self, obs_metrics::RegistryError> {
        use obs_metrics::{opts, Scope};
        let status = registry.dyn_gauge(
            "health_check_status",
            "Reported status of a health check: 0 healthy, 1 degraded, 2 unhealthy.",
            Scope::System,
            opts().labels(&["check"]),
        )?;
        let duration = registry.dyn_histogram(
            "health_check_duration_seconds",
            "Duration of health check runs.",
            Scope::System,
            opts().labels(&["check"]).buckets(&[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        Ok(HealthMetrics { status, duration })
    }
}

#[cfg(feature = "metrics")]
impl obs_health::HealthObserver for HealthMetrics {
    fn on_check(&self, event: &obs_health::CheckEvent<'_>) {
        let code = match event.status {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unhealthy => 2,
        };
        self.status.set([event.name], code);
        self.duration
            .observe([event.name], event.latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<()> {
        let mut b = Request::get("/health/deep");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn bearer_access() {
        let a = DetailsAccess::bearer("tok");
        assert!(a.allows(&req(Some("Bearer tok"))));
        assert!(a.allows(&req(Some("bearer tok"))));
        assert!(!a.allows(&req(Some("Bearer tok2"))));
        assert!(!a.allows(&req(Some("Bearer to"))));
        assert!(!a.allows(&req(Some("Basic tok"))));
        assert!(!a.allows(&req(None)));
        assert!(!DetailsAccess::Hidden.allows(&req(Some("Bearer tok"))));
        assert!(DetailsAccess::Public.allows(&req(None)));
        assert_eq!(format!("{a:?}"), "Bearer(<redacted>)");
    }
}
