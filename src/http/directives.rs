//! The http directives: one table row each, with the handler that fills the build
//! structures (see `config` for how the table is used).

use std::sync::Arc;

use http::HeaderName;

use super::access::Rule;
use super::access_log::{Escape, LogFormat, LogTarget, COMBINED};
use super::build::{HttpBuild, ListenBuild, LocationBuild, ServerBuild};
use super::location::Kind;
use super::{AddHeader, Content, ErrorPage, LocConf};
use crate::config::values::{parse_flag, parse_size, parse_time};
use crate::config::{ctx, walk, Args, Cx, Directive, Frame, Handler, Spec};
use crate::vars::map::MapVar;
use crate::vars::Template;

use ctx::{HTTP, HTTP_ANY, LIF, LOCATION, SERVER};

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "server", contexts: HTTP, args: Args::Exactly(0), block: true, handler: Handler::Frame(server) },
    Spec { name: "listen", contexts: SERVER, args: Args::AtLeast(1), block: false, handler: Handler::Server(listen) },
    Spec { name: "server_name", contexts: SERVER, args: Args::AtLeast(1), block: false, handler: Handler::Server(server_name) },
    Spec { name: "location", contexts: SERVER | LOCATION, args: Args::Between(1, 2), block: true, handler: Handler::Frame(location) },
    Spec { name: "root", contexts: HTTP_ANY | LIF, args: Args::Exactly(1), block: false, handler: Handler::Level(root) },
    Spec { name: "index", contexts: HTTP_ANY, args: Args::AtLeast(1), block: false, handler: Handler::Level(index) },
    Spec { name: "add_header", contexts: HTTP_ANY | LIF, args: Args::Between(2, 3), block: false, handler: Handler::Level(add_header) },
    Spec { name: "allow", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(allow) },
    Spec { name: "deny", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(deny) },
    Spec { name: "access_log", contexts: HTTP_ANY | LIF, args: Args::AtLeast(1), block: false, handler: Handler::Level(access_log) },
    Spec { name: "log_format", contexts: HTTP, args: Args::AtLeast(2), block: false, handler: Handler::Http(log_format) },
    Spec { name: "error_page", contexts: HTTP_ANY | LIF, args: Args::AtLeast(2), block: false, handler: Handler::Level(error_page) },
    Spec { name: "client_max_body_size", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(client_max_body_size) },
    Spec { name: "client_body_timeout", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(client_body_timeout) },
    Spec { name: "keepalive_timeout", contexts: HTTP_ANY, args: Args::Between(1, 2), block: false, handler: Handler::Level(keepalive_timeout) },
    Spec { name: "keepalive_requests", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(keepalive_requests) },
    Spec { name: "default_type", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(default_type) },
    Spec { name: "types", contexts: HTTP_ANY, args: Args::Exactly(0), block: true, handler: Handler::Frame(types) },
    Spec { name: "status_zone", contexts: SERVER | LOCATION | LIF, args: Args::Exactly(1), block: false, handler: Handler::Level(status_zone) },
    Spec { name: "map", contexts: HTTP, args: Args::Exactly(2), block: true, handler: Handler::Frame(map) },
    Spec { name: "api", contexts: LOCATION, args: Args::Between(0, 1), block: false, handler: Handler::Level(api) },
    Spec { name: "proxy_pass", contexts: LOCATION | LIF, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_pass) },
    Spec { name: "proxy_set_header", contexts: HTTP_ANY, args: Args::Exactly(2), block: false, handler: Handler::Level(proxy_set_header) },
    Spec { name: "proxy_http_version", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_http_version) },
    Spec { name: "proxy_connect_timeout", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_connect_timeout) },
    Spec { name: "proxy_read_timeout", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_read_timeout) },
    Spec { name: "proxy_send_timeout", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_send_timeout) },
    Spec { name: "proxy_next_upstream", contexts: HTTP_ANY, args: Args::AtLeast(1), block: false, handler: Handler::Level(proxy_next_upstream) },
    Spec { name: "proxy_next_upstream_tries", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_next_upstream_tries) },
    Spec { name: "proxy_buffering", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(proxy_buffering) },
    // Accepted so that real nginx files load: the kernel-level tuning they ask for is
    // either what raftgate does anyway (TCP_NODELAY) or has no equivalent here.
    Spec { name: "sendfile", contexts: HTTP_ANY | LIF, args: Args::Exactly(1), block: false, handler: Handler::Level(flag_accepted) },
    Spec { name: "tcp_nopush", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(flag_accepted) },
    Spec { name: "tcp_nodelay", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(flag_accepted) },
    Spec { name: "server_tokens", contexts: HTTP_ANY, args: Args::Exactly(1), block: false, handler: Handler::Level(server_tokens) },
];

fn server(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let Frame::Http(h) = frame else {
        return Err("\"server\" directive is not allowed here".into());
    };
    let mut sb = ServerBuild {
        at: d.at(),
        ..Default::default()
    };
    walk(
        cx,
        &mut Frame::Server(&mut sb),
        d.block.as_deref().unwrap_or_default(),
    );
    h.servers.push(sb);
    Ok(())
}

fn listen(_: &mut Cx, s: &mut ServerBuild, d: &Directive) -> Result<(), String> {
    let addrs = super::build::parse_listen_addr(d.arg(0))?;
    let mut lb = ListenBuild {
        addrs,
        default_server: false,
        backlog: None,
        reuseport: false,
        at: d.at(),
    };
    for w in &d.args[1..] {
        match w.value.as_str() {
            "default_server" | "default" => lb.default_server = true,
            "reuseport" => lb.reuseport = true,
            "ssl" => {
                return Err(
                    "the \"ssl\" parameter is not supported yet: TLS arrives in a later release"
                        .into(),
                )
            }
            "http2" | "spdy" | "proxy_protocol" | "quic" => {
                return Err(format!("the \"{}\" parameter is not supported", w.value))
            }
            "bind" | "deferred" | "ipv6only=on" | "ipv6only=off" | "so_keepalive=on"
            | "so_keepalive=off" => {}
            v if v.starts_with("backlog=") => {
                lb.backlog = Some(
                    v[8..]
                        .parse()
                        .map_err(|_| format!("invalid backlog \"{}\"", &v[8..]))?,
                )
            }
            v if v.starts_with("rcvbuf=")
                || v.starts_with("sndbuf=")
                || v.starts_with("so_keepalive=")
                || v.starts_with("fastopen=") => {}
            v => return Err(format!("invalid parameter \"{v}\"")),
        }
    }
    s.listens.push(lb);
    Ok(())
}

fn server_name(cx: &mut Cx, s: &mut ServerBuild, d: &Directive) -> Result<(), String> {
    for w in &d.args {
        if w.value.starts_with('~') {
            cx.regex(&w.value[1..], true)?;
        } else if w.value.contains('*') && !(w.value.starts_with("*.") || w.value.ends_with(".*")) {
            return Err(format!("invalid server name or wildcard \"{}\"", w.value));
        }
        s.names.push(w.value.clone());
    }
    Ok(())
}

fn location(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let (modifier, path) = match d.args.len() {
        1 => {
            let a = d.arg(0);
            // nginx accepts "=/x", "~*\.png", "^~/x" written without a space.
            if let Some(p) = a.strip_prefix("^~").filter(|p| !p.is_empty()) {
                ("^~", p)
            } else if let Some(p) = a.strip_prefix("~*").filter(|p| !p.is_empty()) {
                ("~*", p)
            } else if let Some(p) = a.strip_prefix('=').filter(|p| !p.is_empty()) {
                ("=", p)
            } else if let Some(p) = a.strip_prefix('~').filter(|p| !p.is_empty()) {
                ("~", p)
            } else {
                ("", a)
            }
        }
        _ => (d.arg(0), d.arg(1)),
    };
    let kind = match modifier {
        "" if path.starts_with('@') => Kind::Named,
        "" => Kind::Prefix,
        "=" => Kind::Exact,
        "^~" => Kind::NoRegex,
        "~" | "~*" => Kind::Regex(cx.regex(path, modifier == "~*")?),
        m => return Err(format!("invalid location modifier \"{m}\"")),
    };
    let mut lb = LocationBuild {
        name: path.to_string(),
        kind: Some(kind),
        at: d.at(),
        ..Default::default()
    };
    match frame {
        Frame::Server(s) => {
            walk(
                cx,
                &mut Frame::Location(&mut lb),
                d.block.as_deref().unwrap_or_default(),
            );
            s.locations.push(lb);
        }
        Frame::Location(parent) => {
            match parent.kind {
                Some(Kind::Exact) => {
                    return Err(format!(
                        "location \"{path}\" cannot be inside the exact location \"{}\"",
                        parent.name
                    ))
                }
                Some(Kind::Named) => {
                    return Err(format!(
                        "location \"{path}\" cannot be inside the named location \"{}\"",
                        parent.name
                    ))
                }
                _ => {}
            }
            if matches!(lb.kind, Some(Kind::Named)) {
                return Err(format!(
                    "named location \"{path}\" can be on the server level only"
                ));
            }
            if let (
                Some(Kind::Prefix | Kind::NoRegex | Kind::Exact),
                Some(Kind::Prefix | Kind::NoRegex | Kind::Exact),
            ) = (&parent.kind, &lb.kind)
            {
                if !path.starts_with(parent.name.as_str()) {
                    return Err(format!(
                        "location \"{path}\" is outside location \"{}\"",
                        parent.name
                    ));
                }
            }
            walk(
                cx,
                &mut Frame::Location(&mut lb),
                d.block.as_deref().unwrap_or_default(),
            );
            parent.children.push(lb);
        }
        _ => return Err("\"location\" directive is not allowed here".into()),
    }
    Ok(())
}

fn dup(d: &Directive) -> String {
    format!("\"{}\" directive is duplicate", d.name)
}

fn root(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    if l.root.is_some() {
        return Err(dup(d));
    }
    let raw = d.arg(0);
    let full = if raw.starts_with('/') || raw.starts_with('$') {
        raw.to_string()
    } else {
        cx.path(raw).display().to_string()
    };
    let full = full
        .strip_suffix('/')
        .filter(|s| !s.is_empty())
        .unwrap_or(&full)
        .to_string();
    l.root = Some(cx.template(d, &full).ok_or("")?);
    Ok(())
}

fn index(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let list = l.index.get_or_insert_with(Vec::new);
    for w in &d.args {
        if w.value.is_empty() {
            return Err("index \"\" in \"index\" directive is invalid".into());
        }
        if w.value.contains('$') {
            return Err(format!(
                "variables in \"index\" are not supported: \"{}\"",
                w.value
            ));
        }
        list.push(w.value.clone());
    }
    Ok(())
}

fn add_header(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let name = HeaderName::from_bytes(d.arg(0).as_bytes())
        .map_err(|_| format!("invalid header name \"{}\"", d.arg(0)))?;
    let always = match d.args.get(2).map(|w| w.value.as_str()) {
        None => false,
        Some("always") => true,
        Some(o) => return Err(format!("invalid value \"{o}\"")),
    };
    let value = cx.template(d, d.arg(1)).ok_or("")?;
    l.add_headers.get_or_insert_with(Vec::new).push(AddHeader {
        name,
        value,
        always,
    });
    Ok(())
}

fn allow(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.access
        .get_or_insert_with(Vec::new)
        .push(Rule::parse(true, d.arg(0))?);
    Ok(())
}

fn deny(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.access
        .get_or_insert_with(Vec::new)
        .push(Rule::parse(false, d.arg(0))?);
    Ok(())
}

fn access_log(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let list = l.access_log.get_or_insert_with(Vec::new);
    if d.arg(0) == "off" {
        if d.args.len() > 1 {
            return Err("invalid parameter after \"off\"".into());
        }
        list.clear();
        return Ok(());
    }
    let fmt_name = d
        .args
        .get(1)
        .map(|w| w.value.as_str())
        .filter(|v| !v.contains('='))
        .unwrap_or("combined");
    let format = match cx.log_formats.get(fmt_name) {
        Some(f) => f.clone(),
        None if fmt_name == "combined" => {
            let t = cx.template(d, COMBINED).ok_or("")?;
            let f = Arc::new(LogFormat {
                name: "combined".into(),
                template: t,
                escape: Escape::Default,
            });
            cx.log_formats.insert("combined".into(), f.clone());
            f
        }
        None => return Err(format!("unknown log format \"{fmt_name}\"")),
    };
    let mut cond = None;
    for w in d.args.iter().skip(1) {
        if let Some(c) = w.value.strip_prefix("if=") {
            cond = Some(cx.template(d, c).ok_or("")?);
        } else if w.value.starts_with("buffer=")
            || w.value.starts_with("flush=")
            || w.value.starts_with("gzip")
        {
            // Lines are always buffered and flushed in the background here.
        } else if w.value.contains('=') {
            return Err(format!("invalid parameter \"{}\"", w.value));
        }
    }
    if d.arg(0).starts_with("syslog:") {
        return Err("logging to syslog is not supported; use a file".into());
    }
    let path = cx.path(d.arg(0));
    let file = match cx.log_files.get(&path) {
        Some(f) => f.clone(),
        None => {
            let f = super::access_log::LogFile::open(&path)
                .map_err(|e| format!("open() \"{}\" failed: {e}", path.display()))?;
            cx.log_files.insert(path, f.clone());
            f
        }
    };
    list.push(LogTarget { file, format, cond });
    Ok(())
}

fn log_format(cx: &mut Cx, _: &mut HttpBuild, d: &Directive) -> Result<(), String> {
    let name = d.arg(0).to_string();
    if cx.log_formats.contains_key(&name) || name == "combined" {
        return Err(format!("duplicate \"log_format\" name \"{name}\""));
    }
    let mut rest = &d.args[1..];
    let mut escape = Escape::Default;
    if let Some(e) = rest.first().and_then(|w| w.value.strip_prefix("escape=")) {
        escape = match e {
            "default" => Escape::Default,
            "json" => Escape::Json,
            "none" => Escape::None,
            o => return Err(format!("unknown log format escaping \"{o}\"")),
        };
        rest = &rest[1..];
    }
    if rest.is_empty() {
        return Err("invalid number of arguments in \"log_format\" directive".into());
    }
    let text: String = rest.iter().map(|w| w.value.as_str()).collect();
    let template = cx.template(d, &text).ok_or("")?;
    cx.log_formats.insert(
        name.clone(),
        Arc::new(LogFormat {
            name,
            template,
            escape,
        }),
    );
    Ok(())
}

fn error_page(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let mut codes = Vec::new();
    let mut overwrite = None;
    let n = d.args.len();
    for w in &d.args[..n - 1] {
        if let Some(eq) = w.value.strip_prefix('=') {
            overwrite = Some(if eq.is_empty() {
                None
            } else {
                Some(
                    eq.parse::<u16>()
                        .map_err(|_| format!("invalid value \"{}\"", w.value))?,
                )
            });
            continue;
        }
        let code: u16 = w
            .value
            .parse()
            .map_err(|_| format!("invalid value \"{}\"", w.value))?;
        if !(300..=599).contains(&code) || code == 499 {
            return Err(format!("value \"{code}\" must be between 300 and 599"));
        }
        codes.push(code);
    }
    if codes.is_empty() {
        return Err("invalid number of arguments in \"error_page\" directive".into());
    }
    let target = cx.template(d, d.arg(n - 1)).ok_or("")?;
    l.error_pages.get_or_insert_with(Vec::new).push(ErrorPage {
        codes,
        overwrite,
        target,
    });
    Ok(())
}

fn client_body_timeout(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.client_body_timeout = Some(parse_time(d.arg(0))?);
    Ok(())
}

fn client_max_body_size(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.client_max_body_size = Some(parse_size(d.arg(0))?);
    Ok(())
}

fn keepalive_timeout(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.keepalive_timeout = Some(parse_time(d.arg(0))?);
    if let Some(h) = d.args.get(1) {
        parse_time(&h.value)?;
    }
    Ok(())
}

/// A flag accepted for compatibility (`sendfile`, `tcp_nopush`, `tcp_nodelay`): its value
/// must still be `on` or `off`.
fn flag_accepted(_: &mut Cx, _: &mut LocConf, d: &Directive) -> Result<(), String> {
    parse_flag(d.arg(0)).map(|_| ())
}

fn server_tokens(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.server_tokens = Some(match d.arg(0) {
        "build" => true,
        v => parse_flag(v)?,
    });
    Ok(())
}

fn keepalive_requests(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.keepalive_requests = Some(
        d.arg(0)
            .parse()
            .map_err(|_| format!("invalid value \"{}\"", d.arg(0)))?,
    );
    Ok(())
}

fn default_type(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.default_type = Some(d.arg(0).to_string());
    Ok(())
}

fn types(_: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let mut pairs = Vec::new();
    for e in d.block.as_deref().unwrap_or_default() {
        if e.block.is_some() || e.args.is_empty() {
            return Err(format!(
                "invalid types entry \"{}\" at line {}",
                e.name, e.line
            ));
        }
        for ext in &e.args {
            pairs.push((e.name.clone(), ext.value.clone()));
        }
    }
    let types = Arc::new(super::mime::MimeTypes::from_pairs(pairs));
    let l = match frame {
        Frame::Http(h) => &mut h.loc,
        Frame::Server(s) => &mut s.loc,
        Frame::Location(l) => &mut l.loc,
        _ => return Err("\"types\" directive is not allowed here".into()),
    };
    l.types = Some(types);
    Ok(())
}

fn status_zone(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.status_zone = Some(d.arg(0).to_string());
    Ok(())
}

fn map(cx: &mut Cx, _: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let target = d
        .arg(1)
        .strip_prefix('$')
        .ok_or_else(|| format!("invalid variable name \"{}\"", d.arg(1)))?
        .to_string();
    let mut m = MapVar {
        source: cx.template(d, d.arg(0)).ok_or("")?,
        ..Default::default()
    };
    for e in d.block.as_deref().unwrap_or_default() {
        let at = e.at();
        if e.block.is_some() {
            cx.diags.error_at(e, "unexpected \"{\" in map");
            continue;
        }
        match (e.name.as_str(), e.args.len()) {
            ("hostnames", 0) => m.hostnames = true,
            ("volatile", 0) => {}
            ("default", 1) => match Template::parse(e.arg(0), &mut cx.vars, &at) {
                Ok(t) => m.default = Some(t),
                Err(err) => cx.diags.error_at(e, &err),
            },
            (key, 1) => match Template::parse(e.arg(0), &mut cx.vars, &at) {
                Ok(t) => {
                    if let Err(err) = m.add(key, t) {
                        cx.diags.error_at(e, &err);
                    } else if key.starts_with('~') {
                        let names: Vec<String> = m
                            .regexes
                            .last()
                            .map(|(rx, _)| rx.capture_names().flatten().map(String::from).collect())
                            .unwrap_or_default();
                        for n in names {
                            if let Err(err) = cx.vars.define_set(&n) {
                                cx.diags.error_at(e, &err);
                            }
                        }
                    }
                }
                Err(err) => cx.diags.error_at(e, &err),
            },
            _ => cx.diags.error_at(e, "invalid number of the map parameters"),
        }
    }
    m.finish();
    cx.vars.define_dyn(&target, Arc::new(m))?;
    Ok(())
}

fn api(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    if l.content.is_some() {
        return Err(dup(d));
    }
    let write = match d.args.first().map(|w| w.value.as_str()) {
        None | Some("write=off") => false,
        Some("write=on") => true,
        Some(o) => return Err(format!("invalid parameter \"{o}\"")),
    };
    l.content = Some(Content::Api { write });
    Ok(())
}

fn proxy_pass(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    if l.content.is_some() {
        return Err(dup(d));
    }
    let pass = Arc::new(super::proxy::ProxyPass::parse(cx, d)?);
    cx.proxy_passes.push(pass.clone());
    l.content = Some(Content::Proxy(pass));
    Ok(())
}

fn proxy_set_header(cx: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let name = HeaderName::from_bytes(d.arg(0).as_bytes())
        .map_err(|_| format!("invalid header name \"{}\"", d.arg(0)))?;
    let value = cx.template(d, d.arg(1)).ok_or("")?;
    l.proxy
        .set_headers
        .get_or_insert_with(Vec::new)
        .push((name, value));
    Ok(())
}

fn proxy_http_version(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.proxy.http_version = Some(match d.arg(0) {
        "1.0" => http::Version::HTTP_10,
        "1.1" => http::Version::HTTP_11,
        v => return Err(format!("invalid value \"{v}\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\"")),
    });
    Ok(())
}

fn proxy_connect_timeout(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.proxy.connect_timeout = Some(parse_time(d.arg(0))?);
    Ok(())
}

fn proxy_read_timeout(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.proxy.read_timeout = Some(parse_time(d.arg(0))?);
    Ok(())
}

fn proxy_send_timeout(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.proxy.send_timeout = Some(parse_time(d.arg(0))?);
    Ok(())
}

fn proxy_next_upstream(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    let words: Vec<&str> = d.args.iter().map(|w| w.value.as_str()).collect();
    l.proxy.next_upstream = Some(super::proxy::NextUpstream::parse(&words)?);
    Ok(())
}

fn proxy_next_upstream_tries(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    l.proxy.next_upstream_tries = Some(
        d.arg(0)
            .parse()
            .map_err(|_| format!("invalid value \"{}\"", d.arg(0)))?,
    );
    Ok(())
}

fn proxy_buffering(_: &mut Cx, l: &mut LocConf, d: &Directive) -> Result<(), String> {
    // Responses are always streamed; the flag is kept for the configuration reference.
    l.proxy.buffering = Some(parse_flag(d.arg(0))?);
    Ok(())
}
