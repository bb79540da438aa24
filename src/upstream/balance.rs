//! Smooth weighted round robin and least_conn, with the switch to backup servers.

use std::ops::Range;

use super::{Group, State, Tried, Weights, WEIGHT_SCALE};

/// One round of nginx's smooth weighted round robin for one candidate: its current weight
/// grows by its effective weight, which itself recovers one unit per round after a failure
/// lowered it. `limit` is the weight it may recover to (lower while slow-starting).
pub(super) fn advance(w: &mut Weights, limit: i64, total: &mut i64) {
    if w.effective > limit {
        w.effective = limit;
    }
    w.current += w.effective;
    *total += w.effective;
    if w.effective < limit {
        w.effective = (w.effective + WEIGHT_SCALE).min(limit);
    }
}

impl Group {
    /// Whether a peer may take a new, unbound request.
    pub(super) fn usable(&self, id: usize, tried: &Tried, now: u64) -> bool {
        let p = &self.peers[id];
        !tried.contains(id) && !p.is_down() && !p.is_draining() && !p.failing(now) && !p.is_full()
    }

    fn backups(&self) -> Range<usize> {
        self.primaries..self.peers.len()
    }

    /// Run `pick` on the primaries and, when none is usable, on the backups; after the first
    /// fallback the request stays on the backups (nginx replaces `rrp->peers` with the backup
    /// list and clears its tried bits, which for our global ids is the `backup` flag).
    fn with_backups(
        &self,
        tried: &mut Tried,
        mut pick: impl FnMut(Range<usize>, &Tried) -> Option<usize>,
    ) -> Option<usize> {
        if !tried.backup {
            if let Some(id) = pick(0..self.primaries, tried) {
                return Some(id);
            }
            if self.backups().is_empty() {
                return None;
            }
            tried.backup = true;
        }
        pick(self.backups(), tried)
    }

    /// `ngx_http_upstream_get_round_robin_peer`. Also the fallback of every other method.
    pub(super) fn rr_get(&self, st: &mut State, tried: &mut Tried, now: u64) -> Option<usize> {
        self.with_backups(tried, |range, tried| {
            if self.single && range.start == 0 {
                // nginx takes the lone server without weights or failure checks.
                return self.usable(0, tried, now).then_some(0);
            }
            self.rr_pick(st, range, tried, now)
        })
    }

    /// `ngx_http_upstream_get_peer`: every usable peer gains its effective weight, the
    /// highest current weight wins (the first on ties) and pays back the round's total.
    fn rr_pick(
        &self,
        st: &mut State,
        range: Range<usize>,
        tried: &Tried,
        now: u64,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0;
        for id in range {
            if !self.usable(id, tried, now) {
                continue;
            }
            advance(
                &mut st.weights[id],
                self.peers[id].weight_limit(now),
                &mut total,
            );
            if best.is_none_or(|b| st.weights[id].current > st.weights[b].current) {
                best = Some(id);
            }
        }
        let best = best?;
        st.weights[best].current -= total;
        Some(best)
    }

    /// `ngx_http_upstream_get_least_conn_peer`.
    pub(super) fn lc_get(&self, st: &mut State, tried: &mut Tried, now: u64) -> Option<usize> {
        if self.single {
            return self.rr_get(st, tried, now);
        }
        self.with_backups(tried, |range, tried| self.lc_pick(st, range, tried, now))
    }

    /// Fewest active connections per unit of weight (compared by cross-multiplying, as nginx
    /// does); when several tie, smooth weighted round robin among exactly those. The weight is
    /// the slow-start limit, which is the configured weight (scaled) once a ramp is over.
    fn lc_pick(
        &self,
        st: &mut State,
        range: Range<usize>,
        tried: &Tried,
        now: u64,
    ) -> Option<usize> {
        // `active` drops without the lock when attempts end, so the tie test of the second
        // pass compares against the first pass's reading for `best` rather than re-reading it.
        let load = |id: usize| {
            let p = &self.peers[id];
            (
                u128::from(p.active()),
                u128::from(p.weight_limit(now).unsigned_abs()),
            )
        };
        let mut best: Option<(usize, (u128, u128))> = None;
        let mut many = false;
        for id in range.clone() {
            if !self.usable(id, tried, now) {
                continue;
            }
            let (a, w) = load(id);
            match best {
                Some((_, (ba, bw))) if a * bw > ba * w => {}
                Some((_, (ba, bw))) if a * bw == ba * w => many = true,
                _ => {
                    best = Some((id, (a, w)));
                    many = false;
                }
            }
        }
        let (first, (ba, bw)) = best?;
        if !many {
            return Some(first);
        }
        let mut chosen = first;
        let mut total = 0;
        for id in first..range.end {
            if !self.usable(id, tried, now) {
                continue;
            }
            if id != first {
                let (a, w) = load(id);
                if a * bw != ba * w {
                    continue;
                }
            }
            advance(
                &mut st.weights[id],
                self.peers[id].weight_limit(now),
                &mut total,
            );
            if st.weights[id].current > st.weights[chosen].current {
                chosen = id;
            }
        }
        st.weights[chosen].current -= total;
        Some(chosen)
    }
}
