//! A cluster of real `raftgate` processes on loopback, for tests and failover runs.
//!
//! Each member has its own directory (config, data dir, error log), its own HTTP port
//! serving the API, and a Raft port; they share the `peer` lines of the initial members.
//! The harness drives them only the way an operator can — signals and the public HTTP
//! API — and waits on what the API shows, never on fixed sleeps. A harness that panics
//! prints the tail of every member's error log, so a failed CI run says what the nodes saw.

pub mod agreement;
pub mod checker;
pub mod faults;
pub mod history;
pub mod probe;
pub mod scenario;
pub mod schedule;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the members' configuration contains besides the `cluster` block.
#[derive(Debug, Clone)]
pub struct Options {
    /// Initial members.
    pub nodes: u64,
    /// `snapshot_entries` in the `cluster` block, when set.
    pub snapshot_entries: Option<u64>,
    /// Directives inside `http {}` before the API server (e.g. `keyval_zone`).
    pub http: String,
    /// Directives inside the API server after `location /api` (e.g. a proxied location).
    pub server: String,
    /// Blocks in the main context after `http {}` (e.g. `stream {}`).
    pub main: String,
    /// Put a [`faults::LinkProxy`] in front of every node's Raft port (node N then
    /// listens on `127.0.0.N`), so that links can be cut and slowed.
    pub link_faults: bool,
    /// Put each member's data directory on a tmpfs of this many MiB (needs root, see
    /// [`faults::can_mount_tmpfs`]), so that its disk can be filled.
    pub data_tmpfs_mib: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            snapshot_entries: None,
            http: "keyval_zone zone=one:1m;\n".to_string(),
            server: String::new(),
            main: String::new(),
            link_faults: false,
            data_tmpfs_mib: None,
        }
    }
}

pub struct Member {
    pub id: u64,
    pub http: SocketAddr,
    pub raft: SocketAddr,
    /// Where peers dial it: its link proxy with `link_faults`, else `raft`.
    pub dial: SocketAddr,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    options: Options,
    /// The `peer` lines of the initial members.
    peers: String,
    pub members: Vec<Member>,
    /// With `link_faults`: each member's proxy, by member index.
    proxies: Vec<Option<faults::LinkProxy>>,
}

/// Member `id`'s Raft listen address, and its proxy with `faults`: then the member
/// listens on `127.0.0.id` (so its outgoing connections come from there too).
fn raft_addr(id: u64, faults: bool) -> (SocketAddr, Option<faults::LinkProxy>) {
    if !faults {
        return (free_addr(), None);
    }
    let ip = std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(id).expect("at most 255 members"));
    let addr = std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on the member's loopback address");
    (addr, Some(faults::LinkProxy::start(addr)))
}

/// A loopback address with a port nobody holds right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

impl Cluster {
    /// Writes every initial member's configuration and starts them all at once.
    pub fn start(bin: impl Into<PathBuf>, options: Options) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "raftgate-cluster-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let faults = options.link_faults;
        let addrs: Vec<(SocketAddr, Option<faults::LinkProxy>)> = (1..=options.nodes)
            .map(|id| raft_addr(id, faults))
            .collect();
        let peers = addrs
            .iter()
            .enumerate()
            .map(|(i, (a, p))| {
                let dial = p.as_ref().map_or(*a, |p| p.addr);
                format!("    peer {} {dial};\n", i + 1)
            })
            .collect();
        let mut c = Cluster {
            bin: bin.into(),
            dir,
            options,
            peers,
            members: Vec::new(),
            proxies: Vec::new(),
        };
        for (i, (addr, proxy)) in addrs.into_iter().enumerate() {
            c.add_member_at(i as u64 + 1, addr, proxy);
        }
        for i in 0..c.members.len() {
            c.spawn(i);
        }
        c
    }

    fn add_member_at(
        &mut self,
        id: u64,
        raft: SocketAddr,
        proxy: Option<faults::LinkProxy>,
    ) -> usize {
        let dial = proxy.as_ref().map_or(raft, |p| p.addr);
        self.proxies.push(proxy);
        let http = free_addr();
        let dir = self.dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir).expect("member dir");
        let conf = dir.join("raftgate.conf");
        let snapshot = self
            .options
            .snapshot_entries
            .map(|n| format!("    snapshot_entries {n};\n"))
            .unwrap_or_default();
        let text = format!(
            "pid {d}/raftgate.pid;\nerror_log {d}/error.log info;\ncluster {{\n    node_id {id};\n    listen {raft};\n{peers}    data_dir {d}/data;\n{snapshot}}}\nevents {{}}\nhttp {{\n{extra}    server {{\n        listen {http};\n        location /api {{ api write=on; }}\n{server}    }}\n}}\n{main}",
            d = dir.display(),
            peers = self.peers,
            extra = self.options.http,
            server = self.options.server,
            main = self.options.main,
        );
        std::fs::write(&conf, text).expect("member config");
        if let Some(mib) = self.options.data_tmpfs_mib {
            faults::mount_tmpfs(&dir.join("data"), mib).expect("a tmpfs for the data directory");
        }
        self.members.push(Member {
            id,
            http,
            raft,
            dial,
            dir,
            conf,
            child: None,
            paused: false,
        });
        self.members.len() - 1
    }

    /// Starts a new node (the next id, not an initial member) that waits to be added
    /// through `POST /api/2/cluster/nodes`; returns its index.
    pub fn start_new_member(&mut self) -> usize {
        let id = self.members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let (addr, proxy) = raft_addr(id, self.options.link_faults);
        let i = self.add_member_at(id, addr, proxy);
        self.spawn(i);
        i
    }

    /// Starts (or restarts) member `i` from its directory.
    pub fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&m.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn raftgate");
        m.child = Some(child);
        m.paused = false;
    }

    /// Whether member `i` was running and has exited on its own; it is then marked
    /// stopped (so [`Cluster::spawn`] restarts it, as a supervisor would).
    pub fn exited(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        let gone = m
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if gone {
            m.child = None;
        }
        gone
    }

    /// kill -9 of member `i`.
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.paused = false;
    }

    #[allow(unsafe_code)]
    fn signal(&mut self, i: usize, sig: libc::c_int) {
        if let Some(pid) = self.members[i].pid() {
            // SAFETY: kill(2) with a pid this harness spawned and still holds.
            let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
            assert_eq!(r, 0, "kill({pid}, {sig})");
        }
    }

    /// Cuts every link between the members in `side` and the others, both ways (needs
    /// `link_faults`): a partition.
    pub fn partition(&self, side: &[usize]) {
        for a in 0..self.members.len() {
            for b in 0..self.members.len() {
                if side.contains(&a) != side.contains(&b) {
                    if let Some(p) = &self.proxies[b] {
                        p.cut(self.members[a].raft.ip());
                    }
                }
            }
        }
    }

    /// Heals every link: no cuts, no delays.
    pub fn heal(&self) {
        for p in self.proxies.iter().flatten() {
            p.heal_all();
        }
    }

    /// Every chunk member `i` exchanges with its peers waits `d`: on the connections
    /// peers open to it, and on those it opens to them (slow links).
    pub fn slow(&self, i: usize, d: Duration) {
        if let Some(p) = &self.proxies[i] {
            p.delay(d);
        }
        let ip = self.members[i].raft.ip();
        for (j, p) in self.proxies.iter().enumerate() {
            if let (true, Some(p)) = (j != i, p) {
                p.delay_from(ip, d);
            }
        }
    }

    /// Graceful stop of member `i` (SIGQUIT, as `raftgate -s quit`), waiting for it to exit.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGQUIT);
        if let Some(mut c) = self.members[i].child.take() {
            let exited = eventually(Duration::from_secs(20), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !exited {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The indexes of the members that are running and not paused.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].running() && !self.members[*i].paused)
            .collect()
    }

    /// SIGSTOP: the process holds its sockets but answers nothing.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.members[i].paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.members[i].paused = false;
    }

    /// Member `i`'s `GET /api/2/cluster`, if it answers within a few seconds.
    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let m = &self.members[i];
        if !m.running() || m.paused {
            return None;
        }
        match call_with(m.http, "GET", "/api/2/cluster", "", Duration::from_secs(3)) {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The index of the member every running, unpaused member names as leader, once
    /// they agree (or `None` after `limit`).
    pub fn leader(&self, limit: Duration) -> Option<usize> {
        let mut found = None;
        eventually(limit, || {
            let mut named = None;
            for (i, m) in self.members.iter().enumerate() {
                if !m.running() || m.paused {
                    continue;
                }
                let Some(l) = self.status(i).and_then(|s| s["leader"].as_u64()) else {
                    return false;
                };
                if named.is_some_and(|n| n != l) {
                    return false;
                }
                named = Some(l);
            }
            found = named.and_then(|id| self.members.iter().position(|m| m.id == id));
            found.is_some_and(|i| self.members[i].running() && !self.members[i].paused)
        });
        found
    }

    /// Waits until member `i` answers `GET path` with 200.
    pub fn wait_serving(&self, i: usize, path: &str, limit: Duration) -> bool {
        let addr = self.members[i].http;
        eventually(limit, || {
            call(addr, "GET", path, "").map(|r| r.0) == Ok(200)
        })
    }

    /// One API call through member `i`.
    pub fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        call(self.members[i].http, method, path, body)
    }

    /// The tail of member `i`'s error log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        tail(&self.members[i].dir.join("error.log"), lines)
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            self.kill9(i);
        }
        if std::thread::panicking() {
            for m in &self.members {
                eprintln!(
                    "--- node {} error log (tail) ---\n{}",
                    m.id,
                    tail(&m.dir.join("error.log"), 40)
                );
            }
        }
        // RAFTGATE_CLUSTER_KEEP=1 keeps every member's directory (config, data, log),
        // tmpfs data directories still mounted.
        if std::env::var_os("RAFTGATE_CLUSTER_KEEP").is_some() {
            eprintln!("kept the cluster's directories in {}", self.dir.display());
            return;
        }
        if self.options.data_tmpfs_mib.is_some() {
            for m in &self.members {
                faults::unmount(&m.dir.join("data"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body). Waits up to 15 s for
/// the answer (an API write waits at most ~8 s for its outcome).
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    call_with(addr, method, path, body, Duration::from_secs(15))
}

pub fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    match exchange(addr, method, path, body, timeout) {
        Exchange::Answer(status, body) => Ok((status, body)),
        Exchange::NotSent(e) => Err(format!("not sent: {e}")),
        Exchange::NoAnswer(e) => Err(format!("no answer: {e}")),
    }
}

/// What one HTTP/1.1 exchange gave. The difference between the first two is what a
/// history needs: a request never sent certainly changed nothing, one sent but not
/// answered may have.
#[derive(Debug)]
pub enum Exchange {
    NotSent(String),
    NoAnswer(String),
    Answer(u16, String),
}

/// One request on a fresh connection, each step bounded by `timeout`.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Exchange {
    let mut s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Exchange::NotSent(e.to_string()),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let _ = s.set_nodelay(true);
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        return Exchange::NoAnswer(e.to_string());
    }
    let mut out = String::new();
    if let Err(e) = s.read_to_string(&mut out) {
        return Exchange::NoAnswer(e.to_string());
    }
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    match (status, out.split_once("\r\n\r\n")) {
        (Some(status), Some((_, body))) => Exchange::Answer(status, body.to_string()),
        _ => Exchange::NoAnswer(format!("no status in {out:?}")),
    }
}

/// Polls `f` every 50 ms until it holds, up to `limit`.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
