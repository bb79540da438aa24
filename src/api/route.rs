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

/// The endpoints under `/2/`, as far as raftgate serves them. `stream` is listed whether or
/// not a `stream {}` block exists, as nginx does; its endpoints then answer 404
/// `StreamNotConfigured`.
pub const ROOT_ENDPOINTS: [&str; 3] = ["cluster", "http", "stream"];
/// The endpoints under `/2/http/` and `/2/stream/`.
pub const KIND_ENDPOINTS: [&str; 1] = ["keyvals"];

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
    /// `/2/cluster`: raftgate's cluster status.
    Cluster,
    /// `/2/cluster/nodes`: the members; POST adds one.
    ClusterNodes,
    /// `/2/cluster/nodes/{id}`, the id as written; DELETE removes it.
    ClusterNode(String),
}

const READ: &[Method] = &[Method::GET, Method::HEAD];
const NODES: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const NODE: &[Method] = &[Method::GET, Method::HEAD, Method::DELETE];
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
            Route::ClusterNodes => NODES,
            Route::ClusterNode(_) => NODE,
            _ => READ,
        }
    }

    /// Whether the path is under `/2/stream/`.
    pub fn is_stream(&self) -> bool {
        match self {
            Route::Versions
            | Route::Root
            | Route::Cluster
            | Route::ClusterNodes
            | Route::ClusterNode(_) => false,
            Route::Block(k) | Route::Keyvals(k) => *k == Kind::Stream,
            Route::Zone(z) => z.kind == Kind::Stream,
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
        Some("http") => Kind::Http,
        Some("stream") => Kind::Stream,
        Some(_) => return Err(ApiError::path_not_found()),
    };
    match segments.next() {
        None => return Ok(Route::Block(kind)),
        Some("keyvals") => {}
        Some(_) => return Err(ApiError::path_not_found()),
    }
    let Some(zone) = segments.next() else {
        return Ok(Route::Keyvals(kind));
    };
    if segments.next().is_some() {
        return Err(ApiError::path_not_found());
    }
    Ok(Route::Zone(Ref {
        kind,
        name: zone.to_string(),
    }))
}

fn cluster_route<'a>(mut segments: impl Iterator<Item = &'a str>) -> Result<Route, ApiError> {
    let route = match (segments.next(), segments.next()) {
        (None, _) => Route::Cluster,
        (Some("nodes"), None) => Route::ClusterNodes,
        (Some("nodes"), Some(id)) => Route::ClusterNode(id.to_string()),
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
            "/2/nginx",
            "/2/cluster/leader",
            "/2/cluster/nodes/1/x",
            "/2/http/upstreams/",
            "/2/http/keyval",
            "/2/HTTP/keyvals/",
            "/2/stream/server_zones/",
            "/2/http/keyvals/one/two",
            "/2/http/keyvals/one/two/",
        ] {
            assert_eq!(code(p), "PathNotFound", "{p}");
            assert_eq!(route(p).expect_err("404").status, 404);
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
