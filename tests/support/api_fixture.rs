//! What the process tests share: a 3-node cluster with a zone-backed upstream over two
//! real backends, a static group, a read-only API location and the dashboard location
//! (the API conformance and browser tests); backends that answer their name and may start
//! sessions; seed configurations checked with `raftgate -t`; raftgate processes killed on
//! drop.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftgate_cluster_tests::{Cluster, Options};

pub const BIN: &str = env!("CARGO_BIN_EXE_raftgate");
pub const READY: Duration = Duration::from_secs(30);

/// A backend that answers every request with its name, on its own thread.
pub fn backend(name: &'static str) -> SocketAddr {
    backend_with(name, None)
}

/// [`backend`] that, given a cookie name, also starts a session (`Set-Cookie:
/// COOKIE=NAME-N`) for every request that does not carry that cookie.
pub fn backend_with(name: &'static str, session_cookie: Option<&'static str>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let sessions = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let sessions = sessions.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
                let set = match session_cookie {
                    Some(c) if !head.contains(&format!("{c}=")) => {
                        let i = sessions.fetch_add(1, Ordering::Relaxed);
                        format!("Set-Cookie: {c}={name}-{i}; Path=/\r\n")
                    }
                    _ => String::new(),
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\n{set}Content-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    addr
}

/// `tests/seed-configs/NAME` after checking that `raftgate -t` accepts it unchanged.
pub fn seed(name: &str) -> String {
    let path = format!("{}/tests/seed-configs/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(BIN)
        .args(["-t", "-c", &path])
        .output()
        .expect("raftgate -t");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("test is successful"),
        "{name}: {said}"
    );
    std::fs::read_to_string(path).expect("seed")
}

/// raftgate processes started from configuration texts, killed (and their directory
/// removed) when dropped.
pub struct Procs {
    pub children: Vec<std::process::Child>,
    pub dir: PathBuf,
}

impl Procs {
    pub fn new(tag: &str) -> Procs {
        let dir = std::env::temp_dir().join(format!("raftgate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        Procs {
            children: Vec::new(),
            dir,
        }
    }

    /// Starts raftgate on `text` (written as `NAME.conf` here) with `extra` arguments;
    /// without `--data-dir` among them, its data goes to `NAME-data` here.
    pub fn spawn(&mut self, name: &str, text: &str, extra: &[String]) -> u32 {
        let conf = self.dir.join(format!("{name}.conf"));
        std::fs::write(&conf, text).expect("conf");
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("-c").arg(&conf).args(extra);
        if !extra.iter().any(|a| a == "--data-dir") {
            cmd.arg("--data-dir")
                .arg(self.dir.join(format!("{name}-data")));
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
