//! `cluster { }`: this node's identity and the initial members of its Raft cluster.
//!
//! ```nginx
//! cluster {
//!     node_id 1;
//!     listen  127.0.0.1:7101;      # Raft gRPC
//!     peer 1  127.0.0.1:7101;      # every initial member, this node included
//!     peer 2  127.0.0.1:7102;
//!     peer 3  127.0.0.1:7103;
//!     data_dir /var/lib/raftgate;
//! }
//! ```
//!
//! One file is meant to serve every node, so the node id, the listen address and the data
//! directory can be overridden by flags (`--node-id`, `--raft-listen`, `--data-dir`) or the
//! environment (`RAFTGATE_NODE_ID`, `RAFTGATE_RAFT_LISTEN`, `RAFTGATE_DATA_DIR`), flags
//! winning. Without a `cluster` block a node is a single-node cluster in its data dir.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::main::MainConf;
use super::{ctx, Args, Cx, Directive, Frame, Handler, Spec};

#[derive(Debug, Clone, Default)]
pub struct ClusterConf {
    pub node_id: Option<u64>,
    /// Where this node's Raft gRPC server listens.
    pub listen: Option<SocketAddr>,
    /// Initial members: id → address other nodes dial (`host:port`).
    pub peers: BTreeMap<u64, String>,
    pub data_dir: Option<PathBuf>,
    /// `snapshot_entries`: build a snapshot after this many log entries.
    pub snapshot_entries: Option<u64>,
    /// `election_timeout`: how long followers go without hearing from a leader before
    /// one of them takes over.
    pub election_timeout: Option<std::time::Duration>,
    /// FILE:LINE of the block, for messages about the merged result.
    pub at: String,
}

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "cluster", contexts: ctx::MAIN, args: Args::Exactly(0), block: true, handler: Handler::Frame(cluster) },
    Spec { name: "node_id", contexts: ctx::CLUSTER, args: Args::Exactly(1), block: false, handler: Handler::Cluster(node_id) },
    Spec { name: "listen", contexts: ctx::CLUSTER, args: Args::Exactly(1), block: false, handler: Handler::Cluster(listen) },
    Spec { name: "peer", contexts: ctx::CLUSTER, args: Args::Exactly(2), block: false, handler: Handler::Cluster(peer) },
    Spec { name: "data_dir", contexts: ctx::CLUSTER, args: Args::Exactly(1), block: false, handler: Handler::Cluster(data_dir) },
    Spec { name: "snapshot_entries", contexts: ctx::CLUSTER, args: Args::Exactly(1), block: false, handler: Handler::Cluster(snapshot_entries) },
    Spec { name: "election_timeout", contexts: ctx::CLUSTER, args: Args::Exactly(1), block: false, handler: Handler::Cluster(election_timeout) },
];

fn cluster(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let Frame::Main(m) = frame else {
        return Err("\"cluster\" directive is not allowed here".into());
    };
    if m.cluster.is_some() {
        return Err("\"cluster\" directive is duplicate".into());
    }
    let mut c = ClusterConf {
        at: d.at(),
        ..Default::default()
    };
    super::walk(
        cx,
        &mut Frame::Cluster(&mut c),
        d.block.as_deref().unwrap_or_default(),
    );
    m.cluster = Some(c);
    Ok(())
}

fn parse_id(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid node id \"{s}\": a positive integer"))
}

fn node_id(_: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    c.node_id = Some(parse_id(d.arg(0))?);
    Ok(())
}

fn listen(_: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    c.listen = Some(
        d.arg(0)
            .parse()
            .map_err(|_| format!("invalid listen address \"{}\": use IP:PORT", d.arg(0)))?,
    );
    Ok(())
}

fn peer(_: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    let id = parse_id(d.arg(0))?;
    let addr = d.arg(1);
    if !raftgate_raft::network::is_host_port(addr) {
        return Err(format!("invalid peer address \"{addr}\": use HOST:PORT"));
    }
    if c.peers.insert(id, addr.to_string()).is_some() {
        return Err(format!("peer {id} is listed twice"));
    }
    if c.peers.values().filter(|a| *a == addr).count() > 1 {
        return Err(format!("peer address \"{addr}\" is listed twice"));
    }
    Ok(())
}

fn data_dir(cx: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    c.data_dir = Some(cx.path(d.arg(0)));
    Ok(())
}

fn snapshot_entries(_: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    let n = d
        .arg(0)
        .parse::<u64>()
        .ok()
        .filter(|n| (10..=10_000_000).contains(n))
        .ok_or_else(|| {
            format!(
                "invalid snapshot_entries \"{}\": a number of log entries from 10 to 10000000",
                d.arg(0)
            )
        })?;
    c.snapshot_entries = Some(n);
    Ok(())
}

fn election_timeout(_: &mut Cx, c: &mut ClusterConf, d: &Directive) -> Result<(), String> {
    let t = super::values::parse_time(d.arg(0))
        .ok()
        .filter(|t| {
            (std::time::Duration::from_millis(200)..=std::time::Duration::from_secs(60)).contains(t)
        })
        .ok_or_else(|| {
            format!(
                "invalid election_timeout \"{}\": a time from 200ms to 60s",
                d.arg(0)
            )
        })?;
    c.election_timeout = Some(t);
    Ok(())
}

/// Command-line and environment overrides of the `cluster` block.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub node_id: Option<u64>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// Reads `RAFTGATE_NODE_ID`, `RAFTGATE_RAFT_LISTEN` and `RAFTGATE_DATA_DIR`.
    pub fn from_env() -> Result<Overrides, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Overrides {
            node_id: var("RAFTGATE_NODE_ID").map(|v| parse_id(&v)).transpose()?,
            listen: var("RAFTGATE_RAFT_LISTEN")
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("invalid RAFTGATE_RAFT_LISTEN \"{v}\""))
                })
                .transpose()?,
            data_dir: var("RAFTGATE_DATA_DIR").map(PathBuf::from),
        })
    }

    /// `self` (flags) over `other` (environment).
    pub fn or(self, other: Overrides) -> Overrides {
        Overrides {
            node_id: self.node_id.or(other.node_id),
            listen: self.listen.or(other.listen),
            data_dir: self.data_dir.or(other.data_dir),
        }
    }
}

/// The cluster settings a node runs with, after overrides; checked as a whole.
pub fn effective(main: &MainConf, o: &Overrides) -> Result<ClusterConf, String> {
    let mut c = main.cluster.clone().unwrap_or_default();
    if o.node_id.is_some() {
        c.node_id = o.node_id;
    }
    if o.listen.is_some() {
        c.listen = o.listen;
    }
    if o.data_dir.is_some() {
        c.data_dir = o.data_dir.clone();
    }
    let at = if c.at.is_empty() {
        String::new()
    } else {
        format!("{}: ", c.at)
    };
    if c.peers.len() > 1 && c.listen.is_none() {
        return Err(format!(
            "{at}a multi-node cluster needs \"listen\" for its Raft port"
        ));
    }
    if !c.peers.is_empty() && c.node_id.is_none() {
        return Err(format!(
            "{at}a cluster with peers needs \"node_id\" (or --node-id / RAFTGATE_NODE_ID)"
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<crate::config::Config, Vec<String>> {
        crate::config::load_str(text, "c.conf", std::env::temp_dir())
    }

    const GOOD: &str = "cluster {\n node_id 2;\n listen 127.0.0.1:7102;\n peer 1 127.0.0.1:7101;\n peer 2 127.0.0.1:7102;\n peer 3 127.0.0.1:7103;\n data_dir /var/lib/raftgate;\n}\nevents {}\n";

    #[test]
    fn a_full_block_loads() {
        let c = load(GOOD).expect("loads");
        let cl = c.main.cluster.expect("cluster");
        assert_eq!(cl.node_id, Some(2));
        assert_eq!(cl.listen, "127.0.0.1:7102".parse().ok());
        assert_eq!(cl.peers.len(), 3);
        assert_eq!(cl.peers.get(&3).map(String::as_str), Some("127.0.0.1:7103"));
        assert_eq!(cl.data_dir, Some(PathBuf::from("/var/lib/raftgate")));
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        let errs = load("cluster {\n node_id 0;\n listen nowhere;\n peer 1 127.0.0.1:7101;\n peer 1 127.0.0.1:7102;\n peer 2 no-port;\n server_name x;\n}\n").expect_err("bad");
        let has = |s: &str| errs.iter().any(|e| e.contains(s));
        assert!(has("c.conf:2: invalid node id \"0\""), "{errs:?}");
        assert!(
            has("c.conf:3: invalid listen address \"nowhere\""),
            "{errs:?}"
        );
        assert!(has("c.conf:5: peer 1 is listed twice"), "{errs:?}");
        assert!(
            has("c.conf:6: invalid peer address \"no-port\""),
            "{errs:?}"
        );
        assert!(
            has("c.conf:7: unknown directive \"server_name\"")
                || has("c.conf:7: \"server_name\" directive is not allowed here"),
            "{errs:?}"
        );
        // A node outside the initial members is one that joins later.
        assert!(load("cluster {\n node_id 4;\n peer 1 127.0.0.1:7101;\n}\nevents {}\n").is_ok());
        assert!(load("cluster { }\ncluster { }\n").expect_err("dup")[0].contains("duplicate"));
    }

    #[test]
    fn election_timeout_sets_the_raft_timing_and_refuses_what_raft_cannot_use() {
        let c = load("cluster {\n election_timeout 1s;\n}\nevents {}\n").expect("loads");
        let t = c.main.cluster.expect("cluster").election_timeout;
        assert_eq!(t, Some(std::time::Duration::from_secs(1)));
        let raft = crate::cluster::NodeOptions::raft_config(None, t).expect("raft");
        assert_eq!(
            (
                raft.heartbeat_interval,
                raft.election_timeout_min,
                raft.election_timeout_max
            ),
            (250, 750, 1000)
        );
        let default = crate::cluster::NodeOptions::raft_config(None, None).expect("raft");
        assert_eq!(default.election_timeout_max, 200);
        for bad in ["100ms", "2m", "soon"] {
            let errs =
                load(&format!("cluster {{\n election_timeout {bad};\n}}\n")).expect_err("refused");
            assert!(
                errs[0].contains(&format!(
                    "c.conf:2: invalid election_timeout \"{bad}\": a time from 200ms to 60s"
                )),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn flags_and_environment_override_the_file() {
        let c = load(GOOD).expect("loads");
        let o = Overrides {
            node_id: Some(3),
            listen: "127.0.0.1:7103".parse().ok(),
            data_dir: Some(PathBuf::from("/d3")),
        };
        let e = effective(&c.main, &o).expect("effective");
        assert_eq!(
            (e.node_id, e.listen, e.data_dir),
            (
                Some(3),
                "127.0.0.1:7103".parse().ok(),
                Some(PathBuf::from("/d3"))
            )
        );
        let joining = Overrides {
            node_id: Some(9),
            ..Default::default()
        };
        assert_eq!(
            effective(&c.main, &joining).expect("joins").node_id,
            Some(9)
        );
        let flags = Overrides {
            node_id: Some(1),
            ..Default::default()
        };
        let env = Overrides {
            node_id: Some(2),
            data_dir: Some(PathBuf::from("/e")),
            ..Default::default()
        };
        let both = flags.or(env);
        assert_eq!(
            (both.node_id, both.data_dir),
            (Some(1), Some(PathBuf::from("/e")))
        );
        // Peers without a node id (and no override) would start as node 1 outside its own
        // cluster: refused.
        let anon = load("cluster {\n listen 127.0.0.1:7102;\n peer 2 127.0.0.1:7102;\n peer 3 127.0.0.1:7103;\n}\n").expect("loads");
        assert!(effective(&anon.main, &Overrides::default())
            .expect_err("no id")
            .contains("needs \"node_id\""));
        // No cluster block: a single-node cluster.
        let single = load("events {}\n").expect("loads");
        assert!(effective(&single.main, &Overrides::default())
            .expect("single")
            .peers
            .is_empty());
    }
}
