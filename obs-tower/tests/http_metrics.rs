//! `HttpMetricsLayer` and the metrics endpoints, driven through real axum routers.
#![cfg(all(feature = "metrics", feature = "axum"))]

use std::convert::Infallible;

use axum::body::Body;
use axum::routing::{any, get};
use axum::Router;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use obs_metrics::http::{HttpMethod, HttpMetrics, StatusClass};
use obs_metrics::{opts, Registry, Scope};
use obs_tower::metrics::{metrics_router, HttpMetricsLayer, MetricsEndpoint, UNMATCHED_ROUTE};
use tower::{service_fn, Layer, Service, ServiceExt};

fn setup() -> (Registry, HttpMetrics) {
    let registry = Registry::new();
    let http = HttpMetrics::register(&registry).unwrap();
    (registry, http)
}

async fn send(app: &Router, method: &str, uri: &str) -> Response<Body> {
    app.clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn body(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn records_matched_template_unmatched_constant_and_other_method() {
    let (registry, http) = setup();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "u" }))
        .route("/boom", any(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(HttpMetricsLayer::new(http.clone()))
        .merge(metrics_router(registry.clone()));

    for id in ["1", "2", "alice@example.com"] {
        assert_eq!(
            send(&app, "GET", &format!("/users/{id}")).await.status(),
            200
        );
    }
    assert_eq!(send(&app, "BREW", "/boom").await.status(), 500);
    for p in ["/wp-admin", "/.env", "/users"] {
        assert_eq!(send(&app, "GET", p).await.status(), 404);
    }
    assert_eq!(
        http.requests(HttpMethod::Get, Some("/users/{id}"), StatusClass::Success),
        3
    );
    assert_eq!(
        http.requests(HttpMethod::Other, Some("/boom"), StatusClass::ServerError),
        1
    );
    assert_eq!(
        http.requests(HttpMethod::Get, None, StatusClass::ClientError),
        3
    );

    let text = body(send(&app, "GET", "/metrics").await).await;
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="2xx"} 3"#),
        "{text}"
    );
    assert!(text.contains(&format!(
        r#"http_requests_total{{method="GET",route="{UNMATCHED_ROUTE}",status="4xx"}} 3"#
    )));
    assert!(text.contains(r#"http_request_duration_seconds_count{method="other",route="/boom"} 1"#));
    for raw in ["/users/1", "alice", "/wp-admin", ".env"] {
        assert!(!text.contains(raw), "raw path {raw} leaked into {text}");
    }
    // Scrapes of the merged endpoints are not counted.
    assert!(!text.contains("route=\"/metrics\""));
}

#[tokio::test]
async fn in_flight_is_visible_during_the_request_and_released_on_cancel() {
    let (_registry, http) = setup();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let entered_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let tx = entered_tx.lock().unwrap().take();
                async move {
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                    std::future::pending::<&'static str>().await
                }
            }),
        )
        .layer(HttpMetricsLayer::new(http.clone()));
    let task = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "GET", "/slow").await }
    });
    entered_rx.await.unwrap();
    assert_eq!(http.in_flight(HttpMethod::Get, Some("/slow")), 1);
    task.abort();
    let _ = task.await;
    assert_eq!(http.in_flight(HttpMethod::Get, Some("/slow")), 0);
    // A cancelled request is not counted as completed.
    for c in [StatusClass::Success, StatusClass::ServerError] {
        assert_eq!(http.requests(HttpMethod::Get, Some("/slow"), c), 0);
    }
}

#[tokio::test]
async fn duration_lands_in_the_histogram_of_its_method_and_route() {
    let registry = Registry::new();
    let http = HttpMetrics::builder()
        .buckets(&[0.05, 10.0])
        .register(&registry)
        .unwrap();
    let app = Router::new()
        .route("/fast", get(|| async { "ok" }))
        .layer(HttpMetricsLayer::new(http.clone()));
    send(&app, "GET", "/fast").await;
    let text = registry.encode(obs_metrics::Format::Prometheus, &[Scope::System]);
    assert!(
        text.contains(
            r#"http_request_duration_seconds_bucket{le="0.05",method="GET",route="/fast"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"http_request_duration_seconds_count{method="GET",route="/fast"} 1"#));
}

#[tokio::test]
async fn inner_errors_count_as_5xx_and_keep_the_error_type() {
    let (_registry, http) = setup();
    #[derive(Debug, PartialEq)]
    struct Boom;
    let mut svc = HttpMetricsLayer::new(http.clone())
        .route_fn(|_uri, _ext| Some("/custom".to_owned()))
        .layer(service_fn(|_req: Request<()>| async {
            Err::<Response<()>, _>(Boom)
        }));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::post("/x/123").body(()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, Boom);
    assert_eq!(
        http.requests(HttpMethod::Post, Some("/custom"), StatusClass::ServerError),
        1
    );
}

#[tokio::test]
async fn route_from_request_context_extension_without_axum_routing() {
    let (_registry, http) = setup();
    let mut svc =
        HttpMetricsLayer::new(http.clone()).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let mut req = Request::get("/orders/9").body(()).unwrap();
    req.extensions_mut().insert(
        obs_core::RequestContext::builder(obs_core::RequestId::generate())
            .route("/orders/{id}")
            .build(),
    );
    svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(
        http.requests(HttpMethod::Get, Some("/orders/{id}"), StatusClass::Success),
        1
    );
}

#[tokio::test]
async fn endpoints_negotiate_format_and_split_scopes() {
    let registry = Registry::new();
    let c = registry
        .counter::<()>("orders_total", "Orders.", Scope::Business, opts())
        .unwrap();
    c.inc(());
    registry.register_process_metrics().unwrap();
    let app: Router = metrics_router(registry.clone());

    let res = send(&app, "GET", "/metrics/business").await;
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = body(res).await;
    assert!(text.contains("orders_total 1\n") && !text.contains("process_"));

    let res = app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .header(
                    "accept",
                    "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let om = body(res).await;
    assert!(
        om.ends_with("# EOF\n")
            && om.contains("process_cpu_seconds_total")
            && !om.contains("orders")
    );

    let mut all = MetricsEndpoint::all(registry);
    let res = all.call(Request::get("/").body(()).unwrap()).await.unwrap();
    assert!(res.body().contains("orders_total 1") && res.body().contains("process_threads"));
}
