//! Keyval zones: the NGINX API v2 write semantics, capacity accounting and expiry.
//!
//! Choices:
//! - Capacity is charged per entry as `key + value + KEYVAL_ENTRY_OVERHEAD` bytes, so a
//!   zone holds about as much as nginx's slab allocator would, and every node agrees
//!   exactly on when it is full.
//! - Re-configuring a zone with a smaller size never drops keys: acknowledged writes are
//!   not lost to a config edit. An over-full zone refuses writes that would grow it until
//!   deletions or expiry bring it under its size.
//! - With a `timeout`, an entry expires `timeout` after its last write (nginx counts from
//!   the last update); it is due at exactly `written + timeout` (`now >= written +
//!   timeout`), so its lifetime is exactly `timeout`.
//! - Reads never hide due entries: only an `Expire` entry removes them, so every node
//!   answers alike (staleness is bounded by the leader's expiry period).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ipnet::Net;
use super::ZoneUsage;
use crate::command::{KeyType, ZoneRef};
use crate::outcome::{KeyvalFormat, Rejected};

/// Bytes charged per keyval entry on top of its key and value. nginx's keyval node is an
/// rbtree node (40 bytes on 64-bit), an expiry queue link (16), the expiry time (8) and
/// the key and value lengths, rounded up to the slab allocator's 8-byte alignment: 80.
pub const KEYVAL_ENTRY_OVERHEAD: u64 = 80;

/// A zone's configuration, as `keyval_zone` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyvalZoneConfig {
    pub capacity_bytes: u64,
    pub timeout_ms: Option<u64>,
    pub key_type: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    value: String,
    written_ms: u64,
}

fn cost(key: &str, value: &str) -> u64 {
    key.len() as u64 + value.len() as u64 + KEYVAL_ENTRY_OVERHEAD
}

/// Only `config` and `entries` are serialized; the rest is derived from them on decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ZoneRepr")]
pub(crate) struct KeyvalZone {
    config: KeyvalZoneConfig,
    entries: BTreeMap<String, Entry>,
    #[serde(skip)]
    used_bytes: u64,
    /// Entries by last write, oldest first: what `Expire` walks.
    #[serde(skip)]
    by_write: BTreeSet<(u64, String)>,
    /// For `type=ip` only: parsed blocks to the keys that spell them (several spellings of
    /// one block may coexist; the smallest key wins, deterministically).
    #[serde(skip)]
    by_net: BTreeMap<Net, BTreeSet<String>>,
}

#[derive(Deserialize)]
struct ZoneRepr {
    config: KeyvalZoneConfig,
    entries: BTreeMap<String, Entry>,
}

impl From<ZoneRepr> for KeyvalZone {
    fn from(r: ZoneRepr) -> Self {
        let mut z = KeyvalZone {
            config: r.config,
            entries: r.entries,
            used_bytes: 0,
            by_write: BTreeSet::new(),
            by_net: BTreeMap::new(),
        };
        z.reindex();
        z
    }
}

impl KeyvalZone {
    pub(crate) fn new(config: KeyvalZoneConfig) -> Self {
        KeyvalZone::from(ZoneRepr {
            config,
            entries: BTreeMap::new(),
        })
    }

    /// Takes `backup`'s entries, each written `shift(when)` instead, under this zone's
    /// configuration (see `state::restore`).
    pub(crate) fn restore(&mut self, backup: KeyvalZone, shift: impl Fn(u64) -> u64) {
        self.entries = backup
            .entries
            .into_iter()
            .map(|(k, e)| {
                let written_ms = shift(e.written_ms);
                (k, Entry { written_ms, ..e })
            })
            .collect();
        self.reindex();
    }

    fn reindex(&mut self) {
        self.used_bytes = 0;
        self.by_write.clear();
        self.by_net.clear();
        let entries = std::mem::take(&mut self.entries);
        for (k, e) in &entries {
            self.index(k, e);
        }
        self.entries = entries;
    }

    fn index(&mut self, key: &str, e: &Entry) {
        self.used_bytes += cost(key, &e.value);
        self.by_write.insert((e.written_ms, key.to_string()));
        if self.config.key_type == KeyType::Ip {
            if let Some(net) = Net::parse(key) {
                self.by_net.entry(net).or_default().insert(key.to_string());
            }
        }
    }

    fn unindex(&mut self, key: &str, e: &Entry) {
        self.used_bytes -= cost(key, &e.value);
        self.by_write.remove(&(e.written_ms, key.to_string()));
        if self.config.key_type != KeyType::Ip {
            return;
        }
        if let Some(net) = Net::parse(key) {
            if let Some(keys) = self.by_net.get_mut(&net) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_net.remove(&net);
                }
            }
        }
    }

    fn insert(&mut self, key: String, e: Entry) {
        self.index(&key, &e);
        self.entries.insert(key, e);
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(e) => {
                self.unindex(key, &e);
                true
            }
            None => false,
        }
    }

    /// Takes a new configuration, keeping every stored key (see the module docs).
    pub(crate) fn configure(&mut self, config: KeyvalZoneConfig) {
        let retype = config.key_type != self.config.key_type;
        self.config = config;
        if retype {
            self.reindex();
        }
    }

    fn check_key(&self, key: &str) -> Result<(), Rejected> {
        if key.is_empty() {
            return Err(Rejected::KeyvalFormat(KeyvalFormat::EmptyKey));
        }
        if self.config.key_type == KeyType::Ip && Net::parse(key).is_none() {
            return Err(Rejected::KeyvalFormat(KeyvalFormat::BadIpKey));
        }
        Ok(())
    }

    /// Whether growing usage to `new_used` is allowed; shrinking always is, so an
    /// over-full zone can still be cleaned up.
    fn fits(&self, new_used: u64) -> bool {
        new_used <= self.config.capacity_bytes || new_used <= self.used_bytes
    }

    pub(crate) fn add(
        &mut self,
        zone: &ZoneRef,
        pairs: Vec<(String, String)>,
        now_ms: u64,
    ) -> Result<(), Rejected> {
        if pairs.is_empty() {
            return Err(Rejected::KeyvalFormat(KeyvalFormat::NoKey));
        }
        if pairs.len() > 1 && !self.entries.is_empty() {
            return Err(Rejected::KeyvalFormat(KeyvalFormat::OnlyOneKeyAdded));
        }
        for (k, _) in &pairs {
            self.check_key(k)?;
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &pairs {
            if self.entries.contains_key(k) || !seen.insert(k.as_str()) {
                return Err(Rejected::KeyExists { key: k.clone() });
            }
        }
        let added: u64 = pairs.iter().map(|(k, v)| cost(k, v)).sum();
        if !self.fits(self.used_bytes.saturating_add(added)) {
            return Err(Rejected::ZoneFull { zone: zone.clone() });
        }
        for (key, value) in pairs {
            self.insert(
                key,
                Entry {
                    value,
                    written_ms: now_ms,
                },
            );
        }
        Ok(())
    }

    pub(crate) fn set(
        &mut self,
        zone: &ZoneRef,
        key: String,
        value: String,
        now_ms: u64,
    ) -> Result<(), Rejected> {
        let Some(old) = self.entries.get(&key) else {
            return Err(Rejected::KeyNotFound { key });
        };
        let new_used = self.used_bytes - cost(&key, &old.value) + cost(&key, &value);
        if !self.fits(new_used) {
            return Err(Rejected::ZoneFull { zone: zone.clone() });
        }
        self.remove(&key);
        self.insert(
            key,
            Entry {
                value,
                written_ms: now_ms,
            },
        );
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: String) -> Result<(), Rejected> {
        if self.remove(&key) {
            Ok(())
        } else {
            Err(Rejected::KeyNotFound { key })
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.reindex();
    }

    /// Removes the entries due at `now_ms`; returns how many.
    pub(crate) fn expire(&mut self, now_ms: u64) -> u64 {
        let Some(timeout) = self.config.timeout_ms else {
            return 0;
        };
        let mut n = 0;
        while let Some((written, _)) = self.by_write.first() {
            if written.saturating_add(timeout) > now_ms {
                break;
            }
            // Popping first guarantees progress even if the index ever disagreed with
            // the entries: an apply loop must never spin.
            if let Some((_, key)) = self.by_write.pop_first() {
                n += u64::from(self.remove(&key));
            }
        }
        n
    }

    /// When the oldest entry falls due, if the zone has a timeout and entries.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        let timeout = self.config.timeout_ms?;
        let (written, _) = self.by_write.first()?;
        Some(written.saturating_add(timeout))
    }

    pub(crate) fn config(&self) -> &KeyvalZoneConfig {
        &self.config
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// The data path's `keyval` lookup, interpreted by the zone's type.
    pub(crate) fn lookup(&self, key: &str) -> Option<&str> {
        match self.config.key_type {
            KeyType::String => self.get(key),
            KeyType::Prefix => (1..=key.len())
                .rev()
                .filter(|&i| key.is_char_boundary(i))
                .find_map(|i| self.get(&key[..i])),
            KeyType::Ip => {
                let addr: IpAddr = key.parse().ok()?;
                Net::candidates(addr)
                    .find_map(|net| self.by_net.get(&net).and_then(|keys| keys.first()))
                    .and_then(|k| self.get(k))
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), e.value.as_str()))
    }

    pub(crate) fn usage(&self) -> ZoneUsage {
        ZoneUsage {
            capacity_bytes: self.config.capacity_bytes,
            used_bytes: self.used_bytes,
            entries: self.entries.len() as u64,
        }
    }
}
