//! HTTP dependency check (reqwest): GET a URL, unhealthy outside the expected status range or on
//! error/timeout, degraded when slow.

use crate::{CheckFuture, CheckResult, HealthCheck};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// HTTP dependency check (feature `http`).
///
/// ```no_run
/// use std::time::Duration;
/// use obs_health::{checks::HttpCheck, Health, Registration};
///
/// let check = HttpCheck::new(reqwest::Client::new(), "http://payments.internal/healthz")
///     .expect_status(200..=299)
///     .request_timeout(Duration::from_secs(1))
///     .slow_threshold(Duration::from_millis(300));
/// let health = Health::builder()
///     .register(Registration::new("payments", check).optional())
///     .build()
///     .unwrap();
/// # let _ = health;
/// ```
#[derive(Debug, Clone)]
pub struct HttpCheck {
    client: reqwest::Client,
    url: String,
    expected: RangeInclusive<u16>,
    request_timeout: Option<Duration>,
    slow: Duration,
}

impl HttpCheck {
    /// GET `url` with `client`; defaults: expect 200–299, no request timeout of its own (the
    /// registration's timeout applies), degraded from 500 ms.
    pub fn new(client: reqwest::Client, url: impl Into<String>) -> Self {
        HttpCheck {
            client,
            url: url.into(),
            expected: 200..=299,
            request_timeout: None,
            slow: Duration::from_millis(500),
        }
    }

    /// Status codes that count as healthy.
    #[must_use]
    pub fn expect_status(mut self, range: RangeInclusive<u16>) -> Self {
        self.expected = range;
        self
    }

    /// Per-request timeout (reqwest's own), reported as "request timed out" rather than the
    /// runner's generic timeout. Keep it below the registration timeout.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Latency from which the check reports degraded.
    #[must_use]
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }
}

impl HealthCheck for HttpCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let mut request = self.client.get(&self.url);
            if let Some(t) = self.request_timeout {
                request = request.timeout(t);
            }
            let started = Instant::now();
            let response = request.send().await;
            let latency = started.elapsed();
            let latency_ms = latency.as_micros() as f64 / 1000.0;
            let result = match response {
                Err(e) if e.is_timeout() => CheckResult::unhealthy("request timed out"),
                Err(e) => CheckResult::unhealthy(format!("request failed: {e}")),
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let r = if !self.expected.contains(&code) {
                        CheckResult::unhealthy(format!(
                            "unexpected status {code} (expected {}-{})",
                            self.expected.start(),
                            self.expected.end()
                        ))
                    } else if latency >= self.slow {
                        CheckResult::degraded(format!(
                            "response took {latency_ms:.1} ms (threshold {} ms)",
                            self.slow.as_millis()
                        ))
                    } else {
                        CheckResult::healthy()
                    };
                    r.with_detail("status_code", code)
                }
            };
            result.with_detail("latency_ms", latency_ms)
        })
    }
}
