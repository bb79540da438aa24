//! Forwarding from a follower, batched: one queue per leader peer. While
//! `max_proposals_in_flight` forwards to that peer are unanswered, new writes queue, and
//! the next message carries everything queued as one `ForwardBatchRequest` — one round
//! trip and one decode on the leader for many writes, which the leader's [`Proposer`]
//! (super::Proposer) then commits together. A lone write goes at once, alone. Messages
//! travel on long-lived `ForwardStream` calls, one per forward in flight (see
//! `append_stream`). Every write still gets its own outcome.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::append_stream::{exchange, CallStream};
use super::batch::{MAX_BATCH, MAX_BATCH_BYTES};
use super::error::ForwardError;
use super::peer::{forward_outcome, CallError, Peer};
use super::proto::{ForwardBatchReply, ForwardBatchRequest, ForwardReply};
use super::NetworkConfig;
use crate::types::{LogId, Response};

pub(crate) type ForwardResult = Result<(Response, LogId), ForwardError>;

pub(crate) struct Queued {
    entry: Bytes,
    reply: oneshot::Sender<ForwardResult>,
}

impl Queued {
    pub(crate) fn new(entry: Bytes) -> (Queued, oneshot::Receiver<ForwardResult>) {
        let (reply, rx) = oneshot::channel();
        (Queued { entry, reply }, rx)
    }
}

/// Starts the queue of forwards to `peer`; it ends when the peer is dropped (its sender
/// with it).
pub(crate) fn start(peer: &Arc<Peer>, config: Arc<NetworkConfig>) -> mpsc::UnboundedSender<Queued> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(Arc::downgrade(peer), rx, config));
    tx
}

async fn run(
    peer: Weak<Peer>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    config: Arc<NetworkConfig>,
) {
    let slots = Arc::new(Semaphore::new(config.max_proposals_in_flight.max(1)));
    // One open call per forward in flight, reused (see `append_stream`).
    let pool: Pool = Arc::default();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = first.entry.len() as u64;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(q) => {
                    bytes += q.entry.len() as u64;
                    batch.push(q);
                }
                Err(_) => break,
            }
        }
        let Some(peer) = peer.upgrade() else {
            return;
        };
        let config = config.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            send(&peer, &config, &pool, batch).await;
            drop(slot);
        });
    }
}

/// Open `ForwardStream` calls to the peer that no forward is using.
type Pool = Arc<Mutex<Vec<CallStream<ForwardBatchRequest, ForwardBatchReply>>>>;

async fn send(peer: &Peer, config: &NetworkConfig, pool: &Pool, batch: Vec<Queued>) {
    // Longer than the leader's own commit wait, so its "unknown" answer normally
    // arrives before this side gives up.
    let deadline = config.commit_timeout + Duration::from_millis(500) + config.connect_timeout;
    let (entries, replies): (Vec<Bytes>, Vec<_>) =
        batch.into_iter().map(|q| (q.entry, q.reply)).unzip();
    let mut stream = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let answered: Result<Vec<ForwardReply>, CallError> = exchange(
        &mut stream,
        peer,
        ForwardBatchRequest { entries },
        deadline,
        |mut client, requests| async move { client.forward_stream(requests).await },
    )
    .await
    .map(|r| r.replies);
    if let Some(stream) = stream {
        pool.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stream);
    }
    match answered {
        Ok(outcomes) if outcomes.len() == replies.len() => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(forward_outcome(peer.id, Ok(outcome)));
            }
        }
        Ok(outcomes) => {
            let e = ForwardError::Unknown {
                reason: format!(
                    "the leader answered {} of {} forwarded writes",
                    outcomes.len(),
                    replies.len()
                ),
            };
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(call) => {
            let e = forward_outcome(peer.id, Err(call))
                .err()
                .unwrap_or(ForwardError::Unknown {
                    reason: "no answer".into(),
                });
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
