//! One call installs structured logs whose every line inside a request carries its
//! `request_id`.
//!
//! - [`init`] / [`try_init`] install a global `tracing` subscriber: JSON lines (production) or
//!   pretty lines (development) on stdout, filtered by [`LogConfig::filter`] (an `EnvFilter`
//!   directive from `RUST_LOG`, or from `LOG_LEVEL`). [`dispatch`] builds the same subscriber
//!   with another writer. It is obs's own subscriber, with a span store that keeps only what
//!   the log lines need (a span's parent and request fields): a span costs a few atomic
//!   operations instead of the ~34 of `tracing_subscriber::Registry` (counted in
//!   `benches/README.md`, `## stack`).
//! - [`layer`] gives the same output as a [`tracing_subscriber::Layer`], so OpenTelemetry,
//!   Sentry or any other layer can be stacked next to it; it carries its own level filter
//!   (a per-layer filter), so it does not restrict what the other layers see.
//!
//! # JSON lines
//!
//! One object per line:
//!
//! ```text
//! {"timestamp":"2026-11-22T03:53:38.123456Z","level":"info","target":"shop::orders","message":"order placed","request_id":"0193...","method":"POST","route":"/orders","order_id":42}
//! ```
//!
//! - `timestamp`: RFC 3339, UTC, microseconds.
//! - `level`: `trace`, `debug`, `info`, `warn` or `error` (lowercase, as the reference services).
//! - `target`, `message`: the event's target and message (`""` when the event has none).
//! - `request_id`, `method`, `route`, `user_id`: present when the event is emitted inside a
//!   request, i.e. inside [`RequestContext::scope`](crate::RequestContext::scope) or inside
//!   a span that has a `request_id` field (such as the `request` span of obs-tower's
//!   `RequestIdLayer`). The task-local context is consulted first; a span is the fallback
//!   (e.g. work spawned with `.instrument(span)`). Such spans are tracked at `INFO` level and
//!   above even when the level filter is stricter. A field the event sets itself wins.
//! - every other field of the event, at the top level, as a JSON number, boolean or string.
//!   A field named `timestamp`, `level` or `target` is written as `field.timestamp` etc., so
//!   keys never repeat.
//!
//! All strings are escaped by `serde_json`: quotes, line breaks and control characters in
//! messages or fields cannot break a line or forge a field (no log injection). The pretty format
//! escapes control characters too, so one event is always one line.
//!
//! Formatting reuses a thread-local buffer: steady-state cost per event is the formatting
//! itself and one `write` to the writer, without allocation.
//!
//! # Example
//!
//! Applications call `obs_core::logging::init(&LogConfig::from_env()?)` once at startup. Here
//! the output goes to a buffer instead, through [`layer`]:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use obs_core::logging::{self, LogConfig, LogFormat};
//! use obs_core::{RequestContext, RequestId};
//! use tracing_subscriber::layer::{Filter, SubscriberExt};
//!
//! #[derive(Clone, Default)]
//! struct Buf(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for Buf {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let out = Buf::default();
//! let writer = out.clone();
//! let config = LogConfig { format: LogFormat::Json, ..LogConfig::default() };
//! let subscriber = tracing_subscriber::registry().with(logging::layer(&config, move || writer.clone()));
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let ctx = RequestContext::new(RequestId::parse("req-1").unwrap());
//!     ctx.sync_scope(|| tracing::info!(order_id = 42, "order \"placed\"\nnext"));
//!     tracing::debug!("filtered out: the default filter is info");
//! });
//!
//! let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
//! assert_eq!(text.lines().count(), 1);
//! let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
//! assert_eq!(line["message"], "order \"placed\"\nnext");
//! assert_eq!(line["request_id"], "req-1");
//! assert_eq!(line["order_id"], 42);
//! assert_eq!(line["level"], "info");
//! ```

mod layer;
mod subscriber;

use std::io::IsTerminal;

use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter, ParseError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use layer::LogLayer;

use crate::config::read::{parse_bool, Reader};
use crate::config::{vars, ConfigError, Got};

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// One JSON object per line (production). The default.
    #[default]
    Json,
    /// Human-readable lines (development); colored when stdout is a terminal.
    Pretty,
}

impl LogFormat {
    /// The name used in `LOG_FORMAT`: `json` or `pretty`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

/// Logging settings: `RUST_LOG`/`LOG_LEVEL`, `LOG_FORMAT`, `LOG_REQUESTS`, `LOG_HEALTH_REQUESTS`.
///
/// See the [`config`](crate::config) module for how each variable is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// An `EnvFilter` directive, e.g. `info` or `info,sqlx=warn,my_app=debug`. From `RUST_LOG`
    /// if set, else from `LOG_LEVEL` (`fatal` maps to `error`), else `info`.
    pub filter: String,
    /// `LOG_FORMAT`: JSON (default) or pretty.
    pub format: LogFormat,
    /// `LOG_REQUESTS`: the access log writes one line per non-health request. Default `true`.
    pub log_requests: bool,
    /// `LOG_HEALTH_REQUESTS`: the access log also writes lines for health probes. Default `false`.
    pub log_health_requests: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: Self::DEFAULT_FILTER.to_owned(),
            format: LogFormat::Json,
            log_requests: true,
            log_health_requests: false,
        }
    }
}

impl LogConfig {
    /// Filter used when neither `RUST_LOG` nor `LOG_LEVEL` is set.
    pub const DEFAULT_FILTER: &'static str = "info";

    /// Reads the logging variables from the process environment; the first invalid one is
    /// reported (use [`Config::from_env`](crate::config::Config::from_env) to see all).
    pub fn from_env() -> Result<LogConfig, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the logging variables through `lookup`; the first invalid one is reported.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<LogConfig, ConfigError> {
        let mut r = Reader::new(&lookup);
        let config = Self::read(&mut r);
        match r.errors.into_iter().next() {
            None => Ok(config),
            Some(e) => Err(e),
        }
    }

    /// The level filter, strictly parsed from [`filter`](Self::filter).
    pub fn env_filter(&self) -> Result<EnvFilter, ParseError> {
        EnvFilter::builder().parse(&self.filter)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let level = r.parse(vars::LOG_LEVEL, parse_log_level);
        let rust_log = r.parse(vars::RUST_LOG, |s| match EnvFilter::builder().parse(s) {
            Ok(_) => Ok(s.to_owned()),
            Err(e) => Err(ConfigError::invalid(
                vars::RUST_LOG,
                format!("a tracing EnvFilter directive like info,my_crate=debug ({e})"),
                Got::value(s),
            )),
        });
        let format = r
            .parse(vars::LOG_FORMAT, |s| {
                [LogFormat::Json, LogFormat::Pretty]
                    .into_iter()
                    .find(|f| s.eq_ignore_ascii_case(f.as_str()))
                    .ok_or_else(|| {
                        ConfigError::invalid(vars::LOG_FORMAT, "json or pretty", Got::value(s))
                    })
            })
            .unwrap_or_default();
        let log_requests = r
            .parse(vars::LOG_REQUESTS, |s| parse_bool(vars::LOG_REQUESTS, s))
            .unwrap_or(true);
        let log_health_requests = r
            .parse(vars::LOG_HEALTH_REQUESTS, |s| {
                parse_bool(vars::LOG_HEALTH_REQUESTS, s)
            })
            .unwrap_or(false);
        LogConfig {
            filter: rust_log
                .or(level.map(str::to_owned))
                .unwrap_or_else(|| Self::DEFAULT_FILTER.to_owned()),
            format,
            log_requests,
            log_health_requests,
        }
    }
}

/// `fatal|error|warn|info|debug|trace` (any case) to a filter level; `fatal` becomes `error`.
fn parse_log_level(s: &str) -> Result<&'static str, ConfigError> {
    const LEVELS: [(&str, &str); 6] = [
        ("fatal", "error"),
        ("error", "error"),
        ("warn", "warn"),
        ("info", "info"),
        ("debug", "debug"),
        ("trace", "trace"),
    ];
    LEVELS
        .iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|(_, level)| *level)
        .ok_or_else(|| {
            ConfigError::invalid(
                vars::LOG_LEVEL,
                "one of fatal, error, warn, info, debug, trace",
                Got::value(s),
            )
        })
}

/// Why [`try_init`] did not install the subscriber.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryInitError {
    /// [`LogConfig::filter`] is not a valid `EnvFilter` directive.
    #[error("invalid log filter {filter:?}: {source}")]
    InvalidFilter {
        /// The rejected directive.
        filter: String,
        /// The parser's complaint.
        #[source]
        source: ParseError,
    },
    /// A global `tracing` subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the logging subscriber globally: lines go to stdout.
///
/// # Panics
///
/// If a global subscriber is already set or the filter is invalid (like
/// `tracing_subscriber`'s `init`); see [`try_init`] for the non-panicking form.
pub fn init(config: &LogConfig) {
    if let Err(e) = try_init(config) {
        panic!("obs_core::logging::init failed: {e}");
    }
}

/// Installs the logging subscriber globally unless one is already set. Never panics.
///
/// The subscriber is the one [`dispatch`] builds, writing to stdout (pretty lines colored
/// when stdout is a terminal).
pub fn try_init(config: &LogConfig) -> Result<(), TryInitError> {
    let ansi = config.format == LogFormat::Pretty && std::io::stdout().is_terminal();
    build(config, std::io::stdout, ansi)?
        .try_init()
        .map_err(TryInitError::AlreadyInstalled)
}

/// The subscriber [`try_init`] installs, writing its lines to `make_writer`, as a
/// [`Dispatch`](tracing::Dispatch) to install yourself (globally, or per thread with
/// `tracing::dispatcher::set_default`, as tests do).
///
/// With a filter of plain level directives (e.g. `info,sqlx=warn`) it is obs's own subscriber,
/// which keeps just what the log output needs of each span (its parent and request fields)
/// and costs about a tenth of the atomic operations of `tracing_subscriber::Registry` per span
/// (see `benches/README.md`, `## stack`). Span-scoped directives (`[span{field=value}]`)
/// need `Registry`'s span look-ups, so with those it is [`LogLayer`] on a `Registry`. To stack
/// other layers (OpenTelemetry, Sentry), use [`layer`] on a `Registry` instead.
///
/// Pretty lines are not colored: `make_writer` need not be a terminal.
pub fn dispatch<W>(config: &LogConfig, make_writer: W) -> Result<tracing::Dispatch, TryInitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, make_writer, false)
}

fn build<W>(
    config: &LogConfig,
    make_writer: W,
    ansi: bool,
) -> Result<tracing::Dispatch, TryInitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = config
        .env_filter()
        .map_err(|source| TryInitError::InvalidFilter {
            filter: config.filter.clone(),
            source,
        })?;
    Ok(if config.filter.contains('[') {
        tracing::Dispatch::new(
            tracing_subscriber::registry().with(
                LogLayer::new(config.format, make_writer)
                    .with_ansi(ansi)
                    .with_filter(with_request_spans(filter)),
            ),
        )
    } else {
        // The filter is global: only callsite and per-event checks, no per-span hooks.
        tracing::Dispatch::new(GlobalFilter(with_request_spans(filter)).with_subscriber(
            subscriber::LogSubscriber::new(config.format, make_writer, ansi),
        ))
    })
}

/// A static filter (no span-scoped directives) applied to the whole subscriber: only the
/// callsite and per-event checks, none of the span life-cycle hooks.
struct GlobalFilter<F>(F);

impl<S, F> Layer<S> for GlobalFilter<F>
where
    S: tracing::Subscriber,
    F: Filter<S> + 'static,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.0.callsite_enabled(metadata)
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.0.enabled(metadata, &ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }
}

/// The logging output as a composable layer writing to `writer`, filtered by the config's
/// filter (a per-layer filter: other layers of the subscriber are not restricted by it).
///
/// An invalid [`LogConfig::filter`] is parsed leniently here: invalid directives are skipped
/// with a note on stderr (values read by [`LogConfig::from_env`] are always valid).
pub fn layer<S, W>(config: &LogConfig, writer: W) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder().parse_lossy(&config.filter);
    LogLayer::new(config.format, writer).with_filter(with_request_spans(filter))
}

/// `filter`, plus every span at `INFO` or above that has a `request_id` field, so the layer
/// learns the request of a span even when the level filter is stricter (e.g. `warn` events in a
/// task spawned with `.instrument(request_span)`). Spans are not printed, so this adds no
/// output; `debug`/`trace` callsites keep their fast path.
fn with_request_spans<S>(filter: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber,
{
    fn is_request_span(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span()
            && *meta.level() <= tracing::Level::INFO
            && meta.fields().field("request_id").is_some()
    }
    let request_spans = filter_fn(is_request_span as fn(&tracing::Metadata<'_>) -> bool)
        .with_max_level_hint(LevelFilter::INFO);
    filter.or(request_spans)
}
