//! Tokens already verified, so that a client sending the same token on every request pays
//! for one signature check, not one per request (an RSA or P-256 verify costs far more
//! than proxying a small request).
//!
//! Keyed by the whole token, so a hit is exact. Bounded (a FIFO per shard), never serves
//! a token past its `exp`, never stores a failure, and lives inside its key set, so a
//! reload with new keys starts empty. A hit still has its time window checked.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use super::Verified;

const SHARDS: usize = 8;
const PER_SHARD: usize = 128;
/// Longer tokens are verified every time: the cache is for the common case, and a
/// bound on its memory is 1,024 entries of at most this.
const MAX_CACHED_TOKEN: usize = 4096;

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, Arc<Verified>>,
    order: VecDeque<Box<str>>,
}

#[derive(Debug, Default)]
pub struct VerifiedCache {
    shards: [Mutex<Shard>; SHARDS],
    hasher: RandomState,
}

impl VerifiedCache {
    fn shard(&self, token: &str) -> &Mutex<Shard> {
        let i = self.hasher.hash_one(token) as usize % SHARDS;
        &self.shards[i]
    }

    /// The verified token, unless unknown or expired by `now` (leeway already applied).
    pub fn get(&self, token: &str, now: i64) -> Option<Arc<Verified>> {
        let mut s = self
            .shard(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let v = s.map.get(token)?.clone();
        if v.exp.is_some_and(|exp| exp <= now) {
            s.map.remove(token);
            return None;
        }
        Some(v)
    }

    pub fn put(&self, token: &str, v: Arc<Verified>, now: i64) {
        if token.len() > MAX_CACHED_TOKEN || v.exp.is_some_and(|exp| exp <= now) {
            return;
        }
        let mut s = self
            .shard(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if s.map.contains_key(token) {
            return;
        }
        while s.map.len() >= PER_SHARD {
            match s.order.pop_front() {
                Some(old) => {
                    s.map.remove(&old);
                }
                None => break,
            }
        }
        s.order.push_back(token.into());
        s.map.insert(token.into(), v);
        // Entries removed on expiry leave their name in the queue; drop such names so the
        // queue stays as bounded as the map.
        if s.order.len() > 2 * PER_SHARD {
            let Shard { map, order } = &mut *s;
            order.retain(|t| map.contains_key(t));
        }
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keys::Alg;

    fn verified(exp: Option<i64>) -> Arc<Verified> {
        Arc::new(Verified {
            alg: Alg::HS256,
            header: Default::default(),
            claims: Default::default(),
            exp,
            nbf: None,
        })
    }

    #[test]
    fn bounded_and_never_past_exp() {
        let c = VerifiedCache::default();
        for i in 0..5_000 {
            c.put(&format!("token-{i}"), verified(None), 0);
        }
        assert!(c.cached() <= SHARDS * PER_SHARD, "{}", c.cached());
        assert!(c.get("token-4999", 0).is_some(), "the newest is kept");
        c.put("short-lived", verified(Some(100)), 50);
        assert!(c.get("short-lived", 99).is_some());
        assert!(c.get("short-lived", 100).is_none(), "served at its exp");
        c.put("already-expired", verified(Some(10)), 50);
        assert!(
            c.get("already-expired", 0).is_none(),
            "stored though expired"
        );
        c.put(&"x".repeat(MAX_CACHED_TOKEN + 1), verified(None), 0);
        assert!(c.get(&"x".repeat(MAX_CACHED_TOKEN + 1), 0).is_none());
    }
}
