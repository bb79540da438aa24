//! raftgate-cluster-tests: failover runs against your raftgate build.
//!
//!     cargo run --release -p raftgate-cluster-tests -- --scenario leader-kill \
//!         --nodes 3 --duration 60s --seed 7 [--bin target/release/raftgate]
//!
//! Starts real raftgate processes on loopback, drives clients through the keyvals API
//! of random nodes while it injects the scenario's faults, then checks the recorded
//! history for linearizability and prints the verdict. Exit status 0 when the history
//! is linearizable and the nodes agree on sticky sessions and drain flags, 1 when
//! not (the history, node logs and a report are kept),
//! 2 on a usage or setup error.

use std::path::PathBuf;
use std::time::Duration;

use raftgate_cluster_tests::scenario::{self, Config, SCENARIOS};

fn usage() -> String {
    format!(
        "usage: raftgate-cluster-tests --scenario NAME [--nodes N] [--duration 60s] [--seed S] \
         [--clients C] [--keys K] [--bin PATH] [--keep DIR]\nscenarios:\n{}",
        SCENARIOS
            .iter()
            .map(|(n, what)| format!("  {n}: {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

fn duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("invalid duration {s:?}")),
    }
}

fn parse(args: &[String]) -> Result<(Config, PathBuf), String> {
    let mut c = Config {
        scenario: String::new(),
        nodes: 3,
        duration: Duration::from_secs(60),
        seed: 1,
        clients: 6,
        keys: 8,
        keep: PathBuf::from("cluster-tests-failures"),
    };
    let mut bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--scenario" => c.scenario = value()?.clone(),
            "--nodes" => c.nodes = value()?.parse().map_err(|_| "invalid --nodes")?,
            "--duration" => c.duration = duration(value()?)?,
            "--seed" => c.seed = value()?.parse().map_err(|_| "invalid --seed")?,
            "--clients" => c.clients = value()?.parse().map_err(|_| "invalid --clients")?,
            "--keys" => c.keys = value()?.parse().map_err(|_| "invalid --keys")?,
            "--bin" => bin = Some(PathBuf::from(value()?)),
            "--keep" => c.keep = PathBuf::from(value()?),
            o => return Err(format!("unknown argument {o:?}")),
        }
    }
    if c.scenario.is_empty() {
        return Err("--scenario is required".into());
    }
    if c.nodes < 3 {
        return Err("--nodes must be at least 3".into());
    }
    let bin = bin
        .or_else(|| {
            ["target/release/raftgate", "target/debug/raftgate"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .ok_or("no raftgate binary: build it (cargo build --release) or pass --bin")?;
    Ok((c, bin))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, bin) = match parse(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("raftgate-cluster-tests: {e}\n{}", usage());
            std::process::exit(2);
        }
    };
    eprintln!(
        "raftgate-cluster-tests: {} with {}",
        config.scenario,
        bin.display()
    );
    match scenario::run(&bin, &config, &mut |line| eprintln!("  {line}")) {
        Ok(report) => {
            println!("{}", report.summary(&config));
            if !report.passed() {
                println!("kept in {}: {:?}", config.keep.display(), report.verdict);
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("raftgate-cluster-tests: {e}");
            std::process::exit(2);
        }
    }
}
