//! Durability mechanics: acknowledgements wait for flush + fdatasync, group commit, and
//! nothing goes to sled's never-synced blob files.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use common::{blank, command, configure_zone, log_id, zone, TempDir};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};
use raftgate_raft::Command;
use raftgate_storage::DataDir;

fn is_pending<F: Future>(f: std::pin::Pin<&mut F>) -> bool {
    f.poll(&mut Context::from_waker(Waker::noop())).is_pending()
}

#[tokio::test]
async fn votes_appends_and_truncates_are_acknowledged_after_a_sync() {
    let dir = TempDir::new("dur-count");
    let (mut log, _sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let c0 = log.sync_counts();
    assert_eq!(c0.syncs, 0);

    log.save_vote(&Vote::new(1, 1)).await.expect("vote");
    let c1 = log.sync_counts();
    assert_eq!((c1.syncs, c1.votes), (1, 1));

    log.blocking_append([blank(1, 0), blank(1, 1)])
        .await
        .expect("append");
    let c2 = log.sync_counts();
    assert_eq!((c2.syncs, c2.appends), (2, 1));

    log.truncate(log_id(1, 1)).await.expect("truncate");
    let c3 = log.sync_counts();
    assert_eq!((c3.syncs, c3.truncates), (3, 1));

    // Neither purge nor save_committed syncs on its own.
    log.purge(log_id(1, 0)).await.expect("purge");
    log.save_committed(Some(log_id(1, 0)))
        .await
        .expect("commit");
    assert_eq!(log.sync_counts().syncs, 3);
}

#[tokio::test]
async fn an_append_is_not_acknowledged_until_its_sync_and_waiters_share_one_sync() {
    let dir = TempDir::new("dur-group");
    let (log, _sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let mut acks = Vec::new();
    {
        let _hold = log.pause_syncs();
        for i in 0..64 {
            let ack = log.append_nowait([blank(1, i)]).expect("write");
            acks.push(Box::pin(ack));
        }
        for ack in &mut acks {
            assert!(is_pending(ack.as_mut()), "acknowledged before its sync");
        }
        assert_eq!(log.sync_counts().syncs, 0);
    }
    for ack in acks {
        ack.await.expect("durable");
    }
    let c = log.sync_counts();
    assert_eq!(c.appends, 64);
    assert_eq!(
        c.syncs, 1,
        "all 64 queued appends behind one flush + fdatasync"
    );
}

#[tokio::test]
async fn a_vote_waits_for_its_sync() {
    let dir = TempDir::new("dur-vote");
    let (log, _sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let mut store = log.clone();
    let hold = log.pause_syncs();
    let vote = Vote::new(3, 1);
    let mut save = pin!(store.save_vote(&vote));
    assert!(
        is_pending(save.as_mut()),
        "vote acknowledged before its sync"
    );
    drop(hold);
    save.await.expect("vote");
    assert_eq!(log.sync_counts().votes, 1);
}

#[tokio::test]
async fn a_large_entry_is_chunked_and_nothing_goes_to_blob_files() {
    let dir = TempDir::new("dur-blob");
    let (mut log, _sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let big = command(
        1,
        1,
        Command::KeyvalAdd {
            zone: zone(),
            pairs: vec![("k".into(), "x".repeat(1 << 20))],
            now_ms: 1,
        },
    );
    let mut entries = vec![configure_zone(1, 0), big];
    entries.extend((2..40).map(|i| blank(1, i)));
    log.blocking_append(entries.clone()).await.expect("append");
    assert_eq!(log.try_get_log_entries(0..).await.expect("read"), entries);

    // Overwriting the big entry with a small one leaves none of its chunks behind.
    log.blocking_append([blank(2, 1)]).await.expect("append");
    let got = log.try_get_log_entries(0..3).await.expect("read");
    assert_eq!(got, vec![configure_zone(1, 0), blank(2, 1), blank(1, 2)]);

    let blobs = DataDir::open(dir.path())
        .expect("data dir")
        .raft_db()
        .join("blobs");
    let count = std::fs::read_dir(&blobs).map_or(0, |d| d.count());
    assert_eq!(count, 0, "sled wrote blob files, which are never fsynced");
}
