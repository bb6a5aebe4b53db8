//! Typed settings read from environment variables, validated with errors that name the
//! variable, the expected form and the value found.
//!
//! [`Config::from_env`] reads every variable the obs crates understand in one pass and reports
//! **all** problems at once ([`ConfigErrors`]), so whoever fixes the environment sees every
//! mistake in one go:
//!
//! ```text
//! invalid configuration (2 errors):
//!   - SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, got "1.5"
//!   - REDIS_URL must be a redis://, rediss://, redis+unix:// or unix:// URL, got "http://***@cache:6379"
//! ```
//!
//! Secrets (`SENTRY_DSN`, `REDIS_PASSWORD`, `METRICS_API_TOKEN`, `HEALTH_TOKEN`, passwords inside
//! `REDIS_URL` and `DATABASE_URL`) are never repeated in errors or in `Debug` output: they are held in a
//! [`Secret`], and errors show only their length or the URL with its credentials masked.
//!
//! # Rules shared by every variable
//!
//! - A variable set to the empty string (or only whitespace) counts as **unset**.
//! - Surrounding whitespace is ignored.
//! - Booleans accept `true/false`, `1/0`, `yes/no`, `on/off`, in any case.
//!
//! # Variables
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PORT` | HTTP port of the example services, `0..=65535` | `3000` |
//! | `LOG_LEVEL` | `fatal`, `error`, `warn`, `info`, `debug` or `trace` (`fatal` logs as `error`) | `info` |
//! | `RUST_LOG` | a full `tracing` EnvFilter directive (`info,sqlx=warn`); **wins over `LOG_LEVEL`** | unset |
//! | `LOG_FORMAT` | `json` (one object per line) or `pretty` (human-readable) | `json` |
//! | `LOG_REQUESTS` | one access-log line per non-health request | `true` |
//! | `LOG_HEALTH_REQUESTS` | access-log lines for health probes too | `false` |
//! | `SENTRY_DSN` | Sentry (or Bugsink) DSN `https://<key>@<host>/<project>`; unset = Sentry off | unset |
//! | `SENTRY_ENVIRONMENT` | environment name (no `/`, line breaks or tabs, ≤ 64 bytes) | `production` |
//! | `SENTRY_RELEASE` | release name (no `/`, line breaks or tabs, ≤ 200 bytes) | unset |
//! | `SENTRY_TRACES_SAMPLE_RATE` | number in `0..=1` | `0.1` |
//! | `REDIS_URL` | `redis://`, `rediss://`, `redis+unix://` or `unix://` URL | see below |
//! | `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD` | used to build `redis://` URL when `REDIS_URL` is unset | `localhost`, `6379`, none |
//! | `RATE_LIMIT_MAX` | requests allowed per window, a positive whole number | `5` |
//! | `RATE_LIMIT_WINDOW` | window length: whole seconds (`60`) or with a unit (`60s`, `15m`, `1h`, `1h 30m`, `500ms`), at most 30 days | `60` s |
//! | `TELEMETRY_ENABLED` | record product telemetry (opt-in) | `false` |
//! | `TELEMETRY_SUBJECT_SECRET` | HMAC key for user/session ids in telemetry, ≥ 16 bytes (secret) | unset: ids not stored |
//! | `TELEMETRY_SUBJECT_KEY_VERSION` | version stored with each subject hash, `1..=65535` | `1` |
//! | `DATABASE_URL` | `postgres://`, `postgresql://` or `sqlite:` URL | unset |
//! | `METRICS_API_URL` | `http(s)://` endpoint that receives run metrics | unset |
//! | `METRICS_API_TOKEN` | bearer token for `METRICS_API_URL` (requires it) | unset |
//! | `HEALTH_TOKEN` | bearer token (visible ASCII, no spaces) that shows check details and system info on `/health/*` (secret) | unset: details hidden |
//! | `OTEL_SDK_DISABLED` | turn OpenTelemetry off | `false` |
//! | `OTEL_SERVICE_NAME` | `service.name` resource attribute | unset |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,key=value`, values percent-encoded | empty |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http(s)://` OTLP endpoint; unset = no OTLP export | unset |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf`, `grpc` or `http/json` | `http/protobuf` |
//! | `OTEL_TRACES_SAMPLER` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` | `parentbased_always_on` |
//! | `OTEL_TRACES_SAMPLER_ARG` | sampling ratio in `0..=1`, read only for the two `*traceidratio` samplers | `1.0` |
//!
//! Redis is configured ([`Config::redis`] is `Some`) when `REDIS_URL` or any of
//! `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD` is set. `REDIS_URL` wins over `REDIS_HOST` and
//! `REDIS_PORT`; `REDIS_PASSWORD` is added to a `REDIS_URL` that has no password of its own.
//!
//! The defaults follow the reference services (`RATE_LIMIT_MAX=5`, `RATE_LIMIT_WINDOW=60`,
//! `SENTRY_TRACES_SAMPLE_RATE=0.1`, `SENTRY_ENVIRONMENT=production`, health probes not logged).
//! One deliberate difference: `LOG_REQUESTS` defaults to `true`. GitTinkerer turns request
//! logging off by default only because health checks are noisy; obs silences health probes on
//! their own (`LOG_HEALTH_REQUESTS=false`), so every other request gets its access-log line.
//!
//! # Example
//!
//! Tests and tools read from a map with [`Config::from_lookup`] instead of mutating the
//! process environment:
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use obs_core::config::Config;
//!
//! let env = HashMap::from([
//!     ("SENTRY_TRACES_SAMPLE_RATE", "0.25"),
//!     ("RATE_LIMIT_WINDOW", "15m"),
//!     ("REDIS_HOST", "cache.internal"),
//!     ("REDIS_PASSWORD", "s3cret"),
//!     ("LOG_FORMAT", ""), // empty = unset
//! ]);
//! let config = Config::from_lookup(|var| env.get(var).map(|v| v.to_string())).unwrap();
//! assert_eq!(config.sentry.traces_sample_rate, 0.25);
//! assert_eq!(config.rate_limit.window, Duration::from_secs(900));
//! let redis = config.redis.as_ref().unwrap();
//! assert_eq!(redis.redacted_url(), "redis://:***@cache.internal:6379");
//! assert!(!format!("{config:?}").contains("s3cret"));
//!
//! let bad = HashMap::from([("SENTRY_TRACES_SAMPLE_RATE", "1.5"), ("RATE_LIMIT_MAX", "0")]);
//! let errors = Config::from_lookup(|var| bad.get(var).map(|v| v.to_string())).unwrap_err();
//! assert_eq!(errors.len(), 2);
//! assert_eq!(
//!     errors.get("SENTRY_TRACES_SAMPLE_RATE").unwrap().to_string(),
//!     r#"SENTRY_TRACES_SAMPLE_RATE must be a number between 0 and 1, got "1.5""#
//! );
//! ```
//!
//! Code that configures itself uses the builder, which runs the same validation:
//!
//! ```
//! use std::time::Duration;
//! use obs_core::config::Config;
//! use obs_core::logging::LogFormat;
//!
//! let config = Config::builder()
//!     .log_format(LogFormat::Pretty)
//!     .rate_limit_max(100)
//!     .rate_limit_window(Duration::from_secs(60))
//!     .sentry_traces_sample_rate(1.0)
//!     .build()
//!     .unwrap();
//! assert_eq!(config.log.format, LogFormat::Pretty);
//! assert!(Config::builder().sentry_traces_sample_rate(2.0).build().is_err());
//! ```

mod error;
pub(crate) mod read;
mod sections;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, Got};
pub use sections::{
    DatabaseConfig, HealthConfig, MetricsApiConfig, OtelConfig, OtlpProtocol, RateLimitConfig,
    RedisConfig, SentryConfig, ServerConfig, TelemetryConfig, TracesSampler,
    MIN_SUBJECT_SECRET_LEN,
};

use crate::logging::{LogConfig, LogFormat};
use read::Reader;

/// Names of every environment variable read by [`Config`].
pub mod vars {
    macro_rules! vars {
        ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
            $( $(#[$doc])* pub const $name: &str = stringify!($name); )*
            /// Every variable [`Config::from_env`](super::Config::from_env) reads.
            pub const ALL: &[&str] = &[$($name),*];
        };
    }
    vars! {
        /// HTTP port of the example services.
        PORT,
        /// Log level: `fatal|error|warn|info|debug|trace`.
        LOG_LEVEL,
        /// Full EnvFilter directive; wins over `LOG_LEVEL`.
        RUST_LOG,
        /// `json` or `pretty`.
        LOG_FORMAT,
        /// Log one line per non-health request.
        LOG_REQUESTS,
        /// Log health probe requests too.
        LOG_HEALTH_REQUESTS,
        /// Sentry DSN (secret).
        SENTRY_DSN,
        /// Sentry environment name.
        SENTRY_ENVIRONMENT,
        /// Sentry release name.
        SENTRY_RELEASE,
        /// Share of transactions traced, `0..=1`.
        SENTRY_TRACES_SAMPLE_RATE,
        /// Redis URL (its password is secret).
        REDIS_URL,
        /// Redis host, used when `REDIS_URL` is unset.
        REDIS_HOST,
        /// Redis port, used when `REDIS_URL` is unset.
        REDIS_PORT,
        /// Redis password (secret).
        REDIS_PASSWORD,
        /// Requests allowed per rate-limit window.
        RATE_LIMIT_MAX,
        /// Rate-limit window length.
        RATE_LIMIT_WINDOW,
        /// Product telemetry on/off.
        TELEMETRY_ENABLED,
        /// HMAC key for telemetry subject identifiers (secret).
        TELEMETRY_SUBJECT_SECRET,
        /// Version of `TELEMETRY_SUBJECT_SECRET`, stored with each hash.
        TELEMETRY_SUBJECT_KEY_VERSION,
        /// Database URL (its password is secret).
        DATABASE_URL,
        /// Endpoint receiving run metrics.
        METRICS_API_URL,
        /// Bearer token for `METRICS_API_URL` (secret).
        METRICS_API_TOKEN,
        /// Bearer token that unlocks health details (secret).
        HEALTH_TOKEN,
        /// Turns OpenTelemetry off.
        OTEL_SDK_DISABLED,
        /// OpenTelemetry `service.name`.
        OTEL_SERVICE_NAME,
        /// OpenTelemetry resource attributes, `k=v,k=v`.
        OTEL_RESOURCE_ATTRIBUTES,
        /// OTLP exporter endpoint.
        OTEL_EXPORTER_OTLP_ENDPOINT,
        /// OTLP exporter protocol.
        OTEL_EXPORTER_OTLP_PROTOCOL,
        /// Trace sampler name.
        OTEL_TRACES_SAMPLER,
        /// Trace sampler argument (ratio).
        OTEL_TRACES_SAMPLER_ARG,
    }
}

/// A secret string (password, token, DSN): `Debug` and `Display` show only its length.
///
/// Call [`expose`](Secret::expose) where the value is really needed (to connect).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into_boxed_str())
    }

    /// The secret value itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted, {} bytes])", self.0.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted, {} bytes]", self.0.len())
    }
}

/// Everything the obs crates read from the environment, one section per concern.
///
/// Build it with [`Config::from_env`], [`Config::from_lookup`] or [`Config::builder`]; change
/// single fields afterwards as needed (the fields are public).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Config {
    /// `PORT`.
    pub server: ServerConfig,
    /// `LOG_LEVEL`, `RUST_LOG`, `LOG_FORMAT`, `LOG_REQUESTS`, `LOG_HEALTH_REQUESTS`.
    pub log: LogConfig,
    /// `SENTRY_*`.
    pub sentry: SentryConfig,
    /// `REDIS_URL` or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`; `None` when none is set.
    pub redis: Option<RedisConfig>,
    /// `DATABASE_URL`; `None` when unset.
    pub database: Option<DatabaseConfig>,
    /// `RATE_LIMIT_MAX`, `RATE_LIMIT_WINDOW`.
    pub rate_limit: RateLimitConfig,
    /// `TELEMETRY_ENABLED`.
    pub telemetry: TelemetryConfig,
    /// `METRICS_API_URL`, `METRICS_API_TOKEN`; `None` when the URL is unset.
    pub metrics_api: Option<MetricsApiConfig>,
    /// `HEALTH_TOKEN`.
    pub health: HealthConfig,
    /// `OTEL_*`.
    pub otel: OtelConfig,
}

impl Config {
    /// Reads every variable from the process environment.
    ///
    /// A variable whose value is not valid UTF-8 is reported as invalid.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        let result = Self::from_lookup(|var| std::env::var(var).ok());
        let not_unicode = vars::ALL
            .iter()
            .filter(|var| matches!(std::env::var(var), Err(std::env::VarError::NotUnicode(_))))
            .map(|var| ConfigError::invalid(var, "valid UTF-8", Got::Value("<not UTF-8>".into())));
        let mut errors = result
            .as_ref()
            .err()
            .map(|e| e.errors().to_vec())
            .unwrap_or_default();
        errors.extend(not_unicode);
        match ConfigErrors::from_vec(errors) {
            None => result,
            Some(e) => Err(e),
        }
    }

    /// Reads every variable through `lookup` (e.g. a `HashMap` in tests).
    ///
    /// Returns every invalid setting, not just the first.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let mut r = Reader::new(&lookup);
        let config = Config {
            server: ServerConfig::read(&mut r),
            log: LogConfig::read(&mut r),
            sentry: SentryConfig::read(&mut r),
            redis: RedisConfig::read(&mut r),
            database: DatabaseConfig::read(&mut r),
            rate_limit: RateLimitConfig::read(&mut r),
            telemetry: TelemetryConfig::read(&mut r),
            metrics_api: MetricsApiConfig::read(&mut r),
            health: HealthConfig::read(&mut r),
            otel: OtelConfig::read(&mut r),
        };
        match ConfigErrors::from_vec(r.errors) {
            None => Ok(config),
            Some(e) => Err(e),
        }
    }

    /// A builder starting from the defaults (not from the environment, unless
    /// [`ConfigBuilder::fallback_to_env`] is called).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }
}

/// Builds a [`Config`] in code with the same validation (and error messages) as the
/// environment: each setter stands for one variable.
///
/// ```
/// use obs_core::config::Config;
///
/// let errors = Config::builder()
///     .rate_limit_max(0)
///     .metrics_api_url("ftp://example.com")
///     .build()
///     .unwrap_err();
/// assert_eq!(errors.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    values: HashMap<&'static str, Setting>,
    fallback_to_env: bool,
}

#[derive(Clone)]
struct Setting(String);

impl fmt::Debug for Setting {
    // Builder values may be secrets: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} bytes]", self.0.len())
    }
}

macro_rules! string_setters {
    ($($(#[$doc:meta])* $fn:ident => $var:ident;)*) => {$(
        $(#[$doc])*
        pub fn $fn(self, value: impl Into<String>) -> Self {
            self.set(vars::$var, value)
        }
    )*};
}

macro_rules! display_setters {
    ($($(#[$doc:meta])* $fn:ident($ty:ty) => $var:ident;)*) => {$(
        $(#[$doc])*
        pub fn $fn(self, value: $ty) -> Self {
            self.set(vars::$var, value.to_string())
        }
    )*};
}

impl ConfigBuilder {
    /// Sets the variable `var` as if it were in the environment (the empty string unsets it).
    /// Unknown names are ignored by [`build`](Self::build).
    pub fn set(mut self, var: &'static str, value: impl Into<String>) -> Self {
        self.values.insert(var, Setting(value.into()));
        self
    }

    /// Reads variables the builder did not set from the process environment.
    pub fn fallback_to_env(mut self) -> Self {
        self.fallback_to_env = true;
        self
    }

    string_setters! {
        /// `LOG_LEVEL`: `fatal|error|warn|info|debug|trace`.
        log_level => LOG_LEVEL;
        /// `RUST_LOG`: a full EnvFilter directive (wins over `LOG_LEVEL`).
        log_filter => RUST_LOG;
        /// `SENTRY_DSN`.
        sentry_dsn => SENTRY_DSN;
        /// `SENTRY_ENVIRONMENT`.
        sentry_environment => SENTRY_ENVIRONMENT;
        /// `SENTRY_RELEASE`.
        sentry_release => SENTRY_RELEASE;
        /// `REDIS_URL`.
        redis_url => REDIS_URL;
        /// `REDIS_HOST`.
        redis_host => REDIS_HOST;
        /// `REDIS_PASSWORD`.
        redis_password => REDIS_PASSWORD;
        /// `DATABASE_URL`.
        database_url => DATABASE_URL;
        /// `METRICS_API_URL`.
        metrics_api_url => METRICS_API_URL;
        /// `METRICS_API_TOKEN`.
        metrics_api_token => METRICS_API_TOKEN;
        /// `HEALTH_TOKEN`.
        health_token => HEALTH_TOKEN;
        /// `OTEL_SERVICE_NAME`.
        otel_service_name => OTEL_SERVICE_NAME;
        /// `OTEL_RESOURCE_ATTRIBUTES` as `k=v,k=v` (values percent-encoded).
        otel_resource_attributes => OTEL_RESOURCE_ATTRIBUTES;
        /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
        otel_exporter_otlp_endpoint => OTEL_EXPORTER_OTLP_ENDPOINT;
    }

    display_setters! {
        /// `PORT`.
        port(u16) => PORT;
        /// `LOG_REQUESTS`.
        log_requests(bool) => LOG_REQUESTS;
        /// `LOG_HEALTH_REQUESTS`.
        log_health_requests(bool) => LOG_HEALTH_REQUESTS;
        /// `SENTRY_TRACES_SAMPLE_RATE`, `0..=1`.
        sentry_traces_sample_rate(f64) => SENTRY_TRACES_SAMPLE_RATE;
        /// `REDIS_PORT`.
        redis_port(u16) => REDIS_PORT;
        /// `RATE_LIMIT_MAX`, positive.
        rate_limit_max(u32) => RATE_LIMIT_MAX;
        /// `TELEMETRY_ENABLED`.
        telemetry_enabled(bool) => TELEMETRY_ENABLED;
        /// `OTEL_SDK_DISABLED`.
        otel_sdk_disabled(bool) => OTEL_SDK_DISABLED;
        /// `OTEL_TRACES_SAMPLER_ARG`, `0..=1`.
        otel_traces_sampler_arg(f64) => OTEL_TRACES_SAMPLER_ARG;
    }

    /// `LOG_FORMAT`.
    pub fn log_format(self, format: LogFormat) -> Self {
        self.set(vars::LOG_FORMAT, format.as_str())
    }

    /// `RATE_LIMIT_WINDOW`, positive, at most 30 days.
    pub fn rate_limit_window(self, window: Duration) -> Self {
        let value = if window.subsec_nanos() == 0 {
            window.as_secs().to_string()
        } else {
            humantime::format_duration(window).to_string()
        };
        self.set(vars::RATE_LIMIT_WINDOW, value)
    }

    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn otel_exporter_otlp_protocol(self, protocol: OtlpProtocol) -> Self {
        self.set(vars::OTEL_EXPORTER_OTLP_PROTOCOL, protocol.as_str())
    }

    /// `OTEL_TRACES_SAMPLER`.
    pub fn otel_traces_sampler(self, sampler: TracesSampler) -> Self {
        self.set(vars::OTEL_TRACES_SAMPLER, sampler.as_str())
    }

    /// Validates and builds; returns every invalid setting.
    pub fn build(self) -> Result<Config, ConfigErrors> {
        let env = self.fallback_to_env;
        let values = self.values;
        let lookup = move |var: &str| match values.get(var) {
            Some(Setting(v)) => Some(v.clone()),
            None if env => std::env::var(var).ok(),
            None => None,
        };
        Config::from_lookup(lookup)
    }
}
