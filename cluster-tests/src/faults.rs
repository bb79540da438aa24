//! Network faults between raftgate nodes on one machine, without privileges: a TCP proxy
//! in front of each node's Raft port.
//!
//! Peers dial the proxy, which forwards to the node. Each node listens for Raft on a
//! loopback address of its own (`127.0.0.N` for node N) and dials its peers from it
//! (raftgate binds its outgoing Raft connections to its listen address), so the proxy of
//! node B knows from a connection's source address that node A is dialling. That is what
//! makes faults per link possible:
//! - `cut(from)`: connections from `from` are refused, and the open ones are closed (a
//!   partition is `cut` both ways);
//! - `delay(d)`: every forwarded chunk waits `d` first (a slow link to this node);
//! - `delay_from(from, d)`: the same, for connections from `from` only.
//!
//! And a full disk: a member's data directory on a small tmpfs (which needs root), filled
//! with [`fill`] and freed with [`unfill`].

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Rules {
    cut: HashSet<IpAddr>,
    delay: Duration,
    delay_from: HashMap<IpAddr, Duration>,
}

impl Rules {
    fn delay(&self, from: IpAddr) -> Duration {
        self.delay_from
            .get(&from)
            .map_or(self.delay, |d| (*d).max(self.delay))
    }
}

/// An open forwarded connection: its source, and both sockets to close it with.
struct Open {
    from: IpAddr,
    client: TcpStream,
    server: TcpStream,
}

/// The proxy in front of one node.
pub struct LinkProxy {
    /// Where peers dial this node.
    pub addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    open: Arc<Mutex<Vec<Open>>>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LinkProxy {
    /// A proxy on a free loopback port, forwarding to `target`.
    pub fn start(target: SocketAddr) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let addr = listener.local_addr().expect("proxy addr");
        let rules = Arc::new(Mutex::new(Rules::default()));
        let open = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, o, s) = (rules.clone(), open.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let from = client
                    .peer_addr()
                    .map(|a| a.ip())
                    .unwrap_or([0, 0, 0, 0].into());
                if lock(&r).cut.contains(&from) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                if let (Ok(c), Ok(sv)) = (client.try_clone(), server.try_clone()) {
                    lock(&o).push(Open {
                        from,
                        client: c,
                        server: sv,
                    });
                }
                pump(&client, &server, from, r.clone());
                pump(&server, &client, from, r.clone());
            }
        });
        LinkProxy {
            addr,
            rules,
            open,
            stop,
        }
    }

    /// Refuses connections from `from` and closes the open ones.
    pub fn cut(&self, from: IpAddr) {
        lock(&self.rules).cut.insert(from);
        let mut open = lock(&self.open);
        open.retain(|c| {
            if c.from == from {
                let _ = c.client.shutdown(Shutdown::Both);
                let _ = c.server.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Lets `from` connect again.
    pub fn heal(&self, from: IpAddr) {
        lock(&self.rules).cut.remove(&from);
    }

    /// Lets everyone connect again, and removes any delay.
    pub fn heal_all(&self) {
        let mut r = lock(&self.rules);
        r.cut.clear();
        r.delay = Duration::ZERO;
        r.delay_from.clear();
    }

    /// Every chunk forwarded to or from this node waits `d` first.
    pub fn delay(&self, d: Duration) {
        lock(&self.rules).delay = d;
    }

    /// Every chunk forwarded on connections from `from` waits `d` first.
    pub fn delay_from(&self, from: IpAddr, d: Duration) {
        lock(&self.rules).delay_from.insert(from, d);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in lock(&self.open).drain(..) {
            let _ = c.client.shutdown(Shutdown::Both);
            let _ = c.server.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pump(from: &TcpStream, to: &TcpStream, source: IpAddr, rules: Arc<Mutex<Rules>>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = lock(&rules).delay(source);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN).
pub fn can_mount_tmpfs() -> bool {
    let dir = std::env::temp_dir().join(format!("raftgate-tmpfs-probe-{}", std::process::id()));
    let ok = std::fs::create_dir_all(&dir).is_ok() && mount_tmpfs(&dir, 1).is_ok();
    if ok {
        unmount(&dir);
    }
    let _ = std::fs::remove_dir(&dir);
    ok
}

/// Mounts a tmpfs of `mib` MiB on `dir` (created if missing).
pub fn mount_tmpfs(dir: &std::path::Path, mib: u64) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount -t tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn unmount(dir: &std::path::Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(dir)
        .output();
}

const FILLER: &str = "raftgate-cluster-tests.filler";

/// Fills the file system of `dir` to the last byte.
pub fn fill(dir: &std::path::Path) {
    let Ok(mut f) = std::fs::File::create(dir.join(FILLER)) else {
        return;
    };
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // The last partial chunk may have left room for a few bytes.
    let _ = f.write_all(&chunk[..1]);
    let _ = f.sync_all();
}

/// Frees what [`fill`] took.
pub fn unfill(dir: &std::path::Path) {
    let _ = std::fs::remove_file(dir.join(FILLER));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        a
    }

    fn round_trip(via: SocketAddr, from: &str) -> std::io::Result<String> {
        let sock = std::net::TcpStream::connect_timeout(&via, Duration::from_secs(1));
        // Bind the source address explicitly, as a node dialling from 127.0.0.N does.
        let mut s = match from {
            "127.0.0.1" => sock?,
            ip => {
                let socket = socket_from(ip)?;
                socket.connect_timeout(&via.into(), Duration::from_secs(1))?;
                socket.into()
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn socket_from(ip: &str) -> std::io::Result<socket2::Socket> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        let ip: IpAddr = ip.parse().expect("ip");
        s.bind(&SocketAddr::new(ip, 0).into())?;
        Ok(s)
    }

    #[test]
    fn a_cut_refuses_one_source_and_closes_its_open_connections_until_healed() {
        let p = LinkProxy::start(echo());
        assert_eq!(round_trip(p.addr, "127.0.0.2").expect("through"), "ping");
        // An open connection from .2 is closed by the cut.
        let open = socket_from("127.0.0.2").expect("socket");
        open.connect(&p.addr.into()).expect("connect");
        let mut open: TcpStream = open.into();
        open.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        open.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).expect("echoed before the cut");
        p.cut("127.0.0.2".parse().expect("ip"));
        let _ = open.write_all(b"ping");
        assert!(
            matches!(open.read(&mut buf), Ok(0) | Err(_)),
            "still open after the cut"
        );
        assert!(
            round_trip(p.addr, "127.0.0.2").is_err(),
            "a new connection got through"
        );
        assert_eq!(
            round_trip(p.addr, "127.0.0.3").expect("others pass"),
            "ping"
        );
        p.heal("127.0.0.2".parse().expect("ip"));
        assert_eq!(round_trip(p.addr, "127.0.0.2").expect("healed"), "ping");
        p.delay_from("127.0.0.3".parse().expect("ip"), Duration::from_millis(50));
        let t = std::time::Instant::now();
        assert_eq!(round_trip(p.addr, "127.0.0.3").expect("slow"), "ping");
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        assert_eq!(round_trip(p.addr, "127.0.0.2").expect("fast"), "ping");
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
        p.delay(Duration::from_millis(50));
        let t = std::time::Instant::now();
        assert_eq!(round_trip(p.addr, "127.0.0.2").expect("slow"), "ping");
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
    }
}
