//! openraft's side of the client: the network factory and the per-target connection
//! that carries AppendEntries, RequestVote and whole snapshots over the peer's shared
//! channel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Snapshot};
use tonic::codegen::tokio_stream;

use super::append_stream::{exchange, AppendStream};
use super::peer::{request, CallError, Peer, Peers};
use super::proto::{snapshot_chunk, Payload, SnapshotChunk};
use super::{decode, encode, NetworkConfig};
use crate::types::{LogId, TypeConfig, Vote};
use crate::NodeId;

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            peer: self.peer_at(target, &node.addr),
            config: self.shared_config(),
            acked: None,
            commit_sent: None,
            stream: None,
        }
    }
}

/// openraft's connection to one target. Every `PeerClient` for a node shares that
/// node's channel and backoff, so replication, votes and forwarding see one connection.
pub struct PeerClient {
    target: NodeId,
    peer: Arc<Peer>,
    config: Arc<NetworkConfig>,
    /// The leader vote and the last log id of the latest AppendEntries this client had
    /// answered `Success`: the follower holds every entry up to that id. Only a
    /// replication stream sends several AppendEntries through one client; the one-off
    /// clients of leadership checks never get here, so their calls stay real calls.
    acked: Option<(Vote, Option<LogId>)>,
    /// The highest commit index this client has told the follower.
    commit_sent: Option<LogId>,
    /// The open AppendEntries call of a replication stream (see `append_stream`).
    stream: Option<AppendStream>,
}

impl PeerClient {
    /// A commit notice (see `notice`): no entries, a commit index this client has not
    /// told the follower yet, and a previous log id the follower has acknowledged holding
    /// under the same leader vote. Its answer can only be `Success`.
    fn is_notice(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        rpc.entries.is_empty()
            && rpc.leader_commit > self.commit_sent
            && self
                .acked
                .as_ref()
                .is_some_and(|(vote, last)| *vote == rpc.vote && *last == rpc.prev_log_id)
    }

    /// An AppendEntries on the client's long-lived call (see `append_stream`).
    async fn streamed(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        deadline: Duration,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let data = encode(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = exchange(
            &mut self.stream,
            &self.peer,
            Payload { data },
            deadline,
            |mut client, requests| async move { client.append_stream(requests).await },
        )
        .await
        .map_err(rpc_error)?;
        let result: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
            decode(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One unary openraft RPC: bincode in, bincode `Result<Resp, RaftError>` out.
    async fn unary<Req, Resp, E, F, Fut>(
        &self,
        message: &Req,
        deadline: Duration,
        rpc: F,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
        F: FnOnce(
            super::proto::raft_node_client::RaftNodeClient<tonic::transport::Channel>,
            tonic::Request<Payload>,
        ) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Payload>, tonic::Status>>,
    {
        let data = encode(message).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let payload = request(Payload { data }, deadline);
        let reply = self
            .peer
            .call(deadline, |client| rpc(client, payload))
            .await
            .map_err(rpc_error)?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Maps a failed call to what openraft should do about it: back off from a peer that
/// cannot be reached (`Unreachable`), retry promptly otherwise (`Network`).
fn rpc_error<E: std::error::Error>(e: CallError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        CallError::NotSent(_) | CallError::Transport(_) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        CallError::Deadline(_) | CallError::Status(_) => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        if self.is_notice(&rpc) {
            let data = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            self.commit_sent = rpc.leader_commit;
            self.peer.notice(data);
            return Ok(AppendEntriesResponse::Success);
        }
        let vote = rpc.vote;
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let commit = rpc.leader_commit;
        let deadline = self.config.append_timeout.min(option.hard_ttl());
        let result = if self.acked.is_some() {
            self.streamed(&rpc, deadline).await
        } else {
            self.unary(&rpc, deadline, |mut client, req| async move {
                client.append_entries(req).await
            })
            .await
        };
        if matches!(result, Ok(AppendEntriesResponse::Success)) {
            self.acked = Some((vote, last));
            self.commit_sent = self.commit_sent.max(commit);
        } else {
            self.acked = None;
        }
        result
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let deadline = self.config.vote_timeout.min(option.hard_ttl());
        self.unary(&rpc, deadline, |mut client, req| async move {
            client.vote(req).await
        })
        .await
    }

    /// Not used: openraft 0.9 sends snapshots through [`Self::full_snapshot`], which
    /// raftgate streams as one client-streaming call. Kept only because the trait
    /// requires it without the `generic-snapshot-data` feature.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        Err(RPCError::Network(NetworkError::new(&CallError::Status(
            tonic::Status::unimplemented("raftgate streams whole snapshots (full_snapshot)"),
        ))))
    }

    /// Streams the whole snapshot in chunks over one client-streaming call: a header
    /// (vote and meta) and then the data. The deadline grows with the snapshot's size
    /// ([`NetworkConfig::snapshot_deadline`]); openraft's cancel signal (replication
    /// closed, e.g. leadership lost) aborts the transfer.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let header = encode(&(&vote, &snapshot.meta))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let data = bytes::Bytes::from(snapshot.snapshot.into_inner());
        let chunk = option
            .snapshot_chunk_size()
            .unwrap_or(self.config.snapshot_chunk_bytes)
            .clamp(1, self.config.snapshot_chunk_bytes.max(1));
        let deadline = self.config.snapshot_deadline(data.len() as u64);

        let mut chunks = Vec::with_capacity(1 + data.len().div_ceil(chunk));
        chunks.push(SnapshotChunk {
            part: Some(snapshot_chunk::Part::Header(header)),
        });
        let mut at = 0;
        while at < data.len() {
            let end = (at + chunk).min(data.len());
            chunks.push(SnapshotChunk {
                part: Some(snapshot_chunk::Part::Data(data.slice(at..end))),
            });
            at = end;
        }
        let stream = request(tokio_stream::iter(chunks), deadline);

        let send = self.peer.call(deadline, |mut client| async move {
            client.install_snapshot(stream).await
        });
        let reply = tokio::select! {
            reply = send => reply,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let reply = reply.map_err(|e| match rpc_error::<Fatal<NodeId>>(e) {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            other => StreamingError::Network(NetworkError::new(&other)),
        })?;
        let result: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            decode(&reply.data).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Exponential from `backoff_base` to `backoff_max`: openraft sleeps these between
    /// retries to a peer that keeps answering `Unreachable`.
    fn backoff(&self) -> Backoff {
        let config = self.config.clone();
        Backoff::new((1u32..).map(move |n| config.backoff_after(n)))
    }
}
