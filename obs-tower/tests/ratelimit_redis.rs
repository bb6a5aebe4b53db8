//! `RateLimitLayer` on a real Redis behind a real axum server (client IP from `ConnectInfo`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use obs_ratelimit::Limiter;
use obs_test_support::{require_redis, unique_name};
use obs_tower::client_ip::TrustedProxies;
use obs_tower::ratelimit::RateLimitLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(limiter: Limiter) -> SocketAddr {
    let app =
        Router::new()
            .route("/", get(|| async { "hello" }))
            .layer(RateLimitLayer::per_client_ip(
                limiter,
                TrustedProxies::none(),
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// One HTTP/1.1 GET; returns (status, lower-cased header lines).
async fn get_status(addr: SocketAddr) -> (u16, Vec<String>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_lowercase();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (status, headers)
}

fn header(headers: &[String], name: &str) -> String {
    headers
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("missing {name} in {headers:?}"))
        .to_owned()
}

#[tokio::test]
async fn http_clients_obeying_retry_after_get_in() {
    let limiter = Limiter::builder("ip")
        .prefix(unique_name("rl-http"))
        .limit(2)
        .window(Duration::from_millis(900))
        .build_redis(&require_redis())
        .await
        .unwrap();
    let addr = serve(limiter.clone()).await;
    let (s1, h1) = get_status(addr).await;
    assert_eq!(s1, 200);
    assert_eq!(header(&h1, "x-ratelimit-limit"), "2");
    assert_eq!(header(&h1, "x-ratelimit-remaining"), "1");
    assert_eq!(get_status(addr).await.0, 200);
    let (s3, h3) = get_status(addr).await;
    assert_eq!(s3, 429);
    let retry: u64 = header(&h3, "retry-after").parse().unwrap();
    assert_eq!(retry, 1, "0.9 s window rounds up to 1 s");
    // A real client waits the advertised whole seconds, on real (Redis) time.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s4, _) = get_status(addr).await;
    assert_eq!(s4, 200);
    let key = limiter.redis_key("127.0.0.1").unwrap();
    let mut con = redis::Client::open(require_redis())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let members: i64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        (1..=2).contains(&members),
        "the log for 127.0.0.1 holds {members}"
    );
}
