//! The subscriber `obs_core::logging::dispatch` builds (what `logging::try_init` installs):
//! the same output cases as `LogLayer` on a `Registry` (`common/logging_cases.rs`), plus what
//! its own span store must get right — parents across threads, references, late records,
//! `Span::current`, several subscribers on one thread — and the fallback to a `Registry` for
//! span-scoped filter directives.

use obs_core::logging::{self, TryInitError};

include!("common/logging_cases.rs");

fn make_dispatch(config: &LogConfig, writer: Capture) -> tracing::Dispatch {
    logging::dispatch(config, move || writer.clone()).expect("valid filter")
}

#[test]
fn ancestors_are_found_across_threads_after_the_parent_handle_is_gone() {
    let out = Capture::default();
    let dispatch = make_dispatch(&config(LogFormat::Json, "info"), out.clone());
    let child = tracing::dispatcher::with_default(&dispatch, || {
        let request = tracing::info_span!("request", request_id = "xthread-1", route = "/r");
        let child = request.in_scope(|| tracing::info_span!("db", table = "users"));
        drop(request); // the child keeps its parent open
        child
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let grandchild = child.in_scope(|| tracing::info_span!("row"));
                drop(child);
                grandchild.in_scope(|| tracing::info!("read"));
            })
        });
    });
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("after"));
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["request_id"], "xthread-1");
    assert_eq!(lines[0]["route"], "/r");
    assert!(!lines[1].contains_key("request_id"), "no span entered");
}

#[test]
fn explicit_parents_and_late_records() {
    let lines = json(|| {
        let request = tracing::info_span!(
            "request",
            request_id = tracing::field::Empty,
            user_id = tracing::field::Empty
        );
        tracing::info!(parent: &request, "before the id");
        request.record("request_id", "late-1");
        tracing::info!(parent: &request, "after the id");
        request.record("user_id", "u-9");
        let child = tracing::info_span!(parent: &request, "child");
        tracing::info!(parent: &child, "in the child");
        tracing::info!(parent: None, "no parent");
    });
    assert_eq!(lines.len(), 4);
    assert!(!lines[0].contains_key("request_id"));
    assert_eq!(lines[1]["request_id"], "late-1");
    assert!(!lines[1].contains_key("user_id"));
    assert_eq!(lines[2]["request_id"], "late-1");
    assert_eq!(lines[2]["user_id"], "u-9");
    assert!(!lines[3].contains_key("request_id"));
}

#[tokio::test(flavor = "current_thread")]
async fn span_current_and_in_current_span() {
    let (out, _guard) = install(&config(LogFormat::Json, "info"));
    assert!(tracing::Span::current().is_none());
    let request = tracing::info_span!("request", request_id = "current-1");
    let task = {
        let _entered = request.enter();
        let current = tracing::Span::current();
        assert_eq!(current.metadata().map(|m| m.name()), Some("request"));
        assert_eq!(current.id(), request.id());
        tokio::spawn(async { tracing::info!("spawned in the current span") }.in_current_span())
    };
    assert!(tracing::Span::current().is_none(), "exited");
    drop(request);
    task.await.unwrap();
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["request_id"], "current-1");
}

#[test]
fn subscribers_nested_on_one_thread_keep_their_own_spans() {
    let outer_out = Capture::default();
    let inner_out = Capture::default();
    let outer = make_dispatch(&config(LogFormat::Json, "info"), outer_out.clone());
    let inner = make_dispatch(&config(LogFormat::Json, "info"), inner_out.clone());
    tracing::dispatcher::with_default(&outer, || {
        let span = tracing::info_span!("request", request_id = "outer-1");
        span.in_scope(|| {
            tracing::dispatcher::with_default(&inner, || {
                assert!(tracing::Span::current().is_none(), "not the outer's span");
                tracing::info!("inner event");
            });
            tracing::info!("outer event");
        });
    });
    let inner_lines = inner_out.json_lines();
    assert_eq!(inner_lines.len(), 1);
    assert!(!inner_lines[0].contains_key("request_id"));
    let outer_lines = outer_out.json_lines();
    assert_eq!(outer_lines.len(), 1);
    assert_eq!(outer_lines[0]["request_id"], "outer-1");
}

#[test]
fn many_spans_opened_and_closed_on_many_threads() {
    let out = Capture::default();
    let dispatch = make_dispatch(&config(LogFormat::Json, "info"), out.clone());
    std::thread::scope(|s| {
        for t in 0..4 {
            let dispatch = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..2_000 {
                        let id = format!("t{t}-{i}");
                        let span = tracing::info_span!("request", request_id = id.as_str());
                        let child = span.in_scope(|| tracing::info_span!("child", i));
                        drop(span);
                        if i % 100 == 0 {
                            child.in_scope(|| tracing::info!(thread = t, i, "sampled"));
                        }
                    }
                })
            });
        }
    });
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4 * 20);
    for l in &lines {
        let want = format!("t{}-{}", l["thread"], l["i"]);
        assert_eq!(l["request_id"], want.as_str());
    }
}

#[test]
fn span_scoped_directives_use_a_registry_and_still_work() {
    let lines = capture(&config(LogFormat::Json, "warn,[request]=debug"), || {
        tracing::debug!("dropped: outside a request span");
        tracing::info_span!("request", request_id = "scoped-dir-1").in_scope(|| {
            tracing::debug!("kept: inside a request span");
        });
    })
    .json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "kept: inside a request span");
    assert_eq!(lines[0]["request_id"], "scoped-dir-1");
}

#[test]
fn an_invalid_filter_is_an_error_naming_it() {
    let err = logging::dispatch(&config(LogFormat::Json, "info,[unclosed"), std::io::sink)
        .expect_err("invalid filter");
    assert!(
        matches!(&err, TryInitError::InvalidFilter { filter, .. } if filter == "info,[unclosed"),
        "{err:?}"
    );
    assert!(err.to_string().contains("info,[unclosed"), "{err}");
}
