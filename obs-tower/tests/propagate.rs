//! Outgoing propagation: a real reqwest call to a local axum server carries the current ID.
#![cfg(all(feature = "reqwest", feature = "axum"))]

use axum::{http::HeaderMap, routing::get, Router};
use obs_core::{RequestContext, RequestId};
use obs_tower::propagate::{request_id_header, RequestBuilderExt};

async fn echo_server() -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move {
            headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| "none".into())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/echo", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, handle)
}

#[tokio::test]
async fn outgoing_requests_carry_the_current_request_id() {
    let (url, server) = echo_server().await;
    let client = reqwest::Client::new();

    // Outside a request: no header, nothing breaks.
    assert!(request_id_header().is_none());
    let got = client
        .get(&url)
        .with_request_id()
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, "none");

    let ctx = RequestContext::new(RequestId::parse("prop-42").unwrap());
    let got = ctx
        .scope(async {
            let (name, value) = request_id_header().unwrap();
            assert_eq!(name, "x-request-id");
            assert_eq!(value, "prop-42");
            client
                .get(&url)
                .with_request_id()
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await;
    assert_eq!(got, "prop-42");
    server.abort();
}

#[tokio::test]
async fn end_to_end_through_the_layer() {
    // Service A (behind RequestIdLayer) calls service B; B sees A's request ID.
    let (b_url, b) = echo_server().await;
    let app = Router::new()
        .route(
            "/call",
            get(move || {
                let b_url = b_url.clone();
                async move {
                    reqwest::Client::new()
                        .get(&b_url)
                        .with_request_id()
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap()
                }
            }),
        )
        .layer(obs_tower::RequestIdLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_url = format!("http://{}/call", listener.local_addr().unwrap());
    let a = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let res = reqwest::Client::new()
        .get(&a_url)
        .header("x-request-id", "chain-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "chain-7");
    assert_eq!(res.text().await.unwrap(), "chain-7");
    a.abort();
    b.abort();
}
