//! Restoring a backup: `PUT /api/2/cluster/snapshot`.
//!
//! A backup is a whole state, but what a cluster holds is shaped by its configuration:
//! its `keyval_zone`s, `sticky learn` zones and upstream groups. So a restore goes zone by
//! zone and group by group. Each one that both hold gets the backup's contents under
//! this cluster's own configuration of it: a zone's keys or sessions, under its size,
//! timeout and type here; a group's API changes (drain, down, weight...) on the servers
//! this configuration names, matched by address, and the servers added through the API.
//! What only the backup has is left out; what only this cluster has stays as it was.
//! The report names each.
//!
//! Times move with the log: a key or session keeps the age it had in the backup, so a
//! restore into a cluster whose log clock is days ahead does not expire it all at once,
//! and one into a younger cluster does not make anything older.
//!
//! The deduplication table is this cluster's own and is kept: a client's retry against
//! this cluster must still find its request.

use std::collections::{BTreeMap, BTreeSet};

use super::State;
use crate::command::{Kind, Ref};
use crate::outcome::{Applied, Rejected, RestoreReport};

impl State {
    pub(super) fn restore(&mut self, snapshot: &[u8], now_ms: u64) -> Result<Applied, Rejected> {
        let backup = State::from_snapshot(snapshot).map_err(|e| Rejected::BadSnapshot {
            reason: e.to_string(),
        })?;
        let State {
            log_time_ms: then,
            keyval,
            sticky,
            upstreams,
            dedup: _,
        } = backup;
        let shift = |t: u64| -> u64 {
            let moved = i128::from(t) + i128::from(now_ms) - i128::from(then);
            u64::try_from(moved.max(0)).unwrap_or(u64::MAX)
        };
        let mut report = RestoreReport::default();
        merge(
            &mut self.keyval,
            keyval,
            |z| path(z, "keyvals"),
            &mut report,
            |mine, theirs| mine.restore(theirs, shift),
        );
        merge(
            &mut self.sticky,
            sticky,
            |z| format!("sticky/{z}"),
            &mut report,
            |mine, theirs| mine.restore(theirs, shift),
        );
        merge(
            &mut self.upstreams,
            upstreams,
            |u| path(u, "upstreams"),
            &mut report,
            |mine, theirs| mine.restore(theirs),
        );
        Ok(Applied::Restored(report))
    }
}

fn path(r: &Ref, what: &str) -> String {
    let kind = match r.kind {
        Kind::Http => "http",
        Kind::Stream => "stream",
    };
    format!("{kind}/{what}/{}", r.name)
}

/// Gives each of `mine` that `theirs` also has the backup's contents through `take`, and
/// records what was restored, skipped and kept.
fn merge<K: Ord, V>(
    mine: &mut BTreeMap<K, V>,
    theirs: BTreeMap<K, V>,
    name: impl Fn(&K) -> String,
    report: &mut RestoreReport,
    mut take: impl FnMut(&mut V, V),
) {
    let theirs_keys: BTreeSet<String> = theirs.keys().map(&name).collect();
    for (k, v) in theirs {
        match mine.get_mut(&k) {
            Some(m) => {
                take(m, v);
                report.restored.push(name(&k));
            }
            None => report.skipped.push(name(&k)),
        }
    }
    report
        .kept
        .extend(mine.keys().map(&name).filter(|n| !theirs_keys.contains(n)));
}
