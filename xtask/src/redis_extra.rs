//! Extra Redis instances for the rate limiter's suites: a 3-master Redis Cluster on loopback
//! ports 7101-7103 (`REDIS_CLUSTER_URLS`). Idempotent: a healthy cluster already there is
//! reused; nodes that are down are started; a cluster that is not `ok` is reset and created.
//! (The outage tests start and kill their own private redis-server; they need only the binary.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::run;
use crate::services::{apt_install, on_path, redis_ping, wait_for, Used};

const PORTS: [u16; 3] = [7101, 7102, 7103];

pub(crate) fn ensure(used: &mut Used) -> Result<(), String> {
    if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS") {
        used.lines
            .push(format!("Redis Cluster at {urls} (from REDIS_CLUSTER_URLS)"));
        return Ok(());
    }
    if !on_path("redis-server") || !on_path("redis-cli") {
        apt_install(&["redis-server", "redis-tools"])?;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("xtask-redis-cluster");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut started = false;
    for port in PORTS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if redis_ping(addr) {
            continue;
        }
        started = true;
        let port_s = port.to_string();
        let conf = format!("nodes-{port}.conf");
        // A stale node config from an earlier run would make this node remember a dead cluster.
        let _ = std::fs::remove_file(dir.join(&conf));
        run(Command::new("redis-server").args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            &port_s,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf,
            "--dir",
            dir.to_str().ok_or("non-UTF-8 target dir")?,
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            &format!("redis-{port}.log"),
        ]))?;
        wait_for(&format!("Redis Cluster node on 127.0.0.1:{port}"), || {
            redis_ping(addr)
        })?;
    }
    let how = if cluster_ok() {
        if started {
            "nodes restarted by xtask"
        } else {
            "already running"
        }
    } else {
        for port in PORTS {
            let _ = cli(port, &["FLUSHALL"]);
            cli(port, &["CLUSTER", "RESET", "HARD"])?;
        }
        let nodes: Vec<String> = PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        run(Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"]))?;
        wait_for("Redis Cluster state ok on all nodes", cluster_ok)?;
        "created by xtask"
    };
    let urls: Vec<String> = PORTS
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let urls = urls.join(",");
    used.lines
        .push(format!("Redis Cluster (3 masters) at {urls} ({how})"));
    used.env.push(("REDIS_CLUSTER_URLS".into(), urls));
    Ok(())
}

fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("could not run redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli -p {port} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every node sees an `ok` cluster of exactly our three masters.
fn cluster_ok() -> bool {
    PORTS.iter().all(|&p| {
        cli(p, &["CLUSTER", "INFO"]).is_ok_and(|info| {
            info.contains("cluster_state:ok")
                && info.contains("cluster_known_nodes:3")
                && info.contains("cluster_slots_assigned:16384")
        })
    })
}
