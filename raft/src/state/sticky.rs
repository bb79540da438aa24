//! Sticky-learn zones: session id → server, with last access, LRU eviction and expiry.
//!
//! Choices:
//! - Each session is charged `STICKY_SESSION_BYTES`, plus the bytes of its id beyond
//!   `STICKY_SESSION_ID_INCLUDED`, against the zone's size.
//! - A learn into a full zone drops least recently used sessions until the new one fits,
//!   as nginx does; "least recently used" is the smallest last access time, ties broken by
//!   the smallest session id, so every node drops the same one.
//! - A session not accessed for `timeout` is due at exactly `last_access + timeout`, like
//!   keyval entries.
//! - Re-configuring a zone smaller drops nothing at once; the next learn evicts down to
//!   the new size (sessions are soft state, but dropping them on reload is not needed).
//! - Access times never move backwards: a touch older than the last access is a no-op.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ZoneUsage;
use crate::command::ServerKey;
use crate::outcome::Rejected;

/// Bytes charged per session. The R15 docs size a sticky zone at "about 4000 sessions per
/// megabyte" on 64-bit platforms: 1 MiB / 4096 sessions = 256 bytes each.
pub const STICKY_SESSION_BYTES: u64 = 256;

/// Session id bytes covered by `STICKY_SESSION_BYTES`. zone_sync's sticky records carry ids
/// of up to 32 bytes, so nginx's figure is for ids of that size; longer ids pay the excess.
pub const STICKY_SESSION_ID_INCLUDED: u64 = 32;

/// `sticky learn ... timeout=` default: 10 minutes.
pub const DEFAULT_STICKY_TIMEOUT_MS: u64 = 10 * 60 * 1000;

fn cost(session: &str) -> u64 {
    STICKY_SESSION_BYTES + (session.len() as u64).saturating_sub(STICKY_SESSION_ID_INCLUDED)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickyZoneConfig {
    pub capacity_bytes: u64,
    pub timeout_ms: u64,
}

/// A learned session as queries show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub server: ServerKey,
    pub last_access_ms: u64,
}

/// Only `config` and `sessions` are serialized; the rest is derived on decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ZoneRepr")]
pub(crate) struct StickyZone {
    config: StickyZoneConfig,
    sessions: BTreeMap<String, Session>,
    #[serde(skip)]
    used_bytes: u64,
    /// Sessions by last access, least recent first: the LRU and expiry order.
    #[serde(skip)]
    by_access: BTreeSet<(u64, String)>,
}

#[derive(Deserialize)]
struct ZoneRepr {
    config: StickyZoneConfig,
    sessions: BTreeMap<String, Session>,
}

impl From<ZoneRepr> for StickyZone {
    fn from(r: ZoneRepr) -> Self {
        let used_bytes = r.sessions.keys().map(|k| cost(k)).sum();
        let by_access = r
            .sessions
            .iter()
            .map(|(k, s)| (s.last_access_ms, k.clone()))
            .collect();
        StickyZone {
            config: r.config,
            sessions: r.sessions,
            used_bytes,
            by_access,
        }
    }
}

impl StickyZone {
    pub(crate) fn new(config: StickyZoneConfig) -> Self {
        StickyZone::from(ZoneRepr {
            config,
            sessions: BTreeMap::new(),
        })
    }

    /// Takes `backup`'s sessions, each last accessed `shift(when)` instead, under this
    /// zone's configuration (see `state::restore`). A zone smaller than the backup's holds
    /// them all until its next learn evicts the least recently used.
    pub(crate) fn restore(&mut self, backup: StickyZone, shift: impl Fn(u64) -> u64) {
        let sessions = backup
            .sessions
            .into_iter()
            .map(|(k, s)| {
                let last_access_ms = shift(s.last_access_ms);
                (
                    k,
                    Session {
                        last_access_ms,
                        ..s
                    },
                )
            })
            .collect();
        *self = StickyZone::from(ZoneRepr {
            config: self.config.clone(),
            sessions,
        });
    }

    pub(crate) fn configure(&mut self, config: StickyZoneConfig) {
        self.config = config;
    }

    fn remove(&mut self, session: &str) -> Option<Session> {
        let s = self.sessions.remove(session)?;
        self.used_bytes -= cost(session);
        self.by_access
            .remove(&(s.last_access_ms, session.to_string()));
        Some(s)
    }

    fn insert(&mut self, session: String, s: Session) {
        self.used_bytes += cost(&session);
        self.by_access.insert((s.last_access_ms, session.clone()));
        self.sessions.insert(session, s);
    }

    /// Drops the least recently used session; `false` when there is none. Pops the index
    /// first so that eviction always makes progress.
    fn evict_lru(&mut self) -> bool {
        match self.by_access.pop_first() {
            Some((_, session)) => {
                self.remove(&session);
                true
            }
            None => false,
        }
    }

    pub(crate) fn learn(
        &mut self,
        zone: &str,
        session: String,
        server: ServerKey,
        now_ms: u64,
    ) -> Result<(), Rejected> {
        let c = cost(&session);
        if c > self.config.capacity_bytes {
            return Err(Rejected::StickyZoneTooSmall {
                zone: zone.to_string(),
            });
        }
        let last_access_ms = match self.remove(&session) {
            Some(old) => old.last_access_ms.max(now_ms),
            None => now_ms,
        };
        while self.used_bytes + c > self.config.capacity_bytes && self.evict_lru() {}
        self.insert(
            session,
            Session {
                server,
                last_access_ms,
            },
        );
        Ok(())
    }

    pub(crate) fn touch(&mut self, sessions: Vec<String>, now_ms: u64) {
        for id in sessions {
            match self.sessions.get(&id) {
                Some(s) if s.last_access_ms < now_ms => {}
                _ => continue,
            }
            if let Some(mut s) = self.remove(&id) {
                s.last_access_ms = now_ms;
                self.insert(id, s);
            }
        }
    }

    /// Removes the sessions due at `now_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: u64) -> u64 {
        let mut n = 0;
        while let Some((last, _)) = self.by_access.first() {
            if last.saturating_add(self.config.timeout_ms) > now_ms {
                break;
            }
            if let Some((_, session)) = self.by_access.pop_first() {
                n += u64::from(self.remove(&session).is_some());
            }
        }
        n
    }

    /// When the least recently used session falls due.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        let (last, _) = self.by_access.first()?;
        Some(last.saturating_add(self.config.timeout_ms))
    }

    pub(crate) fn config(&self) -> &StickyZoneConfig {
        &self.config
    }

    pub(crate) fn get(&self, session: &str) -> Option<&Session> {
        self.sessions.get(session)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Session)> {
        self.sessions.iter().map(|(k, s)| (k.as_str(), s))
    }

    pub(crate) fn usage(&self) -> ZoneUsage {
        ZoneUsage {
            capacity_bytes: self.config.capacity_bytes,
            used_bytes: self.used_bytes,
            entries: self.sessions.len() as u64,
        }
    }
}
