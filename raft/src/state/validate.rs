//! Validation of upstream server parameters, shared by configuration, POST and PATCH.
//!
//! The reducer re-checks what the config parser and the API already checked: a command in
//! the log must never put a value into the state that the data path cannot use, whoever
//! proposed it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::command::{Kind, ServerSpec};
use crate::outcome::{HttpOnlyField, Rejected};

/// Longest `route=` value nginx accepts (its `UpstreamBadRoute` limit).
pub const MAX_ROUTE_LEN: usize = 32;

/// Largest `fail_timeout`/`slow_start`: 2^31 - 1 seconds. Values beyond are mistakes (a
/// value meant in µs, say), and seconds then fit any signed 32-bit consumer.
pub const MAX_DURATION_MS: u64 = i32::MAX as u64 * 1000;

/// Default port of an HTTP server written without one.
const HTTP_PORT: u16 = 80;

fn bad(server: &str) -> Rejected {
    Rejected::UpstreamBadAddress {
        server: server.to_string(),
    }
}

fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !host.starts_with(['-', '.'])
        && !host.ends_with('-')
}

/// The canonical spelling of a server address, so that duplicates are found however they
/// were written: `host:port` with a lowercase host, IPv6 in brackets, the default port 80
/// added for HTTP; `stream` servers must name a port. With `service` (DNS SRV) the host
/// must be a name and carry no port, and is returned as is. Unix sockets are refused, as
/// raftgate's upstreams do not support them.
pub fn normalize_address(kind: Kind, server: &str, service: bool) -> Result<String, Rejected> {
    if server.starts_with("unix:") {
        return Err(bad(server));
    }
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad(server))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad(server))?),
        };
        let v6: Ipv6Addr = h.parse().map_err(|_| bad(server))?;
        (IpAddr::V6(v6).to_string(), port)
    } else {
        let (h, port) = match server.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (server, None),
        };
        if h.contains(':') {
            return Err(bad(server));
        }
        match h.parse::<Ipv4Addr>() {
            Ok(a) => (a.to_string(), port),
            Err(_) if valid_hostname(h) => (h.to_ascii_lowercase(), port),
            Err(_) => return Err(bad(server)),
        }
    };
    let port = match port {
        Some(p) => {
            let n = p
                .parse::<u16>()
                .ok()
                .filter(|n| *n != 0 && p.bytes().all(|b| b.is_ascii_digit()));
            Some(n.ok_or_else(|| bad(server))?)
        }
        None => None,
    };
    let is_ip = host.parse::<IpAddr>().is_ok();
    let bracket = |h: &str| {
        if h.contains(':') {
            format!("[{h}]")
        } else {
            h.to_string()
        }
    };
    if service {
        if port.is_some() || is_ip {
            return Err(bad(server));
        }
        return Ok(host);
    }
    let port = match (port, kind) {
        (Some(p), _) => p,
        (None, Kind::Http) => HTTP_PORT,
        (None, Kind::Stream) => return Err(bad(server)),
    };
    Ok(format!("{}:{port}", bracket(&host)))
}

pub(crate) fn check_weight(w: u32) -> Result<(), Rejected> {
    if w == 0 {
        Err(Rejected::UpstreamBadWeight)
    } else {
        Ok(())
    }
}

pub(crate) fn check_fail_timeout(ms: u64) -> Result<(), Rejected> {
    if ms > MAX_DURATION_MS {
        Err(Rejected::UpstreamBadFailTimeout)
    } else {
        Ok(())
    }
}

pub(crate) fn check_slow_start(ms: u64) -> Result<(), Rejected> {
    if ms > MAX_DURATION_MS {
        Err(Rejected::UpstreamBadSlowStart)
    } else {
        Ok(())
    }
}

/// Checks a route and drops an empty one (no route).
pub(crate) fn check_route(kind: Kind, route: Option<String>) -> Result<Option<String>, Rejected> {
    match route {
        Some(_) if kind == Kind::Stream => Err(Rejected::HttpOnly {
            field: HttpOnlyField::Route,
        }),
        Some(r) if r.len() > MAX_ROUTE_LEN => Err(Rejected::UpstreamBadRoute),
        Some(r) if r.is_empty() => Ok(None),
        r => Ok(r),
    }
}

pub(crate) fn check_drain(kind: Kind, drain: bool) -> Result<(), Rejected> {
    if drain && kind == Kind::Stream {
        Err(Rejected::HttpOnly {
            field: HttpOnlyField::Drain,
        })
    } else {
        Ok(())
    }
}

/// Validates a whole spec (config line or POST) and returns it normalized.
pub(crate) fn spec(kind: Kind, mut s: ServerSpec) -> Result<ServerSpec, Rejected> {
    if let Some(svc) = &s.service {
        if svc.is_empty() {
            return Err(Rejected::UpstreamBadService);
        }
    }
    s.server = normalize_address(kind, &s.server, s.service.is_some())?;
    check_weight(s.weight)?;
    check_fail_timeout(s.fail_timeout_ms)?;
    check_slow_start(s.slow_start_ms)?;
    s.route = check_route(kind, s.route)?;
    check_drain(kind, s.drain)?;
    Ok(s)
}
