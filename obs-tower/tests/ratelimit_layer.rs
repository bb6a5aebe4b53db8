//! `RateLimitLayer` semantics on the in-memory backend with an injected clock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use obs_ratelimit::clock::ManualClock;
use obs_ratelimit::{Limiter, Mode};
use obs_tower::client_ip::TrustedProxies;
use obs_tower::ratelimit::{too_many_requests, RateLimitLayer, RateLimited};
use tower::{service_fn, Layer, Service, ServiceExt};

fn limiter(name: &str, limit: u32, window: Duration, clock: &ManualClock) -> Limiter {
    Limiter::builder(name)
        .limit(limit)
        .window(window)
        .mode(Mode::Exact)
        .clock(clock.clone())
        .build_in_memory()
        .unwrap()
}

fn req(peer: [u8; 4], path: &str) -> Request<String> {
    let mut r = Request::builder().uri(path).body(String::new()).unwrap();
    r.extensions_mut().insert(SocketAddr::from((peer, 40_000)));
    r
}

fn ok_service(
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(|_r: Request<String>| async { Ok::<_, Infallible>(Response::new("ok".to_owned())) })
}

fn header<'a>(r: &'a Response<String>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn headers_on_allowed_and_denied_responses() {
    let clock = ManualClock::new();
    let l = limiter("ip", 2, Duration::from_millis(1_500), &clock);
    let svc = RateLimitLayer::per_client_ip(l, TrustedProxies::none()).layer(ok_service());
    let r1 = svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    assert_eq!(r1.status(), StatusCode::OK);
    assert_eq!(header(&r1, "x-ratelimit-limit"), "2");
    assert_eq!(header(&r1, "x-ratelimit-remaining"), "1");
    assert_eq!(header(&r1, "x-ratelimit-reset"), "2"); // 1.5 s rounded up
    clock.advance(Duration::from_millis(100));
    let r2 = svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    assert_eq!(header(&r2, "x-ratelimit-remaining"), "0");
    clock.advance(Duration::from_millis(300));
    let r3 = svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    assert_eq!(r3.status(), StatusCode::TOO_MANY_REQUESTS);
    // The oldest admission frees 1.1 s from now: Retry-After rounds UP to 2.
    assert_eq!(header(&r3, "retry-after"), "2");
    assert_eq!(header(&r3, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&r3, "x-ratelimit-limit"), "2");
    assert_eq!(r3.extensions().get::<RateLimited>().unwrap().limiter, "ip");
    // Another client is unaffected.
    let other = svc.clone().oneshot(req([192, 0, 2, 2], "/")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // Obeying Retry-After (whole seconds) gets the client in.
    clock.advance(Duration::from_secs(2));
    let r4 = svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    assert_eq!(r4.status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_after_is_at_least_one_second() {
    let clock = ManualClock::new();
    let l = limiter("ip", 1, Duration::from_millis(100), &clock);
    let svc = RateLimitLayer::per_client_ip(l, TrustedProxies::none()).layer(ok_service());
    svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    clock.advance(Duration::from_millis(99));
    let r = svc.clone().oneshot(req([192, 0, 2, 1], "/")).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), "1");
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let clock = ManualClock::new();
    let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
    let l = limiter("ip", 1, Duration::from_secs(60), &clock);
    let svc = RateLimitLayer::per_client_ip(l, proxies).layer(ok_service());
    let spoof = |xff: &str| {
        let mut r = req([203, 0, 113, 9], "/");
        r.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        r
    };
    // An untrusted peer cannot mint fresh budgets by varying X-Forwarded-For.
    assert_eq!(
        svc.clone()
            .oneshot(spoof("1.1.1.1"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.clone()
            .oneshot(spoof("2.2.2.2"))
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Behind a trusted proxy, each forwarded client has its own budget.
    let via_proxy = |xff: &str| {
        let mut r = req([10, 1, 2, 3], "/");
        r.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        r
    };
    assert_eq!(
        svc.clone()
            .oneshot(via_proxy("198.51.100.1"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.clone()
            .oneshot(via_proxy("198.51.100.2"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.clone()
            .oneshot(via_proxy("198.51.100.1"))
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn stacked_limiters_do_not_spend_each_others_budget() {
    let clock = ManualClock::new();
    let per_ip = limiter("ip", 3, Duration::from_secs(60), &clock);
    let per_route = limiter("route", 1, Duration::from_secs(60), &clock);
    let svc = tower::ServiceBuilder::new()
        .layer(RateLimitLayer::per_client_ip(
            per_ip.clone(),
            TrustedProxies::none(),
        ))
        .layer(RateLimitLayer::new(per_route, |p| {
            Some(p.uri.path().to_owned())
        }))
        .service(ok_service());
    let ip = [192, 0, 2, 1];
    let a1 = svc.clone().oneshot(req(ip, "/a")).await.unwrap();
    assert_eq!(a1.status(), StatusCode::OK);
    // Headers describe the most restrictive limiter (route: 0 left; ip: 2 left).
    assert_eq!(header(&a1, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&a1, "x-ratelimit-limit"), "1");
    for _ in 0..5 {
        let denied = svc.clone().oneshot(req(ip, "/a")).await.unwrap();
        assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            denied.extensions().get::<RateLimited>().unwrap().limiter,
            "route"
        );
    }
    // The five route denials were refunded to the per-IP limiter: 2 of 3 are left.
    assert_eq!(
        svc.clone().oneshot(req(ip, "/b")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.clone().oneshot(req(ip, "/c")).await.unwrap().status(),
        StatusCode::OK
    );
    let ip_denied = svc.clone().oneshot(req(ip, "/d")).await.unwrap();
    assert_eq!(ip_denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        ip_denied.extensions().get::<RateLimited>().unwrap().limiter,
        "ip"
    );
    // ... and the per-IP denial never reached the route limiter: /d still has its budget.
    let other_ip = svc
        .clone()
        .oneshot(req([192, 0, 2, 99], "/d"))
        .await
        .unwrap();
    assert_eq!(other_ip.status(), StatusCode::OK);
    let s = per_ip.stats();
    assert_eq!((s.allowed, s.denied), (9, 1), "{s:?}");
}

#[tokio::test]
async fn a_handler_denial_refunds_the_layer() {
    let clock = ManualClock::new();
    let per_ip = limiter("ip", 2, Duration::from_secs(60), &clock);
    let per_repo = limiter("repo", 1, Duration::from_secs(60), &clock);
    let handler = service_fn(move |r: Request<String>| {
        let per_repo = per_repo.clone();
        async move {
            let repo = r.uri().path().trim_start_matches('/').to_owned();
            let d = per_repo.check(&repo).await;
            if !d.allowed {
                return Ok::<_, Infallible>(too_many_requests::<String>("repo", &d));
            }
            Ok(Response::new("processed".to_owned()))
        }
    });
    let svc = RateLimitLayer::per_client_ip(per_ip, TrustedProxies::none()).layer(handler);
    let ip = [192, 0, 2, 1];
    assert_eq!(
        svc.clone().oneshot(req(ip, "/o/r")).await.unwrap().status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        let r = svc.clone().oneshot(req(ip, "/o/r")).await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&r, "retry-after"), "60");
    }
    assert_eq!(
        svc.clone()
            .oneshot(req(ip, "/o/other"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_a_key_are_not_limited() {
    let clock = ManualClock::new();
    let l = limiter("ip", 1, Duration::from_secs(60), &clock);
    let svc = RateLimitLayer::per_client_ip(l.clone(), TrustedProxies::none()).layer(ok_service());
    for _ in 0..3 {
        let r = svc
            .clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("x-ratelimit-limit").is_none());
    }
    assert_eq!(l.stats().allowed, 0);
}
