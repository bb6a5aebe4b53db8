//! Storage of the HTTP RED metrics behind `obs_tower::HttpMetricsLayer` (this crate knows
//! nothing about HTTP types; the layer passes a method enum, a route template and a status).
//!
//! - `http_requests_total{method,route,status}` — `status` is the class (`2xx`, `4xx`,
//!   `5xx`, ...), so PromQL like `status=~"5.."` still selects server errors;
//! - `http_request_duration_seconds{method,route}` — no status label, so the histogram's
//!   series are not multiplied by status classes;
//! - `http_requests_in_flight{method,route}`.
//!
//! `route` is a route **template** (`/users/{id}`), never a raw path. Requests that matched
//! no route are recorded under [`UNMATCHED_ROUTE`]; beyond `max_routes` distinct templates
//! further ones go to [`OVERFLOW`](crate::OVERFLOW). Methods outside the standard nine are
//! `other`. Per route, all (method, status class) cells are one dense array: the per-request
//! cost is one read-locked hash lookup of the route string plus indexed atomics.
//!
//! ```
//! use obs_metrics::http::{HttpMethod, HttpMetrics};
//! use obs_metrics::{Format, Registry, Scope};
//!
//! let registry = Registry::new();
//! let http = HttpMetrics::register(&registry).unwrap();
//! let req = http.start(HttpMethod::Get, Some("/users/{id}"));
//! req.finish(200);
//! let body = registry.encode(Format::Prometheus, &[Scope::System]);
//! assert!(body.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="2xx"} 1"#));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType as PcType;
use prometheus_client::registry::Unit;

use crate::labels::LabelValue;
use crate::metric::{encode_hist_sample, Bounds, HistCells, SeriesLabels, DEFAULT_BUCKETS};
use crate::naming::MetricType;
use crate::registry::{Descriptor, LabelDescriptor, Registry, RegistryError, Scope};

/// Route label of requests that matched no route (404s from scanners and typos).
pub const UNMATCHED_ROUTE: &str = "__unmatched__";

/// Default cap on distinct route templates.
pub const DEFAULT_MAX_ROUTES: usize = 500;

crate::label_enum! {
    /// HTTP method label; anything outside the standard nine is `other`.
    pub enum HttpMethod {
        Get = "GET", Head = "HEAD", Post = "POST", Put = "PUT", Delete = "DELETE",
        Connect = "CONNECT", Options = "OPTIONS", Trace = "TRACE", Patch = "PATCH",
        Other = "other",
    }
}

impl HttpMethod {
    /// Maps a method string (case-sensitive, as on the wire) to its label.
    pub fn from_method(m: &str) -> Self {
        match m {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            _ => Self::Other,
        }
    }
}

crate::label_enum! {
    /// Status class label.
    pub enum StatusClass {
        Informational = "1xx", Success = "2xx", Redirection = "3xx",
        ClientError = "4xx", ServerError = "5xx", Other = "other",
    }
}

impl StatusClass {
    /// Class of a status code.
    pub fn from_code(code: u16) -> Self {
        match code {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }
}

const METHODS: usize = HttpMethod::VALUES.len();
const CLASSES: usize = StatusClass::VALUES.len();

struct RouteSeries {
    bounds: Bounds,
    requests: [AtomicU64; METHODS * CLASSES],
    in_flight: [AtomicI64; METHODS],
    durations: HistCells,
}

impl RouteSeries {
    fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: Bounds::new(bounds),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            in_flight: std::array::from_fn(|_| AtomicI64::new(0)),
            durations: HistCells::new(METHODS, bounds.len()),
        }
    }
}

struct Inner {
    bounds: Box<[f64]>,
    max_routes: usize,
    routes: RwLock<HashMap<Box<str>, Arc<RouteSeries>>>,
    unmatched: Arc<RouteSeries>,
    overflow: Arc<RouteSeries>,
}

/// HTTP RED metrics storage. Cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("routes", &self.inner.routes.read().len())
            .field("max_routes", &self.inner.max_routes)
            .finish()
    }
}

/// Options of [`HttpMetrics`].
#[derive(Debug, Clone)]
pub struct HttpMetricsBuilder {
    buckets: Vec<f64>,
    max_routes: usize,
}

impl Default for HttpMetricsBuilder {
    fn default() -> Self {
        Self {
            buckets: DEFAULT_BUCKETS.to_vec(),
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }
}

impl HttpMetricsBuilder {
    /// Duration histogram buckets in seconds (default: Prometheus client defaults).
    pub fn buckets(mut self, buckets: &[f64]) -> Self {
        self.buckets = buckets.to_vec();
        self
    }
    /// Cap on distinct route templates (default 500).
    pub fn max_routes(mut self, n: usize) -> Self {
        self.max_routes = n;
        self
    }
    /// Registers the three families in the system scope of `registry`.
    pub fn register(self, registry: &Registry) -> Result<HttpMetrics, RegistryError> {
        crate::metric::check_buckets(&self.buckets).map_err(|reason| {
            RegistryError::InvalidOptions {
                name: "http_request_duration_seconds".into(),
                reason,
            }
        })?;
        let m = HttpMetrics {
            inner: Arc::new(Inner {
                bounds: self.buckets.clone().into(),
                max_routes: self.max_routes,
                routes: RwLock::new(HashMap::new()),
                unmatched: Arc::new(RouteSeries::new(&self.buckets)),
                overflow: Arc::new(RouteSeries::new(&self.buckets)),
            }),
        };
        registry.register_collector(
            descriptors(&self.buckets),
            Box::new(m.clone()),
            Scope::System,
        )?;
        Ok(m)
    }
}

/// Descriptors of the HTTP families with the given buckets.
pub fn descriptors(buckets: &[f64]) -> Vec<Descriptor> {
    let method = LabelDescriptor {
        name: "method".into(),
        values: Some(HttpMethod::VALUES.iter().map(|s| (*s).into()).collect()),
    };
    let route = LabelDescriptor {
        name: "route".into(),
        values: None,
    };
    let status = LabelDescriptor {
        name: "status".into(),
        values: Some(StatusClass::VALUES.iter().map(|s| (*s).into()).collect()),
    };
    let d = |name: &str, help: &str, ty, labels: Vec<LabelDescriptor>, b: Option<Vec<f64>>| {
        Descriptor {
            name: name.into(),
            help: help.into(),
            metric_type: ty,
            scope: Scope::System,
            labels,
            buckets: b,
            exemplars: false,
            max_series: None,
        }
    };
    vec![
        d(
            "http_requests_total",
            "HTTP requests by method, route template and status class.",
            MetricType::Counter,
            vec![method.clone(), route.clone(), status],
            None,
        ),
        d(
            "http_request_duration_seconds",
            "HTTP request duration until the response head, by method and route template.",
            MetricType::Histogram,
            vec![method.clone(), route.clone()],
            Some(buckets.to_vec()),
        ),
        d(
            "http_requests_in_flight",
            "HTTP requests being served, by method and route template.",
            MetricType::Gauge,
            vec![method, route],
            None,
        ),
    ]
}

/// An in-flight request; [`finish`](InFlight::finish) records it. Dropping it without
/// finishing (the request future was cancelled) only decrements the in-flight gauge.
#[must_use = "call finish(status) when the response is ready"]
pub struct InFlight {
    series: Arc<RouteSeries>,
    method: usize,
    start: Instant,
    done: bool,
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("method", &HttpMethod::VALUES[self.method])
            .field("start", &self.start)
            .finish()
    }
}

impl InFlight {
    /// Records the request as finished with `status` now.
    pub fn finish(mut self, status: u16) {
        let class = StatusClass::from_code(status).index();
        let s = &self.series;
        s.requests[self.method * CLASSES + class].fetch_add(1, Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        s.durations.observe(self.method, &s.bounds, secs);
        s.in_flight[self.method].fetch_sub(1, Relaxed);
        self.done = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.series.in_flight[self.method].fetch_sub(1, Relaxed);
        }
    }
}

impl HttpMetrics {
    /// Registers with default options.
    pub fn register(registry: &Registry) -> Result<Self, RegistryError> {
        HttpMetricsBuilder::default().register(registry)
    }

    /// Options builder.
    pub fn builder() -> HttpMetricsBuilder {
        HttpMetricsBuilder::default()
    }

    fn series(&self, route: Option<&str>) -> Arc<RouteSeries> {
        let Some(route) = route else {
            return self.inner.unmatched.clone();
        };
        if let Some(s) = self.inner.routes.read().get(route) {
            return s.clone();
        }
        let mut map = self.inner.routes.write();
        if let Some(s) = map.get(route) {
            return s.clone();
        }
        if map.len() >= self.inner.max_routes {
            return self.inner.overflow.clone();
        }
        let s = Arc::new(RouteSeries::new(&self.inner.bounds));
        map.insert(route.into(), s.clone());
        s
    }

    /// Starts a request on `route` (`None`: no route matched). Increments in-flight.
    pub fn start(&self, method: HttpMethod, route: Option<&str>) -> InFlight {
        let series = self.series(route);
        let method = method.index();
        series.in_flight[method].fetch_add(1, Relaxed);
        InFlight {
            series,
            method,
            start: Instant::now(),
            done: false,
        }
    }

    /// Requests counted for (method, route, status class); `route` `None` = unmatched.
    pub fn requests(&self, method: HttpMethod, route: Option<&str>, class: StatusClass) -> u64 {
        let s = match route {
            None => Some(self.inner.unmatched.clone()),
            Some(r) => self.inner.routes.read().get(r).cloned(),
        };
        s.map_or(0, |s| {
            s.requests[method.index() * CLASSES + class.index()].load(Relaxed)
        })
    }

    /// Requests in flight for (method, route).
    pub fn in_flight(&self, method: HttpMethod, route: Option<&str>) -> i64 {
        let s = match route {
            None => Some(self.inner.unmatched.clone()),
            Some(r) => self.inner.routes.read().get(r).cloned(),
        };
        s.map_or(0, |s| s.in_flight[method.index()].load(Relaxed))
    }

    fn all_routes(&self) -> Vec<(String, Arc<RouteSeries>)> {
        let mut v: Vec<(String, Arc<RouteSeries>)> = self
            .inner
            .routes
            .read()
            .iter()
            .map(|(k, s)| (k.to_string(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.push((UNMATCHED_ROUTE.into(), self.inner.unmatched.clone()));
        v.push((crate::OVERFLOW.into(), self.inner.overflow.clone()));
        v
    }
}

impl Collector for HttpMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let routes = self.all_routes();
        let bounds = &self.inner.bounds;
        let used = |s: &RouteSeries, m: usize| {
            (0..CLASSES).any(|c| s.requests[m * CLASSES + c].load(Relaxed) > 0)
                || s.in_flight[m].load(Relaxed) != 0
        };
        {
            let mut me = encoder.encode_descriptor(
                "http_requests",
                "HTTP requests by method, route template and status class.",
                None,
                PcType::Counter,
            )?;
            for (route, s) in &routes {
                for m in 0..METHODS {
                    for c in 0..CLASSES {
                        let v = s.requests[m * CLASSES + c].load(Relaxed);
                        if v == 0 {
                            continue;
                        }
                        let values = [
                            HttpMethod::VALUES[m],
                            route.as_str(),
                            StatusClass::VALUES[c],
                        ];
                        let labels = SeriesLabels {
                            names: &["method", "route", "status"],
                            values: &values,
                        };
                        me.encode_family(&labels)?
                            .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
                    }
                }
            }
        }
        {
            let mut me = encoder.encode_descriptor(
                "http_request_duration",
                "HTTP request duration until the response head, by method and route template.",
                Some(&Unit::Seconds),
                PcType::Histogram,
            )?;
            for (route, s) in &routes {
                for m in 0..METHODS {
                    if !used(s, m) {
                        continue;
                    }
                    let snap = s.durations.snapshot(m, bounds);
                    let values = [HttpMethod::VALUES[m], route.as_str()];
                    let labels = SeriesLabels {
                        names: &["method", "route"],
                        values: &values,
                    };
                    encode_hist_sample(&mut me.encode_family(&labels)?, &snap)?;
                }
            }
        }
        {
            let mut me = encoder.encode_descriptor(
                "http_requests_in_flight",
                "HTTP requests being served, by method and route template.",
                None,
                PcType::Gauge,
            )?;
            for (route, s) in &routes {
                for m in 0..METHODS {
                    if !used(s, m) {
                        continue;
                    }
                    let values = [HttpMethod::VALUES[m], route.as_str()];
                    let labels = SeriesLabels {
                        names: &["method", "route"],
                        values: &values,
                    };
                    me.encode_family(&labels)?
                        .encode_gauge(&s.in_flight[m].load(Relaxed))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmatched_other_and_overflow() {
        let r = Registry::new();
        let h = HttpMetrics::builder().max_routes(1).register(&r).unwrap();
        h.start(HttpMethod::from_method("BREW"), None).finish(404);
        h.start(HttpMethod::Get, Some("/a")).finish(500);
        h.start(HttpMethod::Get, Some("/b")).finish(200);
        let inflight = h.start(HttpMethod::Post, Some("/a"));
        assert_eq!(h.in_flight(HttpMethod::Post, Some("/a")), 1);
        drop(inflight);
        assert_eq!(h.in_flight(HttpMethod::Post, Some("/a")), 0);
        assert_eq!(
            h.requests(HttpMethod::Other, None, StatusClass::ClientError),
            1
        );
        assert_eq!(
            h.requests(HttpMethod::Get, Some("/a"), StatusClass::ServerError),
            1
        );
        let text = r.encode(crate::Format::Prometheus, &[Scope::System]);
        assert!(
            text.contains(
                r#"http_requests_total{method="other",route="__unmatched__",status="4xx"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="__overflow__",status="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("/b"));
        assert!(text.contains(r#"http_request_duration_seconds_count{method="GET",route="/a"} 1"#));
    }
}
