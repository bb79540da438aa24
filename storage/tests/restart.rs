//! Restart from disk: everything written before a drop is there after a reopen.

mod common;

use common::{blank, configure_zone, log_id, membership, put, zone, TempDir};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper, Vote};
use raftgate_raft::types::LogEntry;

fn keys(sm: &raftgate_storage::StateMachineStore) -> Vec<String> {
    let applied = sm.reader().load();
    applied
        .state()
        .keyval_entries(&zone())
        .map(|it| it.map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default()
}

/// Entries 0..=20: blank, membership {1,2,3}, zone config, then puts of k3..k20.
fn history() -> Vec<LogEntry> {
    let mut v = vec![
        blank(1, 0),
        membership(1, 1, &[1, 2, 3]),
        configure_zone(1, 2),
    ];
    v.extend((3..=20).map(|i| put(1, i)));
    v
}

#[tokio::test]
async fn vote_log_purge_snapshot_and_applied_state_survive_a_restart() {
    let dir = TempDir::new("restart");
    let all = history();
    {
        let (mut log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
        log.save_vote(&Vote::new(7, 2)).await.expect("vote");
        log.blocking_append(all.clone()).await.expect("append");
        // Apply and snapshot up to 10, purge the log up to 5.
        sm.apply(all[..=10].to_vec()).await.expect("apply");
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 10)));
        log.purge(log_id(1, 5)).await.expect("purge");
        // Apply up to 15 after the snapshot; commit 15 (16..=20 stay uncommitted).
        sm.apply(all[11..=15].to_vec()).await.expect("apply");
        log.save_committed(Some(log_id(1, 15)))
            .await
            .expect("commit");
        assert_eq!(keys(&sm).len(), 13);
    }

    let (mut log, mut sm) = raftgate_storage::open(dir.path()).await.expect("reopen");
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(7, 2)));
    let st = log.get_log_state().await.expect("log state");
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(st.last_log_id, Some(log_id(1, 20)));
    let entries = log.try_get_log_entries(0..100).await.expect("entries");
    assert_eq!(entries, all[6..].to_vec());
    assert_eq!(
        log.read_committed().await.expect("committed"),
        Some(log_id(1, 15))
    );

    // Snapshot (to 10) + replay of the committed log (11..=15); not 16..=20.
    let (applied, mem) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 15)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1)));
    assert_eq!(
        mem.membership(),
        &Membership::new(vec![[1, 2, 3].into()], None)
    );
    let want: Vec<String> = {
        let mut k: Vec<String> = (3..=15).map(|i| format!("k{i}")).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&sm), want);
    let cur = sm
        .get_current_snapshot()
        .await
        .expect("read snapshot")
        .expect("a snapshot");
    assert_eq!(cur.meta.last_log_id, Some(log_id(1, 10)));

    // openraft's own start-up agrees: nothing left to re-apply, same membership.
    let initial = StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .expect("initial state");
    assert_eq!(initial.committed, Some(log_id(1, 15)));
    assert_eq!(
        initial.membership_state.effective().membership(),
        &Membership::new(vec![[1, 2, 3].into()], None)
    );
}

#[tokio::test]
async fn without_a_snapshot_the_committed_log_is_replayed_from_the_start() {
    let dir = TempDir::new("replay");
    let all = history();
    {
        let (mut log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
        log.blocking_append(all.clone()).await.expect("append");
        sm.apply(all.clone()).await.expect("apply");
        log.save_committed(Some(log_id(1, 20)))
            .await
            .expect("commit");
    }
    let (_log, sm) = raftgate_storage::open(dir.path()).await.expect("reopen");
    let applied = sm.reader().load();
    assert_eq!(applied.last_applied(), Some(log_id(1, 20)));
    assert_eq!(keys(&sm).len(), 18);
    assert_eq!(applied.membership().log_id(), &Some(log_id(1, 1)));
}

#[tokio::test]
async fn an_empty_store_reopens_empty() {
    let dir = TempDir::new("empty");
    drop(raftgate_storage::open(dir.path()).await.expect("open"));
    let (mut log, mut sm) = raftgate_storage::open(dir.path()).await.expect("reopen");
    assert_eq!(log.read_vote().await.expect("vote"), None);
    let st = log.get_log_state().await.expect("state");
    assert_eq!((st.last_purged_log_id, st.last_log_id), (None, None));
    assert_eq!(sm.applied_state().await.expect("applied").0, None);
    assert!(sm.get_current_snapshot().await.expect("snap").is_none());
}

#[tokio::test]
async fn truncate_survives_a_restart() {
    let dir = TempDir::new("truncate");
    {
        let (mut log, _sm) = raftgate_storage::open(dir.path()).await.expect("open");
        log.blocking_append(history()).await.expect("append");
        log.truncate(log_id(1, 12)).await.expect("truncate");
        log.blocking_append([blank(2, 12)]).await.expect("append");
    }
    let (mut log, _sm) = raftgate_storage::open(dir.path()).await.expect("reopen");
    let st = log.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(2, 12)));
    let entries = log.try_get_log_entries(11..).await.expect("entries");
    assert_eq!(entries, vec![put(1, 11), blank(2, 12)]);
}
