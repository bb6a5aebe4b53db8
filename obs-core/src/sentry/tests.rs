use super::*;
use crate::RequestId;
use sentry_core::protocol::Request;
use sentry_core::test::with_captured_events_options;

fn ctx(id: &str) -> RequestContext {
    RequestContext::builder(RequestId::parse(id).unwrap())
        .method("GET")
        .route("/items/{id}")
        .build()
}

fn options() -> ClientOptions {
    configure(ClientOptions::default(), Scrubber::default())
}

#[test]
fn no_client_means_no_events_and_no_panics() {
    assert!(!is_enabled());
    assert!(capture_error(&std::io::Error::other("x"), ()).is_none());
    assert!(capture_message("x", Level::Error, [("a", 1)]).is_none());
    breadcrumb("c", "m", ());
    set_user("u");
    with_context("k", [("a", "b")]);
    set_tag("k", "v");
}

#[test]
fn events_carry_request_context_and_scrubbed_extra() {
    let events = with_captured_events_options(
        || {
            ctx("req-a").sync_scope(|| {
                run_in_request_hub(&request_hub(), || {
                    with_context("order", [("card", "4111 1111 1111 1111"), ("sku", "A1")]);
                    capture_message(
                        "login failed for jane@example.com",
                        Level::Warning,
                        [("password", "hunter2")],
                    );
                })
            })
        },
        options(),
    );
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.tags[REQUEST_ID_TAG], "req-a");
    assert_eq!(e.tags[METHOD_TAG], "GET");
    assert_eq!(e.tags[ROUTE_TAG], "/items/{id}");
    assert_eq!(e.transaction.as_deref(), Some("GET /items/{id}"));
    assert_eq!(e.message.as_deref(), Some("login failed for [email]"));
    assert_eq!(e.extra["password"], "[password]");
    let Context::Other(order) = &e.contexts["order"] else {
        panic!("other context expected")
    };
    assert_eq!(order["card"], "[card]");
    assert_eq!(order["sku"], "A1");
}

#[test]
fn request_headers_cookies_and_user_pii_are_removed_without_send_default_pii() {
    let scrubber = Scrubber::default();
    let mut event = Event {
        request: Some(Request {
            url: "https://api.example.com/login?password=hunter2&page=2"
                .parse()
                .ok(),
            query_string: Some("password=hunter2&page=2".into()),
            cookies: Some("session=abc".into()),
            headers: [
                (
                    "Authorization".to_owned(),
                    "Bearer abcdefgh12345".to_owned(),
                ),
                ("X-Forwarded-For".to_owned(), "203.0.113.9".to_owned()),
                ("Accept".to_owned(), "*/*".to_owned()),
            ]
            .into(),
            ..Request::default()
        }),
        user: Some(User {
            id: Some("u-1".into()),
            email: Some("jane@example.com".into()),
            ip_address: Some("203.0.113.9".parse().unwrap()),
            ..User::default()
        }),
        ..Event::default()
    };
    scrub_event(&scrubber, false, &mut event);
    let json = serde_json::to_string(&event).unwrap();
    for secret in [
        "hunter2",
        "abcdefgh12345",
        "session=abc",
        "jane@example.com",
        "203.0.113.9",
    ] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    let request = event.request.as_ref().unwrap();
    assert_eq!(
        request.query_string.as_deref(),
        Some("password=[password]&page=2")
    );
    assert_eq!(
        request.url.as_ref().map(|u| u.as_str()),
        Some("https://api.example.com/login?password=[password]&page=2")
    );
    assert_eq!(request.headers["Accept"], "*/*");
    assert!(!request.headers.contains_key("Authorization"));
    assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("u-1"));
}

#[test]
fn scope_writes_inside_a_request_without_request_hub_are_dropped() {
    let events = with_captured_events_options(
        || {
            // Inside a request, but no request hub bound: would leak into the shared hub.
            ctx("req-leak").sync_scope(|| {
                breadcrumb("c", "leaky", ());
                with_context("leaky", [("a", 1)]);
                set_user("u-leak");
            });
            capture_message("outside", Level::Info, ());
        },
        options(),
    );
    assert_eq!(events.len(), 1);
    assert!(events[0].breadcrumbs.values.is_empty());
    assert!(!events[0].contexts.contains_key("leaky"));
    assert!(events[0].user.is_none());
}

#[test]
fn tracing_info_is_a_breadcrumb_only_inside_a_request_hub_and_error_an_event() {
    use tracing_subscriber::prelude::*;
    let subscriber = tracing_subscriber::registry().with(tracing_layer());
    let events = with_captured_events_options(
        || {
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!("startup noise");
                ctx("req-t").sync_scope(|| {
                    run_in_request_hub(&request_hub(), || {
                        tracing::warn!(user = "jane@example.com", "slow query");
                        tracing::debug!("ignored");
                        tracing::error!("handler failed");
                    })
                });
            })
        },
        options(),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.tags[REQUEST_ID_TAG], "req-t");
    let crumbs = &e.breadcrumbs.values;
    assert_eq!(crumbs.len(), 1, "{crumbs:?}");
    assert_eq!(crumbs[0].message.as_deref(), Some("slow query"));
    assert_eq!(crumbs[0].data[REQUEST_ID_TAG], "req-t");
    assert_eq!(crumbs[0].data["user"], "[email]");
}

#[test]
fn status_line_names_the_state() {
    assert!(status_line(&SentryConfig::default()).starts_with("Sentry disabled"));
}

/// One callsite, hit outside and then inside a request hub: the filter must ask each time.
#[test]
fn the_same_tracing_callsite_is_a_breadcrumb_only_when_a_request_hub_is_bound() {
    use tracing_subscriber::prelude::*;
    fn step(n: u32) {
        tracing::info!(n, "step");
    }
    let subscriber = tracing_subscriber::registry().with(tracing_layer());
    let events = with_captured_events_options(
        || {
            tracing::subscriber::with_default(subscriber, || {
                step(1); // registers the callsite outside any request
                ctx("req-c").sync_scope(|| {
                    run_in_request_hub(&request_hub(), || {
                        step(2);
                        capture_message("done", Level::Info, ());
                    })
                });
                step(3);
            })
        },
        options(),
    );
    assert_eq!(events.len(), 1);
    let crumbs = &events[0].breadcrumbs.values;
    assert_eq!(crumbs.len(), 1, "{crumbs:?}");
    assert_eq!(crumbs[0].data["n"], 2);
}

#[test]
fn bind_request_hub_keeps_breadcrumbs_on_the_task_hub() {
    let events = with_captured_events_options(
        || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(ctx("req-job").scope(bind_request_hub(request_hub(), async {
                breadcrumb("job", "started", ());
                tokio::task::yield_now().await;
                capture_message("job failed", Level::Error, ());
            })));
            capture_message("after", Level::Info, ());
        },
        options(),
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].breadcrumbs.values.len(), 1);
    assert_eq!(events[0].tags[REQUEST_ID_TAG], "req-job");
    assert!(
        events[1].breadcrumbs.values.is_empty(),
        "not on the parent hub"
    );
}

#[test]
fn configure_keeps_earlier_hooks_and_client_options_read_the_config() {
    let options = ClientOptions::new()
        .before_send(|mut e| {
            e.extra.insert("seen_by_app".into(), true.into());
            Some(e)
        })
        .before_breadcrumb(|b| (b.category.as_deref() != Some("noise")).then_some(b));
    let events = with_captured_events_options(
        || {
            breadcrumb("noise", "dropped by the app's hook", ());
            breadcrumb("kept", "token=abc123secret", ());
            capture_message("m", Level::Info, ());
        },
        configure(options, Scrubber::default()),
    );
    assert_eq!(events[0].extra["seen_by_app"], true);
    let crumbs = &events[0].breadcrumbs.values;
    assert_eq!(crumbs.len(), 1);
    assert_eq!(crumbs[0].message.as_deref(), Some("token=[token]"));

    let config = crate::Config::from_lookup(|k| match k {
        "SENTRY_DSN" => Some("https://key@sentry.example.com/42".into()),
        "SENTRY_ENVIRONMENT" => Some("staging".into()),
        "SENTRY_RELEASE" => Some("shop@1.2.3".into()),
        _ => None,
    })
    .unwrap()
    .sentry;
    let options = client_options(&config);
    assert_eq!(options.dsn.as_ref().unwrap().project_id().value(), "42");
    assert_eq!(options.environment.as_deref(), Some("staging"));
    assert_eq!(options.release.as_deref(), Some("shop@1.2.3"));
    assert!(!options.send_default_pii);
    assert!(options.before_send.is_some() && options.before_breadcrumb.is_some());
    assert!(status_line(&config).starts_with("Sentry enabled: reporting to sentry.example.com"));
}

#[test]
fn events_carry_the_request_trace_id_in_their_trace_context() {
    use crate::{SpanId, TraceId};
    let c = ctx("req-trace");
    assert!(c.set_trace_ids(TraceIds {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0x0a; 8]),
    }));
    let events = with_captured_events_options(
        || {
            c.sync_scope(|| {
                run_in_request_hub(&request_hub(), || {
                    capture_message("boom", Level::Error, ());
                })
            });
            // Outside the request: the hub's own propagation context, not the request's.
            capture_message("elsewhere", Level::Error, ());
        },
        options(),
    );
    assert_eq!(events.len(), 2);
    let Context::Trace(trace) = &events[0].contexts["trace"] else {
        panic!("trace context expected")
    };
    assert_eq!(trace.trace_id.to_string(), "4b".repeat(16));
    assert_eq!(trace.span_id.to_string(), "0a".repeat(8));
    assert!(trace.parent_span_id.is_none());
    if let Some(Context::Trace(other)) = events[1].contexts.get("trace") {
        assert_ne!(other.trace_id.to_string(), "4b".repeat(16));
    }
}

#[test]
fn set_tag_reaches_the_requests_events_only() {
    let events = with_captured_events_options(
        || {
            ctx("req-run").sync_scope(|| {
                run_in_request_hub(&request_hub(), || {
                    set_tag("run_id", "run-1");
                    set_tag("run_id", "run-42"); // same key: replaced
                    set_tag("repo", "acme/widgets");
                    set_tag("attempt", 3);
                    set_tag("owner", "jane@example.com");
                    capture_message("run failed", Level::Error, ());
                })
            });
            // Another request on its own hub: none of the tags above.
            ctx("req-other").sync_scope(|| {
                run_in_request_hub(&request_hub(), || {
                    capture_message("other", Level::Error, ());
                })
            });
            // Inside a request without a request hub: dropped (it would leak).
            ctx("req-leak").sync_scope(|| set_tag("leaky", "yes"));
            capture_message("outside", Level::Info, ());
        },
        options(),
    );
    assert_eq!(events.len(), 3);
    let tags = &events[0].tags;
    assert_eq!(tags["run_id"], "run-42");
    assert_eq!(tags["repo"], "acme/widgets");
    assert_eq!(tags["attempt"], "3");
    assert_eq!(tags["owner"], "[email]", "tags are scrubbed");
    assert_eq!(tags[REQUEST_ID_TAG], "req-run");
    for other in &events[1..] {
        for key in ["run_id", "repo", "attempt", "owner", "leaky"] {
            assert!(
                !other.tags.contains_key(key),
                "{key} leaked: {:?}",
                other.tags
            );
        }
    }
    assert_eq!(events[1].tags[REQUEST_ID_TAG], "req-other");
}
