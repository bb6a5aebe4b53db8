//! An event without consent (or with telemetry disabled) costs no allocation.
//!
//! This binary installs a counting global allocator (`stats_alloc`, no `unsafe` here) and runs
//! one test on a current-thread runtime so no other thread allocates meanwhile.

use std::alloc::System;
use std::sync::Arc;

use obs_core::{RequestContext, RequestId};
use obs_telemetry::{event, sink::MemorySink, CachedConsent, Recorded, Recorder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

event! {
    /// A build finished (no heap fields, so building it allocates nothing).
    pub struct BuildFinished: "build.finished" {
        pub target: &'static str,
        pub duration_ms: u64,
    }
}

fn ev() -> BuildFinished {
    BuildFinished {
        target: "x86_64",
        duration_ms: 1200,
    }
}

#[test]
fn refused_events_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let consent = Arc::new(CachedConsent::new());
        consent.set("opted-in", true);
        consent.set("opted-out", false);
        let recorder = Recorder::builder()
            .sink(MemorySink::new())
            .consent_shared(consent.clone())
            .build()
            .unwrap();
        let disabled = Recorder::builder()
            .sink(MemorySink::new())
            .enabled(false)
            .build()
            .unwrap();
        let ctx = RequestContext::builder(RequestId::parse("req-1").unwrap())
            .route("/x")
            .build();
        ctx.set_user_id("opted-out");

        let region = Region::new(GLOBAL);
        for _ in 0..1000 {
            assert_eq!(recorder.record_for("opted-out", ev()), Recorded::NoConsent);
            assert_eq!(recorder.record_for("unknown", ev()), Recorded::NoConsent);
            assert_eq!(recorder.record(ev()), Recorded::NoConsent); // anonymous
            assert_eq!(disabled.record(ev()), Recorded::Disabled);
        }
        ctx.clone().sync_scope(|| {
            for _ in 0..1000 {
                assert_eq!(recorder.record(ev()), Recorded::NoConsent); // user from context
            }
        });
        let change = region.change();
        assert_eq!(change.allocations, 0, "{change:?}");
        assert_eq!(change.reallocations, 0, "{change:?}");

        // Control: the counter does see the allocation of an accepted event.
        let region = Region::new(GLOBAL);
        assert_eq!(recorder.record_for("opted-in", ev()), Recorded::Queued);
        assert!(region.change().allocations > 0);
        recorder.shutdown().await;
        disabled.shutdown().await;
    });
}
