//! Writes the artifacts generated from the `business_metrics` example's definitions:
//! `catalog.md` (metric catalog), `rules.yml` (SLO recording + burn-rate alert rules) and
//! `dashboard.json` (Grafana dashboard).
//!
//! ```text
//! cargo run --example metrics_artifacts --features tower,metrics -- target/metrics-artifacts
//! promtool check rules target/metrics-artifacts/rules.yml
//! ```

#[path = "business_metrics.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

use obs_metrics::generate::{catalog, dashboard, rules};
use obs_metrics::Registry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/metrics-artifacts".into());
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir)?;

    // The same registration the service performs; nothing is served.
    let registry = Registry::new();
    let _app = service::app(&registry);
    let descriptors = registry.descriptors();

    let files = [
        ("catalog.md", catalog(&descriptors)),
        ("rules.yml", rules(&service::slos(), &descriptors)?),
        (
            "dashboard.json",
            serde_json::to_string_pretty(&dashboard("Asset-Forge", &descriptors))?,
        ),
    ];
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::write(&path, body)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
