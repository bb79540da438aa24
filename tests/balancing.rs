//! Upstream groups over real sockets: distribution of every balancing method, passive
//! health, backup, down, max_conns, retries, timeouts and the 502/504 statuses.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

async fn count(a: std::net::SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in 0..n {
        let r = get(a, &format!("/k{i}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        *m.entry(r.backend().to_string()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_three_to_one_over_400_requests() {
    let b1 = backend("b1", Behave::Echo).await;
    let b2 = backend("b2", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {} weight=3; server {}; keepalive 4; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}",
        b1.addr, b2.addr
    );
    let g = start(&conf).await;
    let m = count(g.addr(), 400).await;
    assert_eq!((m["b1"], m["b2"]), (300, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_new_requests_to_the_idle_server() {
    let slow = backend("slow", Behave::Delay(Duration::from_millis(400))).await;
    let fast = backend("fast", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ least_conn; server {}; server {}; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        slow.addr, fast.addr
    );
    let g = start(&conf).await;
    let a = g.addr();
    // Occupy the slow server with two long requests, then everything else must go to fast.
    let mut hold = Vec::new();
    for _ in 0..2 {
        hold.push(tokio::spawn(async move { get(a, "/hold").await }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = slow.hits();
    let m = count(a, 20).await;
    assert_eq!(m.get("fast"), Some(&20), "{m:?}");
    assert_eq!(slow.hits(), before);
    for h in hold {
        h.await.expect("join");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_keeps_each_client_on_one_server() {
    let bs = [
        backend("b1", Behave::Echo).await,
        backend("b2", Behave::Echo).await,
        backend("b3", Behave::Echo).await,
    ];
    let conf = format!(
        "events {{}} http {{ upstream u {{ ip_hash; server {}; server {}; server {}; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        bs[0].addr, bs[1].addr, bs[2].addr
    );
    let g = start(&conf).await;
    let a = g.addr();
    let mut used = std::collections::HashSet::new();
    for c in 1..=12 {
        let src = format!("127.0.{c}.7");
        let first = get_from(a, &src, "/").await.backend().to_string();
        for _ in 0..4 {
            assert_eq!(
                get_from(a, &src, "/").await.backend(),
                first,
                "client {src} moved"
            );
        }
        // Same /24, same server: only the first three octets count.
        assert_eq!(
            get_from(a, &format!("127.0.{c}.200"), "/").await.backend(),
            first
        );
        used.insert(first);
    }
    assert!(used.len() >= 2, "12 networks all hashed to {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_moves_about_one_nth_of_keys_when_a_server_is_added() {
    let bs = [
        backend("b1", Behave::Echo).await,
        backend("b2", Behave::Echo).await,
        backend("b3", Behave::Echo).await,
        backend("b4", Behave::Echo).await,
    ];
    let conf = |n: usize| {
        let servers: String = bs[..n]
            .iter()
            .map(|b| format!("server {};", b.addr))
            .collect();
        format!(
            "events {{}} http {{ upstream u {{ hash $arg_key consistent; {servers} }}
             server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}"
        )
    };
    let keys = 300;
    let mut before = Vec::new();
    {
        let g = start(&conf(3)).await;
        for k in 0..keys {
            before.push(
                get(g.addr(), &format!("/?key=user{k}"))
                    .await
                    .backend()
                    .to_string(),
            );
        }
        // stable
        for (k, want) in before.iter().enumerate().take(20) {
            assert_eq!(
                get(g.addr(), &format!("/?key=user{k}")).await.backend(),
                want
            );
        }
    }
    let g = start(&conf(4)).await;
    let mut moved = 0;
    for (k, old) in before.iter().enumerate() {
        let now = get(g.addr(), &format!("/?key=user{k}"))
            .await
            .backend()
            .to_string();
        if &now != old {
            moved += 1;
            assert_eq!(now, "b4", "a moved key must move to the new server");
        }
    }
    // Expect about 1/4 of the keys; allow ketama's spread.
    assert!(
        moved > keys / 10 && moved < keys * 4 / 10,
        "moved {moved} of {keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_two_and_plain_hash_distribute() {
    let bs = [
        backend("b1", Behave::Echo).await,
        backend("b2", Behave::Echo).await,
    ];
    for method in ["random two", "random", "hash $uri"] {
        let conf = format!(
            "events {{}} http {{ upstream u {{ {method}; server {}; server {}; }}
             server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
            bs[0].addr, bs[1].addr
        );
        let g = start(&conf).await;
        let m = count(g.addr(), 200).await;
        assert!(
            m.get("b1").copied().unwrap_or(0) > 40 && m.get("b2").copied().unwrap_or(0) > 40,
            "{method}: {m:?}"
        );
        if method.starts_with("hash") {
            for i in 0..10 {
                let p = format!("/k{i}");
                assert_eq!(
                    get(g.addr(), &p).await.backend(),
                    get(g.addr(), &p).await.backend()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_health_and_backup_failover() {
    let good = backend("good", Behave::Echo).await;
    let dead = backend("dead", Behave::Close).await;
    let spare = backend("spare", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {} max_fails=1 fail_timeout=30s; server {}; server {} backup; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        dead.addr, good.addr, spare.addr
    );
    let g = start(&conf).await;
    let a = g.addr();
    // The dead server fails once, the request is retried on the good one, and the dead
    // one is then out for fail_timeout: every request succeeds on "good".
    let m = count(a, 20).await;
    assert_eq!(m.get("good"), Some(&20), "{m:?}");
    assert_eq!(
        dead.hits(),
        1,
        "a failed server is not tried again within fail_timeout"
    );
    assert_eq!(spare.hits(), 0, "backup is not used while a primary works");
    drop(good);
    // Now every primary is unavailable: the backup takes over.
    let r = get(a, "/after").await;
    assert_eq!((r.status, r.backend()), (200, "spare"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_drain_and_no_live_upstreams() {
    let b1 = backend("b1", Behave::Echo).await;
    let b2 = backend("b2", Behave::Echo).await;
    let b3 = backend("b3", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {} down; server {} drain; server {}; }}
         upstream none {{ server {} down; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} location /none {{ proxy_pass http://none; }} }} }}",
        b1.addr, b2.addr, b3.addr, b1.addr
    );
    let g = start(&conf).await;
    let m = count(g.addr(), 10).await;
    assert_eq!(m.get("b3"), Some(&10));
    let r = get(g.addr(), "/none").await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("502 Bad Gateway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_limits_concurrent_requests_per_server() {
    let slow = backend("slow", Behave::Delay(Duration::from_millis(300))).await;
    let other = backend("other", Behave::Delay(Duration::from_millis(300))).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {} max_conns=1; server {} max_conns=1; }}
         server {{ listen 127.0.0.1:0; location / {{ proxy_pass http://u; }} }} }}",
        slow.addr, other.addr
    );
    let g = start(&conf).await;
    let a = g.addr();
    let mut hs = Vec::new();
    for _ in 0..3 {
        hs.push(tokio::spawn(async move { get(a, "/").await.status }));
    }
    let mut statuses = Vec::new();
    for h in hs {
        statuses.push(h.await.expect("join"));
    }
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 200, 502],
        "the third concurrent request finds both servers full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_give_504_and_next_upstream_retries_on_status() {
    let slow = backend("slow", Behave::Delay(Duration::from_secs(3))).await;
    let err = backend("err", Behave::Status(503)).await;
    let ok = backend("ok", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{
           upstream slowg {{ server {}; }}
           upstream retry {{ server {}; server {}; }}
           upstream noretry {{ server {}; server {}; }}
           server {{ listen 127.0.0.1:0;
             location /slow {{ proxy_read_timeout 200ms; proxy_pass http://slowg; }}
             location /retry {{ proxy_next_upstream error timeout http_503; proxy_pass http://retry; }}
             location /noretry {{ proxy_pass http://noretry; }}
             location /refused {{ proxy_connect_timeout 1s; proxy_pass http://127.0.0.1:1; }}
           }} }}",
        slow.addr, err.addr, ok.addr, err.addr, ok.addr
    );
    let g = start(&conf).await;
    let a = g.addr();
    let t = std::time::Instant::now();
    let r = get(a, "/slow").await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(2));
    for _ in 0..6 {
        let r = get(a, "/retry").await;
        assert_eq!(
            (r.status, r.backend()),
            (200, "ok"),
            "503 is retried on the next server"
        );
    }
    let statuses: Vec<u16> = futures_statuses(a, "/noretry", 4).await;
    assert!(
        statuses.contains(&503),
        "without http_503, the 503 is passed to the client: {statuses:?}"
    );
    assert_eq!(get(a, "/refused").await.status, 502);
}

async fn futures_statuses(a: std::net::SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(get(a, path).await.status);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_gets_408_not_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = backend("b", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{ upstream u {{ server {}; }}
         server {{ listen 127.0.0.1:0; client_body_timeout 300ms; location / {{ proxy_pass http://u; }} }} }}",
        b.addr
    );
    let g = start(&conf).await;
    let mut s = tokio::net::TcpStream::connect(g.addr())
        .await
        .expect("connect");
    s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_keepalive_reuses_connections_and_plain_proxying_does_not() {
    let pooled = backend("pooled", Behave::Echo).await;
    let plain = backend("plain", Behave::Echo).await;
    let conf = format!(
        "events {{}} http {{
           upstream kept {{ server {}; keepalive 4; }}
           upstream fresh {{ server {}; }}
           server {{ listen 127.0.0.1:0;
             location /kept {{ proxy_pass http://kept; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}
             location /fresh {{ proxy_pass http://fresh; }}
           }} }}",
        pooled.addr, plain.addr
    );
    let g = start(&conf).await;
    for i in 0..20 {
        assert_eq!(get(g.addr(), &format!("/kept/{i}")).await.status, 200);
        assert_eq!(get(g.addr(), &format!("/fresh/{i}")).await.status, 200);
    }
    assert_eq!(pooled.hits(), 20);
    assert_eq!(
        pooled.conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "sequential requests share one kept-alive connection"
    );
    assert_eq!(
        plain.conns.load(std::sync::atomic::Ordering::SeqCst),
        20,
        "without keepalive nginx opens one connection per request (HTTP/1.0, Connection: close)"
    );
}
