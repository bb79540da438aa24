//! Turns what the http directives collected into the compiled [`HttpConf`]: merges
//! inherited settings down the levels, builds location trees and listen groups, and
//! resolves upstream references, reporting every problem it finds.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::upstream::sticky::Sticky;

use super::location::{Kind, Location, Locations};
use super::rewrite::{Cond, Op, Script};
use super::server_names::ServerNames;
use super::{Content, HttpConf, ListenGroup, LocConf, Server};
use crate::config::Cx;
use crate::upstream::build::UpstreamBuild;
use crate::upstream::conf::UpstreamConf;
use crate::upstream::Upstream;

#[derive(Default)]
pub struct HttpBuild {
    pub loc: LocConf,
    pub servers: Vec<ServerBuild>,
    pub upstreams: Vec<UpstreamBuild>,
    pub keyval_zones: Vec<crate::keyval::ZoneDecl>,
    /// `keyval` lines: the zone each names, checked once the whole block is read (a
    /// `keyval_zone` may come after the `keyval` that uses it, as in nginx).
    pub keyval_refs: Vec<crate::keyval::ZoneUse>,
}

impl std::fmt::Debug for HttpBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpBuild({} servers)", self.servers.len())
    }
}

#[derive(Default)]
pub struct ServerBuild {
    pub loc: LocConf,
    pub script: Script,
    pub locations: Vec<LocationBuild>,
    pub listens: Vec<ListenBuild>,
    pub names: Vec<String>,
    pub at: String,
}

pub struct ListenBuild {
    pub addrs: Vec<SocketAddr>,
    pub default_server: bool,
    pub backlog: Option<i32>,
    pub reuseport: bool,
    pub at: String,
}

#[derive(Default)]
pub struct LocationBuild {
    pub name: String,
    pub kind: Option<Kind>,
    pub loc: LocConf,
    pub script: Script,
    pub children: Vec<LocationBuild>,
    pub at: String,
}

#[derive(Default)]
pub struct IfBuild {
    pub cond: Option<Cond>,
    pub loc: LocConf,
    pub script: Script,
    pub in_location: bool,
}

/// `8080`, `127.0.0.1:8080`, `*:80`, `[::1]:80`, `localhost:8080` (all its addresses).
pub fn parse_listen_addr(s: &str) -> Result<Vec<SocketAddr>, String> {
    if s.starts_with("unix:") {
        return Err("unix domain sockets are not supported in \"listen\"".into());
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port))]);
    }
    if let Some(port) = s.strip_prefix("*:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in \"{s}\" of the \"listen\" directive"))?;
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], port))]);
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:80")
    };
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 80)]);
    }
    match with_port.to_socket_addrs() {
        Ok(iter) => {
            let mut v: Vec<SocketAddr> = iter.collect();
            v.dedup();
            if v.is_empty() {
                Err(format!(
                    "host not found in \"{s}\" of the \"listen\" directive"
                ))
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(format!(
            "host not found in \"{s}\" of the \"listen\" directive"
        )),
    }
}

fn default_listen() -> SocketAddr {
    // nginx listens on *:80 when started by root and *:8000 otherwise.
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    SocketAddr::from(([0, 0, 0, 0], if root { 80 } else { 8000 }))
}

/// A server on a listen address: (server index, default_server, backlog, reuseport, FILE:LINE).
type ListenMember = (usize, bool, Option<i32>, bool, String);

pub fn finish(cx: &mut Cx, build: HttpBuild) -> Option<HttpConf> {
    let HttpBuild {
        loc: mut http_loc,
        servers,
        upstreams,
        keyval_zones,
        keyval_refs,
    } = build;
    crate::keyval::check_uses(cx, &keyval_refs, &keyval_zones);
    if http_loc.root.is_none() {
        // nginx's default `root html` under the prefix, made explicit so `$document_root`
        // and static files agree.
        http_loc.root = Some(crate::vars::Template::literal(
            &cx.path("html").display().to_string(),
        ));
    }

    let mut groups: HashMap<String, Arc<Upstream>> = HashMap::new();
    for ub in upstreams {
        let conf = ub.conf;
        if groups.contains_key(&conf.name) {
            cx.diags.error(
                &conf.file,
                conf.line,
                &format!("duplicate upstream \"{}\"", conf.name),
            );
            continue;
        }
        if conf.servers.is_empty() {
            cx.diags.error(
                &conf.file,
                conf.line,
                &format!("no servers are inside upstream \"{}\"", conf.name),
            );
            continue;
        }
        if let Some(Sticky::Learn(l)) = &conf.sticky {
            let taken = groups
                .values()
                .any(|g| matches!(&g.conf().sticky, Some(Sticky::Learn(o)) if o.zone == l.zone));
            if taken {
                cx.diags.error(
                    &conf.file,
                    conf.line,
                    &format!(
                        "sticky zone \"{}\" is already used by another upstream",
                        l.zone
                    ),
                );
                continue;
            }
        }
        groups.insert(conf.name.clone(), Arc::new(Upstream::new(conf)));
    }
    for (name, at) in std::mem::take(&mut cx.upstream_refs) {
        if groups.contains_key(&name) {
            continue;
        }
        match implicit_group(&name, &at) {
            Ok(conf) => {
                groups.insert(name, Arc::new(Upstream::new(conf)));
            }
            Err(e) => cx.diags.error_plain(format!("{at}: {e}")),
        }
    }

    let pools: HashMap<String, Arc<super::upconn::Pool>> = groups
        .iter()
        .filter_map(|(name, g)| {
            g.conf()
                .keepalive
                .map(|k| (name.clone(), Arc::new(super::upconn::Pool::new(k))))
        })
        .collect();
    for pass in std::mem::take(&mut cx.proxy_passes) {
        if let super::proxy::Target::Group(name) = &pass.target {
            if let Some(g) = groups.get(name) {
                let _ = pass.linked.set(super::proxy::Linked {
                    group: g.clone(),
                    pool: pools.get(name).cloned(),
                    host: http::HeaderValue::from_str(&pass.proxy_host).ok(),
                });
            }
        }
    }
    let mut out_servers = Vec::new();
    let mut listen_map: Vec<(SocketAddr, Vec<ListenMember>)> = Vec::new();
    for (idx, sb) in servers.into_iter().enumerate() {
        let ServerBuild {
            mut loc,
            script,
            locations,
            listens,
            names,
            at,
        } = sb;
        loc.merge_from(&http_loc, false);
        let mut script = script;
        merge_ifs(cx, &mut script, &loc);
        let mut locs = Locations::default();
        for lb in locations {
            if let Some(l) = build_location(cx, lb, &loc) {
                if let Err(e) = locs.add(l.clone()) {
                    cx.diags.error_plain(format!("{}: {e}", l.at));
                }
            }
        }
        let listens = if listens.is_empty() {
            vec![ListenBuild {
                addrs: vec![default_listen()],
                default_server: false,
                backlog: None,
                reuseport: false,
                at: at.clone(),
            }]
        } else {
            listens
        };
        for lb in listens {
            for addr in lb.addrs {
                let entry = match listen_map.iter_mut().find(|(a, _)| *a == addr) {
                    Some(e) => e,
                    None => {
                        listen_map.push((addr, Vec::new()));
                        listen_map.last_mut().expect("just pushed")
                    }
                };
                entry.1.push((
                    idx,
                    lb.default_server,
                    lb.backlog,
                    lb.reuseport,
                    lb.at.clone(),
                ));
            }
        }
        let name: Arc<str> = Arc::from(
            names
                .iter()
                .find(|n| !n.starts_with('~'))
                .map(String::as_str)
                .unwrap_or(""),
        );
        out_servers.push((
            Server {
                name,
                conf: Arc::new(loc),
                script,
                locations: locs,
                at,
            },
            names,
        ));
    }

    let mut listens = Vec::new();
    for (addr, members) in listen_map {
        let mut default = None;
        let mut names = ServerNames::default();
        for (idx, is_default, ..) in &members {
            if *is_default {
                if default.is_some() {
                    let at = &members
                        .iter()
                        .find(|m| m.0 == *idx)
                        .map(|m| m.4.clone())
                        .unwrap_or_default();
                    cx.diags
                        .error_plain(format!("{at}: a duplicate default server for {addr}"));
                }
                default = Some(*idx);
            }
            for n in &out_servers[*idx].1 {
                if let Err(e) = names.add(n, *idx) {
                    cx.diags
                        .error_plain(format!("{}: {e}", out_servers[*idx].0.at));
                }
            }
        }
        names.finish();
        let first = &members[0];
        listens.push(ListenGroup {
            addr,
            default_server: default.unwrap_or(first.0),
            names,
            backlog: members.iter().find_map(|m| m.2),
            reuseport: members.iter().any(|m| m.3),
        });
    }
    check_listen_conflicts(cx, &listens);

    let keep_upstream_headers = cx
        .vars
        .names()
        .any(crate::vars::http::reads_upstream_headers);
    let status_zones = out_servers
        .iter()
        .filter_map(|(s, _)| s.conf.status_zone.clone())
        .map(|z| (z, Arc::default()))
        .collect();
    Some(HttpConf {
        status_zones,
        keyval_zones,
        stream_configured: false,
        pools,
        servers: out_servers.into_iter().map(|(s, _)| Arc::new(s)).collect(),
        listens,
        upstreams: groups,
        vars: Arc::default(),
        keep_upstream_headers,
    })
}

/// A wildcard address and a specific one on the same port cannot both be bound here
/// (nginx binds the wildcard only and dispatches by address; raftgate binds each).
fn check_listen_conflicts(cx: &mut Cx, listens: &[ListenGroup]) {
    for (i, a) in listens.iter().enumerate() {
        for b in &listens[i + 1..] {
            if a.addr.port() == b.addr.port()
                && a.addr.port() != 0
                && (a.addr.ip().is_unspecified() || b.addr.ip().is_unspecified())
                && a.addr.is_ipv4() == b.addr.is_ipv4()
            {
                cx.diags.error_plain(format!(
                    "listen {} and listen {} overlap: use the same address in every \"listen\" of a port",
                    a.addr, b.addr
                ));
            }
        }
    }
}

fn build_location(cx: &mut Cx, lb: LocationBuild, parent: &LocConf) -> Option<Arc<Location>> {
    let LocationBuild {
        name,
        kind,
        mut loc,
        mut script,
        children,
        at,
    } = lb;
    let kind = kind?;
    if let Some(Content::Proxy(p)) = &loc.content {
        if p.uri.is_some() && matches!(kind, Kind::Regex(_) | Kind::Named) {
            cx.diags.error_plain(format!(
                "{}: \"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement",
                p.at
            ));
        }
    }
    loc.merge_from(parent, false);
    if loc.jwt.enabled().is_some() && loc.jwt.keys.is_none() {
        cx.diags.warn_plain(format!(
            "{at}: auth_jwt is on in location \"{name}\" but no auth_jwt_key_file applies there: every request to it is answered 401"
        ));
    }
    merge_ifs(cx, &mut script, &loc);
    let mut locs = Locations::default();
    for c in children {
        if let Some(l) = build_location(cx, c, &loc) {
            if let Err(e) = locs.add(l.clone()) {
                cx.diags.error_plain(format!("{}: {e}", l.at));
            }
        }
    }
    Some(Arc::new(Location {
        name,
        kind,
        conf: Arc::new(loc),
        script,
        children: locs,
        at,
    }))
}

/// Gives each `if` in a location its full configuration: its own settings over the
/// location's (content included, as nginx keeps the location's handler).
fn merge_ifs(cx: &mut Cx, script: &mut Script, parent: &LocConf) {
    for op in &mut script.ops {
        if let Op::If(i) = op {
            let own = match i.conf.take() {
                Some(c) => Arc::try_unwrap(c).unwrap_or_else(|c| (*c).clone()),
                None => {
                    merge_ifs(cx, &mut i.script, parent);
                    continue;
                }
            };
            if let Some(Content::Proxy(p)) = &own.content {
                if p.uri.is_some() {
                    cx.diags.error_plain(format!(
                        "{}: \"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement",
                        p.at
                    ));
                }
            }
            let mut merged = own;
            merged.merge_from(parent, true);
            merge_ifs(cx, &mut i.script, &merged);
            i.conf = Some(Arc::new(merged));
        }
    }
}

/// `proxy_pass http://host:port` without an `upstream` block: a group of the addresses
/// the name resolves to now (nginx resolves such names once, at start).
fn implicit_group(name: &str, at: &str) -> Result<UpstreamConf, String> {
    let addrs = crate::upstream::build::resolve(name)?;
    let (file, line) = match at.rsplit_once(':') {
        Some((f, l)) => (f.to_string(), l.parse().unwrap_or(0)),
        None => (at.to_string(), 0),
    };
    Ok(UpstreamConf::implicit(name, addrs, file, line))
}
