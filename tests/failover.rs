//! Partitions on real processes, through the link proxies of the cluster-tests harness:
//! an old leader cut off from the majority acknowledges no write and serves no
//! linearizable read, while the majority elects a new leader and goes on; after the
//! partition heals, every node agrees and the cut-off leader's attempt is nowhere.

use std::time::Duration;

use raftgate_cluster_tests::{eventually, Cluster, Options};

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");
const ZONE: &str = "/api/2/http/keyvals/one";
const READY: Duration = Duration::from_secs(30);

fn zone(c: &Cluster, i: usize) -> Option<serde_json::Value> {
    match c.call(i, "GET", ZONE, "") {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

#[test]
fn a_partitioned_old_leader_acknowledges_nothing_and_the_majority_goes_on() {
    let c = Cluster::start(
        BIN,
        Options {
            link_faults: true,
            ..Options::default()
        },
    );
    for i in 0..3 {
        assert!(c.wait_serving(i, ZONE, READY), "node {}", i + 1);
    }
    let old = c.leader(READY).expect("a leader");
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let (status, _) = c
        .call(old, "POST", ZONE, r#"{"before":"1"}"#)
        .expect("post");
    assert_eq!(status, 201);

    c.partition(&[old]);

    // The old leader cannot commit: it answers 503 (not applied) or 504 (unknown), never
    // 201, and refuses linearizable reads rather than serve a stale zone.
    let (status, body) = c.call(old, "POST", ZONE, r#"{"old":"1"}"#).expect("post");
    assert!(status == 503 || status == 504, "{status}: {body}");
    // The majority elects a leader and takes writes.
    let mut acked = None;
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(15), || {
            n += 1;
            let key = format!("new{n}");
            let body = format!("{{\"{key}\":\"1\"}}");
            match c.call(rest[0], "POST", ZONE, &body) {
                Ok((201, _)) => {
                    acked = Some(key);
                    true
                }
                _ => false,
            }
        }),
        "the majority never took a write"
    );
    let acked = acked.expect("acknowledged");
    let (status, body) = c.call(old, "GET", ZONE, "").expect("read");
    assert_eq!(
        status, 503,
        "a cut-off node served a linearizable read: {body}"
    );

    c.heal();
    for i in 0..3 {
        assert!(
            eventually(READY, || zone(&c, i)
                .is_some_and(|z| z.get(&acked).is_some())),
            "node {} never saw {acked} after the heal",
            i + 1
        );
        let z = zone(&c, i).expect("zone");
        assert!(
            z.get("before").is_some(),
            "node {} lost an acknowledged write",
            i + 1
        );
        assert!(
            z.get("old").is_none(),
            "node {} has the cut-off leader's write",
            i + 1
        );
    }
}
