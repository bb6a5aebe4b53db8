//! [`Obs`]: every obs piece the environment and the enabled features ask for, in one call.
//!
//! [`Obs::from_env`] reads [`Config::from_env`] (every variable, all errors at once) and builds:
//!
//! | piece | built when | backend |
//! |---|---|---|
//! | logging (`tracing` subscriber on stdout) | always, unless [`ObsBuilder::logging`]`(false)` or one is installed | `LOG_FORMAT`, `LOG_LEVEL`/`RUST_LOG` |
//! | Sentry (`obs::sentry::init_with`) | feature `sentry` | `SENTRY_DSN`; unset: one "disabled" log line, no-op calls |
//! | metrics registry + process metrics + HTTP RED metrics | feature `metrics` | in process, scraped at `/metrics` |
//! | health registry: `process` (live), `disk`, `memory`, plus `postgres`/`sqlite` and `redis` checks | feature `health` | `DATABASE_URL` (features `postgres`/`sqlite`), `REDIS_URL` (feature `redis`) |
//! | rate limiter (`RATE_LIMIT_MAX` per `RATE_LIMIT_WINDOW`, per client IP) | feature `ratelimit` | Redis with `REDIS_URL` + feature `redis`, in memory otherwise |
//! | OpenTelemetry tracer provider + server spans, W3C `traceparent` | feature `otel`, unless `OTEL_SDK_DISABLED` | OTLP/HTTP export with `OTEL_EXPORTER_OTLP_ENDPOINT`; otherwise trace ids only |
//! | telemetry recorder (`TELEMETRY_ENABLED` gates events; run metrics always) | feature `telemetry` | PostgreSQL with a `postgres://` `DATABASE_URL` + feature `postgres`; SQLite with a `sqlite:` one (feature `sqlite`); else the HTTP metrics API with `METRICS_API_URL` (bearer `METRICS_API_TOKEN`); else an in-memory SQLite (feature `sqlite`); otherwise a `tracing` sink |
//!
//! and logs one INFO line (target `obs`) saying what it enabled:
//!
//! ```text
//! obs ready: logging=json sentry=off metrics health=[process,disk,memory,redis] ratelimit=redis(5/60s) telemetry=sqlite(memory)
//! ```
//!
//! `METRICS_API_URL` is where a process *without its own store* sends its telemetry, as
//! GitTinkerer's runner posts its run metrics to the service's `/api/metrics/record`, which
//! writes them to PostgreSQL. So it replaces the embedded default (in-memory SQLite or the
//! `tracing` sink), but a configured `DATABASE_URL` stays the store: in the reference layout
//! both variables sit in the one `.env` and `METRICS_API_URL` points at the service itself,
//! so posting there as well would store every sample twice. The startup line says which was
//! chosen (`telemetry=http(host:port)`, or `telemetry=postgres(METRICS_API_URL unused)`).
//! An `https://` `METRICS_API_URL` needs a TLS-enabled HTTP client, which obs builds only with
//! feature `sentry` (reqwest with native-tls); without it, startup fails naming the variable.
//!
//! A variable that is set but unusable fails here, naming the variable ([`Error::var`]): a
//! malformed value ([`Error::Config`], every mistake at once) or a configured service that is
//! unreachable at startup ([`Error::Backend`]: Redis for the limiter, the telemetry database).
//! A variable that asks for a backend whose feature is off is logged as a warning and
//! ignored.
//!
//! # The HTTP side (feature `tower`)
//!
//! - [`Obs::layer`] is the whole tower stack, outermost first:
//!   `RequestId → Otel → Sentry → AccessLog → HttpMetrics → RateLimit`. Request IDs come first
//!   so every other layer (and the handler) sees the request context; the OpenTelemetry server
//!   span (feature `otel`) is next so it can record its trace ids on that context before
//!   anything logs or reports; Sentry wraps the rest so a
//!   panic anywhere inside is captured with that context; the access log and the metrics sit
//!   outside the limiter so `429`s are logged and counted like any other response; the
//!   limiter is innermost so a rejected request still gets its ID, log line and metrics.
//!   Add it with `Router::layer` (after the routes and an explicit `.fallback(..)`), so the
//!   layers see axum's `MatchedPath` (the route template, never the raw path).
//! - [`Obs::router`] serves `/metrics`, `/metrics/business`, `/health/live|ready|startup|deep`
//!   and, with a SQL telemetry store, `/api/analytics/metrics|export` (mount those behind your
//!   authentication in production: the export contains run ids).
//! - [`Obs::apply`] does both: your routes get [`Obs::layer`]; the endpoints are merged after
//!   layering with request IDs and the access log only, so probes and scrapes are neither
//!   counted as traffic nor rate limited.
//! - [`Obs::shutdown`] flushes telemetry (everything queued is written), spans (feature
//!   `otel`) and Sentry.
//!
//! # Add it to your service
//!
//! ```no_run
//! # #[cfg(all(feature = "tower", feature = "metrics", feature = "health"))]
//! # mod doc {
//! use axum::{http::StatusCode, routing::get, Router};
//! use std::net::SocketAddr;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Logging, Sentry, metrics, health checks, rate limiter, telemetry: what env + features enable.
//!     let obs = obs::Obs::from_env().await?;
//!
//!     let app = Router::new()
//!         .route("/hello", get(|| async { "hello\n" }))
//!         .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") });
//!     // Request IDs, Sentry, access log, RED metrics, rate limit + /metrics, /health/*.
//!     let app = obs.apply(app);
//!
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//!         .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!         .await?;
//!     obs.shutdown().await; // flush telemetry and Sentry
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! Tests build from a [`Config`] instead of the process environment:
//!
//! ```
//! # #[cfg(all(feature = "tower", feature = "metrics", feature = "health"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use obs::core::config::Config;
//! use tower::ServiceExt;
//!
//! let config = Config::from_lookup(|_| None).unwrap();
//! let obs = obs::Obs::builder().config(config).logging(false).build().await.unwrap();
//! let res = obs
//!     .router::<()>()
//!     .oneshot(http::Request::get("/health/live").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! obs.shutdown().await;
//! # }
//! # #[cfg(not(all(feature = "tower", feature = "metrics", feature = "health")))] fn main() {}
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};

use obs_core::config::{Config, ConfigErrors};
use obs_core::redact::Scrubber;

#[cfg(feature = "health")]
use obs_health::{Health, Registration};
#[cfg(feature = "metrics")]
use obs_metrics::{http::HttpMetrics, Registry};
#[cfg(feature = "ratelimit")]
use obs_ratelimit::Limiter;
#[cfg(feature = "telemetry")]
use obs_telemetry::Recorder;

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + 'static>;
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`Obs`] could not be built.
///
/// `Debug` prints the same message as `Display`, so a `main` that returns this error (or a
/// `Box<dyn Error>` holding it) shows `SENTRY_TRACES_SAMPLE_RATE must be a number between 0
/// and 1, got "1.5"` rather than a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more environment variables are malformed (every problem is listed).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A service named by a variable could not be used at startup.
    #[error("{component}: cannot use {var} ({target}): {source}")]
    Backend {
        /// What needed it (`rate limiter`, `telemetry`, `health check`).
        component: &'static str,
        /// The variable that configured it (`REDIS_URL`, `DATABASE_URL`).
        var: &'static str,
        /// Its value with credentials masked.
        target: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// A piece could not be assembled (invalid settings given to the builder, duplicate
    /// metric or check names).
    #[error("{component}: {source}")]
    Setup {
        /// Which piece.
        component: &'static str,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl Error {
    /// The environment variable at fault: the first one for [`Error::Config`], the service's
    /// for [`Error::Backend`], none for [`Error::Setup`].
    pub fn var(&self) -> Option<&str> {
        match self {
            Error::Config(errors) => errors.iter().next().map(|e| e.var()),
            Error::Backend { var, .. } => Some(var),
            Error::Setup { .. } => None,
        }
    }
}

#[allow(dead_code)] // used only with some features
fn setup(component: &'static str) -> impl FnOnce(BoxError) -> Error {
    move |source| Error::Setup { component, source }
}

/// Builds an [`Obs`]; see the [module docs](self).
#[must_use]
pub struct ObsBuilder {
    config: Option<Config>,
    lookup: Option<Lookup>,
    logging: bool,
    service: Option<(String, String)>,
    scrubber: Option<Scrubber>,
    health_token: Option<String>,
    #[cfg(feature = "sentry")]
    sentry_hub: Option<Arc<sentry::Hub>>,
    #[cfg(feature = "health")]
    registrations: Vec<Registration>,
    #[cfg(feature = "ratelimit")]
    limiter: Option<Limiter>,
    #[cfg(feature = "telemetry")]
    recorder: Option<Recorder>,
    #[cfg(feature = "sqlite")]
    sqlite_url: String,
}

impl fmt::Debug for ObsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObsBuilder")
            .field("config", &self.config)
            .field("logging", &self.logging)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Default for ObsBuilder {
    fn default() -> Self {
        Self {
            config: None,
            lookup: None,
            logging: true,
            service: None,
            scrubber: None,
            health_token: None,
            #[cfg(feature = "sentry")]
            sentry_hub: None,
            #[cfg(feature = "health")]
            registrations: Vec::new(),
            #[cfg(feature = "ratelimit")]
            limiter: None,
            #[cfg(feature = "telemetry")]
            recorder: None,
            #[cfg(feature = "sqlite")]
            sqlite_url: "sqlite::memory:".to_owned(),
        }
    }
}

impl ObsBuilder {
    /// Use this configuration instead of reading the process environment.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Read the variables through `lookup` instead of the process environment, as
    /// [`Config::from_lookup`]: tests and tools use a map.
    pub fn env_lookup(mut self, lookup: impl Fn(&str) -> Option<String> + Send + 'static) -> Self {
        self.lookup = Some(Box::new(lookup));
        self
    }

    /// Install the logging subscriber (default `true`; skipped without error when a global
    /// subscriber is already installed).
    pub fn logging(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }

    /// Service name and version reported by the health endpoints (default: the `obs` package).
    pub fn service(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.service = Some((name.into(), version.into()));
        self
    }

    /// The PII scrubber for Sentry events and telemetry (default [`Scrubber::default`]).
    pub fn scrubber(mut self, scrubber: Scrubber) -> Self {
        self.scrubber = Some(scrubber);
        self
    }

    /// Show health details (messages, system info) to requests with
    /// `Authorization: Bearer <token>`; overrides `HEALTH_TOKEN` ([`Config::health`]).
    pub fn health_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.health_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Fork every request's Sentry hub from `hub` instead of installing a client from
    /// `SENTRY_DSN` (tests with a test transport; services that install Sentry themselves).
    #[cfg(feature = "sentry")]
    pub fn sentry_hub(mut self, hub: Arc<sentry::Hub>) -> Self {
        self.sentry_hub = Some(hub);
        self
    }

    /// Add a health check of your own (a dependency, a queue, ...).
    #[cfg(feature = "health")]
    pub fn check(
        self,
        name: impl Into<String>,
        check: impl obs_health::HealthCheck + 'static,
    ) -> Self {
        self.register(Registration::new(name, check))
    }

    /// Add a health check with its probes, timeout, required/optional flag.
    #[cfg(feature = "health")]
    pub fn register(mut self, registration: Registration) -> Self {
        self.registrations.push(registration);
        self
    }

    /// Use this limiter for the HTTP stack instead of one built from `RATE_LIMIT_*`/`REDIS_URL`.
    #[cfg(feature = "ratelimit")]
    pub fn limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Use this recorder instead of one built from `TELEMETRY_*`/`DATABASE_URL`.
    #[cfg(feature = "telemetry")]
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Where telemetry goes when `DATABASE_URL` is unset (default `sqlite::memory:`; e.g.
    /// `sqlite://telemetry.db` to keep it).
    #[cfg(feature = "sqlite")]
    pub fn sqlite_url(mut self, url: impl Into<String>) -> Self {
        self.sqlite_url = url.into();
        self
    }

    /// Builds everything; see the [module docs](self). Call it at the start of `main`.
    ///
    /// # Errors
    /// [`Error::Config`] for malformed variables, [`Error::Backend`] when a configured
    /// Redis/database cannot be reached at startup, [`Error::Setup`] for invalid builder input.
    pub async fn build(self) -> Result<Obs, Error> {
        let lookup: Lookup = match self.lookup {
            Some(lookup) => lookup,
            None => Box::new(|var: &str| std::env::var(var).ok()),
        };
        let config = match self.config {
            Some(config) => config,
            None => Config::from_lookup(&lookup)?,
        };
        drop(lookup);
        let health_token = self
            .health_token
            .or_else(|| config.health.token.as_ref().map(|t| t.expose().to_owned()));
        let scrubber = self.scrubber.unwrap_or_default();
        let mut summary: Vec<String> = Vec::new();

        // OpenTelemetry (feature `otel`): the tracer provider, before logging so its layer
        // joins the subscriber.
        #[cfg(feature = "otel")]
        let otel = if config.otel.sdk_disabled {
            None
        } else {
            Some(
                obs_telemetry::otel::init(&config.otel).map_err(|e| Error::Backend {
                    component: "opentelemetry",
                    var: "OTEL_EXPORTER_OTLP_PROTOCOL",
                    target: config.otel.exporter_otlp_protocol.as_str().to_owned(),
                    source: e.into(),
                })?,
            )
        };

        // Logging first, so everything below is logged.
        if self.logging {
            summary.push(init_logging(
                &config,
                #[cfg(feature = "otel")]
                otel.as_ref(),
            )?);
        } else {
            summary.push("logging=external".to_owned());
        }

        // Sentry.
        #[cfg(feature = "sentry")]
        let (sentry_guard, sentry_hub) = match self.sentry_hub {
            Some(hub) => {
                summary.push("sentry=hub".to_owned());
                (None, hub)
            }
            None => {
                let guard = crate::sentry::init_with(&config.sentry, scrubber.clone());
                summary.push(
                    if guard.is_enabled() {
                        "sentry=on"
                    } else {
                        "sentry=off"
                    }
                    .into(),
                );
                (Some(guard), sentry::Hub::main())
            }
        };
        #[cfg(not(feature = "sentry"))]
        if config.sentry.is_enabled() {
            tracing::warn!(target: "obs", "SENTRY_DSN is set but obs was built without feature `sentry`: errors are not reported");
        }

        #[cfg(feature = "otel")]
        summary.push(match &otel {
            None => "otel=off".to_owned(),
            Some(o) if o.is_exporting() => "otel=otlp".to_owned(),
            Some(_) => "otel=ids".to_owned(),
        });

        // Metrics.
        #[cfg(feature = "metrics")]
        let (registry, http_metrics) = {
            let registry = Registry::new();
            registry
                .register_process_metrics()
                .map_err(|e| setup("metrics")(e.into()))?;
            let http = HttpMetrics::register(&registry).map_err(|e| setup("metrics")(e.into()))?;
            summary.push("metrics".to_owned());
            (registry, http)
        };

        // Rate limiter.
        #[cfg(feature = "ratelimit")]
        let limiter = {
            let (limiter, backend) = match self.limiter {
                Some(l) => (l, "custom"),
                None => build_limiter(&config).await?,
            };
            summary.push(format!(
                "ratelimit={backend}({}/{}s)",
                limiter.limit(),
                limiter.window().as_secs_f64()
            ));
            #[cfg(feature = "metrics")]
            obs_ratelimit::metrics::RateLimitMetrics::register(&registry)
                .map_err(|e| setup("rate limiter metrics")(e.into()))?
                .add(&limiter);
            limiter
        };
        #[cfg(not(all(feature = "ratelimit", feature = "redis")))]
        if config.redis.is_some() {
            tracing::warn!(target: "obs", "REDIS_URL is set but obs was built without features `redis` (and `ratelimit`/`health`): Redis is not used");
        }

        // Telemetry.
        #[cfg(feature = "telemetry")]
        let (recorder, store) = {
            let (recorder, store, backend) = match self.recorder {
                Some(r) => (r, None, "custom".to_owned()),
                None => {
                    build_recorder(
                        &config,
                        scrubber.clone(),
                        #[cfg(feature = "sqlite")]
                        &self.sqlite_url,
                    )
                    .await?
                }
            };
            #[cfg(feature = "metrics")]
            obs_telemetry::recorder_metrics::TelemetryMetrics::register(&registry, &recorder)
                .map_err(|e| setup("telemetry metrics")(e.into()))?;
            summary.push(format!(
                "telemetry={backend}{}",
                if recorder.is_enabled() {
                    ""
                } else {
                    "(events off, run metrics on)"
                }
            ));
            (recorder, store)
        };

        // Health.
        #[cfg(feature = "health")]
        let health = {
            let (name, version) = self.service.unwrap_or_else(|| {
                (
                    env!("CARGO_PKG_NAME").into(),
                    env!("CARGO_PKG_VERSION").into(),
                )
            });
            let mut builder = Health::builder()
                .service(name, version)
                .environment(config.sentry.environment.clone())
                .register(
                    Registration::new("process", obs_health::check_fn(|| async { true }))
                        .probes(obs_health::Probes::LIVE),
                )
                .check("disk", obs_health::checks::DiskCheck::new("."))
                .check("memory", obs_health::checks::MemoryCheck::new());
            let mut names = vec!["process", "disk", "memory"];
            for (name, registration) in dependency_checks(&config)? {
                names.push(name);
                builder = builder.register(registration);
            }
            #[cfg(all(feature = "tower", feature = "metrics"))]
            {
                let observer = obs_tower::health::HealthMetrics::register(&registry)
                    .map_err(|e| setup("health metrics")(e.into()))?;
                builder = builder.observer(observer);
            }
            let user: Vec<String> = self
                .registrations
                .iter()
                .map(|r| r.name().to_owned())
                .collect();
            for registration in self.registrations {
                builder = builder.register(registration);
            }
            let health = builder.build().map_err(|e| setup("health")(e.into()))?;
            let mut all: Vec<&str> = names;
            all.extend(user.iter().map(String::as_str));
            summary.push(format!("health=[{}]", all.join(",")));
            health
        };
        #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
        if config.database.is_some() {
            tracing::warn!(target: "obs", "DATABASE_URL is set but obs was built without features `postgres`/`sqlite`: the database is not used");
        }
        #[cfg(not(feature = "telemetry"))]
        if config.metrics_api.is_some() {
            tracing::warn!(target: "obs", "METRICS_API_URL is set but obs was built without feature `telemetry`: nothing is sent there");
        }
        #[cfg(not(feature = "otel"))]
        if config.otel.export_enabled() {
            tracing::warn!(target: "obs", "OTEL_EXPORTER_OTLP_ENDPOINT is set but obs was built without feature `otel`: no spans are exported");
        }

        let summary = summary.join(" ");
        tracing::info!(target: "obs", "obs ready: {summary}");

        Ok(Obs {
            inner: Arc::new(Inner {
                config,
                scrubber,
                summary,
                health_token,
                #[cfg(feature = "sentry")]
                sentry_guard: Mutex::new(sentry_guard),
                #[cfg(feature = "sentry")]
                sentry_hub,
                #[cfg(feature = "metrics")]
                registry,
                #[cfg(feature = "metrics")]
                http_metrics,
                #[cfg(feature = "health")]
                health,
                #[cfg(feature = "ratelimit")]
                limiter,
                #[cfg(feature = "telemetry")]
                recorder,
                #[cfg(feature = "telemetry")]
                store,
                #[cfg(feature = "otel")]
                otel,
                shut_down: Mutex::new(false),
            }),
        })
    }
}

/// Installs the stdout subscriber, plus Sentry's breadcrumb/error layer when a DSN is set
/// and the OpenTelemetry layer (feature `otel`).
fn init_logging(
    config: &Config,
    #[cfg(feature = "otel")] otel: Option<&obs_telemetry::otel::Otel>,
) -> Result<String, Error> {
    use obs_core::logging::TryInitError;
    #[allow(unused_imports)] // `Identity` only without `sentry` or `otel`
    use tracing_subscriber::layer::{Identity, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let mut label = format!("logging={}", config.log.format.as_str());
    #[cfg(feature = "sentry")]
    let sentry_layer = config
        .sentry
        .is_enabled()
        .then(obs_core::sentry::tracing_layer);
    #[cfg(not(feature = "sentry"))]
    let sentry_layer: Option<Identity> = None;
    #[cfg(feature = "otel")]
    let otel_layer = otel.map(|o| o.layer());
    #[cfg(not(feature = "otel"))]
    let otel_layer: Option<Identity> = None;
    if sentry_layer.is_some() || otel_layer.is_some() {
        if sentry_layer.is_some() {
            label += "+sentry";
        }
        if otel_layer.is_some() {
            label += "+otel";
        }
        let subscriber = tracing_subscriber::registry()
            .with(obs_core::logging::layer(&config.log, std::io::stdout))
            .with(sentry_layer)
            .with(otel_layer);
        return Ok(match subscriber.try_init() {
            Ok(()) => label,
            Err(_) => "logging=external".to_owned(),
        });
    }
    match obs_core::logging::try_init(&config.log) {
        Ok(()) => Ok(label),
        Err(TryInitError::AlreadyInstalled(_)) => Ok("logging=external".to_owned()),
        Err(e) => Err(Error::Backend {
            component: "logging",
            var: if std::env::var_os("RUST_LOG").is_some() {
                "RUST_LOG"
            } else {
                "LOG_LEVEL"
            },
            target: config.log.filter.clone(),
            source: e.into(),
        }),
    }
}

#[cfg(feature = "ratelimit")]
async fn build_limiter(config: &Config) -> Result<(Limiter, &'static str), Error> {
    let builder = Limiter::builder("http").config(&config.rate_limit);
    #[cfg(feature = "redis")]
    if let Some(redis) = &config.redis {
        let limiter = builder
            .build_redis(redis.url())
            .await
            .map_err(|e| Error::Backend {
                component: "rate limiter",
                var: "REDIS_URL",
                target: redis.redacted_url(),
                source: e.into(),
            })?;
        return Ok((limiter, "redis"));
    }
    let limiter = builder.build_in_memory().map_err(|e| Error::Backend {
        component: "rate limiter",
        var: "RATE_LIMIT_MAX",
        target: config.rate_limit.max.to_string(),
        source: e.into(),
    })?;
    Ok((limiter, "memory"))
}

#[cfg(feature = "telemetry")]
async fn build_recorder(
    config: &Config,
    scrubber: Scrubber,
    #[cfg(feature = "sqlite")] sqlite_url: &str,
) -> Result<
    (
        Recorder,
        Option<obs_telemetry::analytics::MetricsStore>,
        String,
    ),
    Error,
> {
    let builder = obs_telemetry::RecorderBuilder::from_config(&config.telemetry).scrubber(scrubber);
    #[allow(unused_mut)]
    let mut store: Option<obs_telemetry::analytics::MetricsStore> = None;
    #[allow(unused_mut, unused_assignments)]
    let mut backend = "tracing".to_owned();
    #[allow(unused_variables)]
    let db_error =
        |e: obs_telemetry::Error, db: &obs_core::config::DatabaseConfig| Error::Backend {
            component: "telemetry",
            var: "DATABASE_URL",
            target: db.redacted_url(),
            source: e.into(),
        };
    #[allow(unused_mut)]
    let mut builder = Some(builder);
    #[allow(unused_mut)]
    let mut recorder: Option<Recorder> = None;
    let mut metrics_api_unused = false;
    #[cfg(feature = "postgres")]
    if let Some(db) = config.database.as_ref().filter(|d| !d.is_sqlite()) {
        let sink = obs_telemetry::sink::postgres::PostgresSink::from_config(db)
            .await
            .map_err(|e| db_error(e, db))?;
        store = Some(sink.pool().clone().into());
        backend = "postgres".to_owned();
        recorder = Some(
            builder
                .take()
                .expect("set once")
                .sink(sink)
                .build()
                .map_err(|e| setup("telemetry")(e.into()))?,
        );
    }
    // METRICS_API_URL: instead of the embedded default, never instead of DATABASE_URL (see
    // the module docs).
    let database_is_store = match &config.database {
        Some(db) if db.is_sqlite() => cfg!(feature = "sqlite"),
        Some(_) => cfg!(feature = "postgres"),
        None => false,
    };
    if let Some(api) = &config.metrics_api {
        if database_is_store {
            metrics_api_unused = true;
        } else {
            let sink = http_sink(api)?;
            backend = format!(
                "http({}{})",
                api.url.host_str().unwrap_or_default(),
                api.url.port().map(|p| format!(":{p}")).unwrap_or_default()
            );
            recorder = Some(
                builder
                    .take()
                    .expect("set once")
                    .sink(sink)
                    .build()
                    .map_err(|e| setup("telemetry")(e.into()))?,
            );
        }
    }
    #[cfg(feature = "sqlite")]
    if recorder.is_none() {
        let (url, label) = match config.database.as_ref() {
            Some(db) if db.is_sqlite() => (db.url().to_owned(), "sqlite(DATABASE_URL)".to_owned()),
            Some(_) => (String::new(), String::new()),
            None if sqlite_url.contains(":memory:") => {
                (sqlite_url.to_owned(), "sqlite(memory)".to_owned())
            }
            None => (sqlite_url.to_owned(), "sqlite(file)".to_owned()),
        };
        if !url.is_empty() {
            let sink = obs_telemetry::sink::sqlite::SqliteSink::connect(&url)
                .await
                .map_err(|e| Error::Backend {
                    component: "telemetry",
                    var: "DATABASE_URL",
                    target: config
                        .database
                        .as_ref()
                        .map(|d| d.redacted_url())
                        .unwrap_or(url.clone()),
                    source: e.into(),
                })?;
            store = Some(sink.pool().clone().into());
            backend = label;
            recorder = Some(
                builder
                    .take()
                    .expect("set once")
                    .sink(sink)
                    .build()
                    .map_err(|e| setup("telemetry")(e.into()))?,
            );
        }
    }
    let recorder = match recorder {
        Some(r) => r,
        None => builder
            .take()
            .expect("set once")
            .sink(obs_telemetry::sink::TracingSink)
            .build()
            .map_err(|e| setup("telemetry")(e.into()))?,
    };
    if metrics_api_unused {
        backend += "(METRICS_API_URL unused)";
    }
    Ok((recorder, store, backend))
}

/// The HTTP sink for `METRICS_API_URL`; an `https://` URL needs reqwest's TLS, which only
/// feature `sentry` turns on.
#[cfg(feature = "telemetry")]
fn http_sink(
    api: &obs_core::config::MetricsApiConfig,
) -> Result<obs_telemetry::sink::http::HttpSink, Error> {
    let fail = |source: BoxError| Error::Backend {
        component: "telemetry",
        var: "METRICS_API_URL",
        target: api.url.to_string(),
        source,
    };
    if api.url.scheme() == "https" && !cfg!(feature = "sentry") {
        return Err(fail(
            "https:// needs TLS, which obs builds only with feature `sentry`: enable it, or use http:// on a private network".into(),
        ));
    }
    obs_telemetry::sink::http::HttpSink::from_config(api).map_err(|e| fail(e.into()))
}

/// Built-in checks for the configured PostgreSQL/SQLite and Redis (lazy connections: an
/// unreachable dependency is reported by the probe, not at startup).
#[cfg(feature = "health")]
fn dependency_checks(config: &Config) -> Result<Vec<(&'static str, Registration)>, Error> {
    #[allow(unused_mut)]
    let mut checks = Vec::new();
    #[cfg(feature = "postgres")]
    if let Some(db) = config.database.as_ref().filter(|d| !d.is_sqlite()) {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_lazy(db.url())
            .map_err(database_error(db))?;
        checks.push((
            "postgres",
            Registration::new("postgres", obs_health::checks::PostgresCheck::new(pool)),
        ));
    }
    #[cfg(feature = "sqlite")]
    if let Some(db) = config.database.as_ref().filter(|d| d.is_sqlite()) {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy(db.url())
            .map_err(database_error(db))?;
        checks.push((
            "sqlite",
            Registration::new("sqlite", obs_health::checks::SqliteCheck::new(pool)),
        ));
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = &config.redis {
        let client = redis::Client::open(redis.url()).map_err(|e| Error::Backend {
            component: "health check",
            var: "REDIS_URL",
            target: redis.redacted_url(),
            source: e.into(),
        })?;
        checks.push((
            "redis",
            Registration::new("redis", obs_health::checks::RedisCheck::from_client(client)),
        ));
    }
    let _ = config;
    Ok(checks)
}

/// Maps a health-check pool error to [`Error::Backend`] naming `DATABASE_URL` (password redacted).
#[cfg(all(feature = "health", any(feature = "postgres", feature = "sqlite")))]
fn database_error(db: &obs_core::config::DatabaseConfig) -> impl FnOnce(sqlx::Error) -> Error {
    let target = db.redacted_url();
    move |e| Error::Backend {
        component: "health check",
        var: "DATABASE_URL",
        target,
        source: e.into(),
    }
}

struct Inner {
    config: Config,
    scrubber: Scrubber,
    summary: String,
    #[cfg_attr(not(all(feature = "tower", feature = "health")), allow(dead_code))]
    health_token: Option<String>,
    #[cfg(feature = "sentry")]
    sentry_guard: Mutex<Option<crate::sentry::Guard>>,
    #[cfg(feature = "sentry")]
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    sentry_hub: Arc<sentry::Hub>,
    #[cfg(feature = "metrics")]
    registry: Registry,
    #[cfg(feature = "metrics")]
    http_metrics: HttpMetrics,
    #[cfg(feature = "health")]
    health: Health,
    #[cfg(feature = "ratelimit")]
    limiter: Limiter,
    #[cfg(feature = "telemetry")]
    recorder: Recorder,
    #[cfg(feature = "telemetry")]
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    store: Option<obs_telemetry::analytics::MetricsStore>,
    #[cfg(feature = "otel")]
    otel: Option<obs_telemetry::otel::Otel>,
    shut_down: Mutex<bool>,
}

/// Everything obs runs for a service; cheap to clone (an `Arc` inside). See the
/// [module docs](self).
#[derive(Clone)]
pub struct Obs {
    inner: Arc<Inner>,
}

impl fmt::Debug for Obs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obs")
            .field("enabled", &self.inner.summary)
            .finish_non_exhaustive()
    }
}

impl Obs {
    /// Everything the process environment and the enabled features ask for; see the
    /// [module docs](self).
    ///
    /// # Errors
    /// See [`ObsBuilder::build`].
    pub async fn from_env() -> Result<Obs, Error> {
        Self::builder().build().await
    }

    /// Like [`from_env`](Self::from_env) from an explicit configuration (logging installed
    /// too; use [`builder`](Self::builder) to turn it off).
    ///
    /// # Errors
    /// See [`ObsBuilder::build`].
    pub async fn from_config(config: Config) -> Result<Obs, Error> {
        Self::builder().config(config).build().await
    }

    /// A builder for custom checks, limiter, recorder, scrubber, Sentry hub.
    pub fn builder() -> ObsBuilder {
        ObsBuilder::default()
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// What was enabled, as in the startup log line
    /// (`logging=json sentry=off metrics health=[process,disk,memory] ...`).
    pub fn summary(&self) -> &str {
        &self.inner.summary
    }

    /// The PII scrubber shared by Sentry and telemetry.
    pub fn scrubber(&self) -> &Scrubber {
        &self.inner.scrubber
    }

    /// The metrics registry: register your business metrics here (served at
    /// `/metrics/business` with `Scope::Business`).
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> &Registry {
        &self.inner.registry
    }

    /// The HTTP RED metrics recorded by [`Obs::layer`].
    #[cfg(feature = "metrics")]
    pub fn http_metrics(&self) -> &HttpMetrics {
        &self.inner.http_metrics
    }

    /// The health registry behind `/health/*`.
    #[cfg(feature = "health")]
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The per-client-IP limiter of [`Obs::layer`]; clone it to check other keys in handlers
    /// with the same backend.
    #[cfg(feature = "ratelimit")]
    pub fn limiter(&self) -> &Limiter {
        &self.inner.limiter
    }

    /// The telemetry recorder.
    #[cfg(feature = "telemetry")]
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// The SQL store behind `/api/analytics/*`, when telemetry goes to PostgreSQL or SQLite.
    #[cfg(feature = "telemetry")]
    pub fn analytics_store(&self) -> Option<&obs_telemetry::analytics::MetricsStore> {
        self.inner.store.as_ref()
    }

    /// The OpenTelemetry tracer provider (feature `otel`; `None` with `OTEL_SDK_DISABLED`).
    #[cfg(feature = "otel")]
    pub fn otel(&self) -> Option<&obs_telemetry::otel::Otel> {
        self.inner.otel.as_ref()
    }

    /// Whether a Sentry client with a DSN is installed.
    #[cfg(feature = "sentry")]
    pub fn sentry_enabled(&self) -> bool {
        self.inner
            .sentry_guard
            .lock()
            .map(|g| g.as_ref().is_some_and(|g| g.is_enabled()))
            .unwrap_or(false)
    }

    /// Flushes telemetry (everything queued is written, up to the recorder's shutdown
    /// timeout) and Sentry (up to 2 s). Later calls return at once.
    pub async fn shutdown(&self) {
        {
            let mut done = self
                .inner
                .shut_down
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *done {
                return;
            }
            *done = true;
        }
        #[cfg(feature = "telemetry")]
        let stats = self.inner.recorder.shutdown().await;
        #[cfg(feature = "otel")]
        if let Some(otel) = &self.inner.otel {
            if let Err(e) = otel.shutdown_async().await {
                tracing::warn!(target: "obs", error = %e, "OpenTelemetry spans not flushed");
            }
        }
        #[cfg(feature = "sentry")]
        {
            let guard = self
                .inner
                .sentry_guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(guard) = guard {
                guard.flush(std::time::Duration::from_secs(2));
            }
        }
        #[cfg(feature = "telemetry")]
        tracing::info!(
            target: "obs",
            written_events = stats.written_events,
            written_metrics = stats.written_metrics,
            dropped = stats.dropped(),
            "obs shut down: telemetry and Sentry flushed"
        );
        #[cfg(not(feature = "telemetry"))]
        tracing::info!(target: "obs", "obs shut down");
    }
}

#[cfg(feature = "tower")]
pub use self::http::ObsLayer;

#[cfg(feature = "tower")]
mod http {
    use super::Obs;
    use obs_tower::{AccessLogLayer, RequestIdLayer};
    #[allow(unused_imports)]
    use tower_layer::{Identity, Stack};

    #[cfg(feature = "otel")]
    type OtelPart = obs_tower::otel::OtelLayer;
    #[cfg(not(feature = "otel"))]
    type OtelPart = Identity;
    #[cfg(feature = "sentry")]
    type SentryPart = obs_tower::SentryLayer;
    #[cfg(not(feature = "sentry"))]
    type SentryPart = Identity;
    #[cfg(feature = "metrics")]
    type MetricsPart = obs_tower::metrics::HttpMetricsLayer;
    #[cfg(not(feature = "metrics"))]
    type MetricsPart = Identity;
    #[cfg(feature = "ratelimit")]
    type RateLimitPart = obs_tower::RateLimitLayer;
    #[cfg(not(feature = "ratelimit"))]
    type RateLimitPart = Identity;

    /// The tower stack of [`Obs::layer`], outermost first: `RequestIdLayer`, `OtelLayer`
    /// (feature `otel`), `SentryLayer` (feature `sentry`), `AccessLogLayer`,
    /// `HttpMetricsLayer` (feature `metrics`), `RateLimitLayer` (feature `ratelimit`); a
    /// disabled feature's slot is `Identity`.
    pub type ObsLayer = Stack<
        RateLimitPart,
        Stack<
            MetricsPart,
            Stack<AccessLogLayer, Stack<SentryPart, Stack<OtelPart, RequestIdLayer>>>,
        >,
    >;

    impl Obs {
        /// The full tower stack (see [`ObsLayer`] and the [module docs](super)); add it with
        /// `Router::layer` after your routes and fallback.
        pub fn layer(&self) -> ObsLayer {
            let inner = &self.inner;
            #[cfg(feature = "sentry")]
            let sentry = obs_tower::SentryLayer::new().hub(inner.sentry_hub.clone());
            #[cfg(not(feature = "sentry"))]
            let sentry = Identity::new();
            #[cfg(feature = "metrics")]
            let metrics = obs_tower::metrics::HttpMetricsLayer::new(inner.http_metrics.clone());
            #[cfg(not(feature = "metrics"))]
            let metrics = Identity::new();
            #[cfg(feature = "ratelimit")]
            let ratelimit = obs_tower::RateLimitLayer::per_client_ip(
                inner.limiter.clone(),
                obs_tower::TrustedProxies::none(),
            );
            #[cfg(not(feature = "ratelimit"))]
            let ratelimit = Identity::new();
            #[cfg(feature = "otel")]
            let otel = obs_tower::otel::OtelLayer::new();
            #[cfg(not(feature = "otel"))]
            let otel = Identity::new();
            let stack = Stack::new(otel, RequestIdLayer::new());
            let stack = Stack::new(sentry, stack);
            let stack = Stack::new(AccessLogLayer::from_config(&inner.config.log), stack);
            let stack = Stack::new(metrics, stack);
            Stack::new(ratelimit, stack)
        }

        /// The obs endpoints: `/metrics`, `/metrics/business` (feature `metrics`),
        /// `/health/live|ready|startup|deep` and `/health/checks/{name}` (feature `health`),
        /// `/api/analytics/metrics|export` (feature `telemetry` with a SQL store). Not layered.
        pub fn router<S>(&self) -> axum::Router<S>
        where
            S: Clone + Send + Sync + 'static,
        {
            #[allow(unused_mut)]
            let mut router = axum::Router::new();
            #[cfg(feature = "metrics")]
            {
                router = router.merge(obs_tower::metrics::metrics_router(
                    self.inner.registry.clone(),
                ));
            }
            #[cfg(feature = "health")]
            {
                use obs_tower::health::{DetailsAccess, HealthEndpoints};
                let details = match &self.inner.health_token {
                    Some(token) => DetailsAccess::bearer(token),
                    None => DetailsAccess::Hidden,
                };
                router = router.merge(
                    HealthEndpoints::new(self.inner.health.clone())
                        .details(details)
                        .router(),
                );
            }
            #[cfg(feature = "telemetry")]
            if let Some(store) = &self.inner.store {
                router = router.merge(obs_tower::analytics::router(store.clone()));
            }
            router
        }

        /// `app` with [`Obs::layer`], merged with [`Obs::router`] (which gets request IDs and
        /// the access log only: probes and scrapes are not counted or rate limited).
        pub fn apply<S>(&self, app: axum::Router<S>) -> axum::Router<S>
        where
            S: Clone + Send + Sync + 'static,
        {
            app.layer(self.layer()).merge(
                self.router()
                    .layer(AccessLogLayer::from_config(&self.inner.config.log))
                    .layer(RequestIdLayer::new()),
            )
        }
    }
}
