//! Helpers shared by the facade test binaries (not a test target itself).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use obs::Obs;
use tower::ServiceExt;

#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |var| map.get(var).cloned()
}

pub async fn build(pairs: &[(&str, &str)]) -> Obs {
    Obs::builder()
        .env_lookup(env(pairs))
        .logging(false)
        .service("facade-test", "1.0.0")
        .build()
        .await
        .expect("builds on embedded defaults")
}

pub fn app(obs: &Obs) -> Router {
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND });
    obs.apply(app)
}

pub async fn send(
    app: &Router,
    path: &str,
    id: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(path);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 10], 5000))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}
