//! Provisioning of the Prometheus tools the metrics suites use: `promtool` (checks the
//! exposition and generated rules) and the `prometheus` server (end-to-end scrape test).
//!
//! Both come from the Debian package `prometheus`; when either is missing from `PATH` it is
//! installed with `apt-get`. The server is not started here: each test starts its own on an
//! ephemeral loopback port with a temporary data directory and kills it afterwards.

use std::process::Command;

use crate::services::{apt_install, on_path, Used};

/// Makes sure `promtool` and `prometheus` are on `PATH`, installing the Debian package if not.
pub(crate) fn ensure(used: &mut Used) -> Result<(), String> {
    if !(on_path("promtool") && on_path("prometheus")) {
        apt_install(&["prometheus"])?;
    }
    for tool in ["promtool", "prometheus"] {
        if !on_path(tool) {
            return Err(format!(
                "`{tool}` is still not on PATH after installing the Debian package `prometheus`"
            ));
        }
    }
    let version = Command::new("promtool")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown version".to_owned());
    used.lines
        .push(format!("promtool + prometheus on PATH ({version})"));
    Ok(())
}
