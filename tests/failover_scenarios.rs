//! Every failover scenario of `raftgate-cluster-tests`, short: a few seconds of faults
//! each (the long seeded runs are for people, see docs/cluster.md). Each must end with a
//! linearizable history in which no acknowledged write is lost.

use std::time::Duration;

use raftgate_cluster_tests::scenario::{self, Config, SCENARIOS};

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");

#[test]
fn every_scenario_keeps_the_history_linearizable() {
    for (name, _) in SCENARIOS {
        let c = Config {
            scenario: name.to_string(),
            nodes: 3,
            duration: Duration::from_secs(4),
            seed: 11,
            clients: 4,
            keys: 6,
            keep: std::env::temp_dir().join("raftgate-failover-failures"),
        };
        let report = match scenario::run(BIN.as_ref(), &c, &mut |line| eprintln!("  {line}")) {
            Ok(r) => r,
            Err(e) if e == scenario::NEEDS_ROOT => {
                eprintln!("SKIPPED: {name}: {e}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        eprintln!("{}", report.summary(&c));
        assert!(report.faults > 0, "{name}: no fault was injected");
        assert!(report.acknowledged > 0, "{name}: nothing was acknowledged");
        assert!(
            report.linearizable(),
            "{name}: {:?} (kept in {})",
            report.verdict,
            c.keep.display()
        );
        assert!(
            report.agreement.holds(),
            "{name}: nodes disagree after the faults: {:?}",
            report.agreement
        );
        assert!(
            report.agreement.sessions_checked > 0,
            "{name}: no sticky session to check"
        );
    }
}
