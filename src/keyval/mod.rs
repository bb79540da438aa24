//! Key-value zones (`ngx_http_keyval_module`): declared by `keyval_zone`, held in the
//! replicated state, read and written through the API.

use crate::config::values::{parse_size, parse_time};
use crate::config::{ctx, Args, Cx, Directive, Frame, Handler, Spec};

/// A `keyval_zone` line: what the node proposes to the cluster when the configuration
/// loads (the replicated state keeps the keys; the declaration only shapes the zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDecl {
    pub name: String,
    pub capacity_bytes: u64,
    pub timeout_ms: Option<u64>,
    pub key_type: raftgate_raft::KeyType,
    /// `http` or `stream`: the block that declared it.
    pub kind: raftgate_raft::Kind,
    pub at: String,
}

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "keyval_zone", contexts: ctx::HTTP | ctx::STREAM, args: Args::Between(1, 5), block: false, handler: Handler::Frame(keyval_zone) },
    Spec { name: "keyval", contexts: ctx::HTTP | ctx::STREAM, args: Args::Exactly(3), block: false, handler: Handler::Frame(keyval) },
];

/// A `keyval` line's zone, to be checked against the block's `keyval_zone`s.
#[derive(Debug, Clone)]
pub struct ZoneUse {
    pub zone: String,
    pub file: String,
    pub line: u32,
}

/// `$var` of `keyval KEY $var zone=NAME`: the value the replicated zone holds for the
/// evaluated key, as this node last applied it (the data path never waits on Raft).
/// Exact match, or longest prefix / longest CIDR block by the zone's `type`. A key the
/// zone does not hold leaves the variable not found (empty, false in `if`), as nginx.
#[derive(Debug)]
struct KeyvalVar {
    key: crate::vars::Template,
    zone: raftgate_raft::ZoneRef,
}

impl crate::vars::DynVar for KeyvalVar {
    fn get(&self, req: &mut crate::http::req::Req) -> Option<String> {
        let key = self.key.eval(req);
        let node = req.node.as_ref()?;
        let applied = node.reader.load();
        applied
            .state()
            .keyval_lookup(&self.zone, &key)
            .map(str::to_string)
    }
}

/// `keyval KEY $variable zone=NAME;`
fn keyval(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let name = d
        .arg(1)
        .strip_prefix('$')
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("invalid variable name \"{}\"", d.arg(1)))?
        .to_string();
    let zone = d
        .arg(2)
        .strip_prefix("zone=")
        .filter(|z| !z.is_empty())
        .ok_or_else(|| format!("invalid parameter \"{}\": use zone=NAME", d.arg(2)))?
        .to_string();
    let zone_use = ZoneUse {
        zone: zone.clone(),
        file: d.file.to_string(),
        line: d.line,
    };
    match frame {
        Frame::Http(h) => h.keyval_refs.push(zone_use),
        // Stream variables arrive with stream servers; until then the line is checked
        // and its zone must exist, so a configuration written for later keeps loading.
        Frame::Stream(s) => {
            s.keyval_refs.push(zone_use);
            return Ok(());
        }
        _ => return Err("\"keyval\" directive is not allowed here".into()),
    }
    let key = cx.template(d, d.arg(0)).ok_or("")?;
    let var = KeyvalVar {
        key,
        zone: raftgate_raft::Ref::http(zone),
    };
    cx.vars.define_dyn(&name, std::sync::Arc::new(var))?;
    Ok(())
}

/// Every `keyval` line names a `keyval_zone` of its block.
pub fn check_uses(cx: &mut Cx, uses: &[ZoneUse], zones: &[ZoneDecl]) {
    for u in uses {
        if !zones.iter().any(|z| z.name == u.zone) {
            cx.diags.error(
                &u.file,
                u.line,
                &format!(
                    "zone \"{}\" is not declared by keyval_zone in this block",
                    u.zone
                ),
            );
        }
    }
}

/// `keyval_zone zone=NAME:SIZE [state=FILE] [timeout=TIME] [type=string|ip|prefix] [sync];`
fn keyval_zone(_: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let (zones, kind) = match frame {
        Frame::Http(h) => (&mut h.keyval_zones, raftgate_raft::Kind::Http),
        Frame::Stream(s) => (&mut s.keyval_zones, raftgate_raft::Kind::Stream),
        _ => return Err("\"keyval_zone\" directive is not allowed here".into()),
    };
    let mut zone: Option<(String, u64)> = None;
    let mut timeout_ms = None;
    let mut key_type = raftgate_raft::KeyType::String;
    for w in &d.args {
        let v = w.value.as_str();
        if let Some(z) = v.strip_prefix("zone=") {
            let (name, size) = z
                .split_once(':')
                .ok_or_else(|| format!("invalid zone size in \"{v}\": use zone=NAME:SIZE"))?;
            if name.is_empty() {
                return Err(format!("invalid zone name in \"{v}\""));
            }
            let size = parse_size(size)?;
            if size < 8 * 4096 {
                return Err(format!("zone \"{name}\" is too small: at least 32k"));
            }
            zone = Some((name.to_string(), size));
        } else if v.starts_with("state=") {
            // The replicated store already keeps every zone across restarts, on every
            // node; the state file nginx would write is not needed and not written.
        } else if let Some(t) = v.strip_prefix("timeout=") {
            timeout_ms = Some(parse_time(t)?.as_millis() as u64);
        } else if let Some(t) = v.strip_prefix("type=") {
            key_type = match t {
                "string" => raftgate_raft::KeyType::String,
                "ip" => raftgate_raft::KeyType::Ip,
                "prefix" => raftgate_raft::KeyType::Prefix,
                o => return Err(format!("invalid type \"{o}\": string, ip or prefix")),
            };
        } else if v == "sync" {
            // Every zone is replicated through Raft; `sync` asks for nothing more.
        } else {
            return Err(format!("invalid parameter \"{v}\""));
        }
    }
    let (name, capacity_bytes) = zone.ok_or("\"zone\" parameter is missing")?;
    if zones.iter().any(|z| z.name == name) {
        return Err(format!("duplicate zone \"{name}\""));
    }
    zones.push(ZoneDecl {
        name,
        capacity_bytes,
        timeout_ms,
        key_type,
        kind,
        at: d.at(),
    });
    Ok(())
}

/// The commands that make the replicated zones match this configuration.
pub fn configure_commands(zones: &[ZoneDecl]) -> Vec<raftgate_raft::Entry> {
    zones
        .iter()
        .map(|z| {
            raftgate_raft::Entry::Command(raftgate_raft::Command::ConfigureKeyvalZone {
                zone: raftgate_raft::Ref {
                    kind: z.kind,
                    name: z.name.clone(),
                },
                capacity_bytes: z.capacity_bytes,
                timeout_ms: z.timeout_ms,
                key_type: z.key_type,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    fn errors(text: &str) -> Vec<String> {
        match crate::config::load_str(text, "k.conf", std::env::temp_dir()) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    /// An http block with `body`, and a server that answers the variable `$v`.
    fn http(body: &str) -> String {
        format!("events {{}}\nhttp {{\n{body}\n    server {{ listen 127.0.0.1:0; return 200 \"$v\"; }}\n}}\n")
    }

    #[test]
    fn keyval_lines_are_checked_with_file_and_line() {
        assert!(
            errors(&http(
                "    keyval $remote_addr $v zone=z;\n    keyval_zone zone=z:1m;"
            ))
            .is_empty(),
            "a zone declared after its use is found, as in nginx"
        );
        assert_eq!(
            errors(&http("    keyval $remote_addr $v zone=nope;")),
            ["k.conf:3: zone \"nope\" is not declared by keyval_zone in this block"]
        );
        // Each mistake is reported where it is; the `$v` it failed to define is then
        // unknown where the server uses it, which is reported too.
        for (line, want) in [
            (
                "    keyval $remote_addr v zone=z;",
                "k.conf:4: invalid variable name \"v\"",
            ),
            (
                "    keyval $remote_addr $v z;",
                "k.conf:4: invalid parameter \"z\": use zone=NAME",
            ),
        ] {
            let e = errors(&http(&format!("    keyval_zone zone=z:1m;\n{line}")));
            assert_eq!(e.first().map(String::as_str), Some(want), "{e:?}");
        }
        let e = errors(&http(
            "    keyval_zone zone=z:1m;\n    keyval $remote_addr $v zone=z;\n    keyval $uri $v zone=z;",
        ));
        assert_eq!(e, ["k.conf:5: the duplicate \"v\" variable"], "{e:?}");
        let e = errors(
            "events {}\nstream {\n    keyval_zone zone=s:1m;\n    keyval $remote_addr $r zone=t;\n}\n",
        );
        assert_eq!(
            e,
            ["k.conf:4: zone \"t\" is not declared by keyval_zone in this block"],
            "{e:?}"
        );
    }
}
