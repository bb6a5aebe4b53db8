//! Exemplars: `request_id` and `trace_id` of the current request on counter and histogram
//! samples, in the OpenMetrics exposition only, within the 128-character label limit.

use obs_core::{RequestContext, RequestId, SpanId, TraceId, TraceIds};
use obs_metrics::{opts, Format, Registry, RegistryError, Scope};

obs_metrics::label_enum! {
    /// Outcome.
    pub enum Status { Success = "success", Failure = "failure" }
}
obs_metrics::label_set! {
    /// status.
    pub struct StatusLabels { status: Status }
}

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn ctx(id: &RequestId, traced: bool) -> RequestContext {
    let ctx = RequestContext::new(id.clone());
    if traced {
        assert!(ctx.set_trace_ids(TraceIds {
            trace_id: TraceId(TRACE),
            span_id: SpanId([7; 8]),
        }));
    }
    ctx
}

/// Label sets of every exemplar in an OpenMetrics body (the `{...}` after ` # `).
fn exemplar_label_sets(om: &str) -> Vec<&str> {
    om.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" # {"))
        .map(|(_, rest)| rest.split_once('}').expect("closed label set").0)
        .collect()
}

#[tokio::test]
async fn histogram_buckets_carry_request_and_trace_id_in_openmetrics_only() {
    let r = Registry::new();
    let h = r
        .histogram::<StatusLabels>(
            "job_duration_seconds",
            "Job time.",
            Scope::Business,
            opts().buckets(&[0.1, 1.0]).exemplars(),
        )
        .unwrap();
    let id = RequestId::generate();
    let h2 = h.clone();
    ctx(&id, true)
        .scope(async move {
            h2.observe(
                StatusLabels {
                    status: Status::Success,
                },
                0.5,
            );
            h2.observe(
                StatusLabels {
                    status: Status::Success,
                },
                7.0,
            );
        })
        .await;
    // Outside a request: counted, no exemplar.
    h.observe(
        StatusLabels {
            status: Status::Failure,
        },
        0.05,
    );

    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    let bucket = |labels: &str, count: u64, value: &str| {
        format!(
            "job_duration_seconds_bucket{{{labels}}} {count} # {{request_id=\"{id}\",trace_id=\"{TRACE_HEX}\"}} {value} "
        )
    };
    assert!(
        om.contains(&bucket("le=\"1.0\",status=\"success\"", 1, "0.5")),
        "{om}"
    );
    assert!(
        om.contains(&bucket("le=\"+Inf\",status=\"success\"", 2, "7.0")),
        "{om}"
    );
    assert!(
        om.contains("job_duration_seconds_bucket{le=\"0.1\",status=\"success\"} 0\n"),
        "{om}"
    );
    assert!(
        om.contains("job_duration_seconds_bucket{le=\"0.1\",status=\"failure\"} 1\n"),
        "{om}"
    );
    assert!(
        om.contains("job_duration_seconds_bucket{le=\"+Inf\",status=\"failure\"} 1\n"),
        "{om}"
    );
    assert_eq!(exemplar_label_sets(&om).len(), 2, "{om}");
    assert!(om.ends_with("# EOF\n"));
    // Exemplar timestamps are seconds since the epoch, now-ish.
    let line = om
        .lines()
        .find(|l| l.contains("le=\"1.0\"") && l.contains(" # "))
        .unwrap();
    let ts: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 600.0, "{ts} vs {now}");

    let text = r.encode(Format::Prometheus, &[Scope::Business]);
    assert!(
        !text.contains("request_id") && !text.contains(" # "),
        "{text}"
    );
    assert!(text.contains("job_duration_seconds_bucket{le=\"+Inf\",status=\"success\"} 2\n"));
}

#[tokio::test]
async fn counter_exemplars_carry_trace_id_too() {
    let r = Registry::new();
    let c = r
        .counter::<()>("jobs_total", "Jobs.", Scope::Business, opts().exemplars())
        .unwrap();
    let id = RequestId::generate();
    let c2 = c.clone();
    ctx(&id, true).scope(async move { c2.inc_by((), 3) }).await;
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    let want = format!("jobs_total 3 # {{request_id=\"{id}\",trace_id=\"{TRACE_HEX}\"}} 3.0 ");
    assert!(om.contains(&want), "{om}");
}

#[tokio::test]
async fn exemplar_label_sets_stay_within_128_characters() {
    let r = Registry::new();
    let c = r
        .counter::<StatusLabels>(
            "long_total",
            "Long ids.",
            Scope::Business,
            opts().exemplars(),
        )
        .unwrap();
    let h = r
        .histogram::<()>(
            "long_seconds",
            "Long ids.",
            Scope::Business,
            opts().buckets(&[1.0]).exemplars(),
        )
        .unwrap();
    // 100-character request id: with a trace id it would make 150 characters, so only the
    // trace id is kept; without a trace it fits alone (110).
    let long = RequestId::parse(&"x".repeat(100)).unwrap();
    let (c2, h2) = (c.clone(), h.clone());
    ctx(&long, true)
        .scope(async move {
            c2.inc(StatusLabels {
                status: Status::Success,
            });
            h2.observe((), 0.5);
        })
        .await;
    let c3 = c.clone();
    ctx(&long, false)
        .scope(async move {
            c3.inc(StatusLabels {
                status: Status::Failure,
            })
        })
        .await;
    let om = r.encode(Format::OpenMetrics, &[Scope::Business]);
    let sets = exemplar_label_sets(&om);
    assert_eq!(sets.len(), 3, "{om}");
    for s in &sets {
        let chars: usize = s
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                k.chars().count() + v.trim_matches('"').chars().count()
            })
            .sum();
        assert!(chars <= 128, "{s}: {chars} characters");
    }
    assert!(om.contains(&format!(
        "long_total{{status=\"success\"}} 1 # {{trace_id=\"{TRACE_HEX}\"}} 1.0 "
    )));
    assert!(om.contains(&format!(
        "long_seconds_bucket{{le=\"1.0\"}} 1 # {{trace_id=\"{TRACE_HEX}\"}} 0.5 "
    )));
    assert!(om.contains(&format!(
        "long_total{{status=\"failure\"}} 1 # {{request_id=\"{long}\"}} 1.0 "
    )));
}

#[test]
fn exemplars_are_refused_where_they_cannot_be_placed() {
    let r = Registry::new();
    let e = |res: Result<(), RegistryError>| res.unwrap_err().to_string();
    assert!(e(r
        .gauge::<()>(
            "queue_size_bytes",
            "Q.",
            Scope::Business,
            opts().exemplars()
        )
        .map(drop))
    .contains("not gauges"));
    assert!(e(r
        .dyn_histogram::<1>(
            "d_seconds",
            "D.",
            Scope::Business,
            opts().labels(&["x"]).exemplars()
        )
        .map(drop))
    .contains("fixed-label histograms"));
}
