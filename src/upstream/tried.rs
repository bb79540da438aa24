//! What one request remembers between its attempts.

/// The servers one request has already tried, plus the per-request state nginx keeps in its
/// `peer.data` (the running ip_hash / hash value, the rehash counter, the 20-try budget, and
/// whether the request has moved on to the backup servers). Create one per request and pass
/// it to every [`super::Upstream::select`] of that request.
#[derive(Debug, Clone, Default)]
pub struct Tried {
    /// Peers 0..64, the common case, without allocating.
    low: u64,
    /// Peers 64.. in 64-bit words.
    high: Vec<u64>,
    /// Once the primaries are exhausted nginx switches the request to the backup list for
    /// good; a primary that recovers meanwhile is not offered to this request again.
    pub(super) backup: bool,
    /// nginx's per-request `tries` of the hash and random methods (not the attempts count).
    pub(super) tries: u32,
    /// ip_hash: the running hash (starts at 89). hash: the accumulated value (starts at 0).
    /// hash consistent: the index of the current ring point. `None` until first used.
    pub(super) hash: Option<u64>,
    /// hash: how many times the key has been rehashed.
    pub(super) rehash: u64,
}

impl Tried {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many servers this request has tried.
    pub fn count(&self) -> usize {
        let high: u32 = self.high.iter().map(|w| w.count_ones()).sum();
        (self.low.count_ones() + high) as usize
    }

    pub fn contains(&self, id: usize) -> bool {
        let bit = 1u64 << (id % 64);
        match id / 64 {
            0 => self.low & bit != 0,
            n => self.high.get(n - 1).is_some_and(|w| w & bit != 0),
        }
    }

    pub(super) fn insert(&mut self, id: usize) {
        let bit = 1u64 << (id % 64);
        match id / 64 {
            0 => self.low |= bit,
            n => {
                if self.high.len() < n {
                    self.high.resize(n, 0);
                }
                self.high[n - 1] |= bit;
            }
        }
    }
}
