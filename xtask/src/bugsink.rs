//! A real Sentry-compatible server for tests and examples: Bugsink (PyPI), in a venv under
//! `target/bugsink/`, on loopback.
//!
//! Idempotent: a second call reuses the venv, database, project, token and running server.
//! Exports `BUGSINK_URL`, `BUGSINK_DSN`, `BUGSINK_TOKEN` and `BUGSINK_PROJECT_ID`.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::run;
use crate::services::{apt_install, on_path, tcp_open, wait_for, Used};

/// Pinned so test expectations about its API do not drift.
const BUGSINK_VERSION: &str = "2.6.1";
const DEFAULT_PORT: u16 = 8765;

pub(crate) fn ensure(used: &mut Used) -> Result<(), String> {
    let port = match std::env::var("BUGSINK_PORT") {
        Ok(p) => p
            .parse::<u16>()
            .map_err(|_| format!("BUGSINK_PORT must be a TCP port number, got {p:?}"))?,
        Err(_) => DEFAULT_PORT,
    };
    // One venv; one instance directory (config, database, state) per port.
    let base = workspace_root().join("target/bugsink");
    let dir = base.join(port.to_string());
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let venv = base.join("venv");
    let manage = venv.join("bin/bugsink-manage");
    if !manage.is_file() {
        if !on_path("python3") {
            apt_install(&["python3", "python3-venv"])?;
        }
        println!(
            "xtask: installing bugsink {BUGSINK_VERSION} into {}",
            venv.display()
        );
        if run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).is_err() {
            apt_install(&["python3-venv"])?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("bugsink=={BUGSINK_VERSION}")))?;
    }
    let conf = dir.join("bugsink_conf.py");
    if !conf.is_file() {
        run(Command::new(venv.join("bin/bugsink-create-conf"))
            .args(["--template", "local", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("-o")
            .arg(&conf))?;
    }
    let manage_cmd = || {
        let mut c = Command::new(&manage);
        c.current_dir(&dir)
            .env("PYTHONPATH", &dir)
            .env("DJANGO_SETTINGS_MODULE", "bugsink_conf");
        c
    };
    let state_file = dir.join("state.env");
    let state = match fs::read_to_string(&state_file) {
        Ok(s) => s,
        Err(_) => {
            run(manage_cmd().args(["migrate", "-v0"]))?;
            let project = output(manage_cmd().args([
                "shell",
                "-c",
                "from projects.models import Project\n\
                 p = Project.objects.create(name='obs-test')\n\
                 print('PROJECT', p.id, p.dsn)",
            ]))?;
            let (id, dsn) = project
                .lines()
                .find_map(|l| {
                    let mut parts = l.strip_prefix("PROJECT ")?.split_whitespace();
                    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                })
                .ok_or_else(|| format!("bugsink did not report the new project: {project}"))?;
            let token = output(manage_cmd().arg("create_auth_token"))?
                .lines()
                .rev()
                .find(|l| l.len() >= 32 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or("bugsink create_auth_token printed no token")?
                .to_owned();
            let state = format!(
                "BUGSINK_URL=http://127.0.0.1:{port}\nBUGSINK_DSN={dsn}\n\
                 BUGSINK_TOKEN={token}\nBUGSINK_PROJECT_ID={id}\n"
            );
            fs::write(&state_file, &state)
                .map_err(|e| format!("writing {}: {e}", state_file.display()))?;
            state
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let how = if tcp_open(addr) {
        "already running"
    } else {
        let log = fs::File::create(dir.join("server.log"))
            .map_err(|e| format!("creating bugsink server.log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // Left running after xtask exits, like the other services; the next run reuses it.
        manage_cmd()
            .args(["runserver", "--noreload"])
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting bugsink: {e}"))?;
        wait_for("Bugsink", || tcp_open(addr))?;
        "started by xtask"
    };
    for line in state.lines() {
        if let Some((k, v)) = line.split_once('=') {
            used.env.push((k.to_owned(), v.to_owned()));
        }
    }
    used.lines.push(format!(
        "Bugsink {BUGSINK_VERSION} at http://{addr} ({how}; state in {})",
        state_file.display()
    ));
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
