//! What the configuration says about an upstream group, before any runtime state exists.
//!
//! These values are produced by the `upstream {}` block (or an implicit group built from
//! `proxy_pass http://ADDR`) and handed to [`super::Upstream::new`]. They are plain data so
//! that the replicated upstream state of later issues can produce the same shape.

use std::net::SocketAddr;
use std::time::Duration;

use crate::vars::Template;

/// How a group picks a server for a request.
#[derive(Debug, Clone)]
pub enum Method {
    /// nginx's smooth weighted round robin (the default).
    RoundRobin,
    /// Fewest active connections relative to weight; ties resolved by weighted round robin.
    LeastConn,
    /// The first three octets of an IPv4 client address (whole IPv6 address) pick the server.
    IpHash,
    /// A key built from variables picks the server; `consistent` uses ketama points.
    Hash { key: Template, consistent: bool },
    /// A random server by weight; `two` picks two and takes the one with fewer connections.
    Random { two: bool },
}

/// One `server` line (after name resolution: a name that resolves to N addresses gives N).
#[derive(Debug, Clone)]
pub struct ServerConf {
    pub addr: SocketAddr,
    /// The address as written in the `server` directive (e.g. `localhost:9001`).
    pub name: String,
    pub weight: u32,
    /// 0 disables failure accounting.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backup: bool,
    pub down: bool,
    pub drain: bool,
    /// 0 means no limit.
    pub max_conns: u32,
    pub slow_start: Duration,
    pub route: Option<String>,
}

impl ServerConf {
    /// A server with nginx's defaults: weight 1, max_fails 1, fail_timeout 10s.
    pub fn new(addr: SocketAddr, name: String) -> Self {
        ServerConf {
            addr,
            name,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            drain: false,
            max_conns: 0,
            slow_start: Duration::ZERO,
            route: None,
        }
    }
}

/// `zone NAME [SIZE]`: required for the API in NGINX Plus; kept for the API of later issues.
#[derive(Debug, Clone)]
pub struct ZoneConf {
    pub name: String,
    pub size: Option<u64>,
}

/// Upstream connection reuse (`keepalive`, `keepalive_timeout`, `keepalive_requests`).
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// Idle connections kept for the group (nginx keeps them per worker; raftgate has one
    /// pool per group in the process).
    pub idle: usize,
    /// An idle connection older than this is closed instead of reused (default 60s).
    pub timeout: Duration,
    /// A connection is closed after this many requests (default 1000).
    pub requests: u64,
}

#[derive(Debug, Clone)]
pub struct UpstreamConf {
    pub name: String,
    pub servers: Vec<ServerConf>,
    pub method: Method,
    /// `keepalive N` and its companions; `None` closes upstream connections after
    /// each request, as nginx does without `keepalive`.
    pub keepalive: Option<Keepalive>,
    pub zone: Option<ZoneConf>,
    /// Where the group was defined, for messages.
    pub file: String,
    pub line: u32,
    /// `true` for groups created from `proxy_pass http://ADDR` rather than an `upstream` block.
    pub implicit: bool,
    /// `sticky cookie|route|learn`.
    pub sticky: Option<super::sticky::Sticky>,
}

impl UpstreamConf {
    /// The group nginx makes for `proxy_pass http://ADDR` without an `upstream` block:
    /// round robin over the addresses, nginx's server defaults, no keep-alive.
    pub fn implicit(name: &str, addrs: Vec<SocketAddr>, file: String, line: u32) -> Self {
        UpstreamConf {
            name: name.to_string(),
            servers: addrs
                .into_iter()
                .map(|a| ServerConf::new(a, name.to_string()))
                .collect(),
            method: Method::RoundRobin,
            keepalive: None,
            zone: None,
            file,
            line,
            implicit: true,
            sticky: None,
        }
    }
}
