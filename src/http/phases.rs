//! One request through nginx's phases: server selection, server rewrite, location
//! match, location rewrite (with `last` re-matching), access, content, error pages,
//! header filter, and the log phase when the body ends.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{FileBody, RespBody};
use super::error::{self, Fail, Kind, Side};
use super::location::Location;
use super::mime::MimeTypes;
use super::proxy::{self, Where};
use super::req::{ConnInfo, Req};
use super::rewrite::{self, Flow};
use super::static_files::{self, StaticOutcome, StaticRequest};
use super::{access, Content, HttpConf, LocConf, Server};

/// Internal redirects and rewrite `last`s allowed per request, as nginx's limit of 10.
const MAX_CYCLES: u32 = 10;

pub const SERVER_HEADER: &str = concat!("raftgate/", env!("CARGO_PKG_VERSION"));

/// What a pass through the phases produced.
pub(crate) enum Outcome {
    /// A complete response (proxied, static file): not subject to `error_page`.
    Response(Response<RespBody>),
    /// A status raftgate generates itself (with `return` text or a redirect target).
    Status(u16, Option<String>),
    Fail(Fail),
    /// `return 444`: close the connection without a response.
    Close,
}

/// The connection must be closed without an answer (`return 444`).
#[derive(Debug)]
pub struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by return 444")
    }
}

impl std::error::Error for CloseConnection {}

struct Pass<'a> {
    http: &'a HttpConf,
    server: &'a Server,
    /// The configuration in force (location's, or an `if`'s inside it).
    conf: Arc<LocConf>,
    loc: Option<Arc<Location>>,
    uri_changed: bool,
    cycles: u32,
    body: Option<Incoming>,
    node: Option<&'a crate::cluster::Node>,
    rt: &'a crate::runtime::Runtime,
}

pub async fn handle(
    http: Arc<HttpConf>,
    rt: Arc<crate::runtime::Runtime>,
    group: usize,
    conn: Arc<ConnInfo>,
    conn_requests: u64,
    request: Request<Incoming>,
) -> Result<Response<RespBody>, CloseConnection> {
    let (parts, body) = request.into_parts();
    let request_uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let (raw_path, args) = match request_uri.split_once('?') {
        Some((p, a)) => (p, Some(a.to_string())),
        None => (request_uri.as_str(), None),
    };
    let normalized = normalize_uri(raw_path);
    let lg = &http.listens[group];
    let parts_host = parts.uri.host().map(|h| h.to_ascii_lowercase());
    let host = parts_host.clone().or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| super::req::strip_port(h).to_ascii_lowercase())
    });
    let (server_idx, caps) = host
        .as_deref()
        .and_then(|h| lg.names.find(h))
        .unwrap_or((lg.default_server, None));
    let server = http.servers[server_idx].clone();
    let request_length = request_uri.len() as u64
        + parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>() as u64
        + 16;
    let mut req = Req::new(
        http.vars.clone(),
        conn,
        conn_requests,
        parts.method,
        parts.version,
        parts.headers,
        request_uri.clone(),
        normalized.clone().unwrap_or_else(|| raw_path.to_string()),
        args,
        server.name.clone(),
    );
    req.request_length = request_length;
    req.node = rt.node.clone();
    let zone = server
        .conf
        .status_zone
        .as_deref()
        .and_then(|z| http.status_zones.get(z).cloned());
    let in_flight = rt.metrics.request(zone, request_length);
    req.loc_conf = Some(server.conf.clone());
    req.request_host = parts_host;
    if let Some(c) = caps {
        req.set_captures(c);
    }
    let mut pass = Pass {
        http: &http,
        server: &server,
        conf: server.conf.clone(),
        loc: None,
        uri_changed: false,
        cycles: 0,
        body: Some(body),
        node: rt.node.as_deref(),
        rt: &rt,
    };
    let outcome = if normalized.is_none() {
        Outcome::Fail(Fail::new(
            Side::Client,
            Kind::BadRequest,
            "client sent invalid request URI",
        ))
    } else {
        process(&mut pass, &mut req, None).await
    };
    let outcome = error_pages(&mut pass, &mut req, outcome).await;
    // A 401 raftgate answers itself carries auth_jwt's challenge; an upstream's its own.
    let own = !matches!(outcome, Outcome::Response(_));
    let conf = pass.conf.clone();
    let mut resp = match outcome {
        Outcome::Response(r) => r,
        Outcome::Status(code, text) => status_response(&conf, &mut req, code, text),
        Outcome::Fail(f) => {
            if f.side != Side::Upstream {
                crate::log_info!(
                    "{f}, client: {}, request: \"{} {}\"",
                    req.conn.remote,
                    req.method,
                    req.request_uri
                );
            }
            if f.kind == Kind::ClientAbort {
                in_flight.discarded();
                req.status = 499;
                finish_log(&conf, req, 0);
                return Err(CloseConnection);
            }
            status_response(&conf, &mut req, f.status(), None)
        }
        Outcome::Close => {
            in_flight.discarded();
            req.status = 444;
            finish_log(&conf, req, 0);
            return Err(CloseConnection);
        }
    };
    if own && resp.status() == StatusCode::UNAUTHORIZED {
        let challenge = match req.jwt_challenge.take() {
            Some(c) => Some(c),
            None if conf.jwt.enabled().is_some() => crate::jwt::challenge_for(&mut req),
            None => None,
        };
        if let Some(c) = challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
    }
    header_filter(&conf, &mut req, &mut resp);
    let status = resp.status().as_u16();
    req.status = status;
    let header_bytes = 17
        + resp
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>() as u64;
    let targets = conf.access_log.clone().unwrap_or_default();
    resp.body_mut().on_finish(Box::new(move |sent, _complete| {
        in_flight.responded(status, sent + header_bytes);
        drop(in_flight);
        if !targets.is_empty() {
            let mut req = req;
            req.body_bytes_sent = sent;
            req.bytes_sent = sent + header_bytes;
            super::access_log::write(&targets, &mut req);
        }
    }));
    Ok(resp)
}

fn finish_log(conf: &LocConf, mut req: Req, sent: u64) {
    if let Some(t) = conf.access_log.as_deref() {
        req.body_bytes_sent = sent;
        super::access_log::write(t, &mut req);
    }
}

/// Server rewrites, location match, location rewrites, access, content. `named` jumps
/// straight to a named location (from `error_page ... @name`).
async fn process(p: &mut Pass<'_>, req: &mut Req, named: Option<Arc<Location>>) -> Outcome {
    let mut named = named;
    // A location's `rewrite ... last` goes back to location matching only; internal
    // redirects (index, error_page) start again from the server's rewrites (nginx).
    let mut skip_server_rewrite = false;
    loop {
        // A new pass (rewrite or internal redirect) has not served static content yet.
        req.document_root = None;
        if p.cycles > MAX_CYCLES {
            crate::log_error!(
                "rewrite or internal redirection cycle while processing \"{}\"",
                req.uri
            );
            return Outcome::Fail(Fail::new(
                Side::Internal,
                Kind::Cycle,
                "rewrite or internal redirection cycle",
            ));
        }
        let loc = match named.take() {
            Some(l) => Some(l),
            None if skip_server_rewrite => {
                skip_server_rewrite = false;
                find_location(p, req)
            }
            None => {
                p.conf = p.server.conf.clone();
                match rewrite::run(&p.server.script, req, &mut p.conf) {
                    Flow::Respond { status, text } => return respond(status, text),
                    Flow::Done { uri_changed } | Flow::Break { uri_changed } => {
                        p.uri_changed |= uri_changed
                    }
                    // `last` in server context acts as `break` (nginx).
                    Flow::Last => p.uri_changed = true,
                }
                find_location(p, req)
            }
        };
        p.loc = loc.clone();
        match &loc {
            Some(l) => {
                p.conf = l.conf.clone();
                // The location's variables (JWT claims) read its settings already in
                // its rewrite phase.
                req.loc_conf = Some(p.conf.clone());
                let flow = rewrite::run(&l.script, req, &mut p.conf);
                // An `if` that matched may have switched the configuration (its `root`).
                req.loc_conf = Some(p.conf.clone());
                match flow {
                    Flow::Respond { status, text } => return respond(status, text),
                    Flow::Last | Flow::Done { uri_changed: true } => {
                        p.uri_changed = true;
                        p.cycles += 1;
                        skip_server_rewrite = true;
                        continue;
                    }
                    Flow::Break { uri_changed } => p.uri_changed |= uri_changed,
                    Flow::Done { uri_changed: false } => {}
                }
            }
            None => p.conf = p.server.conf.clone(),
        }

        // As nginx: a body too large for the location is refused (413) before the
        // access phase (403, 401) looks at the request.
        let max = p.conf.max_body();
        if max > 0 {
            let len = req
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if len.is_some_and(|l| l > max) {
                crate::log_error!(
                    "client intended to send too large body: {} bytes",
                    len.unwrap_or_default()
                );
                return Outcome::Status(413, None);
            }
        }

        if let Some(rules) = p.conf.access.as_deref() {
            if !access::allowed(rules, req.conn.remote.ip()) {
                crate::log_error!(
                    "access forbidden by rule, client: {}, request: \"{} {}\"",
                    req.conn.remote,
                    req.method,
                    req.request_uri
                );
                return Outcome::Status(403, None);
            }
        }
        if p.conf.jwt.enabled().is_some() {
            if let Err(challenge) = crate::jwt::access(req) {
                req.jwt_challenge = Some(challenge);
                return Outcome::Status(401, None);
            }
        }
        let content = p.conf.content.clone();
        match content {
            Some(Content::Api { write }) => return api_content(p, req, write).await,
            Some(Content::Proxy(pp)) => {
                let prefix = p.loc.as_ref().and_then(|l| l.prefix().map(str::to_string));
                let at = Where {
                    prefix: prefix.as_deref(),
                    uri_changed: p.uri_changed,
                };
                let conf = p.conf.clone();
                return // Boxed: the proxy future is large, and moving it with every
                // request's state would cost more than one allocation.
                match Box::pin(proxy::forward(&pp, p.http, &conf, req, p.body.take(), at, p.node)).await {
                    Ok(r) => Outcome::Response(r),
                    Err(f) => Outcome::Fail(f),
                };
            }
            None => match static_content(p, req).await {
                Ok(StaticStep::Done(o)) => return o,
                Ok(StaticStep::Redirect(uri)) => {
                    req.uri = uri;
                    p.uri_changed = true;
                    p.cycles += 1;
                    continue;
                }
                Err(f) => return Outcome::Fail(f),
            },
        }
    }
}

fn find_location(p: &mut Pass<'_>, req: &mut Req) -> Option<Arc<Location>> {
    let Some(found) = p.server.locations.find(&req.uri) else {
        req.loc_conf = Some(p.server.conf.clone());
        return None;
    };
    if let Some(c) = found.captures {
        req.set_captures(c);
    }
    req.loc_conf = Some(found.loc.conf.clone());
    Some(found.loc)
}

/// The `api` content handler: reads the (bounded) body and hands the request to the API
/// on this process's cluster node.
async fn api_content(p: &mut Pass<'_>, req: &mut Req, write: bool) -> Outcome {
    let Some(node) = p.node else {
        return Outcome::Status(503, Some("the API needs a cluster node\n".into()));
    };
    let limit = p.conf.max_body();
    let mut body = bytes::BytesMut::new();
    if let Some(mut incoming) = p.body.take() {
        use http_body_util::BodyExt;
        while let Some(frame) = incoming.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        if limit > 0 && (body.len() + d.len()) as u64 > limit {
                            return Outcome::Status(413, None);
                        }
                        body.extend_from_slice(&d);
                    }
                }
                Err(_) => {
                    return Outcome::Fail(Fail::new(
                        Side::Client,
                        Kind::ClientAbort,
                        "client closed the request body",
                    ))
                }
            }
        }
    }
    // The API path is what follows the location's prefix: `location /api { api; }`
    // serves `/api/2/http/keyvals/` as `/2/http/keyvals/`.
    let uri = req.uri.clone();
    let rest = match p.loc.as_ref().and_then(|l| l.prefix()) {
        Some(prefix) => uri.strip_prefix(prefix).unwrap_or(&uri),
        None => uri.as_str(),
    };
    let path = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    let request_id = req.var_request_id();
    let generation = p.rt.current.load_full();
    let method = req.method.clone();
    let query = req.args.clone();
    let answer = crate::api::handle(
        node,
        crate::api::ApiRequest {
            method: &method,
            path: &path,
            query: query.as_deref(),
            body: body.freeze(),
            write,
            request_id: &request_id,
            full_path: &uri,
            stream_configured: p.http.stream_configured,
            local: crate::api::Local {
                http: Some(p.http),
                metrics: &p.rt.metrics,
                open_connections: p.rt.open_conns.load(std::sync::atomic::Ordering::Relaxed) as u64,
                generation: generation.number,
                loaded: generation.loaded,
                address: req.conn.local.ip().to_string(),
            },
        },
    )
    .await;
    let mut r = Response::new(RespBody::full(answer.body.clone()));
    *r.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !answer.body.is_empty() {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        );
    }
    Outcome::Response(r)
}

fn respond(status: u16, text: Option<String>) -> Outcome {
    if status == 444 {
        Outcome::Close
    } else {
        Outcome::Status(status, text)
    }
}

enum StaticStep {
    Done(Outcome),
    Redirect(String),
}

fn default_types() -> &'static Arc<MimeTypes> {
    static TYPES: OnceLock<Arc<MimeTypes>> = OnceLock::new();
    TYPES.get_or_init(|| Arc::new(MimeTypes::nginx_default()))
}

async fn static_content(p: &mut Pass<'_>, req: &mut Req) -> Result<StaticStep, Fail> {
    let root = match &p.conf.root {
        Some(t) => t.eval(req),
        None => String::new(),
    };
    req.document_root = Some(root.clone());
    let default_index = [String::from("index.html")];
    let index = p.conf.index.as_deref().unwrap_or(&default_index);
    let types = p
        .conf
        .types
        .as_ref()
        .unwrap_or_else(|| default_types())
        .clone();
    let default_type = p
        .conf
        .default_type
        .clone()
        .unwrap_or_else(|| "text/plain".to_string());
    let sreq = StaticRequest {
        root: Path::new(&root),
        uri: &req.uri,
        args: req.args.as_deref(),
        index,
        method: &req.method,
        headers: &req.headers,
        types: &types,
        default_type: &default_type,
    };
    let outcome = static_files::serve(&sreq)
        .await
        .map_err(|e| Fail::internal(format!("static file error: {e}")))?;
    let o = match outcome {
        StaticOutcome::File {
            mut file,
            len,
            content_type,
            last_modified,
            etag,
        } => {
            let range = if matches!(req.method, http::Method::GET | http::Method::HEAD)
                && if_range_matches(&req.headers, &etag, last_modified)
            {
                req.headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| parse_range(v, len))
            } else {
                None
            };
            let (status, start, count) = match range {
                None | Some(ByteRange::Ignore) => (StatusCode::OK, 0, len),
                Some(ByteRange::Part(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
                Some(ByteRange::Unsatisfiable) => {
                    let mut r = status_response(&p.conf, req, 416, None);
                    put(
                        r.headers_mut(),
                        header::CONTENT_RANGE,
                        &format!("bytes */{len}"),
                    );
                    return Ok(StaticStep::Done(Outcome::Response(r)));
                }
            };
            if start > 0 {
                use tokio::io::AsyncSeekExt;
                file.seek(std::io::SeekFrom::Start(start))
                    .await
                    .map_err(|e| Fail::internal(format!("seek failed: {e}")))?;
            }
            let mut r = Response::new(RespBody::stream(FileBody::new(file, count)));
            *r.status_mut() = status;
            let h = r.headers_mut();
            put(h, header::CONTENT_TYPE, &content_type);
            put(h, header::CONTENT_LENGTH, &count.to_string());
            if status == StatusCode::PARTIAL_CONTENT {
                put(
                    h,
                    header::CONTENT_RANGE,
                    &format!("bytes {}-{}/{len}", start, start + count - 1),
                );
            }
            put(
                h,
                header::LAST_MODIFIED,
                &httpdate::fmt_http_date(last_modified),
            );
            put(h, header::ETAG, &etag);
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            Outcome::Response(r)
        }
        StaticOutcome::NotModified {
            last_modified,
            etag,
            ..
        } => {
            let mut r = Response::new(RespBody::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            put(
                r.headers_mut(),
                header::LAST_MODIFIED,
                &httpdate::fmt_http_date(last_modified),
            );
            put(r.headers_mut(), header::ETAG, &etag);
            Outcome::Response(r)
        }
        StaticOutcome::RedirectDir { location } => Outcome::Status(301, Some(location)),
        StaticOutcome::Forbidden => {
            crate::log_error!("directory index of \"{}{}\" is forbidden", root, req.uri);
            Outcome::Status(403, None)
        }
        StaticOutcome::NotFound if crate::dashboard::serves(&req.uri) => {
            crate::dashboard::response(&req.method)
        }
        StaticOutcome::NotFound => {
            crate::log_error!(
                "open() \"{}{}\" failed (2: No such file or directory)",
                root,
                req.uri
            );
            Outcome::Status(404, None)
        }
        StaticOutcome::MethodNotAllowed => Outcome::Status(405, None),
        StaticOutcome::PreconditionFailed => Outcome::Status(412, None),
        StaticOutcome::InternalRedirect { uri } => return Ok(StaticStep::Redirect(uri)),
    };
    Ok(StaticStep::Done(o))
}

/// One `Range: bytes=...` request, as nginx's range filter reads it. Several ranges
/// are answered with the whole file (nginx would send multipart/byteranges).
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    Ignore,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(v: &str, len: u64) -> ByteRange {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return ByteRange::Ignore;
    };
    if spec.contains(',') {
        return ByteRange::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Ignore;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes
        (true, _, Some(n)) if n > 0 && len > 0 => ByteRange::Part(len.saturating_sub(n), len - 1),
        (true, _, _) => ByteRange::Unsatisfiable,
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if start >= len {
                return ByteRange::Unsatisfiable;
            }
            let end = end.map(|e| e.min(len - 1)).unwrap_or(len - 1);
            if end < start {
                return ByteRange::Ignore;
            }
            ByteRange::Part(start, end)
        }
        _ => ByteRange::Ignore,
    }
}

/// `If-Range`: serve a part only if the validator still matches.
fn if_range_matches(h: &http::HeaderMap, etag: &str, mtime: std::time::SystemTime) -> bool {
    match h.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) => httpdate::parse_http_date(v).ok() == Some(mtime),
    }
}

fn put(h: &mut http::HeaderMap, name: header::HeaderName, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

/// `error_page`: one internal redirect (or an external redirect) for a status raftgate
/// produced itself; responses from upstreams pass through untouched.
async fn error_pages(p: &mut Pass<'_>, req: &mut Req, outcome: Outcome) -> Outcome {
    let code = match &outcome {
        // `return CODE "text"` sends its text; only bare codes and redirects are replaced.
        Outcome::Status(c, Some(_)) if !matches!(*c, 301 | 302 | 303 | 307 | 308) => {
            return outcome
        }
        Outcome::Status(c, _) if *c >= 300 => *c,
        Outcome::Fail(f) if f.kind != Kind::ClientAbort => f.status(),
        _ => return outcome,
    };
    let Some(page) = p
        .conf
        .error_pages
        .as_deref()
        .and_then(|pages| pages.iter().find(|e| e.codes.contains(&code)))
        .cloned()
    else {
        return outcome;
    };
    let target = page.target.eval(req);
    if !(target.starts_with('/') || target.starts_with('@')) {
        let status = match page.overwrite {
            Some(Some(c)) if matches!(c, 301 | 302 | 303 | 307 | 308) => c,
            _ => 302,
        };
        return Outcome::Status(status, Some(target));
    }
    if req.method != http::Method::HEAD {
        req.method = http::Method::GET;
    }
    p.cycles += 1;
    p.uri_changed = true;
    let redirected = if target.starts_with('@') {
        let name = target.as_str();
        match p.server.locations.named.get(name).cloned() {
            Some(l) => Box::pin(process(p, req, Some(l))).await,
            None => {
                crate::log_error!("could not find named location \"{name}\"");
                return Outcome::Status(500, None);
            }
        }
    } else {
        let (path, args) = match target.split_once('?') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (target.clone(), None),
        };
        req.uri = path;
        if args.is_some() {
            req.args = args;
        }
        Box::pin(process(p, req, None)).await
    };
    let new_status = match page.overwrite {
        None => Some(code),
        Some(Some(c)) => Some(c),
        Some(None) => None,
    };
    match (redirected, new_status) {
        (Outcome::Response(mut r), Some(c)) => {
            if let Ok(s) = StatusCode::from_u16(c) {
                *r.status_mut() = s;
            }
            Outcome::Response(r)
        }
        (Outcome::Status(_, text), Some(c)) => Outcome::Status(c, text),
        (other, _) => other,
    }
}

/// A response for a status raftgate produces: `return` text, a redirect, or nginx's
/// built-in page for errors.
fn status_response(
    conf: &LocConf,
    req: &mut Req,
    code: u16,
    text: Option<String>,
) -> Response<RespBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(RespBody::empty());
    *resp.status_mut() = status;
    let is_redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
    match (is_redirect, text) {
        (true, Some(loc)) => {
            let loc = absolute_location(req, &loc);
            put(resp.headers_mut(), header::LOCATION, &loc);
            html(&mut resp, code);
        }
        (false, Some(body)) => {
            let ct = conf
                .default_type
                .clone()
                .unwrap_or_else(|| "text/plain".into());
            put(resp.headers_mut(), header::CONTENT_TYPE, &ct);
            put(
                resp.headers_mut(),
                header::CONTENT_LENGTH,
                &body.len().to_string(),
            );
            *resp.body_mut() = RespBody::full(body);
        }
        (_, None) if code >= 300 && code != 304 => html(&mut resp, code),
        _ => {}
    }
    resp
}

fn html(resp: &mut Response<RespBody>, code: u16) {
    let page = error::page(code);
    put(resp.headers_mut(), header::CONTENT_TYPE, "text/html");
    put(
        resp.headers_mut(),
        header::CONTENT_LENGTH,
        &page.len().to_string(),
    );
    *resp.body_mut() = RespBody::full(page);
}

/// nginx's `absolute_redirect on`: a relative `Location` gets scheme, host and port.
fn absolute_location(req: &Req, loc: &str) -> String {
    if !loc.starts_with('/') {
        return loc.to_string();
    }
    let host = req
        .host_header()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            if req.server_name.is_empty() {
                req.conn.local.ip().to_string()
            } else {
                req.server_name.to_string()
            }
        });
    let port = req.conn.local.port();
    let default_port = if req.conn.scheme == "https" { 443 } else { 80 };
    if port == default_port {
        format!("{}://{}{}", req.conn.scheme, host, loc)
    } else {
        format!("{}://{}:{}{}", req.conn.scheme, host, port, loc)
    }
}

/// `Server`, and `add_header` for the statuses nginx adds them to (any with `always`).
fn header_filter(conf: &LocConf, req: &mut Req, resp: &mut Response<RespBody>) {
    let server = if conf.server_tokens.unwrap_or(true) {
        SERVER_HEADER
    } else {
        "raftgate"
    };
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(server));
    let Some(list) = conf.add_headers.as_deref() else {
        return;
    };
    let code = resp.status().as_u16();
    let ok = matches!(
        code,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    );
    req.status = code;
    for h in list {
        if !(ok || h.always) {
            continue;
        }
        let v = h.value.eval(req);
        if v.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(h.name.clone(), v);
        }
    }
}

/// Decodes `%XX`, merges slashes and resolves `.`/`..` as nginx does; `None` when the
/// path climbs above the root or is not a path at all.
pub fn normalize_uri(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    // Most URIs need nothing done: no escapes, no empty, `.` or `..` segments.
    if !raw.contains('%') && !raw.contains("//") && !raw.contains("/.") {
        return Some(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    decoded.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => return None,
            }
        }
        if bytes[i] == b'%' {
            return None;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    if decoded.contains(&0) {
        return None;
    }
    let path = String::from_utf8_lossy(&decoded).into_owned();
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut segs: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop()?;
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{normalize_uri, parse_range, ByteRange};

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), ByteRange::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), ByteRange::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), ByteRange::Ignore);
        assert_eq!(parse_range("items=0-1", 100), ByteRange::Ignore);
        assert_eq!(parse_range("bytes=9-2", 100), ByteRange::Ignore);
        assert_eq!(parse_range("bytes=x-2", 100), ByteRange::Ignore);
    }

    #[test]
    fn uri_normalisation() {
        assert_eq!(normalize_uri("/a//b/./c/../d").as_deref(), Some("/a/b/d"));
        assert_eq!(normalize_uri("/a%20b/").as_deref(), Some("/a b/"));
        assert_eq!(normalize_uri("/").as_deref(), Some("/"));
        assert_eq!(normalize_uri("/a/..").as_deref(), Some("/"));
        assert_eq!(normalize_uri("/%2e%2e/etc"), None);
        assert_eq!(normalize_uri("/../x"), None);
        assert_eq!(normalize_uri("/%zz"), None);
        assert_eq!(normalize_uri("/a%00"), None);
        assert_eq!(normalize_uri("x"), None);
    }
}
