//! HTTP sink: each batch is one `POST` of JSON to `METRICS_API_URL` with
//! `Authorization: Bearer $METRICS_API_TOKEN`.
//!
//! Body: `{"events": [StoredEvent...], "metrics": [{"run_id", "metric_name", "metric_value",
//! "recorded_at"}...]}` (timestamps RFC 3339 UTC with milliseconds). A 2xx answer is success;
//! 5xx, 408, 429, timeouts and connection errors are retried by the recorder; any other 4xx
//! is not (the batch is counted as failed).
//!
//! The default client has no TLS (this crate builds reqwest without default features); for an
//! `https://` endpoint pass a TLS-enabled client with [`HttpSink::with_client`].
//!
//! ```no_run
//! use obs_telemetry::{sink::http::HttpSink, Recorder};
//!
//! # fn f() -> Result<(), obs_telemetry::Error> {
//! let sink = HttpSink::new("http://localhost:3000/api/metrics/record", Some("token".into()))?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::{header, Client, StatusCode};

use super::{Batch, Sink, SinkError};

/// Posts batches as JSON to an HTTP endpoint.
#[derive(Clone)]
pub struct HttpSink {
    client: Client,
    url: String,
    token: Option<String>,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HttpSink {
    /// A sink posting to `url` (`METRICS_API_URL`) with an optional bearer token
    /// (`METRICS_API_TOKEN`), using a client with a 10 s request timeout.
    pub fn new(url: impl Into<String>, token: Option<String>) -> Result<Self, crate::Error> {
        let client = Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self::with_client(client, url, token))
    }

    /// A sink for `METRICS_API_URL` / `METRICS_API_TOKEN` as read by `obs_core::config`.
    pub fn from_config(config: &obs_core::config::MetricsApiConfig) -> Result<Self, crate::Error> {
        Self::new(
            config.url.as_str(),
            config.token.as_ref().map(|t| t.expose().to_owned()),
        )
    }

    /// A sink using your own client (TLS, proxies, timeouts).
    pub fn with_client(client: Client, url: impl Into<String>, token: Option<String>) -> Self {
        Self {
            client,
            url: url.into(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    async fn post(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut request = self.client.post(&self.url).json(batch);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                SinkError::Rejected(e.to_string())
            } else {
                SinkError::Unavailable(e.without_url().to_string())
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(SinkError::Unavailable(format!(
                "endpoint answered {status}"
            )))
        } else {
            Err(SinkError::Rejected(format!("endpoint answered {status}")))
        }
    }
}

impl Sink for HttpSink {
    fn write<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.post(batch))
    }
}
