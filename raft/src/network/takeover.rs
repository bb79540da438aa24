//! A quicker election after a leader is lost, without pre-vote.
//!
//! openraft 0.9 has no pre-vote, and each node draws its election timeout once. When
//! the leader is lost, the follower with the shorter timeout campaigns first; if its log
//! is a few entries behind the other follower's (usual under write load: the leader
//! replicates to each in turn), that follower rightly refuses it, and then campaigns
//! itself only when its own timer fires — often into the term the first candidate
//! already took, which costs one more election timeout. The write unavailability after
//! a leader loss then doubles.
//!
//! The follower that refuses a candidate for being behind knows better: its log is the
//! more complete one, and if it has not heard from any leader for a whole lease, the
//! leader is gone for it too. So it campaigns at once, and once more a moment later if
//! that first campaign met the other candidate's vote in the same term. Elections are
//! always safe in Raft; this only changes who stands and when, and it never disturbs a
//! leader this node still hears from.

use std::time::Duration;

use openraft::ServerState;

use super::peer::Peers;
use crate::types::Raft;

/// How long the first campaign gets before the second: a vote round trip on a LAN.
const SECOND_TRY_AFTER: Duration = Duration::from_millis(25);

/// Called when this node has just refused a vote to a candidate whose log is behind its
/// own.
pub(crate) fn behind_candidate(raft: &Raft, peers: &Peers) {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    if peers.since_any_leader().is_some_and(|d| d < lease) {
        return;
    }
    if raft.metrics().borrow().state != ServerState::Follower {
        return;
    }
    let raft = raft.clone();
    tokio::spawn(async move {
        for _ in 0..2 {
            if raft.trigger().elect().await.is_err() {
                return;
            }
            tokio::time::sleep(SECOND_TRY_AFTER).await;
            let m = raft.metrics().borrow().clone();
            if m.current_leader.is_some() || m.state == ServerState::Leader {
                return;
            }
        }
    });
}
