//! The running process: its listeners, the configuration generation in force, reload,
//! and the two ways to stop (fast and graceful).
//!
//! A generation is an immutable `Arc<Config>`. Each request takes the current one when
//! it starts and keeps it to the end, so a reload swaps the pointer atomically and
//! requests in flight finish on the configuration they began with. Listeners are keyed
//! by their configured address: a reload keeps the sockets of addresses that stay,
//! binds new ones before swapping (a bind failure refuses the reload), and closes the
//! ones that went away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{self, Config};

/// Where a configuration comes from, so a reload can read it again.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file, and the prefix its relative paths resolve against (`-p`).
    File { path: PathBuf, prefix: PathBuf },
    /// Embedded text (dev mode): name for messages, text, prefix for relative paths.
    Text {
        name: String,
        text: String,
        prefix: PathBuf,
    },
}

impl Source {
    pub fn load(&self) -> Result<Config, Vec<String>> {
        match self {
            Source::File { path, prefix } => match std::fs::read_to_string(path) {
                Ok(text) => config::load_str(&text, &path.display().to_string(), prefix.clone()),
                Err(e) => Err(vec![format!("open() \"{}\" failed ({e})", path.display())]),
            },
            Source::Text { name, text, prefix } => config::load_str(text, name, prefix.clone()),
        }
    }
}

#[derive(Debug)]
pub struct Generation {
    /// 0 for the configuration the process started with, +1 per reload.
    pub number: u64,
    pub config: Config,
    pub loaded: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// Finish requests in flight, then exit.
    Graceful,
    /// Exit now.
    Fast,
}

struct ListenerHandle {
    bound: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

pub struct Runtime {
    pub current: ArcSwap<Generation>,
    /// This process's cluster node (`None` in tests that run the proxy alone).
    pub node: Option<Arc<crate::cluster::Node>>,
    source: Source,
    listeners: Mutex<HashMap<SocketAddr, ListenerHandle>>,
    pub stop: watch::Sender<Stop>,
    pub conn_serial: AtomicU64,
    /// Connections open now; graceful stop waits for this to reach zero.
    pub open_conns: AtomicUsize,
    reload_lock: tokio::sync::Mutex<()>,
    /// This node's counters for the API; they outlive reloads.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Runtime {
    /// Binds every listener of `config` and starts accepting.
    pub async fn start(config: Config, source: Source) -> std::io::Result<Arc<Runtime>> {
        Self::start_with(config, source, None).await
    }

    /// Starts with a cluster node behind the API and the replicated state.
    pub async fn start_with(
        config: Config,
        source: Source,
        node: Option<Arc<crate::cluster::Node>>,
    ) -> std::io::Result<Arc<Runtime>> {
        let mut config = config;
        if let Some(n) = &node {
            crate::cluster::sessions::start(n.clone());
        }
        let metrics = Arc::<crate::metrics::Metrics>::default();
        prepare(&mut config, None, &metrics, node.as_deref());
        let (stop, _) = watch::channel(Stop::Running);
        let rt = Arc::new(Runtime {
            node,
            current: ArcSwap::from_pointee(Generation {
                number: 0,
                config,
                loaded: SystemTime::now(),
            }),
            source,
            listeners: Mutex::new(HashMap::new()),
            stop,
            conn_serial: AtomicU64::new(0),
            open_conns: AtomicUsize::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
            metrics,
        });
        let wanted = listen_addrs(&rt.current.load().config);
        let mut bound = Vec::new();
        for (addr, backlog, reuseport) in wanted {
            let l = bind(addr, backlog, reuseport)?;
            bound.push((addr, l));
        }
        for (addr, l) in bound {
            rt.clone().serve(addr, l);
        }
        Ok(rt)
    }

    fn serve(self: Arc<Self>, key: SocketAddr, l: TcpListener) {
        let bound = l.local_addr().unwrap_or(key);
        let rt = self.clone();
        let task = tokio::spawn(async move { crate::http::server::accept_loop(rt, key, l).await });
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, ListenerHandle { bound, task });
    }

    /// `(configured, actually bound)` for every listener; they differ for port 0.
    pub fn bound(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let mut v: Vec<_> = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, h)| (*k, h.bound))
            .collect();
        v.sort();
        v
    }

    /// Re-reads the configuration and swaps it in, or keeps the old one and returns
    /// every error of the new one.
    pub async fn reload(self: &Arc<Self>) -> Result<u64, Vec<String>> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let mut config = self.source.load()?;
        prepare(
            &mut config,
            Some(&self.current.load().config),
            &self.metrics,
            self.node.as_deref(),
        );
        let wanted = listen_addrs(&config);
        let mut fresh = Vec::new();
        {
            let have = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            for (addr, backlog, reuseport) in &wanted {
                if !have.contains_key(addr) {
                    match bind(*addr, *backlog, *reuseport) {
                        Ok(l) => fresh.push((*addr, l)),
                        Err(e) => return Err(vec![format!("bind() to {addr} failed ({e})")]),
                    }
                }
            }
        }
        if let Err(e) =
            crate::log::configure(config.main.error_log.as_deref(), config.main.error_level)
        {
            crate::log_error!("cannot reopen the error log: {e}");
        }
        if let Some(node) = self.node.as_ref() {
            crate::cluster::configure(node.clone(), config.cluster_commands());
        }
        let number = self.current.load().number + 1;
        self.current.store(Arc::new(Generation {
            number,
            config,
            loaded: SystemTime::now(),
        }));
        for (addr, l) in fresh {
            self.clone().serve(addr, l);
        }
        let keep: Vec<SocketAddr> = wanted.iter().map(|w| w.0).collect();
        let mut have = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        have.retain(|addr, h| {
            let stays = keep.contains(addr);
            if !stays {
                h.task.abort();
            }
            stays
        });
        Ok(number)
    }

    pub fn request_stop(&self, how: Stop) {
        self.stop.send_replace(how);
        if how != Stop::Running {
            let mut have = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            for (_, h) in have.drain() {
                h.task.abort();
            }
        }
    }

    /// Waits until a stop was requested and, for a graceful one, until every
    /// connection has closed.
    pub async fn stopped(&self) -> Stop {
        let mut rx = self.stop.subscribe();
        let how = loop {
            let v = *rx.borrow_and_update();
            if v != Stop::Running {
                break v;
            }
            if rx.changed().await.is_err() {
                break Stop::Fast;
            }
        };
        if how == Stop::Graceful {
            while self.open_conns.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        how
    }
}

/// Readies a configuration before it goes live: its server zones take over the counters
/// of zones already counted, its upstream groups the live state of the groups they
/// replace, and zone-backed groups start from the replicated server list if the log has
/// one (so no request sees the configuration's list after the cluster changed it).
fn prepare(
    config: &mut Config,
    old: Option<&Config>,
    metrics: &crate::metrics::Metrics,
    node: Option<&crate::cluster::Node>,
) {
    let Some(http) = config.http.as_mut() else {
        return;
    };
    match Arc::get_mut(http) {
        Some(h) => {
            for (name, stats) in h.status_zones.iter_mut() {
                *stats = metrics.zone(name);
            }
        }
        None => crate::log_error!("status zones cannot be bound: the configuration is shared"),
    }
    let old = old.and_then(|c| c.http.as_ref());
    let state = node.map(|n| n.reader.load());
    for (name, group) in &http.upstreams {
        if let Some(previous) = old.and_then(|o| o.upstreams.get(name)) {
            group.adopt(previous);
        }
        if let Some(s) = &state {
            group.follow(s.state());
        }
    }
}

fn listen_addrs(c: &Config) -> Vec<(SocketAddr, Option<i32>, bool)> {
    c.http
        .as_ref()
        .map(|h| {
            h.listens
                .iter()
                .map(|l| (l.addr, l.backlog, l.reuseport))
                .collect()
        })
        .unwrap_or_default()
}

fn bind(addr: SocketAddr, backlog: Option<i32>, reuseport: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if reuseport {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog.unwrap_or(511))?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
}
