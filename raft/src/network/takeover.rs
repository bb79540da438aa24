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
//! always safe in Raft; this only changes who stands and when. It never disturbs a
//! leader this node still hears from (or has heard from within a lease, counting from
//! its own start), nor a candidate it has just voted for.

use std::time::Duration;

use openraft::{RaftMetrics, ServerState};

use super::peer::Peers;
use crate::types::Raft;
use crate::NodeId;

/// How long the first campaign gets before the second: a vote round trip on a LAN.
const SECOND_TRY_AFTER: Duration = Duration::from_millis(25);

/// Called when this node has just refused a vote to `candidate`, whose log is behind
/// its own.
pub(crate) fn behind_candidate(raft: &Raft, peers: &Peers, candidate: Option<NodeId>) {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let term = raft.metrics().borrow().vote.leader_id().term;
    if peers.since_any_leader() < lease || !may_campaign(&raft.metrics().borrow(), term, candidate)
    {
        return;
    }
    // With four voters or more, several followers may be ahead of the same candidate:
    // a random pause of up to a quarter lease keeps them from all standing at once.
    // With three there is only one, and it stands at once.
    let voters = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .count();
    let jitter = if voters > 3 {
        Duration::from_millis(fastrand::u64(0..=lease.as_millis() as u64 / 4))
    } else {
        Duration::ZERO
    };
    let raft = raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(jitter).await;
        // The first campaign may meet the behind candidate's own vote in the same term
        // and lose; the second, a term later, then wins its vote.
        for _ in 0..2 {
            let ok = may_campaign(&raft.metrics().borrow(), term, candidate);
            if !ok || raft.trigger().elect().await.is_err() {
                return;
            }
            tokio::time::sleep(SECOND_TRY_AFTER).await;
        }
    });
}

/// Whether this node may still stand, `term` being its term when it refused the behind
/// `candidate`: not a leader, no leader elected since, and no vote given to another
/// candidate (one that may be about to win). Its vote may name the behind candidate
/// without having been given: a refused candidate's answer to this node's own campaign
/// carries its vote, which this node then takes as the greater one.
fn may_campaign(
    m: &RaftMetrics<NodeId, openraft::BasicNode>,
    term: u64,
    candidate: Option<NodeId>,
) -> bool {
    let voted_for = m.vote.leader_id().voted_for();
    let backs_other = !m.vote.is_committed() && voted_for != Some(m.id) && voted_for != candidate;
    let new_leader = m.current_leader.is_some() && m.vote.leader_id().term > term;
    matches!(m.state, ServerState::Follower | ServerState::Candidate) && !new_leader && !backs_other
}
