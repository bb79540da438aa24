//! Leadership transfer: the leader hands over to a voter it names, for maintenance of
//! the leader's machine, or to move the leader next to the clients.
//!
//! openraft 0.9 has no transfer, but it has what one needs. A voter grants its vote to
//! a candidate whose log is at least as complete as its own, unless it is inside the
//! lease of a leader it knows; and the leader's own lease runs from its election, not
//! from its heartbeats. So once the leader has led for a lease, it can stop proposing,
//! let the target match its whole log, and ask it to campaign: the target's vote and the
//! old leader's make a majority of three at once, and the old leader steps down as it
//! votes. With more voters the target also needs followers whose lease has run out: it
//! wins a lease after the last heartbeat, by its own campaign or its election timer.
//!
//! While the transfer runs, proposals and read-index rounds wait at the [`Handover`]
//! gate (an entry appended now would put the target behind, and a heartbeat would renew
//! the followers' leases). Once the old leader has stepped down they go on, and fail
//! with "not the leader, it is node N", which sends them to the new one: a write is
//! held for the handover, never refused because of it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::membership::{MembershipDone, MembershipError};
use super::peer::{request, CallError, Peers};
use super::proto::Payload;
use super::{decode, encode};
use crate::types::Raft;
use crate::NodeId;

/// A little over a lease, so that clock reads on two nodes never disagree about whether
/// it has run out.
const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// The least time writes already proposed get to commit before a transfer is given up: a
/// busy node may take a few hundred milliseconds, and giving up costs a retry.
const SETTLE_AT_LEAST: Duration = Duration::from_secs(1);

type Metrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;

/// What the leader sends the voter it hands over to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectNow {
    pub leader: NodeId,
    pub term: u64,
}

/// A node's transfer gate, and when it started leading (cheap to share).
#[derive(Debug)]
pub(crate) struct Handover {
    held: watch::Sender<bool>,
    /// Read-held by each proposal from the moment it passes the gate until its outcome
    /// is known: a transfer that closed the gate takes it once, to know that every
    /// proposal already past the gate is in the log, before it looks at the log's end.
    passing: Arc<tokio::sync::RwLock<()>>,
    /// The term this node leads and since when, as its metrics first showed it.
    leading: Arc<Mutex<Option<(u64, Instant)>>>,
}

impl Handover {
    /// Starts watching `raft` for the moments it becomes leader (on the current tokio
    /// runtime; the watch ends with the Raft).
    pub(crate) fn new(raft: &Raft) -> Arc<Handover> {
        let leading: Arc<Mutex<Option<(u64, Instant)>>> = Arc::default();
        let mut rx = raft.metrics();
        let record = leading.clone();
        tokio::spawn(async move {
            loop {
                {
                    let m = rx.borrow_and_update();
                    let mut l = record.lock().unwrap_or_else(PoisonError::into_inner);
                    match *l {
                        Some((term, _))
                            if m.state == ServerState::Leader && term == m.current_term => {}
                        _ if m.state == ServerState::Leader => {
                            *l = Some((m.current_term, Instant::now()));
                        }
                        _ => *l = None,
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Arc::new(Handover {
            held: watch::channel(false).0,
            passing: Arc::default(),
            leading,
        })
    }

    /// Waits while a transfer holds proposals and read rounds.
    pub(crate) async fn passable(&self) {
        let mut rx = self.held.subscribe();
        // The sender lives as long as `self`: wait_for ends only when the gate opens.
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// Waits for the gate to open, for a proposal: keep the guard until its outcome is
    /// known.
    pub(crate) async fn pass(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        loop {
            self.passable().await;
            let guard = self.passing.clone().read_owned().await;
            // A transfer may have closed the gate while this waited for the lock.
            if !*self.held.borrow() {
                return guard;
            }
        }
    }

    /// How long this node has led in `term`, if it leads in it.
    fn leading_for(&self, term: u64) -> Option<Duration> {
        let l = self.leading.lock().unwrap_or_else(PoisonError::into_inner);
        l.filter(|(t, _)| *t == term)
            .map(|(_, since)| since.elapsed())
    }

    /// Closes the gate until the returned guard drops.
    fn hold<'a>(&'a self, raft: &'a Raft) -> Hold<'a> {
        self.held.send_replace(true);
        Hold {
            handover: self,
            raft,
            quiet: false,
        }
    }
}

/// A transfer under way: dropping it (on success, failure or cancellation alike) opens
/// the gate, and brings the heartbeats back if [`Hold::quiet`] stopped them.
struct Hold<'a> {
    handover: &'a Handover,
    raft: &'a Raft,
    quiet: bool,
}

impl Hold<'_> {
    /// Stops heartbeats, so that followers' leases run out.
    fn quiet(&mut self) {
        self.quiet = true;
        self.raft.runtime_config().heartbeat(false);
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if self.quiet {
            self.raft.runtime_config().heartbeat(true);
        }
        self.handover.held.send_replace(false);
    }
}

/// Keeps this node from campaigning until dropped.
struct NoCampaign<'a>(&'a Raft);

impl<'a> NoCampaign<'a> {
    fn new(raft: &'a Raft) -> Self {
        raft.runtime_config().elect(false);
        NoCampaign(raft)
    }
}

impl Drop for NoCampaign<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().elect(true);
    }
}

/// Hands leadership from this node, which must lead, to voter `to`, and answers once
/// another leader is elected (normally `to`), within `timeout`. The caller holds the
/// membership lock, so no change of members runs meanwhile.
pub(crate) async fn transfer(
    raft: &Raft,
    peers: &Peers,
    handover: &Handover,
    to: NodeId,
    timeout: Duration,
) -> Result<MembershipDone, MembershipError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let left = |at_most: Duration| {
        at_most.min(deadline.saturating_duration_since(tokio::time::Instant::now()))
    };
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(MembershipError::NotLeader {
            leader: m.current_leader,
        });
    }
    let done = MembershipDone {
        log_index: m.last_applied.map_or(0, |l| l.index),
    };
    if to == m.id {
        return Ok(done);
    }
    let membership = m.membership_config.membership();
    if !membership.voter_ids().any(|v| v == to) {
        return Err(match membership.get_node(&to) {
            Some(_) => {
                MembershipError::Invalid(format!("node {to} is a learner: only a voter can lead"))
            }
            None => MembershipError::NotFound(to),
        });
    }
    let term = m.current_term;
    // This node grants the target its vote only outside its own lease, which runs from
    // its election.
    match handover.leading_for(term) {
        Some(led) if led < lease + LEASE_MARGIN => {
            tokio::time::sleep(left(lease + LEASE_MARGIN - led)).await;
        }
        Some(_) => {}
        None => {
            return Err(MembershipError::NotLeader {
                leader: m.current_leader,
            })
        }
    }
    // Heartbeats go on while the target catches up: they change no log, and without
    // them a follower would campaign after an election timeout of its own.
    let mut hold = handover.hold(raft);
    // Every proposal that passed the gate before it closed has its outcome once the
    // passing lock is free: from then on the log's end stays where it is.
    let settle = left((lease * 2).max(SETTLE_AT_LEAST));
    let settled = tokio::time::timeout(settle, handover.passing.write()).await;
    drop(settled.map_err(|_| MembershipError::NotTakenOver {
        id: to,
        reason: format!("the writes under way did not commit within {settle:?}"),
    })?);
    // The target may still be receiving the last of them: if it cannot match them in as
    // long, it is not in a state to lead.
    matched_all(raft, to, term, left(settle)).await?;
    // With more than three voters the target needs votes from followers too, which
    // they grant once a lease has passed without a heartbeat. (With three, the old
    // leader's vote is the one it needs, and that lease ran from its election.)
    if membership.voter_ids().count() > 3 {
        hold.quiet();
        tokio::time::sleep(left(lease + LEASE_MARGIN)).await;
    }
    // Having voted for the target, this node must not stand against it either.
    let _no_campaign = NoCampaign::new(raft);
    match peers
        .elect_now(to, &ElectNow { leader: m.id, term }, left(lease))
        .await
    {
        Ok(()) => {}
        // Sent but not answered: the target may be campaigning. Keep holding, as if it
        // had said yes, so that new entries do not leave it behind and turn its
        // campaign into a full election.
        Err(MembershipError::Unknown(_)) => {}
        Err(e) => return Err(e),
    }
    // The gate opens as soon as this node has voted for the target and stepped down:
    // what it held is then answered "not the leader" at once, a round trip before the
    // others hear of the new leader, so forwarding nodes go to the new one rather than
    // give up on this one.
    let within = left(lease * 3);
    let stepped_down = left_term(raft, term, within).await;
    drop(hold);
    // The target normally wins in one vote round trip. With more than three voters it
    // may need the followers' leases to run out first, and its election timer after.
    if stepped_down && new_leader(raft, term, left(within)).await {
        Ok(done)
    } else {
        Err(MembershipError::Unknown(format!(
            "node {to} was asked to take over, but no new leader was seen within {:?}",
            lease * 3
        )))
    }
}

/// Waits until voter `to` has matched this leader's whole log in `term`.
async fn matched_all(
    raft: &Raft,
    to: NodeId,
    term: u64,
    within: Duration,
) -> Result<(), MembershipError> {
    let leads = |m: &Metrics| m.state == ServerState::Leader && m.current_term == term;
    let matched = |m: &Metrics| {
        let at = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&to).cloned().flatten());
        at.is_some_and(|l| Some(l.index) >= m.last_log_index)
    };
    // Settles when either holds; which one is read from the metrics after.
    metrics_show(raft, within, |m| !leads(m) || matched(m)).await;
    let m = raft.metrics().borrow().clone();
    if !leads(&m) {
        Err(MembershipError::NotLeader {
            leader: m.current_leader,
        })
    } else if matched(&m) {
        Ok(())
    } else {
        Err(MembershipError::NotTakenOver {
            id: to,
            reason: format!("it has not matched the leader's log within {within:?}"),
        })
    }
}

/// Whether this node sees a leader elected after `term` within `within`.
async fn new_leader(raft: &Raft, term: u64, within: Duration) -> bool {
    metrics_show(raft, within, |m| {
        m.current_term > term && m.current_leader.is_some()
    })
    .await
}

/// Whether this node has moved past `term` (it voted in a newer one) within `within`.
async fn left_term(raft: &Raft, term: u64, within: Duration) -> bool {
    metrics_show(raft, within, |m| m.current_term > term).await
}

async fn metrics_show(raft: &Raft, within: Duration, what: impl Fn(&Metrics) -> bool) -> bool {
    let mut rx = raft.metrics();
    let wait = async {
        loop {
            if what(&rx.borrow_and_update()) {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(within, wait).await.unwrap_or(false)
}

/// The target's side: campaigns at once if this node is a voter that still follows
/// `leader` in `term` (a request that arrives late, after another election, changes
/// nothing).
pub(crate) async fn elect_now(raft: &Raft, req: &ElectNow) -> Result<(), String> {
    {
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Follower
            || m.current_term != req.term
            || m.current_leader != Some(req.leader)
        {
            return Err(format!(
                "node {} is a {:?} in term {} with leader {:?}, not a follower of node {} in term {}",
                m.id, m.state, m.current_term, m.current_leader, req.leader, req.term
            ));
        }
    }
    raft.trigger()
        .elect()
        .await
        .map_err(|e| format!("raft stopped: {e}"))
}

impl Peers {
    /// Asks voter `to` to campaign (see [`elect_now`]). Fails as `NotTakenOver` when it
    /// refuses (nothing changed), `Unreachable` when the request was not sent, and
    /// `Unknown` when it was sent but not answered (it may be campaigning).
    async fn elect_now(
        &self,
        to: NodeId,
        req: &ElectNow,
        timeout: Duration,
    ) -> Result<(), MembershipError> {
        let peer = self
            .peer_by_id(to)
            .ok_or_else(|| MembershipError::Unreachable {
                target: to,
                reason: "no address known for this node".into(),
            })?;
        let data = encode(req).map_err(|e| MembershipError::Invalid(e.to_string()))?;
        let reply = peer
            .call(timeout, |mut client| async move {
                client.elect_now(request(Payload { data }, timeout)).await
            })
            .await;
        match reply {
            Err(CallError::NotSent(reason)) => {
                Err(MembershipError::Unreachable { target: to, reason })
            }
            Err(e) => Err(MembershipError::Unknown(format!(
                "node {to} was asked to take over, with no answer: {e}"
            ))),
            Ok(p) => match decode::<Result<(), String>>(&p.data) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(MembershipError::NotTakenOver { id: to, reason }),
                Err(e) => Err(MembershipError::Unknown(format!("unreadable answer: {e}"))),
            },
        }
    }
}
