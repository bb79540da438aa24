//! The replicated domain state and its reducer.
//!
//! `State::apply` is a pure function of the state and the entry: no clock, no randomness,
//! no I/O, and only ordered maps, so every node that applies the same log holds the same
//! state, down to the bytes of its snapshot.
//!
//! Time is the log's: each command that carries a time (the proposing leader's clock)
//! advances the state's `log_time_ms`, and an older time than the log has already seen is
//! read as the log time. So time never runs backwards across a leader change with a
//! skewed clock, and a late entry cannot make an entry it writes expire early.

pub mod dedup;
mod ipnet;
pub mod keyval;
mod restore;
pub mod sticky;
pub mod upstream;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::command::{Command, Entry, Request, ServerKey, UpstreamRef, ZoneRef};
use crate::outcome::{Applied, ExpiredCounts, Rejected, ServerView};

pub use dedup::{DEDUP_CLIENT_IDLE_MS, DEDUP_WINDOW, MAX_DEDUP_CLIENTS};
pub use keyval::{KeyvalZoneConfig, KEYVAL_ENTRY_OVERHEAD};
pub use sticky::{
    Session, StickyZoneConfig, DEFAULT_STICKY_TIMEOUT_MS, STICKY_SESSION_BYTES,
    STICKY_SESSION_ID_INCLUDED,
};
pub use upstream::MAX_SERVERS_PER_UPSTREAM;
pub use validate::{normalize_address, MAX_DURATION_MS, MAX_ROUTE_LEN};

use dedup::Dedup;
use keyval::KeyvalZone;
use sticky::StickyZone;
use upstream::Upstream;

/// Snapshot format version, the first byte of every snapshot: a node must refuse a
/// snapshot it would misread rather than guess.
pub const SNAPSHOT_FORMAT: u8 = 2;

/// A zone's size and fill, for `/slabs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneUsage {
    pub capacity_bytes: u64,
    /// May exceed `capacity_bytes` after a reload shrank the zone (nothing is dropped).
    pub used_bytes: u64,
    pub entries: u64,
}

impl ZoneUsage {
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.used_bytes)
    }
}

/// A snapshot that cannot be read.
#[derive(Debug)]
pub enum SnapshotError {
    Empty,
    UnknownFormat(u8),
    Codec(bincode::Error),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Empty => f.write_str("empty snapshot"),
            SnapshotError::UnknownFormat(v) => write!(f, "unknown snapshot format {v}"),
            SnapshotError::Codec(e) => write!(f, "snapshot encoding: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding()
}

/// Everything the cluster replicates except membership (openraft's own). It does not
/// know the log index it reflects: the storage layer keeps that beside the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    log_time_ms: u64,
    keyval: BTreeMap<ZoneRef, KeyvalZone>,
    sticky: BTreeMap<String, StickyZone>,
    upstreams: BTreeMap<UpstreamRef, Upstream>,
    dedup: Dedup,
}

impl State {
    pub fn new() -> Self {
        State::default()
    }

    /// Applies the entry at log `index`. A rejected command leaves the state as it was,
    /// log clock included (for a request, only the deduplication table records the
    /// rejection, so that a retry gets it back).
    pub fn apply(&mut self, index: u64, entry: Entry) -> Result<Applied, Rejected> {
        match entry {
            Entry::Command(c) => self.execute(c),
            Entry::Request(r) => self.request(index, r),
            Entry::Batch(requests) => Ok(Applied::Batch(
                requests
                    .into_iter()
                    .map(|r| self.request(index, r))
                    .collect(),
            )),
        }
    }

    fn request(&mut self, index: u64, r: Request) -> Result<Applied, Rejected> {
        if let Some(done) = self.dedup.check(r.client, r.serial, self.log_time_ms) {
            return done;
        }
        let result = self.execute(r.command);
        self.dedup
            .record(r.client, r.serial, index, self.log_time_ms, &result);
        result
    }

    fn execute(&mut self, c: Command) -> Result<Applied, Rejected> {
        let now = c.now_ms().map(|t| t.max(self.log_time_ms));
        let now_ms = now.unwrap_or(self.log_time_ms);
        let result = self.dispatch(c, now_ms);
        if result.is_ok() {
            self.log_time_ms = now_ms;
        }
        result
    }

    fn dispatch(&mut self, c: Command, now_ms: u64) -> Result<Applied, Rejected> {
        match c {
            Command::ConfigureKeyvalZone {
                zone,
                capacity_bytes,
                timeout_ms,
                key_type,
            } => {
                let config = KeyvalZoneConfig {
                    capacity_bytes,
                    timeout_ms,
                    key_type,
                };
                match self.keyval.get_mut(&zone) {
                    Some(z) => z.configure(config),
                    None => {
                        self.keyval.insert(zone, KeyvalZone::new(config));
                    }
                }
                Ok(Applied::Done)
            }
            Command::KeyvalAdd { zone, pairs, .. } => {
                self.keyval_mut(&zone)?.add(&zone, pairs, now_ms)?;
                Ok(Applied::Done)
            }
            Command::KeyvalSet {
                zone, key, value, ..
            } => {
                self.keyval_mut(&zone)?.set(&zone, key, value, now_ms)?;
                Ok(Applied::Done)
            }
            Command::KeyvalDelete { zone, key } => {
                self.keyval_mut(&zone)?.delete(key)?;
                Ok(Applied::Done)
            }
            Command::KeyvalClear { zone } => {
                self.keyval_mut(&zone)?.clear();
                Ok(Applied::Done)
            }
            Command::ConfigureStickyZone {
                zone,
                capacity_bytes,
                timeout_ms,
            } => {
                let config = StickyZoneConfig {
                    capacity_bytes,
                    timeout_ms,
                };
                match self.sticky.get_mut(&zone) {
                    Some(z) => z.configure(config),
                    None => {
                        self.sticky.insert(zone, StickyZone::new(config));
                    }
                }
                Ok(Applied::Done)
            }
            Command::StickyLearn {
                zone,
                session,
                server,
                ..
            } => {
                self.sticky_mut(&zone)?
                    .learn(&zone, session, server, now_ms)?;
                Ok(Applied::Done)
            }
            Command::StickyLearnBatch { zone, sessions, .. } => {
                let z = self.sticky_mut(&zone)?;
                // A session that cannot fit even in an empty zone is skipped, not fatal:
                // the others of the batch still bind.
                for (session, server) in sessions {
                    let _ = z.learn(&zone, session, server, now_ms);
                }
                Ok(Applied::Done)
            }
            Command::StickyTouch { zone, sessions, .. } => {
                self.sticky_mut(&zone)?.touch(sessions, now_ms);
                Ok(Applied::Done)
            }
            Command::ConfigureUpstream { upstream, servers } => {
                match self.upstreams.get_mut(&upstream) {
                    Some(u) => u.configure(servers),
                    None => {
                        let mut u = Upstream::new(upstream.kind);
                        let done = u.configure(servers)?;
                        self.upstreams.insert(upstream, u);
                        Ok(done)
                    }
                }
            }
            Command::ServerAdd { upstream, spec } => self.upstream_mut(&upstream)?.add(spec),
            Command::ServerPatch {
                upstream,
                id,
                changes,
            } => self.upstream_mut(&upstream)?.patch(id, changes),
            Command::ServerRemove { upstream, id } => self.upstream_mut(&upstream)?.remove(id),
            Command::Expire { .. } => Ok(Applied::Expired(self.expire(now_ms))),
            Command::Restore { snapshot, .. } => self.restore(&snapshot, now_ms),
        }
    }

    fn expire(&mut self, now_ms: u64) -> ExpiredCounts {
        ExpiredCounts {
            keyvals: self.keyval.values_mut().map(|z| z.expire(now_ms)).sum(),
            sessions: self.sticky.values_mut().map(|z| z.expire(now_ms)).sum(),
            clients: self.dedup.expire(now_ms),
        }
    }

    fn keyval_mut(&mut self, zone: &ZoneRef) -> Result<&mut KeyvalZone, Rejected> {
        self.keyval
            .get_mut(zone)
            .ok_or_else(|| Rejected::UnknownZone { zone: zone.clone() })
    }

    fn sticky_mut(&mut self, zone: &str) -> Result<&mut StickyZone, Rejected> {
        self.sticky
            .get_mut(zone)
            .ok_or_else(|| Rejected::UnknownStickyZone {
                zone: zone.to_string(),
            })
    }

    fn upstream_mut(&mut self, upstream: &UpstreamRef) -> Result<&mut Upstream, Rejected> {
        self.upstreams
            .get_mut(upstream)
            .ok_or_else(|| Rejected::UnknownUpstream {
                upstream: upstream.clone(),
            })
    }

    /// The whole state, encoded deterministically: equal states give equal bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = vec![SNAPSHOT_FORMAT];
        codec()
            .serialize_into(&mut out, self)
            .map_err(SnapshotError::Codec)?;
        Ok(out)
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<State, SnapshotError> {
        match bytes.split_first() {
            None => Err(SnapshotError::Empty),
            // Bounded by the input's length: a backup handed to the API may be crafted,
            // and a length field must not make the decoder read (or reserve) past it.
            Some((&SNAPSHOT_FORMAT, rest)) => codec()
                .with_limit(rest.len() as u64)
                .deserialize(rest)
                .map_err(SnapshotError::Codec),
            Some((&v, _)) => Err(SnapshotError::UnknownFormat(v)),
        }
    }

    /// The latest leader time the log has carried.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// Keyval zones, sorted (http before stream, then by name).
    /// The earliest log time at which an `Expire` would remove something (a keyval past
    /// its zone's timeout, an idle sticky session, an idle deduplication client), or
    /// `None` when nothing can expire. The leader proposes `Expire` once its clock
    /// reaches this, so an idle cluster writes no expiry entries at all.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        let keyvals = self.keyval.values().filter_map(KeyvalZone::next_expiry_ms);
        let sessions = self.sticky.values().filter_map(StickyZone::next_expiry_ms);
        keyvals
            .chain(sessions)
            .chain(self.dedup.next_expiry_ms())
            .min()
    }

    pub fn keyval_zones(&self) -> impl Iterator<Item = &ZoneRef> {
        self.keyval.keys()
    }

    pub fn keyval_zone_config(&self, zone: &ZoneRef) -> Option<&KeyvalZoneConfig> {
        self.keyval.get(zone).map(KeyvalZone::config)
    }

    /// A zone's pairs sorted by key; `None` for an unknown zone.
    pub fn keyval_entries(&self, zone: &ZoneRef) -> Option<impl Iterator<Item = (&str, &str)>> {
        self.keyval.get(zone).map(KeyvalZone::iter)
    }

    /// Exact key (the API's `?key=`); `None` also for an unknown zone.
    pub fn keyval_get(&self, zone: &ZoneRef, key: &str) -> Option<&str> {
        self.keyval.get(zone)?.get(key)
    }

    /// The data path's `keyval` variable: exact, longest-prefix or longest-CIDR match by
    /// the zone's `type`.
    pub fn keyval_lookup(&self, zone: &ZoneRef, key: &str) -> Option<&str> {
        self.keyval.get(zone)?.lookup(key)
    }

    pub fn keyval_usage(&self, zone: &ZoneRef) -> Option<ZoneUsage> {
        self.keyval.get(zone).map(KeyvalZone::usage)
    }

    pub fn sticky_zones(&self) -> impl Iterator<Item = &str> {
        self.sticky.keys().map(String::as_str)
    }

    pub fn sticky_zone_config(&self, zone: &str) -> Option<&StickyZoneConfig> {
        self.sticky.get(zone).map(StickyZone::config)
    }

    /// The server a session is bound to.
    pub fn sticky_lookup(&self, zone: &str, session: &str) -> Option<&ServerKey> {
        self.sticky_session(zone, session).map(|s| &s.server)
    }

    pub fn sticky_session(&self, zone: &str, session: &str) -> Option<&Session> {
        self.sticky.get(zone)?.get(session)
    }

    /// A zone's sessions sorted by id.
    pub fn sticky_sessions(&self, zone: &str) -> Option<impl Iterator<Item = (&str, &Session)>> {
        self.sticky.get(zone).map(StickyZone::iter)
    }

    pub fn sticky_usage(&self, zone: &str) -> Option<ZoneUsage> {
        self.sticky.get(zone).map(StickyZone::usage)
    }

    /// Upstreams with runtime state, sorted.
    pub fn upstreams(&self) -> impl Iterator<Item = &UpstreamRef> {
        self.upstreams.keys()
    }

    /// An upstream's servers sorted by id, with effective parameters.
    pub fn upstream_servers(&self, upstream: &UpstreamRef) -> Option<Vec<ServerView>> {
        self.upstreams.get(upstream).map(Upstream::views)
    }

    /// Moves whenever the upstream's effective server list changes; `None` for an
    /// upstream the log has not configured.
    pub fn upstream_revision(&self, upstream: &UpstreamRef) -> Option<u64> {
        self.upstreams.get(upstream).map(Upstream::revision)
    }

    pub fn upstream_server(&self, upstream: &UpstreamRef, id: u64) -> Option<ServerView> {
        self.upstreams.get(upstream)?.view(id)
    }

    /// The log index that applied `(client, serial)` and its outcome, while the
    /// deduplication table remembers it: how a node can settle a write whose commit it
    /// could not confirm in time.
    pub fn request_outcome(
        &self,
        client: u128,
        serial: u64,
    ) -> Option<(u64, &Result<Applied, Rejected>)> {
        self.dedup.lookup(client, serial)
    }

    /// Clients in the deduplication table.
    pub fn dedup_clients(&self) -> usize {
        self.dedup.clients()
    }
}
