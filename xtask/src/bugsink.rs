//! A real Sentry-compatible server for tests and examples: Bugsink (PyPI), in a venv under
//! `~/.cache/obs-xtask/bugsink/` (or `$OBS_XTASK_CACHE/bugsink/`), on loopback.
//!
//! Idempotent: a second call — from this checkout or a fresh clone — reuses the venv,
//! database, project, token and running server, after checking that the server on the port
//! accepts our token. A port held by some other server is skipped.
//! Exports `BUGSINK_URL`, `BUGSINK_DSN`, `BUGSINK_TOKEN` and `BUGSINK_PROJECT_ID`.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::run;
use crate::services::{apt_install, on_path, tcp_open, wait_for, Used};

/// Pinned so test expectations about its API do not drift.
const BUGSINK_VERSION: &str = "2.6.1";
const DEFAULT_PORT: u16 = 8765;

pub(crate) fn ensure(used: &mut Used) -> Result<(), String> {
    // An explicit BUGSINK_PORT is used as given; otherwise the first port from 8765 where
    // either our own instance answers or nothing listens yet.
    let (first, tries) = match std::env::var("BUGSINK_PORT") {
        Ok(p) => (
            p.parse::<u16>()
                .map_err(|_| format!("BUGSINK_PORT must be a TCP port number, got {p:?}"))?,
            1,
        ),
        Err(_) => (DEFAULT_PORT, 10),
    };
    let base = cache_dir();
    let venv = install(&base)?;
    for port in (first..).take(tries) {
        if let Some(instance) = instance(&base, &venv, port)? {
            for line in instance.state.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    used.env.push((k.to_owned(), v.to_owned()));
                }
            }
            used.lines.push(format!(
                "Bugsink {BUGSINK_VERSION} at http://127.0.0.1:{port} ({}; state in {})",
                instance.how,
                base.join(port.to_string()).display()
            ));
            return Ok(());
        }
    }
    Err(format!(
        "no usable port for Bugsink in {first}..{}: each one has a server that does not accept \
         our token (set BUGSINK_PORT to a free port)",
        first + tries as u16 - 1
    ))
}

/// Venv, configuration and state live outside the work tree (one per machine), so a fresh
/// clone reuses the instance an earlier run left running instead of fighting over its port.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OBS_XTASK_CACHE") {
        return PathBuf::from(dir).join("bugsink");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache/obs-xtask/bugsink")
}

/// The venv's `bugsink-manage`, installing the pinned version when missing.
fn install(base: &Path) -> Result<PathBuf, String> {
    let venv = base.join("venv");
    let manage = venv.join("bin/bugsink-manage");
    if manage.is_file() {
        return Ok(venv);
    }
    fs::create_dir_all(base).map_err(|e| format!("creating {}: {e}", base.display()))?;
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
    Ok(venv)
}

struct Instance {
    state: String,
    how: &'static str,
}

/// Our instance on `port`: reused if it answers with our token, started if nothing listens;
/// `None` if some other server holds the port.
fn instance(base: &Path, venv: &Path, port: u16) -> Result<Option<Instance>, String> {
    let dir = base.join(port.to_string());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let state_file = dir.join("state.env");
    let state = fs::read_to_string(&state_file).ok();
    if tcp_open(addr) {
        return Ok(state
            .filter(|s| token_accepted(addr, s))
            .map(|state| Instance {
                state,
                how: "already running",
            }));
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let manage_cmd = || {
        let mut c = Command::new(venv.join("bin/bugsink-manage"));
        c.current_dir(&dir)
            .env("PYTHONPATH", &dir)
            .env("DJANGO_SETTINGS_MODULE", "bugsink_conf");
        c
    };
    let state = match state {
        Some(s) => s,
        None => {
            let conf = dir.join("bugsink_conf.py");
            if !conf.is_file() {
                run(Command::new(venv.join("bin/bugsink-create-conf"))
                    .args(["--template", "local", "--host", "127.0.0.1", "--port"])
                    .arg(port.to_string())
                    .arg("-o")
                    .arg(&conf))?;
            }
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
    if !token_accepted(addr, &state) {
        return Err(format!(
            "Bugsink on {addr} started but refuses the token in {}; delete {} and retry",
            state_file.display(),
            dir.display()
        ));
    }
    Ok(Some(Instance {
        state,
        how: "started by xtask",
    }))
}

/// True if the server at `addr` answers our project's issue list with 200 for our token.
fn token_accepted(addr: SocketAddr, state: &str) -> bool {
    let var = |name: &str| {
        state
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    let (token, project) = (var("BUGSINK_TOKEN"), var("BUGSINK_PROJECT_ID"));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "GET /api/canonical/0/issues/?project={project} HTTP/1.0\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    let mut head = [0u8; 16];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read(&mut head).is_ok_and(|n| {
            let line = String::from_utf8_lossy(&head[..n]);
            line.starts_with("HTTP/1.") && line.get(9..12) == Some("200")
        })
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
