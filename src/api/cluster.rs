//! `/api/2/cluster`: raftgate's own extension of API v2 (no NGINX Plus has it).
//!
//! - `GET /2/cluster` — this node's Raft state and every member with the leader's view
//!   of it (see [`crate::cluster::status`]). Never goes through a read barrier: it must
//!   answer when there is no quorum, which is when operators look at it.
//! - `GET /2/cluster/nodes`, `GET /2/cluster/nodes/{id}` — the members alone.
//! - `POST /2/cluster/nodes` with `{"id": 4, "address": "10.0.0.4:7100"}` (and
//!   optionally `"voter": false` to keep it a learner) adds a node: learner first, voter
//!   once caught up. Answers 201 with the node as the status shows it.
//! - `DELETE /2/cluster/nodes/{id}` removes a node and answers 200 with the remaining
//!   members (as API v2's server DELETE answers with the remaining servers).
//! - `GET /2/cluster/leader` — the leader, as the members list shows it.
//! - `POST /2/cluster/leader` with `{"id": 2}` hands leadership to voter 2 and answers
//!   200 with it once this node sees it lead. Writes wait during the handover (a few
//!   milliseconds with three voters) rather than fail.
//!
//! - `GET /2/cluster/snapshot` — a backup of the replicated state (after a read barrier,
//!   unless `consistency=local`), in the format of a snapshot file; `PUT` restores one
//!   (see `raftgate_raft::state::restore` for what a restore replaces).
//!
//! Changes run one at a time on the leader. Errors use the NGINX error object with
//! raftgate's codes: 409 `ClusterChangeInProgress`, 400 `ClusterNodeFormatError` /
//! `ClusterChangeInvalid`, 404 `ClusterNodeNotFound`, 503 `ClusterUnavailable` (no
//! leader: nothing changed), 504 `ClusterNodeNotCaughtUp` (added as learner, not yet
//! promoted: repeat the POST) and 504 `WriteOutcomeUnknown`.

use raftgate_raft::network::{MembershipChange, MembershipError};
use raftgate_raft::{Applied, Command, NodeId};
use serde::Deserialize;

use super::error::ApiError;
use super::{json, ApiResponse, Backend};
use crate::cluster::{ClusterStatus, NodeStatus};

pub const CLUSTER_NODE_FORMAT_ERROR: &str = "ClusterNodeFormatError";
pub const CLUSTER_CHANGE_INVALID: &str = "ClusterChangeInvalid";
pub const CLUSTER_CHANGE_IN_PROGRESS: &str = "ClusterChangeInProgress";
pub const CLUSTER_NODE_NOT_FOUND: &str = "ClusterNodeNotFound";
pub const CLUSTER_NODE_NOT_CAUGHT_UP: &str = "ClusterNodeNotCaughtUp";

/// The body of `POST /2/cluster/nodes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNode {
    id: NodeId,
    address: String,
    #[serde(default = "yes")]
    voter: bool,
}

/// The body of `POST /2/cluster/leader`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLeader {
    id: NodeId,
}

fn yes() -> bool {
    true
}

pub(crate) async fn status<B: Backend>(b: &B) -> Result<ApiResponse, ApiError> {
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(200, json::encode(&s)?))
}

pub(crate) async fn nodes<B: Backend>(b: &B) -> Result<ApiResponse, ApiError> {
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(200, json::encode(&s.nodes)?))
}

fn find(s: &ClusterStatus, id: NodeId) -> Result<&NodeStatus, ApiError> {
    s.nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| not_found(id))
}

fn not_found(id: NodeId) -> ApiError {
    ApiError::new(
        404,
        CLUSTER_NODE_NOT_FOUND,
        format!("node {id} is not a member"),
    )
}

pub(crate) async fn node<B: Backend>(b: &B, id: NodeId) -> Result<ApiResponse, ApiError> {
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(200, json::encode(find(&s, id)?)?))
}

/// Parses a node id path segment: a decimal u64, as node ids are in the config.
pub fn node_id(segment: &str) -> Result<NodeId, ApiError> {
    segment
        .parse::<NodeId>()
        .ok()
        .filter(|_| segment.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::new(
                400,
                CLUSTER_NODE_FORMAT_ERROR,
                format!("node id {segment:?} is not a number"),
            )
        })
}

fn parse_new_node(body: &[u8]) -> Result<NewNode, ApiError> {
    // Not JSON at all is 415, as for keyvals; JSON of the wrong shape is 400.
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::json(format!("invalid JSON: {e}")))?;
    let n: NewNode = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            400,
            CLUSTER_NODE_FORMAT_ERROR,
            format!(
                "expected {{\"id\": number, \"address\": \"host:port\", \"voter\": bool}}: {e}"
            ),
        )
    })?;
    if n.id == 0 {
        return Err(ApiError::new(
            400,
            CLUSTER_NODE_FORMAT_ERROR,
            "node ids start at 1",
        ));
    }
    if !raftgate_raft::network::is_host_port(&n.address) {
        return Err(ApiError::new(
            400,
            CLUSTER_NODE_FORMAT_ERROR,
            format!("address {:?} is not host:port", n.address),
        ));
    }
    Ok(n)
}

fn membership_error(e: MembershipError) -> ApiError {
    let text = e.to_string();
    match e {
        MembershipError::NotLeader { .. } | MembershipError::Unreachable { .. } => {
            ApiError::cluster_unavailable(format!("{text}; nothing changed"))
        }
        MembershipError::InProgress(_) => ApiError::new(409, CLUSTER_CHANGE_IN_PROGRESS, text),
        MembershipError::Invalid(_) => ApiError::new(400, CLUSTER_CHANGE_INVALID, text),
        MembershipError::NotFound(id) => not_found(id),
        MembershipError::NotCaughtUp { .. } | MembershipError::NotTakenOver { .. } => {
            ApiError::new(504, CLUSTER_NODE_NOT_CAUGHT_UP, text)
        }
        MembershipError::Unknown(_) => ApiError::write_outcome_unknown(text),
    }
}

pub(crate) async fn add<B: Backend>(b: &B, body: &[u8]) -> Result<ApiResponse, ApiError> {
    let n = parse_new_node(body)?;
    let change = MembershipChange::Add {
        id: n.id,
        addr: n.address,
        voter: n.voter,
    };
    b.change_membership(change)
        .await
        .map_err(membership_error)?;
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(201, json::encode(find(&s, n.id)?)?))
}

pub(crate) async fn remove<B: Backend>(b: &B, id: NodeId) -> Result<ApiResponse, ApiError> {
    b.change_membership(MembershipChange::Remove { id })
        .await
        .map_err(membership_error)?;
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(200, json::encode(&s.nodes)?))
}

pub(crate) async fn leader<B: Backend>(b: &B) -> Result<ApiResponse, ApiError> {
    let s = b.cluster_status().await;
    let id = s
        .leader
        .ok_or_else(|| ApiError::cluster_unavailable("no leader is known to this node"))?;
    Ok(ApiResponse::json(200, json::encode(find(&s, id)?)?))
}

pub(crate) async fn transfer_leader<B: Backend>(
    b: &B,
    body: &[u8],
) -> Result<ApiResponse, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::json(format!("invalid JSON: {e}")))?;
    // serde would also take `[2]` for the struct: only an object is the documented form.
    let n = if value.is_object() {
        serde_json::from_value::<NewLeader>(value).map_err(|e| e.to_string())
    } else {
        Err(format!("got {value}"))
    }
    .map_err(|e| {
        ApiError::new(
            400,
            CLUSTER_NODE_FORMAT_ERROR,
            format!("expected {{\"id\": number}}: {e}"),
        )
    })?;
    b.change_membership(MembershipChange::TransferLeader { to: n.id })
        .await
        .map_err(membership_error)?;
    let s = b.cluster_status().await;
    Ok(ApiResponse::json(200, json::encode(find(&s, n.id)?)?))
}

/// The largest backup a restore takes: one Raft entry that every node stores, sends and
/// applies whole. Far above what keyval zones and sticky sessions of a real deployment
/// hold, and well inside a gRPC message between nodes.
pub const MAX_RESTORE_BYTES: usize = 16 << 20;

pub const SNAPSHOT_FORMAT_ERROR: &str = "SnapshotFormatError";

pub(crate) fn backup<B: Backend>(b: &B) -> Result<ApiResponse, ApiError> {
    let bytes = b
        .backup()
        .map_err(|e| ApiError::new(500, super::error::INTERNAL_ERROR, format!("backup: {e}")))?;
    Ok(ApiResponse {
        status: 200,
        body: bytes.into(),
        content_type: "application/octet-stream",
    })
}

/// What `PUT /2/cluster/snapshot` answers.
#[derive(Debug, serde::Serialize)]
struct Restored {
    /// The last log index the backup reflects (`null` for an empty one).
    backup_index: Option<u64>,
    #[serde(flatten)]
    report: raftgate_raft::RestoreReport,
}

pub(crate) async fn restore<B: Backend>(b: &B, body: &[u8]) -> Result<ApiResponse, ApiError> {
    if body.len() > MAX_RESTORE_BYTES {
        return Err(ApiError::new(
            413,
            SNAPSHOT_FORMAT_ERROR,
            format!(
                "the backup is {} bytes; a restore takes at most {MAX_RESTORE_BYTES}",
                body.len()
            ),
        ));
    }
    let bad = |why: String| {
        ApiError::new(
            400,
            SNAPSHOT_FORMAT_ERROR,
            format!("not a raftgate backup: {why}"),
        )
    };
    let (last, state) = raftgate_storage::decode_backup(body).map_err(bad)?;
    // Refused here, before it reaches the log, if its state cannot be read; the reducer
    // would refuse it too, on every node.
    raftgate_raft::State::from_snapshot(&state).map_err(|e| bad(e.to_string()))?;
    let command = Command::Restore {
        snapshot: state,
        now_ms: super::now_ms(),
    };
    match super::propose(b, command).await? {
        Applied::Restored(report) => Ok(ApiResponse::json(
            200,
            json::encode(&Restored {
                backup_index: last.map(|l| l.index),
                report,
            })?,
        )),
        other => Err(ApiError::new(
            500,
            super::error::INTERNAL_ERROR,
            format!("a restore applied as {other:?}"),
        )),
    }
}
