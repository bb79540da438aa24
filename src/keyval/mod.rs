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
];

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
