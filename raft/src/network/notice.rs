//! Commit notices: the leader tells a follower that is already up to date the new commit
//! index, one way, on a long-lived stream.
//!
//! openraft 0.9 sends every follower an extra AppendEntries right after each commit, with
//! no entries, only so that it learns the new commit index and applies (DESIGN.md §3:
//! a write through a follower waits for that follower's own apply). As a unary call that
//! is a whole gRPC round trip per write per follower — headers both ways, a response to
//! encode, decode and wake for — for a message whose answer carries nothing new: the
//! follower already acknowledged every entry it names. On loopback it was a fifth of a
//! single client's write latency.
//!
//! So [`PeerClient`](super::PeerClient) recognises such a message (see `is_notice`
//! there), answers openraft `Success` itself, and hands the request here: it goes out as
//! one message on a `CommitNotices` client stream, and the follower feeds it to its Raft
//! exactly as if it had come as a call. Losing one is harmless: the follower learns the
//! commit index from the next AppendEntries, at the latest the next heartbeat, which is
//! always a real call. A reordered one is harmless too: an AppendEntries without entries
//! whose previous log id the follower holds never truncates its log, and commit indexes
//! only grow.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use super::peer::Peer;
use super::proto::Payload;

/// Notices queued for the stream before newer ones are dropped (each carries the whole
/// commit index, so only the newest matters).
const QUEUE: usize = 64;

/// Starts the notice stream to `peer`; it ends when the peer is dropped (its sender
/// with it).
pub(crate) fn start(peer: &Arc<Peer>) -> mpsc::Sender<Bytes> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(Arc::downgrade(peer), rx));
    tx
}

/// Opens a `CommitNotices` call on the first notice and pumps notices into it until the
/// call ends (peer restarted, connection lost); the next notice opens a new call.
async fn run(peer: Weak<Peer>, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let client = {
            let Some(peer) = peer.upgrade() else {
                return;
            };
            peer.client()
        };
        // Inside the peer's reconnect backoff: this notice is dropped (see above).
        let Ok(mut client) = client else {
            continue;
        };
        let (tx, stream) = mpsc::channel(QUEUE);
        // The queue is empty and its receiver alive: this cannot fail.
        let _ = tx.try_send(Payload { data: first });
        let call = client.commit_notices(ReceiverStream::new(stream));
        tokio::pin!(call);
        loop {
            tokio::select! {
                _ = &mut call => break,
                next = rx.recv() => match next {
                    Some(data) => {
                        // Full: the follower is slow to read; it gets a later commit index
                        // with the next notice or AppendEntries.
                        let _ = tx.try_send(Payload { data });
                    }
                    None => return,
                },
            }
        }
    }
}
