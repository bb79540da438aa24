//! The published applied state: lock-free reads, read-your-writes, and the left-right
//! reuse of the previous copy giving exactly the state a plain apply gives.

mod common;

use common::{blank, configure_zone, membership, put, zone, TempDir};
use openraft::storage::RaftStateMachine;
use raftgate_raft::State;

#[tokio::test]
async fn wait_applied_returns_once_the_index_is_applied() {
    let dir = TempDir::new("reader-wait");
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let reader = sm.reader();
    assert_eq!(reader.last_applied(), None);
    let waiter = tokio::spawn({
        let reader = reader.clone();
        async move { reader.wait_applied(3).await }
    });
    sm.apply([blank(1, 0), configure_zone(1, 1), put(1, 2)])
        .await
        .expect("apply");
    sm.apply([put(1, 3)]).await.expect("apply");
    let seen = waiter.await.expect("join").expect("applied");
    assert_eq!(seen.applied_index(), 3);
    assert_eq!(seen.state().keyval_get(&zone(), "k3"), Some("v3"));
    // Already applied: returns at once.
    assert_eq!(
        reader
            .wait_applied(1)
            .await
            .expect("applied")
            .applied_index(),
        3
    );
}

#[tokio::test]
async fn wait_applied_fails_when_the_state_machine_is_dropped() {
    let dir = TempDir::new("reader-closed");
    let (_log, sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let reader = sm.reader();
    drop(sm);
    assert!(reader.wait_applied(1).await.is_err());
    // The last published state stays readable.
    assert_eq!(reader.load().applied_index(), 0);
}

#[tokio::test]
async fn reusing_the_previous_copy_gives_the_same_state_as_a_plain_apply() {
    let dir = TempDir::new("reader-leftright");
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let reader = sm.reader();
    let mut all = vec![blank(1, 0), membership(1, 1, &[1]), configure_zone(1, 2)];
    all.extend((3..60).map(|i| put(1, i)));

    let mut held = Vec::new();
    for (n, batch) in all.chunks(4).enumerate() {
        sm.apply(batch.to_vec()).await.expect("apply");
        // Every third batch a reader holds the published value across the next apply.
        if n % 3 == 0 {
            let value = reader.load();
            let bytes = value.state().snapshot().expect("encode");
            held.push((value, bytes));
        } else {
            held.clear();
        }
    }
    let (reused, cloned) = sm.copy_stats();
    assert!(reused > 0 && cloned > 0, "reused {reused}, cloned {cloned}");

    let mut plain = State::new();
    for e in &all {
        if let openraft::EntryPayload::Normal(d) = &e.payload {
            let _ = plain.apply(e.log_id.index, d.clone());
        }
    }
    let published = reader.load();
    assert_eq!(published.state(), &plain);
    assert_eq!(published.applied_index(), 59);
    // Held values are untouched by later applies.
    for (value, bytes) in &held {
        assert_eq!(&value.state().snapshot().expect("encode"), bytes);
    }
}

/// A snapshot borrows the spare copy rather than holding the published one: the batches
/// applied while it is built clone nothing (cloning a large state per batch stalled
/// writes at every snapshot), the snapshot has the state of its moment, and the state
/// after it is exactly what a plain apply gives.
#[tokio::test]
async fn a_snapshot_in_progress_makes_no_apply_clone_the_state() {
    use openraft::storage::RaftSnapshotBuilder;

    let dir = TempDir::new("reader-snapshot");
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let reader = sm.reader();
    let mut all = vec![blank(1, 0), membership(1, 1, &[1]), configure_zone(1, 2)];
    all.extend((3..40).map(|i| put(1, i)));
    for batch in all[..20].chunks(2) {
        sm.apply(batch.to_vec()).await.expect("apply");
    }
    let at_snapshot = reader.load().state().snapshot().expect("encode");
    let (_, cloned_before) = sm.copy_stats();
    let mut builder = sm.get_snapshot_builder().await;
    for batch in all[20..].chunks(2) {
        sm.apply(batch.to_vec()).await.expect("apply");
    }
    let snapshot = builder.build_snapshot().await.expect("build");
    let (_, cloned_after) = sm.copy_stats();
    assert_eq!(cloned_after, cloned_before, "an apply cloned the state");
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(19));
    assert_eq!(snapshot.snapshot.into_inner(), at_snapshot);

    let mut plain = State::new();
    for e in &all {
        if let openraft::EntryPayload::Normal(d) = &e.payload {
            let _ = plain.apply(e.log_id.index, d.clone());
        }
    }
    assert_eq!(reader.load().state(), &plain);
    assert_eq!(reader.load().applied_index(), 39);
}
