//! A replication stream's AppendEntries as one long-lived bidirectional call.
//!
//! openraft replicates to each follower one AppendEntries at a time: the next waits for
//! the answer to the last. As unary calls, each of those opens an HTTP/2 stream with
//! request headers, response headers and trailers, all encoded, sent, parsed and
//! matched — about as much work again as the message itself. On a stream that stays
//! open, each request and each answer is one DATA frame, and the strict
//! one-at-a-time order pairs every answer with its request without ids.
//!
//! Only clients that have already had an answer use it (the replication streams); a
//! one-off client (a leadership check, a vote) stays unary. Any failure or deadline
//! drops the stream — a late answer must never be taken for the next request's — and
//! the client's next call is unary again, so a broken stream costs one retry.

use bytes::Bytes;
use openraft::raft::AppendEntriesRequest;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::peer::{CallError, Peer, Peers};
use super::proto::Payload;
use super::{decode, encode};
use crate::types::{Raft, TypeConfig};

/// The client's end of an open call.
pub(crate) struct AppendStream {
    requests: mpsc::Sender<Payload>,
    replies: Streaming<Payload>,
    /// A request was sent and its answer not read yet. Still set at the next call, it
    /// means the last exchange was cancelled halfway (openraft drops a replication
    /// call that outlives its timeout): its answer may still come, so the call is
    /// unusable.
    awaiting: bool,
}

/// Sends one encoded AppendEntries on `slot`'s call (opening one if there is none or
/// the last has ended) and returns the encoded answer. On any error the call is closed.
pub(crate) async fn exchange(
    slot: &mut Option<AppendStream>,
    peer: &Peer,
    data: Bytes,
    deadline: Duration,
) -> Result<Bytes, CallError> {
    if slot.as_ref().is_some_and(|s| s.awaiting) {
        *slot = None;
    }
    let result = tokio::time::timeout(deadline, send_and_wait(slot, peer, data, deadline)).await;
    match result {
        Err(_) => {
            *slot = None;
            Err(CallError::Deadline(deadline))
        }
        Ok(Err(e)) => {
            *slot = None;
            Err(e)
        }
        Ok(Ok(reply)) => {
            peer.succeeded();
            Ok(reply)
        }
    }
}

async fn send_and_wait(
    slot: &mut Option<AppendStream>,
    peer: &Peer,
    data: Bytes,
    deadline: Duration,
) -> Result<Bytes, CallError> {
    let data = match slot.as_mut() {
        Some(stream) => match stream.requests.send(Payload { data }).await {
            Ok(()) => {
                stream.awaiting = true;
                return stream.reply().await;
            }
            // The call has ended (the peer restarted or closed it): nothing was sent.
            Err(mpsc::error::SendError(Payload { data })) => data,
        },
        None => data,
    };
    let (requests, rx) = mpsc::channel(1);
    // The channel is new and empty: the first request always fits.
    let _ = requests.try_send(Payload { data });
    let replies = peer
        .call(deadline, |mut client| async move {
            client.append_stream(ReceiverStream::new(rx)).await
        })
        .await?;
    slot.insert(AppendStream {
        requests,
        replies,
        awaiting: true,
    })
    .reply()
    .await
}

impl AppendStream {
    async fn reply(&mut self) -> Result<Bytes, CallError> {
        match self.replies.message().await {
            Ok(Some(reply)) => {
                self.awaiting = false;
                Ok(reply.data)
            }
            Ok(None) => Err(CallError::Status(Status::unavailable(
                "the append stream ended",
            ))),
            Err(status) => Err(CallError::Transport(status)),
        }
    }
}

/// The server's end: answers each AppendEntries in order until the caller closes the
/// call or the server begins its shutdown (`closing`).
pub(crate) fn serve(
    raft: Raft,
    peers: Peers,
    mut requests: Streaming<Payload>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> ReceiverStream<Result<Payload, Status>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                request = requests.message() => request,
                _ = closing.wait_for(|closing| *closing) => return,
            };
            let payload = match request {
                Ok(Some(payload)) => payload,
                Ok(None) | Err(_) => return,
            };
            let rpc: AppendEntriesRequest<TypeConfig> = match decode(&payload.data) {
                Ok(rpc) => rpc,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::invalid_argument(format!(
                            "append entries: {e}"
                        ))))
                        .await;
                    return;
                }
            };
            if let Some(leader) = rpc.vote.leader_id().voted_for() {
                peers.heard_from(leader);
            }
            let reply = encode(&raft.append_entries(rpc).await)
                .map(|data| Payload { data })
                .map_err(|e| Status::internal(format!("encoding the reply: {e}")));
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
