//! gRPC between nodes: openraft's replication RPCs, whole-snapshot streaming, and
//! raftgate's own leader forwarding and read index (DESIGN.md §1, §3).
//!
//! - [`Peers`] is the client side: openraft's network factory (one reused, lazily
//!   connected `tonic` channel per peer, with exponential reconnect backoff) and the
//!   [`Peers::forward`] / [`Peers::read_index`] helpers the API uses.
//! - [`service`] is the server side: a tonic service wrapping the node's [`Raft`](crate::types::Raft).
//!
//! openraft's messages cross the wire as bincode inside small protobuf messages
//! (`proto/raftgate.proto`), so the schema stays stable while openraft's types stay
//! typed in Rust.
//!
//! Errors keep the distinction DESIGN.md §3 promise 6 needs: a write that was certainly
//! not applied ([`ForwardError::not_applied`], a 503 in the API) versus one that may
//! still commit ([`ForwardError::Unknown`], a 504).

mod append_stream;
mod batch;
mod client;
mod error;
mod forward;
mod handover;
mod membership;
mod notice;
mod peer;
mod read_index;
mod server;
mod takeover;

#[allow(clippy::all, clippy::unwrap_used, missing_docs, rust_2018_idioms)]
pub mod proto {
    tonic::include_proto!("raftgate.raft.v1");
}

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use batch::{Proposer, MAX_BATCH, MAX_BATCH_BYTES};
pub use client::PeerClient;
pub use error::{ForwardError, ReadIndexError};
pub use handover::ElectNow;
pub use membership::{
    change_membership, leader_view, LeaderView, MemberView, MembershipChange, MembershipDone,
    MembershipError,
};
pub use peer::Peers;
pub use server::{
    propose, serve, service, service_for, service_with, wait_applied, RaftService, Service,
};

/// How long a membership change may take on the leader, a learner's catch-up included.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(30);

const MIB: u64 = 1024 * 1024;

/// Deadlines, backoff and sizes of the node-to-node network. The defaults suit a LAN
/// cluster; every value is a ceiling, never a sleep.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// TCP connect to a peer. Short: an unreachable peer should be reported (and backed
    /// off from) quickly rather than hold up replication to the others.
    pub connect_timeout: Duration,
    /// AppendEntries (and heartbeats). openraft also bounds each call by its heartbeat
    /// interval; the smaller of the two applies.
    pub append_timeout: Duration,
    /// RequestVote. openraft also bounds each call by its minimum election timeout; the
    /// smaller applies.
    pub vote_timeout: Duration,
    /// A snapshot transfer may take `snapshot_base + snapshot_per_mib × size in MiB`:
    /// a fixed deadline would either fail big snapshots forever or leave a dead transfer
    /// hanging for minutes on small ones.
    pub snapshot_base: Duration,
    pub snapshot_per_mib: Duration,
    /// Size of each streamed snapshot chunk, when openraft does not say.
    pub snapshot_chunk_bytes: usize,
    /// The largest snapshot a node accepts; a bound on what a peer can make it buffer.
    pub max_snapshot_bytes: u64,
    /// How long the leader waits for a forwarded write to commit and apply before it
    /// answers "outcome unknown". The forwarding node allows a little more, so the
    /// leader's own answer normally arrives first.
    pub commit_timeout: Duration,
    /// How long the leader may take to confirm its leadership for a read index.
    pub read_index_timeout: Duration,
    /// First reconnect delay after a failed connect; doubles per failure up to
    /// `backoff_max`. Calls to a peer inside its backoff window fail at once as
    /// unreachable instead of waiting on a dead address.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How many proposals (single writes or batches) the leader keeps uncommitted at
    /// once; writes arriving meanwhile queue into the next batch (see [`Proposer`]).
    pub max_proposals_in_flight: usize,
    /// Largest single gRPC message either way (tonic's default is 4 MiB; a batch of
    /// AppendEntries can be bigger).
    pub max_message_bytes: usize,
    /// The address connections to peers leave from: the node's own Raft listen address
    /// when it names one (on a multi-homed host, peers see the node where they expect
    /// it; on loopback, a fault-injecting proxy can tell which node is dialling). `None`
    /// lets the kernel choose.
    pub local_ip: Option<std::net::IpAddr>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            connect_timeout: Duration::from_millis(500),
            append_timeout: Duration::from_secs(1),
            vote_timeout: Duration::from_millis(500),
            snapshot_base: Duration::from_secs(5),
            snapshot_per_mib: Duration::from_secs(1),
            snapshot_chunk_bytes: MIB as usize,
            max_snapshot_bytes: 4 * 1024 * MIB,
            commit_timeout: Duration::from_secs(5),
            read_index_timeout: Duration::from_secs(2),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            max_message_bytes: 64 * MIB as usize,
            max_proposals_in_flight: 2,
            local_ip: None,
        }
    }
}

impl NetworkConfig {
    /// The deadline for streaming a snapshot of `bytes` bytes.
    pub fn snapshot_deadline(&self, bytes: u64) -> Duration {
        let mib = u32::try_from(bytes.div_ceil(MIB)).unwrap_or(u32::MAX);
        self.snapshot_base
            .saturating_add(self.snapshot_per_mib.saturating_mul(mib))
    }

    /// The reconnect delay after `failures` consecutive failed attempts (≥ 1).
    pub fn backoff_after(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.backoff_base
            .saturating_mul(1u32 << shift)
            .min(self.backoff_max)
    }
}

/// Whether `addr` is `HOST:PORT` as peers dial it: a non-empty host (a name, an IPv4
/// address or a bracketed IPv6 one) and a port from 1 to 65535. The one rule for peer
/// lines in the config, nodes added through the API, and the leader that adds them.
pub fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

fn encode<T: Serialize>(value: &T) -> Result<bytes::Bytes, bincode::Error> {
    bincode::serialize(value).map(bytes::Bytes::from)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}
