//! The JSON and pretty output of `obs_core::logging::layer` (obs's `LogLayer` on a
//! `tracing_subscriber::Registry`), captured through a `MakeWriter` and checked line by line.
//! Each test installs its subscriber for the current thread only. The cases shared with the
//! subscriber `logging::dispatch` builds are in `common/logging_cases.rs`.

use obs_core::logging::{self, LogLayer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

include!("common/logging_cases.rs");

fn make_dispatch(config: &LogConfig, writer: Capture) -> tracing::Dispatch {
    tracing::Dispatch::new(
        tracing_subscriber::registry().with(logging::layer(config, move || writer.clone())),
    )
}

#[test]
fn the_filter_is_per_layer_and_does_not_hide_events_from_other_layers() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let out = Capture::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::registry()
        .with(logging::layer(
            &config(LogFormat::Json, "error"),
            move || writer.clone(),
        ))
        .with(Count(seen.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("only for the counter");
        tracing::error!("for both");
    });
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(out.json_lines().len(), 1);
}

#[test]
fn pretty_with_ansi_colors() {
    let out = Capture::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::registry()
        .with(LogLayer::new(LogFormat::Pretty, move || writer.clone()).with_ansi(true));
    tracing::subscriber::with_default(subscriber, || tracing::error!("red"));
    let text = out.text();
    assert!(text.contains("\u{1b}[31mERROR\u{1b}[0m"), "{text:?}");
    assert_eq!(text.lines().count(), 1);
}
