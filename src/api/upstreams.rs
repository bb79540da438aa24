//! `/http/upstreams/` and `/http/upstreams/{name}/`: each zone-backed group with its
//! servers' state and this node's statistics for them.
//!
//! The servers and their parameters (and so `state` up/draining/down) are the replicated
//! list, read after the read barrier like any other read; the counters (`requests`,
//! `responses`, `active`, `fails`, `downtime`, ...) are this node's own. A group without a
//! `zone` answers 400 `UpstreamStatic` (nginx's rule: only a zone makes a group dynamic);
//! implicit groups (`proxy_pass http://ADDR`) are not upstreams the API knows. raftgate has
//! no stream upstreams yet, so `/stream/upstreams/` is empty and every name in it is 404.
//! Times: `downtime`, `header_time` and `response_time` are milliseconds; `selected` and
//! `downstart` are ISO 8601, omitted while the server was never selected or is not down;
//! `header_time` and `response_time` are omitted until a response was timed, as nginx
//! does. `health_checks` counts zeros (no active health checks yet); `last_passed` is
//! omitted while no check ran.

use std::sync::Arc;
use std::time::Instant;

use raftgate_raft::{Kind, Ref, State};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::route::Query;
use super::stats::{collection, iso8601, object};
use super::{ApiResponse, Local};
use crate::upstream::{Peer, Upstream};

/// The group `u` names on this node, if the API may manage it.
pub fn group<'a>(local: &Local<'a>, u: &Ref) -> Result<&'a Arc<Upstream>, ApiError> {
    let found = match u.kind {
        Kind::Http => local
            .http
            .and_then(|h| h.upstreams.get(&u.name))
            .filter(|g| !g.conf().implicit),
        Kind::Stream => None,
    };
    let group = found.ok_or_else(|| ApiError::upstream_not_found(&u.name))?;
    if !group.is_dynamic() {
        return Err(ApiError::upstream_static(&u.name));
    }
    Ok(group)
}

fn peer_object(group: &Upstream, p: &Peer, now: Instant) -> Value {
    let st = p.stats();
    let r: Vec<u64> = (1..=5).map(|c| st.responses(c)).collect();
    let mut v = json!({
        "id": p.server_id,
        "server": p.conf.addr.to_string(),
        "name": p.conf.name,
        "backup": p.conf.backup,
        "weight": p.conf.weight,
        "state": p.state(now).as_str(),
        "active": p.active(),
        "max_conns": p.conf.max_conns,
        "requests": st.requests(),
        "responses": {
            "1xx": r[0], "2xx": r[1], "3xx": r[2], "4xx": r[3], "5xx": r[4],
            "total": st.responses_total(),
        },
        "sent": st.sent(),
        "received": st.received(),
        "fails": st.fails(),
        "unavail": st.unavail(),
        "health_checks": { "checks": 0, "fails": 0, "unhealthy": 0 },
        "downtime": u64::try_from(p.downtime(now).as_millis()).unwrap_or(u64::MAX),
    });
    let m = v
        .as_object_mut()
        .expect("json! of an object literal is an object");
    if let Some(at) = p.downstart(now) {
        m.insert("downstart".into(), iso8601(group.wall_time(at)).into());
    }
    if let Some(at) = p.selected() {
        m.insert("selected".into(), iso8601(group.wall_time(at)).into());
    }
    if let Some(ms) = st.header_time_ms() {
        m.insert("header_time".into(), ms.into());
    }
    if let Some(ms) = st.response_time_ms() {
        m.insert("response_time".into(), ms.into());
    }
    v
}

fn group_object(s: &State, local: &Local<'_>, group: &Upstream) -> Value {
    group.follow(s);
    let now = Instant::now();
    let mut peers = group.peers();
    peers.sort_by_key(|p| p.server_id);
    let keepalive = local
        .http
        .and_then(|h| h.pools.get(&group.conf().name))
        .map_or(0, |p| p.idle_count());
    json!({
        "peers": peers.iter().map(|p| peer_object(group, p, now)).collect::<Vec<_>>(),
        "keepalive": keepalive,
        "zombies": group.zombies(),
        "zone": group.conf().zone.as_ref().map(|z| z.name.clone()).unwrap_or_default(),
    })
}

pub fn all(
    s: &State,
    local: &Local<'_>,
    kind: Kind,
    query: &Query,
) -> Result<ApiResponse, ApiError> {
    let mut members = Map::new();
    if let (Kind::Http, Some(h)) = (kind, local.http) {
        let mut names: Vec<&String> = h.upstreams.keys().collect();
        names.sort();
        for name in names {
            let g = &h.upstreams[name];
            if g.is_dynamic() && !g.conf().implicit {
                members.insert(name.clone(), group_object(s, local, g));
            }
        }
    }
    collection(members, query)
}

pub fn one(
    s: &State,
    local: &Local<'_>,
    group: &Upstream,
    query: &Query,
) -> Result<ApiResponse, ApiError> {
    object(group_object(s, local, group), query)
}

/// DELETE: every server's counters and downtime back to zero (state, health and
/// connections stay).
pub fn reset(group: &Upstream) -> ApiResponse {
    for p in group.peers() {
        p.reset();
    }
    ApiResponse::empty(204)
}
