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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::ReadIndexError;
use super::server::confirm_read_index;
use crate::types::Raft;

type Waiter = oneshot::Sender<Result<u64, ReadIndexError>>;
type RoundResult = Pin<Box<dyn Future<Output = Result<u64, ReadIndexError>> + Send>>;
/// One leadership round: [`confirm_read_index`] on the node's Raft (a stand-in in the
/// unit tests, which need to hold a round open).
type Round = Arc<dyn Fn(Duration) -> RoundResult + Send + Sync>;

/// A node's read-index rounds (cheap to clone).
#[derive(Clone)]
pub(crate) struct ReadBarrier {
    round: Round,
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
        ReadBarrier::with_round(Arc::new(move |timeout| {
            let raft = raft.clone();
            Box::pin(async move { confirm_read_index(&raft, timeout).await })
        }))
    }

    fn with_round(round: Round) -> ReadBarrier {
        ReadBarrier {
            round,
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
            let result = (self.round)(timeout).await;
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f`, or a failure after 5 s (a wrongly batched read otherwise hangs the test).
    async fn within<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("no hang")
    }

    /// Rounds that each wait for the test to finish them with an index.
    fn held_rounds() -> (
        ReadBarrier,
        tokio::sync::mpsc::UnboundedReceiver<oneshot::Sender<u64>>,
    ) {
        let (started, rounds) = tokio::sync::mpsc::unbounded_channel();
        let barrier = ReadBarrier::with_round(Arc::new(move |_| {
            let (finish, index) = oneshot::channel();
            let _ = started.send(finish);
            Box::pin(async move { index.await.map_err(|_| ReadIndexError::NoLeader) })
        }));
        (barrier, rounds)
    }

    #[tokio::test]
    async fn a_read_that_arrives_during_a_round_waits_for_the_next_one() {
        let (barrier, mut rounds) = held_rounds();
        let first = tokio::spawn({
            let b = barrier.clone();
            async move { b.read_index(Duration::from_secs(5)).await }
        });
        let round1 = within(rounds.recv()).await.expect("round 1 starts");
        // Arrives while round 1 runs: round 1 may have read an older commit index.
        let late = tokio::spawn({
            let b = barrier.clone();
            async move { b.read_index(Duration::from_secs(5)).await }
        });
        let also_late = tokio::spawn({
            let b = barrier.clone();
            async move { b.read_index(Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        round1.send(10).expect("round 1 waits");
        assert_eq!(within(first).await.expect("join"), Ok(10));
        let round2 = within(rounds.recv()).await.expect("round 2 starts");
        round2.send(11).expect("round 2 waits");
        assert_eq!(within(late).await.expect("join"), Ok(11));
        assert_eq!(within(also_late).await.expect("join"), Ok(11));
        assert_eq!(barrier.rounds(), 2, "the two late reads share round 2");
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_reads_and_the_next_read_starts_a_new_one() {
        let (barrier, mut rounds) = held_rounds();
        let read = tokio::spawn({
            let b = barrier.clone();
            async move { b.read_index(Duration::from_secs(5)).await }
        });
        drop(within(rounds.recv()).await.expect("round 1 starts"));
        assert_eq!(
            within(read).await.expect("join"),
            Err(ReadIndexError::NoLeader)
        );
        let again = tokio::spawn({
            let b = barrier.clone();
            async move { b.read_index(Duration::from_secs(5)).await }
        });
        within(rounds.recv())
            .await
            .expect("round 2 starts")
            .send(3)
            .expect("waits");
        assert_eq!(within(again).await.expect("join"), Ok(3));
    }
}
