//! The runtime state of an upstream group and the choice of a server for each attempt.
//!
//! Every balancing method follows the nginx module of the same name decision by decision
//! (`ngx_http_upstream_round_robin.c`, `_least_conn_module.c`, `_ip_hash_module.c`,
//! `_hash_module.c`, `_random_module.c`), so a configuration moved from nginx sends the same
//! clients and keys to the same servers, in the same smooth weighted order, with the same
//! passive-health timing. Where raftgate departs from nginx the code says so.
//!
//! One group is shared by all requests through an `Arc`. The balancing state (smooth round
//! robin weights, the random generator) sits behind one mutex per group, which is held only for
//! the few comparisons of a pick; everything the API reads is atomic so it never takes the lock.

/// The `upstream {}` directives (config side, maintained with the config parser).
pub mod build;
pub mod conf;
pub mod sticky;

mod balance;
mod hash;
mod peer;
mod random;
mod tried;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_follow;
#[cfg(test)]
mod tests_hash;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use conf::{Method, ServerConf, UpstreamConf};
use raftgate_raft::{ServerView, State as Replicated, UpstreamRef};

pub use peer::{Live, Peer, PeerGuard, PeerState, PeerStats};
pub use tried::Tried;

/// Weights are kept multiplied by this factor so that `slow_start` can ramp a weight of 1
/// through fractional values. Every nginx step (`+1` on recovery, `-weight/max_fails` on
/// failure) is applied as a whole multiple of it, so without slow start the sequence of
/// picks is exactly nginx's.
const WEIGHT_SCALE: i64 = 1000;

/// nginx gives up on a hash (and random) method after this many unusable candidates per
/// request and falls back to round robin.
const HASH_TRIES: u32 = 20;

/// Whether `backup` servers may be used with this method. nginx's `hash`, `ip_hash` and
/// `random` leave the BACKUP flag out of the server parameters they accept, so
/// `server ... backup;` in such a group is a configuration error there.
pub fn method_allows_backup(method: &Method) -> bool {
    matches!(method, Method::RoundRobin | Method::LeastConn)
}

/// Whether `slow_start` may be used with this method (NGINX Plus refuses it with `hash`,
/// `ip_hash` and `random`, whose choice does not go through effective weights).
pub fn method_allows_slow_start(method: &Method) -> bool {
    method_allows_backup(method)
}

/// What a request contributes to the choice.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectCtx<'a> {
    /// The client address for `ip_hash`; `None` (e.g. a unix socket client) hashes like
    /// nginx's pseudo address of three zero bytes.
    pub client_ip: Option<IpAddr>,
    /// The evaluated `hash` key; `None` or empty makes nginx fall back to round robin.
    pub hash_key: Option<&'a [u8]>,
}

/// Nothing in the group can take the attempt ("no live upstreams" in nginx's error log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoLivePeers;

impl fmt::Display for NoLivePeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no live upstreams")
    }
}

impl std::error::Error for NoLivePeers {}

/// A configured upstream group with its runtime state.
///
/// A group with a `zone` follows the replicated server list: [`Upstream::follow`] swaps in
/// a group rebuilt from the applied state whenever that list's revision moves, so a server
/// added, changed, drained or removed through the API on any node steers this node's
/// requests. Until the log has configured the upstream, the configuration's list serves.
pub struct Upstream {
    conf: UpstreamConf,
    group: ArcSwap<Group>,
    follow: Option<Follow>,
}

/// How a zone-backed group tracks the replicated list.
struct Follow {
    upstream: UpstreamRef,
    /// The revision the current group was built from; [`CONFIGURED`] while it is the
    /// configuration's own list.
    built: AtomicU64,
    rebuild: Mutex<()>,
    /// The names the configuration wrote for its addresses (the API's `name`).
    names: HashMap<SocketAddr, String>,
    /// Servers removed while requests were still using them (the API's `zombies`).
    zombies: Mutex<Vec<Arc<Live>>>,
}

const CONFIGURED: u64 = u64::MAX;

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.conf.name)
            .field("peers", &self.group.load().peers.len())
            .finish()
    }
}

impl Upstream {
    pub fn new(conf: UpstreamConf) -> Upstream {
        let servers = conf
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64, s.clone()))
            .collect();
        let group = Group::build(&conf.method, servers, None);
        let follow = conf.zone.as_ref().map(|_| Follow {
            upstream: UpstreamRef::http(conf.name.clone()),
            built: AtomicU64::new(CONFIGURED),
            rebuild: Mutex::new(()),
            names: conf
                .servers
                .iter()
                .map(|s| (s.addr, s.name.clone()))
                .collect(),
            zombies: Mutex::new(Vec::new()),
        });
        Upstream {
            conf,
            group: ArcSwap::from_pointee(group),
            follow,
        }
    }

    pub fn conf(&self) -> &UpstreamConf {
        &self.conf
    }

    /// Whether the group has a `zone`, so its servers are replicated state the API can
    /// change (NGINX Plus answers `UpstreamStatic` for the others).
    pub fn is_dynamic(&self) -> bool {
        self.follow.is_some()
    }

    /// Primaries first, then backups; `peers()[i].id == i`. A snapshot: a rebuild after
    /// it does not change the list returned.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        self.group.load().peers.clone()
    }

    /// The peer with the API id `server_id`.
    pub fn peer(&self, server_id: u64) -> Option<Arc<Peer>> {
        let g = self.group.load();
        g.peers.iter().find(|p| p.server_id == server_id).cloned()
    }

    /// When the group's clock began, as wall time: for the API's `selected` and
    /// `downstart`.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        let g = self.group.load();
        g.epoch_wall + at.saturating_duration_since(g.epoch)
    }

    /// Removed servers still serving requests (the API's `zombies`).
    pub fn zombies(&self) -> usize {
        let Some(f) = &self.follow else { return 0 };
        let mut z = f.zombies.lock().unwrap_or_else(|e| e.into_inner());
        z.retain(|l| l.active() > 0);
        z.len()
    }

    /// Rebuilds the group from the replicated list if that list changed since the last
    /// build. Cheap when nothing changed (one map lookup and a compare), so the proxy calls
    /// it before every pick and the API before every read.
    pub fn follow(&self, state: &Replicated) {
        let Some(f) = &self.follow else { return };
        let Some(revision) = state.upstream_revision(&f.upstream) else {
            return;
        };
        // Revisions only grow: a caller holding an older applied state than the last
        // build must not roll the group back to it.
        let current = |built: u64| built != CONFIGURED && built >= revision;
        if current(f.built.load(Ordering::Acquire)) {
            return;
        }
        let _one = f.rebuild.lock().unwrap_or_else(|e| e.into_inner());
        if current(f.built.load(Ordering::Acquire)) {
            return;
        }
        let views = state.upstream_servers(&f.upstream).unwrap_or_default();
        self.rebuild(f, &views);
        f.built.store(revision, Ordering::Release);
    }

    /// Takes over the live state (counters, health, connections in flight) of the group
    /// this one replaces at a reload, server by server where id and address agree.
    ///
    /// A group that followed the replicated list hands over that list (its ids are the
    /// log's, not configuration positions), so servers added through the API keep their
    /// state too; the caller then follows the applied state, which rebuilds with this
    /// configuration's names. Servers of the old group that the new one lacks and that
    /// still serve requests become zombies.
    pub fn adopt(&self, old: &Upstream) {
        let old_group = old.group.load_full();
        let followed = old
            .follow
            .as_ref()
            .is_some_and(|f| f.built.load(Ordering::Acquire) != CONFIGURED);
        let source = if followed && self.follow.is_some() {
            old_group.clone()
        } else {
            self.group.load_full()
        };
        let servers = source
            .peers
            .iter()
            .map(|p| (p.server_id, p.conf.clone()))
            .collect();
        let group = Group::build(&self.conf.method, servers, Some(&old_group));
        let mut gone: Vec<Arc<Live>> = old_group
            .peers
            .iter()
            .filter(|p| group.find(p.server_id, &p.conf.addr).is_none() && p.active() > 0)
            .map(|p| p.live().clone())
            .collect();
        self.group.store(Arc::new(group));
        if let Some(new) = &self.follow {
            let mut z = new.zombies.lock().unwrap_or_else(|e| e.into_inner());
            z.append(&mut gone);
            if let Some(old) = &old.follow {
                z.append(&mut old.zombies.lock().unwrap_or_else(|e| e.into_inner()));
            }
        }
    }

    /// The group as it is now, for all the attempts of one request: positions in a
    /// [`Tried`] set mean the same servers from the first attempt to the last, whatever
    /// rebuild happens meanwhile.
    pub fn pin(&self) -> Pinned<'_> {
        Pinned {
            upstream: self,
            group: self.group.load_full(),
        }
    }

    fn rebuild(&self, f: &Follow, views: &[ServerView]) {
        let old = self.group.load_full();
        let servers: Vec<(u64, ServerConf)> = views
            .iter()
            .filter_map(|v| {
                let conf = server_conf(v, &f.names);
                if conf.is_none() {
                    crate::log_error!(
                        "upstream \"{}\": server \"{}\" has no address to connect to",
                        self.conf.name,
                        v.spec.server
                    );
                }
                conf.map(|c| (v.id, c))
            })
            .collect();
        let group = Group::build(&self.conf.method, servers, Some(&old));
        let mut gone: Vec<Arc<Live>> = old
            .peers
            .iter()
            .filter(|p| group.find(p.server_id, &p.conf.addr).is_none())
            .filter(|p| p.active() > 0)
            .map(|p| p.live().clone())
            .collect();
        self.group.store(Arc::new(group));
        f.zombies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut gone);
    }

    /// `ConfigureUpstream` with this configuration's servers, for a group with a `zone`:
    /// one server per resolved address, in configuration order, so the log numbers them
    /// as the static group does.
    pub fn configure_command(&self) -> Option<raftgate_raft::Entry> {
        let f = self.follow.as_ref()?;
        let servers = self
            .conf
            .servers
            .iter()
            .map(|s| raftgate_raft::ServerSpec {
                server: s.addr.to_string(),
                service: None,
                weight: s.weight,
                max_conns: s.max_conns,
                max_fails: s.max_fails,
                fail_timeout_ms: u64::try_from(s.fail_timeout.as_millis()).unwrap_or(u64::MAX),
                slow_start_ms: u64::try_from(s.slow_start.as_millis()).unwrap_or(u64::MAX),
                route: s.route.clone(),
                backup: s.backup,
                down: s.down,
                drain: s.drain,
            })
            .collect();
        Some(raftgate_raft::Entry::Command(
            raftgate_raft::Command::ConfigureUpstream {
                upstream: f.upstream.clone(),
                servers,
            },
        ))
    }

    /// How many attempts one request may make before giving up (nginx's `peer.tries`: the
    /// servers not marked `down`, backups included, at least one). The proxy takes the smaller
    /// of this and `proxy_next_upstream_tries`.
    pub fn tries(&self) -> usize {
        self.pin().tries()
    }

    /// Pick a server for one attempt of a request.
    pub fn select(&self, ctx: &SelectCtx<'_>, tried: &mut Tried) -> Result<PeerGuard, NoLivePeers> {
        self.select_at(ctx, tried, Instant::now())
    }

    /// [`Upstream::select`] with the clock as a parameter, so passive-health timing can be
    /// tested without sleeping.
    pub fn select_at(
        &self,
        ctx: &SelectCtx<'_>,
        tried: &mut Tried,
        now: Instant,
    ) -> Result<PeerGuard, NoLivePeers> {
        self.group
            .load_full()
            .select(ctx, tried, now)
            .ok_or(NoLivePeers)
    }

    /// Use one particular server if it can take the attempt (for sessions bound by `sticky`).
    /// Unlike balancing, a draining server still accepts requests bound to it; `None` means
    /// the caller should balance instead, as NGINX Plus does when the bound server is down.
    pub fn select_bound(&self, id: usize, tried: &mut Tried, now: Instant) -> Option<PeerGuard> {
        self.pin().select_bound_at(id, tried, now)
    }

    /// Make `random` reproducible (tests, simulations).
    pub fn reseed(&self, seed: u64) {
        self.group.load().lock().rng.seed(seed);
    }
}

/// One request's view of a group (see [`Upstream::pin`]).
pub struct Pinned<'a> {
    upstream: &'a Upstream,
    group: Arc<Group>,
}

impl Pinned<'_> {
    pub fn conf(&self) -> &UpstreamConf {
        &self.upstream.conf
    }

    /// As [`Upstream::tries`], for this view.
    pub fn tries(&self) -> usize {
        let live = self.group.peers.iter().filter(|p| !p.is_down()).count();
        live.max(1)
    }

    /// The position of the server `sticky cookie`/`route` id `id` names.
    pub fn by_sticky_id(&self, id: &str) -> Option<usize> {
        self.group.peers.iter().position(|p| p.sticky_id == id)
    }

    /// The `sticky` id of the server at `position`.
    pub fn sticky_id(&self, position: usize) -> Option<String> {
        self.group.peers.get(position).map(|p| p.sticky_id.clone())
    }

    /// The address of the server at `position`, as sessions record it.
    pub fn addr(&self, position: usize) -> Option<String> {
        self.group
            .peers
            .get(position)
            .map(|p| p.conf.addr.to_string())
    }

    /// The position of the server at `addr` (as `SocketAddr` prints it, the way sessions
    /// record it); `None` for an address that is not one.
    pub fn by_addr(&self, addr: &str) -> Option<usize> {
        let addr: SocketAddr = addr.parse().ok()?;
        self.group.peers.iter().position(|p| p.conf.addr == addr)
    }

    /// As [`Upstream::select_bound`], on this view: the bound server if it can take the
    /// attempt, draining or not.
    pub fn select_bound(&self, id: usize, tried: &mut Tried) -> Option<PeerGuard> {
        self.select_bound_at(id, tried, Instant::now())
    }

    fn select_bound_at(&self, id: usize, tried: &mut Tried, now: Instant) -> Option<PeerGuard> {
        let peer = self.group.peers.get(id)?;
        let stamp = peer.stamp(now);
        let _state = self.group.lock();
        let usable =
            !tried.contains(id) && !peer.is_down() && !peer.failing(stamp) && !peer.is_full();
        usable.then(|| self.group.take(id, tried, stamp))
    }

    /// As [`Upstream::select`], on this view.
    pub fn select(&self, ctx: &SelectCtx<'_>, tried: &mut Tried) -> Result<PeerGuard, NoLivePeers> {
        self.group
            .select(ctx, tried, Instant::now())
            .ok_or(NoLivePeers)
    }
}

/// The balancing method with its arguments already resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RoundRobin,
    LeastConn,
    IpHash,
    Hash,
    ConsistentHash,
    Random,
    RandomTwo,
}

/// nginx's `current_weight` and `effective_weight`, both times [`WEIGHT_SCALE`].
#[derive(Debug, Clone, Copy)]
struct Weights {
    current: i64,
    effective: i64,
}

/// Everything a pick mutates; guarded by [`Group::state`].
struct State {
    weights: Vec<Weights>,
    rng: fastrand::Rng,
}

/// The shared part of an [`Upstream`], also held by every [`PeerGuard`] so an attempt can
/// report its outcome after the request that made it has moved on.
struct Group {
    peers: Vec<Arc<Peer>>,
    /// Number of non-backup peers; they occupy `peers[..primaries]`.
    primaries: usize,
    /// nginx's `peers->single`: one primary and no backups. Such a server is never marked
    /// failed, whatever `max_fails` says.
    single: bool,
    kind: Kind,
    /// Sum of the primaries' configured weights (nginx's `total_weight`).
    total_weight: u64,
    /// `random`: `ranges[i]` is the sum of the weights of primaries before `i`.
    ranges: Vec<u64>,
    /// `hash consistent`: sorted, deduplicated points and the server name each belongs to.
    ring: Vec<hash::Point>,
    /// `hash consistent`: the primaries carrying each server name, in configuration order.
    ring_members: Vec<Vec<usize>>,
    state: Mutex<State>,
    /// The origin of the peers' time stamps; a rebuilt group keeps its predecessor's, so
    /// the stamps in a carried-over [`Live`] keep their meaning.
    epoch: Instant,
    epoch_wall: SystemTime,
}

/// A replicated server as the data path connects to it, or `None` when its address is a
/// name (raftgate has no `resolver`, so the API refuses names; a log could still hold one
/// written by a node that resolved it).
fn server_conf(v: &ServerView, names: &HashMap<SocketAddr, String>) -> Option<ServerConf> {
    let addr: SocketAddr = v.spec.server.parse().ok()?;
    let s = &v.spec;
    Some(ServerConf {
        addr,
        name: names
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| s.server.clone()),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout: Duration::from_millis(s.fail_timeout_ms),
        backup: s.backup,
        down: s.down,
        drain: s.drain,
        max_conns: s.max_conns,
        slow_start: Duration::from_millis(s.slow_start_ms),
        route: s.route.clone(),
    })
}

impl Group {
    /// A group over `servers` (API id and parameters, in id order). A server that `prev`
    /// has too (same id and address) keeps its live state and its place in the smooth
    /// round robin, so a change to one server does not reset the others.
    fn build(method: &Method, servers: Vec<(u64, ServerConf)>, prev: Option<&Group>) -> Group {
        let epoch = prev.map_or_else(Instant::now, |g| g.epoch);
        let epoch_wall = SystemTime::now() - epoch.elapsed();
        let mut ordered: Vec<&(u64, ServerConf)> = servers.iter().filter(|s| !s.1.backup).collect();
        let primaries = ordered.len();
        ordered.extend(servers.iter().filter(|s| s.1.backup));
        let single = primaries == 1 && ordered.len() == 1;
        let peers: Vec<Arc<Peer>> = ordered
            .iter()
            .enumerate()
            .map(|(i, (sid, s))| {
                let live = prev
                    .and_then(|g| g.find(*sid, &s.addr))
                    .map(|p| p.live().clone())
                    .unwrap_or_default();
                Arc::new(Peer::new(i, *sid, s.clone(), single, epoch, live))
            })
            .collect();

        let kind = match method {
            Method::RoundRobin => Kind::RoundRobin,
            Method::LeastConn => Kind::LeastConn,
            Method::IpHash => Kind::IpHash,
            Method::Hash {
                consistent: false, ..
            } => Kind::Hash,
            Method::Hash {
                consistent: true, ..
            } => Kind::ConsistentHash,
            Method::Random { two: false } => Kind::Random,
            Method::Random { two: true } => Kind::RandomTwo,
        };

        let mut total_weight = 0;
        let mut ranges = Vec::with_capacity(primaries);
        for p in &peers[..primaries] {
            ranges.push(total_weight);
            total_weight += u64::from(p.weight);
        }
        let (ring, ring_members) = if kind == Kind::ConsistentHash {
            hash::build_ring(&peers[..primaries])
        } else {
            (Vec::new(), Vec::new())
        };
        let prev_weights = prev.map(|g| (g, g.lock().weights.clone()));
        let weights = peers
            .iter()
            .map(|p| {
                let full = i64::from(p.weight) * WEIGHT_SCALE;
                let kept = prev_weights
                    .as_ref()
                    .and_then(|(g, w)| g.find(p.server_id, &p.conf.addr).map(|old| w[old.id]));
                match kept {
                    Some(w) => Weights {
                        current: w.current,
                        effective: w.effective.min(full),
                    },
                    None => Weights {
                        current: 0,
                        effective: full,
                    },
                }
            })
            .collect();

        Group {
            peers,
            primaries,
            single,
            kind,
            total_weight,
            ranges,
            ring,
            ring_members,
            state: Mutex::new(State {
                weights,
                rng: fastrand::Rng::new(),
            }),
            epoch,
            epoch_wall,
        }
    }

    /// The server with API id `id` at `addr`, if this group has it.
    fn find(&self, id: u64, addr: &SocketAddr) -> Option<&Arc<Peer>> {
        self.peers
            .iter()
            .find(|p| p.server_id == id && p.conf.addr == *addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn select(
        self: &Arc<Self>,
        ctx: &SelectCtx<'_>,
        tried: &mut Tried,
        now: Instant,
    ) -> Option<PeerGuard> {
        let first = self.peers.first()?;
        let now = first.stamp(now);
        let key = ctx.hash_key.unwrap_or_default();
        let mut guard = self.lock();
        let st = &mut *guard;
        let id = match self.kind {
            Kind::RoundRobin => self.rr_get(st, tried, now),
            Kind::LeastConn => self.lc_get(st, tried, now),
            Kind::IpHash => self.ip_hash_get(st, ctx.client_ip, tried, now),
            Kind::Hash => self.hash_get(st, key, tried, now),
            Kind::ConsistentHash => self.chash_get(st, key, tried, now),
            Kind::Random => self.random_get(st, tried, now),
            Kind::RandomTwo => self.random2_get(st, tried, now),
        }?;
        Some(self.take(id, tried, now))
    }

    /// Commit a pick. Called with the state lock held so that `max_conns` cannot be overrun
    /// by two concurrent picks.
    fn take(self: &Arc<Self>, id: usize, tried: &mut Tried, now: u64) -> PeerGuard {
        let peer = &self.peers[id];
        tried.insert(id);
        peer.touch(now);
        peer.acquire();
        PeerGuard::new(Arc::clone(self), Arc::clone(peer))
    }

    /// nginx's `free` with `NGX_PEER_FAILED`.
    fn on_failure(&self, id: usize, now: Instant) {
        let peer = &self.peers[id];
        peer.stats().fails.fetch_add(1, Ordering::Relaxed);
        let stamp = peer.stamp(now);
        let mut st = self.lock();
        if self.single {
            peer.health().fails.store(0, Ordering::Relaxed);
            return;
        }
        let penalty = peer.record_failure(stamp);
        let w = &mut st.weights[id];
        w.effective = (w.effective - penalty * WEIGHT_SCALE).max(0);
    }

    /// nginx's `free` without `NGX_PEER_FAILED`: a success, or an attempt abandoned for a
    /// reason that says nothing about the server (client gone, 403/404 with next_upstream).
    fn on_success(&self, id: usize, now: Instant) {
        let peer = &self.peers[id];
        let stamp = peer.stamp(now);
        let _st = self.lock();
        if self.single {
            peer.health().fails.store(0, Ordering::Relaxed);
            return;
        }
        peer.record_success(stamp);
    }
}

/// Set once an attempt's outcome has been reported; later reports are ignored.
#[derive(Debug, Default)]
struct Reported(AtomicBool);

impl Reported {
    fn first(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}
