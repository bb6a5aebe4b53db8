// Output cases shared by `logging_output.rs` (obs's `LogLayer` on a `Registry`) and
// `logging_subscriber.rs` (the subscriber `logging::dispatch` builds), included by both. The
// including file defines `make_dispatch`, the subscriber under test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use obs_core::logging::{LogConfig, LogFormat};
use obs_core::{RequestContext, RequestId};
use serde_json::Value;
use tracing::Instrument;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
    }

    /// Every line parsed as a JSON object; fails if any line is not one.
    fn json_lines(&self) -> Vec<serde_json::Map<String, Value>> {
        let text = self.text();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "unterminated line: {text:?}"
        );
        text.lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(Value::Object(m)) => m,
                other => panic!("not a JSON object line: {l:?} ({other:?})"),
            })
            .collect()
    }
}

fn config(format: LogFormat, filter: &str) -> LogConfig {
    LogConfig {
        filter: filter.to_owned(),
        format,
        ..LogConfig::default()
    }
}

/// Runs `f` with a thread-local subscriber writing `config`'s output into the returned capture.
fn capture(config: &LogConfig, f: impl FnOnce()) -> Capture {
    let out = Capture::default();
    tracing::dispatcher::with_default(&make_dispatch(config, out.clone()), f);
    out
}

/// Installs a subscriber writing `config`'s output into the returned capture for this thread
/// until the guard drops (for async tests, where `capture`'s closure cannot hold the awaits).
fn install(config: &LogConfig) -> (Capture, tracing::dispatcher::DefaultGuard) {
    let out = Capture::default();
    let guard = tracing::dispatcher::set_default(&make_dispatch(config, out.clone()));
    (out, guard)
}

fn json(f: impl FnOnce()) -> Vec<serde_json::Map<String, Value>> {
    capture(&config(LogFormat::Json, "trace"), f).json_lines()
}

fn id(s: &str) -> RequestId {
    RequestId::parse(s).unwrap()
}

#[test]
fn json_line_has_timestamp_level_target_message_and_fields() {
    let before = SystemTime::now();
    let lines = json(|| {
        tracing::info!(
            target: "shop::orders",
            order_id = 42u64,
            delta = -3i64,
            ok = true,
            ratio = 0.5,
            sku = "A-1",
            tags = ?["x", "y"],
            shown = %"display",
            "order {} placed",
            7
        );
    });
    let after = SystemTime::now();
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    let ts = l["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "{ts}");
    let parsed = humantime::parse_rfc3339(ts).expect("RFC 3339 timestamp");
    assert!(
        parsed >= before - Duration::from_millis(1) && parsed <= after,
        "{ts}"
    );
    assert_eq!(l["level"], "info");
    assert_eq!(l["target"], "shop::orders");
    assert_eq!(l["message"], "order 7 placed");
    assert_eq!(l["order_id"], 42);
    assert_eq!(l["delta"], -3);
    assert_eq!(l["ok"], true);
    assert_eq!(l["ratio"], 0.5);
    assert_eq!(l["sku"], "A-1");
    assert_eq!(l["tags"], r#"["x", "y"]"#);
    assert_eq!(l["shown"], "display");
    for absent in ["request_id", "method", "route", "user_id"] {
        assert!(!l.contains_key(absent), "{absent} outside a request: {l:?}");
    }
}

#[test]
fn every_level_is_written_lowercase() {
    let lines = json(|| {
        tracing::trace!("t");
        tracing::debug!("d");
        tracing::info!("i");
        tracing::warn!("w");
        tracing::error!("e");
    });
    let levels: Vec<_> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["trace", "debug", "info", "warn", "error"]);
}

#[tokio::test(flavor = "current_thread")]
async fn request_id_on_every_line_inside_request_context_scope() {
    let (out, _guard) = install(&config(LogFormat::Json, "info"));

    tracing::info!("before");
    let ctx = RequestContext::builder(id("req-789"))
        .method("POST")
        .route("/api/ingestion")
        .build();
    ctx.scope(async {
        tracing::info!("first");
        tokio::task::yield_now().await;
        RequestContext::with_current(|c| c.unwrap().set_user_id("user-123"));
        tracing::warn!(attempt = 2, "second");
    })
    .await;
    tracing::info!("after");

    let lines = out.json_lines();
    let messages: Vec<_> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["before", "first", "second", "after"]);
    assert!(!lines[0].contains_key("request_id"));
    assert!(!lines[3].contains_key("request_id"));
    for l in &lines[1..3] {
        assert_eq!(l["request_id"], "req-789");
        assert_eq!(l["method"], "POST");
        assert_eq!(l["route"], "/api/ingestion");
    }
    assert!(!lines[1].contains_key("user_id"));
    assert_eq!(lines[2]["user_id"], "user-123");
    assert_eq!(lines[2]["attempt"], 2);
}

#[test]
fn request_id_inside_a_request_span_and_its_children() {
    let lines = json(|| {
        let span = tracing::info_span!(
            "request",
            request_id = %id("span-id-1"),
            method = "GET",
            route = "/users/{id}",
            user_id = tracing::field::Empty,
        );
        span.in_scope(|| {
            tracing::info!("in span");
            tracing::info_span!("db_query", table = "users").in_scope(|| {
                tracing::debug!("in child span");
            });
        });
        span.record("user_id", "u-9");
        span.in_scope(|| tracing::info!("after auth"));
        tracing::info!("outside");
        // A span without request fields does not make a request.
        tracing::info_span!("job", job = 1).in_scope(|| tracing::info!("in job"));
    });
    assert_eq!(lines.len(), 5);
    for l in &lines[..3] {
        assert_eq!(l["request_id"], "span-id-1", "{l:?}");
        assert_eq!(l["method"], "GET");
        assert_eq!(l["route"], "/users/{id}");
    }
    assert!(!lines[0].contains_key("user_id"));
    assert_eq!(lines[2]["user_id"], "u-9");
    assert_eq!(lines[2]["message"], "after auth");
    assert!(!lines[3].contains_key("request_id"));
    assert!(!lines[4].contains_key("request_id"));
}

#[tokio::test(flavor = "current_thread")]
async fn spawned_task_instrumented_with_the_request_span_keeps_the_id() {
    let (out, _guard) = install(&config(LogFormat::Json, "info"));

    let span = tracing::info_span!("request", request_id = "spawned-1");
    tokio::spawn(
        async {
            tokio::task::yield_now().await;
            tracing::info!("background work");
        }
        .instrument(span),
    )
    .await
    .unwrap();

    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["request_id"], "spawned-1");
}

/// A span opened inside its request's scope (as obs-tower's `request` span is) reads the
/// request's fields from the context: events in a task spawned with that span but outside the
/// task-local still get them, including a user id set on the context after the span opened.
/// A span naming another request keeps its own values.
#[tokio::test(flavor = "current_thread")]
async fn span_opened_in_scope_reads_the_context() {
    let (out, _guard) = install(&config(LogFormat::Json, "info"));

    let ctx = RequestContext::builder(id("scoped-1"))
        .method("POST")
        .route("/orders/{id}")
        .build();
    let (span, other) = ctx.clone().sync_scope(|| {
        (
            tracing::info_span!("request", request_id = "scoped-1", method = "POST"),
            tracing::info_span!("request", request_id = "other-2", route = "/x"),
        )
    });
    ctx.set_user_id("u-7");
    tokio::spawn(async { tracing::info!("background") }.instrument(span))
        .await
        .unwrap();
    tokio::spawn(async { tracing::info!("elsewhere") }.instrument(other))
        .await
        .unwrap();

    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["request_id"], "scoped-1");
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["route"], "/orders/{id}");
    assert_eq!(lines[0]["user_id"], "u-7");
    assert_eq!(lines[1]["request_id"], "other-2");
    assert_eq!(lines[1]["route"], "/x");
    assert!(!lines[1].contains_key("method"));
}

#[tokio::test(flavor = "current_thread")]
async fn request_span_is_known_even_when_the_level_filter_is_stricter() {
    let (out, _guard) = install(&config(LogFormat::Json, "warn"));

    let span = tracing::info_span!("request", request_id = "strict-1");
    tokio::spawn(
        async {
            tracing::info!("dropped by the filter");
            tracing::warn!("kept");
        }
        .instrument(span),
    )
    .await
    .unwrap();
    tracing::debug_span!("request", request_id = "debug-span").in_scope(|| {
        tracing::warn!("debug-level spans are not tracked");
    });

    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["message"], "kept");
    assert_eq!(lines[0]["request_id"], "strict-1");
    assert!(!lines[1].contains_key("request_id"));
}

#[test]
fn context_wins_over_span_and_event_fields_win_over_both() {
    let out = capture(&config(LogFormat::Json, "info"), || {
        let ctx = RequestContext::new(id("ctx-id"));
        ctx.sync_scope(|| {
            tracing::info_span!("request", request_id = "span-id").in_scope(|| {
                tracing::info!("a");
                tracing::info!(request_id = "event-id", "b");
            });
        });
    });
    let text = out.text();
    let lines = out.json_lines();
    assert_eq!(lines[0]["request_id"], "ctx-id");
    assert_eq!(lines[1]["request_id"], "event-id");
    let second = text.lines().nth(1).unwrap();
    assert_eq!(second.matches("\"request_id\"").count(), 1, "{second}");
}

#[test]
fn hostile_messages_and_fields_stay_one_valid_json_line() {
    let nasty =
        "line1\nline2\r\n\"quoted\" \\ back\u{0}nul \u{1b}[31mred\u{7f} \u{2028}sep {\"forged\":1}";
    let out = capture(&config(LogFormat::Json, "info"), || {
        tracing::info!(user_input = nasty, dbg = ?nasty, "{}", nasty);
        tracing::info!(next = 1, "next event");
    });
    let text = out.text();
    assert_eq!(text.matches('\n').count(), 2, "{text:?}");
    assert!(!text.contains('\r') && !text.contains('\u{1b}') && !text.contains('\0'));
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["message"], nasty);
    assert_eq!(lines[0]["user_input"], nasty);
    assert_eq!(lines[0]["dbg"], format!("{nasty:?}"));
    assert!(!lines[0].contains_key("forged"));
    assert_eq!(lines[1]["message"], "next event");
}

#[test]
fn reserved_keys_are_never_repeated() {
    let out = capture(&config(LogFormat::Json, "info"), || {
        tracing::info!(level = "custom", timestamp = 5, target = "t", "m");
    });
    let text = out.text();
    for key in ["\"level\"", "\"timestamp\"", "\"target\"", "\"message\""] {
        assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
    }
    let l = &out.json_lines()[0];
    assert_eq!(l["level"], "info");
    assert_eq!(l["field.level"], "custom");
    assert_eq!(l["field.timestamp"], 5);
    assert_eq!(l["field.target"], "t");
}

#[test]
fn events_without_message_errors_and_odd_numbers() {
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Inner {}
    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("query failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = Outer(Inner);
    let out = capture(&config(LogFormat::Json, "info"), || {
        tracing::info!(count = 3);
        tracing::error!(error = &err as &dyn std::error::Error, "db down");
        tracing::info!(
            big = u128::MAX,
            small = i128::MIN,
            nan = f64::NAN,
            "numbers"
        );
    });
    let lines = out.json_lines();
    assert_eq!(lines[0]["message"], "");
    assert_eq!(lines[0]["count"], 3);
    assert_eq!(lines[1]["error"], "query failed: connection refused");
    // 128-bit integers are written exactly (serde_json parses them back as f64 here).
    let text = out.text();
    assert!(text.contains(&format!("\"big\":{}", u128::MAX)), "{text}");
    assert!(text.contains(&format!("\"small\":{}", i128::MIN)), "{text}");
    assert!(lines[2]["big"].is_number());
    assert!(lines[2]["nan"].is_null());
}

#[test]
fn level_filter_comes_from_the_config() {
    let lines = capture(&config(LogFormat::Json, "warn"), || {
        tracing::info!("dropped");
        tracing::warn!("kept");
        tracing::error!("kept too");
    })
    .json_lines();
    let messages: Vec<_> = lines.iter().map(|l| l["message"].clone()).collect();
    assert_eq!(messages, ["kept", "kept too"]);

    let lines = capture(&config(LogFormat::Json, "info,noisy=error"), || {
        tracing::info!(target: "noisy", "dropped");
        tracing::error!(target: "noisy", "kept");
        tracing::info!(target: "app", "kept");
        tracing::debug!(target: "app", "dropped");
    })
    .json_lines();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["message"] == "kept"));
}

#[test]
fn filter_read_from_log_level_maps_fatal_to_error() {
    let env = std::collections::HashMap::from([("LOG_LEVEL", "fatal")]);
    let cfg = LogConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    let lines = capture(&cfg, || {
        tracing::warn!("dropped");
        tracing::error!("kept");
    })
    .json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "error");
}

#[test]
fn pretty_lines_carry_the_request_id_and_stay_single_lines() {
    let out = capture(&config(LogFormat::Pretty, "info"), || {
        tracing::info!(target: "app", "plain");
        RequestContext::builder(id("req-pretty"))
            .method("GET")
            .route("/r")
            .build()
            .sync_scope(|| {
                tracing::warn!(target: "app", user = "a b", n = 5, "two\nlines \u{1b}[31m");
            });
    });
    let text = out.text();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(!text.contains('\u{1b}'), "no colors unless asked: {text:?}");
    let first = lines[0];
    assert!(first.contains(" INFO app: plain"), "{first}");
    assert!(!first.contains("request_id"), "{first}");
    let second = lines[1];
    assert!(
        second.contains(" WARN app: two\\nlines \\u{1b}[31m"),
        "{second}"
    );
    assert!(second.contains("request_id=req-pretty"), "{second}");
    assert!(second.contains("method=GET route=/r"), "{second}");
    assert!(second.contains("user=\"a b\" n=5"), "{second}");
    let ts = second.split(' ').next().unwrap();
    humantime::parse_rfc3339(ts).expect("timestamp first");
}

#[test]
fn many_events_from_many_threads_stay_whole_lines() {
    let out = Capture::default();
    let dispatch = make_dispatch(&config(LogFormat::Json, "info"), out.clone());
    std::thread::scope(|s| {
        for t in 0..4 {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..200 {
                        let ctx = RequestContext::new(id(&format!("t{t}-{i}")));
                        ctx.sync_scope(|| tracing::info!(thread = t, i, "event"));
                    }
                })
            });
        }
    });
    let lines = out.json_lines();
    assert_eq!(lines.len(), 800);
    for l in &lines {
        let want = format!("t{}-{}", l["thread"], l["i"]);
        assert_eq!(l["request_id"], want.as_str());
    }
}

#[test]
fn trace_and_span_ids_from_the_context_once_set() {
    use obs_core::{SpanId, TraceId, TraceIds};
    let ctx = RequestContext::new(id("req-t1"));
    let lines = json(|| {
        ctx.clone().sync_scope(|| {
            tracing::info!("before the ids");
            assert!(ctx.set_trace_ids(TraceIds {
                trace_id: TraceId([0x4b; 16]),
                span_id: SpanId([0x0a; 8]),
            }));
            tracing::info!("traced");
            tracing::info!(trace_id = "explicit", "event field wins");
        });
        tracing::info!("outside");
    });
    assert!(!lines[0].contains_key("trace_id") && !lines[0].contains_key("span_id"));
    assert_eq!(lines[1]["trace_id"], "4b".repeat(16));
    assert_eq!(lines[1]["span_id"], "0a".repeat(8));
    assert_eq!(lines[1]["request_id"], "req-t1");
    assert_eq!(lines[2]["trace_id"], "explicit");
    assert_eq!(lines[2]["span_id"], "0a".repeat(8));
    assert!(!lines[3].contains_key("trace_id"));
}
