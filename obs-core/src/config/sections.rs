//! The sections of [`Config`](super::Config), each with its defaults and the reading of its
//! variables.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use url::Url;

use super::error::{mask_userinfo, ConfigError, ConfigErrors, Got};
use super::read::{
    parse_http_url, parse_port, parse_positive_u32, parse_unit_f64, parse_window, sentry_name,
    Reader,
};
use super::{vars, Secret};

macro_rules! section_from_env {
    ($ty:ty, $ret:ty, $read:expr) => {
        impl $ty {
            /// Reads this section's variables from the process environment.
            pub fn from_env() -> Result<$ret, ConfigErrors> {
                Self::from_lookup(|var| std::env::var(var).ok())
            }

            /// Reads this section's variables through `lookup`; returns every invalid setting.
            pub fn from_lookup(
                lookup: impl Fn(&str) -> Option<String>,
            ) -> Result<$ret, ConfigErrors> {
                let mut r = Reader::new(&lookup);
                let value = $read(&mut r);
                match ConfigErrors::from_vec(r.errors) {
                    None => Ok(value),
                    Some(e) => Err(e),
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------

/// Settings of the HTTP server of the example services.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `PORT`: the port to listen on; `0` asks the OS for a free one. Default `3000`.
    pub port: u16,
}

impl ServerConfig {
    /// Default port.
    pub const DEFAULT_PORT: u16 = 3000;

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let port = r
            .parse(vars::PORT, |s| parse_port(vars::PORT, s, true))
            .unwrap_or(Self::DEFAULT_PORT);
        ServerConfig { port }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: Self::DEFAULT_PORT,
        }
    }
}

section_from_env!(ServerConfig, ServerConfig, ServerConfig::read);

// ---------------------------------------------------------------------------------------------

/// Sentry (or any Sentry-compatible server such as Bugsink) settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentryConfig {
    /// `SENTRY_DSN`: where events go. `None` turns Sentry off (every call a cheap no-op).
    pub dsn: Option<Secret>,
    /// `SENTRY_ENVIRONMENT`. Default `production` (as the reference services).
    pub environment: String,
    /// `SENTRY_RELEASE`. Default none (the Sentry SDK may fill it in).
    pub release: Option<String>,
    /// `SENTRY_TRACES_SAMPLE_RATE`, `0.0..=1.0`. Default `0.1`.
    pub traces_sample_rate: f64,
}

impl SentryConfig {
    /// Default environment name.
    pub const DEFAULT_ENVIRONMENT: &'static str = "production";
    /// Default share of transactions traced.
    pub const DEFAULT_TRACES_SAMPLE_RATE: f64 = 0.1;

    /// True when a DSN is configured.
    pub fn is_enabled(&self) -> bool {
        self.dsn.is_some()
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let dsn = r.parse(vars::SENTRY_DSN, parse_dsn);
        let environment = r
            .string(vars::SENTRY_ENVIRONMENT, |s| {
                if sentry_name(s, 64) && !s.contains(' ') && s != "None" {
                    Ok(())
                } else {
                    Err("an environment name of at most 64 bytes without spaces, slashes, tabs or line breaks")
                }
            })
            .unwrap_or_else(|| Self::DEFAULT_ENVIRONMENT.to_owned());
        let release = r.string(vars::SENTRY_RELEASE, |s| {
            if sentry_name(s, 200) {
                Ok(())
            } else {
                Err("a release name of at most 200 bytes without slashes, tabs or line breaks, not \".\" or \"..\"")
            }
        });
        let traces_sample_rate = r
            .parse(vars::SENTRY_TRACES_SAMPLE_RATE, |s| {
                parse_unit_f64(vars::SENTRY_TRACES_SAMPLE_RATE, s)
            })
            .unwrap_or(Self::DEFAULT_TRACES_SAMPLE_RATE);
        SentryConfig {
            dsn,
            environment,
            release,
            traces_sample_rate,
        }
    }
}

/// A DSN is `http(s)://<public_key>[:<secret_key>]@<host>[:port]/[path/]<project_id>`.
fn parse_dsn(s: &str) -> Result<Secret, ConfigError> {
    let ok = Url::parse(s).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && !u.username().is_empty()
            && u.has_host()
            && u.path_segments()
                .and_then(|mut segs| segs.next_back())
                .is_some_and(|project| !project.is_empty())
    });
    if ok {
        Ok(Secret::new(s))
    } else {
        Err(ConfigError::invalid(
            vars::SENTRY_DSN,
            "a Sentry DSN like https://<public_key>@<host>/<project_id>",
            Got::secret(s),
        ))
    }
}

impl Default for SentryConfig {
    fn default() -> Self {
        SentryConfig {
            dsn: None,
            environment: Self::DEFAULT_ENVIRONMENT.to_owned(),
            release: None,
            traces_sample_rate: Self::DEFAULT_TRACES_SAMPLE_RATE,
        }
    }
}

section_from_env!(SentryConfig, SentryConfig, SentryConfig::read);

// ---------------------------------------------------------------------------------------------

/// Redis connection settings. `Debug` shows the URL with its password masked.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The connection URL (`redis://`, `rediss://`, `redis+unix://` or `unix://`), password
    /// included: from `REDIS_URL`, or built from `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`.
    pub url: Secret,
}

impl RedisConfig {
    /// Host used when only `REDIS_PORT`/`REDIS_PASSWORD` are set.
    pub const DEFAULT_HOST: &'static str = "localhost";
    /// Port used when `REDIS_PORT` is unset.
    pub const DEFAULT_PORT: u16 = 6379;

    /// A configuration for `url`, validated as `REDIS_URL` would be.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        parse_redis_url(url, None).map(|url| RedisConfig { url })
    }

    /// The URL to connect with (contains the password, if any: do not log it).
    pub fn url(&self) -> &str {
        self.url.expose()
    }

    /// The URL with its credentials replaced by `***`, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let password = r.secret(vars::REDIS_PASSWORD);
        if r.is_set(vars::REDIS_URL) {
            let password = password.as_ref().map(Secret::expose);
            return r
                .parse(vars::REDIS_URL, |s| parse_redis_url(s, password))
                .map(|url| RedisConfig { url });
        }
        let host_set = r.is_set(vars::REDIS_HOST);
        let port_set = r.is_set(vars::REDIS_PORT);
        if !host_set && !port_set && password.is_none() {
            return None;
        }
        let host = r.parse(vars::REDIS_HOST, parse_redis_host);
        let port = r.parse(vars::REDIS_PORT, |s| parse_port(vars::REDIS_PORT, s, false));
        if (host_set && host.is_none()) || (port_set && port.is_none()) {
            return None; // errors recorded
        }
        let host = host.unwrap_or_else(|| Self::DEFAULT_HOST.to_owned());
        let port = port.unwrap_or(Self::DEFAULT_PORT);
        let mut url = Url::parse(&format!("redis://{host}:{port}")).ok()?;
        if let Some(p) = &password {
            // `set_password` percent-encodes what the URL syntax needs.
            url.set_password(Some(p.expose())).ok()?;
        }
        Some(RedisConfig {
            url: Secret::new(String::from(url)),
        })
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .finish()
    }
}

fn parse_redis_host(s: &str) -> Result<String, ConfigError> {
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok(format!("[{s}]"));
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        || (s.starts_with('[')
            && s.ends_with(']')
            && s[1..s.len() - 1].parse::<Ipv6Addr>().is_ok());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ConfigError::invalid(
            vars::REDIS_HOST,
            "a host name or IP address",
            Got::value(s),
        ))
    }
}

fn parse_redis_url(s: &str, password: Option<&str>) -> Result<Secret, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            vars::REDIS_URL,
            "a redis://, rediss://, redis+unix:// or unix:// URL",
            Got::masked_url(s),
        )
    };
    let mut url = Url::parse(s).map_err(|_| invalid())?;
    match url.scheme() {
        "redis" | "rediss" if url.has_host() => {}
        "redis+unix" | "unix" if !url.path().is_empty() => {}
        _ => return Err(invalid()),
    }
    match password {
        Some(p) if url.password().is_none() && url.has_host() => {
            url.set_password(Some(p)).map_err(|()| invalid())?;
            Ok(Secret::new(String::from(url)))
        }
        _ => Ok(Secret::new(s)),
    }
}

/// Replaces a URL's user-info with `***` (keeping the user name when there is no password).
pub(crate) fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            String::from(u)
        }
        Ok(_) => s.to_owned(),
        Err(_) => mask_userinfo(s).unwrap_or_else(|| format!("[{} bytes]", s.len())),
    }
}

// ---------------------------------------------------------------------------------------------

/// Database settings (telemetry sink, health checks). `Debug` masks the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: `postgres://`, `postgresql://` or `sqlite:` URL, password included.
    pub url: Secret,
}

impl DatabaseConfig {
    /// The URL to connect with (contains the password, if any: do not log it).
    pub fn url(&self) -> &str {
        self.url.expose()
    }

    /// The URL with its password replaced by `***`, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// True for `sqlite:` URLs.
    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Option<Self> {
        r.parse(vars::DATABASE_URL, |s| {
            let ok = Url::parse(s).ok().is_some_and(|u| match u.scheme() {
                "postgres" | "postgresql" => u.has_host() || u.query().is_some(),
                "sqlite" => true,
                _ => false,
            });
            if ok {
                Ok(DatabaseConfig {
                    url: Secret::new(s),
                })
            } else {
                Err(ConfigError::invalid(
                    vars::DATABASE_URL,
                    "a postgres://, postgresql:// or sqlite: URL",
                    Got::masked_url(s),
                ))
            }
        })
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------

/// Rate-limit settings (the global per-client limit of the reference services).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_MAX`: requests allowed per window, at least 1. Default `5`.
    pub max: u32,
    /// `RATE_LIMIT_WINDOW`: window length, more than zero, at most 30 days. Default 60 s.
    pub window: Duration,
}

impl RateLimitConfig {
    /// Default requests per window (reference services).
    pub const DEFAULT_MAX: u32 = 5;
    /// Default window (reference services).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let max = r
            .parse(vars::RATE_LIMIT_MAX, |s| {
                parse_positive_u32(vars::RATE_LIMIT_MAX, s)
            })
            .unwrap_or(Self::DEFAULT_MAX);
        let window = r
            .parse(vars::RATE_LIMIT_WINDOW, |s| {
                parse_window(vars::RATE_LIMIT_WINDOW, s)
            })
            .unwrap_or(Self::DEFAULT_WINDOW);
        RateLimitConfig { max, window }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max: Self::DEFAULT_MAX,
            window: Self::DEFAULT_WINDOW,
        }
    }
}

section_from_env!(RateLimitConfig, RateLimitConfig, RateLimitConfig::read);

// ---------------------------------------------------------------------------------------------

/// Product telemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `TELEMETRY_ENABLED`: telemetry is opt-in. Default `false`.
    pub enabled: bool,
    /// `TELEMETRY_SUBJECT_SECRET`: HMAC-SHA256 key for user/session identifiers, at least
    /// 16 bytes (32 random bytes recommended). Without it, subject identifiers are not stored at all.
    pub subject_secret: Option<Secret>,
    /// `TELEMETRY_SUBJECT_KEY_VERSION`: stored next to every hash so the secret can be rotated.
    /// Default `1`.
    pub subject_key_version: u16,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: false,
            subject_secret: None,
            subject_key_version: 1,
        }
    }
}

/// Shortest accepted `TELEMETRY_SUBJECT_SECRET`, in bytes (obs-telemetry's `SubjectHasher`
/// minimum).
pub const MIN_SUBJECT_SECRET_LEN: usize = 16;

impl TelemetryConfig {
    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let subject_secret = r.secret(vars::TELEMETRY_SUBJECT_SECRET);
        if let Some(secret) = &subject_secret {
            if secret.len() < MIN_SUBJECT_SECRET_LEN {
                r.push(ConfigError::invalid(
                    vars::TELEMETRY_SUBJECT_SECRET,
                    "a secret of at least 16 bytes",
                    Got::Secret { len: secret.len() },
                ));
            }
        }
        let subject_key_version = r
            .parse(vars::TELEMETRY_SUBJECT_KEY_VERSION, |s| {
                match s.parse::<u16>() {
                    Ok(v) if v > 0 => Ok(v),
                    _ => Err(ConfigError::invalid(
                        vars::TELEMETRY_SUBJECT_KEY_VERSION,
                        "a key version from 1 to 65535",
                        Got::value(s),
                    )),
                }
            })
            .unwrap_or(1);
        TelemetryConfig {
            enabled: r.bool(vars::TELEMETRY_ENABLED, false),
            subject_secret,
            subject_key_version,
        }
    }
}

section_from_env!(TelemetryConfig, TelemetryConfig, TelemetryConfig::read);

// ---------------------------------------------------------------------------------------------

/// The HTTP endpoint that receives run metrics (`POST` with a bearer token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsApiConfig {
    /// `METRICS_API_URL`: an `http(s)://` URL.
    pub url: Url,
    /// `METRICS_API_TOKEN`: the bearer token, if any.
    pub token: Option<Secret>,
}

impl MetricsApiConfig {
    /// A configuration for `url`, validated as `METRICS_API_URL` would be.
    pub fn new(url: &str, token: Option<Secret>) -> Result<Self, ConfigError> {
        Ok(MetricsApiConfig {
            url: parse_http_url(vars::METRICS_API_URL, url)?,
            token,
        })
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let token = r.secret(vars::METRICS_API_TOKEN);
        if !r.is_set(vars::METRICS_API_URL) {
            if token.is_some() {
                r.push(ConfigError::Requires {
                    var: vars::METRICS_API_TOKEN,
                    requires: vars::METRICS_API_URL,
                });
            }
            return None;
        }
        let url = r.parse(vars::METRICS_API_URL, |s| {
            parse_http_url(vars::METRICS_API_URL, s)
        })?;
        Some(MetricsApiConfig { url, token })
    }
}

// ---------------------------------------------------------------------------------------------

/// Access to the health endpoints' details.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HealthConfig {
    /// `HEALTH_TOKEN`: requests with `Authorization: Bearer <token>` see check messages and
    /// system info on `/health/*`; without it (or without the header) only statuses are shown.
    pub token: Option<Secret>,
}

impl HealthConfig {
    /// A configuration with `token`, validated as `HEALTH_TOKEN` would be.
    pub fn new(token: Option<Secret>) -> Result<Self, ConfigError> {
        if let Some(t) = &token {
            check_bearer_token(vars::HEALTH_TOKEN, t.expose())?;
        }
        Ok(HealthConfig { token })
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let token = r.parse(vars::HEALTH_TOKEN, |s| {
            check_bearer_token(vars::HEALTH_TOKEN, s).map(|()| Secret::new(s))
        });
        HealthConfig { token }
    }
}

section_from_env!(HealthConfig, HealthConfig, HealthConfig::read);

/// A token compared with what follows `Bearer ` in an `Authorization` header: clients can only
/// send visible ASCII there, and the server trims the spaces around it, so a token with other
/// characters could never match.
fn check_bearer_token(var: &'static str, s: &str) -> Result<(), ConfigError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            "a bearer token of visible ASCII characters without spaces",
            Got::secret(s),
        ))
    }
}

// ---------------------------------------------------------------------------------------------

/// OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `grpc`.
    Grpc,
    /// `http/protobuf` (the OpenTelemetry default).
    #[default]
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl OtlpProtocol {
    /// The name used in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }

    /// The endpoint used when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset (spec defaults).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => "http://localhost:4318",
        }
    }
}

/// Trace sampler (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TracesSampler {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: sample the ratio given by `OTEL_TRACES_SAMPLER_ARG`.
    TraceIdRatio,
    /// `parentbased_always_on` (the OpenTelemetry default).
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`.
    ParentBasedTraceIdRatio,
}

impl TracesSampler {
    pub(crate) const ALL: [TracesSampler; 6] = [
        TracesSampler::AlwaysOn,
        TracesSampler::AlwaysOff,
        TracesSampler::TraceIdRatio,
        TracesSampler::ParentBasedAlwaysOn,
        TracesSampler::ParentBasedAlwaysOff,
        TracesSampler::ParentBasedTraceIdRatio,
    ];

    /// The name used in `OTEL_TRACES_SAMPLER`.
    pub fn as_str(self) -> &'static str {
        match self {
            TracesSampler::AlwaysOn => "always_on",
            TracesSampler::AlwaysOff => "always_off",
            TracesSampler::TraceIdRatio => "traceidratio",
            TracesSampler::ParentBasedAlwaysOn => "parentbased_always_on",
            TracesSampler::ParentBasedAlwaysOff => "parentbased_always_off",
            TracesSampler::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }

    /// True for the samplers that read a ratio from `OTEL_TRACES_SAMPLER_ARG`.
    pub fn uses_ratio(self) -> bool {
        matches!(
            self,
            TracesSampler::TraceIdRatio | TracesSampler::ParentBasedTraceIdRatio
        )
    }
}

/// OpenTelemetry settings, read from the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct OtelConfig {
    /// `OTEL_SDK_DISABLED`: turns OpenTelemetry off. Default `false`.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded, in the given order.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. `None`: no OTLP export configured (see
    /// [`OtlpProtocol::default_endpoint`] for the spec default).
    pub exporter_otlp_endpoint: Option<Url>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`. Default `http/protobuf`.
    pub exporter_otlp_protocol: OtlpProtocol,
    /// `OTEL_TRACES_SAMPLER`. Default `parentbased_always_on`.
    pub traces_sampler: TracesSampler,
    /// `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers (`0..=1`); ignored by the others.
    pub traces_sampler_arg: Option<f64>,
}

impl OtelConfig {
    /// The ratio the sampler uses: the argument, `1.0` when unset, `None` for non-ratio samplers.
    pub fn sampler_ratio(&self) -> Option<f64> {
        self.traces_sampler
            .uses_ratio()
            .then(|| self.traces_sampler_arg.unwrap_or(1.0))
    }

    /// True when OpenTelemetry is not disabled and an OTLP endpoint is configured.
    pub fn export_enabled(&self) -> bool {
        !self.sdk_disabled && self.exporter_otlp_endpoint.is_some()
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let sdk_disabled = r.bool(vars::OTEL_SDK_DISABLED, false);
        let service_name = r.string(vars::OTEL_SERVICE_NAME, |s| {
            if s.chars().any(char::is_control) {
                Err("a service name without control characters")
            } else {
                Ok(())
            }
        });
        let resource_attributes = r
            .parse(vars::OTEL_RESOURCE_ATTRIBUTES, parse_resource_attributes)
            .unwrap_or_default();
        let exporter_otlp_endpoint = r.parse(vars::OTEL_EXPORTER_OTLP_ENDPOINT, |s| {
            parse_http_url(vars::OTEL_EXPORTER_OTLP_ENDPOINT, s)
        });
        let exporter_otlp_protocol = r
            .parse(vars::OTEL_EXPORTER_OTLP_PROTOCOL, |s| {
                [
                    OtlpProtocol::HttpProtobuf,
                    OtlpProtocol::Grpc,
                    OtlpProtocol::HttpJson,
                ]
                .into_iter()
                .find(|p| s.eq_ignore_ascii_case(p.as_str()))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        vars::OTEL_EXPORTER_OTLP_PROTOCOL,
                        "one of http/protobuf, grpc, http/json",
                        Got::value(s),
                    )
                })
            })
            .unwrap_or_default();
        let traces_sampler = r
            .parse(vars::OTEL_TRACES_SAMPLER, |s| {
                TracesSampler::ALL
                    .into_iter()
                    .find(|t| s.eq_ignore_ascii_case(t.as_str()))
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            vars::OTEL_TRACES_SAMPLER,
                            "one of always_on, always_off, traceidratio, parentbased_always_on, \
                             parentbased_always_off, parentbased_traceidratio",
                            Got::value(s),
                        )
                    })
            })
            .unwrap_or_default();
        let traces_sampler_arg = if traces_sampler.uses_ratio() {
            r.parse(vars::OTEL_TRACES_SAMPLER_ARG, |s| {
                parse_unit_f64(vars::OTEL_TRACES_SAMPLER_ARG, s)
            })
        } else {
            None
        };
        OtelConfig {
            sdk_disabled,
            service_name,
            resource_attributes,
            exporter_otlp_endpoint,
            exporter_otlp_protocol,
            traces_sampler,
            traces_sampler_arg,
        }
    }
}

section_from_env!(OtelConfig, OtelConfig, OtelConfig::read);

fn parse_resource_attributes(s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let invalid = |why: &'static str| {
        ConfigError::invalid(
            vars::OTEL_RESOURCE_ATTRIBUTES,
            Cow::Owned(format!(
                "a comma-separated list of key=value pairs with percent-encoded values ({why})"
            )),
            Got::value(s),
        )
    };
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part.trim())
            .decode_utf8()
            .map(Cow::into_owned)
    };
    let mut out = Vec::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| invalid("a pair has no '='"))?;
        let k = decode(k).map_err(|_| invalid("a key is not UTF-8 once decoded"))?;
        let v = decode(v).map_err(|_| invalid("a value is not UTF-8 once decoded"))?;
        if k.is_empty() {
            return Err(invalid("a key is empty"));
        }
        out.push((k, v));
    }
    Ok(out)
}
