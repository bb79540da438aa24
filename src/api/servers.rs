//! `/http/upstreams/{name}/servers/` and `.../servers/{id}`: the replicated server list.
//!
//! Bodies are one flat JSON object of the server fields (`NginxHTTPUpstreamConfServer`).
//! The first problem decides the answer: not JSON → 415 `JsonError`; not an object, a
//! nested object or list, an unknown field, or a field of the wrong JSON type → 400
//! `UpstreamConfFormatError`; a bad value → that field's code (`UpstreamBadWeight`, ...,
//! decided by the reducer, which checks every value the same way for config and API).
//! Where raftgate decides:
//! - The read-only fields (`id`, `parent`, `host`) may be sent back as read (clients send
//!   the whole object); POST ignores them, PATCH refuses an `id` other than the server's.
//!   `backup` and `service` are POST-only: a PATCH must repeat their value or leave them out.
//! - A domain name as `server`, or any `service`, answers 400 `UpstreamConfNoResolver`
//!   to a POST: raftgate has no `resolver` (nginx's answer without one). A PATCH, for
//!   which v2 documents no such code, answers `UpstreamBadAddress`. Addresses take
//!   nginx's default port 80.
//! - Times (`fail_timeout`, `slow_start`) are nginx time strings (`"10s"`, `"1m30s"`,
//!   `"500ms"`) and are shown in seconds (`"10s"`), or milliseconds when not whole.
//! - `drain` and `route` are HTTP-only; `/stream/` has no upstreams in raftgate yet.

use bytes::Bytes;
use raftgate_raft::{Applied, Command, Kind, Ref, ServerChanges, ServerSpec, ServerView, State};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::stats::encode;
use super::{propose, ApiResponse, Backend};

/// A path's server id: a decimal number, else 400 `UpstreamBadServerId`.
pub fn server_id(id: &str) -> Result<u64, ApiError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_server_id(id));
    }
    id.parse().map_err(|_| ApiError::bad_server_id(id))
}

/// nginx's rendering of a duration in the API.
pub fn time_string(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A server as the servers endpoints show it.
pub fn conf_object(kind: Kind, v: &ServerView) -> Value {
    let s = &v.spec;
    let mut o = json!({
        "id": v.id,
        "server": s.server,
        "weight": s.weight,
        "max_conns": s.max_conns,
        "max_fails": s.max_fails,
        "fail_timeout": time_string(s.fail_timeout_ms),
        "slow_start": time_string(s.slow_start_ms),
    });
    let m = o
        .as_object_mut()
        .expect("json! of an object literal is an object");
    if let Some(svc) = &s.service {
        m.insert("service".into(), svc.clone().into());
    }
    if kind == Kind::Http {
        m.insert("route".into(), s.route.clone().unwrap_or_default().into());
    }
    m.insert("backup".into(), s.backup.into());
    m.insert("down".into(), s.down.into());
    if kind == Kind::Http {
        m.insert("drain".into(), s.drain.into());
    }
    o
}

fn list_body(kind: Kind, views: &[ServerView]) -> Value {
    Value::Array(views.iter().map(|v| conf_object(kind, v)).collect())
}

fn unknown(u: &Ref) -> ApiError {
    ApiError::upstream_not_found(&u.name)
}

pub fn list(s: &State, u: &Ref) -> Result<ApiResponse, ApiError> {
    let views = s.upstream_servers(u).ok_or_else(|| unknown(u))?;
    encode(&list_body(u.kind, &views))
}

pub fn one(s: &State, u: &Ref, id: u64) -> Result<ApiResponse, ApiError> {
    s.upstream_servers(u).ok_or_else(|| unknown(u))?;
    let v = s
        .upstream_server(u, id)
        .ok_or_else(|| ApiError::from(raftgate_raft::Rejected::ServerNotFound { id }))?;
    encode(&conf_object(u.kind, &v))
}

pub(crate) async fn post<B: Backend>(
    b: &B,
    u: &Ref,
    body: &Bytes,
) -> Result<ApiResponse, ApiError> {
    let spec = Fields::parse(body)?.spec(u.kind)?;
    let upstream = u.clone();
    write(b, u.kind, 201, Command::ServerAdd { upstream, spec }).await
}

pub(crate) async fn patch<B: Backend>(
    b: &B,
    u: &Ref,
    id: u64,
    body: &Bytes,
) -> Result<ApiResponse, ApiError> {
    let changes = Fields::parse(body)?.changes(u.kind)?;
    let upstream = u.clone();
    write(
        b,
        u.kind,
        200,
        Command::ServerPatch {
            upstream,
            id,
            changes,
        },
    )
    .await
}

pub(crate) async fn delete<B: Backend>(b: &B, u: &Ref, id: u64) -> Result<ApiResponse, ApiError> {
    let upstream = u.clone();
    write(b, u.kind, 200, Command::ServerRemove { upstream, id }).await
}

/// Commits a server command; v2 answers with what it made: the server (POST, PATCH) or
/// the servers left (DELETE).
async fn write<B: Backend>(
    b: &B,
    kind: Kind,
    status: u16,
    command: Command,
) -> Result<ApiResponse, ApiError> {
    let applied = propose(b, command).await?;
    answer(kind, status, applied)
}

fn answer(kind: Kind, status: u16, applied: Applied) -> Result<ApiResponse, ApiError> {
    let body = match applied {
        Applied::Server(v) => conf_object(kind, &v),
        Applied::Servers(vs) => list_body(kind, &vs),
        other => {
            return Err(ApiError::new(
                500,
                super::error::INTERNAL_ERROR,
                format!("unexpected outcome {other:?}"),
            ))
        }
    };
    let mut r = encode(&body)?;
    r.status = status;
    Ok(r)
}

/// A server body's fields, typed but not yet checked against each other.
#[derive(Debug, Default)]
struct Fields {
    server: Option<String>,
    service: Option<String>,
    weight: Option<u32>,
    max_conns: Option<u32>,
    max_fails: Option<u32>,
    fail_timeout_ms: Option<u64>,
    slow_start_ms: Option<u64>,
    route: Option<String>,
    backup: Option<bool>,
    down: Option<bool>,
    drain: Option<bool>,
    id: Option<u64>,
}

fn format_error(text: impl Into<String>) -> ApiError {
    ApiError::conf_format(text)
}

fn integer(name: &str, v: &Value, bad: raftgate_raft::Rejected) -> Result<u32, ApiError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::from(bad)),
        _ => Err(format_error(format!("invalid \"{name}\" value"))),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, ApiError> {
    v.as_bool()
        .ok_or_else(|| format_error(format!("invalid \"{name}\" value")))
}

fn string<'v>(name: &str, v: &'v Value) -> Result<&'v str, ApiError> {
    v.as_str()
        .ok_or_else(|| format_error(format!("invalid \"{name}\" value")))
}

fn time(name: &str, v: &Value, bad: raftgate_raft::Rejected) -> Result<u64, ApiError> {
    let text = string(name, v)?;
    let d = crate::config::values::parse_time(text).map_err(|_| ApiError::from(bad))?;
    u64::try_from(d.as_millis()).map_err(|_| format_error(format!("invalid \"{name}\" value")))
}

/// The address as the data path can connect to it, or the error nginx gives.
/// The address as given, unless it names a host by name: raftgate has no resolver. The
/// reducer normalizes the address (or refuses it) with the same rule.
fn address(kind: Kind, server: &str) -> Result<String, ApiError> {
    match raftgate_raft::normalize_address(kind, server, false) {
        Ok(n) if n.parse::<std::net::SocketAddr>().is_err() => {
            let host = n.rsplit_once(':').map_or(n.as_str(), |(h, _)| h);
            Err(ApiError::no_resolver(host))
        }
        _ => Ok(server.to_string()),
    }
}

impl Fields {
    fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::json(format!("invalid JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(format_error("the body must be a JSON object"));
        };
        Fields::from_map(m)
    }

    fn from_map(m: Map<String, Value>) -> Result<Fields, ApiError> {
        use raftgate_raft::Rejected as R;
        let mut f = Fields::default();
        for (k, v) in &m {
            if v.is_object() || v.is_array() {
                return Err(format_error(format!("nested object or list in \"{k}\"")));
            }
            match k.as_str() {
                "server" => f.server = Some(string(k, v)?.to_string()),
                "service" => {
                    let svc = string(k, v)?;
                    if svc.is_empty() {
                        return Err(ApiError::from(R::UpstreamBadService));
                    }
                    f.service = Some(svc.to_string());
                }
                "weight" => f.weight = Some(integer(k, v, R::UpstreamBadWeight)?),
                "max_conns" => f.max_conns = Some(integer(k, v, R::UpstreamBadMaxConns)?),
                "max_fails" => f.max_fails = Some(integer(k, v, R::UpstreamBadMaxFails)?),
                "fail_timeout" => f.fail_timeout_ms = Some(time(k, v, R::UpstreamBadFailTimeout)?),
                "slow_start" => f.slow_start_ms = Some(time(k, v, R::UpstreamBadSlowStart)?),
                "route" => f.route = Some(string(k, v)?.to_string()),
                "backup" => f.backup = Some(boolean(k, v)?),
                "down" => f.down = Some(boolean(k, v)?),
                "drain" => f.drain = Some(boolean(k, v)?),
                "id" => {
                    let id = v
                        .as_u64()
                        .ok_or_else(|| format_error("invalid \"id\" value"))?;
                    f.id = Some(id);
                }
                "parent" | "host" => {}
                other => return Err(format_error(format!("unknown parameter \"{other}\""))),
            }
        }
        Ok(f)
    }

    fn spec(self, kind: Kind) -> Result<ServerSpec, ApiError> {
        let server = self
            .server
            .ok_or_else(|| format_error("missing \"server\" argument"))?;
        let server = address(kind, &server)?;
        if let Some(svc) = &self.service {
            return Err(ApiError::no_resolver(svc));
        }
        let mut spec = ServerSpec::new(server);
        spec.weight = self.weight.unwrap_or(spec.weight);
        spec.max_conns = self.max_conns.unwrap_or(spec.max_conns);
        spec.max_fails = self.max_fails.unwrap_or(spec.max_fails);
        spec.fail_timeout_ms = self.fail_timeout_ms.unwrap_or(spec.fail_timeout_ms);
        spec.slow_start_ms = self.slow_start_ms.unwrap_or(spec.slow_start_ms);
        spec.route = self.route.filter(|r| !r.is_empty());
        spec.backup = self.backup.unwrap_or(false);
        spec.down = self.down.unwrap_or(false);
        spec.drain = self.drain.unwrap_or(false);
        Ok(spec)
    }

    fn changes(self, kind: Kind) -> Result<ServerChanges, ApiError> {
        // nginx documents no resolver error for PATCH: a name is an invalid argument there.
        let server = match self.server {
            Some(s) => Some(address(kind, &s).map_err(|_| {
                ApiError::from(raftgate_raft::Rejected::UpstreamBadAddress { server: s.clone() })
            })?),
            None => None,
        };
        Ok(ServerChanges {
            server,
            weight: self.weight,
            max_conns: self.max_conns,
            max_fails: self.max_fails,
            fail_timeout_ms: self.fail_timeout_ms,
            slow_start_ms: self.slow_start_ms,
            route: self.route,
            down: self.down,
            drain: self.drain,
            id: self.id,
            backup: self.backup,
            service: self.service,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> (u16, &'static str) {
        let e = Fields::parse(body.as_bytes())
            .and_then(|f| f.spec(Kind::Http))
            .expect_err("refused");
        (e.status, e.code)
    }

    #[test]
    fn bodies_are_checked_before_anything_is_proposed() {
        assert_eq!(err("{"), (415, "JsonError"));
        assert_eq!(err("[1]"), (400, "UpstreamConfFormatError"));
        assert_eq!(err("{}"), (400, "UpstreamConfFormatError"));
        assert_eq!(
            err(r#"{"server":"10.0.0.1","x":1}"#),
            (400, "UpstreamConfFormatError")
        );
        assert_eq!(
            err(r#"{"server":{"a":1}}"#),
            (400, "UpstreamConfFormatError")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","weight":"2"}"#),
            (400, "UpstreamConfFormatError")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","weight":-1}"#),
            (400, "UpstreamBadWeight")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","max_fails":1.5}"#),
            (400, "UpstreamBadMaxFails")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","fail_timeout":"ten"}"#),
            (400, "UpstreamBadFailTimeout")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","slow_start":5}"#),
            (400, "UpstreamConfFormatError")
        );
        assert_eq!(
            err(r#"{"server":"backend.example"}"#),
            (400, "UpstreamConfNoResolver")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","service":""}"#),
            (400, "UpstreamBadService")
        );
        assert_eq!(
            err(r#"{"server":"10.0.0.1","down":"yes"}"#),
            (400, "UpstreamConfFormatError")
        );
    }

    #[test]
    fn a_full_body_reads_as_nginx_writes_it() {
        let spec = Fields::parse(
            br#"{"id":9,"server":"10.0.0.1:8080","weight":3,"max_conns":5,"max_fails":2,
                 "fail_timeout":"1m","slow_start":"500ms","route":"a","backup":false,
                 "down":true,"drain":true,"parent":"x","host":"h"}"#,
        )
        .and_then(|f| f.spec(Kind::Http))
        .expect("valid");
        assert_eq!(spec.server, "10.0.0.1:8080");
        assert_eq!((spec.weight, spec.max_conns, spec.max_fails), (3, 5, 2));
        assert_eq!((spec.fail_timeout_ms, spec.slow_start_ms), (60_000, 500));
        assert_eq!(spec.route.as_deref(), Some("a"));
        assert!(spec.down && spec.drain && !spec.backup);
        assert_eq!(time_string(10_000), "10s");
        assert_eq!(time_string(1_500), "1500ms");
        assert_eq!(server_id("12").expect("id"), 12);
        for bad in ["", "x", "-1", "1.0", "99999999999999999999"] {
            assert_eq!(server_id(bad).expect_err(bad).code, "UpstreamBadServerId");
        }
    }
}
