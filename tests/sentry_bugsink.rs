//! End to end against a real Sentry-compatible server (Bugsink, provisioned by
//! `cargo xtask test` or `cargo xtask bugsink`): a real HTTP service answers 500 to a request
//! carrying a password in its query string, an `Authorization` header and an email in a
//! breadcrumb; the event is read back through Bugsink's API and checked for the request id,
//! breadcrumbs and user id — and for the absence of every secret.
//!
//! Every run uses a unique route, request id and secrets, so reruns against a persistent
//! Bugsink find their own event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use obs::core::config::Config;
use obs::core::sentry as bridge;
use obs::tower::{RequestIdLayer, SentryLayer};
use serde_json::Value;

struct Bugsink {
    url: String,
    dsn: String,
    token: String,
    project: String,
}

fn bugsink() -> Bugsink {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: this test needs a running Bugsink. Run the suite with \
                 `cargo xtask test` (it starts Bugsink and exports BUGSINK_*), or start one with \
                 `cargo xtask bugsink` and export the BUGSINK_URL, BUGSINK_DSN (printed as \
                 SENTRY_DSN), BUGSINK_TOKEN and BUGSINK_PROJECT_ID it prints \
                 (also in target/bugsink/<port>/state.env)"
            )
        })
    };
    Bugsink {
        url: var("BUGSINK_URL"),
        dsn: var("BUGSINK_DSN"),
        token: var("BUGSINK_TOKEN"),
        project: var("BUGSINK_PROJECT_ID"),
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

async fn api(http: &reqwest::Client, b: &Bugsink, path: &str) -> Value {
    let url = format!("{}{path}", b.url);
    let res = http
        .get(&url)
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = res.status();
    let text = res.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// Every item of a paginated Bugsink list.
async fn list(http: &reqwest::Client, b: &Bugsink, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page = api(http, b, path).await;
    loop {
        out.extend(page["results"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) if !next.is_empty() => {
                let next = next.strip_prefix(&b.url).unwrap_or(next).to_owned();
                page = api(http, b, &next).await;
            }
            _ => return out,
        }
    }
}

/// Finds the stored event whose `request_id` tag is `request_id` (full event JSON), in the
/// issues that mention `route` (unique per run, so earlier runs' events are not fetched).
async fn find_event(
    http: &reqwest::Client,
    b: &Bugsink,
    route: &str,
    request_id: &str,
) -> Option<Value> {
    let issues = list(
        http,
        b,
        &format!("/api/canonical/0/issues/?project={}", b.project),
    )
    .await;
    for issue in issues.iter().filter(|i| i.to_string().contains(route)) {
        let Some(issue_id) = issue["id"].as_str() else {
            continue;
        };
        let events = list(
            http,
            b,
            &format!("/api/canonical/0/events/?issue={issue_id}"),
        )
        .await;
        for event in events {
            let Some(id) = event["id"].as_str() else {
                continue;
            };
            let full = api(http, b, &format!("/api/canonical/0/events/{id}/")).await;
            if full.to_string().contains(request_id) {
                return Some(full);
            }
        }
    }
    None
}

fn tag<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    match &data["tags"] {
        Value::Object(map) => map.get(key)?.as_str(),
        Value::Array(pairs) => pairs.iter().find_map(|p| {
            if p[0].as_str() == Some(key) {
                p[1].as_str()
            } else if p["key"].as_str() == Some(key) {
                p["value"].as_str()
            } else {
                None
            }
        }),
        _ => None,
    }
}

#[test]
fn a_500_with_secrets_reaches_bugsink_scrubbed_with_request_context() {
    let b = bugsink();
    let run = unique();
    let request_id = format!("e2e-{run}");
    let user_id = format!("user-{run}");
    let password = format!("hunter2-{run}");
    let email = format!("jane.doe.{run}@example.com");
    let bearer = format!("tok{run}secretvalue");
    let route = format!("/e2e/{run}/checkout");

    // As a service would: config from the environment, one init call, the tracing layer.
    let dsn = b.dsn.clone();
    let config = Config::from_lookup(|name| (name == "SENTRY_DSN").then(|| dsn.clone()))
        .expect("valid config");
    let guard = obs::sentry::init(&config.sentry);
    assert!(guard.is_enabled());
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(bridge::tracing_layer())
            .init();
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(async {
        let handler_user = user_id.clone();
        let handler_email = email.clone();
        let app = Router::new()
            .route(
                &route,
                get(move || async move {
                    bridge::set_user(&handler_user);
                    bridge::breadcrumb(
                        "auth",
                        &format!("login by {handler_email}"),
                        [("email", handler_email.as_str()), ("step", "login")],
                    );
                    tracing::info!(items = 3, "payment started");
                    bridge::with_context("cart", [("items", 3)]);
                    StatusCode::INTERNAL_SERVER_ERROR
                }),
            )
            .layer(SentryLayer::new())
            .layer(RequestIdLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let http = reqwest::Client::new();
        let res = http
            .get(format!("http://{addr}{route}?password={password}&page=1"))
            .header("authorization", format!("Bearer {bearer}"))
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 500);
        assert!(
            guard.flush(Duration::from_secs(10)),
            "events sent to Bugsink"
        );

        // Ingestion is synchronous in the test Bugsink; still poll with a bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(event) = find_event(&http, &b, &route, &request_id).await {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no event with request id {request_id} in Bugsink project {} at {}",
                b.project,
                b.url
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });

    let text = stored.to_string();
    for (what, secret) in [
        ("password", password.as_str()),
        ("email", email.as_str()),
        ("authorization header", bearer.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} leaked into Bugsink: {text}");
    }
    let data = if stored["data"].is_object() {
        &stored["data"]
    } else {
        &stored
    };
    assert_eq!(tag(data, "request_id"), Some(request_id.as_str()), "{text}");
    assert_eq!(tag(data, "http.status_code"), Some("500"), "{text}");
    assert_eq!(data["user"]["id"], user_id.as_str(), "{text}");
    assert_eq!(
        data["transaction"].as_str(),
        Some(format!("GET {route}").as_str())
    );
    assert_eq!(data["contexts"]["cart"]["items"], 3, "{text}");
    let crumbs = data["breadcrumbs"]["values"]
        .as_array()
        .or_else(|| data["breadcrumbs"].as_array())
        .unwrap_or_else(|| panic!("breadcrumbs stored: {text}"));
    let messages: Vec<_> = crumbs
        .iter()
        .filter_map(|c| c["message"].as_str())
        .collect();
    assert_eq!(messages, ["login by [email]", "payment started"], "{text}");
    for c in crumbs {
        assert_eq!(c["data"]["request_id"], request_id.as_str(), "{text}");
    }
    assert_eq!(crumbs[0]["data"]["email"], "[email]");
    let request = &data["request"];
    assert!(
        request["query_string"]
            .as_str()
            .unwrap_or_default()
            .contains("password=[password]")
            || request["query_string"].to_string().contains("[password]"),
        "{text}"
    );
    let url = request["url"].as_str().unwrap_or_default();
    assert!(
        url.ends_with(&format!("{route}?password=[password]&page=1")),
        "{text}"
    );
}
