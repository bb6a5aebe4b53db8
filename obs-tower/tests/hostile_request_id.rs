//! Hostile inbound request IDs: each yields a fresh valid ID in the response and the
//! extensions, no panic, and the hostile value appears neither in the response headers nor
//! in the log output (span fields, access log, handler lines).
mod common;

use std::convert::Infallible;

use http::{HeaderValue, Request, Response};
use obs_core::{RequestContext, RequestId};
use obs_tower::{AccessLogLayer, RequestIdLayer};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

/// Values a `HeaderValue` can hold (hyper would hand them to us). Each contains `EVIL`
/// (or is otherwise unique) so its appearance anywhere can be detected.
fn hostile_values() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", b"".to_vec()),
        ("tab", b"EVIL\tid".to_vec()),
        ("space", b"EVIL id".to_vec()),
        (
            "quotes (JSON injection)",
            br#"EVIL","level":"error","x":""#.to_vec(),
        ),
        ("html", b"<script>EVIL</script>".to_vec()),
        ("percent-encoded CRLF", b"EVIL%0d%0aSet-Cookie:x".to_vec()),
        (
            "10 KB of valid bytes",
            format!("EVIL{}", "a".repeat(10 * 1024)).into_bytes(),
        ),
        ("129 bytes", format!("EVIL{}", "b".repeat(125)).into_bytes()),
        ("non-UTF-8", vec![b'E', b'V', b'I', b'L', 0xff, 0xfe, 0x80]),
        ("latin-1 obs-text", "EVIL\u{e9}".as_bytes().to_vec()),
        (
            "fullwidth look-alike",
            "ＥＶＩＬ-１２３".as_bytes().to_vec(),
        ),
        ("cyrillic look-alike", "EVIL-r\u{0435}q".as_bytes().to_vec()),
        ("zero-width space", "EVIL\u{200b}1".as_bytes().to_vec()),
        (
            "right-to-left override",
            "EVIL\u{202e}lmth.exe".as_bytes().to_vec(),
        ),
        ("ANSI escape as text", b"EVIL[31mred".to_vec()),
    ]
}

/// Runs `req` through RequestIdLayer + AccessLogLayer with logs captured; returns the response,
/// the ID the handler saw in extensions and task-local, and the raw log bytes.
async fn run(req: Request<()>) -> (Response<()>, RequestId, Vec<u8>) {
    let (logs, _guard) = common::capture();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let s2 = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .layer(AccessLogLayer::new())
        .service(service_fn(move |req: Request<()>| {
            let s2 = s2.clone();
            async move {
                let ext = req.extensions().get::<RequestId>().cloned().unwrap();
                let ctx = req.extensions().get::<RequestContext>().cloned().unwrap();
                assert_eq!(ctx.request_id(), &ext);
                assert_eq!(RequestContext::current_request_id().as_ref(), Some(&ext));
                // Downstream never sees the rejected value in the request headers either.
                let headers: Vec<_> = req.headers().get_all("x-request-id").iter().collect();
                assert_eq!(headers.len(), 1);
                assert_eq!(headers[0].as_bytes(), ext.as_bytes());
                tracing::info!(target: "handler", "handling");
                *s2.lock().unwrap() = Some(ext);
                Ok::<_, Infallible>(Response::new(()))
            }
        }));
    let res = svc.oneshot(req).await.unwrap();
    let ext = seen.lock().unwrap().take().expect("handler ran");
    (res, ext, logs.bytes())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn response_header_bytes(res: &Response<()>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in res.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

fn assert_fresh(label: &str, res: &Response<()>, ext: &RequestId, logs: &[u8], hostile: &[&[u8]]) {
    let values: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
    assert_eq!(values.len(), 1, "{label}: one response header");
    let id = RequestId::from_bytes(values[0].as_bytes()).expect("valid");
    assert_eq!(id.as_str().len(), 36, "{label}: fresh UUID, got {id}");
    assert_eq!(id.as_str().as_bytes()[14], b'7', "{label}: UUIDv7");
    assert_eq!(&id, ext, "{label}: extension = response");
    let headers = response_header_bytes(res);
    let text = String::from_utf8_lossy(logs);
    for h in hostile {
        assert!(
            !contains(&headers, h),
            "{label}: echoed in response headers"
        );
        assert!(
            !contains(logs, h),
            "{label}: hostile value in logs:\n{text}"
        );
    }
    assert!(!contains(logs, b"EVIL"), "{label}: marker in logs:\n{text}");
    assert!(!contains(&headers, b"EVIL"), "{label}: marker in response");
    // The logs mention the fresh ID: span fields and the access line.
    assert!(text.contains(id.as_str()), "{label}: logs carry the new ID");
    // Every line is one valid JSON object (nothing injected a line break).
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line");
    }
}

#[tokio::test]
async fn hostile_values_are_replaced_never_echoed_nor_logged() {
    for (label, value) in hostile_values() {
        let hv = HeaderValue::from_bytes(&value).unwrap_or_else(|_| panic!("{label}"));
        let req = Request::get("/")
            .header("x-request-id", hv)
            .body(())
            .unwrap();
        let (res, ext, logs) = run(req).await;
        assert_fresh(label, &res, &ext, &logs, &[&value]);
    }
}

#[tokio::test]
async fn conflicting_duplicate_headers_are_replaced() {
    let req = Request::get("/")
        .header("x-request-id", "EVIL-dup-a")
        .header("x-request-id", "EVIL-dup-b")
        .body(())
        .unwrap();
    let (res, ext, logs) = run(req).await;
    assert_fresh(
        "duplicates",
        &res,
        &ext,
        &logs,
        &[b"EVIL-dup-a", b"EVIL-dup-b"],
    );
}

#[tokio::test]
async fn duplicate_where_one_is_hostile_is_replaced() {
    let req = Request::get("/")
        .header("x-request-id", "ok-1")
        .header("x-request-id", "EVIL bad")
        .body(())
        .unwrap();
    let (res, ext, logs) = run(req).await;
    assert_fresh("valid+hostile duplicate", &res, &ext, &logs, &[b"EVIL bad"]);
    assert!(!contains(&response_header_bytes(&res), b"ok-1"));
}

#[tokio::test]
async fn hostile_user_agent_cannot_inject_log_lines() {
    let (logs, _guard) = common::capture();
    let svc = RequestIdLayer::new().layer(service_fn(|req: Request<()>| async move {
        let ctx = req.extensions().get::<RequestContext>().cloned().unwrap();
        tracing::info!(target: "handler", user_agent = ctx.user_agent(), "ua");
        Ok::<_, Infallible>(Response::new(()))
    }));
    let ua = HeaderValue::from_bytes(b"curl\t\"EVIL\"[0m").unwrap();
    svc.oneshot(Request::get("/").header("user-agent", ua).body(()).unwrap())
        .await
        .unwrap();
    let lines = logs.with_target("handler");
    assert_eq!(lines.len(), 1);
    // Control characters (tab) removed by the context; quotes escaped by JSON.
    assert_eq!(lines[0]["fields"]["user_agent"], "curl\"EVIL\"[0m");
}

/// CR, LF, NUL and other control bytes cannot even be put in an `http::HeaderValue`; the
/// only way they reach a service is raw bytes on the wire. Send them to a real axum server:
/// hyper rejects the request (400) or our layer replaces the ID — either way nothing is
/// echoed, nothing panics, and the server keeps serving.
#[cfg(feature = "axum")]
#[tokio::test]
async fn raw_control_bytes_on_the_wire() {
    let _serial = common::serial();
    use axum::{routing::get, Router};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(AccessLogLayer::new())
        .layer(RequestIdLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    async fn raw(addr: std::net::SocketAddr, id: &[u8]) -> Vec<u8> {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Request-Id: ".to_vec();
        req.extend_from_slice(id);
        req.extend_from_slice(b"\r\n\r\n");
        s.write_all(&req).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("server answers")
            .unwrap();
        out
    }

    let cases: [(&str, &[u8]); 6] = [
        // hyper splits these into two request headers: `x-request-id: EVIL!` (invalid,
        // replaced) and an extra request header that must not reach the response.
        ("CRLF header injection", b"EVIL!\r\nSet-Cookie: Injected=1"),
        ("bare LF", b"EVIL!\nInjected: 1"),
        ("NUL", b"EVIL\x00id"),
        ("SOH", b"EVIL\x01id"),
        ("ESC", b"EVIL\x1b[31m"),
        ("DEL", b"EVIL\x7fid"),
    ];
    for (label, id) in cases {
        let response = raw(addr, id).await;
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 200"),
            "{label}: {text}"
        );
        assert!(!text.contains("EVIL"), "{label}: echoed: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("injected"),
            "{label}: {text}"
        );
        if text.starts_with("HTTP/1.1 200") {
            let id_line = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("x-request-id:"))
                .expect("ID header on 200");
            let id = id_line.split_once(':').unwrap().1.trim();
            assert_eq!(id.len(), 36, "{label}: fresh UUID {id}");
        }
    }
    // Still serving.
    let ok = raw(addr, b"fine-1").await;
    let text = String::from_utf8_lossy(&ok);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id: fine-1"),
        "{text}"
    );
    server.abort();
}
