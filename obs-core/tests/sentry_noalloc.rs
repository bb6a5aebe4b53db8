//! Without a Sentry client, the bridge's calls allocate nothing (one test in this binary: the
//! allocation counter is process-wide).

use std::alloc::System;

use obs_core::sentry::{self, Level};
use obs_core::{RequestContext, RequestId};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn calls(err: &std::io::Error) {
    assert!(!sentry::is_enabled());
    assert!(sentry::capture_error(err, [("order_id", "o-1"), ("step", "pay")]).is_none());
    assert!(sentry::capture_message("payment failed", Level::Error, [("amount", 12)]).is_none());
    sentry::breadcrumb("db", "insert", [("rows", 1)]);
    sentry::with_context("cart", [("items", 3)]);
    sentry::set_tag("run_id", "run-1");
    sentry::set_tag("attempt", 3);
}

#[test]
fn disabled_calls_allocate_nothing_inside_and_outside_requests() {
    let err = std::io::Error::other("boom");
    let ctx = RequestContext::builder(RequestId::parse("req-1").unwrap())
        .method("GET")
        .route("/pay")
        .build();
    // Warm up: the thread's hub is created on first use.
    calls(&err);

    let region = Region::new(GLOBAL);
    for _ in 0..100 {
        calls(&err);
    }
    let outside = region.change();

    let region = Region::new(GLOBAL);
    ctx.sync_scope(|| {
        for _ in 0..100 {
            calls(&err);
        }
    });
    let inside = region.change();

    assert_eq!(outside.allocations, 0, "outside a request: {outside:?}");
    assert_eq!(inside.allocations, 0, "inside a request: {inside:?}");
}
