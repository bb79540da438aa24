//! `sticky` in the data path: which server a request is bound to before the first pick,
//! and what the response teaches (a cookie to set, a session to learn or touch). The
//! configuration side and the rules are in `upstream::sticky`.

use std::time::SystemTime;

use http::{header, HeaderMap, HeaderValue};
use raftgate_raft::ServerKey;

use super::req::Req;
use crate::cluster::sessions::touch_every;
use crate::cluster::Node;
use crate::upstream::sticky::{CookieConf, Expires, LearnConf, Sticky};
use crate::upstream::Pinned;
use crate::vars::Template;

/// What binding found for one request.
#[derive(Debug, Default)]
pub struct Binding {
    /// The bound server's position in the pinned group.
    pub server: Option<usize>,
    /// `learn`: the looked-up session, whether the cluster knows it, and whether its last
    /// access is old enough to be touched.
    session: Option<String>,
    known: Option<ServerKey>,
    touch_due: bool,
}

fn first_non_empty(list: &[Template], req: &mut Req) -> Option<String> {
    list.iter().map(|t| t.eval(req)).find(|v| !v.is_empty())
}

/// The server the request is bound to, if any, before the first pick.
pub fn bind(group: &Pinned<'_>, req: &mut Req, node: Option<&Node>) -> Binding {
    match &group.conf().sticky {
        None => Binding::default(),
        Some(Sticky::Cookie(c)) => Binding {
            server: crate::vars::http::cookie(&req.headers, &c.name)
                .filter(|v| !v.is_empty())
                .and_then(|id| group.by_sticky_id(&id)),
            ..Binding::default()
        },
        Some(Sticky::Route(vars)) => Binding {
            server: first_non_empty(vars, req).and_then(|id| group.by_sticky_id(&id)),
            ..Binding::default()
        },
        Some(Sticky::Learn(l)) => learn_binding(group, l, req, node),
    }
}

fn learn_binding(group: &Pinned<'_>, l: &LearnConf, req: &mut Req, node: Option<&Node>) -> Binding {
    let Some(session) = first_non_empty(&l.lookup, req) else {
        return Binding::default();
    };
    let Some(node) = node else {
        return Binding::default();
    };
    let applied = node.reader.load();
    let state = applied.state();
    let found = state.sticky_session(&l.zone, &session);
    let known = found.map(|s| s.server.clone());
    let touch_due = found.is_some_and(|s| {
        state
            .log_time_ms()
            .max(crate::api::now_ms())
            .saturating_sub(s.last_access_ms)
            >= touch_every(l.timeout_ms)
    });
    let server = known
        .as_ref()
        .filter(|k| k.upstream == group.conf().name)
        .and_then(|k| group.by_addr(&k.server));
    Binding {
        server,
        session: Some(session),
        known,
        touch_due,
    }
}

/// After the response header from the server at position `chosen`: sets the cookie of
/// `sticky cookie` for a request that was not bound to that server, and queues what
/// `sticky learn` learned (a new or moved session) or a touch of the session used.
pub fn respond(
    group: &Pinned<'_>,
    binding: &Binding,
    chosen: usize,
    req: &mut Req,
    headers: &mut HeaderMap,
    node: Option<&Node>,
) {
    match &group.conf().sticky {
        Some(Sticky::Cookie(c)) if binding.server != Some(chosen) => {
            if let Some(id) = group.sticky_id(chosen) {
                if let Ok(v) = HeaderValue::from_str(&set_cookie(c, &id, req)) {
                    headers.append(header::SET_COOKIE, v);
                }
            }
        }
        Some(Sticky::Learn(l)) => {
            let Some(node) = node else { return };
            let Some(addr) = group.addr(chosen) else {
                return;
            };
            let here = ServerKey {
                upstream: group.conf().name.clone(),
                server: addr,
            };
            if let Some(created) = first_non_empty(&l.create, req) {
                let same = binding.session.as_deref() == Some(created.as_str())
                    && binding.known.as_ref() == Some(&here);
                if !same {
                    node.sessions.learn(&l.zone, created, here);
                    return;
                }
            }
            if let (Some(session), true) = (&binding.session, binding.touch_due) {
                if binding.known.as_ref() == Some(&here) {
                    node.sessions.touch(&l.zone, session.clone());
                }
            }
        }
        _ => {}
    }
}

/// nginx's `sticky cookie` header: `NAME=ID[; expires=...][; domain=...][; path=...]
/// [; secure][; httponly]`.
fn set_cookie(c: &CookieConf, id: &str, req: &mut Req) -> String {
    let mut v = format!("{}={id}", c.name);
    match c.expires {
        Some(Expires::Max) => {
            v.push_str("; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000")
        }
        Some(Expires::After(d)) => {
            let at = httpdate::fmt_http_date(SystemTime::now() + d);
            v.push_str(&format!("; expires={at}; max-age={}", d.as_secs()));
        }
        None => {}
    }
    if let Some(dom) = &c.domain {
        let dom = dom.eval(req);
        if !dom.is_empty() {
            v.push_str(&format!("; domain={dom}"));
        }
    }
    if let Some(p) = &c.path {
        v.push_str(&format!("; path={p}"));
    }
    if c.secure {
        v.push_str("; secure");
    }
    if c.httponly {
        v.push_str("; httponly");
    }
    v
}
