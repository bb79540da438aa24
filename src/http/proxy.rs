//! `proxy_pass`: the request line and headers nginx would send, server selection with
//! `proxy_next_upstream` retries and passive health, and the response streamed back.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;

use super::body::{BodyFault, ReqBody, RespBody};
use super::error::{Fail, Kind, Side};
use super::req::Req;
use super::upconn::{self, Pool, UpstreamBody};
use super::{HttpConf, LocConf};
use crate::config::{Cx, Directive};
use crate::upstream::conf::Method as Balance;
use crate::upstream::{SelectCtx, Tried, Upstream};
use crate::vars::Template;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct ProxyPass {
    pub target: Target,
    /// The URI part of the URL (`Some("/")` for `http://b/`), which replaces the
    /// matched location prefix.
    pub uri: Option<String>,
    /// `$proxy_host`: the group name, or `host[:port]` with port 80 left out.
    pub proxy_host: String,
    pub proxy_port: u16,
    pub at: String,
    /// The group and its connection pool, linked once when the configuration is built
    /// so requests do not look them up by name.
    pub linked: OnceLock<Linked>,
}

#[derive(Debug)]
pub struct Linked {
    pub group: Arc<Upstream>,
    pub pool: Option<Arc<Pool>>,
    /// `Host: $proxy_host`, prebuilt.
    pub host: Option<HeaderValue>,
}

#[derive(Debug)]
pub enum Target {
    /// An `upstream` block or an implicit group for `host:port`, by name in
    /// `HttpConf::upstreams`.
    Group(String),
    /// A URL with variables, evaluated per request.
    Dynamic(Template),
}

impl ProxyPass {
    pub fn parse(cx: &mut Cx, d: &Directive) -> Result<ProxyPass, String> {
        let url = d.arg(0);
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(
                "\"https\" upstreams are not supported yet: TLS arrives in a later release".into(),
            );
        } else {
            return Err(format!("invalid URL prefix in \"{url}\""));
        };
        if url.contains('$') {
            let t = cx.template(d, url).ok_or("")?;
            return Ok(ProxyPass {
                target: Target::Dynamic(t),
                uri: None,
                proxy_host: String::new(),
                proxy_port: 80,
                at: d.at(),
                linked: OnceLock::new(),
            });
        }
        let (host, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if host.is_empty() {
            return Err(format!(
                "no host in \"{url}\" of the \"proxy_pass\" directive"
            ));
        }
        let port = host_port(host);
        let proxy_host = match host.strip_suffix(":80") {
            Some(h) => h.to_string(),
            None => host.to_string(),
        };
        cx.upstream_refs.push((host.to_string(), d.at()));
        Ok(ProxyPass {
            target: Target::Group(host.to_string()),
            uri,
            proxy_host,
            proxy_port: port,
            at: d.at(),
            linked: OnceLock::new(),
        })
    }
}

fn host_port(host: &str) -> u16 {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || host.ends_with(']') => p.parse().unwrap_or(80),
        _ => 80,
    }
}

/// Where one request goes: the group, its pool, and a prebuilt `Host` value.
struct Routed {
    group: Arc<Upstream>,
    pool: Option<Arc<Pool>>,
    host: Option<HeaderValue>,
}

/// `proxy_next_upstream`: which failures move a request to the next server.
#[derive(Debug, Clone, Copy)]
pub struct NextUpstream {
    pub error: bool,
    pub timeout: bool,
    pub invalid_header: bool,
    pub non_idempotent: bool,
    /// Status codes (500, 502, 503, 504, 403, 404, 429) that are retried.
    pub statuses: [bool; 7],
    pub off: bool,
}

const RETRY_STATUSES: [u16; 7] = [500, 502, 503, 504, 403, 404, 429];

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            non_idempotent: false,
            statuses: [false; 7],
            off: false,
        }
    }
}

impl NextUpstream {
    pub fn parse(words: &[&str]) -> Result<NextUpstream, String> {
        let mut n = NextUpstream {
            error: false,
            timeout: false,
            ..Default::default()
        };
        for w in words {
            match *w {
                "error" => n.error = true,
                "timeout" => n.timeout = true,
                "invalid_header" => n.invalid_header = true,
                "non_idempotent" => n.non_idempotent = true,
                "off" => n.off = true,
                s => match s
                    .strip_prefix("http_")
                    .and_then(|c| c.parse::<u16>().ok())
                    .and_then(|c| RETRY_STATUSES.iter().position(|x| *x == c))
                {
                    Some(i) => n.statuses[i] = true,
                    None => return Err(format!("invalid value \"{s}\"")),
                },
            }
        }
        if n.off && words.len() > 1 {
            return Err("\"off\" cannot be combined with other values".into());
        }
        Ok(n)
    }

    fn retries_status(&self, status: u16) -> bool {
        RETRY_STATUSES
            .iter()
            .position(|s| *s == status)
            .is_some_and(|i| self.statuses[i])
    }

    fn retries(&self, f: &Fail) -> bool {
        !self.off
            && match f.kind {
                Kind::UpstreamError => self.error,
                Kind::UpstreamTimeout => self.timeout,
                Kind::UpstreamInvalid => self.invalid_header || self.error,
                _ => false,
            }
    }
}

/// Hop-by-hop headers never forwarded in either direction.
const HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What the phases know about where the request is, for the URI rules.
pub struct Where<'a> {
    /// Prefix of the matched location, when it is a prefix/exact one.
    pub prefix: Option<&'a str>,
    /// The URI was changed by a rewrite or an internal redirect.
    pub uri_changed: bool,
}

/// Sends the request to the group and returns the upstream's response, or the failure
/// that the phases turn into 502/504.
pub async fn forward(
    pass: &ProxyPass,
    http: &HttpConf,
    conf: &LocConf,
    req: &mut Req,
    body: Option<Incoming>,
    at: Where<'_>,
    node: Option<&crate::cluster::Node>,
) -> Result<Response<RespBody>, Fail> {
    // Which group, and what to send as the request target.
    let (group, uri) = match &pass.target {
        Target::Group(name) => {
            let linked = pass
                .linked
                .get()
                .ok_or_else(|| Fail::internal(format!("no upstream \"{name}\"")))?;
            req.proxy_host = Some(pass.proxy_host.clone());
            req.proxy_port = Some(pass.proxy_port);
            (
                Routed {
                    group: linked.group.clone(),
                    pool: linked.pool.clone(),
                    host: linked.host.clone(),
                },
                upstream_uri(pass.uri.as_deref(), req, &at),
            )
        }
        Target::Dynamic(t) => {
            let url = t.eval(req);
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| Fail::internal(format!("invalid URL prefix in \"{url}\"")))?;
            let (host, uri) = match rest.find('/') {
                Some(i) => (&rest[..i], Some(rest[i..].to_string())),
                None => (rest, None),
            };
            let g = match http.upstreams.get(host) {
                Some(g) => g.clone(),
                None => dynamic_group(host)?,
            };
            let pool = http.pool(g.conf().name.as_str());
            let g = Routed {
                group: g,
                pool,
                host: None,
            };
            req.proxy_host = Some(host.strip_suffix(":80").unwrap_or(host).to_string());
            req.proxy_port = Some(host_port(host));
            let uri = match uri {
                Some(u) => u,
                None => upstream_uri(None, req, &at),
            };
            (g, uri)
        }
    };

    let Routed { group, pool, host } = group;
    if let (true, Some(node)) = (group.is_dynamic(), node) {
        group.follow(node.reader.load().state());
    }
    // Every attempt of this request picks from the same list, so `tried` keeps its
    // meaning if the list is rebuilt meanwhile.
    let group = group.pin();
    let version = conf.proxy.http_version.unwrap_or(Version::HTTP_10);
    let mut headers = request_headers(conf, req, host);
    let connect_timeout = conf.proxy.connect_timeout.unwrap_or(DEFAULT_TIMEOUT);
    let read_timeout = conf.proxy.read_timeout.unwrap_or(DEFAULT_TIMEOUT);
    let send_timeout = conf.proxy.send_timeout.unwrap_or(DEFAULT_TIMEOUT);
    let next = conf.proxy.next_upstream.unwrap_or_default();
    let max_tries = match conf.proxy.next_upstream_tries.unwrap_or(0) {
        0 => group.tries(),
        n => n as usize,
    };
    let keepalive = version == Version::HTTP_11
        && group.conf().keepalive.is_some()
        && !headers
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    // nginx treats POST, LOCK and PATCH as non-idempotent (1.9.13+).
    let idempotent = !matches!(req.method.as_str(), "POST" | "LOCK" | "PATCH");
    let has_body = body
        .as_ref()
        .is_some_and(|b| !http_body::Body::is_end_stream(b));
    let limit = conf.max_body();
    let mut body = Some(ReqBody::new(
        body,
        limit,
        conf.client_body_timeout.unwrap_or(DEFAULT_TIMEOUT),
    ));

    let hash_key = match &group.conf().method {
        Balance::Hash { key, .. } => Some(key.eval(req)),
        _ => None,
    };
    let mut tried = Tried::new();
    let mut last: Option<Fail> = None;
    let binding = super::sticky::bind(&group, req, node);
    let mut bound = binding.server;
    for attempt in 0..max_tries {
        let ctx = SelectCtx {
            client_ip: Some(req.conn.remote.ip()),
            hash_key: hash_key.as_deref().map(str::as_bytes),
        };
        // A bound request tries its server first, if it can take the request (draining
        // or not); otherwise, and on retries, the group balances.
        let pinned = bound.take().and_then(|b| group.select_bound(b, &mut tried));
        let guard = match pinned.map_or_else(|| group.select(&ctx, &mut tried), Ok) {
            Ok(g) => g,
            Err(_) => {
                if attempt == 0 {
                    crate::log_error!(
                        "no live upstreams while connecting to upstream \"{}\"",
                        group.conf().name
                    );
                    return Err(Fail::upstream(
                        Kind::NoLiveUpstreams,
                        format!("no live upstreams in \"{}\"", group.conf().name),
                    ));
                }
                break;
            }
        };
        let addr = guard.addr();
        let started = Instant::now();
        let mut pooled = if keepalive {
            pool.as_ref().and_then(|p| p.take(addr))
        } else {
            None
        };
        if let Some(l) = pooled.as_mut() {
            if l.sender.ready().await.is_err() {
                pooled = None;
            }
        }
        let uses = pooled.as_ref().map(|l| l.uses).unwrap_or(0) + 1;
        let sender = match pooled {
            Some(l) => Ok(l.sender),
            None => upconn::connect(addr, connect_timeout, send_timeout).await,
        };
        let mut sender = match sender {
            Ok(s) => s,
            Err(f) => {
                crate::log_error!(
                    "{} while connecting to upstream, upstream: \"{}\"",
                    f.msg,
                    addr
                );
                guard.failure();
                record_attempt(req, addr, f.status(), started);
                let retry = next.retries(&f);
                last = Some(f);
                if retry {
                    continue;
                }
                break;
            }
        };
        let Some(this_body) = body.take() else { break };
        let body_fault = this_body.fault.clone();
        let body_sent = this_body.sent.clone();
        // HTTP/1.0 has no chunked encoding: a body of unknown length goes as HTTP/1.1
        // (nginx buffers it to learn the length instead).
        let version = if version == Version::HTTP_10
            && has_body
            && !headers.contains_key(header::CONTENT_LENGTH)
        {
            Version::HTTP_11
        } else {
            version
        };
        let mut rb = Request::builder()
            .method(req.method.clone())
            .uri(uri.as_str())
            .version(version);
        if let Some(h) = rb.headers_mut() {
            *h = if attempt + 1 < max_tries {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
        }
        let upstream_req = rb
            .body(this_body)
            .map_err(|e| Fail::internal(format!("bad upstream request: {e}")))?;
        guard.peer().count_request();
        guard.peer().add_sent(request_bytes(&upstream_req));
        // proxy_read_timeout runs from the end of the request body (the send side has
        // proxy_send_timeout), so a slow upload is not a read timeout.
        let send = sender.send_request(upstream_req);
        let result = if has_body {
            tokio::pin!(send);
            tokio::select! {
                r = &mut send => Ok(r),
                _ = body_sent.notified() => tokio::time::timeout(read_timeout, send).await,
            }
        } else {
            tokio::time::timeout(read_timeout, send).await
        };
        let resp = match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                let fault = *body_fault.lock().unwrap_or_else(|e| e.into_inner());
                match fault {
                    Some(BodyFault::TooLarge) => {
                        return Err(Fail::new(
                            Side::Client,
                            Kind::BodyTooLarge,
                            "client intended to send too large body",
                        ))
                    }
                    Some(BodyFault::Timeout) => {
                        return Err(Fail::new(
                            Side::Client,
                            Kind::ClientTimeout,
                            "client timed out sending the request body",
                        ))
                    }
                    Some(BodyFault::Broken) => {
                        return Err(Fail::new(
                            Side::Client,
                            Kind::ClientAbort,
                            "client closed the request body",
                        ))
                    }
                    None => {}
                }
                let kind = if e.is_parse() {
                    Kind::UpstreamInvalid
                } else {
                    Kind::UpstreamError
                };
                Err(Fail::upstream(kind, format!("upstream prematurely closed connection while reading response header ({e})")))
            }
            Err(_) => Err(Fail::upstream(
                Kind::UpstreamTimeout,
                "upstream timed out while reading response header from upstream",
            )),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(f) => {
                crate::log_error!("{}, upstream: \"{}\"", f.msg, addr);
                guard.failure();
                record_attempt(req, addr, f.status(), started);
                // A request whose body already went out cannot be sent again, nor may
                // a non-idempotent one (unless `non_idempotent`).
                let replayable = !has_body && (idempotent || next.non_idempotent);
                let retry = next.retries(&f) && replayable;
                last = Some(f);
                if retry {
                    body = Some(ReqBody::empty());
                    continue;
                }
                break;
            }
        };
        let status = resp.status().as_u16();
        let replayable = !has_body && (idempotent || next.non_idempotent);
        if next.retries_status(status) && attempt + 1 < max_tries && replayable && !next.off {
            if matches!(status, 500 | 502 | 503 | 504 | 429) {
                guard.failure();
            }
            guard.peer().count_response(status);
            guard.peer().stats().record_header_time(started.elapsed());
            record_attempt(req, addr, status, started);
            crate::log_warn!(
                "upstream \"{}\" answered {status}, trying the next one",
                addr
            );
            body = Some(ReqBody::empty());
            last = Some(Fail::upstream(
                Kind::UpstreamError,
                format!("upstream answered {status}"),
            ));
            continue;
        }
        guard.success();
        guard.peer().count_response(status);
        guard.peer().stats().record_header_time(started.elapsed());
        record_attempt(req, addr, status, started);
        let (mut parts, incoming) = resp.into_parts();
        if http.keep_upstream_headers {
            req.upstream.headers = Some(parts.headers.clone());
        }
        clean_response_headers(&mut parts.headers);
        let chosen = guard.peer().id;
        super::sticky::respond(&group, &binding, chosen, req, &mut parts.headers, node);
        let conn = if keepalive {
            pool.clone().map(|p| (p, addr, sender, uses))
        } else {
            None
        };
        let ended = Arc::new(std::sync::atomic::AtomicU64::new(0));
        req.upstream.body_end = Some(ended.clone());
        let body = UpstreamBody::new(
            incoming,
            read_timeout,
            conn,
            Some(guard),
            Some((ended, started)),
        );
        let mut out = Response::from_parts(parts, RespBody::stream(body));
        *out.version_mut() = Version::HTTP_11;
        return Ok(out);
    }
    Err(last.unwrap_or_else(|| Fail::upstream(Kind::NoLiveUpstreams, "no live upstreams")))
}

fn record_attempt(req: &mut Req, addr: std::net::SocketAddr, status: u16, started: Instant) {
    req.upstream.attempts.push(crate::http::req::Attempt {
        addr,
        status,
        time: started.elapsed(),
    });
}

/// `proxy_pass http://$target` naming an address that is not a group: a one-server
/// group made for the request (nginx would need a `resolver` for names).
fn dynamic_group(host: &str) -> Result<Arc<Upstream>, Fail> {
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr: std::net::SocketAddr = with_port.parse().map_err(|_| {
        Fail::upstream(
            Kind::UpstreamError,
            format!("no resolver defined to resolve {host}"),
        )
    })?;
    let conf = crate::upstream::conf::UpstreamConf::implicit(host, vec![addr], String::new(), 0);
    Ok(Arc::new(Upstream::new(conf)))
}

/// The request target sent upstream, by nginx's rules: with a URI in `proxy_pass`, the
/// part of the (normalised) URI that matched the location is replaced by it; without
/// one, the client's URI goes as it came, or as rewritten.
pub fn upstream_uri(pass_uri: Option<&str>, req: &Req, at: &Where<'_>) -> String {
    let args = req.args.as_deref().filter(|a| !a.is_empty());
    match pass_uri {
        Some(base) if !at.uri_changed => {
            let rest = match at.prefix {
                Some(p) if req.uri.starts_with(p) => &req.uri[p.len()..],
                _ => req.uri.as_str(),
            };
            let mut s = String::with_capacity(base.len() + rest.len() + 16);
            s.push_str(base);
            s.push_str(&escape_uri(rest));
            if let Some(a) = args {
                s.push('?');
                s.push_str(a);
            }
            s
        }
        _ if !at.uri_changed => req.request_uri.clone(),
        _ => {
            let mut s = escape_uri(&req.uri);
            if let Some(a) = args {
                s.push('?');
                s.push_str(a);
            }
            s
        }
    }
}

/// Re-escapes a decoded path as nginx's `ngx_escape_uri` does for proxied URIs.
pub fn escape_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers nginx sends upstream: `proxy_set_header` (with its defaults `Host:
/// $proxy_host` and `Connection: close`), then the client's own headers except hop-by-hop
/// ones and those that `proxy_set_header` replaces. Empty values are not sent.
fn request_headers(conf: &LocConf, req: &mut Req, host: Option<HeaderValue>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(req.headers.len() + 4);
    let user = conf.proxy.set_headers.as_deref().unwrap_or_default();
    let has = |n: &HeaderName| user.iter().any(|(u, _)| u == n);
    if !has(&header::HOST) {
        let host = host.or_else(|| {
            req.proxy_host
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok())
        });
        if let Some(h) = host {
            out.insert(header::HOST, h);
        }
    }
    if !has(&header::CONNECTION) {
        out.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (n, t) in user {
        let v = t.eval(req);
        if v.is_empty() {
            continue;
        }
        if let Ok(hv) = HeaderValue::from_str(&v) {
            out.append(n.clone(), hv);
        }
    }
    let mut conn_tokens: Vec<String> = Vec::new();
    for v in req.headers.get_all(header::CONNECTION) {
        if let Ok(v) = v.to_str() {
            conn_tokens.extend(
                v.split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| t != "keep-alive" && t != "close"),
            );
        }
    }
    for (n, v) in &req.headers {
        if HOP.contains(n)
            || *n == header::HOST
            || user.iter().any(|(u, _)| u == n)
            || (!conn_tokens.is_empty() && conn_tokens.iter().any(|t| t == n.as_str()))
        {
            continue;
        }
        out.append(n.clone(), v.clone());
    }
    out
}

/// nginx does not pass the upstream's `Date`, `Server` and `X-Accel-*` on, and never
/// hop-by-hop headers.
fn clean_response_headers(h: &mut HeaderMap) {
    for n in HOP.iter() {
        if *n != header::TRANSFER_ENCODING {
            h.remove(n);
        }
    }
    h.remove(header::TRANSFER_ENCODING);
    h.remove(header::DATE);
    h.remove(header::SERVER);
    h.remove(HeaderName::from_static("x-pad"));
    let accel: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("x-accel-"))
        .cloned()
        .collect();
    for k in accel {
        h.remove(k);
    }
}

impl HttpConf {
    /// The idle-connection pool of a group with `keepalive`.
    pub fn pool(&self, group: &str) -> Option<Arc<Pool>> {
        self.pools.get(group).cloned()
    }
}

/// The bytes a request puts on the wire to the upstream: request line, headers and the
/// body its `Content-Length` announces (a chunked body is not counted).
fn request_bytes<B>(r: &Request<B>) -> u64 {
    let line = r.method().as_str().len() + r.uri().to_string().len() + 12;
    let headers: usize = r
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let body = r
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (line + headers + 2) as u64 + body
}
