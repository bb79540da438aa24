//! The client side's per-peer state: one lazily connected, reused `tonic` channel per
//! peer, a reconnect backoff shared by every caller that talks to that peer, and the
//! raftgate RPCs (forward, read index) the API layer calls.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::error::{ForwardError, ReadIndexError};
use super::proto::raft_node_client::RaftNodeClient;
use super::proto::{forward_reply, read_index_reply, ForwardReply, NotLeader, ReadIndexRequest};
use super::{decode, encode, NetworkConfig};
use crate::types::{LogId, Raft, Response};
use crate::{Entry, NodeId};

/// Why a call produced no answer from the peer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Nothing was sent: the peer is inside its reconnect backoff, its address is
    /// invalid, or connecting failed.
    NotSent(String),
    /// No answer within the deadline; the request may have been delivered.
    Deadline(Duration),
    /// The connection failed during the call; the request may have been delivered.
    Transport(Status),
    /// The peer answered with a gRPC error status.
    Status(Status),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(reason) => write!(f, "not sent: {reason}"),
            CallError::Deadline(d) => write!(f, "no answer within {d:?}"),
            CallError::Transport(s) => write!(f, "connection failed: {}", s.message()),
            CallError::Status(s) => write!(f, "{:?}: {}", s.code(), s.message()),
        }
    }
}

impl std::error::Error for CallError {}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    /// When the peer last answered a call: the leader's "last contact" with it.
    last_answer: Option<Instant>,
}

/// One peer: its address, its channel and its backoff state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    channel: Result<Channel, String>,
    backoff: Mutex<Backoff>,
    config: Arc<NetworkConfig>,
    /// Writes waiting to be forwarded to this peer (started on first use).
    forwards: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<super::forward::Queued>>,
    /// Commit notices to this peer (started on first use, see `notice`).
    notices: std::sync::OnceLock<tokio::sync::mpsc::Sender<bytes::Bytes>>,
}

impl Peer {
    fn new(id: NodeId, addr: &str, config: Arc<NetworkConfig>) -> Peer {
        // Lazy: creating a peer never blocks, and a peer that is down at startup is simply
        // unreachable until it comes up. tonic's channel reconnects by itself after a lost
        // connection; `gate` adds the backoff between attempts.
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map(|e| {
                e.connect_timeout(config.connect_timeout)
                    .local_address(config.local_ip)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(true)
                    .connect_lazy()
            })
            .map_err(|e| format!("invalid peer address {addr:?}: {e}"));
        Peer {
            id,
            addr: addr.to_string(),
            channel,
            backoff: Mutex::new(Backoff::default()),
            config,
            forwards: std::sync::OnceLock::new(),
            notices: std::sync::OnceLock::new(),
        }
    }

    /// Sends a commit notice (see `notice`): one way, dropped when the stream is backed up.
    pub(crate) fn notice(self: &Arc<Self>, data: bytes::Bytes) {
        let queue = self.notices.get_or_init(|| super::notice::start(self));
        let _ = queue.try_send(data);
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client on the shared channel, unless the peer is inside its backoff window.
    pub(crate) fn client(&self) -> Result<RaftNodeClient<Channel>, CallError> {
        let channel = self.channel.clone().map_err(CallError::NotSent)?;
        let backoff = self.backoff();
        if let Some(at) = backoff.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(CallError::NotSent(format!(
                    "node {} at {} is in reconnect backoff for {:?} more, after {} failed attempts",
                    self.id,
                    self.addr,
                    at - now,
                    backoff.failures
                )));
            }
        }
        drop(backoff);
        Ok(RaftNodeClient::new(channel)
            .max_decoding_message_size(self.config.max_message_bytes)
            .max_encoding_message_size(self.config.max_message_bytes))
    }

    pub(crate) fn succeeded(&self) {
        let mut backoff = self.backoff();
        backoff.failures = 0;
        backoff.retry_at = None;
        backoff.last_answer = Some(Instant::now());
    }

    fn failed(&self) {
        let mut backoff = self.backoff();
        backoff.failures = backoff.failures.saturating_add(1);
        backoff.retry_at = Some(Instant::now() + self.config.backoff_after(backoff.failures));
    }

    /// Runs one RPC on the shared channel, bounded by `deadline` on this side (the
    /// request should carry the same deadline for the server, see [`request`]).
    pub(crate) async fn call<T, F, Fut>(&self, deadline: Duration, rpc: F) -> Result<T, CallError>
    where
        F: FnOnce(RaftNodeClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = self.client()?;
        match tokio::time::timeout(deadline, rpc(client)).await {
            Err(_) => Err(CallError::Deadline(deadline)),
            Ok(Ok(reply)) => {
                self.succeeded();
                Ok(reply.into_inner())
            }
            Ok(Err(status)) if is_connect_error(&status) => {
                self.failed();
                Err(CallError::NotSent(format!(
                    "connecting to node {} at {}: {}",
                    self.id,
                    self.addr,
                    status.message()
                )))
            }
            Ok(Err(status)) if status.code() == Code::Unavailable => {
                self.failed();
                Err(CallError::Transport(status))
            }
            Ok(Err(status)) => {
                // The peer answered, so the connection is fine.
                self.succeeded();
                Err(CallError::Status(status))
            }
        }
    }
}

/// A request carrying `deadline` as its `grpc-timeout`, so the server stops working on
/// it when the caller has given up.
pub(crate) fn request<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

/// True when tonic could not connect, i.e. the request never left this node. tonic keeps
/// the connect failure in the status's source chain.
fn is_connect_error(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The client side of the Raft port: openraft's network factory (it implements
/// `RaftNetworkFactory`) and raftgate's forward / read-index calls.
///
/// Cheap to clone; clones share peers, channels and backoff.
#[derive(Debug, Clone)]
pub struct Peers {
    config: Arc<NetworkConfig>,
    peers: Arc<Mutex<HashMap<NodeId, Arc<Peer>>>>,
    membership: Arc<Mutex<Option<Metrics>>>,
    /// When each node last sent this one an AppendEntries (a follower's contact with
    /// its leader).
    heard: Arc<Mutex<HashMap<NodeId, Instant>>>,
    /// When this node started: until a leader has been heard, it counts as the last
    /// contact, so a node that just started never thinks its leader long gone.
    born: Instant,
    /// Serializes membership changes run by this node as leader.
    membership_change: Arc<tokio::sync::Mutex<()>>,
}

type Metrics = tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>;

impl Peers {
    pub fn new(config: NetworkConfig) -> Peers {
        Peers {
            config: Arc::new(config),
            peers: Arc::default(),
            membership: Arc::default(),
            heard: Arc::default(),
            born: Instant::now(),
            membership_change: Arc::default(),
        }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    pub(crate) fn shared_config(&self) -> Arc<NetworkConfig> {
        self.config.clone()
    }

    /// Records a node's Raft address. openraft tells the factory the addresses of the
    /// nodes it replicates to; a follower that forwards writes learns them here or
    /// by [`Peers::track`]. Changing an address starts a new channel.
    pub fn set_addr(&self, id: NodeId, addr: &str) {
        self.peer_at(id, addr);
    }

    /// Records that `leader` just sent this node an AppendEntries.
    pub fn heard_from(&self, leader: NodeId) {
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard.insert(leader, Instant::now());
    }

    /// How long since any leader last sent this node an AppendEntries (or since this
    /// node started, if none has yet).
    pub fn since_any_leader(&self) -> Duration {
        let heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        heard
            .values()
            .map(|at| at.elapsed())
            .min()
            .unwrap_or_else(|| self.born.elapsed())
    }

    /// How long since `id` last answered this node or sent it an AppendEntries.
    pub fn since_contact(&self, id: NodeId) -> Option<Duration> {
        let heard = {
            let heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
            heard.get(&id).copied()
        };
        let answered = {
            let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            peers.get(&id).and_then(|p| p.backoff().last_answer)
        };
        heard.max(answered).map(|at| at.elapsed())
    }

    pub(crate) fn membership_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.membership_change
    }

    /// The address recorded for `id`.
    pub fn addr(&self, id: NodeId) -> Option<String> {
        self.peer_by_id(id).map(|p| p.addr.clone())
    }

    pub(crate) fn peer_at(&self, id: NodeId, addr: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        match peers.get(&id) {
            Some(peer) if peer.addr == addr => peer.clone(),
            _ => {
                let peer = Arc::new(Peer::new(id, addr, self.config.clone()));
                peers.insert(id, peer.clone());
                peer
            }
        }
    }

    /// The peer for `id`, at the address the tracked membership gives it now, else at
    /// the last address recorded.
    pub(crate) fn peer_by_id(&self, id: NodeId) -> Option<Arc<Peer>> {
        let addr = {
            let membership = self
                .membership
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            membership.as_ref().and_then(|metrics| {
                let metrics = metrics.borrow();
                let node = metrics.membership_config.membership().get_node(&id);
                node.map(|n| n.addr.clone())
            })
        };
        match addr {
            Some(addr) => Some(self.peer_at(id, &addr)),
            None => {
                let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
                peers.get(&id).cloned()
            }
        }
    }

    /// Lets [`Peers::forward`] and [`Peers::read_index`] reach any member of `raft`'s
    /// cluster by id: addresses are then looked up in the membership `raft` reports at
    /// the moment of the call. Holds only openraft's metrics receiver, not the `Raft`
    /// (which owns this factory), so no reference cycle keeps a stopped node alive.
    pub fn track(&self, raft: &Raft) {
        let mut membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *membership = Some(raft.metrics());
    }

    /// Hands an API write to `leader`, which proposes it and answers once it is
    /// committed and applied there: the reducer's result and the entry's log id. The
    /// caller should then wait for its own node to apply that index before answering
    /// its client (DESIGN.md §3 promise 1).
    pub async fn forward(
        &self,
        leader: NodeId,
        entry: &Entry,
    ) -> Result<(Response, LogId), ForwardError> {
        let peer = self
            .peer_by_id(leader)
            .ok_or_else(|| ForwardError::Unreachable {
                target: leader,
                reason: "no address known for this node".to_string(),
            })?;
        let body = encode(entry).map_err(|e| ForwardError::Refused {
            reason: format!("encoding the entry: {e}"),
        })?;
        let queue = peer
            .forwards
            .get_or_init(|| super::forward::start(&peer, self.config.clone()));
        let (queued, rx) = super::forward::Queued::new(body);
        queue.send(queued).map_err(|_| ForwardError::Refused {
            reason: "the forwarding queue is closed".into(),
        })?;
        rx.await.unwrap_or_else(|_| {
            Err(ForwardError::Unknown {
                reason: "the forward was dropped before its outcome was known".into(),
            })
        })
    }

    /// Asks `leader` to confirm its leadership with a quorum and name the log index a
    /// linearizable read must wait for; the caller then waits until its own node has
    /// applied that index and reads locally.
    pub async fn read_index(&self, leader: NodeId) -> Result<u64, ReadIndexError> {
        let peer = self
            .peer_by_id(leader)
            .ok_or_else(|| ReadIndexError::Unreachable {
                target: leader,
                reason: "no address known for this node".to_string(),
            })?;
        let server_deadline = self.config.read_index_timeout + Duration::from_millis(500);
        let deadline = server_deadline + self.config.connect_timeout;
        let reply = peer
            .call(deadline, |mut client| async move {
                client
                    .read_index(request(ReadIndexRequest {}, server_deadline))
                    .await
            })
            .await;
        match reply {
            Err(CallError::NotSent(reason)) => Err(ReadIndexError::Unreachable {
                target: leader,
                reason,
            }),
            Err(e) => Err(ReadIndexError::Unavailable {
                reason: e.to_string(),
            }),
            Ok(reply) => match reply.outcome {
                Some(read_index_reply::Outcome::Index(index)) => Ok(index),
                Some(read_index_reply::Outcome::NotLeader(n)) => {
                    let (leader, addr) = not_leader(n);
                    Err(ReadIndexError::NotLeader { leader, addr })
                }
                Some(read_index_reply::Outcome::Unavailable(reason)) => {
                    Err(ReadIndexError::Unavailable { reason })
                }
                None => Err(ReadIndexError::Unavailable {
                    reason: "empty reply".to_string(),
                }),
            },
        }
    }
}

fn not_leader(n: NotLeader) -> (Option<NodeId>, Option<String>) {
    let addr = (!n.leader_addr.is_empty()).then_some(n.leader_addr);
    (n.leader_id, addr)
}

/// Classifies a forward's result. Only what certainly did not reach the leader's log is
/// reported as not applied; anything after the request may have left is `Unknown`.
pub(crate) fn forward_outcome(
    leader: NodeId,
    reply: Result<ForwardReply, CallError>,
) -> Result<(Response, LogId), ForwardError> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(CallError::NotSent(reason)) => {
            return Err(ForwardError::Unreachable {
                target: leader,
                reason,
            })
        }
        // The leader's service rejected the request before running it.
        Err(CallError::Status(s))
            if matches!(s.code(), Code::InvalidArgument | Code::Unimplemented) =>
        {
            return Err(ForwardError::Refused {
                reason: s.message().to_string(),
            })
        }
        Err(e) => {
            return Err(ForwardError::Unknown {
                reason: e.to_string(),
            })
        }
    };
    match reply.outcome {
        Some(forward_reply::Outcome::Committed(c)) => {
            let response = decode::<Response>(&c.response);
            let log_id = decode::<LogId>(&c.log_id);
            match (response, log_id) {
                (Ok(response), Ok(log_id)) => Ok((response, log_id)),
                (Err(e), _) | (_, Err(e)) => Err(ForwardError::Unknown {
                    reason: format!("committed, but the answer is unreadable: {e}"),
                }),
            }
        }
        Some(forward_reply::Outcome::NotLeader(n)) => {
            let (leader, addr) = not_leader(n);
            Err(ForwardError::NotLeader { leader, addr })
        }
        Some(forward_reply::Outcome::NotProposed(reason)) => Err(ForwardError::Refused { reason }),
        Some(forward_reply::Outcome::Unknown(reason)) => Err(ForwardError::Unknown { reason }),
        None => Err(ForwardError::Unknown {
            reason: "empty reply".to_string(),
        }),
    }
}
