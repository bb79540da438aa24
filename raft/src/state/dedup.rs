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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::{Applied, Rejected};

/// Outcomes kept per client: more than one API front end has requests in flight.
pub const DEDUP_WINDOW: usize = 128;

/// Log time after which an idle client is forgotten: one hour.
pub const DEDUP_CLIENT_IDLE_MS: u64 = 60 * 60 * 1000;

/// Clients remembered at most. A client is one proposer incarnation (a node's API front
/// end per process start), so this covers many restarts of a large cluster.
pub const MAX_DEDUP_CLIENTS: usize = 1024;

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
pub(crate) struct Dedup {
    clients: BTreeMap<u128, Client>,
}

impl Dedup {
    /// The outcome to answer without applying, if `(client, serial)` must not be applied.
    pub(crate) fn check(
        &mut self,
        client: u128,
        serial: u64,
        now_ms: u64,
    ) -> Option<Result<Applied, Rejected>> {
        let c = self.clients.get_mut(&client)?;
        c.last_seen_ms = c.last_seen_ms.max(now_ms);
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
        let c = self.clients.entry(client).or_insert(Client {
            last_seen_ms: now_ms,
            forgotten_up_to: None,
            results: BTreeMap::new(),
        });
        c.last_seen_ms = c.last_seen_ms.max(now_ms);
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
            let oldest = self
                .clients
                .iter()
                .filter(|(id, _)| **id != client)
                .min_by_key(|(id, c)| (c.last_seen_ms, **id))
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.clients.remove(&id),
                None => break,
            };
        }
    }

    /// Drops clients idle at `now_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: u64) -> u64 {
        let before = self.clients.len();
        self.clients
            .retain(|_, c| c.last_seen_ms.saturating_add(DEDUP_CLIENT_IDLE_MS) > now_ms);
        (before - self.clients.len()) as u64
    }

    /// When the longest-idle client is forgotten (a scan: the table is bounded by
    /// `MAX_DEDUP_CLIENTS`, and this runs once per expiry tick on the leader only).
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        self.clients
            .values()
            .map(|c| c.last_seen_ms.saturating_add(DEDUP_CLIENT_IDLE_MS))
            .min()
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
