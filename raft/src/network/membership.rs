//! Membership changes and the leader's view of replication: what `/api/2/cluster/` needs.
//!
//! Both run on the leader, because only the leader knows them: openraft changes
//! membership only there, and only the leader tracks how far each follower has matched
//! its log. A node that is not the leader asks the leader over the Raft port
//! ([`Peers::change_membership`], [`Peers::leader_view`]); a node that is runs the same
//! functions directly.
//!
//! A node joins as a learner, is promoted to voter once it has caught up with the log
//! up to its own admission, and only then counts toward the quorum — so adding a node
//! that is down or far behind never costs the cluster its write availability. Changes
//! run one at a time on the leader: a second concurrent change is refused (409 in the
//! API) rather than queued behind an add that may wait minutes for a catch-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};

use super::peer::{request, CallError, Peers};
use super::proto::Payload;
use super::{decode, encode};
use crate::types::Raft;
use crate::NodeId;

/// One change to the cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add `id` at `addr` as a learner, wait for it to catch up, then (if `voter`)
    /// promote it to voter. Adding a node that is already a member at the same address
    /// finishes whatever is missing (promotion), so a retry after a timeout is safe.
    Add {
        id: NodeId,
        addr: String,
        voter: bool,
    },
    /// Remove `id` (voter or learner) from the membership.
    Remove { id: NodeId },
    /// Hand leadership to voter `to` (see `handover`). The members stay the same; it is
    /// here because it runs like a change: on the leader, one at a time, never during a
    /// change of members.
    TransferLeader { to: NodeId },
}

/// What a membership change answered when it took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipDone {
    /// The log index of the last membership entry the change committed (or of the
    /// current membership when nothing needed changing): a caller waits for its own node
    /// to apply it before answering, so its next read sees the new membership.
    pub log_index: u64,
}

/// Why a membership change did not (certainly) take effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipError {
    /// The node asked is not the leader (nothing changed); it names the leader it knows.
    NotLeader { leader: Option<NodeId> },
    /// The leader could not be reached: nothing was sent.
    Unreachable { target: NodeId, reason: String },
    /// Another change is running, or the cluster is between two configurations.
    InProgress(String),
    /// The change cannot be made as asked (it would leave no voter, or names an address
    /// that contradicts the member's).
    Invalid(String),
    /// No such member.
    NotFound(NodeId),
    /// The node was added as a learner but did not catch up in time, so it was not
    /// promoted. Repeating the same add finishes the job.
    NotCaughtUp { id: NodeId, reason: String },
    /// A leadership transfer to `id` was given up before it asked `id` to stand: the
    /// leader still leads, and nothing changed.
    NotTakenOver { id: NodeId, reason: String },
    /// The change may or may not have committed (timeout, lost answer).
    Unknown(String),
}

impl std::fmt::Display for MembershipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MembershipError::NotLeader { leader: Some(l) } => {
                write!(f, "not the leader; leader is node {l}")
            }
            MembershipError::NotLeader { leader: None } => f.write_str("no leader"),
            MembershipError::Unreachable { target, reason } => {
                write!(f, "leader node {target} unreachable: {reason}")
            }
            MembershipError::InProgress(r) => write!(f, "membership change in progress: {r}"),
            MembershipError::Invalid(r) => f.write_str(r),
            MembershipError::NotFound(id) => write!(f, "node {id} is not a member"),
            MembershipError::NotCaughtUp { id, reason } => write!(
                f,
                "node {id} was added as a learner but has not caught up, so it is not a voter yet ({reason}); repeat the request to finish"
            ),
            MembershipError::NotTakenOver { id, reason } => write!(
                f,
                "node {id} did not take over ({reason}); nothing changed"
            ),
            MembershipError::Unknown(r) => write!(f, "membership change outcome unknown: {r}"),
        }
    }
}

impl std::error::Error for MembershipError {}

/// Runs `change` on this node, which must be the leader; at most one at a time per
/// `peers` (one per node). `timeout` bounds the whole change, catch-up included.
/// `proposer` is this node's: a leadership transfer holds its proposals.
pub async fn change_membership(
    raft: &Raft,
    peers: &Peers,
    proposer: &super::Proposer,
    change: MembershipChange,
    timeout: Duration,
) -> Result<MembershipDone, MembershipError> {
    let _one_at_a_time = peers.membership_lock().try_lock().map_err(|_| {
        MembershipError::InProgress("another membership change is running on the leader".into())
    })?;
    let deadline = Instant::now() + timeout;
    let metrics = raft.metrics().borrow().clone();
    if metrics.state != ServerState::Leader {
        return Err(MembershipError::NotLeader {
            leader: metrics.current_leader,
        });
    }
    let membership = metrics.membership_config.membership().clone();
    let current_index = metrics.membership_config.log_id().map_or(0, |l| l.index);
    let is_voter = |id: NodeId| membership.voter_ids().any(|v| v == id);
    match change {
        MembershipChange::Add { id, addr, voter } => {
            if !super::is_host_port(&addr) {
                return Err(MembershipError::Invalid(format!(
                    "address {addr:?} is not host:port"
                )));
            }
            let mut index = current_index;
            match membership.get_node(&id) {
                Some(n) if n.addr != addr => {
                    return Err(MembershipError::Invalid(format!(
                        "node {id} is already a member at {}; remove it first to move it",
                        n.addr
                    )))
                }
                Some(_) => {}
                None => {
                    let node = BasicNode { addr: addr.clone() };
                    let r = within(deadline, raft.add_learner(id, node, false)).await?;
                    index = r.map_err(write_error)?.log_id.index;
                }
            }
            if voter && !is_voter(id) {
                wait_caught_up(raft, id, index, deadline).await?;
                let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                let r = within(deadline, raft.change_membership(add, false)).await?;
                index = r.map_err(write_error)?.log_id.index;
            }
            Ok(MembershipDone { log_index: index })
        }
        MembershipChange::Remove { id } => {
            if membership.get_node(&id).is_none() {
                return Err(MembershipError::NotFound(id));
            }
            let remove = if is_voter(id) {
                if membership.voter_ids().count() == 1 {
                    return Err(MembershipError::Invalid(format!(
                        "node {id} is the only voter; a cluster cannot remove its last voter"
                    )));
                }
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            let r = within(deadline, raft.change_membership(remove, false)).await?;
            let index = r.map_err(write_error)?.log_id.index;
            Ok(MembershipDone { log_index: index })
        }
        MembershipChange::TransferLeader { to } => {
            let left = deadline.saturating_duration_since(Instant::now());
            super::handover::transfer(raft, peers, proposer.handover(), to, left).await
        }
    }
}

/// Runs `f` until `deadline`; past it the outcome is unknown (it may have committed).
async fn within<T>(
    deadline: Instant,
    f: impl std::future::Future<Output = T>,
) -> Result<T, MembershipError> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, f)
        .await
        .map_err(|_| MembershipError::Unknown("not confirmed within the deadline".to_string()))
}

type WriteErr = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

fn write_error(e: WriteErr) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => match c {
            ChangeMembershipError::InProgress(p) => MembershipError::InProgress(p.to_string()),
            ChangeMembershipError::EmptyMembership(e) => MembershipError::Invalid(e.to_string()),
            ChangeMembershipError::LearnerNotFound(l) => MembershipError::NotFound(l.node_id),
        },
        RaftError::Fatal(f) => MembershipError::Unknown(format!("raft stopped: {f}")),
    }
}

/// Waits until the leader has replicated to learner `id` at least up to `index` (the
/// entry that admitted it): from then on it only needs the live stream, and promoting
/// it cannot stall the quorum behind a long catch-up.
async fn wait_caught_up(
    raft: &Raft,
    id: NodeId,
    index: u64,
    deadline: Instant,
) -> Result<(), MembershipError> {
    let mut rx = raft.metrics();
    let wait = async {
        loop {
            let matched = rx
                .borrow_and_update()
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map(|l| l.index);
            if matched.is_some_and(|m| m >= index) {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(MembershipError::Unknown("raft stopped".into()));
            }
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, wait).await {
        Ok(r) => r,
        Err(_) => Err(MembershipError::NotCaughtUp {
            id,
            reason: format!("its log has not reached index {index}; is it running?"),
        }),
    }
}

/// What only the leader knows: how far each member has matched its log, and when it
/// last answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderView {
    pub leader: NodeId,
    pub term: u64,
    pub last_log_index: Option<u64>,
    /// The highest index a majority of voters has matched: the commit index.
    pub commit_index: Option<u64>,
    pub members: BTreeMap<NodeId, MemberView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub matched_index: Option<u64>,
    /// Milliseconds since the leader last had an answer from this member (0 for itself).
    pub last_contact_ms: Option<u64>,
}

/// The leader's view, or `None` when this node is not the leader.
pub fn leader_view(raft: &Raft, peers: &Peers) -> Option<LeaderView> {
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return None;
    }
    let replication = m.replication.clone().unwrap_or_default();
    let membership = m.membership_config.membership();
    let matched = |id: NodeId| -> Option<u64> {
        if id == m.id {
            m.last_log_index
        } else {
            replication.get(&id).cloned().flatten().map(|l| l.index)
        }
    };
    let mut voters: Vec<u64> = membership
        .voter_ids()
        .map(|v| matched(v).unwrap_or(0))
        .collect();
    voters.sort_unstable_by(|a, b| b.cmp(a));
    let commit_index = voters.get(voters.len() / 2).copied();
    let members = membership
        .nodes()
        .map(|(id, _)| {
            let contact = if *id == m.id {
                Some(0)
            } else {
                peers.since_contact(*id).map(duration_ms)
            };
            (
                *id,
                MemberView {
                    matched_index: matched(*id),
                    last_contact_ms: contact,
                },
            )
        })
        .collect();
    Some(LeaderView {
        leader: m.id,
        term: m.current_term,
        last_log_index: m.last_log_index,
        commit_index,
        members,
    })
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Peers {
    /// Asks `leader` to run `change` (see [`change_membership`]).
    pub async fn change_membership(
        &self,
        leader: NodeId,
        change: &MembershipChange,
        timeout: Duration,
    ) -> Result<MembershipDone, MembershipError> {
        let peer = self
            .peer_by_id(leader)
            .ok_or_else(|| MembershipError::Unreachable {
                target: leader,
                reason: "no address known for this node".into(),
            })?;
        let data = encode(change).map_err(|e| MembershipError::Invalid(e.to_string()))?;
        let server_deadline = timeout + Duration::from_millis(500);
        let deadline = server_deadline + self.config().connect_timeout;
        let reply = peer
            .call(deadline, |mut client| async move {
                client
                    .change_membership(request(Payload { data }, server_deadline))
                    .await
            })
            .await;
        match reply {
            Err(CallError::NotSent(reason)) => Err(MembershipError::Unreachable {
                target: leader,
                reason,
            }),
            Err(e) => Err(MembershipError::Unknown(e.to_string())),
            Ok(p) => {
                decode::<Result<MembershipDone, MembershipError>>(&p.data).unwrap_or_else(|e| {
                    Err(MembershipError::Unknown(format!("unreadable answer: {e}")))
                })
            }
        }
    }

    /// Asks `leader` for its [`LeaderView`]; `None` when it cannot be had in `timeout`
    /// or the node asked is not the leader.
    pub async fn leader_view_of(&self, leader: NodeId, timeout: Duration) -> Option<LeaderView> {
        let peer = self.peer_by_id(leader)?;
        let reply = peer
            .call(timeout, |mut client| async move {
                client
                    .leader_view(request(Payload::default(), timeout))
                    .await
            })
            .await
            .ok()?;
        decode::<Option<LeaderView>>(&reply.data).ok().flatten()
    }
}
