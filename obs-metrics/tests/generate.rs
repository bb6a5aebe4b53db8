//! Catalog, rules and dashboard generation from definitions (promtool validation of the rules
//! lives in the workspace's `tests/prometheus_promtool.rs`).

use obs_metrics::generate::{catalog, dashboard, rules, GenerateError, Slo};
use obs_metrics::http::HttpMetrics;
use obs_metrics::{opts, Counter, DynCounter, Gauge, Histogram, MetricGroup, Registry};

obs_metrics::label_enum! {
    /// Outcome.
    pub enum Status { Success = "success", Failure = "failure" }
}
obs_metrics::label_set! {
    /// status.
    pub struct StatusLabels { status: Status }
}
obs_metrics::metric_group! {
    /// Exports.
    pub struct Exports {
        /// Exports run by outcome.
        pub exports_total: Counter<StatusLabels>,
        /// Export time.
        pub export_duration_seconds: Histogram = opts().buckets(&[1.0, 5.0, 30.0]),
        /// Bytes waiting to be exported.
        pub export_queue_bytes: Gauge,
        /// Exports by destination.
        pub exports_by_destination_total: DynCounter<1> = opts().labels(&["destination"]).max_series(20),
    }
}

fn registry() -> Registry {
    let r = Registry::new();
    HttpMetrics::register(&r).unwrap();
    Exports::register(&r).unwrap();
    r
}

#[test]
fn catalog_lists_types_units_values_caps_and_buckets() {
    let md = catalog(&registry().descriptors());
    assert!(md.contains("## System metrics (`/metrics`)"));
    assert!(md.contains("## Business metrics (`/metrics/business`)"));
    assert!(md.contains("| `exports_total` | counter |  | Exports run by outcome. | `status`: success, failure |  |"), "{md}");
    assert!(md.contains(
        "| `export_duration_seconds` | histogram | seconds | Export time. | — | 1.0, 5.0, 30.0 |"
    ));
    assert!(md.contains("| `export_queue_bytes` | gauge | bytes |"));
    assert!(md.contains("`destination`: dynamic (at most 20 series, then `__overflow__`)"));
}

#[test]
fn dashboard_has_http_and_per_metric_panels() {
    let d = dashboard("Exports", &registry().descriptors());
    let panels = d["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for t in [
        "HTTP request rate by route",
        "HTTP error ratio (5xx) by route",
        "HTTP latency p50/p95/p99 by route",
        "exports_total rate",
        "exports_total error ratio (status=\"failure\")",
        "export_duration_seconds p50/p95/p99",
        "export_queue_bytes",
        "exports_by_destination_total rate",
    ] {
        assert!(titles.contains(&t), "missing {t}: {titles:?}");
    }
    let hist = panels
        .iter()
        .find(|p| p["title"] == "export_duration_seconds p50/p95/p99")
        .unwrap();
    let exprs: Vec<&str> = hist["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert_eq!(
        exprs[2],
        "histogram_quantile(0.99, sum by (le) (rate(export_duration_seconds_bucket[$__rate_interval])))"
    );
    assert_eq!(hist["fieldConfig"]["defaults"]["unit"], "s");
    // Unique panel ids, a datasource variable to bind on import.
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), panels.len());
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
}

#[test]
fn rules_validate_slos_against_definitions() {
    let d = registry().descriptors();
    let ok = rules(
        &[
            Slo::error_ratio("exports", 0.99, "exports_total", &[r#"status="failure""#]),
            Slo::latency("export-latency", 0.95, "export_duration_seconds", 5.0),
        ],
        &d,
    )
    .unwrap();
    assert!(
        ok.contains(
            r#"sum(rate(exports_total{status=\"failure\"}[1h])) / sum(rate(exports_total[1h]))"#
        ),
        "{ok}"
    );
    assert!(ok.contains(r#"1 - (sum(rate(export_duration_seconds_bucket{le=\"5.0\"}[5m])) / sum(rate(export_duration_seconds_count[5m])))"#));
    // Page threshold: 14.4 x (1 - 0.99).
    assert!(ok.contains("> 0.14400000000000013"), "{ok}");

    let err = |slo: Slo| rules(&[slo], &d).unwrap_err();
    assert!(matches!(
        err(Slo::error_ratio(
            "x",
            0.99,
            "nope_total",
            &[r#"status="failure""#]
        )),
        GenerateError::UnknownMetric { .. }
    ));
    assert!(matches!(
        err(Slo::error_ratio(
            "x",
            0.99,
            "export_duration_seconds",
            &[r#"status="failure""#]
        )),
        GenerateError::WrongType { .. }
    ));
    assert!(matches!(
        err(Slo::error_ratio(
            "x",
            0.99,
            "exports_total",
            &[r#"status="failed""#]
        )),
        GenerateError::BadMatcher { .. }
    ));
    assert!(matches!(
        err(Slo::error_ratio(
            "x",
            0.99,
            "exports_total",
            &[r#"result="failure""#]
        )),
        GenerateError::BadMatcher { .. }
    ));
    assert!(matches!(
        err(Slo::latency("x", 0.99, "export_duration_seconds", 2.0)),
        GenerateError::ThresholdNotABucket { .. }
    ));
    assert!(matches!(
        err(Slo::http_availability("x", 1.0)),
        GenerateError::Invalid { .. }
    ));
    assert!(matches!(
        err(Slo::http_availability("Bad Name", 0.9)),
        GenerateError::Invalid { .. }
    ));
    assert!(rules(
        &[Slo::http_availability("api", 0.999).filter(r#"route="/x""#)],
        &d
    )
    .unwrap()
    .contains(r#"http_requests_total{route=\"/x\",status=\"5xx\"}"#));
}
