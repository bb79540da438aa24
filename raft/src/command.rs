//! The commands of the replicated log.
//!
//! A command is everything the reducer needs: times are inside it (milliseconds since the
//! Unix epoch, read from the proposing leader's clock), so applying the same log on any node
//! gives the same state. Commands are serialized into Raft entries, so values stay small:
//! one key, one session batch, one server.

use serde::{Deserialize, Serialize};

/// Which top-level block owns an object. The API keeps `http` and `stream` objects apart
/// (`/http/keyvals/one` and `/stream/keyvals/one` are different zones), so names are only
/// unique within a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Http,
    Stream,
}

/// A keyval zone or an upstream group, named as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ref {
    pub kind: Kind,
    pub name: String,
}

impl Ref {
    pub fn http(name: impl Into<String>) -> Self {
        Ref {
            kind: Kind::Http,
            name: name.into(),
        }
    }

    pub fn stream(name: impl Into<String>) -> Self {
        Ref {
            kind: Kind::Stream,
            name: name.into(),
        }
    }
}

/// A `keyval_zone`.
pub type ZoneRef = Ref;
/// An `upstream` group.
pub type UpstreamRef = Ref;

/// `keyval_zone ... type=`: how the data path matches a looked-up key against stored keys.
/// Writes store keys as given either way; only `Ip` checks that a new key parses, as NGINX
/// answers `KeyvalFormatError` for a key that is not an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum KeyType {
    /// Exact match (nginx's default, and the only R14 behaviour).
    #[default]
    String,
    /// Stored keys are addresses or CIDR blocks; a lookup finds the longest block that
    /// contains the looked-up address.
    Ip,
    /// The longest stored key that is a prefix of the looked-up key.
    Prefix,
}

/// The server a sticky session is bound to.
///
/// Sessions name servers by upstream and address rather than by the API's numeric id:
/// the address is what the data path knows when it learns a session, it means the same on
/// every node, and it stays valid for upstreams without a `zone` (which have no replicated
/// server list, hence no ids) and across a remove and re-add of the same address, as
/// nginx's own `sticky cookie` binds by address. `server` should be the normalized form that
/// [`crate::normalize_address`] produces (e.g. `10.0.0.1:80`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerKey {
    pub upstream: String,
    pub server: String,
}

/// One upstream server's parameters, as a config `server` line or an API POST gives them.
///
/// Durations are milliseconds; the API shows them as nginx time strings (`"10s"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Address (`host:port`, `ip`, `[v6]:port`); stored normalized, with the default port.
    pub server: String,
    /// DNS SRV service name; immutable after POST.
    pub service: Option<String>,
    pub weight: u32,
    /// 0 means no limit.
    pub max_conns: u32,
    /// 0 disables failure accounting.
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    pub slow_start_ms: u64,
    /// Sticky route name (HTTP only); `None` when unset.
    pub route: Option<String>,
    /// Immutable after POST.
    pub backup: bool,
    pub down: bool,
    /// HTTP only in API v2.
    pub drain: bool,
}

impl ServerSpec {
    /// A server with the values NGINX Plus gives one POSTed with only `server`: weight 1,
    /// max_conns 0, max_fails 1, fail_timeout 10s, slow_start 0.
    pub fn new(server: impl Into<String>) -> Self {
        ServerSpec {
            server: server.into(),
            service: None,
            weight: 1,
            max_conns: 0,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            slow_start_ms: 0,
            route: None,
            backup: false,
            down: false,
            drain: false,
        }
    }
}

/// The fields of a server PATCH; `None` leaves a field as it is.
///
/// `id`, `backup` and `service` are accepted only with their current value: clients such
/// as nginx-plus-go-client send the whole server object back, and the spec says these
/// "cannot be changed", so an equal value is a no-op and a different one is rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerChanges {
    pub server: Option<String>,
    pub weight: Option<u32>,
    pub max_conns: Option<u32>,
    pub max_fails: Option<u32>,
    pub fail_timeout_ms: Option<u64>,
    pub slow_start_ms: Option<u64>,
    /// `Some("")` removes the route.
    pub route: Option<String>,
    pub down: Option<bool>,
    pub drain: Option<bool>,
    pub id: Option<u64>,
    pub backup: Option<bool>,
    pub service: Option<String>,
}

/// What the reducer can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `keyval_zone`, proposed when a node loads its configuration. Idempotent; a changed
    /// size, timeout or type keeps the stored keys (see `state::keyval`).
    ConfigureKeyvalZone {
        zone: ZoneRef,
        capacity_bytes: u64,
        timeout_ms: Option<u64>,
        key_type: KeyType,
    },
    /// POST: several pairs only into an empty zone.
    KeyvalAdd {
        zone: ZoneRef,
        pairs: Vec<(String, String)>,
        now_ms: u64,
    },
    /// PATCH `{"k": "v"}` of an existing key.
    KeyvalSet {
        zone: ZoneRef,
        key: String,
        value: String,
        now_ms: u64,
    },
    /// PATCH `{"k": null}`.
    KeyvalDelete { zone: ZoneRef, key: String },
    /// DELETE of the zone: empties it.
    KeyvalClear { zone: ZoneRef },
    /// `sticky learn zone=NAME:SIZE timeout=T`, proposed when a node loads its config.
    ConfigureStickyZone {
        zone: String,
        capacity_bytes: u64,
        timeout_ms: u64,
    },
    /// Bind (or re-bind) a session to a server; a full zone drops its least recently used
    /// session.
    StickyLearn {
        zone: String,
        session: String,
        server: ServerKey,
        now_ms: u64,
    },
    /// Accesses to known sessions, batched by the data path. Unknown sessions are skipped:
    /// they may have expired between the data path's read and this entry.
    StickyTouch {
        zone: String,
        sessions: Vec<String>,
        now_ms: u64,
    },
    /// An `upstream` block with a `zone`, proposed when a node loads its configuration.
    /// `servers` is the whole configured list (see `state::upstream` for reload rules).
    ConfigureUpstream {
        upstream: UpstreamRef,
        servers: Vec<ServerSpec>,
    },
    /// POST `/upstreams/{name}/servers/`.
    ServerAdd {
        upstream: UpstreamRef,
        spec: ServerSpec,
    },
    /// PATCH `/upstreams/{name}/servers/{id}`.
    ServerPatch {
        upstream: UpstreamRef,
        id: u64,
        changes: ServerChanges,
    },
    /// DELETE `/upstreams/{name}/servers/{id}`.
    ServerRemove { upstream: UpstreamRef, id: u64 },
    /// Proposed periodically by the leader: drops keyvals and sessions whose timeout has
    /// passed at `now_ms`, and idle deduplication clients.
    Expire { now_ms: u64 },
    /// Sessions learned by one node's data path since its last batch, bound in order (a
    /// later binding of the same session wins). One entry carries many sessions: the data
    /// path learns at request rate, and each entry costs an fsync and a round trip.
    StickyLearnBatch {
        zone: String,
        sessions: Vec<(String, ServerKey)>,
        now_ms: u64,
    },
    /// `PUT /api/2/cluster/snapshot`: the contents of every keyval zone, sticky zone and
    /// upstream that both this state and the backup hold are replaced by the backup's
    /// (see `state::restore`). `snapshot` is a state as [`State::snapshot`] encodes it.
    ///
    /// [`State::snapshot`]: crate::State::snapshot
    Restore { snapshot: Vec<u8>, now_ms: u64 },
}

/// A command from an API client, deduplicated by `(client, serial)`.
///
/// `client` identifies one proposer incarnation (e.g. a node's API front end, a random id
/// drawn at start-up); `serial` increases with each new write of that client, and a retry
/// (after a timeout or a leader change) reuses the serial of the original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client: u128,
    pub serial: u64,
    pub command: Command,
}

/// One Raft log entry's payload.
///
/// The data path's batches, configuration and expiry are idempotent or harmless to repeat
/// and go in as plain commands; API writes go in as deduplicated requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Command(Command),
    Request(Request),
    /// Several API requests that reached the leader together, applied in order as one
    /// log entry: one append, one fsync and one replication round for all of them
    /// (openraft 0.9 would otherwise append and sync each entry on its own). Each is
    /// deduplicated on its own; the outcome is `Applied::Batch` with one result each.
    Batch(Vec<Request>),
}

impl Command {
    /// The leader's clock carried by the command, if it carries one.
    pub fn now_ms(&self) -> Option<u64> {
        match self {
            Command::KeyvalAdd { now_ms, .. }
            | Command::KeyvalSet { now_ms, .. }
            | Command::StickyLearn { now_ms, .. }
            | Command::StickyTouch { now_ms, .. }
            | Command::StickyLearnBatch { now_ms, .. }
            | Command::Restore { now_ms, .. }
            | Command::Expire { now_ms } => Some(*now_ms),
            Command::ConfigureKeyvalZone { .. }
            | Command::KeyvalDelete { .. }
            | Command::KeyvalClear { .. }
            | Command::ConfigureStickyZone { .. }
            | Command::ConfigureUpstream { .. }
            | Command::ServerAdd { .. }
            | Command::ServerPatch { .. }
            | Command::ServerRemove { .. } => None,
        }
    }
}
