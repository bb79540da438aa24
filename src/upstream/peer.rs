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
    /// Sums and counts for the averages NGINX Plus shows as `header_time` and
    /// `response_time`, in microseconds.
    header_us: AtomicU64,
    header_n: AtomicU64,
    response_us: AtomicU64,
    response_n: AtomicU64,
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

    /// The API's DELETE of the group: counters back to zero.
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.sent,
            &self.received,
            &self.fails,
            &self.unavail,
            &self.header_us,
            &self.header_n,
            &self.response_us,
            &self.response_n,
        ] {
            c.store(0, Relaxed);
        }
        for r in &self.responses {
            r.store(0, Relaxed);
        }
    }

    /// Average time to the response header, in milliseconds (NGINX Plus `header_time`).
    pub fn header_time_ms(&self) -> Option<u64> {
        average_ms(&self.header_us, &self.header_n)
    }

    /// Average time to the end of the response, in milliseconds (`response_time`).
    pub fn response_time_ms(&self) -> Option<u64> {
        average_ms(&self.response_us, &self.response_n)
    }

    pub fn record_header_time(&self, d: Duration) {
        self.header_us.fetch_add(micros(d), Relaxed);
        self.header_n.fetch_add(1, Relaxed);
    }

    pub fn record_response_time(&self, d: Duration) {
        self.response_us.fetch_add(micros(d), Relaxed);
        self.response_n.fetch_add(1, Relaxed);
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn average_ms(sum_us: &AtomicU64, n: &AtomicU64) -> Option<u64> {
    let n = n.load(Relaxed);
    (n > 0).then(|| sum_us.load(Relaxed) / n / 1000)
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
    /// When the current period of unavailability began; 0 while available.
    down_from: AtomicU64,
    /// Nanoseconds spent unavailable in periods that have ended.
    downtime: AtomicU64,
    /// When the server was last picked; 0 never.
    selected: AtomicU64,
}

/// The part of a server that outlives a rebuild of its group (an API change, a reload):
/// the attempts in flight, passive health and the counters. A rebuilt group hands the same
/// `Live` to the server with the same id, so nothing an operator watches resets, and a
/// guard taken before the rebuild still releases the right connection count.
#[derive(Debug, Default)]
pub struct Live {
    active: AtomicU32,
    pub(super) health: Health,
    stats: PeerStats,
}

impl Live {
    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }
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
    /// The API's id: stable across rebuilds, unlike `id`, which is the position in the
    /// group (primaries first) that balancing indexes by.
    pub server_id: u64,
    /// What `sticky cookie` and `sticky route` bind by: the `route=`, else the hex MD5
    /// of the address.
    pub sticky_id: String,
    down: AtomicBool,
    drain: AtomicBool,
    live: Arc<Live>,
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
    pub(super) fn new(
        id: usize,
        server_id: u64,
        conf: ServerConf,
        single: bool,
        epoch: Instant,
        live: Arc<Live>,
    ) -> Peer {
        Peer {
            id,
            server_id,
            sticky_id: super::sticky::server_id(conf.route.as_deref(), &conf.addr),
            weight: conf.weight.max(1),
            fail_timeout: nanos(conf.fail_timeout),
            slow_start: if single { 0 } else { nanos(conf.slow_start) },
            single,
            down: AtomicBool::new(conf.down),
            drain: AtomicBool::new(conf.drain),
            live,
            epoch,
            conf,
        }
    }

    /// Attempts in progress (nginx's `conns`).
    pub fn active(&self) -> u32 {
        self.live.active.load(Relaxed)
    }

    pub(super) fn health(&self) -> &Health {
        &self.live.health
    }

    pub(super) fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Failures counted towards `max_fails` right now.
    pub fn fails(&self) -> u32 {
        self.live.health.fails.load(Relaxed)
    }

    pub fn stats(&self) -> &PeerStats {
        &self.live.stats
    }

    /// A request went out to this server. Counted by the proxy when it sends, not at
    /// selection, so attempts that never connected are not requests.
    pub fn count_request(&self) {
        self.live.stats.requests.fetch_add(1, Relaxed);
    }

    pub fn count_response(&self, status: u16) {
        self.live.stats.record_response(status);
    }

    pub fn add_sent(&self, bytes: u64) {
        self.live.stats.add_sent(bytes);
    }

    pub fn add_received(&self, bytes: u64) {
        self.live.stats.add_received(bytes);
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
            && self.live.health.fails.load(Relaxed) >= max_fails
            && since(self.live.health.checked.load(Relaxed), now) <= self.fail_timeout
    }

    /// Ends the current period of unavailability if it is over by `now`: it ended when
    /// its `fail_timeout` ran out, or earlier when a probe succeeded.
    fn close_downtime(&self, now: u64) {
        let h = &self.live.health;
        let from = h.down_from.load(Relaxed);
        if from == 0 || self.failing(now) {
            return;
        }
        let end = now.min(h.checked.load(Relaxed).saturating_add(self.fail_timeout));
        // Only the caller that ends this very period counts it; a period begun meanwhile
        // (by a failure under the group lock) is left alone.
        if h.down_from
            .compare_exchange(from, 0, Relaxed, Relaxed)
            .is_ok()
        {
            h.downtime.fetch_add(end.saturating_sub(from), Relaxed);
        }
    }

    /// Total time spent unavailable, the current period included (NGINX Plus `downtime`).
    pub fn downtime(&self, now: Instant) -> Duration {
        let now = self.stamp(now);
        self.close_downtime(now);
        let h = &self.live.health;
        let open = match h.down_from.load(Relaxed) {
            0 => 0,
            from => now.saturating_sub(from),
        };
        Duration::from_nanos(h.downtime.load(Relaxed).saturating_add(open))
    }

    /// When the current period of unavailability began, if the server is in one.
    pub fn downstart(&self, now: Instant) -> Option<Instant> {
        self.close_downtime(self.stamp(now));
        self.at(self.live.health.down_from.load(Relaxed))
    }

    /// The API's DELETE of the group: counters and accumulated downtime back to zero
    /// (state, health and connections in flight stay).
    pub fn reset(&self) {
        self.live.stats.reset();
        self.live.health.downtime.store(0, Relaxed);
    }

    /// When the server was last picked for an attempt.
    pub fn selected(&self) -> Option<Instant> {
        self.at(self.live.health.selected.load(Relaxed))
    }

    fn at(&self, stamp: u64) -> Option<Instant> {
        (stamp != 0).then(|| self.epoch + Duration::from_nanos(stamp - 1))
    }

    pub(super) fn is_full(&self) -> bool {
        self.conf.max_conns > 0 && self.active() >= self.conf.max_conns
    }

    /// On selection, a new `fail_timeout` window begins if the last one is over. This is what
    /// lets exactly one request probe a server whose window has expired: the probe restarts
    /// the window, and only its success clears `fails`.
    pub(super) fn touch(&self, now: u64) {
        self.live.health.selected.store(now, Relaxed);
        let checked = &self.live.health.checked;
        if since(checked.load(Relaxed), now) > self.fail_timeout {
            // The window that kept the server out is over: its downtime ends with it,
            // before the probe moves `checked` on.
            self.close_downtime(now);
            checked.store(now, Relaxed);
        }
    }

    pub(super) fn acquire(&self) {
        self.live.active.fetch_add(1, Relaxed);
    }

    /// The failure half of nginx's `free`. Returns how many whole weight units the effective
    /// weight loses (`weight / max_fails`).
    pub(super) fn record_failure(&self, now: u64) -> i64 {
        self.close_downtime(now);
        let h = &self.live.health;
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
            self.live.stats.unavail.fetch_add(1, Relaxed);
            h.slow_start_from.store(0, Relaxed);
            if h.down_from.load(Relaxed) == 0 {
                h.down_from.store(now, Relaxed);
            }
        }
        i64::from(self.weight / max_fails)
    }

    /// The success half of nginx's `free`: "mark peer live if check passed".
    pub(super) fn record_success(&self, now: u64) {
        let h = &self.live.health;
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
        let from = self.live.health.slow_start_from.load(Relaxed);
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
        self.peer.live.active.fetch_sub(1, Relaxed);
    }
}
