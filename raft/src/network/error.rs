//! What forwarding a write or asking for a read index can answer, typed so the API can
//! keep DESIGN.md §3 promise 6: 503 only for a write that was certainly not applied,
//! 504 for one whose outcome is unknown.

use std::fmt;

use crate::NodeId;

/// Why a write did not come back committed.
///
/// Every variant but [`ForwardError::Unknown`] means the write was definitely not
/// applied and never will be, so the client may retry it anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// No leader is known: nothing was proposed.
    NoLeader,
    /// The node asked is not the leader, so it proposed nothing. It names the leader it
    /// knows of, if any, so the caller can retry there.
    NotLeader {
        leader: Option<NodeId>,
        addr: Option<String>,
    },
    /// The leader could not be reached (connect failed, or the peer is inside its
    /// reconnect backoff): the request was never sent.
    Unreachable { target: NodeId, reason: String },
    /// The leader refused the request before proposing it (undecodable entry, shutting
    /// down).
    Refused { reason: String },
    /// The write may have been proposed but its commit was not confirmed in time, or the
    /// answer was lost: it may still apply. Never report this as "not applied".
    Unknown { reason: String },
}

impl ForwardError {
    /// True when the write certainly was not applied (503); false for
    /// [`ForwardError::Unknown`] (504).
    pub fn not_applied(&self) -> bool {
        !matches!(self, ForwardError::Unknown { .. })
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::NoLeader => f.write_str("no leader; the write was not proposed"),
            ForwardError::NotLeader { leader, addr } => {
                f.write_str("not the leader; the write was not proposed")?;
                if let Some(id) = leader {
                    write!(f, "; leader is node {id}")?;
                }
                if let Some(addr) = addr {
                    write!(f, " at {addr}")?;
                }
                Ok(())
            }
            ForwardError::Unreachable { target, reason } => {
                write!(
                    f,
                    "leader node {target} unreachable, write not sent: {reason}"
                )
            }
            ForwardError::Refused { reason } => write!(f, "write refused, not proposed: {reason}"),
            ForwardError::Unknown { reason } => {
                write!(
                    f,
                    "write outcome unknown (commit not confirmed in time): {reason}"
                )
            }
        }
    }
}

impl std::error::Error for ForwardError {}

/// Why a linearizable read could not get a read index. Reads change nothing, so there is
/// no "unknown outcome": every failure may simply be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadIndexError {
    /// No leader is known.
    NoLeader,
    /// The node asked is not the leader; it names the one it knows of.
    NotLeader {
        leader: Option<NodeId>,
        addr: Option<String>,
    },
    /// The leader could not be reached.
    Unreachable { target: NodeId, reason: String },
    /// The leader could not confirm its leadership with a quorum in time, or the answer
    /// was lost.
    Unavailable { reason: String },
}

impl fmt::Display for ReadIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadIndexError::NoLeader => f.write_str("no leader"),
            ReadIndexError::NotLeader { leader, addr } => {
                f.write_str("not the leader")?;
                if let Some(id) = leader {
                    write!(f, "; leader is node {id}")?;
                }
                if let Some(addr) = addr {
                    write!(f, " at {addr}")?;
                }
                Ok(())
            }
            ReadIndexError::Unreachable { target, reason } => {
                write!(f, "leader node {target} unreachable: {reason}")
            }
            ReadIndexError::Unavailable { reason } => {
                write!(f, "leadership not confirmed: {reason}")
            }
        }
    }
}

impl std::error::Error for ReadIndexError {}
