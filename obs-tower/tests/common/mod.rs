//! Shared helpers for obs-tower's integration tests: log capture into a buffer.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Everything the test subscriber wrote.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).expect("JSON logs are UTF-8")
    }

    /// Every line, parsed as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    /// Lines whose target is `target`.
    pub fn with_target(&self, target: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["target"] == target)
            .collect()
    }
}

pub struct LogsWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogsWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogsWriter(self.0.clone())
    }
}

/// Serializes the tests of one binary that touch tracing.
///
/// tracing caches each callsite's interest globally. With per-thread test subscribers, a
/// callsite shared by several tests (the layers' own `request` span and `obs::access` event)
/// can be registered by one thread while another installs its subscriber and rebuilds the
/// cache; the callsite then stays cached as "never" and a later test sees no span (a rare
/// flake seen under load). Holding this lock for the whole test removes the overlap.
///
/// Holding it across `.await` is intended: each test runs on its own current-thread runtime,
/// so waiting tests only block their own thread.
pub fn serial() -> Serial {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next test must still run.
    Serial(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// While alive, no other tracing test of this binary runs; see [`serial`].
pub struct Serial(MutexGuard<'static, ()>);

/// Keeps the test's subscriber installed and the binary's tracing tests serialized.
pub struct CaptureGuard {
    _default: DefaultGuard,
    _serial: Serial,
}

/// Installs a JSON subscriber (all levels, current span and span list included) as the
/// thread's default until the guard drops, serialized with the binary's other tracing tests
/// (see [`serial`]). Use with current-thread runtimes.
pub fn capture() -> (Logs, CaptureGuard) {
    let serial = serial();
    let logs = Logs::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(logs.clone()),
    );
    let default = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (
        logs,
        CaptureGuard {
            _default: default,
            _serial: serial,
        },
    )
}
