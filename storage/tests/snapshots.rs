//! Snapshot files: atomic replacement, crash leftovers, corruption, transfer.

mod common;

use common::{blank, configure_zone, log_id, membership, put, zone, TempDir};
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use raftgate_storage::{DataDir, Error};

async fn snapshot_at_5(dir: &std::path::Path) {
    let (_log, mut sm) = raftgate_storage::open(dir).await.expect("open");
    sm.apply([
        blank(1, 0),
        membership(1, 1, &[1]),
        configure_zone(1, 2),
        put(1, 3),
        put(1, 4),
        put(1, 5),
    ])
    .await
    .expect("apply");
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
}

fn snapshot_dir_files(dir: &std::path::Path) -> Vec<String> {
    let snaps = DataDir::open(dir).expect("data dir").snapshots();
    let mut names: Vec<String> = std::fs::read_dir(snaps)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_snapshot_is_one_file_and_a_crash_leftover_temp_file_is_removed_on_open() {
    let dir = TempDir::new("snap-tmp");
    snapshot_at_5(dir.path()).await;
    assert_eq!(snapshot_dir_files(dir.path()), vec!["current.snap"]);

    // A crash between creating the temp file and the rename leaves garbage behind.
    let snaps = DataDir::open(dir.path()).expect("data dir").snapshots();
    std::fs::write(snaps.join("snapshot-1-0.tmp"), b"half a snapshot").expect("write");
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("reopen");
    assert_eq!(snapshot_dir_files(dir.path()), vec!["current.snap"]);
    let cur = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    assert_eq!(cur.meta.last_log_id, Some(log_id(1, 5)));
    assert_eq!(sm.reader().load().applied_index(), 5);
}

#[tokio::test]
async fn a_corrupt_snapshot_file_is_refused_not_loaded() {
    let dir = TempDir::new("snap-corrupt");
    snapshot_at_5(dir.path()).await;
    let path = DataDir::open(dir.path())
        .expect("data dir")
        .snapshots()
        .join("current.snap");
    let good = std::fs::read(&path).expect("read");

    // One flipped bit in the middle.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    std::fs::write(&path, &bad).expect("write");
    match raftgate_storage::open(dir.path()).await {
        Err(Error::Snapshot(e)) => assert!(e.to_string().contains("checksum"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupt snapshot was loaded"),
    }

    // Truncated (a torn write on a filesystem that does not order rename after data).
    std::fs::write(&path, &good[..good.len() - 7]).expect("write");
    assert!(matches!(
        raftgate_storage::open(dir.path()).await,
        Err(Error::Snapshot(_))
    ));

    // Restored, it loads again.
    std::fs::write(&path, &good).expect("write");
    let (_log, sm) = raftgate_storage::open(dir.path()).await.expect("open");
    assert_eq!(sm.reader().load().applied_index(), 5);
}

#[tokio::test]
async fn an_installed_snapshot_replaces_the_state_and_survives_a_restart() {
    let leader = TempDir::new("snap-leader");
    let follower = TempDir::new("snap-follower");
    snapshot_at_5(leader.path()).await;
    let (_l, mut sm_l) = raftgate_storage::open(leader.path()).await.expect("open");
    let snap = sm_l
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    let leader_state = sm_l.reader().load();
    {
        let (_log, mut sm) = raftgate_storage::open(follower.path()).await.expect("open");
        sm.apply([blank(1, 0)]).await.expect("apply");
        let mut rx = sm.begin_receiving_snapshot().await.expect("begin");
        *rx = *snap.snapshot;
        sm.install_snapshot(&snap.meta, rx).await.expect("install");
        assert_eq!(*sm.reader().load(), *leader_state);
    }
    let (_log, sm) = raftgate_storage::open(follower.path())
        .await
        .expect("reopen");
    assert_eq!(*sm.reader().load(), *leader_state);
    let keys: Vec<String> = sm
        .reader()
        .load()
        .state()
        .keyval_entries(&zone())
        .expect("zone")
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(keys, vec!["k3", "k4", "k5"]);
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_not_installed() {
    let dir = TempDir::new("snap-garbage");
    snapshot_at_5(dir.path()).await;
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
    let mut snap = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    snap.meta.last_log_id = Some(log_id(2, 9));
    let before = sm.reader().load();
    let garbage = Box::new(std::io::Cursor::new(vec![1u8, 0xff, 0xff]));
    assert!(sm.install_snapshot(&snap.meta, garbage).await.is_err());
    assert_eq!(*sm.reader().load(), *before);
    let cur = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    assert_eq!(cur.meta.last_log_id, Some(log_id(1, 5)));
}

#[tokio::test]
async fn an_older_snapshot_finishing_late_does_not_replace_a_newer_one() {
    let dir = TempDir::new("snap-order");
    let (_log, mut sm) = raftgate_storage::open(dir.path()).await.expect("open");
    sm.apply([blank(1, 0), configure_zone(1, 1), put(1, 2)])
        .await
        .expect("apply");
    let mut old = sm.get_snapshot_builder().await;
    sm.apply([put(1, 3)]).await.expect("apply");
    let mut new = sm.get_snapshot_builder().await;
    new.build_snapshot().await.expect("new");
    let built_old = old.build_snapshot().await.expect("old");
    assert_eq!(built_old.meta.last_log_id, Some(log_id(1, 2)));
    let cur = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    assert_eq!(cur.meta.last_log_id, Some(log_id(1, 3)));
}
