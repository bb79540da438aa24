//! `random` and `random two`.

use super::{Group, State, Tried, HASH_TRIES};

impl Group {
    /// `ngx_http_upstream_peek_random_peer`: a primary chosen with probability proportional
    /// to its weight.
    fn peek(&self, st: &mut State) -> usize {
        let x = st.rng.u64(0..self.total_weight);
        let (mut i, mut j) = (0, self.primaries);
        while j - i > 1 {
            let k = (i + j) / 2;
            if x < self.ranges[k] {
                j = k;
            } else {
                i = k;
            }
        }
        i
    }

    /// `ngx_http_upstream_get_random_peer`.
    pub(super) fn random_get(&self, st: &mut State, tried: &mut Tried, now: u64) -> Option<usize> {
        if tried.tries > HASH_TRIES || self.primaries < 2 {
            return self.rr_get(st, tried, now);
        }
        loop {
            let id = self.peek(st);
            if self.usable(id, tried, now) {
                return Some(id);
            }
            tried.tries += 1;
            if tried.tries > HASH_TRIES {
                return self.rr_get(st, tried, now);
            }
        }
    }

    /// `ngx_http_upstream_get_random2_peer`: two different usable primaries by weight, then
    /// the one with fewer active connections per weight (the first drawn on ties). Drawing
    /// the first of the pair also spends one of the request's tries, as in nginx.
    pub(super) fn random2_get(&self, st: &mut State, tried: &mut Tried, now: u64) -> Option<usize> {
        if tried.tries > HASH_TRIES || self.primaries < 2 {
            return self.rr_get(st, tried, now);
        }
        let mut prev: Option<usize> = None;
        loop {
            let id = self.peek(st);
            if prev != Some(id) && self.usable(id, tried, now) {
                if let Some(p) = prev {
                    let (a, pa) = (self.peers[id].active(), self.peers[p].active());
                    let (w, pw) = (self.peers[id].weight, self.peers[p].weight);
                    let busier = u64::from(a) * u64::from(pw) > u64::from(pa) * u64::from(w);
                    return Some(if busier { p } else { id });
                }
                prev = Some(id);
            }
            tried.tries += 1;
            if tried.tries > HASH_TRIES {
                return self.rr_get(st, tried, now);
            }
        }
    }
}
