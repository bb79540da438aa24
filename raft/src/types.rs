//! openraft's type configuration for raftgate: what a log entry carries and what
//! applying it answers. Storage (`raftgate-storage`) and the network (`network`) are
//! written against these.

use std::io::Cursor;

use crate::{Applied, Entry, Rejected};

/// What applying a committed entry answered: the reducer's result, returned to the
/// client that proposed it (on the node that received the write).
pub type Response = Result<Applied, Rejected>;

openraft::declare_raft_types!(
    /// raftgate's openraft types: log entries are [`Entry`]s, snapshots are the
    /// reducer's own encoding held in memory while they move.
    pub TypeConfig:
        D = Entry,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type LogEntry = openraft::Entry<TypeConfig>;
