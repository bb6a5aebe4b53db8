//! Sentry for the whole service in one call (feature `sentry`): [`init`] builds the client
//! from [`SentryConfig`] with obs's scrubbing and request-context hooks
//! ([`obs_core::sentry::client_options`]) and the `sentry` crate's reqwest transport.
//!
//! Without `SENTRY_DSN` no client is installed: every `obs_core::sentry` call and the
//! `SentryLayer` are no-ops, and one INFO line says so. The transport is the `sentry` crate's
//! reqwest transport with native TLS (the system OpenSSL: `libssl-dev` to build on Debian),
//! for `https://` DSNs as well as a loopback Bugsink over `http://`.
//!
//! Call it at the start of `main`, before the async runtime starts its worker threads (they
//! fork their hub from the main one when they first use Sentry), and keep the guard alive:
//! dropping it flushes queued events.
//!
//! ```
//! use obs::core::config::SentryConfig;
//!
//! // No DSN: Sentry disabled, calls are no-ops.
//! let guard = obs::sentry::init(&SentryConfig::default());
//! assert!(!guard.is_enabled());
//! assert!(obs::core::sentry::capture_message("nobody hears this", obs::core::sentry::Level::Info, ()).is_none());
//! ```

use std::fmt;

use obs_core::config::SentryConfig;

/// Keeps the Sentry client alive; dropping it flushes pending events (up to the client's
/// shutdown timeout, 2 s by default).
#[must_use = "dropping the guard flushes pending events and shuts the Sentry client down"]
pub struct Guard(Option<sentry::ClientInitGuard>);

impl Guard {
    /// True when a client with a DSN is installed.
    pub fn is_enabled(&self) -> bool {
        self.0.as_ref().is_some_and(|g| g.is_enabled())
    }

    /// Sends what is queued, waiting at most `timeout`; `true` if everything was sent.
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        match &self.0 {
            Some(guard) => guard.flush(Some(timeout)),
            None => true,
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// Installs the Sentry client described by `config` on the process hub and logs one line
/// saying whether Sentry is on ([`obs_core::sentry::log_status`]).
pub fn init(config: &SentryConfig) -> Guard {
    obs_core::sentry::log_status(config);
    if !config.is_enabled() {
        return Guard(None);
    }
    Guard(Some(sentry::init(obs_core::sentry::client_options(config))))
}

/// [`init`] with your own [`Scrubber`](obs_core::redact::Scrubber) for events and breadcrumbs
/// (what [`Obs`](crate::Obs) uses, so Sentry and telemetry scrub alike).
pub fn init_with(config: &SentryConfig, scrubber: obs_core::redact::Scrubber) -> Guard {
    obs_core::sentry::log_status(config);
    if !config.is_enabled() {
        return Guard(None);
    }
    let mut options = obs_core::sentry::client_options(config);
    // client_options installed the default scrubber's hooks; rebuild them with ours.
    options.before_send = None;
    options.before_breadcrumb = None;
    Guard(Some(sentry::init(obs_core::sentry::configure(
        options, scrubber,
    ))))
}
