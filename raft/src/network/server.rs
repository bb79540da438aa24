//! The server side of the Raft port: a tonic service wrapping the node's `Raft`, and the
//! leader-side logic of forwarding and read index, public so a node that is itself the
//! leader can run the same code (and get the same error taxonomy) without a round trip.

use std::io::Cursor;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, Snapshot, SnapshotMeta};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response as GrpcResponse, Status, Streaming};

use super::append_stream::next_request;
use super::batch::Proposer;
use super::error::{ForwardError, ReadIndexError};
use super::membership::{change_membership, leader_view, MembershipChange};
use super::proto::raft_node_server::{RaftNode, RaftNodeServer};
use super::proto::{
    forward_reply, read_index_reply, snapshot_chunk, Committed, ForwardBatchReply,
    ForwardBatchRequest, ForwardReply, NotLeader, Payload, ReadIndexReply, ReadIndexRequest,
    SnapshotChunk,
};
use super::{decode, encode, NetworkConfig, Peers, MEMBERSHIP_TIMEOUT};
use crate::types::{LogId, Raft, Response, TypeConfig, Vote};
use crate::{Entry, NodeId};

/// The Raft port's gRPC service for one node.
pub struct RaftService {
    raft: Raft,
    config: NetworkConfig,
    /// Batches forwarded writes with this node's own (see [`Proposer`]).
    proposer: Proposer,
    /// The node's own client side: where contacts are recorded and membership changes
    /// are serialized.
    peers: Peers,
    /// Turns true when [`serve`] begins its graceful shutdown: the calls that would
    /// otherwise stay open (commit notice streams) end then, so the shutdown can finish.
    closing: tokio::sync::watch::Receiver<bool>,
}

/// The Raft port's service, ready for [`serve`].
pub struct Service {
    server: RaftNodeServer<RaftService>,
    closing: tokio::sync::watch::Sender<bool>,
}

/// The service with default deadlines and limits.
pub fn service(raft: Raft) -> Service {
    service_with(raft, NetworkConfig::default())
}

/// The service with `config`'s commit and read-index deadlines and message limits.
pub fn service_with(raft: Raft, config: NetworkConfig) -> Service {
    let proposer = Proposer::new(
        raft.clone(),
        config.commit_timeout,
        config.max_proposals_in_flight,
    );
    service_for(raft, Peers::new(config), proposer)
}

/// The service of a node whose client side is `peers` (the network factory its `Raft`
/// was built with), so contacts and membership changes are shared between the two.
pub fn service_for(raft: Raft, peers: Peers, proposer: Proposer) -> Service {
    let config = peers.config().clone();
    let max = config.max_message_bytes;
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let server = RaftNodeServer::new(RaftService {
        raft,
        config,
        proposer,
        peers,
        closing: closing_rx,
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    Service { server, closing }
}

/// Serves `service` on `listener` until `shutdown` resolves, then closes every
/// connection (so peers see the node go away rather than a half-open listener).
pub async fn serve(
    listener: TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let Service { server, closing } = service;
    tonic::transport::Server::builder()
        .add_service(server)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                shutdown.await;
                closing.send_replace(true);
            },
        )
        .await
}

/// Decodes an AppendEntries (from a call, a stream or a commit notice) and records the
/// contact with its leader.
pub(crate) fn append_request(
    peers: &Peers,
    data: &[u8],
) -> Result<AppendEntriesRequest<TypeConfig>, Status> {
    let rpc: AppendEntriesRequest<TypeConfig> =
        decode(data).map_err(|e| invalid("append entries", e))?;
    if let Some(leader) = rpc.vote.leader_id().voted_for() {
        peers.heard_from(leader);
    }
    Ok(rpc)
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{what}: {e}"))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<GrpcResponse<Payload>, Status> {
    encode(value)
        .map(|data| GrpcResponse::new(Payload { data }))
        .map_err(|e| Status::internal(format!("encoding the reply: {e}")))
}

fn not_leader_reply(leader: Option<NodeId>, node: Option<BasicNode>) -> NotLeader {
    NotLeader {
        leader_id: leader,
        leader_addr: node.map(|n| n.addr).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl RaftNode for RaftService {
    async fn append_entries(
        &self,
        request: Request<Payload>,
    ) -> Result<GrpcResponse<Payload>, Status> {
        let rpc = append_request(&self.peers, &request.into_inner().data)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    type AppendStreamStream =
        tonic::codegen::tokio_stream::wrappers::ReceiverStream<Result<Payload, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<GrpcResponse<Self::AppendStreamStream>, Status> {
        Ok(GrpcResponse::new(super::append_stream::serve(
            self.raft.clone(),
            self.peers.clone(),
            request.into_inner(),
            self.closing.clone(),
        )))
    }

    async fn commit_notices(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<GrpcResponse<Payload>, Status> {
        let mut notices = request.into_inner();
        let mut closing = self.closing.clone();
        while let Some(notice) = next_request(&mut notices, &mut closing).await {
            let rpc = append_request(&self.peers, &notice.data)?;
            // Nobody waits for the answer: the leader already counted this follower's
            // entries, and a refusal (a newer term) reaches it with its next real call.
            // Only a stopped Raft fails here, and then the stream has no reader left.
            if let Err(RaftError::Fatal(_)) = self.raft.append_entries(rpc).await {
                break;
            }
        }
        Ok(GrpcResponse::new(Payload::default()))
    }

    async fn vote(&self, request: Request<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        let rpc: VoteRequest<NodeId> =
            decode(&request.into_inner().data).map_err(|e| invalid("vote", e))?;
        let (theirs, candidate) = (rpc.last_log_id, rpc.vote.leader_id().voted_for());
        let answer = self.raft.vote(rpc).await;
        if let Ok(r) = &answer {
            if !r.vote_granted && r.last_log_id > theirs {
                super::takeover::behind_candidate(&self.raft, &self.peers, candidate);
            }
        }
        reply(&answer)
    }

    /// Buffers the streamed snapshot (bounded by `max_snapshot_bytes`) and installs it
    /// whole; openraft checks the vote and ignores a snapshot older than its state.
    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<GrpcResponse<Payload>, Status> {
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|c| c.part) {
            Some(snapshot_chunk::Part::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "snapshot stream must start with a header",
                ))
            }
        };
        let (vote, meta): (Vote, SnapshotMeta<NodeId, BasicNode>) =
            decode(&header).map_err(|e| invalid("snapshot header", e))?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            match chunk.part {
                Some(snapshot_chunk::Part::Data(d)) => {
                    if (data.len() + d.len()) as u64 > self.config.max_snapshot_bytes {
                        return Err(Status::resource_exhausted(format!(
                            "snapshot larger than {} bytes",
                            self.config.max_snapshot_bytes
                        )));
                    }
                    data.extend_from_slice(&d);
                }
                _ => return Err(Status::invalid_argument("a second snapshot header")),
            }
        }
        let snapshot = Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        };
        reply(&self.raft.install_full_snapshot(vote, snapshot).await)
    }

    type ForwardStreamStream =
        tonic::codegen::tokio_stream::wrappers::ReceiverStream<Result<ForwardBatchReply, Status>>;

    async fn forward_stream(
        &self,
        request: Request<Streaming<ForwardBatchRequest>>,
    ) -> Result<GrpcResponse<Self::ForwardStreamStream>, Status> {
        let proposer = self.proposer.clone();
        Ok(GrpcResponse::new(super::append_stream::answer_in_order(
            request.into_inner(),
            self.closing.clone(),
            move |batch: ForwardBatchRequest| {
                let proposer = proposer.clone();
                async move { answer_batch(&proposer, batch).await }
            },
        )))
    }

    async fn change_membership(
        &self,
        request: Request<Payload>,
    ) -> Result<GrpcResponse<Payload>, Status> {
        let change: MembershipChange =
            decode(&request.into_inner().data).map_err(|e| invalid("membership change", e))?;
        let timeout = MEMBERSHIP_TIMEOUT;
        reply(&change_membership(&self.raft, &self.peers, &self.proposer, change, timeout).await)
    }

    async fn elect_now(&self, request: Request<Payload>) -> Result<GrpcResponse<Payload>, Status> {
        let req: super::ElectNow =
            decode(&request.into_inner().data).map_err(|e| invalid("elect-now request", e))?;
        reply(&super::handover::elect_now(&self.raft, &req).await)
    }

    async fn leader_view(
        &self,
        _request: Request<Payload>,
    ) -> Result<GrpcResponse<Payload>, Status> {
        reply(&leader_view(&self.raft, &self.peers))
    }

    async fn read_index(
        &self,
        _request: Request<ReadIndexRequest>,
    ) -> Result<GrpcResponse<ReadIndexReply>, Status> {
        let outcome = match self
            .proposer
            .read_index(self.config.read_index_timeout)
            .await
        {
            Ok(index) => read_index_reply::Outcome::Index(index),
            Err(ReadIndexError::NotLeader { leader, addr }) => {
                read_index_reply::Outcome::NotLeader(NotLeader {
                    leader_id: leader,
                    leader_addr: addr.unwrap_or_default(),
                })
            }
            Err(ReadIndexError::NoLeader) => {
                read_index_reply::Outcome::NotLeader(not_leader_reply(None, None))
            }
            Err(e) => read_index_reply::Outcome::Unavailable(e.to_string()),
        };
        Ok(GrpcResponse::new(ReadIndexReply {
            outcome: Some(outcome),
        }))
    }
}

/// Proposes every entry at once (so they share the leader's next batch) and answers
/// each, in order.
async fn answer_batch(
    proposer: &Proposer,
    batch: ForwardBatchRequest,
) -> Result<ForwardBatchReply, Status> {
    let entries = batch
        .entries
        .iter()
        .map(|e| decode::<Entry>(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("forwarded entry", e))?;
    let waits: Vec<_> = entries
        .into_iter()
        .map(|entry| proposer.submit(entry))
        .collect();
    let mut replies = Vec::with_capacity(waits.len());
    for wait in waits {
        replies.push(forward_reply(wait.await));
    }
    Ok(ForwardBatchReply { replies })
}

/// The wire form of a proposal's outcome.
fn forward_reply(r: Result<(Response, LogId), ForwardError>) -> ForwardReply {
    let outcome = match r {
        Ok((response, log_id)) => {
            let committed = encode(&response).and_then(|r| Ok((r, encode(&log_id)?)));
            match committed {
                Ok((response, log_id)) => {
                    forward_reply::Outcome::Committed(Committed { response, log_id })
                }
                Err(e) => forward_reply::Outcome::Unknown(format!(
                    "committed at {log_id}, but encoding the answer failed: {e}"
                )),
            }
        }
        Err(ForwardError::NoLeader) => {
            forward_reply::Outcome::NotLeader(not_leader_reply(None, None))
        }
        Err(ForwardError::NotLeader { leader, addr }) => {
            forward_reply::Outcome::NotLeader(NotLeader {
                leader_id: leader,
                leader_addr: addr.unwrap_or_default(),
            })
        }
        Err(ForwardError::Unknown { reason }) => forward_reply::Outcome::Unknown(reason),
        Err(e @ (ForwardError::Refused { .. } | ForwardError::Unreachable { .. })) => {
            forward_reply::Outcome::NotProposed(e.to_string())
        }
    };
    ForwardReply {
        outcome: Some(outcome),
    }
}

/// Proposes `entry` on this node and waits up to `commit_timeout` for it to commit and
/// apply. What the forward RPC runs on the leader; a node that is the leader calls it
/// directly.
///
/// Errors follow [`ForwardError`]: `NotLeader` / `Refused` when nothing entered the log
/// (or the entry was truncated away, which only happens to uncommitted entries);
/// `Unknown` once the entry may be in the log but its commit was not seen in time.
pub async fn propose(
    raft: &Raft,
    entry: Entry,
    commit_timeout: Duration,
) -> Result<(Response, LogId), ForwardError> {
    let rx = raft
        .client_write_ff(entry)
        .await
        .map_err(|fatal| ForwardError::Refused {
            reason: format!("raft is not running: {fatal}"),
        })?;
    commit_outcome(rx, commit_timeout).await
}

/// What `client_write_ff` hands back: the receiver of the write's outcome.
pub(crate) type WriteReceiver =
    <<TypeConfig as openraft::RaftTypeConfig>::Responder as openraft::raft::responder::Responder<
        TypeConfig,
    >>::Receiver;

/// Waits up to `commit_timeout` for a submitted write's outcome and classifies it.
pub(crate) async fn commit_outcome(
    rx: WriteReceiver,
    commit_timeout: Duration,
) -> Result<(Response, LogId), ForwardError> {
    match tokio::time::timeout(commit_timeout, rx).await {
        Err(_) => Err(ForwardError::Unknown {
            reason: format!("commit not confirmed within {commit_timeout:?}"),
        }),
        Ok(Err(_)) => Err(ForwardError::Unknown {
            reason: "raft stopped before the commit was confirmed".to_string(),
        }),
        Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(ForwardError::NotLeader {
            leader: f.leader_id,
            addr: f.leader_node.map(|n| n.addr),
        }),
        Ok(Ok(Err(ClientWriteError::ChangeMembershipError(e)))) => Err(ForwardError::Refused {
            reason: e.to_string(),
        }),
        Ok(Ok(Ok(written))) => Ok((written.data, written.log_id)),
    }
}

/// Confirms this node's leadership with a quorum (openraft 0.9's
/// `ensure_linearizable`, which also waits for this node to apply up to the read
/// point) and answers the log index a linearizable read must see applied.
pub(crate) async fn confirm_read_index(
    raft: &Raft,
    timeout: Duration,
) -> Result<u64, ReadIndexError> {
    match tokio::time::timeout(timeout, raft.ensure_linearizable()).await {
        Err(_) => Err(ReadIndexError::Unavailable {
            reason: format!("leadership not confirmed within {timeout:?}"),
        }),
        Ok(Ok(read_log_id)) => Ok(read_log_id.map_or(0, |l| l.index)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            Err(ReadIndexError::NotLeader {
                leader: f.leader_id,
                addr: f.leader_node.map(|n| n.addr),
            })
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
            Err(ReadIndexError::Unavailable {
                reason: q.to_string(),
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(ReadIndexError::Unavailable {
            reason: f.to_string(),
        }),
    }
}

/// Waits until this node has applied `index`, up to `timeout`, through openraft's
/// metrics — for code that has no store of its own to watch (this crate's tests). They
/// can trail the apply by a scheduling round, so a node with a store that publishes its
/// applied index (raftgate's `StateReader`) waits on that instead.
pub async fn wait_applied(raft: &Raft, index: u64, timeout: Duration) -> bool {
    raft.wait(Some(timeout))
        .applied_index_at_least(Some(index), "wait_applied")
        .await
        .is_ok()
}
