//! Three real `raftgate` processes on loopback, one configuration each (same `cluster`
//! block, own HTTP port), driven through the NGINX Plus keyvals API: what is written
//! through one node is read through every other right after the write returns, and
//! acknowledged writes survive the loss of the leader and restarts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Member {
    id: u64,
    http: SocketAddr,
    conf: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    dir: PathBuf,
    members: Vec<Member>,
}

impl Cluster {
    fn start(n: u64) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "raftgate-cp-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let raft: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers: String = raft
            .iter()
            .enumerate()
            .map(|(i, p)| format!("    peer {} 127.0.0.1:{p};\n", i + 1))
            .collect();
        let mut members = Vec::new();
        for id in 1..=n {
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let node_dir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let conf = node_dir.join("raftgate.conf");
            let text = format!(
                "pid {nd}/raftgate.pid;\nerror_log {nd}/error.log;\ncluster {{\n    node_id {id};\n    listen 127.0.0.1:{rp};\n{peers}    data_dir {nd}/data;\n}}\nevents {{}}\nhttp {{\n    keyval_zone zone=one:1m;\n    server {{\n        listen {http};\n        location /api {{ api write=on; }}\n    }}\n}}\n",
                nd = node_dir.display(),
                rp = raft[(id - 1) as usize],
            );
            std::fs::write(&conf, text).expect("conf");
            members.push(Member {
                id,
                http,
                conf,
                child: None,
            });
        }
        let mut c = Cluster { dir, members };
        for i in 0..c.members.len() {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        let child = Command::new(BIN)
            .arg("-c")
            .arg(&m.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        m.child = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Retries `f` until it holds (nodes starting, elections), up to `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn zone_path(m: &Member) -> (SocketAddr, &'static str) {
    (m.http, "/api/2/http/keyvals/one")
}

#[test]
fn a_key_written_through_any_node_is_read_through_every_other_at_once() {
    let c = Cluster::start(3);
    // The zone exists once the configuration's declaration is committed.
    for m in &c.members {
        assert!(
            eventually(Duration::from_secs(30), || call(
                m.http,
                "GET",
                "/api/2/http/keyvals/one",
                ""
            )
            .map(|r| r.0)
                == Ok(200)),
            "node {} never served the zone",
            m.id
        );
    }
    for (i, writer) in c.members.iter().enumerate() {
        let key = format!("k{i}");
        let (addr, path) = zone_path(writer);
        let (status, body) =
            call(addr, "POST", path, &format!("{{\"{key}\":\"v{i}\"}}")).expect("post");
        assert_eq!(status, 201, "POST through node {}: {body}", writer.id);
        for reader in &c.members {
            let (status, body) = call(
                reader.http,
                "GET",
                &format!("/api/2/http/keyvals/one?key={key}"),
                "",
            )
            .expect("get");
            assert_eq!(
                (status, body.as_str()),
                (200, &*format!("{{\"{key}\":\"v{i}\"}}")),
                "node {} reading what node {} wrote",
                reader.id,
                writer.id
            );
        }
    }
    // A second POST of the same key is refused on every node, as NGINX Plus does.
    let (status, body) = call(
        c.members[2].http,
        "POST",
        "/api/2/http/keyvals/one",
        "{\"k0\":\"x\"}",
    )
    .expect("post");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"KeyvalKeyExists\""), "{body}");
    // PATCH with null deletes everywhere (zone_sync never propagated deletes).
    assert_eq!(
        call(
            c.members[1].http,
            "PATCH",
            "/api/2/http/keyvals/one",
            "{\"k0\":null}"
        )
        .expect("patch")
        .0,
        204
    );
    let (status, _) = call(
        c.members[0].http,
        "GET",
        "/api/2/http/keyvals/one?key=k0",
        "",
    )
    .expect("get");
    assert_eq!(status, 404);
}

#[test]
fn acknowledged_writes_survive_kill_9_of_a_node_and_of_every_node() {
    let mut c = Cluster::start(3);
    for m in &c.members {
        assert!(eventually(Duration::from_secs(30), || call(
            m.http,
            "GET",
            "/api/2/http/keyvals/one",
            ""
        )
        .map(|r| r.0)
            == Ok(200)));
    }
    let mut acked: Vec<String> = Vec::new();
    let mut write = |c: &Cluster, via: usize, key: String| {
        if let Ok((201, _)) = call(
            c.members[via].http,
            "POST",
            "/api/2/http/keyvals/one",
            &format!("{{\"{key}\":\"1\"}}"),
        ) {
            acked.push(key);
        }
    };
    for i in 0..10 {
        write(&c, i % 3, format!("a{i}"));
    }
    // kill -9 one node at a time while writing through the others.
    c.kill9(0);
    for i in 0..20 {
        write(&c, 1 + i % 2, format!("b{i}"));
    }
    c.spawn(0);
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.spawn(i);
    }
    assert!(
        acked.len() >= 20,
        "only {} writes acknowledged",
        acked.len()
    );
    eprintln!(
        "{} writes acknowledged across kill -9 of one node, then of all three",
        acked.len()
    );
    for m in &c.members {
        assert!(eventually(Duration::from_secs(30), || call(
            m.http,
            "GET",
            "/api/2/http/keyvals/one",
            ""
        )
        .map(|r| r.0)
            == Ok(200)));
        let (_, body) = call(m.http, "GET", "/api/2/http/keyvals/one", "").expect("get");
        for k in &acked {
            assert!(
                body.contains(&format!("\"{k}\":\"1\"")),
                "acknowledged {k} lost on node {}: {body}",
                m.id
            );
        }
    }
}
