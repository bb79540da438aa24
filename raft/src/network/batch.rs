//! Proposal batching on the leader.
//!
//! openraft 0.9 turns every `client_write` into its own log append, fsync and
//! replication round, and runs its engine after each one. Under concurrent API writes
//! that per-entry cost, paid on every node, is what limits throughput. So API requests
//! headed for the log go through one [`Proposer`] per node: while `max_in_flight`
//! proposals are still uncommitted, new requests queue, and the next proposal takes
//! everything queued (up to a count and a size) as one `Entry::Batch`. A lone request
//! is proposed at once, as itself — batching adds no latency when there is nothing to
//! batch — and the batches grow with the load, as a group commit does.
//!
//! Each request keeps its own deduplication id and gets its own result back; a failure
//! of the batch (not the leader, commit not confirmed) is every member's failure, with
//! the same meaning as for a single entry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::{ForwardError, ReadIndexError};
use super::handover::Handover;
use super::server::{commit_outcome, propose};
use crate::types::{LogId, Raft, Response};
use crate::{Applied, Entry, Request};

/// The most requests in one batch.
pub const MAX_BATCH: usize = 512;
/// The most bytes (encoded) of requests in one batch, so an entry stays well inside one
/// gRPC message and one sled value.
pub const MAX_BATCH_BYTES: u64 = 4 * 1024 * 1024;

type Reply = oneshot::Sender<Result<(Response, LogId), ForwardError>>;

struct Pending {
    request: Request,
    bytes: u64,
    reply: Reply,
}

/// A node's proposal queue (cheap to clone).
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    tx: mpsc::UnboundedSender<Pending>,
    commit_timeout: Duration,
    /// Linearizable reads, batched the same way (see `read_index`).
    reads: super::read_index::ReadBarrier,
    /// Holds proposals and reads while leadership is handed over.
    handover: Arc<Handover>,
}

impl Proposer {
    /// Starts the batching task (on the current tokio runtime). It ends when the last
    /// clone of the proposer is dropped.
    pub fn new(raft: Raft, commit_timeout: Duration, max_in_flight: usize) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        let handover = Handover::new(&raft);
        let gate = handover.clone();
        tokio::spawn(run(
            raft.clone(),
            rx,
            gate,
            commit_timeout,
            max_in_flight.max(1),
        ));
        Proposer {
            reads: super::read_index::ReadBarrier::new(raft.clone()),
            raft,
            tx,
            commit_timeout,
            handover,
        }
    }

    pub(crate) fn handover(&self) -> &Handover {
        &self.handover
    }

    /// A read index for a linearizable read on this node (which must be the leader):
    /// the commit index as of a leadership round that started after this call. Reads
    /// that arrive together share one round.
    pub async fn read_index(&self, timeout: Duration) -> Result<u64, ReadIndexError> {
        let start = tokio::time::Instant::now();
        if tokio::time::timeout(timeout, self.handover.passable())
            .await
            .is_err()
        {
            return Err(ReadIndexError::Unavailable {
                reason: format!("leadership was being handed over for {timeout:?}"),
            });
        }
        self.reads
            .read_index(timeout.saturating_sub(start.elapsed()))
            .await
    }

    /// Leadership rounds run for reads so far (each served one or more).
    pub fn read_rounds(&self) -> u64 {
        self.reads.rounds()
    }

    /// Proposes `entry` and waits for it to commit and apply on this node (which must
    /// be the leader), as [`super::propose`] does; API requests are batched with others.
    pub async fn propose(&self, entry: Entry) -> Result<(Response, LogId), ForwardError> {
        self.submit(entry).await
    }

    /// Queues `entry` at once (so entries submitted one after another keep their order
    /// in the log) and returns the wait for its outcome.
    pub fn submit(&self, entry: Entry) -> Outcome {
        let request = match entry {
            Entry::Request(r) => r,
            other => {
                let (raft, timeout) = (self.raft.clone(), self.commit_timeout);
                let handover = self.handover.clone();
                return Box::pin(async move {
                    let _passing = handover.pass().await;
                    propose(&raft, other, timeout).await
                });
            }
        };
        let bytes = bincode::serialized_size(&request).unwrap_or(MAX_BATCH_BYTES);
        let (reply, rx) = oneshot::channel();
        let queued = self.tx.send(Pending {
            request,
            bytes,
            reply,
        });
        Box::pin(async move {
            queued.map_err(|_| ForwardError::Refused {
                reason: "the proposal queue is closed (shutting down)".into(),
            })?;
            rx.await.unwrap_or_else(|_| {
                Err(ForwardError::Unknown {
                    reason: "the proposal was dropped before its outcome was known".into(),
                })
            })
        })
    }
}

/// The wait for one proposal's outcome.
pub type Outcome = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Response, LogId), ForwardError>> + Send>,
>;

async fn run(
    raft: Raft,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    handover: Arc<Handover>,
    commit_timeout: Duration,
    max_in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    loop {
        // Waiting for a slot first is what lets requests queue up into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        // During a handover requests queue up here, and go as one batch once it ends.
        let passing = handover.pass().await;
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<Request>, Vec<Reply>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        let single = requests.len() == 1;
        let entry = if single {
            let mut requests = requests;
            match requests.pop() {
                Some(r) => Entry::Request(r),
                None => continue,
            }
        } else {
            Entry::Batch(requests)
        };
        let submitted = raft.client_write_ff(entry).await;
        tokio::spawn(async move {
            let outcome = match submitted {
                Ok(rx) => commit_outcome(rx, commit_timeout).await,
                Err(fatal) => Err(ForwardError::Refused {
                    reason: format!("raft is not running: {fatal}"),
                }),
            };
            drop((slot, passing));
            fan_out(outcome, replies, single);
        });
    }
}

/// Gives each request of a batch its own result.
fn fan_out(outcome: Result<(Response, LogId), ForwardError>, replies: Vec<Reply>, single: bool) {
    match outcome {
        Ok((response, log_id)) if single => {
            for r in replies {
                let _ = r.send(Ok((response.clone(), log_id)));
            }
        }
        Ok((Ok(Applied::Batch(results)), log_id)) if results.len() == replies.len() => {
            for (r, result) in replies.into_iter().zip(results) {
                let _ = r.send(Ok((result, log_id)));
            }
        }
        Ok((other, log_id)) => {
            // A batch always applies as `Applied::Batch` of its length; anything else
            // means the log and this code disagree, and no member's outcome is known.
            for r in replies {
                let _ = r.send(Err(ForwardError::Unknown {
                    reason: format!("batch at {log_id} applied as {other:?}"),
                }));
            }
        }
        Err(e) => {
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
        }
    }
}
