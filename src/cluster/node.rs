//! One raftgate node's share of the cluster: the sled store, the openraft instance, its
//! gRPC server, and the two paths the API needs — a write that is committed by the
//! leader and applied here before it is answered, and a linearizable read barrier.
//!
//! Every node runs this, even alone: without a `cluster` block a node is a single-member
//! cluster in its data directory, so the same code serves `raftgate dev` and a 5-node
//! deployment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config};
use raftgate_raft::network::{
    self, ForwardError, MembershipChange, MembershipError, NetworkConfig, Peers, ReadIndexError,
};
use raftgate_raft::types::{LogId, Raft, Response};
use raftgate_raft::{Entry, NodeId};
use raftgate_storage::StateReader;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What a node needs to start.
pub struct NodeOptions {
    pub id: NodeId,
    /// The Raft gRPC listener, already bound (port 0 works), or `None` for a node that
    /// never has peers (single-node mode).
    pub listener: Option<TcpListener>,
    /// The initial members (id → address peers dial), this node included. A node that
    /// is not among them never initializes a cluster: it waits to be added.
    pub members: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub raft: Arc<Config>,
    pub network: NetworkConfig,
}

impl NodeOptions {
    /// Raft timing from `election_timeout` (T, 200 ms unless the `cluster` block says):
    /// heartbeats every T/4, and openraft's election timeout drawn from 3T/4..T. A
    /// follower that hears nothing first waits out the leader's lease (T, openraft's
    /// `election_timeout_max`) and then its own timeout, so a dead leader is replaced
    /// 1.75T–2T after its last heartbeat: 350–400 ms by default, well above a durable
    /// append (~0.3 ms) and a loopback or LAN round trip, and what keeps the write
    /// unavailability after a leader loss under half a second (docs/cluster.md).
    /// A snapshot every `snapshot_entries` entries (10,000 unless the `cluster` block
    /// says), keeping up to 1,000 entries behind it so a follower that is briefly behind
    /// catches up from the log rather than by a whole snapshot.
    pub fn raft_config(
        snapshot_entries: Option<u64>,
        election_timeout: Option<Duration>,
    ) -> Result<Arc<Config>, String> {
        let every = snapshot_entries.unwrap_or(DEFAULT_SNAPSHOT_ENTRIES);
        let t = election_timeout
            .unwrap_or(DEFAULT_ELECTION_TIMEOUT)
            .as_millis()
            .clamp(200, 60_000) as u64;
        let c = Config {
            cluster_name: "raftgate".to_string(),
            heartbeat_interval: t / 4,
            election_timeout_min: t * 3 / 4,
            election_timeout_max: t,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(every),
            max_in_snapshot_log_to_keep: every.min(1_000),
            ..Config::default()
        };
        c.validate()
            .map(Arc::new)
            .map_err(|e| format!("raft configuration: {e}"))
    }

    /// The node-to-node network for `election_timeout` T. Reconnects to a peer that is
    /// down back off to at most T/2: a node that restarts then hears from the leader
    /// well before its own first election timeout (1.75T after its start). Were it left
    /// waiting for up to a second, it would campaign at a higher term, and the leader,
    /// seeing that term in its answers, would step down for nothing: an election's worth
    /// of write unavailability after every restart of a follower.
    pub fn network_config(
        election_timeout: Option<Duration>,
        local_ip: Option<std::net::IpAddr>,
    ) -> NetworkConfig {
        let d = NetworkConfig::default();
        let t = election_timeout.unwrap_or(DEFAULT_ELECTION_TIMEOUT);
        NetworkConfig {
            local_ip,
            backoff_max: d.backoff_max.min(t / 2).max(d.backoff_base),
            ..d
        }
    }
}

/// How long followers go without a leader before electing one, unless configured.
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(200);

/// What [`Node::via_leader`] does after a failed attempt.
enum Next {
    /// Report the failure.
    Stop,
    /// Go again at once, to the leader the failure named.
    Hint(NodeId),
    /// Go again once the leader changes (or after a moment).
    Wait,
}

/// Log entries between snapshots when the `cluster` block does not say.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 10_000;

/// Why a write was not answered with the reducer's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Certainly not applied (no leader, not proposed): the API answers 503.
    NotApplied(String),
    /// Proposed, but its commit (or its apply here) was not confirmed in time: it may
    /// still apply. The API answers 504 and never claims it failed.
    Unknown(String),
}

impl From<ForwardError> for WriteError {
    fn from(e: ForwardError) -> Self {
        if e.not_applied() {
            WriteError::NotApplied(e.to_string())
        } else {
            WriteError::Unknown(e.to_string())
        }
    }
}

/// The file beside the store that names the initial members the directory's cluster
/// was formed with.
const IDENTITY_FILE: &str = "cluster-members";

fn identity(members: &BTreeMap<NodeId, String>) -> String {
    members
        .keys()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Refuses a data directory formed by a different cluster (say, a single-node `dev`
/// directory reused under a `cluster {}` block): its log would contradict the new
/// cluster's, which Raft cannot reconcile.
fn check_identity(dir: &std::path::Path, members: &BTreeMap<NodeId, String>) -> Result<(), String> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(had) if had.trim() != identity(members) && !members.is_empty() => Err(format!(
            "the data directory {} belongs to a cluster formed by nodes [{}], but this configuration's initial members are [{}]: use another data_dir, or remove this one to start afresh",
            dir.display(),
            had.trim(),
            identity(members)
        )),
        _ => Ok(()),
    }
}

fn record_identity(
    dir: &std::path::Path,
    members: &BTreeMap<NodeId, String>,
) -> Result<(), String> {
    let path = dir.join(IDENTITY_FILE);
    if path.exists() {
        return Ok(());
    }
    std::fs::write(&path, identity(members) + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opens the store, waiting (up to 5 s) for a previous holder of its lock to let go:
/// a node restarted right after it stopped may still have openraft's replication tasks
/// releasing their log readers.
async fn open_store(
    dir: &std::path::Path,
) -> Result<
    (
        raftgate_storage::LogStore,
        raftgate_storage::StateMachineStore,
    ),
    String,
> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match raftgate_storage::open(dir).await {
            Ok(x) => return Ok(x),
            Err(e) if tokio::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(format!(
                    "cannot open the Raft store in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub peers: Peers,
    /// Proposes (and batches) writes when this node leads.
    pub(super) proposer: network::Proposer,
    /// The applied state, for the data path and local reads (never waits on Raft).
    pub reader: StateReader,
    /// Where the Raft gRPC server listens, when it does.
    pub raft_addr: Option<SocketAddr>,
    /// A handle on the log store, for its sync counters (the status API).
    pub(crate) log: raftgate_storage::LogStore,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// Counts configuration loads; see [`super::configure`].
    pub(crate) configure_serial: std::sync::atomic::AtomicU64,
    /// Sticky-learn sessions on their way from the data path to the log.
    pub sessions: super::sessions::Sessions,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("raft_addr", &self.raft_addr)
            .finish_non_exhaustive()
    }
}

/// How long a write waits for a leader to appear (an election takes ~0.4 s with the
/// default election_timeout, a few of them when votes split).
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// How long a write forwarded to a leader that was just replaced still waits for its
/// answer: a round trip and a little, on a LAN.
const REPLACED_GRACE: Duration = Duration::from_millis(10);
/// How often a write or read that certainly changed nothing is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

impl Node {
    pub async fn start(o: NodeOptions) -> Result<Node, String> {
        check_identity(&o.data_dir, &o.members)?;
        let (log, sm) = open_store(&o.data_dir).await?;
        let reader = sm.reader();
        let log_handle = log.clone();
        let peers = Peers::new(o.network.clone());
        for (id, addr) in &o.members {
            peers.set_addr(*id, addr);
        }
        let raft = Raft::new(o.id, o.raft.clone(), peers.clone(), log, sm)
            .await
            .map_err(|e| format!("cannot start Raft: {e}"))?;
        peers.track(&raft);
        let proposer = network::Proposer::new(
            raft.clone(),
            o.network.commit_timeout,
            o.network.max_proposals_in_flight,
        );
        let mut raft_addr = None;
        let mut server = None;
        if let Some(listener) = o.listener {
            raft_addr = listener.local_addr().ok();
            let (tx, rx) = oneshot::channel::<()>();
            let svc = network::service_for(raft.clone(), peers.clone(), proposer.clone());
            let task = tokio::spawn(async move {
                if let Err(e) = network::serve(listener, svc, async {
                    let _ = rx.await;
                })
                .await
                {
                    crate::log_error!("raft gRPC server stopped: {e}");
                }
            });
            server = Some((tx, task));
        }
        // Every initial member initializes with the same membership when it has never
        // been initialized: openraft accepts that from all of them at once (one election
        // settles the leader), and refuses it once a node has a log or a vote, so the
        // cluster forms exactly once and a restart just rejoins from disk.
        if o.members.contains_key(&o.id) {
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| format!("raft: {e}"))?;
            if !initialized {
                let members: BTreeMap<NodeId, BasicNode> = o
                    .members
                    .iter()
                    .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                    .collect();
                if let Err(e) = raft.initialize(members).await {
                    crate::log_info!("cluster initialization skipped: {e}");
                }
            }
            record_identity(&o.data_dir, &o.members)?;
        } else {
            crate::log_info!(
                "node {} is not among the initial members: it joins when added through POST /api/2/cluster/nodes on a member",
                o.id
            );
        }
        Ok(Node {
            id: o.id,
            raft,
            peers,
            proposer,
            reader,
            raft_addr,
            log: log_handle,
            server,
            configure_serial: std::sync::atomic::AtomicU64::new(0),
            sessions: super::sessions::Sessions::default(),
        })
    }

    /// Waits for a leader to be known, up to `limit`.
    pub async fn leader(&self, limit: Duration) -> Option<NodeId> {
        if let Some(l) = self.raft.current_leader().await {
            return Some(l);
        }
        self.wait_for_leader(tokio::time::Instant::now() + limit, |_| true)
            .await
    }

    /// Watches openraft's metrics until a leader that `accept`s is known, or `until`.
    async fn wait_for_leader(
        &self,
        until: tokio::time::Instant,
        accept: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().current_leader.filter(|l| accept(*l)) {
                    return Some(l);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout_at(until, wait).await.ok().flatten()
    }

    /// Commits `entry` through the leader (proposing here or forwarding over gRPC) and
    /// returns once this node has applied it, so the writer reads its own write here,
    /// in the API and in the data path (DESIGN.md §3 promise 1).
    pub async fn write(
        &self,
        entry: Entry,
        apply_timeout: Duration,
    ) -> Result<(Response, LogId), WriteError> {
        // A write that certainly was not applied (no leader yet, the old leader gone, a
        // leader that just stepped down) waits for the election to settle and goes
        // again, within LEADER_WAIT; only then is it refused with 503.
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let (response, log_id) = self
            .via_leader(
                deadline,
                || ForwardError::NoLeader,
                |leader, _| {
                    let entry = entry.clone();
                    async move {
                        if leader == self.id {
                            return self.proposer.propose(entry).await;
                        }
                        // A leader that stops answering (paused, cut off) is replaced
                        // within an election; the write sent to it is then given up as
                        // "unknown" (it may have reached that leader's log, which the
                        // new leader may still commit) instead of waiting out the whole
                        // forward deadline, so the client can go again at once. A leader
                        // that handed over is alive and answers "not the leader" about
                        // when the new one is heard of: a moment's grace lets that
                        // certain answer win, and the write goes on to the new leader.
                        let replaced = async {
                            self.replaced(leader).await;
                            tokio::time::sleep(REPLACED_GRACE).await;
                        };
                        tokio::select! {
                            r = self.peers.forward(leader, &entry) => r,
                            () = replaced => Err(ForwardError::Unknown {
                                reason: format!(
                                    "node {leader} was replaced as leader while the write was in flight"
                                ),
                            }),
                        }
                    }
                },
                |e, leader| match e {
                    e if !e.not_applied() => Next::Stop,
                    ForwardError::NotLeader {
                        leader: Some(l), ..
                    } if *l != leader => Next::Hint(*l),
                    _ => Next::Wait,
                },
            )
            .await
            .map_err(WriteError::from)?;
        if !self.applied_here(log_id.index, apply_timeout).await {
            return Err(WriteError::Unknown(format!(
                "committed at index {} but not applied on this node within {apply_timeout:?}",
                log_id.index
            )));
        }
        Ok((response, log_id))
    }

    /// Runs `attempt` against the leader — the one a failed attempt named, else the one
    /// this node knows, waiting for an election if none — until it succeeds, `next`
    /// says to stop, or `deadline` passes. What writes, read barriers and membership
    /// changes share: a failure that certainly changed nothing (no leader yet, a leader
    /// that just moved, a peer in reconnect backoff) is retried rather than reported.
    async fn via_leader<T, E, Fut>(
        &self,
        deadline: tokio::time::Instant,
        no_leader: impl Fn() -> E,
        mut attempt: impl FnMut(NodeId, Duration) -> Fut,
        next: impl Fn(&E, NodeId) -> Next,
    ) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut hint: Option<NodeId> = None;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let leader = match hint.take() {
                Some(l) => l,
                None => self.leader(remaining).await.ok_or_else(&no_leader)?,
            };
            let e = match attempt(leader, remaining).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(e);
            }
            match next(&e, leader) {
                Next::Stop => return Err(e),
                Next::Hint(l) => hint = Some(l),
                Next::Wait => self.leader_change(leader, deadline).await,
            }
        }
    }

    /// Resolves once this node knows a leader other than `old` at a term above the one
    /// it is in now: an election that `old` did not win has finished since the call
    /// began. (Comparing terms keeps a call to a leader that this node only heard of in
    /// a hint, while its own view still names an older one, from resolving at once.)
    async fn replaced(&self, old: NodeId) {
        let mut rx = self.raft.metrics();
        let term = rx.borrow().current_term;
        loop {
            {
                let m = rx.borrow_and_update();
                if m.current_term > term && m.current_leader.is_some_and(|l| l != old) {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                // Raft stopped: nothing will replace the leader; let the call finish.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until this node sees a leader other than `old` (an election finished), for
    /// at most `RETRY_EVERY`, and never past `deadline`.
    async fn leader_change(&self, old: NodeId, deadline: tokio::time::Instant) {
        // Also go again after a moment: the same leader may simply have come back, or a
        // peer may be leaving its reconnect backoff.
        let soon = tokio::time::Instant::now() + RETRY_EVERY;
        let _ = self.wait_for_leader(deadline.min(soon), |l| l != old).await;
    }

    /// A linearizable read barrier: learns the leader's commit point (read index) and
    /// waits until this node has applied it; the caller then reads `reader` locally.
    /// Failures that change nothing (no leader yet, a peer in reconnect backoff, a leader
    /// that just moved) are retried until `timeout`.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<(), ReadIndexError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let index = self
            .via_leader(
                deadline,
                || ReadIndexError::NoLeader,
                |leader, remaining| async move {
                    if leader == self.id {
                        return self.proposer.read_index(remaining).await;
                    }
                    // A read changes nothing: when the leader asked is replaced, go
                    // again to the new one rather than wait for the old one's answer.
                    tokio::select! {
                        r = self.peers.read_index(leader) => r,
                        () = self.replaced(leader) => Err(ReadIndexError::Unavailable {
                            reason: format!("node {leader} was replaced as leader"),
                        }),
                    }
                },
                |e, leader| match e {
                    ReadIndexError::NotLeader {
                        leader: Some(l), ..
                    } if *l != leader => Next::Hint(*l),
                    _ => Next::Wait,
                },
            )
            .await?;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if self.applied_here(index, remaining).await {
            Ok(())
        } else {
            Err(ReadIndexError::Unavailable {
                reason: format!("index {index} not applied here within {timeout:?}"),
            })
        }
    }

    /// Runs a membership change through the leader (here or over gRPC), then waits
    /// until this node has applied it, so a status read here shows the new membership.
    /// A change that certainly did not start (no leader yet, leader unreachable or just
    /// moved) is retried within `LEADER_WAIT`.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<u64, MembershipError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let done = self
            .via_leader(
                deadline,
                || MembershipError::NotLeader { leader: None },
                |leader, _| {
                    let change = change.clone();
                    async move {
                        if leader == self.id {
                            let timeout = network::MEMBERSHIP_TIMEOUT;
                            let (raft, peers, proposer) = (&self.raft, &self.peers, &self.proposer);
                            network::change_membership(raft, peers, proposer, change, timeout).await
                        } else {
                            let timeout = network::MEMBERSHIP_TIMEOUT;
                            self.peers.change_membership(leader, &change, timeout).await
                        }
                    }
                },
                |e, leader| match e {
                    MembershipError::NotLeader { leader: Some(l) } if *l != leader => {
                        Next::Hint(*l)
                    }
                    MembershipError::NotLeader { .. } | MembershipError::Unreachable { .. } => {
                        Next::Wait
                    }
                    _ => Next::Stop,
                },
            )
            .await?;
        // A node that removed itself may never receive the entry that completes its
        // removal (the leader stops replicating to it): nothing to wait for.
        let removed_self = change == MembershipChange::Remove { id: self.id };
        if !removed_self && !self.applied_here(done.log_index, LEADER_WAIT).await {
            return Err(MembershipError::Unknown(format!(
                "committed at index {} but not applied on this node in time",
                done.log_index
            )));
        }
        // So that a status read here right after names the new leader. The old leader
        // saw a new one elected; normally it is `to`, unless an election raced it.
        if let MembershipChange::TransferLeader { to } = change {
            let until = tokio::time::Instant::now() + LEADER_WAIT;
            if self.wait_for_leader(until, |l| l == to).await.is_none() {
                let seen = self.raft.metrics().borrow().current_leader;
                return Err(MembershipError::Unknown(format!(
                    "node {to} was asked to take over, but this node sees {seen:?} as the leader"
                )));
            }
        }
        Ok(done.log_index)
    }

    /// Waits until this node's state machine has applied `index`, up to `timeout`.
    /// Watches the store's own applied index, published right after each apply batch,
    /// rather than openraft's metrics, which can trail the apply by a scheduling round.
    async fn applied_here(&self, index: u64, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.reader.wait_applied(index)).await,
            Ok(Ok(_))
        )
    }

    /// Resolves when Raft stops on its own — a storage error it cannot survive (a
    /// failed fsync, a corrupt log) or a panic in its core — with the reason. Such a
    /// node can no longer vote, append or apply; the process should exit so that its
    /// supervisor restarts it from its data directory, rather than serve 503s forever.
    pub async fn failed(&self) -> String {
        let mut rx = self.raft.metrics();
        loop {
            if let Err(e) = &rx.borrow_and_update().running_state {
                return e.to_string();
            }
            if rx.changed().await.is_err() {
                return "the Raft core is gone".to_string();
            }
        }
    }

    /// Stops Raft and the gRPC server; the store is flushed when its last handle drops.
    pub async fn shutdown(mut self) {
        let _ = self.raft.shutdown().await;
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }
}
