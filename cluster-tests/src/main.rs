//! raftgate-cluster-tests: the multi-process failover harness (issue 6).
//!
//! The harness starts real `raftgate` processes; until the replicated state exists
//! there is nothing to fail over, so the command says so instead of pretending.

fn main() {
    eprintln!(
        "raftgate-cluster-tests: no scenarios yet; they arrive with the replicated state \
         (see docs/cluster.md once it exists)"
    );
    std::process::exit(2);
}
