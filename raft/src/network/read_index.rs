//! Read-index batching: one leadership round serves every linearizable read waiting
//! for it.
//!
//! openraft's `ensure_linearizable` sends every follower a heartbeat and waits for a
//! quorum, per call. Under concurrent reads that was a round of RPCs per read (at 256
//! concurrent reads, a quarter of the leader's CPU). As etcd does, reads that arrive
//! while a round is running wait for the next one, and one round answers them all.
//!
//! Linearizable still: a read is answered by a round that started after it arrived, so
//! the leadership it confirms and the commit index it returns are at least as new as the
//! read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::ReadIndexError;
use super::server::confirm_read_index;
use crate::types::Raft;

type Waiter = oneshot::Sender<Result<u64, ReadIndexError>>;

/// A node's read-index rounds (cheap to clone).
#[derive(Clone)]
pub(crate) struct ReadBarrier {
    raft: Raft,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// A round is running (its task serves `next` after it).
    running: bool,
    /// Reads waiting for the next round.
    next: Vec<Waiter>,
    /// Rounds run so far.
    rounds: u64,
}

impl ReadBarrier {
    pub(crate) fn new(raft: Raft) -> ReadBarrier {
        ReadBarrier {
            raft,
            state: Arc::default(),
        }
    }

    /// The read index of a round that starts after this call, as [`confirm_read_index`]
    /// gives it, within `timeout`.
    pub(crate) async fn read_index(&self, timeout: Duration) -> Result<u64, ReadIndexError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.next.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(self.clone().run(timeout));
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ReadIndexError::Unavailable {
                reason: format!("leadership not confirmed within {timeout:?}"),
            }),
            Ok(Err(_)) => Err(ReadIndexError::Unavailable {
                reason: "the read-index round was dropped".to_string(),
            }),
            Ok(Ok(result)) => result,
        }
    }

    /// Leadership rounds run so far (each served one or more reads).
    pub(crate) fn rounds(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rounds
    }

    /// Runs rounds until no read waits.
    async fn run(self, timeout: Duration) {
        loop {
            let waiters = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.next.is_empty() {
                    state.running = false;
                    return;
                }
                state.rounds += 1;
                std::mem::take(&mut state.next)
            };
            let result = confirm_read_index(&self.raft, timeout).await;
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
