//! Status transitions are logged once each.
//!
//! In its own test binary on purpose: tracing caches callsite interest per process, and the
//! runner's transition log is hit by every other runner test without a subscriber; sharing a
//! process with them lets a concurrent first registration cache it as disabled (a flake).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use obs_health::{check_fn, CheckResult, Health, HealthCheck, Probe};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Counts(Arc<Mutex<Vec<Level>>>);

impl<S: Subscriber> Layer<S> for Counts {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target().starts_with("obs_health") {
            self.0.lock().unwrap().push(*event.metadata().level());
        }
    }
}

/// A check whose status is switched from the test.
fn switchable(up: Arc<AtomicBool>) -> impl HealthCheck {
    check_fn(move || {
        let up = up.clone();
        async move {
            if up.load(Ordering::SeqCst) {
                CheckResult::healthy()
            } else {
                CheckResult::unhealthy("down")
            }
        }
    })
}

#[tokio::test(flavor = "current_thread")]
async fn each_transition_is_logged_once() {
    let counts = Counts::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(counts.clone()));
    let up = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check("db", switchable(up.clone()))
        .build()
        .unwrap();
    for _ in 0..3 {
        health.probe(Probe::Ready).await;
    }
    up.store(false, Ordering::SeqCst);
    for _ in 0..5 {
        health.probe(Probe::Ready).await;
    }
    up.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        health.probe(Probe::Ready).await;
    }
    let levels = counts.0.lock().unwrap().clone();
    // initial healthy (debug), healthy -> unhealthy (warn), unhealthy -> healthy (info)
    assert_eq!(levels, vec![Level::DEBUG, Level::WARN, Level::INFO]);
}
