//! `sticky cookie | route | learn`: session persistence (NGINX Plus, ngx_http_upstream
//! module), configuration side.
//!
//! A request *bound* to a server goes to it while it can take the request (not `down`,
//! not failed out, not full), draining or not; otherwise, and for unbound requests, the
//! group balances as usual (a draining server takes no new, unbound request). What binds:
//! - `cookie`: the request's cookie NAME names a server by its id (its `route=` value, or
//!   the hex MD5 of its address as nginx computes it); a response to an unbound request
//!   sets the cookie.
//! - `route`: the first non-empty variable names a server by the same id.
//! - `learn`: the first non-empty `lookup` variable is a session the cluster learned; the
//!   first non-empty `create` variable of a response (typically `$upstream_cookie_X`)
//!   learns or re-binds one. Sessions are replicated state (see `cluster::sessions`).

use std::time::Duration;

use crate::config::values::{parse_size, parse_time};
use crate::config::{Cx, Directive};
use crate::vars::Template;

use super::build::UpstreamBuild;

#[derive(Debug, Clone)]
pub enum Sticky {
    Cookie(CookieConf),
    Route(Vec<Template>),
    Learn(LearnConf),
}

#[derive(Debug, Clone)]
pub struct CookieConf {
    pub name: String,
    /// `None`: a session cookie.
    pub expires: Option<Expires>,
    pub domain: Option<Template>,
    pub path: Option<String>,
    pub httponly: bool,
    pub secure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// `expires=max`: 31 Dec 2037 23:55:55 GMT.
    Max,
    After(Duration),
}

#[derive(Debug, Clone)]
pub struct LearnConf {
    pub create: Vec<Template>,
    pub lookup: Vec<Template>,
    pub zone: String,
    pub size: u64,
    pub timeout_ms: u64,
    /// `header`: learn from the response header (raftgate always does; kept for the
    /// record).
    pub header: bool,
}

/// The smallest sticky zone nginx accepts (8 pages).
const MIN_ZONE: u64 = 8 * 4096;

/// The id a server is bound by: its `route=`, else the hex MD5 of its address text
/// (`127.0.0.1:9001`), as nginx computes both the cookie value and the route match.
pub fn server_id(route: Option<&str>, addr: &std::net::SocketAddr) -> String {
    match route {
        Some(r) => r.to_string(),
        None => {
            use md5::{Digest, Md5};
            let digest = Md5::digest(addr.to_string().as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// `sticky cookie NAME [expires=time|max] [domain=d] [httponly] [secure] [path=p];`
/// `sticky route $var ...;`
/// `sticky learn create=$var lookup=$var zone=NAME:SIZE [timeout=time] [header] [sync];`
pub fn directive(cx: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    if u.conf.sticky.is_some() {
        return Err("\"sticky\" directive is duplicate".into());
    }
    let sticky = match d.arg(0) {
        "cookie" => Sticky::Cookie(cookie(cx, d)?),
        "route" => {
            if d.args.len() < 2 {
                return Err("invalid number of arguments in \"sticky route\"".into());
            }
            let mut vars = Vec::new();
            for w in &d.args[1..] {
                if !w.value.starts_with('$') {
                    return Err(format!("invalid parameter \"{}\"", w.value));
                }
                vars.push(cx.template(d, &w.value).ok_or("")?);
            }
            Sticky::Route(vars)
        }
        "learn" => Sticky::Learn(learn(cx, d)?),
        o => return Err(format!("invalid sticky method \"{o}\"")),
    };
    u.conf.sticky = Some(sticky);
    Ok(())
}

fn cookie(cx: &mut Cx, d: &Directive) -> Result<CookieConf, String> {
    let name = d
        .args
        .get(1)
        .map(|w| w.value.clone())
        .filter(|n| !n.is_empty() && !n.contains('='))
        .ok_or("\"sticky cookie\" needs a cookie name")?;
    let mut c = CookieConf {
        name,
        expires: None,
        domain: None,
        path: None,
        httponly: false,
        secure: false,
    };
    for w in &d.args[2..] {
        let v = w.value.as_str();
        if let Some(e) = v.strip_prefix("expires=") {
            c.expires = Some(match e {
                "max" => Expires::Max,
                t => {
                    Expires::After(parse_time(t).map_err(|_| format!("invalid parameter \"{v}\""))?)
                }
            });
        } else if let Some(dom) = v.strip_prefix("domain=") {
            c.domain = Some(cx.template(d, dom).ok_or("")?);
        } else if let Some(p) = v.strip_prefix("path=") {
            c.path = Some(p.to_string());
        } else if v == "httponly" {
            c.httponly = true;
        } else if v == "secure" {
            c.secure = true;
        } else {
            return Err(format!("invalid parameter \"{v}\""));
        }
    }
    Ok(c)
}

fn learn(cx: &mut Cx, d: &Directive) -> Result<LearnConf, String> {
    let mut create = Vec::new();
    let mut lookup = Vec::new();
    let mut zone = None;
    let mut timeout_ms = raftgate_raft::state::DEFAULT_STICKY_TIMEOUT_MS;
    let mut header = false;
    for w in &d.args[1..] {
        let v = w.value.as_str();
        if let Some(c) = v.strip_prefix("create=") {
            create.push(cx.template(d, c).ok_or("")?);
        } else if let Some(l) = v.strip_prefix("lookup=") {
            lookup.push(cx.template(d, l).ok_or("")?);
        } else if let Some(z) = v.strip_prefix("zone=") {
            let (name, size) = z
                .split_once(':')
                .ok_or_else(|| format!("invalid zone \"{z}\": use zone=NAME:SIZE"))?;
            let size = parse_size(size)?;
            if name.is_empty() {
                return Err(format!("invalid zone name in \"{v}\""));
            }
            if size < MIN_ZONE {
                return Err(format!("zone \"{name}\" is too small: at least 32k"));
            }
            zone = Some((name.to_string(), size));
        } else if let Some(t) = v.strip_prefix("timeout=") {
            let t = parse_time(t).map_err(|_| format!("invalid parameter \"{v}\""))?;
            timeout_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1);
        } else if v == "header" {
            header = true;
        } else if v == "sync" {
            // Every sticky zone is replicated through Raft; `sync` asks for nothing more.
        } else {
            return Err(format!("invalid parameter \"{v}\""));
        }
    }
    let (zone, size) = zone.ok_or("\"zone\" parameter is missing in \"sticky learn\"")?;
    if create.is_empty() {
        return Err("\"create\" parameter is missing in \"sticky learn\"".into());
    }
    if lookup.is_empty() {
        return Err("\"lookup\" parameter is missing in \"sticky learn\"".into());
    }
    Ok(LearnConf {
        create,
        lookup,
        zone,
        size,
        timeout_ms,
        header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_route_or_nginx_md5_of_the_address() {
        let a: std::net::SocketAddr = "127.0.0.1:80".parse().expect("addr");
        // `echo -n 127.0.0.1:80 | md5sum`
        assert_eq!(server_id(None, &a), "cef54f47984626c9efbf070c50bfad1b");
        assert_eq!(server_id(Some("a"), &a), "a");
    }
}
