//! `sticky cookie` and `sticky route` over real sockets: the cookie nginx sets and the
//! server it binds, routes, and a draining server that keeps its bound clients only.

mod common;

use bytes::Bytes;
use common::*;
use http::Request;

async fn get_with_cookie(a: std::net::SocketAddr, cookie: &str) -> Resp {
    send(
        a,
        Request::get("/")
            .header("host", "localhost")
            .header("cookie", cookie)
            .body(Bytes::new())
            .expect("request"),
    )
    .await
}

fn md5_of(addr: std::net::SocketAddr) -> String {
    use md5::{Digest, Md5};
    Md5::digest(addr.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_sets_nginx_cookie_and_binds_even_to_a_draining_server() {
    let b1 = backend("b1", Behave::Echo).await;
    let b2 = backend("b2", Behave::Echo).await;
    let b3 = backend("b3", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {}; server {} drain; server {} route=blue;
           sticky cookie srv_id expires=1h domain=.example.com path=/ httponly; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        b1.addr, b2.addr, b3.addr
    );
    let g = start(&conf).await;

    // Unbound: balanced over the servers that take new requests, with the cookie set.
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..4 {
        let r = get(g.addr(), "/").await;
        assert_eq!(r.status, 200);
        let cookie = r
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("srv_id="))
            .expect("the sticky cookie")
            .to_string();
        seen.insert(r.backend().to_string(), cookie);
    }
    assert_eq!(
        seen.len(),
        2,
        "the draining server took unbound requests: {seen:?}"
    );
    let c1 = &seen["b1"];
    assert!(
        c1.starts_with(&format!("srv_id={}; expires=", md5_of(b1.addr))),
        "{c1}"
    );
    assert!(
        c1.contains("; max-age=3600; domain=.example.com; path=/; httponly"),
        "{c1}"
    );
    assert!(
        seen["b3"].starts_with("srv_id=blue;"),
        "a route= names the server"
    );

    // Bound: every request goes to the cookie's server, and gets no new cookie.
    for _ in 0..5 {
        let r = get_with_cookie(g.addr(), &format!("a=1; srv_id={}", md5_of(b1.addr))).await;
        assert_eq!(r.backend(), "b1");
        assert!(r
            .header("set-cookie")
            .is_none_or(|c| !c.starts_with("srv_id")));
    }
    // Bound to the draining server: it still serves its clients.
    for _ in 0..3 {
        let r = get_with_cookie(g.addr(), &format!("srv_id={}", md5_of(b2.addr))).await;
        assert_eq!(r.backend(), "b2");
    }
    // A cookie naming no server is balanced, and re-set.
    let r = get_with_cookie(g.addr(), "srv_id=nonsense").await;
    assert_ne!(r.backend(), "b2");
    assert!(r.header("set-cookie").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_route_takes_the_first_non_empty_variable() {
    let b1 = backend("b1", Behave::Echo).await;
    let b2 = backend("b2", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {} route=a; server {} route=b;
           sticky route $cookie_route $arg_route; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        b1.addr, b2.addr
    );
    let g = start(&conf).await;
    for _ in 0..3 {
        assert_eq!(get(g.addr(), "/?route=b").await.backend(), "b2");
        assert_eq!(get(g.addr(), "/?route=a").await.backend(), "b1");
        assert_eq!(get_with_cookie(g.addr(), "route=b").await.backend(), "b2");
    }
}

#[test]
fn sticky_configuration_mistakes_are_reported_with_file_and_line() {
    let up = |sticky: &str| {
        format!(
            "events {{}}\nhttp {{\n upstream u {{\n  server 127.0.0.1:1;\n  {sticky}\n }}\n server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }}\n}}\n"
        )
    };
    for (line, want) in [
        ("sticky bogus;", "invalid sticky method \"bogus\""),
        ("sticky cookie;", "\"sticky cookie\" needs a cookie name"),
        (
            "sticky cookie a expires=soon;",
            "invalid parameter \"expires=soon\"",
        ),
        (
            "sticky route;",
            "invalid number of arguments in \"sticky route\"",
        ),
        (
            "sticky learn create=$upstream_cookie_a lookup=$cookie_a;",
            "\"zone\" parameter is missing in \"sticky learn\"",
        ),
        (
            "sticky learn lookup=$cookie_a zone=z:1m;",
            "\"create\" parameter is missing in \"sticky learn\"",
        ),
        (
            "sticky learn create=$upstream_cookie_a lookup=$cookie_a zone=z:1k;",
            "zone \"z\" is too small: at least 32k",
        ),
        (
            "sticky cookie a; sticky cookie b;",
            "\"sticky\" directive is duplicate",
        ),
    ] {
        let errors = load_errors(&up(line));
        assert_eq!(errors, [format!("test.conf:5: {want}")], "{line}");
    }
    assert!(load_errors(&up(
        "sticky learn create=$upstream_cookie_examplecookie lookup=$cookie_examplecookie zone=client_sessions:1m timeout=1h header sync;"
    ))
    .is_empty());
}
