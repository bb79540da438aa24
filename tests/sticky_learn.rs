//! `sticky learn` on three real processes: a session learned through one node routes the
//! client's next requests to the same server through every node; a drained server keeps
//! its sessions' clients and gets no new ones; a restarted node has every session; sessions
//! expire on every node.

#[path = "support/api_fixture.rs"]
mod fixture;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::{BIN, READY};
use raftgate_cluster_tests::{eventually, Cluster, Options};

/// A backend that starts a session (`Set-Cookie: sid=NAME-N`) for a request without one,
/// and answers its name.
fn session_backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let n = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let n = n.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
                let cookie = if head.contains("sid=") {
                    String::new()
                } else {
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    format!("Set-Cookie: sid={name}-{i}; Path=/\r\n")
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\n{cookie}Content-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    addr
}

/// GET / through `addr` with an optional `sid` cookie: (backend, the session it set).
fn visit(addr: SocketAddr, sid: Option<&str>) -> (String, Option<String>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let cookie = sid
        .map(|v| format!("Cookie: sid={v}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: t\r\n{cookie}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let set = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: sid=")
                .or_else(|| l.strip_prefix("Set-Cookie: sid="))
        })
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    (body.to_string(), set)
}

fn start() -> Cluster {
    let (b1, b2, b3) = (
        session_backend("one"),
        session_backend("two"),
        session_backend("three"),
    );
    let c = Cluster::start(
        BIN,
        Options {
            http: format!(
                "upstream backend {{\n zone backend 64k;\n server {b1};\n server {b2};\n server {b3};\n \
                 sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=sessions:1m timeout=4s;\n}}\n"
            ),
            server: "        location / { proxy_pass http://backend; }\n".into(),
            ..Options::default()
        },
    );
    for i in 0..3 {
        assert!(
            c.wait_serving(i, "/api/2/slabs/sessions", READY),
            "node {}",
            i + 1
        );
    }
    c
}

fn slab_pages_used(c: &Cluster, i: usize) -> u64 {
    let (_, body) = c
        .call(i, "GET", "/api/2/slabs/sessions?consistency=local", "")
        .expect("slab");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["pages"]["used"].as_u64().expect("pages")
}

#[test]
fn sessions_learned_on_one_node_route_on_every_node_survive_drain_and_restart_and_expire() {
    let mut c = start();
    let http: Vec<SocketAddr> = c.members.iter().map(|m| m.http).collect();

    // Learned through node 1, routed identically through nodes 2 and 3.
    let mut clients = Vec::new();
    let mut lags = Vec::new();
    for _ in 0..12 {
        let (server, sid) = visit(http[0], None);
        let sid = sid.expect("the backend started a session");
        // Every node routes it within a commit latency (the data path never waits for
        // the learn to commit), then keeps doing so.
        let t = Instant::now();
        for &node in &http {
            assert!(
                eventually(Duration::from_secs(3), || visit(node, Some(&sid)).0
                    == server),
                "{node} never routed {sid} to {server}"
            );
        }
        lags.push(t.elapsed());
        for &node in &http {
            for _ in 0..2 {
                assert_eq!(visit(node, Some(&sid)).0, server, "{sid} through {node}");
            }
        }
        clients.push((sid, server));
    }
    lags.sort();
    eprintln!(
        "learned on node 1 -> routed on all nodes: max {:?}",
        lags.last()
    );
    let servers: std::collections::BTreeSet<&String> = clients.iter().map(|c| &c.1).collect();
    assert_eq!(servers.len(), 3, "new sessions are balanced: {clients:?}");

    // Drain, through node 2, the server of the first client: it keeps its clients (through
    // node 1) and gets no new ones.
    let (sid, drained) = clients[0].clone();
    let (_, list) = c
        .call(1, "GET", "/api/2/http/upstreams/backend/servers", "")
        .expect("servers");
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    let names = ["one", "two", "three"];
    let index = names
        .iter()
        .position(|n| *n == drained)
        .expect("a backend name");
    let id = list[index]["id"].as_u64().expect("id");
    let (status, body) = c
        .call(
            1,
            "PATCH",
            &format!("/api/2/http/upstreams/backend/servers/{id}"),
            r#"{"drain":true}"#,
        )
        .expect("drain");
    assert_eq!(status, 200, "{body}");
    assert!(eventually(Duration::from_secs(2), || {
        c.call(
            0,
            "GET",
            "/api/2/http/upstreams/backend?consistency=local",
            "",
        )
        .is_ok_and(|(_, b)| b.contains("draining"))
    }));
    for _ in 0..5 {
        assert_eq!(
            visit(http[0], Some(&sid)).0,
            drained,
            "a bound client left the draining server"
        );
        assert_ne!(
            visit(http[0], None).0,
            drained,
            "a new client reached the draining server"
        );
    }

    // kill -9 and restart node 3: every session is there.
    c.kill9(2);
    c.spawn(2);
    assert!(c.wait_serving(2, "/api/2/slabs/sessions", READY));
    let node3 = c.members[2].http;
    for (sid, server) in &clients {
        assert_eq!(
            &visit(node3, Some(sid)).0,
            server,
            "{sid} after the restart"
        );
    }

    // Idle past the 4 s timeout: the leader's expiry removes them, on every node.
    for i in 0..3 {
        assert!(slab_pages_used(&c, i) > 0);
    }
    for i in 0..3 {
        assert!(
            eventually(Duration::from_secs(15), || slab_pages_used(&c, i) == 0),
            "node {} kept expired sessions",
            i + 1
        );
    }
}
