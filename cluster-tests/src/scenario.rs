//! Failover scenarios: a seeded fault schedule against a real cluster while clients
//! record a history, then a verdict. The same seed gives the same schedule (which
//! member, how long); what the cluster does in between is up to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::checker::{self, Kind, Outcome, Verdict};
use crate::history::{Clients, Recorder};
use crate::{eventually, Cluster, Options};

/// The scenarios, by the name the command takes.
pub const SCENARIOS: &[&str] = &[
    "leader-kill",
    "follower-kill",
    "leader-partition",
    "minority-partition",
    "leader-pause",
];

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
}

impl Report {
    pub fn linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        let mut w = self.unavailable.clone();
        w.sort();
        let i = ((w.len() as f64 - 1.0) * q).round() as usize;
        w.get(i).copied()
    }

    pub fn summary(&self, c: &Config) -> String {
        let ms =
            |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{} ms", d.as_millis()));
        format!(
            "scenario {} (nodes {}, {:?}, seed {}): operations {}, acknowledged writes {}, unknown {}, \
             faults {}, linearizable {}, lost acknowledged writes {}, write unavailability after a \
             fault: p50 {}, max {}",
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
        )
    }
}

/// Runs one scenario; `progress` is told what happens as it happens.
pub fn run(bin: &Path, c: &Config, progress: &mut dyn FnMut(&str)) -> Result<Report, String> {
    if !SCENARIOS.contains(&c.scenario.as_str()) {
        return Err(format!(
            "unknown scenario {:?}; one of {SCENARIOS:?}",
            c.scenario
        ));
    }
    let mut cluster = Cluster::start(
        bin,
        Options {
            nodes: c.nodes,
            link_faults: true,
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
    let nodes: Vec<std::net::SocketAddr> = cluster.members.iter().map(|m| m.http).collect();
    let clients = Clients::start(&rec, nodes.clone(), c.clients, c.keys, c.seed);
    let probe = Probe::start(&rec, nodes);
    let mut rng = fastrand::Rng::with_seed(c.seed);
    // A second of load before the first fault, so that every run starts from a cluster
    // that is writing.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut faults = Vec::new();
    while started.elapsed() < c.duration {
        let hold = Duration::from_millis(rng.u64(800..2500));
        let Some(leader) = cluster.leader(Duration::from_secs(10)) else {
            progress("no leader within 10 s; waiting");
            continue;
        };
        let n = cluster.members.len();
        let follower = (leader + 1 + rng.usize(..n - 1)) % n;
        let at = rec.now();
        let what = match c.scenario.as_str() {
            "leader-kill" => {
                cluster.kill9(leader);
                std::thread::sleep(hold);
                cluster.spawn(leader);
                format!(
                    "kill -9 of the leader (node {}), restarted after {hold:?}",
                    leader + 1
                )
            }
            "follower-kill" => {
                cluster.kill9(follower);
                std::thread::sleep(hold);
                cluster.spawn(follower);
                format!("kill -9 of node {}, restarted after {hold:?}", follower + 1)
            }
            "leader-partition" => {
                cluster.partition(&[leader]);
                std::thread::sleep(hold);
                cluster.heal();
                format!("the leader (node {}) cut off for {hold:?}", leader + 1)
            }
            "minority-partition" => {
                cluster.partition(&[follower]);
                std::thread::sleep(hold);
                cluster.heal();
                format!("node {} cut off for {hold:?}", follower + 1)
            }
            _ => {
                let pause = hold + Duration::from_millis(800);
                cluster.pause(leader);
                std::thread::sleep(pause);
                cluster.resume(leader);
                format!("the leader (node {}) paused for {pause:?}", leader + 1)
            }
        };
        faults.push(at);
        progress(&format!(
            "{:>5.1}s  {what}; {} operations so far",
            started.elapsed().as_secs_f64(),
            rec.ops().len()
        ));
        // Let the cluster settle before the next fault.
        let _ = eventually(Duration::from_secs(10), || {
            cluster.leader(Duration::from_millis(200)).is_some()
        });
    }
    clients.finish();
    let probes = probe.finish();
    // Every node up and joined, then one last read of every key through every node.
    cluster.heal();
    let _ = cluster.leader(Duration::from_secs(30));
    for (i, m) in cluster.members.iter().enumerate() {
        for k in 0..c.keys {
            crate::history::run_op(
                &rec,
                m.http,
                10_000 + i as u32,
                &format!("k{k}"),
                Kind::Read,
            );
        }
    }
    let ops = rec.ops();
    let verdict = checker::check(&ops);
    let is_write = |o: &checker::Op| o.kind != Kind::Read;
    // The window after a fault: until the first probe write invoked after it succeeds.
    let mut unavailable = Vec::new();
    for at in &faults {
        let back = probes
            .iter()
            .filter(|(call, _)| call >= at)
            .map(|(_, ret)| *ret)
            .min();
        if let Some(t) = back {
            unavailable.push(Duration::from_nanos(t - at));
        }
    }
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
    };
    if !report.linearizable() {
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
        format!("{}\n{:?}\n", report.summary(c), report.verdict),
    );
    for (i, m) in cluster.members.iter().enumerate() {
        let _ = std::fs::copy(
            m.dir.join("error.log"),
            dir.join(format!("node{}.log", i + 1)),
        );
    }
}

/// A writer that measures availability: every 20 ms it writes one key of its own (so the
/// clients' history is untouched) through a random node with a short timeout, and keeps
/// the (call, return) times of the writes that were acknowledged.
struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

impl Probe {
    fn start(rec: &Recorder, nodes: Vec<std::net::SocketAddr>) -> Probe {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, rec) = (stop.clone(), rec.clone());
        let thread = std::thread::spawn(move || {
            let zone = format!("/api/2/http/keyvals/{}", crate::history::ZONE);
            let timeout = Duration::from_secs(1);
            let mut ok = Vec::new();
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let addr = nodes[fastrand::usize(..nodes.len())];
                let call = rec.now();
                let body = format!("{{\"probe\":\"{n}\"}}");
                // PATCH the key, or POST it while it does not exist yet.
                let r = match crate::call_with(addr, "PATCH", &zone, &body, timeout) {
                    Ok((404, _)) => crate::call_with(addr, "POST", &zone, &body, timeout),
                    r => r,
                };
                if let Ok((201 | 204, _)) = r {
                    ok.push((call, rec.now()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            ok
        });
        Probe { stop, thread }
    }

    fn finish(self) -> Vec<(u64, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
