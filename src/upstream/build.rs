//! The `upstream {}` block and its directives.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::conf::{Keepalive, Method, ServerConf, UpstreamConf, ZoneConf};
use crate::config::values::{parse_size, parse_time};
use crate::config::{ctx, walk, Args, Cx, Directive, Frame, Handler, Spec};

use ctx::{HTTP, UPSTREAM};

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "upstream", contexts: HTTP, args: Args::Exactly(1), block: true, handler: Handler::Frame(upstream) },
    Spec { name: "server", contexts: UPSTREAM, args: Args::AtLeast(1), block: false, handler: Handler::Upstream(server) },
    Spec { name: "zone", contexts: UPSTREAM, args: Args::Between(1, 2), block: false, handler: Handler::Upstream(zone) },
    Spec { name: "least_conn", contexts: UPSTREAM, args: Args::Exactly(0), block: false, handler: Handler::Upstream(least_conn) },
    Spec { name: "ip_hash", contexts: UPSTREAM, args: Args::Exactly(0), block: false, handler: Handler::Upstream(ip_hash) },
    Spec { name: "hash", contexts: UPSTREAM, args: Args::Between(1, 2), block: false, handler: Handler::Upstream(hash) },
    Spec { name: "random", contexts: UPSTREAM, args: Args::Between(0, 1), block: false, handler: Handler::Upstream(random) },
    Spec { name: "keepalive", contexts: UPSTREAM, args: Args::Exactly(1), block: false, handler: Handler::Upstream(keepalive) },
    Spec { name: "keepalive_timeout", contexts: UPSTREAM, args: Args::Exactly(1), block: false, handler: Handler::Upstream(keepalive_timeout) },
    Spec { name: "keepalive_requests", contexts: UPSTREAM, args: Args::Exactly(1), block: false, handler: Handler::Upstream(keepalive_requests) },
    Spec { name: "sticky", contexts: UPSTREAM, args: Args::AtLeast(1), block: false, handler: Handler::Upstream(super::sticky::directive) },
];

pub struct UpstreamBuild {
    pub conf: UpstreamConf,
    method_set: bool,
    keepalive_timeout: Option<Duration>,
    keepalive_requests: Option<u64>,
}

fn upstream(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let Frame::Http(h) = frame else {
        return Err("\"upstream\" directive is not allowed here".into());
    };
    let mut ub = UpstreamBuild {
        conf: UpstreamConf {
            name: d.arg(0).to_string(),
            servers: Vec::new(),
            method: Method::RoundRobin,
            keepalive: None,
            zone: None,
            file: d.file.to_string(),
            line: d.line,
            implicit: false,
            sticky: None,
        },
        method_set: false,
        keepalive_timeout: None,
        keepalive_requests: None,
    };
    walk(
        cx,
        &mut Frame::Upstream(&mut ub),
        d.block.as_deref().unwrap_or_default(),
    );
    if let Some(k) = ub.conf.keepalive.as_mut() {
        k.timeout = ub.keepalive_timeout.unwrap_or(k.timeout);
        k.requests = ub.keepalive_requests.unwrap_or(k.requests);
    }
    if ub.conf.servers.iter().any(|s| !s.slow_start.is_zero())
        && !super::method_allows_slow_start(&ub.conf.method)
    {
        cx.diags.error_at(
            d,
            "balancing method does not support parameter \"slow_start\"",
        );
    }
    let has_backup = ub.conf.servers.iter().any(|s| s.backup);
    if has_backup && !super::method_allows_backup(&ub.conf.method) {
        cx.diags
            .error_at(d, "balancing method does not support parameter \"backup\"");
    }
    h.upstreams.push(ub);
    Ok(())
}

/// Resolves `host[:port]` (default port 80) to every address it names.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    if addr.starts_with("unix:") {
        return Err("unix domain sockets are not supported in upstreams".into());
    }
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 80)]);
    }
    let target = if addr.contains(':') {
        addr.to_string()
    } else {
        format!("{addr}:80")
    };
    let mut v: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|_| format!("host not found in upstream \"{addr}\""))?
        .collect();
    v.dedup();
    if v.is_empty() {
        return Err(format!("host not found in upstream \"{addr}\""));
    }
    Ok(v)
}

fn server(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    let addrs = resolve(d.arg(0))?;
    let mut tmpl = ServerConf::new(addrs[0], d.arg(0).to_string());
    let mut resolve_flag = false;
    for w in &d.args[1..] {
        let v = w.value.as_str();
        let (k, val) = v.split_once('=').unwrap_or((v, ""));
        let invalid = || format!("invalid parameter \"{v}\"");
        match k {
            "weight" => {
                tmpl.weight = val.parse().ok().filter(|w| *w > 0).ok_or_else(invalid)?;
            }
            "max_fails" => tmpl.max_fails = val.parse().map_err(|_| invalid())?,
            "max_conns" => tmpl.max_conns = val.parse().map_err(|_| invalid())?,
            "fail_timeout" => tmpl.fail_timeout = parse_time(val).map_err(|_| invalid())?,
            "slow_start" => tmpl.slow_start = parse_time(val).map_err(|_| invalid())?,
            "route" => {
                if val.is_empty() || val.len() > 32 {
                    return Err(invalid());
                }
                tmpl.route = Some(val.to_string());
            }
            "backup" if val.is_empty() => tmpl.backup = true,
            "down" if val.is_empty() => tmpl.down = true,
            "drain" if val.is_empty() => tmpl.drain = true,
            "resolve" if val.is_empty() => resolve_flag = true,
            "service" => {
                return Err(
                    "the \"service\" parameter requires a resolver, which is not supported yet"
                        .into(),
                )
            }
            _ => return Err(invalid()),
        }
    }
    // `resolve` is accepted: names are resolved once, at load and at every reload.
    let _ = resolve_flag;
    for a in addrs {
        let mut s = tmpl.clone();
        s.addr = a;
        u.conf.servers.push(s);
    }
    Ok(())
}

fn zone(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    if u.conf.zone.is_some() {
        return Err("\"zone\" directive is duplicate".into());
    }
    let size = match d.args.get(1) {
        Some(s) => Some(parse_size(&s.value)?),
        None => None,
    };
    u.conf.zone = Some(ZoneConf {
        name: d.arg(0).to_string(),
        size,
    });
    Ok(())
}

fn set_method(u: &mut UpstreamBuild, m: Method) -> Result<(), String> {
    if u.method_set {
        return Err("load balancing method redefined".into());
    }
    u.method_set = true;
    u.conf.method = m;
    Ok(())
}

fn least_conn(_: &mut Cx, u: &mut UpstreamBuild, _: &Directive) -> Result<(), String> {
    set_method(u, Method::LeastConn)
}

fn ip_hash(_: &mut Cx, u: &mut UpstreamBuild, _: &Directive) -> Result<(), String> {
    set_method(u, Method::IpHash)
}

fn hash(cx: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    let consistent = match d.args.get(1).map(|w| w.value.as_str()) {
        None => false,
        Some("consistent") => true,
        Some(o) => return Err(format!("invalid parameter \"{o}\"")),
    };
    let key = cx.template(d, d.arg(0)).ok_or("")?;
    set_method(u, Method::Hash { key, consistent })
}

fn random(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    let two = match d.args.first().map(|w| w.value.as_str()) {
        None => false,
        Some("two") => true,
        Some(o) => return Err(format!("invalid parameter \"{o}\"")),
    };
    set_method(u, Method::Random { two })
}

fn keepalive(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    let n: usize = d
        .arg(0)
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid value \"{}\" in \"keepalive\" directive", d.arg(0)))?;
    u.conf.keepalive = Some(Keepalive {
        idle: n,
        timeout: Duration::from_secs(60),
        requests: 1000,
    });
    Ok(())
}

fn keepalive_timeout(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    u.keepalive_timeout = Some(parse_time(d.arg(0))?);
    Ok(())
}

fn keepalive_requests(_: &mut Cx, u: &mut UpstreamBuild, d: &Directive) -> Result<(), String> {
    u.keepalive_requests = Some(
        d.arg(0)
            .parse()
            .map_err(|_| format!("invalid value \"{}\"", d.arg(0)))?,
    );
    Ok(())
}
