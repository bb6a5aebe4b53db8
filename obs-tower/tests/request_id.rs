//! RequestIdLayer behaviour: trust policies, header names, extensions, span fields,
//! task-local context, response header, inner error type.
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode};
use obs_core::{RequestContext, RequestId};
use obs_tower::request_id::{RequestIdLayer, Trust};
use obs_tower::TrustedProxies;
use tower::{service_fn, Layer, ServiceExt};

/// What the inner service saw.
#[derive(Debug, Clone)]
struct Seen {
    ext_id: RequestId,
    ctx: RequestContext,
    task_local_in_call: Option<RequestId>,
    task_local_in_future: Option<RequestId>,
    request_header: Vec<Vec<u8>>,
}

/// Runs one request through `layer` and returns the response and what the handler saw.
async fn run(layer: RequestIdLayer, req: Request<()>) -> (Response<()>, Seen) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let svc = layer.layer(service_fn(move |req: Request<()>| {
        let task_local_in_call = RequestContext::current_request_id();
        let seen = seen2.clone();
        async move {
            tokio::task::yield_now().await;
            let s = Seen {
                ext_id: req
                    .extensions()
                    .get::<RequestId>()
                    .cloned()
                    .expect("RequestId ext"),
                ctx: req
                    .extensions()
                    .get::<RequestContext>()
                    .cloned()
                    .expect("ctx ext"),
                task_local_in_call,
                task_local_in_future: RequestContext::current_request_id(),
                request_header: req
                    .headers()
                    .get_all("x-request-id")
                    .iter()
                    .map(|v| v.as_bytes().to_vec())
                    .collect(),
            };
            *seen.lock().unwrap() = Some(s);
            Ok::<_, Infallible>(Response::new(()))
        }
    }));
    let res = svc.oneshot(req).await.unwrap();
    let seen = seen.lock().unwrap().take().expect("handler ran");
    (res, seen)
}

fn response_id(res: &Response<()>) -> RequestId {
    let values: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
    assert_eq!(values.len(), 1, "exactly one response header");
    RequestId::from_bytes(values[0].as_bytes()).expect("valid ID in response")
}

fn is_uuid_v7(id: &RequestId) -> bool {
    let s = id.as_str();
    s.len() == 36 && s.as_bytes()[14] == b'7'
}

fn get(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/orders/7");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn with_peer(mut req: Request<()>, peer: &str) -> Request<()> {
    req.extensions_mut()
        .insert(SocketAddr::new(peer.parse().unwrap(), 5000));
    req
}

#[tokio::test]
async fn generates_a_uuid_v7_when_absent_and_sets_it_everywhere() {
    let _serial = common::serial();
    let (res, seen) = run(RequestIdLayer::new(), get(&[])).await;
    let id = response_id(&res);
    assert!(is_uuid_v7(&id), "{id}");
    assert_eq!(seen.ext_id, id);
    assert_eq!(seen.ctx.request_id(), &id);
    assert_eq!(seen.task_local_in_call.as_ref(), Some(&id));
    assert_eq!(seen.task_local_in_future.as_ref(), Some(&id));
    assert_eq!(seen.request_header, vec![id.as_str().as_bytes().to_vec()]);
    assert_eq!(seen.ctx.method(), Some("GET"));
    assert_eq!(
        seen.ctx.route(),
        None,
        "no router: no route, never the raw path"
    );
    // Outside the request the task-local is gone.
    assert!(RequestContext::current().is_none());
}

#[tokio::test]
async fn accepts_a_valid_inbound_id_by_default() {
    let _serial = common::serial();
    let (res, seen) = run(RequestIdLayer::new(), get(&[("x-request-id", "req-789")])).await;
    assert_eq!(response_id(&res), "req-789");
    assert_eq!(seen.ext_id, "req-789");
    assert_eq!(seen.task_local_in_future.unwrap(), "req-789");
}

#[tokio::test]
async fn trust_never_always_generates_and_overwrites_the_request_header() {
    let _serial = common::serial();
    let layer = RequestIdLayer::new().trust(Trust::Never);
    let (res, seen) = run(layer, get(&[("x-request-id", "req-789")])).await;
    let id = response_id(&res);
    assert_ne!(id, "req-789");
    assert!(is_uuid_v7(&id));
    assert_eq!(seen.request_header, vec![id.as_str().as_bytes().to_vec()]);
}

#[tokio::test]
async fn trust_from_proxies_depends_on_the_peer() {
    let _serial = common::serial();
    let proxies = TrustedProxies::parse_list("10.0.0.0/8").unwrap();
    let layer = RequestIdLayer::new().trust(Trust::FromProxies(proxies));

    // Peer inside the CIDR: accepted.
    let req = with_peer(get(&[("x-request-id", "from-lb-1")]), "10.1.2.3");
    let (res, _) = run(layer.clone(), req).await;
    assert_eq!(response_id(&res), "from-lb-1");

    // Peer outside: replaced.
    let req = with_peer(get(&[("x-request-id", "from-lb-1")]), "203.0.113.9");
    let (res, seen) = run(layer.clone(), req).await;
    assert_ne!(response_id(&res), "from-lb-1");
    assert_ne!(seen.ext_id, "from-lb-1");

    // Unknown peer: untrusted.
    let (res, _) = run(layer, get(&[("x-request-id", "from-lb-1")])).await;
    assert_ne!(response_id(&res), "from-lb-1");
}

#[tokio::test]
async fn client_ip_uses_trusted_proxies_and_user_agent_is_sanitized() {
    let _serial = common::serial();
    let layer = RequestIdLayer::new().behind_proxies(TrustedProxies::loopback());
    let req = with_peer(
        get(&[
            ("x-forwarded-for", "198.51.100.4, 127.0.0.1"),
            ("user-agent", "curl/8.5.0"),
            ("x-request-id", "edge-1"),
        ]),
        "127.0.0.1",
    );
    let (res, seen) = run(layer.clone(), req).await;
    assert_eq!(response_id(&res), "edge-1");
    assert_eq!(seen.ctx.client_ip(), Some("198.51.100.4".parse().unwrap()));
    assert_eq!(seen.ctx.user_agent(), Some("curl/8.5.0"));

    // Not from the proxy: forwarded header ignored, ID replaced.
    let req = with_peer(
        get(&[("x-forwarded-for", "6.6.6.6"), ("x-request-id", "edge-1")]),
        "192.0.2.1",
    );
    let (res, seen) = run(layer, req).await;
    assert_ne!(response_id(&res), "edge-1");
    assert_eq!(seen.ctx.client_ip(), Some("192.0.2.1".parse().unwrap()));

    // Recording the user agent can be switched off.
    let (_, seen) = run(
        RequestIdLayer::new().record_user_agent(false),
        get(&[("user-agent", "curl/8.5.0")]),
    )
    .await;
    assert_eq!(seen.ctx.user_agent(), None);
}

#[tokio::test]
async fn custom_and_alternative_header_names() {
    let _serial = common::serial();
    let layer = RequestIdLayer::new()
        .header_name(http::HeaderName::from_static("x-trace-id"))
        .accept_header(http::HeaderName::from_static("x-correlation-id"));

    // Alternative name accepted, answered under the primary name.
    let (res, seen) = run(layer.clone(), get(&[("x-correlation-id", "corr-1")])).await;
    assert_eq!(res.headers()["x-trace-id"], "corr-1");
    assert!(res.headers().get("x-request-id").is_none());
    assert!(res.headers().get("x-correlation-id").is_none());
    assert_eq!(seen.ext_id, "corr-1");

    // The primary wins over the alternative.
    let (res, _) = run(
        layer.clone(),
        get(&[("x-correlation-id", "corr-1"), ("x-trace-id", "trace-1")]),
    )
    .await;
    assert_eq!(res.headers()["x-trace-id"], "trace-1");

    // A hostile alternative is replaced and removed from the request.
    let seen_alt = std::sync::Arc::new(std::sync::Mutex::new(None));
    let s2 = seen_alt.clone();
    let svc = layer.layer(service_fn(move |req: Request<()>| {
        *s2.lock().unwrap() = Some(req.headers().get("x-correlation-id").cloned());
        async { Ok::<_, Infallible>(Response::new(())) }
    }));
    let res = svc
        .oneshot(get(&[("x-correlation-id", "bad value")]))
        .await
        .unwrap();
    let id = res.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(
        *seen_alt.lock().unwrap(),
        Some(None),
        "rejected value removed"
    );
}

#[tokio::test]
async fn identical_duplicates_are_accepted() {
    let _serial = common::serial();
    let req = Request::get("/")
        .header("x-request-id", "dup-1")
        .header("x-request-id", "dup-1")
        .body(())
        .unwrap();
    let (res, _) = run(RequestIdLayer::new(), req).await;
    assert_eq!(response_id(&res), "dup-1");
}

#[tokio::test]
async fn response_header_set_by_the_handler_is_replaced() {
    let _serial = common::serial();
    let svc = RequestIdLayer::new().layer(service_fn(|_req: Request<()>| async {
        let mut res = Response::new(());
        res.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_static("handler-made-this"),
        );
        Ok::<_, Infallible>(res)
    }));
    let res = svc
        .oneshot(get(&[("x-request-id", "req-1")]))
        .await
        .unwrap();
    assert_eq!(response_id(&res), "req-1");
}

#[derive(Debug, PartialEq)]
struct MyError(&'static str);

#[tokio::test]
async fn inner_error_type_is_preserved() {
    let _serial = common::serial();
    let svc = RequestIdLayer::new().layer(service_fn(|_req: Request<()>| async {
        Err::<Response<()>, _>(MyError("boom"))
    }));
    let err: MyError = svc.oneshot(get(&[])).await.unwrap_err();
    assert_eq!(err, MyError("boom"));
}

#[tokio::test]
async fn span_named_request_carries_id_method_route_and_wraps_the_handler() {
    let (logs, _guard) = common::capture();
    let svc = RequestIdLayer::new().layer(service_fn(|_req: Request<()>| async {
        tracing::info!(target: "handler", "in call future");
        tokio::task::yield_now().await;
        tracing::info!(target: "handler", "after yield");
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::CREATED)
                .body(())
                .unwrap(),
        )
    }));
    let res = svc
        .oneshot(
            Request::post("/orders")
                .header("x-request-id", "span-1")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let lines = logs.with_target("handler");
    assert_eq!(lines.len(), 2, "{}", logs.text());
    for line in lines {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["request_id"], "span-1");
        assert_eq!(line["span"]["method"], "POST");
        assert!(
            line["span"].get("route").is_none(),
            "no route without a router"
        );
    }
}

#[tokio::test]
async fn span_level_is_configurable() {
    let _serial = common::serial();
    use tracing_subscriber::layer::SubscriberExt;
    let logs = common::Logs::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(logs.clone()),
        )
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    let _guard = tracing::subscriber::set_default(subscriber);
    let svc = RequestIdLayer::new()
        .span_level(tracing::Level::DEBUG)
        .layer(service_fn(|_req: Request<()>| async {
            tracing::info!(target: "handler", "hello");
            Ok::<_, Infallible>(Response::new(()))
        }));
    svc.oneshot(get(&[])).await.unwrap();
    let lines = logs.with_target("handler");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].get("span").is_none(),
        "DEBUG span filtered at INFO: {}",
        lines[0]
    );
}

#[cfg(feature = "axum")]
mod with_axum {
    use super::*;
    use axum::{body::Body, routing::get, Router};
    use obs_tower::extract::{Ctx, ReqId};

    #[tokio::test]
    async fn router_layer_records_the_route_template_in_context_and_span() {
        let (logs, _guard) = common::capture();
        let app = Router::new()
            .route(
                "/users/{id}",
                get(|ReqId(id): ReqId, Ctx(ctx): Ctx| async move {
                    tracing::info!(target: "handler", "user");
                    format!("{id} {}", ctx.route().unwrap())
                }),
            )
            .layer(RequestIdLayer::new());
        let res = app
            .oneshot(
                Request::get("/users/42")
                    .header("x-request-id", "ax-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "ax-1");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"ax-1 /users/{id}");
        let line = &logs.with_target("handler")[0];
        assert_eq!(line["span"]["route"], "/users/{id}");
        assert!(!logs.text().contains("/users/42"), "raw path never logged");
    }

    #[tokio::test]
    async fn extractors_reject_with_500_when_the_layer_is_missing() {
        let app = Router::new()
            .route("/a", get(|ReqId(id): ReqId| async move { id.to_string() }))
            .route(
                "/b",
                get(|Ctx(ctx): Ctx| async move { ctx.request_id().to_string() }),
            )
            .route(
                "/c",
                get(|id: Option<ReqId>, ctx: Option<Ctx>| async move {
                    format!("{} {}", id.is_some(), ctx.is_some())
                }),
            );
        for path in ["/a", "/b"] {
            let res = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.contains("RequestIdLayer"), "{body}");
        }
        let res = app
            .oneshot(Request::get("/c").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"false false");
    }
}

#[tokio::test]
async fn nested_layers_keep_the_outer_id_whatever_the_inner_trust() {
    let _serial = common::serial();
    let inner = RequestIdLayer::new().trust(Trust::Never);
    let svc = tower::ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(inner)
        .service(service_fn(|req: Request<()>| async move {
            let ext = req.extensions().get::<RequestId>().cloned().unwrap();
            assert_eq!(RequestContext::current_request_id().unwrap(), ext);
            assert_eq!(req.headers()["x-request-id"], ext.as_str());
            Ok::<_, Infallible>(Response::new(()))
        }));
    let res = svc
        .oneshot(get(&[("x-request-id", "outer-1")]))
        .await
        .unwrap();
    assert_eq!(response_id(&res), "outer-1");
}
