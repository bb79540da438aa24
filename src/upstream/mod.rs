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

mod balance;
mod hash;
mod peer;
mod random;
mod tried;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hash;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use conf::{Method, ServerConf, UpstreamConf};

pub use peer::{Peer, PeerGuard, PeerState, PeerStats};
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
pub struct Upstream {
    conf: UpstreamConf,
    group: Arc<Group>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.conf.name)
            .field("peers", &self.group.peers.len())
            .finish()
    }
}

impl Upstream {
    pub fn new(conf: UpstreamConf) -> Upstream {
        let group = Arc::new(Group::new(&conf));
        Upstream { conf, group }
    }

    pub fn conf(&self) -> &UpstreamConf {
        &self.conf
    }

    /// Primaries first, then backups, each in configuration order; `peers()[i].id == i`.
    pub fn peers(&self) -> &[Arc<Peer>] {
        &self.group.peers
    }

    /// How many attempts one request may make before giving up (nginx's `peer.tries`: the
    /// servers not marked `down`, backups included, at least one). The proxy takes the smaller
    /// of this and `proxy_next_upstream_tries`.
    pub fn tries(&self) -> usize {
        let live = self.group.peers.iter().filter(|p| !p.is_down()).count();
        live.max(1)
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
        self.group.select(ctx, tried, now).ok_or(NoLivePeers)
    }

    /// Use one particular server if it can take the attempt (for sessions bound by `sticky`).
    /// Unlike balancing, a draining server still accepts requests bound to it; `None` means
    /// the caller should balance instead, as NGINX Plus does when the bound server is down.
    pub fn select_bound(&self, id: usize, tried: &mut Tried, now: Instant) -> Option<PeerGuard> {
        let group = &self.group;
        let peer = group.peers.get(id)?;
        let stamp = peer.stamp(now);
        let _state = group.lock();
        let usable =
            !tried.contains(id) && !peer.is_down() && !peer.failing(stamp) && !peer.is_full();
        usable.then(|| group.take(id, tried, stamp))
    }

    /// Make `random` reproducible (tests, simulations).
    pub fn reseed(&self, seed: u64) {
        self.group.lock().rng.seed(seed);
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
}

impl Group {
    fn new(conf: &UpstreamConf) -> Group {
        let epoch = Instant::now();
        let mut servers: Vec<&ServerConf> = conf.servers.iter().filter(|s| !s.backup).collect();
        let primaries = servers.len();
        servers.extend(conf.servers.iter().filter(|s| s.backup));
        let single = primaries == 1 && servers.len() == 1;
        let peers: Vec<Arc<Peer>> = servers
            .iter()
            .enumerate()
            .map(|(id, s)| Arc::new(Peer::new(id, (*s).clone(), single, epoch)))
            .collect();

        let kind = match &conf.method {
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
        let weights = peers
            .iter()
            .map(|p| Weights {
                current: 0,
                effective: i64::from(p.weight) * WEIGHT_SCALE,
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
        }
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
            peer.health.fails.store(0, Ordering::Relaxed);
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
            peer.health.fails.store(0, Ordering::Relaxed);
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
