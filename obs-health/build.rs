//! Records the compiler version and target triple for the health report's `system` block.
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=OBS_HEALTH_RUSTC_VERSION={version}");
    println!("cargo:rustc-env=OBS_HEALTH_TARGET={target}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
