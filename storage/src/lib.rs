//! Durable storage for raftgate's Raft log and state machine (sled 0.34.7 under openraft).
//!
//! Until the Raft store lands this crate owns one thing the proxy already needs: the
//! layout of a node's data directory, so that `raftgate dev` and a clustered node keep
//! their files in the same places from the first release on.

use std::path::{Path, PathBuf};

pub use raftgate_raft::NodeId;

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
