//! The node-local statistics endpoints: `/nginx`, `/processes`, `/connections`, `/ssl`,
//! `/http/requests`, `/http/server_zones/`, `/http/caches/`, `/slabs/`, and the stream
//! counterparts that raftgate has (server zones, empty until stream servers exist).
//!
//! What raftgate reports where it is not nginx:
//! - `/processes` is always `{"respawned": 0}`: one process, no workers to respawn.
//! - `/ssl` counts zeros: raftgate has no TLS listeners yet.
//! - `/connections`: `active` counts connections with a request in progress, `idle` the
//!   other open ones (nginx's `active - waiting` and `waiting`); `dropped` stays 0, as no
//!   connection limit exists to drop them.
//! - `/http/caches/` is empty: raftgate has no `proxy_cache`.
//! - `/slabs/`: raftgate's zones live in the replicated state, not in slab allocators.
//!   Each keyval, sticky and upstream zone is shown as nginx's allocator would hold its
//!   entries: 4 KiB pages out of the zone's size, entries in power-of-two slots from 8 to
//!   2048 bytes (an entry costs its key and value plus 64 bytes of node), larger ones in
//!   whole pages. `reqs` counts the entries held, `fails` is 0 (a full zone refuses the
//!   write instead).

use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bytes::Bytes;
use raftgate_raft::{Kind, State};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::route::Query;
use super::{ApiResponse, Local};

/// The answer for an object endpoint, `fields=a,b` keeping only those members.
pub(super) fn object(v: Value, query: &Query) -> Result<ApiResponse, ApiError> {
    let v = match (v, query.get("fields")) {
        (Value::Object(m), Some(f)) if !f.is_empty() => Value::Object(keep(m, f)),
        (v, _) => v,
    };
    encode(&v)
}

/// The answer for a collection (a map of name → object): `fields=` (empty) names the
/// members only, each as `{}`; `fields=a,b` keeps those members' fields.
pub(super) fn collection(
    members: Map<String, Value>,
    query: &Query,
) -> Result<ApiResponse, ApiError> {
    let members = match query.get("fields") {
        None => members,
        Some(f) => members
            .into_iter()
            .map(|(k, v)| match v {
                Value::Object(m) => (k, Value::Object(keep(m, f))),
                v => (k, v),
            })
            .collect(),
    };
    encode(&Value::Object(members))
}

fn keep(m: Map<String, Value>, fields: &str) -> Map<String, Value> {
    let wanted: Vec<&str> = fields.split(',').filter(|f| !f.is_empty()).collect();
    m.into_iter()
        .filter(|(k, _)| wanted.contains(&k.as_str()))
        .collect()
}

pub(super) fn encode(v: &Value) -> Result<ApiResponse, ApiError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| ApiError::new(500, super::error::INTERNAL_ERROR, e.to_string()))?;
    Ok(ApiResponse::json(200, Bytes::from(body)))
}

/// ISO 8601 in UTC with milliseconds, as the spec's examples render `date-time`.
pub fn iso8601(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn nginx(local: &Local<'_>, query: &Query) -> Result<ApiResponse, ApiError> {
    let pid = std::process::id();
    let v = json!({
        "version": crate::VERSION,
        "build": format!("raftgate-{}", crate::VERSION),
        "address": local.address,
        "generation": local.generation,
        "load_timestamp": iso8601(local.loaded),
        "timestamp": iso8601(SystemTime::now()),
        "pid": pid,
        "ppid": parent_pid().unwrap_or(pid),
    });
    object(v, query)
}

/// The parent's pid from `/proc/self/stat` (Linux); nginx reports its master there.
fn parent_pid() -> Option<u32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

pub fn processes(delete: bool) -> Result<ApiResponse, ApiError> {
    if delete {
        return Ok(ApiResponse::empty(204));
    }
    encode(&json!({ "respawned": 0 }))
}

pub fn connections(
    local: &Local<'_>,
    query: &Query,
    delete: bool,
) -> Result<ApiResponse, ApiError> {
    let m = local.metrics;
    if delete {
        m.accepted.store(0, Relaxed);
        m.dropped.store(0, Relaxed);
        return Ok(ApiResponse::empty(204));
    }
    let active = m.current().min(local.open_connections);
    let v = json!({
        "accepted": m.accepted.load(Relaxed),
        "dropped": m.dropped.load(Relaxed),
        "active": active,
        "idle": local.open_connections - active,
    });
    object(v, query)
}

pub fn ssl(query: &Query, delete: bool) -> Result<ApiResponse, ApiError> {
    if delete {
        return Ok(ApiResponse::empty(204));
    }
    object(
        json!({ "handshakes": 0, "handshakes_failed": 0, "session_reuses": 0 }),
        query,
    )
}

pub fn requests(local: &Local<'_>, query: &Query, delete: bool) -> Result<ApiResponse, ApiError> {
    let m = local.metrics;
    if delete {
        m.requests.store(0, Relaxed);
        return Ok(ApiResponse::empty(204));
    }
    object(
        json!({ "total": m.requests.load(Relaxed), "current": m.current() }),
        query,
    )
}

fn zone_object(z: &crate::metrics::ZoneStats) -> Value {
    let r: Vec<u64> = (0..5).map(|c| z.responses(c)).collect();
    json!({
        "processing": z.processing(),
        "requests": z.requests.load(Relaxed),
        "responses": {
            "1xx": r[0], "2xx": r[1], "3xx": r[2], "4xx": r[3], "5xx": r[4],
            "total": r.iter().sum::<u64>(),
        },
        "discarded": z.discarded.load(Relaxed),
        "received": z.received.load(Relaxed),
        "sent": z.sent.load(Relaxed),
    })
}

fn http_zones<'a>(local: &Local<'a>) -> Vec<(&'a String, &'a crate::metrics::ZoneStats)> {
    let mut zones: Vec<_> = local
        .http
        .map(|h| h.status_zones.iter().map(|(k, v)| (k, &**v)).collect())
        .unwrap_or_default();
    zones.sort_by(|a, b| a.0.cmp(b.0));
    zones
}

pub fn server_zones(local: &Local<'_>, kind: Kind, query: &Query) -> Result<ApiResponse, ApiError> {
    let members = match kind {
        Kind::Http => http_zones(local)
            .into_iter()
            .map(|(k, z)| (k.clone(), zone_object(z)))
            .collect(),
        // Stream servers do not exist yet, so neither do their zones.
        Kind::Stream => Map::new(),
    };
    collection(members, query)
}

pub fn server_zone(
    local: &Local<'_>,
    kind: Kind,
    name: &str,
    query: &Query,
    delete: bool,
) -> Result<ApiResponse, ApiError> {
    let zone = match kind {
        Kind::Http => http_zones(local).into_iter().find(|(k, _)| *k == name),
        Kind::Stream => None,
    };
    let Some((_, z)) = zone else {
        return Err(ApiError::server_zone_not_found(name));
    };
    if delete {
        z.reset();
        return Ok(ApiResponse::empty(204));
    }
    object(zone_object(z), query)
}

pub fn caches(query: &Query) -> Result<ApiResponse, ApiError> {
    collection(Map::new(), query)
}

/// A zone as nginx's slab allocator would hold it (see the module docs).
struct Slab {
    capacity: u64,
    /// Each entry's size in bytes.
    entries: Vec<u64>,
}

const PAGE: u64 = 4096;
const NODE: u64 = 64;

impl Slab {
    fn value(&self) -> Value {
        let mut used_pages = 0u64;
        let mut slots = Map::new();
        let mut size = 8u64;
        while size <= PAGE / 2 {
            let lower = size / 2;
            let n = self
                .entries
                .iter()
                .filter(|e| **e <= size && (size == 8 || **e > lower))
                .count() as u64;
            let per_page = PAGE / size;
            let pages = n.div_ceil(per_page);
            used_pages += pages;
            slots.insert(
                size.to_string(),
                json!({ "used": n, "free": pages * per_page - n, "reqs": n, "fails": 0 }),
            );
            size *= 2;
        }
        used_pages += self
            .entries
            .iter()
            .filter(|e| **e > PAGE / 2)
            .map(|e| e.div_ceil(PAGE))
            .sum::<u64>();
        let total = self.capacity / PAGE;
        json!({
            "pages": { "used": used_pages, "free": total.saturating_sub(used_pages) },
            "slots": slots,
        })
    }
}

/// Every zone with a slab allocator: keyval zones, sticky zones, upstream zones.
fn slab_zones(s: &State, local: &Local<'_>) -> Vec<(String, Slab)> {
    let mut out: Vec<(String, Slab)> = Vec::new();
    for zone in s.keyval_zones() {
        let (Some(cfg), Some(entries)) = (s.keyval_zone_config(zone), s.keyval_entries(zone))
        else {
            continue;
        };
        let entries = entries
            .map(|(k, v)| (k.len() + v.len()) as u64 + NODE)
            .collect();
        out.push((
            zone.name.clone(),
            Slab {
                capacity: cfg.capacity_bytes,
                entries,
            },
        ));
    }
    for zone in s.sticky_zones() {
        let (Some(cfg), Some(sessions)) = (s.sticky_zone_config(zone), s.sticky_sessions(zone))
        else {
            continue;
        };
        let entries = sessions
            .map(|(id, sess)| (id.len() + sess.server.server.len()) as u64 + NODE)
            .collect();
        out.push((
            zone.to_string(),
            Slab {
                capacity: cfg.capacity_bytes,
                entries,
            },
        ));
    }
    if let Some(h) = local.http {
        for u in h.upstreams.values() {
            let Some(zone) = &u.conf().zone else { continue };
            let entries = u
                .peers()
                .iter()
                .map(|p| (p.conf.name.len() + 256) as u64)
                .collect();
            out.push((
                zone.name.clone(),
                Slab {
                    capacity: zone.size.unwrap_or(64 * 1024),
                    entries,
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

pub fn slabs(s: &State, local: &Local<'_>, query: &Query) -> Result<ApiResponse, ApiError> {
    let members = slab_zones(s, local)
        .into_iter()
        .map(|(name, slab)| (name, slab.value()))
        .collect();
    collection(members, query)
}

pub fn slab(
    s: &State,
    local: &Local<'_>,
    name: &str,
    query: &Query,
    delete: bool,
) -> Result<ApiResponse, ApiError> {
    let Some((_, slab)) = slab_zones(s, local).into_iter().find(|(n, _)| n == name) else {
        return Err(ApiError::slab_not_found(name));
    };
    if delete {
        // `reqs` and `fails` are derived from what the zone holds; nothing to reset.
        return Ok(ApiResponse::empty(204));
    }
    object(slab.value(), query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_renders_utc_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_499_425_761_594);
        assert_eq!(iso8601(t), "2017-07-07T11:09:21.594Z");
        assert_eq!(iso8601(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_slab_fills_pages_by_entry_size() {
        let slab = Slab {
            capacity: 10 * PAGE,
            entries: vec![70, 100, 5000],
        };
        let v = slab.value();
        assert_eq!(v["slots"]["128"]["used"], 2);
        assert_eq!(v["slots"]["128"]["free"], 30);
        assert_eq!(v["slots"]["8"]["used"], 0);
        // One page of 128-byte slots, two whole pages for the 5000-byte entry.
        assert_eq!(v["pages"], json!({ "used": 3, "free": 7 }));
    }
}
