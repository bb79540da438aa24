//! raftgate's replicated domain state.
//!
//! This crate will hold the pure reducer (`apply(index, command)`), the openraft type
//! configuration and the gRPC network between nodes (see DESIGN.md §1 and §3). Until the
//! replicated state lands, it only names the identifiers that the proxy already shares
//! with it, so that the dependency direction `raftgate → raftgate-raft` is fixed from the
//! start.

/// A node's identity in the cluster. `raftgate dev` and a config without a `cluster`
/// block run as node 1 of a single-node cluster.
pub type NodeId = u64;

/// The node id used when no `cluster` block names one.
pub const SINGLE_NODE_ID: NodeId = 1;
