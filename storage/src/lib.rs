//! Durable storage for raftgate's Raft log and state machine (sled 0.34.7 under openraft).
//!
//! - [`LogStore`]: openraft's log store — entries, vote and commit index in sled. Votes and
//!   appends are acknowledged only after sled's flush *and* an `fdatasync` of sled's data
//!   file; concurrent appends share one sync (group commit, see `flusher`).
//! - [`StateMachineStore`]: the applied state in memory, published to readers after each
//!   apply batch and persisted through snapshot files written atomically (see
//!   `state_machine` and `snapshot_file` for why and how).
//! - [`StateReader`]: how the data path and the API read the applied state without
//!   waiting on Raft, and wait for their own writes to be applied.
//!
//! [`open`] recovers both from a data directory: vote, log and commit index from sled, the
//! state from the newest snapshot plus a replay of the committed log after it.

mod flusher;
mod log_store;
mod snapshot_file;
mod state_machine;

use std::fmt;
use std::path::{Path, PathBuf};

pub use flusher::{SyncCounts, SyncPause};
pub use log_store::{LogStore, CHUNK};
pub use raftgate_raft::NodeId;
pub use snapshot_file::{decode_backup, encode_backup, SnapshotFileError};
pub use state_machine::{
    AppliedState, SnapshotBuilder, StateMachineStore, StateReader, StoreClosed,
};

use openraft::{RaftLogId, StorageError};
use raftgate_raft::types::LogId;

/// Why the store could not be opened.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Sled {
        path: PathBuf,
        source: sled::Error,
    },
    /// The snapshot file exists but fails its checks: refuse to start rather than start
    /// without it (the log before it may be purged). Move the file away to let the node
    /// catch up from the leader instead.
    Snapshot(SnapshotFileError),
    /// The snapshot's state does not decode.
    SnapshotState {
        path: PathBuf,
        source: raftgate_raft::SnapshotError,
    },
    /// Reading the log during recovery failed.
    Log(Box<StorageError<u64>>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Sled { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Snapshot(e) => write!(f, "{e}"),
            Error::SnapshotState { path, source } => {
                write!(f, "corrupt snapshot: {}: {source}", path.display())
            }
            Error::Log(e) => write!(f, "reading the Raft log: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Opens (creating if needed) the Raft store of the node whose data directory is `dir`:
/// sled in [`DataDir::raft_db`], snapshots in [`DataDir::snapshots`].
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), Error> {
    let data = DataDir::open(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    open_dirs(&data.raft_db(), &data.snapshots()).await
}

/// [`open`] with the two directories named explicitly.
pub async fn open_dirs(
    raft_db: &Path,
    snapshots: &Path,
) -> Result<(LogStore, StateMachineStore), Error> {
    let raft_db = raft_db.to_path_buf();
    let snapshots = snapshots.to_path_buf();
    tokio::task::spawn_blocking(move || open_blocking(&raft_db, &snapshots))
        .await
        .map_err(|e| Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn open_blocking(raft_db: &Path, snapshots: &Path) -> Result<(LogStore, StateMachineStore), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(raft_db).map_err(io(raft_db))?;
    let db = sled::Config::new()
        .path(raft_db)
        // The sync thread flushes on every durable write; sled's timer would only add I/O.
        .flush_every_ms(None)
        .open()
        .map_err(|source| Error::Sled {
            path: raft_db.to_path_buf(),
            source,
        })?;
    // sled's files may have just been created: make their directory entries durable.
    sync_dir(raft_db).map_err(io(raft_db))?;
    let flusher = flusher::Flusher::start(db.clone(), raft_db).map_err(io(raft_db))?;
    let log = LogStore::new(db, flusher);

    let (files, loaded) = snapshot_file::SnapshotFiles::open(snapshots).map_err(Error::Snapshot)?;
    if let Some(parent) = snapshots.parent() {
        // The snapshot directory itself may be new.
        sync_dir(parent).map_err(io(parent))?;
    }
    let initial = match loaded {
        None => AppliedState::default(),
        Some((meta, data)) => {
            state_machine::from_snapshot(&meta, &data).map_err(|source| Error::SnapshotState {
                path: files.current_path(),
                source,
            })?
        }
    };
    let mut sm = StateMachineStore::new(initial, files);
    replay_committed(&log, &mut sm)?;
    Ok((log, sm))
}

/// Applies the committed log after the snapshot, so the state is current before Raft
/// starts (and while no leader is reachable). Stops at the first missing entry: openraft
/// decides what happens next.
fn replay_committed(log: &LogStore, sm: &mut StateMachineStore) -> Result<(), Error> {
    let applied: Option<LogId> = sm.reader().last_applied();
    let committed = log.committed().map_err(|e| Error::Log(Box::new(e)))?;
    let (Some(committed), next) = (committed, applied.map_or(0, |a| a.index + 1)) else {
        return Ok(());
    };
    if committed.index < next {
        return Ok(());
    }
    let entries = log
        .entries(next, committed.index + 1)
        .map_err(|e| Error::Log(Box::new(e)))?;
    let contiguous = entries
        .into_iter()
        .enumerate()
        .take_while(|(i, e)| e.get_log_id().index == next + *i as u64)
        .map(|(_, e)| e)
        .collect::<Vec<_>>();
    sm.apply_batch(contiguous);
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Where a node keeps its files inside its data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (and parents) if missing.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Raft log and state machine database (sled).
    pub fn raft_db(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// Snapshot files, written atomically.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Logs written by `raftgate dev` (access and error log).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// `f` on a thread of its own, at normal priority, its result through the receiver.
pub(crate) fn thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // If the thread cannot start, `tx` is dropped with the closure and the receiver
    // reports it.
    let _ = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        });
    rx
}

/// nice 19 for the calling thread (Linux: a thread is a schedulable task of its own), for
/// background housekeeping (writing snapshot files, purging the log) that must not take
/// the core from the nodes' request and replication work: on a busy or single-core
/// machine, CPU-fair scheduling gave a 10,000-entry purge a full share and stalled writes
/// for 100+ ms.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_the_directory_and_names_its_parts() {
        let tmp = std::env::temp_dir().join(format!("raftgate-datadir-{}", std::process::id()));
        let dd = DataDir::open(tmp.join("a/b")).expect("create data dir");
        assert!(dd.root().is_dir());
        assert_eq!(dd.raft_db(), tmp.join("a/b/raft"));
        assert!(dd.logs().starts_with(dd.root()));
        std::fs::remove_dir_all(&tmp).expect("cleanup");
    }
}
