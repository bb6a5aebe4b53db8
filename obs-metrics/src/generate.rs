//! Generators driven by the same definitions as the exposition: a markdown metric
//! [`catalog`], Prometheus recording + alert [`rules`] from declared [`Slo`]s (multi-window,
//! multi-burn-rate, as in the Google SRE workbook), and a Grafana [`dashboard`].
//!
//! ```
//! use obs_metrics::generate::{catalog, dashboard, rules, Slo};
//! use obs_metrics::{http::HttpMetrics, Registry};
//!
//! let registry = Registry::new();
//! HttpMetrics::register(&registry).unwrap();
//! let d = registry.descriptors();
//! assert!(catalog(&d).contains("| `http_requests_total` | counter |"));
//! let slos = [
//!     Slo::http_availability("api-availability", 0.999),
//!     Slo::http_latency("api-latency", 0.99, 0.5),
//! ];
//! let yaml = rules(&slos, &d).unwrap();
//! assert!(yaml.contains("record: slo:sli_error:ratio_rate5m"));
//! let json = dashboard("API", &d);
//! assert!(json["panels"].as_array().unwrap().len() >= 3);
//! // A latency objective must sit on a bucket boundary:
//! assert!(rules(&[Slo::http_latency("x", 0.99, 0.3)], &d).is_err());
//! ```

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::naming::MetricType;
use crate::registry::{Descriptor, Scope};

/// Why rules could not be generated from the SLOs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The SLO names a metric that is not registered.
    #[error("SLO `{slo}`: metric `{metric}` is not registered")]
    UnknownMetric {
        /// SLO name.
        slo: String,
        /// Metric name.
        metric: String,
    },
    /// The SLO's metric has the wrong type (error ratio: counter; latency: histogram).
    #[error("SLO `{slo}`: metric `{metric}` must be a {expected}")]
    WrongType {
        /// SLO name.
        slo: String,
        /// Metric name.
        metric: String,
        /// Expected type.
        expected: &'static str,
    },
    /// A latency threshold that is not one of the histogram's bucket bounds.
    #[error(
        "SLO `{slo}`: threshold {threshold}s is not a bucket bound of `{metric}` ({buckets:?})"
    )]
    ThresholdNotABucket {
        /// SLO name.
        slo: String,
        /// Histogram name.
        metric: String,
        /// Threshold.
        threshold: String,
        /// The histogram's bounds.
        buckets: Vec<f64>,
    },
    /// A label matcher names a label the metric does not have, or an unknown fixed value.
    #[error("SLO `{slo}`: matcher `{matcher}` does not fit `{metric}`: {reason}")]
    BadMatcher {
        /// SLO name.
        slo: String,
        /// Metric name.
        metric: String,
        /// The matcher.
        matcher: String,
        /// What is wrong.
        reason: String,
    },
    /// Objective outside (0, 1) or a bad SLO name.
    #[error("SLO `{slo}`: {reason}")]
    Invalid {
        /// SLO name.
        slo: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What an SLO measures.
#[derive(Debug, Clone, PartialEq)]
pub enum SloKind {
    /// Ratio of `errors` increments to all increments of counter `metric`.
    ErrorRatio {
        /// Counter name (`http_requests_total`).
        metric: String,
        /// Label matchers selecting the errors (`status="5xx"`).
        errors: Vec<String>,
    },
    /// Fraction of observations of histogram `metric` slower than `threshold_seconds`.
    Latency {
        /// Histogram name.
        metric: String,
        /// Threshold; must be a bucket bound.
        threshold_seconds: f64,
    },
}

/// A service-level objective declared in code.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Name, used as the `slo` label (`[a-z0-9_-]`).
    pub name: String,
    /// Target good fraction, e.g. `0.999`.
    pub objective: f64,
    /// What is measured.
    pub kind: SloKind,
    /// Extra matchers applied to both numerator and denominator (`route="/api/assets"`).
    pub filter: Vec<String>,
}

impl Slo {
    /// Error-ratio SLO on a counter: `errors` are matchers such as `status="failure"`.
    pub fn error_ratio(name: &str, objective: f64, metric: &str, errors: &[&str]) -> Self {
        Self {
            name: name.into(),
            objective,
            kind: SloKind::ErrorRatio {
                metric: metric.into(),
                errors: errors.iter().map(|s| (*s).into()).collect(),
            },
            filter: vec![],
        }
    }
    /// Latency SLO on a histogram: `objective` of observations at most `threshold_seconds`.
    pub fn latency(name: &str, objective: f64, metric: &str, threshold_seconds: f64) -> Self {
        Self {
            name: name.into(),
            objective,
            kind: SloKind::Latency {
                metric: metric.into(),
                threshold_seconds,
            },
            filter: vec![],
        }
    }
    /// HTTP availability: 5xx responses over all responses of `http_requests_total`.
    pub fn http_availability(name: &str, objective: f64) -> Self {
        Self::error_ratio(name, objective, "http_requests_total", &[r#"status="5xx""#])
    }
    /// HTTP latency on `http_request_duration_seconds`.
    pub fn http_latency(name: &str, objective: f64, threshold_seconds: f64) -> Self {
        Self::latency(
            name,
            objective,
            "http_request_duration_seconds",
            threshold_seconds,
        )
    }
    /// Restricts the SLO with an extra matcher (e.g. `route="/api/generate"`).
    pub fn filter(mut self, matcher: &str) -> Self {
        self.filter.push(matcher.into());
        self
    }
}

/// Bucket bound as prometheus-client writes it in `le` (shortest round-trip, `1.0` not `1`).
fn le(v: f64) -> String {
    format!("{v:?}")
}

fn selector(metric: &str, matchers: &[String]) -> String {
    if matchers.is_empty() {
        metric.to_owned()
    } else {
        format!("{metric}{{{}}}", matchers.join(","))
    }
}

fn check_matcher(slo: &str, d: &Descriptor, m: &str) -> Result<(), GenerateError> {
    let bad = |reason: String| GenerateError::BadMatcher {
        slo: slo.into(),
        metric: d.name.clone(),
        matcher: m.into(),
        reason,
    };
    let pos = m.find(['=', '!']).ok_or_else(|| {
        bad("expected label=\"value\", label!=\"v\", label=~\"re\" or label!~\"re\"".into())
    })?;
    let (label, rest) = m.split_at(pos);
    let label = label.trim();
    let l = d
        .labels
        .iter()
        .find(|l| l.name == label)
        .ok_or_else(|| bad(format!("no label `{label}`")))?;
    if let (Some(vals), Some(v)) = (&l.values, rest.strip_prefix('=')) {
        if !v.starts_with('~') {
            let v = v.trim().trim_matches('"');
            if !vals.iter().any(|x| x == v) {
                return Err(bad(format!(
                    "`{label}` has no value `{v}` (allowed: {vals:?})"
                )));
            }
        }
    }
    Ok(())
}

const WINDOWS: &[&str] = &["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// Prometheus rule file (YAML) with, per SLO, recording rules
/// `slo:sli_error:ratio_rate<window>{slo="..."}` for 5m..3d and two alerts:
/// `SloErrorBudgetBurnPage` (1h & 5m above 14.4x, or 6h & 30m above 6x the budget) and
/// `SloErrorBudgetBurnTicket` (1d & 2h above 3x, or 3d & 6h above 1x).
pub fn rules(slos: &[Slo], descriptors: &[Descriptor]) -> Result<String, GenerateError> {
    let mut out =
        String::from("# Generated by obs-metrics from the declared SLOs. Do not edit.\ngroups:\n");
    for slo in slos {
        let invalid = |reason| GenerateError::Invalid {
            slo: slo.name.clone(),
            reason,
        };
        if !(slo.objective > 0.0 && slo.objective < 1.0) {
            return Err(invalid(
                "objective must be between 0 and 1 (exclusive), e.g. 0.999",
            ));
        }
        if slo.name.is_empty()
            || !slo
                .name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return Err(invalid("name must be non-empty [a-z0-9_-]"));
        }
        let (metric, expected) = match &slo.kind {
            SloKind::ErrorRatio { metric, .. } => (metric, MetricType::Counter),
            SloKind::Latency { metric, .. } => (metric, MetricType::Histogram),
        };
        let d = descriptors
            .iter()
            .find(|d| &d.name == metric)
            .ok_or_else(|| GenerateError::UnknownMetric {
                slo: slo.name.clone(),
                metric: metric.clone(),
            })?;
        if d.metric_type != expected {
            return Err(GenerateError::WrongType {
                slo: slo.name.clone(),
                metric: metric.clone(),
                expected: expected.as_str(),
            });
        }
        for m in &slo.filter {
            check_matcher(&slo.name, d, m)?;
        }
        let ratio = |w: &str| -> Result<String, GenerateError> {
            Ok(match &slo.kind {
                SloKind::ErrorRatio { metric, errors } => {
                    let mut e = slo.filter.clone();
                    e.extend(errors.iter().cloned());
                    format!(
                        "sum(rate({}[{w}])) / sum(rate({}[{w}]))",
                        selector(metric, &e),
                        selector(metric, &slo.filter)
                    )
                }
                SloKind::Latency {
                    metric,
                    threshold_seconds,
                } => {
                    let mut b = slo.filter.clone();
                    b.push(format!("le=\"{}\"", le(*threshold_seconds)));
                    format!(
                        "1 - (sum(rate({}[{w}])) / sum(rate({}[{w}])))",
                        selector(&format!("{metric}_bucket"), &b),
                        selector(&format!("{metric}_count"), &slo.filter)
                    )
                }
            })
        };
        if let SloKind::ErrorRatio { errors, .. } = &slo.kind {
            if errors.is_empty() {
                return Err(invalid(
                    "an error-ratio SLO needs at least one error matcher",
                ));
            }
            for m in errors {
                check_matcher(&slo.name, d, m)?;
            }
        }
        if let SloKind::Latency {
            threshold_seconds, ..
        } = &slo.kind
        {
            let buckets = d.buckets.clone().unwrap_or_default();
            if !buckets.contains(threshold_seconds) {
                return Err(GenerateError::ThresholdNotABucket {
                    slo: slo.name.clone(),
                    metric: d.name.clone(),
                    threshold: le(*threshold_seconds),
                    buckets,
                });
            }
        }
        let q = |s: &str| serde_json::to_string(s).expect("string serializes");
        let budget = 1.0 - slo.objective;
        let _ = writeln!(out, "  - name: {}", q(&format!("slo-{}", slo.name)));
        let _ = writeln!(out, "    rules:");
        for w in WINDOWS {
            let _ = writeln!(out, "      - record: slo:sli_error:ratio_rate{w}");
            let _ = writeln!(out, "        expr: {}", q(&ratio(w)?));
            let _ = writeln!(out, "        labels:");
            let _ = writeln!(out, "          slo: {}", q(&slo.name));
        }
        let r = |w: &str| format!("slo:sli_error:ratio_rate{w}{{slo={}}}", q(&slo.name));
        let page = format!(
            "({} > {f1} and {} > {f1}) or ({} > {f2} and {} > {f2})",
            r("1h"),
            r("5m"),
            r("6h"),
            r("30m"),
            f1 = 14.4 * budget,
            f2 = 6.0 * budget
        );
        let ticket = format!(
            "({} > {f1} and {} > {f1}) or ({} > {f2} and {} > {f2})",
            r("1d"),
            r("2h"),
            r("3d"),
            r("6h"),
            f1 = 3.0 * budget,
            f2 = budget
        );
        let what = match &slo.kind {
            SloKind::ErrorRatio { metric, .. } => format!("error ratio of {metric}"),
            SloKind::Latency {
                metric,
                threshold_seconds,
            } => format!("share of {metric} slower than {threshold_seconds}s"),
        };
        for (alert, sev, expr, speed) in [
            ("SloErrorBudgetBurnPage", "page", page, "fast"),
            ("SloErrorBudgetBurnTicket", "ticket", ticket, "slow"),
        ] {
            let _ = writeln!(out, "      - alert: {alert}");
            let _ = writeln!(out, "        expr: {}", q(&expr));
            let _ = writeln!(out, "        labels:");
            let _ = writeln!(out, "          severity: {sev}");
            let _ = writeln!(out, "          slo: {}", q(&slo.name));
            let _ = writeln!(out, "        annotations:");
            let _ = writeln!(
                out,
                "          summary: {}",
                q(&format!(
                    "SLO {} is burning its error budget {speed}",
                    slo.name
                ))
            );
            let _ = writeln!(
                out,
                "          description: {}",
                q(&format!(
                    "The {what} is consuming the {:.3}% error budget of objective {} too fast.",
                    budget * 100.0,
                    slo.objective
                ))
            );
        }
    }
    Ok(out)
}

/// Markdown catalog: one table per scope with name, type, unit, help, labels (allowed values
/// or "dynamic, cap N") and buckets.
pub fn catalog(descriptors: &[Descriptor]) -> String {
    let mut out =
        String::from("# Metric catalog\n\nGenerated by obs-metrics from the metric definitions.\n");
    for (scope, title, path) in [
        (Scope::System, "System metrics", "/metrics"),
        (Scope::Business, "Business metrics", "/metrics/business"),
    ] {
        let ds: Vec<&Descriptor> = descriptors.iter().filter(|d| d.scope == scope).collect();
        if ds.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n## {title} (`{path}`)\n\n| name | type | unit | help | labels | buckets |\n|---|---|---|---|---|---|\n"
        );
        for d in ds {
            let labels = d
                .labels
                .iter()
                .map(|l| match &l.values {
                    Some(v) => format!("`{}`: {}", l.name, v.join(", ")),
                    None => format!("`{}`: dynamic", l.name),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let labels = match d.max_series {
                Some(n) => format!("{labels} (at most {n} series, then `__overflow__`)"),
                None => labels,
            };
            let buckets = d
                .buckets
                .as_ref()
                .map(|b| b.iter().map(|v| le(*v)).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                d.name,
                d.metric_type.as_str(),
                d.unit().unwrap_or(""),
                d.help.replace('|', "\\|"),
                if labels.is_empty() {
                    "—".into()
                } else {
                    labels
                },
                buckets
            );
        }
    }
    out
}

fn panel(id: &mut u32, title: &str, unit: &str, exprs: &[(String, String)]) -> Value {
    *id += 1;
    let n = *id - 1;
    json!({
        "id": *id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (n % 2) * 12, "y": (n / 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": exprs.iter().enumerate().map(|(i, (e, legend))| json!({
            "refId": char::from(b'A' + i as u8).to_string(),
            "expr": e,
            "legendFormat": legend,
        })).collect::<Vec<_>>(),
    })
}

const FAILURE_VALUES: &[&str] = &["failure", "failed", "error", "errors", "5xx"];

/// Grafana dashboard JSON: request rate, error ratio and p50/p95/p99 per HTTP route (when the
/// HTTP metrics are registered), and per business metric: rate (counters, plus an error ratio
/// when a label has a failure value), value (gauges), p50/p95/p99 (histograms).
pub fn dashboard(title: &str, descriptors: &[Descriptor]) -> Value {
    let mut id = 0;
    let mut panels = Vec::new();
    let rate = "$__rate_interval";
    if descriptors.iter().any(|d| d.name == "http_requests_total") {
        panels.push(panel(
            &mut id,
            "HTTP request rate by route",
            "reqps",
            &[(
                format!("sum by (route) (rate(http_requests_total[{rate}]))"),
                "{{route}}".into(),
            )],
        ));
        panels.push(panel(
            &mut id,
            "HTTP error ratio (5xx) by route",
            "percentunit",
            &[(
                format!("sum by (route) (rate(http_requests_total{{status=\"5xx\"}}[{rate}])) / sum by (route) (rate(http_requests_total[{rate}]))"),
                "{{route}}".into(),
            )],
        ));
    }
    if descriptors
        .iter()
        .any(|d| d.name == "http_request_duration_seconds")
    {
        panels.push(panel(
            &mut id,
            "HTTP latency p50/p95/p99 by route",
            "s",
            &[0.5, 0.95, 0.99].map(|q| {
                (
                    format!("histogram_quantile({q}, sum by (le, route) (rate(http_request_duration_seconds_bucket[{rate}])))"),
                    format!("p{} {{{{route}}}}", (q * 100.0) as u32),
                )
            }),
        ));
    }
    for d in descriptors.iter().filter(|d| d.scope == Scope::Business) {
        let by: Vec<&str> = d.labels.iter().map(|l| l.name.as_str()).collect();
        let by_clause = if by.is_empty() {
            String::new()
        } else {
            format!(" by ({})", by.join(", "))
        };
        let legend = if by.is_empty() {
            d.name.clone()
        } else {
            by.iter()
                .map(|l| format!("{{{{{l}}}}}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let unit = match d.unit() {
            Some("seconds") => "s",
            Some("bytes") => "bytes",
            _ => "short",
        };
        match d.metric_type {
            MetricType::Counter => {
                panels.push(panel(
                    &mut id,
                    &format!("{} rate", d.name),
                    if unit == "short" { "ops" } else { unit },
                    &[(format!("sum{by_clause} (rate({}[{rate}]))", d.name), legend)],
                ));
                let failing = d.labels.iter().find_map(|l| {
                    let v = l.values.as_ref()?;
                    let f = v.iter().find(|v| FAILURE_VALUES.contains(&v.as_str()))?;
                    Some((l.name.clone(), f.clone()))
                });
                if let Some((label, value)) = failing {
                    let rest: Vec<&str> = by.iter().copied().filter(|l| *l != label).collect();
                    let group = if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" by ({})", rest.join(", "))
                    };
                    panels.push(panel(
                        &mut id,
                        &format!("{} error ratio ({label}=\"{value}\")", d.name),
                        "percentunit",
                        &[(
                            format!(
                                "sum{group} (rate({n}{{{label}=\"{value}\"}}[{rate}])) / sum{group} (rate({n}[{rate}]))",
                                n = d.name
                            ),
                            if rest.is_empty() {
                                d.name.clone()
                            } else {
                                rest.iter().map(|l| format!("{{{{{l}}}}}")).collect::<Vec<_>>().join(" ")
                            },
                        )],
                    ));
                }
            }
            MetricType::Gauge => panels.push(panel(
                &mut id,
                &d.name,
                unit,
                &[(format!("sum{by_clause} ({})", d.name), legend)],
            )),
            MetricType::Histogram => {
                let mut le_by = vec!["le"];
                le_by.extend(by.iter().copied());
                panels.push(panel(
                    &mut id,
                    &format!("{} p50/p95/p99", d.name),
                    unit,
                    &[0.5, 0.95, 0.99].map(|q| {
                        (
                            format!(
                                "histogram_quantile({q}, sum by ({}) (rate({}_bucket[{rate}])))",
                                le_by.join(", "),
                                d.name
                            ),
                            format!("p{} {}", (q * 100.0) as u32, legend),
                        )
                    }),
                ));
            }
        }
    }
    json!({
        "title": title,
        "uid": title.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect::<String>(),
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["obs", "generated"],
        "templating": {"list": [{
            "name": "datasource",
            "type": "datasource",
            "query": "prometheus",
            "label": "Data source",
        }]},
        "panels": panels,
    })
}
