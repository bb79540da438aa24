//! Failover scenarios: a seeded fault schedule against a real cluster while clients
//! record a history, then a verdict. The same seed gives the same schedule (which
//! member, how long); what the cluster does in between is up to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agreement::{self, Agreement, Backends, Traffic};
use crate::checker::{self, Kind, Outcome, Verdict};
use crate::history::{Clients, Nodes, Recorder};
use crate::probe::Probe;
use crate::schedule::{self, World};
use crate::{eventually, Cluster, Options};

pub use crate::schedule::SCENARIOS;

/// Why `full-disk` cannot run here.
pub const NEEDS_ROOT: &str =
    "full-disk needs to mount a tmpfs for each data directory: run it as root (or with CAP_SYS_ADMIN)";

#[derive(Debug, Clone)]
pub struct Config {
    pub scenario: String,
    pub nodes: u64,
    pub duration: Duration,
    pub seed: u64,
    pub clients: u32,
    pub keys: u32,
    /// Where a failing run keeps its history, logs and report.
    pub keep: PathBuf,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    pub operations: usize,
    pub acknowledged: usize,
    pub unknown: usize,
    pub faults: usize,
    pub verdict: Verdict,
    /// After each fault: how long until a write was acknowledged again.
    pub unavailable: Vec<Duration>,
    /// Sticky sessions and drain flags across the nodes once the faults stopped.
    pub agreement: Agreement,
}

impl Report {
    pub fn linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }

    /// The run's verdict: a linearizable history (so no acknowledged write lost, no
    /// value nobody wrote) and nodes that agree.
    pub fn passed(&self) -> bool {
        self.linearizable() && self.agreement.holds()
    }

    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut w = self.unavailable.clone();
        w.sort();
        let i = ((w.len() as f64 - 1.0) * q).round() as usize;
        w.get(i).copied()
    }

    pub fn summary(&self, c: &Config) -> String {
        let ms =
            |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{} ms", d.as_millis()));
        let a = &self.agreement;
        format!(
            "scenario {} (nodes {}, {:?}, seed {}): operations {}, acknowledged writes {}, unknown {}, \
             faults {}, linearizable {}, lost acknowledged writes {}, write unavailability after a \
             fault: p50 {}, max {}; sticky sessions checked {}, split {}, drain flags agree {}; \
             verdict {}",
            c.scenario,
            c.nodes,
            c.duration,
            c.seed,
            self.operations,
            self.acknowledged,
            self.unknown,
            self.faults,
            if self.linearizable() { "yes" } else { "NO" },
            if self.linearizable() { "0" } else { "see the history" },
            ms(self.quantile(0.5)),
            ms(self.quantile(1.0)),
            a.sessions_checked,
            a.sessions_split.len(),
            if a.drain_agrees { "yes" } else { "NO" },
            if self.passed() { "PASS" } else { "FAIL" },
        )
    }
}

/// Runs one scenario; `progress` is told what happens as it happens.
pub fn run(bin: &Path, c: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report, String> {
    if !SCENARIOS.iter().any(|(n, _)| *n == c.scenario) {
        let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown scenario {:?}; one of {names:?}",
            c.scenario
        ));
    }
    let full_disk = c.scenario == "full-disk";
    if full_disk && !crate::faults::can_mount_tmpfs() {
        return Err(NEEDS_ROOT.into());
    }
    let backends = Backends::start();
    let mut cluster = Cluster::start(
        bin,
        Options {
            nodes: c.nodes,
            link_faults: true,
            data_tmpfs_mib: full_disk.then_some(256),
            http: format!(
                "keyval_zone zone={}:1m;\n{}",
                crate::history::ZONE,
                backends.http_conf()
            ),
            server: Backends::server_conf(),
            ..Options::default()
        },
    );
    let zone = format!("/api/2/http/keyvals/{}", crate::history::ZONE);
    for i in 0..cluster.members.len() {
        if !cluster.wait_serving(i, &zone, Duration::from_secs(30)) {
            return Err(format!("node {} never served the zone", i + 1));
        }
    }
    let rec = Recorder::default();
    let nodes = Nodes::new(cluster.members.iter().map(|m| m.http).collect());
    let clients = Clients::start(&rec, &nodes, c.clients, c.keys, c.seed);
    let traffic = Traffic::start(&nodes, c.seed);
    let mut probe = Probe::start(&rec, &nodes.all());
    let mut rng = fastrand::Rng::with_seed(c.seed);
    // A second of load before the first fault, so that every run starts from a cluster
    // that is writing.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut faults = Vec::new();
    while started.elapsed() < c.duration {
        let injected = schedule::inject(
            &c.scenario,
            &mut World {
                cluster: &mut cluster,
                rec: &rec,
                nodes: &nodes,
                probe: &mut probe,
                rng: &mut rng,
            },
        );
        let injected = match injected {
            Ok(i) => i,
            Err(e) => {
                clients.finish();
                traffic.finish();
                probe.finish();
                return Err(e);
            }
        };
        if injected.is_empty() {
            progress("no leader within 10 s; waiting");
        }
        // Let the cluster settle before the next fault: a leader every node names.
        let _ = eventually(Duration::from_secs(10), || {
            cluster.leader(Duration::from_millis(200)).is_some()
        });
        for f in injected {
            // Writable again, or not within 10 s (then the window is left open).
            let _ = eventually(Duration::from_secs(10), || {
                probe.window_after(f.at).is_some()
            });
            let window = probe
                .window_after(f.at)
                .map_or("none within 10 s".to_string(), |w| {
                    format!("{} ms", w.as_millis())
                });
            progress(&format!(
                "{:>5.1}s  {}; writable again after {window}; {} operations so far",
                started.elapsed().as_secs_f64(),
                f.what,
                rec.len()
            ));
            faults.push(f.at);
        }
    }
    clients.finish();
    let sessions = traffic.finish();
    // Every node up and joined, then one last read of every key through every node.
    cluster.heal();
    let _ = cluster.leader(Duration::from_secs(30));
    let live = nodes.all();
    for (i, addr) in live.iter().enumerate() {
        for k in 0..c.keys {
            crate::history::run_op(&rec, *addr, 10_000 + i as u32, &format!("k{k}"), Kind::Read);
        }
    }
    // A fault after which no write was acknowledged before the end counts as a window
    // that lasted until the end.
    let end = rec.now();
    let unavailable: Vec<Duration> = faults
        .iter()
        .map(|at| {
            probe
                .window_after(*at)
                .unwrap_or(Duration::from_nanos(end.saturating_sub(*at)))
        })
        .collect();
    probe.finish();
    let agreement = agreement::check(&live, &sessions, 200);
    let ops = rec.ops();
    let verdict = checker::check(&ops);
    let is_write = |o: &checker::Op| o.kind != Kind::Read;
    let report = Report {
        operations: ops.len(),
        acknowledged: ops
            .iter()
            .filter(|o| is_write(o) && o.outcome != Outcome::Unknown)
            .count(),
        unknown: ops.iter().filter(|o| o.outcome == Outcome::Unknown).count(),
        faults: faults.len(),
        verdict,
        unavailable,
        agreement,
    };
    if !report.passed() {
        keep(&cluster, c, &report, &ops);
    }
    Ok(report)
}

/// Keeps a failing run: the history (one JSON object per line), each node's error log,
/// and the report.
fn keep(cluster: &Cluster, c: &Config, report: &Report, ops: &[checker::Op]) {
    let dir = c.keep.join(format!("{}-seed{}", c.scenario, c.seed));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let lines: Vec<String> = ops
        .iter()
        .map(|o| {
            serde_json::json!({
                "client": o.client, "key": o.key, "kind": format!("{:?}", o.kind),
                "call_ns": o.call, "ret_ns": o.ret, "outcome": format!("{:?}", o.outcome),
            })
            .to_string()
        })
        .collect();
    let _ = std::fs::write(dir.join("history.jsonl"), lines.join("\n"));
    let _ = std::fs::write(
        dir.join("report.txt"),
        format!(
            "{}\n{:?}\nsticky sessions routed differently by two nodes: {:?}\n",
            report.summary(c),
            report.verdict,
            report.agreement.sessions_split
        ),
    );
    for (i, m) in cluster.members.iter().enumerate() {
        let _ = std::fs::copy(
            m.dir.join("error.log"),
            dir.join(format!("node{}.log", i + 1)),
        );
    }
}
