//! What applying a command produces: an answer for the API, or a typed rejection.
//!
//! Both are stored in the deduplication table (a retried request gets the original
//! outcome back), so they are serializable and carry only what the answer needs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{ServerSpec, UpstreamRef, ZoneRef};

/// Where a server in an upstream's runtime list came from. Reloads only touch `Config`
/// servers; `Api` servers stay until the API removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Config,
    Api,
}

/// A server as the API shows it: its id and the effective parameters (configuration or
/// POST values with the API's later changes on top).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub id: u64,
    pub origin: Origin,
    pub spec: ServerSpec,
}

/// How much an `Expire` removed, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredCounts {
    pub keyvals: u64,
    pub sessions: u64,
    pub clients: u64,
}

/// A successful application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Nothing to report (keyval writes answer 201/204 with no body).
    Done,
    /// The created (POST, 201) or updated (PATCH, 200) server.
    Server(ServerView),
    /// The servers left after a DELETE (v2 answers 200 with them), or the whole list after
    /// a configuration, sorted by id.
    Servers(Vec<ServerView>),
    Expired(ExpiredCounts),
    /// The results of an `Entry::Batch`, in its order.
    Batch(Vec<Result<Applied, Rejected>>),
    /// What a `Restore` did.
    Restored(RestoreReport),
}

/// What a restore did, by API path of each zone or group (`http/keyvals/one`,
/// `http/upstreams/backend`, `sticky/sessions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Replaced by the backup's contents.
    pub restored: Vec<String>,
    /// In the backup, but not declared here: left out.
    pub skipped: Vec<String>,
    /// Declared here, but not in the backup: left as they were.
    pub kept: Vec<String>,
}

/// Why a keyval write body is malformed (all `KeyvalFormatError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyvalFormat {
    /// POST or PATCH without any key.
    NoKey,
    /// The empty string as a key: nothing could ever look it up.
    EmptyKey,
    /// POST of several pairs into a non-empty zone.
    OnlyOneKeyAdded,
    /// PATCH of several pairs (detected by the API; kept here for the text).
    OnlyOneKeyUpdated,
    /// Nested object or array as a value (detected by the API).
    NestedValue,
    /// A key of a `type=ip` zone that is not an address or CIDR block.
    BadIpKey,
}

/// A server field that cannot change after creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImmutableField {
    Id,
    Backup,
    Service,
}

impl ImmutableField {
    fn name(self) -> &'static str {
        match self {
            ImmutableField::Id => "id",
            ImmutableField::Backup => "backup",
            ImmutableField::Service => "service",
        }
    }
}

/// A server parameter that `stream` upstreams do not have in API v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpOnlyField {
    Route,
    Drain,
}

/// Why a command was not applied. The state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejected {
    UnknownZone {
        zone: ZoneRef,
    },
    KeyExists {
        key: String,
    },
    KeyNotFound {
        key: String,
    },
    KeyvalFormat(KeyvalFormat),
    /// The pairs do not fit in the zone's capacity.
    ZoneFull {
        zone: ZoneRef,
    },
    UnknownStickyZone {
        zone: String,
    },
    /// One session costs more than the whole sticky zone holds.
    StickyZoneTooSmall {
        zone: String,
    },
    UnknownUpstream {
        upstream: UpstreamRef,
    },
    ServerNotFound {
        id: u64,
    },
    /// Another server of the group already has this address.
    ServerExists {
        server: String,
    },
    /// A `backup` server into a group configured without backups.
    NoBackup,
    /// The group holds `MAX_SERVERS_PER_UPSTREAM` servers already.
    UpstreamOutOfMemory,
    Immutable {
        field: ImmutableField,
    },
    HttpOnly {
        field: HttpOnlyField,
    },
    UpstreamBadWeight,
    UpstreamBadMaxConns,
    UpstreamBadMaxFails,
    UpstreamBadFailTimeout,
    UpstreamBadSlowStart,
    UpstreamBadRoute,
    UpstreamBadAddress {
        server: String,
    },
    UpstreamBadService,
    /// A retried request whose serial is older than the deduplication window: it may have
    /// been applied already, so it is not applied again, and its outcome is unknown.
    StaleRequest {
        client: u128,
        serial: u64,
    },
    /// A restore whose snapshot cannot be read.
    BadSnapshot {
        reason: String,
    },
}

impl Rejected {
    /// The HTTP status and the NGINX API `error.code` to answer with: the one place where
    /// domain outcomes become API errors.
    ///
    /// Codes are NGINX's (API v2, `EntryExists` from later versions) except
    /// `KeyvalOutOfMemory` (nginx documents no code for a full keyval zone; this mirrors
    /// `UpstreamOutOfMemory`, also 400), the sticky ones (never reach the API: the data
    /// path proposes them and only logs a failure) and `WriteOutcomeUnknown` (a 504, as for
    /// any write whose commit cannot be confirmed, DESIGN.md §3.6).
    pub fn api_error(&self) -> (u16, &'static str) {
        use Rejected::*;
        match self {
            UnknownZone { .. } => (404, "KeyvalNotFound"),
            KeyExists { .. } => (409, "KeyvalKeyExists"),
            KeyNotFound { .. } => (404, "KeyvalKeyNotFound"),
            KeyvalFormat(_) => (400, "KeyvalFormatError"),
            ZoneFull { .. } => (400, "KeyvalOutOfMemory"),
            UnknownStickyZone { .. } => (404, "SlabNotFound"),
            StickyZoneTooSmall { .. } => (400, "StickyOutOfMemory"),
            UnknownUpstream { .. } => (404, "UpstreamNotFound"),
            ServerNotFound { .. } => (404, "UpstreamServerNotFound"),
            ServerExists { .. } => (409, "EntryExists"),
            NoBackup => (400, "UpstreamNoBackup"),
            UpstreamOutOfMemory => (400, "UpstreamOutOfMemory"),
            Immutable { .. } | HttpOnly { .. } => (400, "UpstreamConfFormatError"),
            UpstreamBadWeight => (400, "UpstreamBadWeight"),
            UpstreamBadMaxConns => (400, "UpstreamBadMaxConns"),
            UpstreamBadMaxFails => (400, "UpstreamBadMaxFails"),
            UpstreamBadFailTimeout => (400, "UpstreamBadFailTimeout"),
            UpstreamBadSlowStart => (400, "UpstreamBadSlowStart"),
            UpstreamBadRoute => (400, "UpstreamBadRoute"),
            UpstreamBadAddress { .. } => (400, "UpstreamBadAddress"),
            UpstreamBadService => (400, "UpstreamBadService"),
            StaleRequest { .. } => (504, "WriteOutcomeUnknown"),
            BadSnapshot { .. } => (400, "SnapshotFormatError"),
        }
    }
}

/// `error.text`, worded like nginx's messages where they are known.
impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Rejected::*;
        match self {
            UnknownZone { zone } => write!(f, "keyval \"{}\" not found", zone.name),
            KeyExists { key } => write!(f, "key \"{key}\" already exists"),
            KeyNotFound { key } => write!(f, "key \"{key}\" not found"),
            KeyvalFormat(why) => f.write_str(match why {
                self::KeyvalFormat::NoKey => "no key",
                self::KeyvalFormat::EmptyKey => "empty key",
                self::KeyvalFormat::OnlyOneKeyAdded => "only one key can be added",
                self::KeyvalFormat::OnlyOneKeyUpdated => "only one key can be updated",
                self::KeyvalFormat::NestedValue => "value must be a string",
                self::KeyvalFormat::BadIpKey => "invalid key format",
            }),
            ZoneFull { zone } => write!(f, "keyval \"{}\" memory exhausted", zone.name),
            UnknownStickyZone { zone } => write!(f, "sticky zone \"{zone}\" not found"),
            StickyZoneTooSmall { zone } => {
                write!(f, "sticky zone \"{zone}\" is too small for the session")
            }
            UnknownUpstream { upstream } => write!(f, "upstream not found: \"{}\"", upstream.name),
            ServerNotFound { id } => write!(f, "server \"{id}\" not found"),
            ServerExists { server } => write!(f, "server \"{server}\" already exists"),
            NoBackup => f.write_str("upstream has no backup"),
            UpstreamOutOfMemory => f.write_str("upstream memory exhausted"),
            Immutable { field } => write!(f, "\"{}\" cannot be changed", field.name()),
            HttpOnly { field } => f.write_str(match field {
                HttpOnlyField::Route => "unknown parameter \"route\"",
                HttpOnlyField::Drain => "unknown parameter \"drain\"",
            }),
            UpstreamBadWeight => f.write_str("invalid \"weight\""),
            UpstreamBadMaxConns => f.write_str("invalid \"max_conns\""),
            UpstreamBadMaxFails => f.write_str("invalid \"max_fails\""),
            UpstreamBadFailTimeout => f.write_str("invalid \"fail_timeout\""),
            UpstreamBadSlowStart => f.write_str("invalid \"slow_start\""),
            UpstreamBadRoute => f.write_str("invalid \"route\""),
            UpstreamBadAddress { server } => write!(f, "invalid address \"{server}\""),
            UpstreamBadService => f.write_str("invalid \"service\""),
            StaleRequest { .. } => {
                f.write_str("request retried too late: its outcome can no longer be known")
            }
            BadSnapshot { reason } => write!(f, "the snapshot cannot be read: {reason}"),
        }
    }
}

impl std::error::Error for Rejected {}
