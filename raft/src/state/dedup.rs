//! Deduplication of API writes, so that a retry after a leader change applies once.
//!
//! Every request carries `(client, serial)`. The outcome of each applied request is kept,
//! and a request seen before gets the stored outcome back without being applied again.
//! The table is bounded deterministically, by log contents only:
//! - per client, the outcomes of the `DEDUP_WINDOW` highest serials are kept; a request
//!   at or below the highest serial dropped from the window is refused as
//!   `StaleRequest` (it may have been applied: applying it again could be wrong);
//! - a client with no request for `DEDUP_CLIENT_IDLE_MS` of log time is dropped by
//!   `Expire` (retries come seconds after the original, never an hour);
//! - beyond `MAX_DEDUP_CLIENTS`, the least recently seen client is dropped (ties: the
//!   smallest id).
//!
//! So a client may have up to `DEDUP_WINDOW` requests in flight and retry each of them
//! until it has been idle for `DEDUP_CLIENT_IDLE_MS`.
//!
//! The API gives every write its own client id (serial 1): the node retries a write
//! itself after a leader change, within seconds, so each write only needs protecting for
//! that long. Clients are therefore many and short-lived, and every operation on the
//! table — lookup, record, eviction of the least recently seen, expiry — is O(log n)
//! through an index ordered by `(last_seen_ms, id)`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::outcome::{Applied, Rejected};

/// Outcomes kept per client: more than one API front end has requests in flight.
pub const DEDUP_WINDOW: usize = 128;

/// Log time after which an idle client is forgotten: five minutes (a node retries a
/// write for seconds at most).
pub const DEDUP_CLIENT_IDLE_MS: u64 = 5 * 60 * 1000;

/// Clients remembered at most: at thousands of writes a second, still several seconds of
/// writes, longer than any retry of one.
pub const MAX_DEDUP_CLIENTS: usize = 32_768;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    /// The log index that applied the request.
    index: u64,
    result: Result<Applied, Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Client {
    last_seen_ms: u64,
    /// The highest serial whose outcome was dropped from the window.
    forgotten_up_to: Option<u64>,
    results: BTreeMap<u64, Recorded>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DedupRepr")]
pub(crate) struct Dedup {
    clients: BTreeMap<u128, Client>,
    /// `(last_seen_ms, id)` of every client: derived from `clients`, rebuilt on load.
    #[serde(skip)]
    by_seen: BTreeSet<(u64, u128)>,
}

/// The stored form: the clients alone (the index is derived).
#[derive(Deserialize)]
struct DedupRepr {
    clients: BTreeMap<u128, Client>,
}

impl From<DedupRepr> for Dedup {
    fn from(r: DedupRepr) -> Self {
        let by_seen = r
            .clients
            .iter()
            .map(|(id, c)| (c.last_seen_ms, *id))
            .collect();
        Dedup {
            clients: r.clients,
            by_seen,
        }
    }
}

impl Dedup {
    /// Moves `client`'s last-seen time forward to `now_ms` (never back), in the index too.
    fn touch(&mut self, client: u128, now_ms: u64) {
        if let Some(c) = self.clients.get_mut(&client) {
            if now_ms > c.last_seen_ms {
                self.by_seen.remove(&(c.last_seen_ms, client));
                c.last_seen_ms = now_ms;
                self.by_seen.insert((now_ms, client));
            }
        }
    }

    /// The outcome to answer without applying, if `(client, serial)` must not be applied.
    pub(crate) fn check(
        &mut self,
        client: u128,
        serial: u64,
        now_ms: u64,
    ) -> Option<Result<Applied, Rejected>> {
        self.touch(client, now_ms);
        let c = self.clients.get(&client)?;
        if let Some(r) = c.results.get(&serial) {
            return Some(r.result.clone());
        }
        if c.forgotten_up_to.is_some_and(|f| serial <= f) {
            return Some(Err(Rejected::StaleRequest { client, serial }));
        }
        None
    }

    pub(crate) fn record(
        &mut self,
        client: u128,
        serial: u64,
        index: u64,
        now_ms: u64,
        result: &Result<Applied, Rejected>,
    ) {
        self.touch(client, now_ms);
        let c = self.clients.entry(client).or_insert_with(|| Client {
            last_seen_ms: now_ms,
            forgotten_up_to: None,
            results: BTreeMap::new(),
        });
        // A new client enters the index at its first sighting (touch only moves
        // existing ones).
        self.by_seen.insert((c.last_seen_ms, client));
        c.results.insert(
            serial,
            Recorded {
                index,
                result: result.clone(),
            },
        );
        while c.results.len() > DEDUP_WINDOW {
            if let Some((s, _)) = c.results.pop_first() {
                c.forgotten_up_to = Some(c.forgotten_up_to.map_or(s, |f| f.max(s)));
            }
        }
        while self.clients.len() > MAX_DEDUP_CLIENTS {
            let oldest = self.by_seen.iter().find(|(_, id)| *id != client).copied();
            // Each round removes one index entry, so this ends even if the index ever
            // disagreed with the clients.
            match oldest {
                Some(key) => {
                    self.by_seen.remove(&key);
                    self.clients.remove(&key.1);
                }
                None => break,
            }
        }
    }

    /// Drops clients idle at `now_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: u64) -> u64 {
        let mut n = 0;
        while let Some(&(seen, id)) = self.by_seen.first() {
            if seen.saturating_add(DEDUP_CLIENT_IDLE_MS) > now_ms {
                break;
            }
            // Popping the index first guarantees progress even if it ever disagreed
            // with the clients: an apply loop must never spin.
            self.by_seen.pop_first();
            n += u64::from(self.clients.remove(&id).is_some());
        }
        n
    }

    /// When the longest-idle client is forgotten.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        let (seen, _) = self.by_seen.first()?;
        Some(seen.saturating_add(DEDUP_CLIENT_IDLE_MS))
    }

    /// The index that applied `(client, serial)` and its outcome, while remembered.
    pub(crate) fn lookup(
        &self,
        client: u128,
        serial: u64,
    ) -> Option<(u64, &Result<Applied, Rejected>)> {
        let r = self.clients.get(&client)?.results.get(&serial)?;
        Some((r.index, &r.result))
    }

    pub(crate) fn clients(&self) -> usize {
        self.clients.len()
    }
}
