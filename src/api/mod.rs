//! The NGINX Plus REST API, version 2, as served by a location with `api [write=on];`.
//!
//! The caller (the http `api` content handler) reads the body, answers 413 itself for a
//! body over `client_max_body_size`, and passes the rest here as an [`ApiRequest`]; every
//! answer is JSON (an empty body for 201 and 204) in an [`ApiResponse`]. Paths, methods,
//! statuses, shapes and error codes are NGINX's (see `shared/reference/NGINX-PLUS.md`
//! §1); what raftgate decides where NGINX is silent or where a Raft cluster differs:
//!
//! - **Endpoints.** `GET` of the prefix lists the supported versions, `[2]`. Under `/2/`
//!   raftgate serves `http` and `stream`, and under each `keyvals` so far. Any other first
//!   segment is 404 `UnknownVersion`; any other path under `/2` is 404 `PathNotFound`
//!   (R14 documents no code for it; later nginx answers `PathNotFound`). Trailing slashes
//!   are accepted everywhere; HEAD is answered as GET (the caller drops the body).
//! - **Checks, in order:** path (404), `stream` endpoints without a `stream {}` block (404
//!   `StreamNotConfigured`), a method the path has no operation for (405
//!   `MethodNotSupported`, nginx's code), a write method with `write=off` (405
//!   `MethodDisabled`), then the request itself. A write body is validated before the zone
//!   is looked up, so a bad body to an unknown zone answers 400/415, not 404.
//! - **Reads are linearizable by default**: a read barrier (the leader's read index,
//!   applied here) precedes every read of keyval contents, so a read on any node sees
//!   every write acknowledged anywhere before it. `?consistency=local` (raftgate's own
//!   argument) skips the barrier and reads this node's applied state, which may lag the
//!   leader by a commit; any other value is the default. A barrier that fails (no leader,
//!   no quorum, timeout) answers 503 `ClusterUnavailable` (raftgate's own code).
//! - **Writes** are committed through the leader and applied on this node before the
//!   answer (so the writer reads its own write here). Each API request is one
//!   deduplicated [`Request`] with a fresh random client id and serial 1, so the node's
//!   internal retries after a leader change apply it at most once. The command carries
//!   this node's wall clock; the reducer never lets log time go backwards (it takes the
//!   later of that and the log's time), so a skewed clock cannot shorten a lifetime.
//!   A write certainly not applied answers 503 `ClusterUnavailable`; one proposed but not
//!   confirmed within [`WRITE_TIMEOUT`] answers 504 `WriteOutcomeUnknown` (it may still
//!   apply). Reducer rejections map through [`Rejected::api_error`] with their own text.
//! - **Keyval bodies and `fields`**: see [`keyvals`] and [`json`].
//! - **`/2/cluster`** is raftgate's own: see [`cluster`].

pub mod cluster;
pub mod error;
pub mod json;
pub mod keyvals;
pub mod route;
pub mod servers;
pub mod stats;
pub mod upstreams;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_upstreams;

use std::time::Duration;

use bytes::Bytes;
use raftgate_raft::types::Response;
use raftgate_raft::{Applied, Command, Entry, Kind, Rejected, Request, State};

use crate::cluster::{ClusterStatus, Node, WriteError};
use error::{error_body, ApiError};
use raftgate_raft::network::{MembershipChange, MembershipError};
use route::{is_write, Query, Route};

/// How long a write waits to be committed and applied here before answering 504.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read barrier waits for the read index to be applied here.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One API request, as the `api` location hands it over.
pub struct ApiRequest<'a> {
    pub method: &'a http::Method,
    /// Path after the `api` location's prefix, starting with '/': "/", "/2",
    /// "/2/http/keyvals/zone1", ... e.g. `location /api { api; }` + `GET
    /// /api/2/http/keyvals/` → "/2/http/keyvals/"
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Already read by the caller, bounded by `client_max_body_size` (the caller answers
    /// 413 itself).
    pub body: Bytes,
    /// `api write=on`.
    pub write: bool,
    /// `$request_id`, for error objects.
    pub request_id: &'a str,
    /// The request's `$uri`, for `error.path`.
    pub full_path: &'a str,
    /// False while no `stream {}` block exists: stream endpoints answer 404
    /// `StreamNotConfigured`.
    pub stream_configured: bool,
    /// What this node counts and runs: statistics, upstream groups, generation.
    pub local: Local<'a>,
}

/// The node-local side of the API: what each node counts for itself (connections,
/// requests, server zones, upstream peers) and the configuration generation it runs.
/// None of it is replicated; `/2/cluster/` is where the nodes are compared.
pub struct Local<'a> {
    /// The generation's `http {}` block (its upstream groups and status zones).
    pub http: Option<&'a crate::http::HttpConf>,
    pub metrics: &'a crate::metrics::Metrics,
    /// Client connections open now.
    pub open_connections: u64,
    /// Reloads since start (`generation`) and when the configuration in force loaded.
    pub generation: u64,
    pub loaded: std::time::SystemTime,
    /// The address that accepted this request (`/nginx`'s `address`).
    pub address: String,
}

/// The answer: a status and a body, JSON but for a backup (empty for 201 and 204).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
    pub content_type: &'static str,
}

impl ApiResponse {
    fn json(status: u16, body: Bytes) -> Self {
        ApiResponse {
            status,
            body,
            content_type: "application/json",
        }
    }

    fn empty(status: u16) -> Self {
        ApiResponse::json(status, Bytes::new())
    }
}

/// Answers one API request on `node`.
pub async fn handle(node: &Node, req: ApiRequest<'_>) -> ApiResponse {
    serve(node, req).await
}

// The integrator awaits `handle` in tasks spawned on a multi-threaded runtime: its future
// must stay `Send`, which this checks at compile time (the function is never called).
const _: () = {
    fn send<T: Send>(_: &T) {}
    #[allow(dead_code)]
    fn handle_is_send(node: &Node, req: ApiRequest<'_>) {
        send(&handle(node, req));
    }
};

/// What the API needs from the cluster. `Node` is the real one; the unit tests use a
/// reducer behind a mutex, so every answer is tested without Raft.
pub(crate) trait Backend {
    /// A linearizable read barrier; `Err` carries the reason.
    async fn barrier(&self) -> Result<(), String>;
    /// Commits `entry` and applies it here.
    async fn propose(&self, entry: Entry) -> Result<Response, WriteError>;
    /// Reads this node's applied state.
    fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R;
    /// The cluster as this node sees it.
    async fn cluster_status(&self) -> ClusterStatus;
    /// Runs a membership change through the leader; the index it committed at.
    async fn change_membership(&self, change: MembershipChange) -> Result<u64, MembershipError>;
    /// This node's applied state as a backup file (see `raftgate_storage::encode_backup`).
    fn backup(&self) -> Result<Vec<u8>, String>;
}

impl Backend for Node {
    async fn barrier(&self) -> Result<(), String> {
        Node::read_barrier(self, READ_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }

    async fn propose(&self, entry: Entry) -> Result<Response, WriteError> {
        Node::write(self, entry, WRITE_TIMEOUT)
            .await
            .map(|(response, _)| response)
    }

    fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let applied = self.reader.load();
        f(applied.state())
    }

    async fn cluster_status(&self) -> ClusterStatus {
        Node::status(self).await
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<u64, MembershipError> {
        Node::change_membership(self, change).await
    }

    fn backup(&self) -> Result<Vec<u8>, String> {
        let applied = self.reader.load();
        raftgate_storage::encode_backup(
            applied.state(),
            applied.last_applied(),
            applied.membership(),
        )
    }
}

pub(crate) async fn serve<B: Backend>(b: &B, req: ApiRequest<'_>) -> ApiResponse {
    match dispatch(b, &req).await {
        Ok(r) => r,
        Err(e) => ApiResponse::json(
            e.status,
            error_body(&e, req.full_path, req.method.as_str(), req.request_id),
        ),
    }
}

async fn dispatch<B: Backend>(b: &B, req: &ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
    let route = route::route(req.path)?;
    if route.is_stream() && !req.stream_configured {
        return Err(ApiError::stream_not_configured());
    }
    if !route.methods().contains(req.method) {
        return Err(ApiError::method_not_supported());
    }
    if is_write(req.method) && !req.write {
        return Err(ApiError::method_disabled());
    }
    let query = Query::parse(req.query);
    let local = &req.local;
    let delete = *req.method == http::Method::DELETE;
    match route {
        Route::Versions => Ok(ApiResponse::json(200, json::encode(&route::VERSIONS)?)),
        Route::Root => Ok(ApiResponse::json(
            200,
            json::encode(&route::ROOT_ENDPOINTS)?,
        )),
        Route::Block(Kind::Http) => Ok(ApiResponse::json(
            200,
            json::encode(&route::HTTP_ENDPOINTS)?,
        )),
        Route::Block(Kind::Stream) => Ok(ApiResponse::json(
            200,
            json::encode(&route::STREAM_ENDPOINTS)?,
        )),
        Route::Nginx => stats::nginx(local, &query),
        Route::Processes => stats::processes(delete),
        Route::Connections => stats::connections(local, &query, delete),
        Route::Ssl => stats::ssl(&query, delete),
        Route::Requests => stats::requests(local, &query, delete),
        Route::ServerZones(kind) => stats::server_zones(local, kind, &query),
        Route::ServerZone(kind, name) => stats::server_zone(local, kind, &name, &query, delete),
        Route::Caches => stats::caches(&query),
        Route::Cache(name) => Err(ApiError::cache_not_found(&name)),
        Route::Slabs => {
            read_barrier(b, &query).await?;
            b.with_state(|s| stats::slabs(s, local, &query))
        }
        Route::Slab(name) => {
            if !delete {
                read_barrier(b, &query).await?;
            }
            b.with_state(|s| stats::slab(s, local, &name, &query, delete))
        }
        Route::Upstreams(kind) => {
            read_barrier(b, &query).await?;
            b.with_state(|s| upstreams::all(s, local, kind, &query))
        }
        Route::Upstream(u) => {
            let group = upstreams::group(local, &u)?;
            if delete {
                return Ok(upstreams::reset(group));
            }
            read_barrier(b, &query).await?;
            b.with_state(|s| upstreams::one(s, local, group, &query))
        }
        Route::Servers(u) => {
            upstreams::group(local, &u)?;
            match *req.method {
                http::Method::POST => servers::post(b, &u, &req.body).await,
                _ => {
                    read_barrier(b, &query).await?;
                    b.with_state(|s| servers::list(s, &u))
                }
            }
        }
        Route::Server(u, id) => {
            upstreams::group(local, &u)?;
            let id = servers::server_id(&id)?;
            match *req.method {
                http::Method::PATCH => servers::patch(b, &u, id, &req.body).await,
                http::Method::DELETE => servers::delete(b, &u, id).await,
                _ => {
                    read_barrier(b, &query).await?;
                    b.with_state(|s| servers::one(s, &u, id))
                }
            }
        }
        Route::Keyvals(kind) => {
            read_barrier(b, &query).await?;
            keyvals::get_all(b, kind, &query)
        }
        Route::Zone(zone) => match *req.method {
            http::Method::POST => keyvals::post(b, zone, &req.body).await,
            http::Method::PATCH => keyvals::patch(b, zone, &req.body).await,
            http::Method::DELETE => keyvals::delete(b, zone).await,
            _ => {
                read_barrier(b, &query).await?;
                keyvals::get_zone(b, &zone, &query)
            }
        },
        Route::Cluster => cluster::status(b).await,
        Route::ClusterNodes => match *req.method {
            http::Method::POST => cluster::add(b, &req.body).await,
            _ => cluster::nodes(b).await,
        },
        Route::ClusterSnapshot => match *req.method {
            http::Method::PUT => cluster::restore(b, &req.body).await,
            _ => {
                read_barrier(b, &query).await?;
                cluster::backup(b)
            }
        },
        Route::ClusterLeader => match *req.method {
            http::Method::POST => cluster::transfer_leader(b, &req.body).await,
            _ => cluster::leader(b).await,
        },
        Route::ClusterNode(id) => {
            let id = cluster::node_id(&id)?;
            match *req.method {
                http::Method::DELETE => cluster::remove(b, id).await,
                _ => cluster::node(b, id).await,
            }
        }
    }
}

/// The barrier before a read, unless the client asked for `consistency=local`.
async fn read_barrier<B: Backend>(b: &B, query: &Query) -> Result<(), ApiError> {
    if query.get("consistency") == Some("local") {
        return Ok(());
    }
    b.barrier().await.map_err(|e| {
        ApiError::cluster_unavailable(format!("cannot confirm a linearizable read: {e}"))
    })
}

/// Proposes `command` as one deduplicated request and answers `success` (201 or 204,
/// no body) once it is applied here.
async fn write<B: Backend>(b: &B, command: Command, success: u16) -> Result<ApiResponse, ApiError> {
    propose(b, command).await?;
    Ok(ApiResponse::empty(success))
}

/// Proposes `command` as one deduplicated request; what it did, once applied here.
async fn propose<B: Backend>(b: &B, command: Command) -> Result<Applied, ApiError> {
    let entry = Entry::Request(Request {
        client: fastrand::u128(..),
        serial: 1,
        command,
    });
    match b.propose(entry).await {
        Ok(Ok(applied)) => Ok(applied),
        Ok(Err(rejected)) => Err(ApiError::from(&rejected)),
        Err(WriteError::NotApplied(t)) => Err(ApiError::cluster_unavailable(t)),
        Err(WriteError::Unknown(t)) => Err(ApiError::write_outcome_unknown(t)),
    }
}

/// This node's wall clock in milliseconds since the Unix epoch (0 before it): the time
/// a keyval write carries into the log.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A rejection the API detects itself, with the reducer's code and text.
fn rejected(r: Rejected) -> ApiError {
    ApiError::from(&r)
}
