//! The built-in HTTP variables, with nginx's names and formats.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::HeaderMap;

use super::{Getter, PrefixGetter, Setter, VarKind};
use crate::http::req::Req;

/// `(name, getter, cacheable, setter)`. Non-cacheable ones change during a request.
#[rustfmt::skip]
const BUILTINS: &[(&str, Getter, bool, Option<Setter>)] = &[
    ("remote_addr", |r| Some(r.conn.remote.ip().to_string()), true, None),
    ("remote_port", |r| Some(r.conn.remote.port().to_string()), true, None),
    ("binary_remote_addr", binary_remote_addr, true, None),
    ("server_addr", |r| Some(r.conn.local.ip().to_string()), true, None),
    ("server_port", |r| Some(r.conn.local.port().to_string()), true, None),
    ("server_name", |r| Some(r.server_name.to_string()), true, None),
    ("server_protocol", server_protocol, true, None),
    ("scheme", |r| Some(r.conn.scheme.to_string()), true, None),
    ("https", |r| Some(if r.conn.scheme == "https" { "on" } else { "" }.to_string()), true, None),
    ("host", host, true, None),
    ("remote_user", remote_user, true, None),
    ("hostname", |_| Some(hostname()), true, None),
    ("request_method", |r| Some(r.method.as_str().to_string()), false, None),
    ("request_uri", |r| Some(r.request_uri.clone()), true, None),
    ("request", request_line, true, None),
    ("uri", |r| Some(r.uri.clone()), false, None),
    ("document_uri", |r| Some(r.uri.clone()), false, None),
    ("args", |r| Some(r.args.clone().unwrap_or_default()), false, Some(set_args)),
    ("query_string", |r| Some(r.args.clone().unwrap_or_default()), false, Some(set_args)),
    ("is_args", |r| { Some( if r.args.as_deref().is_some_and(|a| !a.is_empty()) { "?" } else { "" } .to_string()) }, false, None),
    ("content_type", |r| header_value(&r.headers, CONTENT_TYPE.as_str()), true, None),
    ("content_length", |r| header_value(&r.headers, CONTENT_LENGTH.as_str()), true, None),
    ("request_id", request_id, true, None),
    ("request_length", |r| Some(r.request_length.to_string()), false, None),
    ("request_time", |r| Some(format!("{:.3}", r.start.elapsed().as_secs_f64())), false, None),
    ("status", |r| Some(format!("{:03}", r.status)), false, None),
    ("body_bytes_sent", |r| Some(r.body_bytes_sent.to_string()), false, None),
    ("bytes_sent", |r| Some(r.bytes_sent.to_string()), false, None),
    ("connection", |r| Some(r.conn.serial.to_string()), true, None),
    ("connection_requests", |r| Some(r.conn_requests.to_string()), true, None),
    ("time_local", |_| { Some( chrono::Local::now() .format("%d/%b/%Y:%H:%M:%S %z") .to_string()) }, false, None),
    ("time_iso8601", |_| { Some( chrono::Local::now() .format("%Y-%m-%dT%H:%M:%S%:z") .to_string()) }, false, None),
    ("msec", |_| Some(msec(SystemTime::now())), false, None),
    ("upstream_addr", |r| attempts(r, |a| a.addr.to_string()), false, None),
    ("upstream_status", |r| attempts(r, |a| a.status.to_string()), false, None),
    ("upstream_response_time", upstream_response_time, false, None),
    ("upstream_header_time", |r| attempts(r, |a| format!("{:.3}", a.time.as_secs_f64())), false, None),
    ("proxy_host", |r| r.proxy_host.clone(), false, None),
    ("proxy_port", |r| r.proxy_port.map(|p| p.to_string()), false, None),
    ("proxy_add_x_forwarded_for", proxy_add_x_forwarded_for, true, None),
    ("document_root", document_root, false, None),
    ("request_filename", |r| document_root(r).map(|d| format!("{d}{}", r.uri)), false, None),
    ("nginx_version", |_| Some(env!("CARGO_PKG_VERSION").to_string()), true, None),
    ("raftgate_version", |_| Some(env!("CARGO_PKG_VERSION").to_string()), true, None),
    ("pid", |_| Some(std::process::id().to_string()), true, None),
];

#[rustfmt::skip]
const PREFIXES: &[(&str, PrefixGetter, bool)] = &[
    ("http_", |r, name| header_value(&r.headers, &name.replace('_', "-")), true),
    ("arg_", |r, name| arg(r.args.as_deref()?, name), false),
    ("cookie_", |r, name| cookie(&r.headers, name), true),
    ("upstream_http_", |r, name| header_value(r.upstream.headers.as_ref()?, &name.replace('_', "-")), false),
    ("upstream_cookie_", |r, name| upstream_cookie(r.upstream.headers.as_ref()?, name), false),
];

/// The built-in that answers `name`, if any.
pub fn builtin(name: &str) -> Option<VarKind> {
    if let Some((_, get, cache, set)) = BUILTINS.iter().find(|(n, ..)| *n == name) {
        return Some(VarKind::Builtin {
            get: *get,
            cache: *cache,
            set: *set,
        });
    }
    PREFIXES
        .iter()
        .find(|(p, ..)| name.len() > p.len() && name.starts_with(p))
        .map(|(p, get, cache)| VarKind::Prefix {
            get: *get,
            suffix: name[p.len()..].to_ascii_lowercase().into(),
            cache: *cache,
        })
}

/// Whether a variable name reads upstream response headers, so the proxy knows to keep them.
pub fn reads_upstream_headers(name: &str) -> bool {
    name.starts_with("upstream_http_") || name.starts_with("upstream_cookie_")
}

/// The `root` of the current location (or the one static content used).
fn document_root(r: &mut Req) -> Option<String> {
    if let Some(d) = &r.document_root {
        return Some(d.clone());
    }
    let conf = r.loc_conf.clone()?;
    Some(conf.root.as_ref().map(|t| t.eval(r)).unwrap_or_default())
}

fn set_args(r: &mut Req, v: String) {
    r.args = if v.is_empty() { None } else { Some(v) };
}

/// Raw address bytes; each byte is carried as the char of the same code point (Latin-1),
/// so the value keeps one char per byte for keys and hashing.
fn binary_remote_addr(r: &mut Req) -> Option<String> {
    let bytes = match r.conn.remote.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    Some(bytes.into_iter().map(char::from).collect())
}

fn server_protocol(r: &mut Req) -> Option<String> {
    Some(
        match r.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_09 => "HTTP/0.9",
            _ => "HTTP/1.1",
        }
        .to_string(),
    )
}

fn request_line(r: &mut Req) -> Option<String> {
    let proto = server_protocol(r)?;
    Some(format!("{} {} {}", r.method, r.request_uri, proto))
}

fn host(r: &mut Req) -> Option<String> {
    match r.host_header() {
        Some(h) if !h.is_empty() => Some(h),
        _ => Some(r.server_name.to_string()),
    }
}

/// The user name of `Authorization: Basic`, as nginx gives it (no password check here).
fn remote_user(r: &mut Req) -> Option<String> {
    let v = r.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64_decode(b64.trim())?;
    let text = String::from_utf8(raw).ok()?;
    Some(
        text.split_once(':')
            .map(|(u, _)| u)
            .unwrap_or(&text)
            .to_string(),
    )
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

fn request_id(r: &mut Req) -> Option<String> {
    Some(r.var_request_id())
}

/// 16 random bytes in hex, as nginx's `$request_id`.
pub fn new_request_id() -> String {
    let mut s = String::with_capacity(32);
    for _ in 0..2 {
        s.push_str(&format!("{:016x}", fastrand::u64(..)));
    }
    s
}

fn proxy_add_x_forwarded_for(r: &mut Req) -> Option<String> {
    let ip = r.conn.remote.ip().to_string();
    match header_value(&r.headers, "x-forwarded-for") {
        Some(prev) if !prev.is_empty() => Some(format!("{prev}, {ip}")),
        _ => Some(ip),
    }
}

pub fn msec(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// `$upstream_*`: one value per attempt, joined with ", " as nginx does.
/// Full response time of each attempt: the last one's runs to the end of its body.
fn upstream_response_time(r: &mut Req) -> Option<String> {
    let end = r
        .upstream
        .body_end
        .as_ref()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .unwrap_or(0);
    let n = r.upstream.attempts.len();
    let mut i = 0;
    attempts(r, |a| {
        i += 1;
        let t = if i == n && end > 0 {
            std::time::Duration::from_micros(end)
        } else {
            a.time
        };
        format!("{:.3}", t.as_secs_f64())
    })
}

fn attempts(r: &mut Req, f: impl FnMut(&crate::http::req::Attempt) -> String) -> Option<String> {
    if r.upstream.attempts.is_empty() {
        return None;
    }
    Some(
        r.upstream
            .attempts
            .iter()
            .map(f)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// A header's value; repeated headers are joined as nginx does (`; ` for Cookie).
pub fn header_value(h: &HeaderMap, name: &str) -> Option<String> {
    let mut iter = h.get_all(name).iter();
    let first = iter.next()?;
    let mut s = String::from_utf8_lossy(first.as_bytes()).into_owned();
    let sep = if name.eq_ignore_ascii_case("cookie") {
        "; "
    } else {
        ", "
    };
    for v in iter {
        s.push_str(sep);
        s.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(s)
}

/// `$arg_NAME`: the first argument with that name (case-insensitive, not decoded).
pub fn arg(args: &str, name: &str) -> Option<String> {
    for pair in args.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.eq_ignore_ascii_case(name) {
            return Some(v.to_string());
        }
    }
    None
}

/// The request cookie `name` (nginx's `$cookie_NAME`).
pub(crate) fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    for v in h.get_all(COOKIE) {
        let v = v.to_str().ok()?;
        for part in v.split(';') {
            let (k, val) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
            if k.eq_ignore_ascii_case(name) {
                return Some(val.to_string());
            }
        }
    }
    None
}

fn upstream_cookie(h: &HeaderMap, name: &str) -> Option<String> {
    for v in h.get_all(SET_COOKIE) {
        let v = v.to_str().ok()?;
        let first = v.split(';').next().unwrap_or("");
        if let Some((k, val)) = first.trim().split_once('=') {
            if k.eq_ignore_ascii_case(name) {
                return Some(val.to_string());
            }
        }
    }
    None
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_cookies() {
        assert_eq!(arg("a=1&B=2&a=3", "a").as_deref(), Some("1"));
        assert_eq!(arg("a=1&B=2", "b").as_deref(), Some("2"));
        assert_eq!(arg("flag&x=", "flag").as_deref(), Some(""));
        assert_eq!(arg("a=1", "c"), None);
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; sid=xyz".parse().expect("header"));
        h.append(COOKIE, "other=2".parse().expect("header"));
        assert_eq!(cookie(&h, "sid").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "other").as_deref(), Some("2"));
        assert_eq!(
            header_value(&h, "cookie").as_deref(),
            Some("a=1; sid=xyz; other=2")
        );
        let mut u = HeaderMap::new();
        u.append(
            SET_COOKIE,
            "route=abc; Path=/; HttpOnly".parse().expect("header"),
        );
        assert_eq!(upstream_cookie(&u, "route").as_deref(), Some("abc"));
    }

    #[test]
    fn prefixes_resolve_with_the_suffix() {
        match builtin("http_user_agent") {
            Some(VarKind::Prefix { suffix, .. }) => assert_eq!(&*suffix, "user_agent"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(builtin("http_").is_none());
        assert!(builtin("no_such_thing").is_none());
        assert!(builtin("remote_addr").is_some());
    }

    #[test]
    fn basic_auth_user_decodes() {
        assert_eq!(
            base64_decode("YWxpY2U6c2VjcmV0").as_deref(),
            Some(&b"alice:secret"[..])
        );
        assert_eq!(base64_decode("Ym9i").as_deref(), Some(&b"bob"[..]));
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn request_ids_are_32_hex_chars_and_differ() {
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_request_id());
    }
}
