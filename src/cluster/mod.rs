//! The cluster as the proxy sees it: a node of the Raft group (`node`), through which
//! API writes are committed and linearizable reads are fenced, and whose applied state
//! the data path reads without waiting.

pub mod node;

pub use node::{Node, NodeOptions, WriteError};
