//! Sticky sessions and drain flags under faults, and the check that every node agrees
//! on them once the faults stop (DESIGN.md §3: one replicated state, the same on every
//! node).
//!
//! The cluster proxies `/` to three backends of the harness through an upstream with
//! `sticky learn`; each backend answers with its name and echoes (or hands out) a `sid`
//! cookie. While faults run, a sticky client opens and revisits sessions through random
//! nodes, and a drain client drains and undrains one server at a time through the API
//! of random nodes. Afterwards every node must name the same servers as draining, and
//! route every session to the same backend.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::history::Nodes;

const UPSTREAM: &str = "backend";

/// Three backends on free loopback ports, answering until the process ends.
pub struct Backends {
    pub addrs: Vec<SocketAddr>,
}

impl Backends {
    pub fn start() -> Backends {
        let addrs = (0..3)
            .map(|i| {
                let l = TcpListener::bind("127.0.0.1:0").expect("backend port");
                let a = l.local_addr().expect("backend addr");
                std::thread::spawn(move || {
                    let mut next = 0u64;
                    for s in l.incoming().flatten() {
                        next += 1;
                        let fresh = format!("b{i}s{next}");
                        std::thread::spawn(move || serve(s, i, &fresh));
                    }
                });
                a
            })
            .collect();
        Backends { addrs }
    }

    /// The `http {}` directives: the sticky upstream.
    pub fn http_conf(&self) -> String {
        let servers: String = self
            .addrs
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        format!(
            "    upstream {UPSTREAM} {{\n        zone {UPSTREAM} 64k;\n{servers}        sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=sessions:4m timeout=1h;\n    }}\n"
        )
    }

    /// The API server's directives: `/` goes to the upstream.
    pub fn server_conf() -> String {
        format!("        location / {{ proxy_pass http://{UPSTREAM}; }}\n")
    }
}

/// One request: the backend's name is the body, the session is the request's `sid`
/// cookie or a fresh one.
fn serve(mut s: TcpStream, i: usize, fresh: &str) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req);
    let sid = cookie(&text).unwrap_or_else(|| fresh.to_string());
    let body = format!("b{i}");
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nSet-Cookie: sid={sid}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The `sid` cookie of a request's headers.
fn cookie(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("sid="))
        .map(str::to_string)
        .next()
}

/// `GET /` through `node` with the session's cookie: (backend, session).
pub fn get(node: SocketAddr, sid: Option<&str>) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&node, Duration::from_secs(2)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let cookie = sid.map_or(String::new(), |v| format!("Cookie: sid={v}\r\n"));
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: t\r\n{cookie}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let sid = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().strip_prefix("sid="))
        .map(|v| v.split(';').next().unwrap_or(v).to_string())
        .next()?;
    Some((body.to_string(), sid))
}

/// The sticky client and the drain client, running until [`Traffic::finish`].
pub struct Traffic {
    stop: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    pub fn start(nodes: &Nodes, seed: u64) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sessions: Arc<Mutex<Vec<String>>> = Arc::default();
        let sticky = {
            let (stop, sessions, nodes) = (stop.clone(), sessions.clone(), nodes.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
                while !stop.load(Ordering::Relaxed) {
                    let Some(node) = nodes.pick(&mut rng) else {
                        return;
                    };
                    let known = sessions.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let revisit = (!known.is_empty() && rng.u8(..10) < 7)
                        .then(|| known[rng.usize(..known.len())].clone());
                    if let (None, Some((_, sid))) = (&revisit, get(node, revisit.as_deref())) {
                        sessions.lock().unwrap_or_else(|e| e.into_inner()).push(sid);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let drain = {
            let (stop, nodes) = (stop.clone(), nodes.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ 0xd4a1);
                // At most one server drains at a time: drain one, then undrain it.
                let mut drained: Option<usize> = None;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let Some(node) = nodes.pick(&mut rng) else {
                        return;
                    };
                    let (id, on) = match drained {
                        Some(id) => (id, false),
                        None => (rng.usize(..3), true),
                    };
                    let path = format!("/api/2/http/upstreams/{UPSTREAM}/servers/{id}");
                    let body = format!("{{\"drain\":{on}}}");
                    let r = crate::call_with(node, "PATCH", &path, &body, Duration::from_secs(3));
                    if let Ok((200, _)) = r {
                        drained = on.then_some(id);
                    }
                }
            })
        };
        Traffic {
            stop,
            sessions,
            threads: vec![sticky, drain],
        }
    }

    /// Stops both clients; the sessions the sticky client opened.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.clone()
    }
}

/// What the nodes agreed on after the faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agreement {
    pub sessions_checked: usize,
    /// Sessions that two nodes routed to different backends (must be none), with what
    /// each node answered.
    pub sessions_split: Vec<String>,
    /// Whether every node names the same servers as draining (and down).
    pub drain_agrees: bool,
}

impl Agreement {
    pub fn holds(&self) -> bool {
        self.sessions_split.is_empty() && self.drain_agrees
    }
}

/// Each server's `(id, drain, down)` as `node` reports them.
fn flags(node: SocketAddr) -> Option<Vec<(u64, bool, bool)>> {
    let path = format!("/api/2/http/upstreams/{UPSTREAM}/servers");
    let (status, body) = crate::call_with(node, "GET", &path, "", Duration::from_secs(3)).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut out: Vec<(u64, bool, bool)> = v
        .as_array()?
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap_or(u64::MAX),
                s["drain"].as_bool().unwrap_or(false),
                s["down"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort_unstable();
    Some(out)
}

/// This node's applied index, from `GET /api/2/cluster`.
fn applied(node: SocketAddr) -> Option<u64> {
    let (status, body) =
        crate::call_with(node, "GET", "/api/2/cluster", "", Duration::from_secs(3)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200)
        .then(|| v["applied_index"].as_u64())
        .flatten()
}

/// Waits until every node has applied the same index, twice in a row 300 ms apart:
/// nothing is in flight any more.
fn settled(nodes: &[SocketAddr]) -> bool {
    let same = || {
        let a: Vec<Option<u64>> = nodes.iter().map(|n| applied(*n)).collect();
        (a[0].is_some() && a.iter().all(|x| *x == a[0])).then_some(a[0])
    };
    crate::eventually(Duration::from_secs(15), || {
        let Some(first) = same() else { return false };
        std::thread::sleep(Duration::from_millis(300));
        same() == Some(first)
    })
}

/// Checks agreement across `nodes` (all up, the faults over): the drain flags, then up
/// to `limit` sessions. Each session is first visited through the first node, which
/// learns it again if the faults lost it; once every node has applied the same index,
/// every node must route it to the same backend.
pub fn check(nodes: &[SocketAddr], sessions: &[String], limit: usize) -> Agreement {
    let drain_agrees = crate::eventually(Duration::from_secs(10), || {
        let all: Vec<_> = nodes.iter().map(|n| flags(*n)).collect();
        all.iter().all(|f| f.is_some() && *f == all[0])
    });
    let step = (sessions.len() / limit.max(1)).max(1);
    let sample: Vec<&String> = sessions
        .iter()
        .step_by(step)
        .take(limit)
        .filter(|sid| get(nodes[0], Some(sid)).is_some())
        .collect();
    let mut a = Agreement {
        drain_agrees,
        ..Agreement::default()
    };
    if !settled(nodes) {
        a.sessions_split
            .push("the nodes never applied the same index".into());
        return a;
    }
    for sid in sample {
        let seen: Vec<String> = nodes
            .iter()
            .map(|n| get(*n, Some(sid)).map_or("-".into(), |(b, _)| b))
            .collect();
        a.sessions_checked += 1;
        if seen.iter().any(|b| *b != seen[0] || b == "-") {
            a.sessions_split.push(format!("{sid}: {}", seen.join(" ")));
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_other_cookies() {
        let head = "GET / HTTP/1.1\r\nHost: t\r\nCookie: a=1; sid=b2s7; z=2\r\n";
        assert_eq!(cookie(head).as_deref(), Some("b2s7"));
        assert_eq!(cookie("GET / HTTP/1.1\r\nCookie: sidx=1\r\n"), None);
    }

    #[test]
    fn a_backend_hands_out_a_session_and_keeps_the_one_it_is_given() {
        let b = Backends::start();
        let (name, sid) = get(b.addrs[1], None).expect("answer");
        assert_eq!(name, "b1");
        assert!(sid.starts_with("b1s"), "{sid}");
        let (_, again) = get(b.addrs[2], Some(&sid)).expect("answer");
        assert_eq!(again, sid);
    }
}
