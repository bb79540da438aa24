//! The HTTP side: configuration types, the request phases, proxying and static files.

pub mod access;
pub mod access_log;
pub mod body;
pub mod build;
pub mod directives;
pub mod error;
pub mod location;
pub mod mime;
pub mod phases;
pub mod proxy;
pub mod req;
pub mod rewrite;
pub mod server;
pub mod server_names;
pub mod static_files;
pub mod sticky;
pub mod upconn;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::upstream::Upstream;
use crate::vars::{Template, VarTable};
use access_log::LogTarget;
use location::Locations;
use rewrite::Script;
use server_names::ServerNames;

/// The compiled `http {}` block of one configuration generation.
#[derive(Debug)]
pub struct HttpConf {
    pub servers: Vec<Arc<Server>>,
    /// One entry per distinct listen address, with the servers that share it.
    pub listens: Vec<ListenGroup>,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub vars: Arc<VarTable>,
    /// Whether any variable reads upstream response headers (they are kept only then).
    pub keep_upstream_headers: bool,
    /// `keyval_zone` declarations, proposed to the cluster when this configuration loads.
    pub keyval_zones: Vec<crate::keyval::ZoneDecl>,
    /// Whether the configuration has a `stream {}` block: the API's `/stream/`
    /// endpoints answer 404 `StreamNotConfigured` without one.
    pub stream_configured: bool,
    /// Idle connections of the groups that have `keepalive`.
    pub pools: HashMap<String, Arc<upconn::Pool>>,
    /// The servers' `status_zone`s. Fresh counters at build; the runtime swaps in the
    /// ones of the zones it already counts before the configuration goes live.
    pub status_zones: HashMap<String, Arc<crate::metrics::ZoneStats>>,
}

#[derive(Debug, Clone)]
pub struct ListenGroup {
    pub addr: SocketAddr,
    /// Index into `HttpConf::servers` of the default server for this address.
    pub default_server: usize,
    pub names: ServerNames,
    /// Options that need the socket (`backlog=`, `reuseport`): from the first `listen`.
    pub backlog: Option<i32>,
    pub reuseport: bool,
}

#[derive(Debug)]
pub struct Server {
    /// The first `server_name` (`$server_name`), "" when none.
    pub name: Arc<str>,
    pub conf: Arc<LocConf>,
    pub script: Script,
    pub locations: Locations,
    pub at: String,
}

/// Settings that are inherited from `http` to `server` to `location` (and into `if`),
/// nginx style: a level that sets a directive replaces the inherited value as a whole.
#[derive(Debug, Clone, Default)]
pub struct LocConf {
    pub root: Option<Template>,
    pub index: Option<Vec<String>>,
    pub add_headers: Option<Vec<AddHeader>>,
    pub access: Option<Vec<access::Rule>>,
    pub access_log: Option<Vec<LogTarget>>,
    pub error_pages: Option<Vec<ErrorPage>>,
    pub client_max_body_size: Option<u64>,
    pub client_body_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_requests: Option<u64>,
    pub default_type: Option<String>,
    pub types: Option<Arc<mime::MimeTypes>>,
    pub proxy: ProxyConf,
    /// What produces the response here; inherited only into `if` blocks.
    pub content: Option<Content>,
    pub status_zone: Option<String>,
    /// `server_tokens`: whether `Server` carries the version.
    pub server_tokens: Option<bool>,
    /// `auth_jwt`, its keys and leeway, each inherited on its own.
    pub jwt: crate::jwt::JwtLoc,
}

#[derive(Debug, Clone, Default)]
pub struct ProxyConf {
    pub set_headers: Option<Vec<(HeaderName, Template)>>,
    pub http_version: Option<http::Version>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub next_upstream: Option<proxy::NextUpstream>,
    pub next_upstream_tries: Option<u32>,
    pub buffering: Option<bool>,
}

#[derive(Debug, Clone)]
pub enum Content {
    Proxy(Arc<proxy::ProxyPass>),
    /// `api [write=on|off]`: the NGINX Plus API v2 on the replicated state.
    Api {
        write: bool,
    },
}

#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: HeaderName,
    pub value: Template,
    pub always: bool,
}

#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    /// `=CODE` answers with CODE; `=` alone takes the status of the redirected request.
    pub overwrite: Option<Option<u16>>,
    /// A URI, a `@named` location, or a URL (a redirect).
    pub target: Template,
}

pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(75);
/// nginx's default `keepalive_requests` since 1.19.10.
pub const DEFAULT_KEEPALIVE_REQUESTS: u64 = 1000;

impl LocConf {
    /// nginx's merge: every field this level did not set comes from its parent.
    /// `content` is inherited only by `if` blocks (`inherit_content`).
    pub fn merge_from(&mut self, parent: &LocConf, inherit_content: bool) {
        macro_rules! inherit {
            ($($f:ident).+) => { if self.$($f).+.is_none() { self.$($f).+ = parent.$($f).+.clone(); } };
        }
        inherit!(root);
        inherit!(index);
        inherit!(add_headers);
        inherit!(access);
        inherit!(access_log);
        inherit!(error_pages);
        inherit!(client_max_body_size);
        inherit!(client_body_timeout);
        inherit!(keepalive_timeout);
        inherit!(keepalive_requests);
        inherit!(default_type);
        inherit!(types);
        inherit!(proxy.set_headers);
        inherit!(proxy.http_version);
        inherit!(proxy.connect_timeout);
        inherit!(proxy.read_timeout);
        inherit!(proxy.send_timeout);
        inherit!(proxy.next_upstream);
        inherit!(proxy.next_upstream_tries);
        inherit!(proxy.buffering);
        inherit!(status_zone);
        inherit!(server_tokens);
        inherit!(jwt.auth);
        inherit!(jwt.keys);
        inherit!(jwt.leeway);
        if inherit_content {
            inherit!(content);
        }
    }

    pub fn max_body(&self) -> u64 {
        self.client_max_body_size.unwrap_or(DEFAULT_MAX_BODY)
    }
}
