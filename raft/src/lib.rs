//! raftgate's replicated domain state.
//!
//! The domain state is a pure reducer (`State::apply(index, entry)`): the commands of the
//! replicated log, their outcomes, and the state every node derives from them (see
//! DESIGN.md §3), and the openraft type configuration (`types`) that storage and the
//! network are written against. The reducer does no I/O and is not async.

pub mod command;
pub mod network;
pub mod outcome;
pub mod state;
pub mod types;

pub use command::{
    Command, Entry, KeyType, Kind, Ref, Request, ServerChanges, ServerKey, ServerSpec, UpstreamRef,
    ZoneRef,
};
pub use outcome::{
    Applied, ExpiredCounts, HttpOnlyField, ImmutableField, KeyvalFormat, Origin, Rejected,
    RestoreReport, ServerView,
};
pub use state::{normalize_address, SnapshotError, State, ZoneUsage};

/// A node's identity in the cluster. `raftgate dev` and a config without a `cluster`
/// block run as node 1 of a single-node cluster.
pub type NodeId = u64;

/// The node id used when no `cluster` block names one.
pub const SINGLE_NODE_ID: NodeId = 1;
