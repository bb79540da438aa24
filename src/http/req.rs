//! The state of one HTTP request as it moves through the phases: what the client sent,
//! what the phases decided, and the per-request variable cache.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, Method, Version};

use crate::vars::{Slot, VarId, VarKind, VarTable};

/// What a connection knows about itself; shared by the requests it carries.
#[derive(Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'static str,
    /// `$connection`: a serial number, unique in this process.
    pub serial: u64,
}

/// One try of a request against one upstream server.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub addr: SocketAddr,
    pub status: u16,
    pub time: std::time::Duration,
}

/// What the upstream attempts of a request left behind, for `$upstream_*` and the log.
/// Kept raw: they are formatted only if a variable asks.
#[derive(Debug, Default)]
pub struct UpstreamInfo {
    pub attempts: Vec<Attempt>,
    /// Microseconds from the last attempt's start to the end of its response body, set
    /// by the body when it ends (0 until then).
    pub body_end: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Kept only when the configuration reads `$upstream_http_*`/`$upstream_cookie_*`.
    pub headers: Option<HeaderMap>,
}

#[derive(Debug)]
pub struct Req {
    pub table: Arc<VarTable>,
    /// This process's cluster node, for variables that read the replicated state
    /// (`keyval`); `None` where the proxy runs without one (some tests).
    pub node: Option<Arc<crate::cluster::Node>>,
    pub slots: Vec<Slot>,
    pub conn: Arc<ConnInfo>,
    /// `$connection_requests`: this request's number on its connection.
    pub conn_requests: u64,
    pub method: Method,
    pub version: Version,
    pub headers: HeaderMap,
    /// `$request_uri`: exactly as received, with arguments.
    pub request_uri: String,
    /// `$uri`: decoded and normalised path, changed by rewrites and internal redirects.
    pub uri: String,
    /// `$args`: the query string (without `?`).
    pub args: Option<String>,
    /// `$server_name`: the first name of the server that took the request.
    pub server_name: Arc<str>,
    pub start: Instant,
    pub start_time: SystemTime,
    pub request_id: Option<String>,
    pub status: u16,
    pub bytes_sent: u64,
    pub body_bytes_sent: u64,
    pub request_length: u64,
    pub upstream: UpstreamInfo,
    /// `$0`..`$9` of the last successful regex match.
    pub captures: Vec<Option<String>>,
    /// `$proxy_host`/`$proxy_port` of the current `proxy_pass`.
    pub proxy_host: Option<String>,
    pub proxy_port: Option<u16>,
    /// Set when static content is served; otherwise `$document_root` is computed from
    /// `loc_conf`.
    pub document_root: Option<String>,
    /// The configuration of the location the request is in.
    pub loc_conf: Option<Arc<super::LocConf>>,
    /// The host of an absolute-form request line (`GET http://h/ HTTP/1.1`), which
    /// takes precedence over `Host` as in nginx.
    pub request_host: Option<String>,
    /// The check of this request's JWT, once made (see `jwt`).
    pub jwt: Option<Box<crate::jwt::Memo>>,
    /// Set while the JWT is being read, so a `token=` variable cannot ask for itself.
    pub jwt_busy: bool,
    /// The `WWW-Authenticate` value of an auth_jwt refusal.
    pub jwt_challenge: Option<http::HeaderValue>,
}

impl Req {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: Arc<VarTable>,
        conn: Arc<ConnInfo>,
        conn_requests: u64,
        method: Method,
        version: Version,
        headers: HeaderMap,
        request_uri: String,
        uri: String,
        args: Option<String>,
        server_name: Arc<str>,
    ) -> Req {
        let slots = vec![Slot::Unset; table.len()];
        Req {
            table,
            slots,
            conn,
            conn_requests,
            method,
            version,
            headers,
            request_uri,
            uri,
            args,
            server_name,
            start: Instant::now(),
            start_time: SystemTime::now(),
            request_id: None,
            status: 0,
            bytes_sent: 0,
            body_bytes_sent: 0,
            request_length: 0,
            upstream: UpstreamInfo::default(),
            captures: Vec::new(),
            proxy_host: None,
            proxy_port: None,
            document_root: None,
            loc_conf: None,
            request_host: None,
            node: None,
            jwt: None,
            jwt_busy: false,
            jwt_challenge: None,
        }
    }

    /// The variable's value, computing and caching it on first use.
    pub fn var(&mut self, id: VarId) -> Option<String> {
        let idx = id.0 as usize;
        match self.slots.get(idx) {
            Some(Slot::Val(v)) => return v.clone(),
            Some(Slot::Busy) | None => return None,
            Some(Slot::Unset) => {}
        }
        let table = self.table.clone();
        let (value, cache) = match &table.defs[idx].kind {
            VarKind::Builtin { get, cache, .. } => (get(self), *cache),
            VarKind::Prefix { get, suffix, cache } => (get(self, suffix), *cache),
            VarKind::Set => (None, false),
            VarKind::Dyn(d) => {
                self.slots[idx] = Slot::Busy;
                let v = d.get(self);
                (v, true)
            }
        };
        self.slots[idx] = if cache {
            Slot::Val(value.clone())
        } else {
            Slot::Unset
        };
        value
    }

    pub fn append_var(&mut self, id: VarId, out: &mut String) {
        if let Some(Slot::Val(v)) = self.slots.get(id.0 as usize) {
            if let Some(v) = v {
                out.push_str(v);
            }
            return;
        }
        if let Some(v) = self.var(id) {
            out.push_str(&v);
        }
    }

    /// `set $name value` (and named captures).
    pub fn set_var(&mut self, id: VarId, value: String) {
        let table = self.table.clone();
        if let VarKind::Builtin { set: Some(set), .. } = &table.defs[id.0 as usize].kind {
            set(self, value);
            return;
        }
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            *slot = Slot::Val(Some(value));
        }
    }

    /// The `Host` the request names: request line authority, then `Host` header,
    /// lowercased and without port; `None` when neither is present.
    pub fn host_header(&self) -> Option<String> {
        if let Some(h) = &self.request_host {
            return Some(h.clone());
        }
        let raw = self
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())?;
        let host = strip_port(raw);
        Some(host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase())
    }

    /// `$request_id`, created on first use and the same for the rest of the request.
    pub fn var_request_id(&mut self) -> String {
        if self.request_id.is_none() {
            self.request_id = Some(crate::vars::http::new_request_id());
        }
        self.request_id.clone().unwrap_or_default()
    }

    /// Records a regex match: `$0..$9` for the templates that follow it, and named
    /// groups (`(?<name>...)`) as variables, as nginx does.
    pub fn set_captures(&mut self, c: Captured) {
        self.captures = c.positional;
        for (name, value) in c.named {
            if let Some(id) = self.table.id(&name) {
                self.set_var(id, value);
            }
        }
    }
}

/// What a regex match leaves for the rest of the request.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub positional: Vec<Option<String>>,
    pub named: Vec<(String, String)>,
}

impl Captured {
    pub fn new(rx: &regex::Regex, caps: &regex::Captures<'_>) -> Captured {
        let positional = caps
            .iter()
            .map(|m| m.map(|m| m.as_str().to_string()))
            .collect();
        let named = rx
            .capture_names()
            .flatten()
            .filter_map(|n| {
                caps.name(n)
                    .map(|m| (n.to_string(), m.as_str().to_string()))
            })
            .collect();
        Captured { positional, named }
    }
}

/// `host:port` → `host`, `[v6]:port` → `[v6]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[..i],
            None => host,
        }
    }
}
