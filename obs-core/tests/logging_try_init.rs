//! `try_init`/`init` touch the process-wide subscriber, so they live in their own test binary
//! and in a single test (tests of one binary share the process).

use obs_core::logging::{self, LogConfig, TryInitError};

#[test]
fn try_init_installs_once_then_reports_instead_of_panicking() {
    // An invalid filter is reported and installs nothing.
    let bad = LogConfig {
        filter: "info,my_app=loud".into(),
        ..LogConfig::default()
    };
    match logging::try_init(&bad) {
        Err(TryInitError::InvalidFilter { filter, .. }) => assert_eq!(filter, "info,my_app=loud"),
        other => panic!("expected InvalidFilter, got {other:?}"),
    }

    let config = LogConfig::default();
    logging::try_init(&config).expect("first try_init installs the subscriber");
    assert!(tracing::dispatcher::has_been_set());
    tracing::info!("logging installed");
    // The filter applies to the whole subscriber (the log layer is its only layer): `info`
    // events and spans are on, `debug` ones off, and request spans are tracked.
    assert_eq!(config.filter, "info");
    assert!(tracing::enabled!(tracing::Level::INFO));
    assert!(!tracing::enabled!(tracing::Level::DEBUG));
    assert!(!tracing::info_span!("request", request_id = "r-1").is_disabled());
    assert!(tracing::debug_span!("request", request_id = "r-2").is_disabled());
    assert!(tracing::debug_span!("work").is_disabled());

    match logging::try_init(&config) {
        Err(e @ TryInitError::AlreadyInstalled(_)) => {
            assert_eq!(
                e.to_string(),
                "a global tracing subscriber is already installed"
            );
        }
        other => panic!("expected AlreadyInstalled, got {other:?}"),
    }

    // `init` panics in the same situation, like tracing_subscriber's `init`.
    let panicked = std::panic::catch_unwind(|| logging::init(&config)).is_err();
    assert!(panicked);
}
