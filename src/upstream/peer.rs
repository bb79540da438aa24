//! One server of a group: its configuration, live counters and passive-health state.
//!
//! Health is nginx's `fails` / `accessed` / `checked` triple. Timestamps are nanoseconds
//! since the group was built, plus one, so that 0 can mean "never" as nginx's zeroed
//! `time_t` does. They are atomics so the API reads them without the group lock, but every
//! read-modify-write of them happens under that lock, which keeps them mutually consistent.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conf::ServerConf;
use super::{Group, Reported, WEIGHT_SCALE};

/// A server's state as the NGINX Plus API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Up,
    Draining,
    Down,
    /// Temporarily out after `max_fails` failures within `fail_timeout`.
    Unavail,
}

impl PeerState {
    /// The spelling of the NGINX Plus API.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Draining => "draining",
            PeerState::Down => "down",
            PeerState::Unavail => "unavail",
        }
    }
}

/// Counters for the API. They only ever grow, so relaxed atomics are enough.
#[derive(Debug, Default)]
pub struct PeerStats {
    requests: AtomicU64,
    responses: [AtomicU64; 5],
    sent: AtomicU64,
    received: AtomicU64,
    pub(super) fails: AtomicU64,
    unavail: AtomicU64,
}

impl PeerStats {
    /// Requests sent to this server (see [`Peer::count_request`]).
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Responses of one class: `class` 1 for 1xx … 5 for 5xx; anything else counts 0.
    pub fn responses(&self, class: u8) -> u64 {
        match class {
            1..=5 => self.responses[usize::from(class - 1)].load(Relaxed),
            _ => 0,
        }
    }

    pub fn responses_total(&self) -> u64 {
        self.responses.iter().map(|r| r.load(Relaxed)).sum()
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// Failed attempts, ever (NGINX Plus `fails`), unlike [`Peer::fails`] which resets.
    pub fn fails(&self) -> u64 {
        self.fails.load(Relaxed)
    }

    /// How many times the server became unavailable by reaching `max_fails`.
    pub fn unavail(&self) -> u64 {
        self.unavail.load(Relaxed)
    }

    /// Count a response status from this server; statuses outside 100..=599 are ignored.
    pub fn record_response(&self, status: u16) {
        if let 100..=599 = status {
            self.responses[usize::from(status / 100 - 1)].fetch_add(1, Relaxed);
        }
    }

    pub fn add_sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Relaxed);
    }

    pub fn add_received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Relaxed);
    }
}

#[derive(Debug, Default)]
pub(super) struct Health {
    /// nginx's `fails`: failures since the last successful check.
    pub(super) fails: AtomicU32,
    /// When the last failure happened.
    accessed: AtomicU64,
    /// When the current `fail_timeout` window began.
    checked: AtomicU64,
    /// When the server came back from being unavailable; 0 when not ramping up.
    slow_start_from: AtomicU64,
}

#[derive(Debug)]
pub struct Peer {
    pub id: usize,
    pub conf: ServerConf,
    /// `conf.weight`, but at least 1: a zero weight would divide by zero in nginx's hashes.
    pub(super) weight: u32,
    fail_timeout: u64,
    /// Zero in a single-server group, where NGINX Plus ignores it.
    slow_start: u64,
    /// A single-server group never marks its server failed (nginx `peers->single`).
    single: bool,
    down: AtomicBool,
    drain: AtomicBool,
    active: AtomicU32,
    pub(super) health: Health,
    stats: PeerStats,
    epoch: Instant,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Time since `stamp`, where "never" is infinitely long ago.
fn since(stamp: u64, now: u64) -> u64 {
    if stamp == 0 {
        u64::MAX
    } else {
        now.saturating_sub(stamp)
    }
}

impl Peer {
    pub(super) fn new(id: usize, conf: ServerConf, single: bool, epoch: Instant) -> Peer {
        Peer {
            id,
            weight: conf.weight.max(1),
            fail_timeout: nanos(conf.fail_timeout),
            slow_start: if single { 0 } else { nanos(conf.slow_start) },
            single,
            down: AtomicBool::new(conf.down),
            drain: AtomicBool::new(conf.drain),
            active: AtomicU32::new(0),
            health: Health::default(),
            stats: PeerStats::default(),
            epoch,
            conf,
        }
    }

    /// Attempts in progress (nginx's `conns`).
    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    /// Failures counted towards `max_fails` right now.
    pub fn fails(&self) -> u32 {
        self.health.fails.load(Relaxed)
    }

    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// A request went out to this server. Counted by the proxy when it sends, not at
    /// selection, so attempts that never connected are not requests.
    pub fn count_request(&self) {
        self.stats.requests.fetch_add(1, Relaxed);
    }

    pub fn count_response(&self, status: u16) {
        self.stats.record_response(status);
    }

    pub fn add_sent(&self, bytes: u64) {
        self.stats.add_sent(bytes);
    }

    pub fn add_received(&self, bytes: u64) {
        self.stats.add_received(bytes);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.drain.load(Relaxed)
    }

    /// Runtime override of `down` (API and replicated state).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Relaxed);
    }

    /// Runtime override of `drain` (API and replicated state).
    pub fn set_drain(&self, drain: bool) {
        self.drain.store(drain, Relaxed);
    }

    /// Not `down` and not sitting out a `fail_timeout`. Draining and `max_conns` are not
    /// considered: a draining server still serves its bound sessions, and being full is
    /// momentary.
    pub fn is_available(&self, now: Instant) -> bool {
        !self.is_down() && !self.failing(self.stamp(now))
    }

    pub fn state(&self, now: Instant) -> PeerState {
        if self.is_down() {
            PeerState::Down
        } else if self.is_draining() {
            PeerState::Draining
        } else if self.failing(self.stamp(now)) {
            PeerState::Unavail
        } else {
            PeerState::Up
        }
    }

    pub(super) fn stamp(&self, now: Instant) -> u64 {
        let ns = nanos(now.saturating_duration_since(self.epoch));
        ns.saturating_add(1)
    }

    /// nginx: `max_fails && fails >= max_fails && now - checked <= fail_timeout`.
    pub(super) fn failing(&self, now: u64) -> bool {
        let max_fails = self.conf.max_fails;
        !self.single
            && max_fails > 0
            && self.health.fails.load(Relaxed) >= max_fails
            && since(self.health.checked.load(Relaxed), now) <= self.fail_timeout
    }

    pub(super) fn is_full(&self) -> bool {
        self.conf.max_conns > 0 && self.active() >= self.conf.max_conns
    }

    /// On selection, a new `fail_timeout` window begins if the last one is over. This is what
    /// lets exactly one request probe a server whose window has expired: the probe restarts
    /// the window, and only its success clears `fails`.
    pub(super) fn touch(&self, now: u64) {
        let checked = &self.health.checked;
        if since(checked.load(Relaxed), now) > self.fail_timeout {
            checked.store(now, Relaxed);
        }
    }

    pub(super) fn acquire(&self) {
        self.active.fetch_add(1, Relaxed);
    }

    /// The failure half of nginx's `free`. Returns how many whole weight units the effective
    /// weight loses (`weight / max_fails`).
    pub(super) fn record_failure(&self, now: u64) -> i64 {
        let h = &self.health;
        let before = h.fails.fetch_add(1, Relaxed);
        // A failure right after a new window began (accessed < checked) is a failed probe,
        // which starts a new period of unavailability even though `fails` was already high.
        let probe = h.accessed.load(Relaxed) < h.checked.load(Relaxed);
        h.accessed.store(now, Relaxed);
        h.checked.store(now, Relaxed);
        let max_fails = self.conf.max_fails;
        if max_fails == 0 {
            return 0;
        }
        if before + 1 >= max_fails && (before < max_fails || probe) {
            self.stats.unavail.fetch_add(1, Relaxed);
            h.slow_start_from.store(0, Relaxed);
        }
        i64::from(self.weight / max_fails)
    }

    /// The success half of nginx's `free`: "mark peer live if check passed".
    pub(super) fn record_success(&self, now: u64) {
        let h = &self.health;
        if h.accessed.load(Relaxed) < h.checked.load(Relaxed) {
            let fails = h.fails.swap(0, Relaxed);
            let max_fails = self.conf.max_fails;
            if self.slow_start > 0 && max_fails > 0 && fails >= max_fails {
                h.slow_start_from.store(now, Relaxed);
            }
        }
    }

    /// The weight smooth round robin and least_conn may use now, times [`WEIGHT_SCALE`].
    ///
    /// NGINX Plus `slow_start` ramps a recovered server's weight from zero to its nominal
    /// value; here the ramp is linear and caps the effective weight, never below one scaled
    /// unit so the server still gets an occasional request to prove itself.
    pub(super) fn weight_limit(&self, now: u64) -> i64 {
        let full = i64::from(self.weight) * WEIGHT_SCALE;
        if self.slow_start == 0 {
            return full;
        }
        let from = self.health.slow_start_from.load(Relaxed);
        let elapsed = since(from, now);
        if elapsed >= self.slow_start {
            return full;
        }
        let ramp = i128::from(full) * i128::from(elapsed) / i128::from(self.slow_start);
        i64::try_from(ramp).unwrap_or(full).max(1)
    }
}

/// One attempt on one server. Counts as an active connection until dropped.
///
/// Report the outcome with [`PeerGuard::failure`] or [`PeerGuard::success`]; the first report
/// wins. Dropping an unreported guard counts as a success for health bookkeeping, as nginx's
/// `free` with state 0 does when a request ends for reasons unrelated to the server.
pub struct PeerGuard {
    group: Arc<Group>,
    peer: Arc<Peer>,
    reported: Reported,
}

impl fmt::Debug for PeerGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerGuard")
            .field("id", &self.peer.id)
            .field("addr", &self.peer.conf.addr)
            .finish()
    }
}

impl PeerGuard {
    pub(super) fn new(group: Arc<Group>, peer: Arc<Peer>) -> PeerGuard {
        PeerGuard {
            group,
            peer,
            reported: Reported::default(),
        }
    }

    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    pub fn addr(&self) -> SocketAddr {
        self.peer.conf.addr
    }

    pub fn success(&self) {
        self.success_at(Instant::now());
    }

    pub fn success_at(&self, now: Instant) {
        if self.reported.first() {
            self.group.on_success(self.peer.id, now);
        }
    }

    /// The attempt failed in a way `proxy_next_upstream` counts (error, timeout, or a listed
    /// status other than 403/404).
    pub fn failure(&self) {
        self.failure_at(Instant::now());
    }

    pub fn failure_at(&self, now: Instant) {
        if self.reported.first() {
            self.group.on_failure(self.peer.id, now);
        }
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if self.reported.first() {
            self.group.on_success(self.peer.id, Instant::now());
        }
        self.peer.active.fetch_sub(1, Relaxed);
    }
}
