//! Paths and query strings of the API, as pure functions.
//!
//! The path is what follows the `api` location's prefix, already decoded and with slashes
//! merged as nginx's `$uri` is; empty segments are skipped, so a trailing slash is accepted
//! on every path (`/2/http/keyvals/zone/`, as nginx-plus-go-client sends for PATCH and
//! DELETE) and the spec's collection paths work without theirs (`/2/http/keyvals`).

use http::Method;
use raftgate_raft::{Kind, Ref};

use super::error::ApiError;

/// The API version raftgate speaks; `GET` of the prefix lists it.
pub const VERSIONS: [u32; 1] = [2];

/// The endpoints under `/2/`: NGINX's, in its order, then raftgate's `cluster`. `stream`
/// is listed whether or not a `stream {}` block exists, as nginx does; its endpoints then
/// answer 404 `StreamNotConfigured`.
pub const ROOT_ENDPOINTS: [&str; 8] = [
    "nginx",
    "processes",
    "connections",
    "ssl",
    "slabs",
    "http",
    "stream",
    "cluster",
];
/// The endpoints under `/2/http/`.
pub const HTTP_ENDPOINTS: [&str; 5] =
    ["requests", "server_zones", "caches", "upstreams", "keyvals"];
/// The endpoints under `/2/stream/`.
pub const STREAM_ENDPOINTS: [&str; 3] = ["server_zones", "upstreams", "keyvals"];

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The prefix itself: the list of supported versions.
    Versions,
    /// `/2/`: the root endpoints.
    Root,
    /// `/2/http/` or `/2/stream/`: that block's endpoints.
    Block(Kind),
    /// `/2/http/keyvals/`: every zone of the kind.
    Keyvals(Kind),
    /// `/2/http/keyvals/{zone}`.
    Zone(Ref),
    /// `/2/nginx`.
    Nginx,
    /// `/2/processes`.
    Processes,
    /// `/2/connections`.
    Connections,
    /// `/2/ssl`.
    Ssl,
    /// `/2/slabs/`.
    Slabs,
    /// `/2/slabs/{zone}`.
    Slab(String),
    /// `/2/http/requests`.
    Requests,
    /// `/2/http/server_zones/`, `/2/stream/server_zones/`.
    ServerZones(Kind),
    /// `/2/http/server_zones/{zone}`.
    ServerZone(Kind, String),
    /// `/2/http/caches/`.
    Caches,
    /// `/2/http/caches/{zone}`.
    Cache(String),
    /// `/2/http/upstreams/`.
    Upstreams(Kind),
    /// `/2/http/upstreams/{name}/`.
    Upstream(Ref),
    /// `/2/http/upstreams/{name}/servers/`.
    Servers(Ref),
    /// `/2/http/upstreams/{name}/servers/{id}`, the id as written.
    Server(Ref, String),
    /// `/2/cluster`: raftgate's cluster status.
    Cluster,
    /// `/2/cluster/nodes`: the members; POST adds one.
    ClusterNodes,
    /// `/2/cluster/nodes/{id}`, the id as written; DELETE removes it.
    ClusterNode(String),
    /// `/2/cluster/leader`: the leader; POST hands leadership to another voter.
    ClusterLeader,
    /// `/2/cluster/snapshot`: GET takes a backup, PUT restores one.
    ClusterSnapshot,
}

const READ: &[Method] = &[Method::GET, Method::HEAD];
const RESET: &[Method] = &[Method::GET, Method::HEAD, Method::DELETE];
const SERVER: &[Method] = &[Method::GET, Method::HEAD, Method::PATCH, Method::DELETE];
const NODES: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const NODE: &[Method] = &[Method::GET, Method::HEAD, Method::DELETE];
const LEADER: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const SNAPSHOT: &[Method] = &[Method::GET, Method::HEAD, Method::PUT];
const ZONE: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
];

impl Route {
    /// The methods the path has operations for. HEAD is served as GET (the caller sends
    /// no body for it).
    pub fn methods(&self) -> &'static [Method] {
        match self {
            Route::Zone(_) => ZONE,
            Route::ClusterNodes | Route::Servers(_) => NODES,
            Route::ClusterNode(_) => NODE,
            Route::ClusterLeader => LEADER,
            Route::ClusterSnapshot => SNAPSHOT,
            Route::Processes
            | Route::Connections
            | Route::Ssl
            | Route::Slab(_)
            | Route::Requests
            | Route::ServerZone(..)
            | Route::Cache(_)
            | Route::Upstream(_) => RESET,
            Route::Server(..) => SERVER,
            _ => READ,
        }
    }

    /// Whether the path is under `/2/stream/`.
    pub fn is_stream(&self) -> bool {
        match self {
            Route::Versions
            | Route::Root
            | Route::Nginx
            | Route::Processes
            | Route::Connections
            | Route::Ssl
            | Route::Slabs
            | Route::Slab(_)
            | Route::Requests
            | Route::Caches
            | Route::Cache(_)
            | Route::Cluster
            | Route::ClusterNodes
            | Route::ClusterNode(_)
            | Route::ClusterLeader
            | Route::ClusterSnapshot => false,
            Route::Block(k) | Route::Keyvals(k) | Route::ServerZones(k) | Route::Upstreams(k) => {
                *k == Kind::Stream
            }
            Route::ServerZone(k, _) => *k == Kind::Stream,
            Route::Zone(z) | Route::Upstream(z) | Route::Servers(z) | Route::Server(z, _) => {
                z.kind == Kind::Stream
            }
        }
    }
}

/// Whether `m` changes state: what `api write=off` refuses.
pub fn is_write(m: &Method) -> bool {
    m == Method::POST || m == Method::PATCH || m == Method::DELETE || m == Method::PUT
}

/// What `path` names, or 404 `UnknownVersion` / `PathNotFound`.
pub fn route(path: &str) -> Result<Route, ApiError> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let Some(version) = segments.next() else {
        return Ok(Route::Versions);
    };
    if version != "2" {
        return Err(ApiError::unknown_version());
    }
    let kind = match segments.next() {
        None => return Ok(Route::Root),
        Some("cluster") => return cluster_route(segments),
        Some("nginx") => return end(Route::Nginx, segments),
        Some("processes") => return end(Route::Processes, segments),
        Some("connections") => return end(Route::Connections, segments),
        Some("ssl") => return end(Route::Ssl, segments),
        Some("slabs") => {
            return match segments.next() {
                None => Ok(Route::Slabs),
                Some(z) => end(Route::Slab(z.to_string()), segments),
            }
        }
        Some("http") => Kind::Http,
        Some("stream") => Kind::Stream,
        Some(_) => return Err(ApiError::path_not_found()),
    };
    let named = |name: &str| Ref {
        kind,
        name: name.to_string(),
    };
    match (kind, segments.next()) {
        (_, None) => Ok(Route::Block(kind)),
        (Kind::Http, Some("requests")) => end(Route::Requests, segments),
        (Kind::Http, Some("caches")) => match segments.next() {
            None => Ok(Route::Caches),
            Some(c) => end(Route::Cache(c.to_string()), segments),
        },
        (_, Some("server_zones")) => match segments.next() {
            None => Ok(Route::ServerZones(kind)),
            Some(z) => end(Route::ServerZone(kind, z.to_string()), segments),
        },
        (_, Some("keyvals")) => match segments.next() {
            None => Ok(Route::Keyvals(kind)),
            Some(z) => end(Route::Zone(named(z)), segments),
        },
        (_, Some("upstreams")) => match (segments.next(), segments.next(), segments.next()) {
            (None, ..) => Ok(Route::Upstreams(kind)),
            (Some(u), None, _) => Ok(Route::Upstream(named(u))),
            (Some(u), Some("servers"), None) => Ok(Route::Servers(named(u))),
            (Some(u), Some("servers"), Some(id)) => {
                end(Route::Server(named(u), id.to_string()), segments)
            }
            _ => Err(ApiError::path_not_found()),
        },
        _ => Err(ApiError::path_not_found()),
    }
}

/// `route` if nothing follows it.
fn end<'a>(route: Route, mut rest: impl Iterator<Item = &'a str>) -> Result<Route, ApiError> {
    match rest.next() {
        None => Ok(route),
        Some(_) => Err(ApiError::path_not_found()),
    }
}

fn cluster_route<'a>(mut segments: impl Iterator<Item = &'a str>) -> Result<Route, ApiError> {
    let route = match (segments.next(), segments.next()) {
        (None, _) => Route::Cluster,
        (Some("nodes"), None) => Route::ClusterNodes,
        (Some("nodes"), Some(id)) => Route::ClusterNode(id.to_string()),
        (Some("leader"), None) => Route::ClusterLeader,
        (Some("snapshot"), None) => Route::ClusterSnapshot,
        _ => return Err(ApiError::path_not_found()),
    };
    match segments.next() {
        None => Ok(route),
        Some(_) => Err(ApiError::path_not_found()),
    }
}

/// Query arguments in order, names and values percent-decoded.
///
/// As nginx's `$arg_` lookups: the first occurrence of a name wins; `+` is not a space;
/// a malformed `%` escape is kept as written; bytes that do not decode to UTF-8 are
/// replaced (no stored key can contain them). A bare `name` (no `=`) has the empty value.
#[derive(Debug, Default)]
pub struct Query {
    args: Vec<(String, String)>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let args = query
            .unwrap_or("")
            .split('&')
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('=') {
                Some((n, v)) => (decode(n), decode(v)),
                None => (decode(a), String::new()),
            })
            .collect();
        Query { args }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(path: &str) -> &'static str {
        route(path).expect_err("refused").code
    }

    #[test]
    fn versions_root_and_blocks() {
        assert_eq!(route(""), Ok(Route::Versions));
        assert_eq!(route("/"), Ok(Route::Versions));
        assert_eq!(route("/2"), Ok(Route::Root));
        assert_eq!(route("/2/"), Ok(Route::Root));
        assert_eq!(route("/2/http"), Ok(Route::Block(Kind::Http)));
        assert_eq!(route("/2/http/"), Ok(Route::Block(Kind::Http)));
        assert_eq!(route("/2/stream/"), Ok(Route::Block(Kind::Stream)));
    }

    #[test]
    fn keyvals_with_and_without_trailing_slashes() {
        for p in ["/2/http/keyvals", "/2/http/keyvals/", "/2//http//keyvals//"] {
            assert_eq!(route(p), Ok(Route::Keyvals(Kind::Http)), "{p}");
        }
        assert_eq!(
            route("/2/stream/keyvals/"),
            Ok(Route::Keyvals(Kind::Stream))
        );
        for p in ["/2/http/keyvals/one", "/2/http/keyvals/one/"] {
            assert_eq!(route(p), Ok(Route::Zone(Ref::http("one"))), "{p}");
        }
        assert_eq!(
            route("/2/stream/keyvals/one"),
            Ok(Route::Zone(Ref::stream("one")))
        );
    }

    #[test]
    fn unknown_versions_and_paths() {
        for p in [
            "/1",
            "/1/http/keyvals/",
            "/9/",
            "/x",
            "/02",
            "/2.0/http",
            "/v2",
        ] {
            assert_eq!(code(p), "UnknownVersion", "{p}");
        }
        for p in [
            "/2/nginx/x",
            "/2/cluster/leader/1",
            "/2/cluster/nodes/1/x",
            "/2/http/upstreams/u/x",
            "/2/http/upstreams/u/servers/1/x",
            "/2/http/keyval",
            "/2/HTTP/keyvals/",
            "/2/stream/requests",
            "/2/stream/caches/",
            "/2/slabs/z/x",
            "/2/http/keyvals/one/two",
            "/2/http/keyvals/one/two/",
        ] {
            assert_eq!(code(p), "PathNotFound", "{p}");
            assert_eq!(route(p).expect_err("404").status, 404);
        }
    }

    #[test]
    fn every_v2_endpoint_with_and_without_trailing_slashes() {
        let table = [
            ("/2/nginx", Route::Nginx, READ),
            ("/2/processes", Route::Processes, RESET),
            ("/2/connections/", Route::Connections, RESET),
            ("/2/ssl", Route::Ssl, RESET),
            ("/2/slabs/", Route::Slabs, READ),
            ("/2/slabs/kv", Route::Slab("kv".into()), RESET),
            ("/2/http/requests", Route::Requests, RESET),
            ("/2/http/server_zones", Route::ServerZones(Kind::Http), READ),
            (
                "/2/http/server_zones/f/",
                Route::ServerZone(Kind::Http, "f".into()),
                RESET,
            ),
            ("/2/http/caches/", Route::Caches, READ),
            ("/2/http/caches/c", Route::Cache("c".into()), RESET),
            ("/2/http/upstreams", Route::Upstreams(Kind::Http), READ),
            (
                "/2/http/upstreams/b/",
                Route::Upstream(Ref::http("b")),
                RESET,
            ),
            (
                "/2/http/upstreams/b/servers",
                Route::Servers(Ref::http("b")),
                NODES,
            ),
            (
                "/2/http/upstreams/b/servers/3/",
                Route::Server(Ref::http("b"), "3".into()),
                SERVER,
            ),
            (
                "/2/stream/server_zones/",
                Route::ServerZones(Kind::Stream),
                READ,
            ),
            (
                "/2/stream/upstreams/t/servers/",
                Route::Servers(Ref::stream("t")),
                NODES,
            ),
        ];
        for (path, want, methods) in table {
            let got = route(path).expect(path);
            assert_eq!(got, want, "{path}");
            assert_eq!(got.methods(), methods, "{path}");
            assert_eq!(got.is_stream(), path.starts_with("/2/stream"), "{path}");
        }
    }

    #[test]
    fn cluster_paths() {
        for p in ["/2/cluster", "/2/cluster/"] {
            assert_eq!(route(p), Ok(Route::Cluster), "{p}");
        }
        assert_eq!(route("/2/cluster/nodes/"), Ok(Route::ClusterNodes));
        assert_eq!(
            route("/2/cluster/nodes/4"),
            Ok(Route::ClusterNode("4".into()))
        );
        assert_eq!(Route::ClusterNodes.methods(), NODES);
        assert_eq!(Route::ClusterNode("4".into()).methods(), NODE);
        assert_eq!(route("/2/cluster/leader"), Ok(Route::ClusterLeader));
        assert_eq!(Route::ClusterLeader.methods(), LEADER);
        assert_eq!(route("/2/cluster/snapshot/"), Ok(Route::ClusterSnapshot));
        assert_eq!(Route::ClusterSnapshot.methods(), SNAPSHOT);
        assert_eq!(Route::Cluster.methods(), READ);
        assert!(!Route::Cluster.is_stream());
    }

    #[test]
    fn methods_per_route() {
        assert_eq!(Route::Versions.methods(), READ);
        assert_eq!(Route::Keyvals(Kind::Http).methods(), READ);
        assert_eq!(Route::Zone(Ref::http("z")).methods(), ZONE);
        assert!(Route::Zone(Ref::stream("z")).is_stream());
        assert!(Route::Block(Kind::Stream).is_stream());
        assert!(!Route::Keyvals(Kind::Http).is_stream());
        assert!(!Route::Root.is_stream());
        for m in [Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            assert!(is_write(&m), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_write(&m), "{m}");
        }
    }

    #[test]
    fn query_arguments() {
        let q = Query::parse(Some("key=a%20b&fields=&key=second&consistency=local&bare"));
        assert_eq!(q.get("key"), Some("a b"));
        assert_eq!(q.get("fields"), Some(""));
        assert_eq!(q.get("consistency"), Some("local"));
        assert_eq!(q.get("bare"), Some(""));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse(None).get("key"), None);
        assert_eq!(Query::parse(Some("")).get("key"), None);
        let q = Query::parse(Some("key=a+b%2&x=%zz%&y=%C3%A9%e2%82%ac&z=%ff"));
        assert_eq!(q.get("key"), Some("a+b%2"));
        assert_eq!(q.get("x"), Some("%zz%"));
        assert_eq!(q.get("y"), Some("é€"));
        assert_eq!(q.get("z"), Some("\u{fffd}"));
        assert_eq!(Query::parse(Some("k%65y=v")).get("key"), Some("v"));
    }
}
