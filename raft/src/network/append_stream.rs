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

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::encode;
use super::peer::{CallError, Peer, Peers};
use super::proto::raft_node_client::RaftNodeClient;
use super::proto::Payload;
use super::server::append_request;
use crate::types::Raft;

/// The client's end of an open call that answers its requests one by one, in order.
pub(crate) struct CallStream<Req, Resp> {
    requests: mpsc::Sender<Req>,
    replies: Streaming<Resp>,
    /// A request was sent and its answer not read yet. Still set at the next call, it
    /// means the last exchange was cancelled halfway (openraft drops a replication
    /// call that outlives its timeout): its answer may still come, so the call is
    /// unusable.
    awaiting: bool,
}

/// A replication stream's AppendEntries call.
pub(crate) type AppendStream = CallStream<Payload, Payload>;

/// Sends `message` on `slot`'s call (opening one with `open` if there is none or the
/// last has ended) and returns its answer. On any error the call is closed.
pub(crate) async fn exchange<Req, Resp, F, Fut>(
    slot: &mut Option<CallStream<Req, Resp>>,
    peer: &Peer,
    message: Req,
    deadline: Duration,
    open: F,
) -> Result<Resp, CallError>
where
    F: FnOnce(RaftNodeClient<Channel>, ReceiverStream<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    if slot.as_ref().is_some_and(|s| s.awaiting) {
        *slot = None;
    }
    let exchanged = tokio::time::timeout(deadline, async {
        let message = match slot.as_mut() {
            Some(stream) => match stream.requests.send(message).await {
                Ok(()) => {
                    stream.awaiting = true;
                    return stream.reply().await;
                }
                // The call has ended (the peer restarted or closed it): nothing was sent.
                Err(mpsc::error::SendError(message)) => message,
            },
            None => message,
        };
        let (requests, rx) = mpsc::channel(1);
        // The channel is new and empty: the first request always fits.
        let _ = requests.try_send(message);
        let replies = peer
            .call(deadline, |client| open(client, ReceiverStream::new(rx)))
            .await?;
        slot.insert(CallStream {
            requests,
            replies,
            awaiting: true,
        })
        .reply()
        .await
    })
    .await;
    match exchanged {
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

impl<Req, Resp> CallStream<Req, Resp> {
    async fn reply(&mut self) -> Result<Resp, CallError> {
        match self.replies.message().await {
            Ok(Some(reply)) => {
                self.awaiting = false;
                Ok(reply)
            }
            Ok(None) => Err(CallError::Status(Status::unavailable("the stream ended"))),
            Err(status) => Err(CallError::Transport(status)),
        }
    }
}

/// Answers the requests of an open call one by one with `answer`, until the caller
/// closes it or the server begins its shutdown (`closing`).
pub(crate) fn answer_in_order<Req, Resp, F, Fut>(
    mut requests: Streaming<Req>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    answer: F,
) -> ReceiverStream<Result<Resp, Status>>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send,
    Streaming<Req>: Send,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while let Some(request) = next_request(&mut requests, &mut closing).await {
            let reply = answer(request).await;
            let failed = reply.is_err();
            if tx.send(reply).await.is_err() || failed {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The next request of an open call; `None` once the caller has closed it, it has failed,
/// or the server has begun its shutdown (`closing`).
pub(crate) async fn next_request<T>(
    requests: &mut Streaming<T>,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        request = requests.message() => request.ok().flatten(),
        _ = closing.wait_for(|closing| *closing) => None,
    }
}

/// The server's end of a replication stream's AppendEntries call.
pub(crate) fn serve(
    raft: Raft,
    peers: Peers,
    requests: Streaming<Payload>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> ReceiverStream<Result<Payload, Status>> {
    answer_in_order(requests, closing, move |payload: Payload| {
        let raft = raft.clone();
        let peers = peers.clone();
        async move {
            let rpc = append_request(&peers, &payload.data)?;
            encode(&raft.append_entries(rpc).await)
                .map(|data| Payload { data })
                .map_err(|e| Status::internal(format!("encoding the reply: {e}")))
        }
    })
}
