//! openraft's own storage conformance suite, run against the sled store.

mod common;

use common::TempDir;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use raftgate_raft::types::TypeConfig;
use raftgate_storage::{LogStore, StateMachineStore};

/// Each test gets a fresh data directory, removed when the test's guard drops.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = TempDir::new("suite");
        let (log, sm) = raftgate_storage::open(dir.path())
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}
