//! Shared helpers: unique temp directories and log entries.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::{CommittedLeaderId, EntryPayload, Membership};
use raftgate_raft::types::{LogEntry, LogId};
use raftgate_raft::{Command, Entry, KeyType, Ref};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "raftgate-storage-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

pub fn blank(term: u64, index: u64) -> LogEntry {
    LogEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

pub fn membership(term: u64, index: u64, voters: &[u64]) -> LogEntry {
    let set: BTreeSet<u64> = voters.iter().copied().collect();
    LogEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![set], None)),
    }
}

pub fn command(term: u64, index: u64, c: Command) -> LogEntry {
    LogEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Entry::Command(c)),
    }
}

pub fn zone() -> Ref {
    Ref::http("one")
}

pub fn configure_zone(term: u64, index: u64) -> LogEntry {
    command(
        term,
        index,
        Command::ConfigureKeyvalZone {
            zone: zone(),
            capacity_bytes: 1 << 20,
            timeout_ms: None,
            key_type: KeyType::String,
        },
    )
}

/// Adds key `k{index}` = `v{index}` to zone `one`.
pub fn put(term: u64, index: u64) -> LogEntry {
    command(
        term,
        index,
        Command::KeyvalAdd {
            zone: zone(),
            pairs: vec![(format!("k{index}"), format!("v{index}"))],
            now_ms: 1_000 + index,
        },
    )
}
