//! What `GET /api/2/cluster` shows: this node's own Raft state, plus the leader's view of
//! every member (matched index, lag, last contact), which only the leader has. A
//! follower asks the leader for it over the Raft port; when the leader cannot be asked
//! (no leader, partitioned), those fields are `null` and the rest is still this node's
//! truth — the status page must work best exactly when the cluster is in trouble.

use std::time::Duration;

use openraft::ServerState;
use raftgate_raft::network::{self, LeaderView};
use raftgate_raft::NodeId;
use serde::Serialize;

use super::Node;

/// How long a follower waits for the leader's view before answering without it.
const LEADER_VIEW_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's id.
    pub id: NodeId,
    /// This node's Raft role: `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: &'static str,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The leader's commit index (highest index a majority of voters holds).
    pub commit_index: Option<u64>,
    /// The last index this node has applied (what its data path and local reads see).
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Entries up to here are gone from this node's log (covered by its snapshot).
    pub purged_index: Option<u64>,
    /// Milliseconds since this node last heard from the leader (0 on the leader, null
    /// when it never has).
    pub last_contact: Option<u64>,
    /// The log index of the membership in force.
    pub membership_index: Option<u64>,
    pub nodes: Vec<NodeStatus>,
    /// This node's Raft log durability work since it started.
    pub storage: StorageStatus,
    /// Sticky-learn sessions this node's data path sent to the log since it started.
    pub sessions: SessionsStatus,
}

/// What the session batcher did: `learned / entries` is the batching achieved.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct SessionsStatus {
    pub learned: u64,
    pub touched: u64,
    /// Log entries the learns and touches went out in.
    pub entries: u64,
    /// Learns and touches dropped on a full queue.
    pub dropped: u64,
    /// Batches the cluster did not take.
    pub failed: u64,
}

/// Group commit as it happens: how many appends each flush + fdatasync made durable,
/// and what a sync costs on this node's disk.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct StorageStatus {
    /// flush + fdatasync rounds.
    pub syncs: u64,
    /// Log appends made durable (one per batch of entries openraft appends).
    pub appends: u64,
    /// Votes saved.
    pub votes: u64,
    /// Mean microseconds per sync.
    pub sync_us: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    /// The node's Raft address.
    pub address: String,
    /// `leader`, `voter` or `learner`.
    pub role: &'static str,
    pub voter: bool,
    /// How far the leader knows this node's log matches its own.
    pub matched_index: Option<u64>,
    /// Entries the leader has that this node has not matched yet.
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from this node.
    pub last_contact: Option<u64>,
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl Node {
    /// The cluster as this node sees it, with the leader's replication view when the
    /// leader can be asked.
    pub async fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let view: Option<LeaderView> = match m.current_leader {
            Some(l) if l == self.id => network::leader_view(&self.raft, &self.peers),
            Some(l) => self.peers.leader_view_of(l, LEADER_VIEW_TIMEOUT).await,
            None => None,
        };
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, node)| {
                let voter = voters.contains(id);
                let member = view.as_ref().and_then(|v| v.members.get(id));
                let matched = member.and_then(|x| x.matched_index);
                let lag = view
                    .as_ref()
                    .and_then(|v| v.last_log_index)
                    .map(|last| last.saturating_sub(matched.unwrap_or(0)));
                NodeStatus {
                    id: *id,
                    address: node.addr.clone(),
                    role: if Some(*id) == m.current_leader {
                        "leader"
                    } else if voter {
                        "voter"
                    } else {
                        "learner"
                    },
                    voter,
                    matched_index: matched,
                    lag: member.and(lag),
                    last_contact: member.and_then(|x| x.last_contact_ms),
                }
            })
            .collect();
        let last_contact = match m.current_leader {
            Some(l) if l == self.id => Some(0),
            Some(l) => self
                .peers
                .since_contact(l)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => None,
        };
        ClusterStatus {
            id: self.id,
            state: state_name(m.state),
            leader: m.current_leader,
            term: m.current_term,
            commit_index: view.as_ref().and_then(|v| v.commit_index),
            applied_index: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            last_contact,
            membership_index: m.membership_config.log_id().map(|l| l.index),
            nodes,
            storage: {
                let c = self.log.sync_counts();
                StorageStatus {
                    syncs: c.syncs,
                    appends: c.appends,
                    votes: c.votes,
                    sync_us: c.sync_micros.checked_div(c.syncs).unwrap_or(0),
                }
            },
            sessions: {
                use std::sync::atomic::Ordering::Relaxed;
                let st = &self.sessions.stats;
                SessionsStatus {
                    learned: st.learned.load(Relaxed),
                    touched: st.touched.load(Relaxed),
                    entries: st.entries.load(Relaxed),
                    dropped: st.dropped.load(Relaxed),
                    failed: st.failed.load(Relaxed),
                }
            },
        }
    }
}
