//! A 3-node cluster with a zone-backed upstream over two real backends, a static group,
//! a read-only API location and the dashboard location: what the API conformance and
//! browser tests run against.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use raftgate_cluster_tests::{Cluster, Options};

pub const BIN: &str = env!("CARGO_BIN_EXE_raftgate");
pub const READY: Duration = Duration::from_secs(30);

/// A backend that answers every request with its name, on its own thread.
pub fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    addr
}

pub fn start() -> (Cluster, SocketAddr, SocketAddr) {
    let (b1, b2) = (backend("one"), backend("two"));
    let c = Cluster::start(
        BIN,
        Options {
            http: format!(
                "keyval_zone zone=one:1m;\n\
                 upstream backend {{ zone backend 64k; server {b1}; server {b2}; }}\n\
                 upstream plain {{ server {b1}; }}\n"
            ),
            server: "        status_zone front;\n\
                     location / { proxy_pass http://backend; }\n\
                     location /plain { proxy_pass http://plain; }\n\
                     location /ro/api { api; }\n\
                     location /denied/api { api write=on; allow 10.0.0.0/8; deny all; }\n\
                     location = /dashboard.html { root /nonexistent/raftgate; }\n"
                .into(),
            ..Options::default()
        },
    );
    for i in 0..3 {
        assert!(
            c.wait_serving(i, "/api/2/http/upstreams/backend/servers/", READY),
            "node {} never served the upstream",
            i + 1
        );
    }
    (c, b1, b2)
}
