//! The Raft port over real gRPC: an in-process cluster on 127.0.0.1 listeners with the
//! in-memory store of `support`, applying entries with the real reducer. Every wait is
//! on observable state (openraft metrics) with a timeout, never a bare sleep.

mod support;

use std::time::Duration;

use raftgate_raft::network::{self, ForwardError, NetworkConfig, Peers, ReadIndexError};
use raftgate_raft::{Applied, Command, Entry, KeyType, Ref, Rejected, ZoneRef};
use support::{cluster, network_config, wait_applied, wait_leader, Node, WAIT};

fn zone() -> ZoneRef {
    Ref::http("one")
}

fn configure() -> Entry {
    Entry::Command(Command::ConfigureKeyvalZone {
        zone: zone(),
        capacity_bytes: 1 << 20,
        timeout_ms: None,
        key_type: KeyType::String,
    })
}

fn add(key: &str, value: &str) -> Entry {
    Entry::Command(Command::KeyvalAdd {
        zone: zone(),
        pairs: vec![(key.to_string(), value.to_string())],
        now_ms: 1_000,
    })
}

fn set(key: &str, value: &str) -> Entry {
    Entry::Command(Command::KeyvalSet {
        zone: zone(),
        key: key.to_string(),
        value: value.to_string(),
        now_ms: 1_000,
    })
}

async fn leader_of(nodes: &[Node]) -> (usize, usize) {
    let leader = wait_leader(&nodes[0]).await;
    let l = nodes
        .iter()
        .position(|n| n.id == leader)
        .expect("leader is a member");
    let f = (l + 1) % nodes.len();
    (l, f)
}

async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_forwards_writes_and_reads_through_the_leader() {
    let nodes = cluster(3).await;
    let (l, f) = leader_of(&nodes).await;
    let (leader, follower) = (&nodes[l], &nodes[f]);

    // A write forwarded from a follower commits and answers the reducer's result.
    let (done, _) = follower
        .peers
        .forward(leader.id, &configure())
        .await
        .expect("configure commits");
    assert_eq!(done, Ok(Applied::Done));
    let (done, log_id) = follower
        .peers
        .forward(leader.id, &add("k", "v"))
        .await
        .expect("add commits");
    assert_eq!(done, Ok(Applied::Done));

    // A rejection is the reducer's answer too, carried back intact.
    let (rejected, _) = follower
        .peers
        .forward(leader.id, &set("nope", "v"))
        .await
        .expect("commits");
    assert_eq!(
        rejected,
        Err(Rejected::KeyNotFound {
            key: "nope".to_string()
        })
    );

    // Read-your-writes on the accepting node.
    assert!(network::wait_applied(&follower.raft, log_id.index, WAIT).await);
    assert_eq!(
        follower.sm.state().await.keyval_get(&zone(), "k"),
        Some("v")
    );

    // The read index a follower gets covers the write.
    let index = follower
        .peers
        .read_index(leader.id)
        .await
        .expect("read index");
    assert!(
        index >= log_id.index,
        "read index {index} < write {}",
        log_id.index
    );

    // A node that is not the leader proposes nothing and names the leader.
    let third = &nodes[(f + 1) % 3];
    assert_ne!(third.id, leader.id);
    let err = leader
        .peers
        .forward(follower.id, &set("k", "w"))
        .await
        .expect_err("a follower does not propose");
    assert_eq!(
        err,
        ForwardError::NotLeader {
            leader: Some(leader.id),
            addr: Some(leader.addr.to_string())
        }
    );
    assert!(err.not_applied());
    let err = third
        .peers
        .read_index(follower.id)
        .await
        .expect_err("a follower gives no read index");
    assert!(matches!(err, ReadIndexError::NotLeader { leader: Some(id), .. } if id == leader.id));
    shutdown(nodes).await;
}

/// A replication client's AppendEntries travel on one long-lived call, paired with their
/// answers by order alone. One that went out and was then cancelled (openraft drops a
/// replication call that outlives its timeout) must not hand its late answer to the
/// next request: a stale `Success` for a request the follower refused would let a
/// leader count entries the follower does not have.
///
/// Single-threaded, so nothing else runs while the exchange is polled once: its answer
/// cannot have arrived by then.
#[tokio::test]
async fn a_cancelled_append_never_answers_the_next_one() {
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};

    let nodes = cluster(3).await;
    let (_, f) = leader_of(&nodes).await;
    let follower = &nodes[f];
    let metrics = follower
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| {
                m.last_applied
                    .is_some_and(|a| Some(a.index) == m.last_log_index)
            },
            "the follower has applied its whole log",
        )
        .await
        .expect("the follower settles");
    let vote = metrics.vote;
    let last = metrics
        .last_applied
        .expect("the cluster has applied its membership");
    let request = |prev| AppendEntriesRequest::<raftgate_raft::types::TypeConfig> {
        vote,
        prev_log_id: prev,
        entries: vec![],
        leader_commit: Some(last),
    };
    let option = || RPCOption::new(Duration::from_secs(5));
    let mut peers = Peers::new(network_config());
    let mut client = peers.new_client(follower.id, &follower.node()).await;
    // The first answer makes the client a replication client; the second call opens
    // its long-lived call.
    for _ in 0..2 {
        let answer = client.append_entries(request(Some(last)), option()).await;
        assert!(
            matches!(answer, Ok(AppendEntriesResponse::Success)),
            "{answer:?}"
        );
    }
    // Polled once, so sent on the open call, then dropped before its answer (Success)
    // can have been read.
    let cancelled = tokio::select! {
        biased;
        answer = client.append_entries(request(Some(last)), option()) => Some(answer),
        _ = std::future::ready(()) => None,
    };
    assert!(
        cancelled.is_none(),
        "answered within one poll: {cancelled:?}"
    );
    // A previous entry the follower does not hold: it must answer Conflict.
    let missing = openraft::LogId::new(last.leader_id, last.index + 1_000);
    let answer = client
        .append_entries(request(Some(missing)), option())
        .await;
    assert!(
        matches!(answer, Ok(AppendEntriesResponse::Conflict)),
        "{answer:?}"
    );
    shutdown(nodes).await;
}

/// Concurrent linearizable reads share leadership rounds, and each still gets a read
/// index at least as new as the last write acknowledged before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_leadership_rounds() {
    let nodes = cluster(3).await;
    let (l, _) = leader_of(&nodes).await;
    let leader = &nodes[l];
    let proposer = network::Proposer::new(leader.raft.clone(), WAIT, 2);
    let (_, written) = proposer.propose(configure()).await.expect("configure");
    let reads: Vec<_> = (0..64)
        .map(|_| {
            let proposer = proposer.clone();
            tokio::spawn(async move { proposer.read_index(WAIT).await })
        })
        .collect();
    for read in reads {
        let index = read.await.expect("join").expect("read index");
        assert!(
            index >= written.index,
            "read index {index} < {}",
            written.index
        );
    }
    let rounds = proposer.read_rounds();
    assert!((1..64).contains(&rounds), "{rounds} rounds for 64 reads");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_without_a_quorum_is_unknown_not_unapplied() {
    let mut nodes = cluster(3).await;
    let (l, f) = leader_of(&nodes).await;
    let t = 3 - l - f;
    let (done, _) = nodes[f]
        .peers
        .forward(nodes[l].id, &configure())
        .await
        .expect("configure");
    assert_eq!(done, Ok(Applied::Done));

    // Both followers stop accepting Raft traffic; their own calls still go out, so a
    // follower can still reach the leader, which can propose but never commit.
    nodes[f].stop_listener().await;
    nodes[t].stop_listener().await;
    let err = nodes[f]
        .peers
        .forward(nodes[l].id, &add("k", "v"))
        .await
        .expect_err("no quorum");
    assert!(matches!(err, ForwardError::Unknown { .. }), "{err}");
    assert!(
        !err.not_applied(),
        "a proposed write must not be reported as not applied"
    );
    let read = nodes[f].peers.read_index(nodes[l].id).await;
    assert!(read.is_err(), "no read index without a quorum: {read:?}");

    nodes[f].restart_listener().await;
    nodes[t].restart_listener().await;
    shutdown(nodes).await;
}

#[tokio::test]
async fn unreachable_leader_means_not_sent_and_backs_off() {
    let config = NetworkConfig {
        backoff_base: Duration::from_secs(30),
        ..NetworkConfig::default()
    };
    let peers = Peers::new(config);
    // Nothing listens on a port we just bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    peers.set_addr(7, &format!("127.0.0.1:{port}"));

    let err = peers
        .forward(7, &configure())
        .await
        .expect_err("nobody listens");
    assert!(
        matches!(err, ForwardError::Unreachable { target: 7, .. }),
        "{err}"
    );
    assert!(err.not_applied());
    // Inside the backoff window a call fails at once without touching the network.
    let err = peers
        .forward(7, &configure())
        .await
        .expect_err("backing off");
    match err {
        ForwardError::Unreachable { reason, .. } => assert!(reason.contains("backoff"), "{reason}"),
        other => panic!("unexpected {other}"),
    }
    let err = peers.read_index(8).await.expect_err("unknown node");
    assert!(matches!(err, ReadIndexError::Unreachable { target: 8, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reconnects_after_its_listener_restarts() {
    let mut nodes = cluster(3).await;
    let (l, f) = leader_of(&nodes).await;

    nodes[f].stop_listener().await;
    // Two of three still commit.
    let commit = Duration::from_secs(10);
    let (done, _) = network::propose(&nodes[l].raft, configure(), commit)
        .await
        .expect("configure commits without the follower");
    assert_eq!(done, Ok(Applied::Done));
    let (_, log_id) = network::propose(&nodes[l].raft, add("while", "down"), commit)
        .await
        .expect("set commits without the follower");

    let missed = nodes[f].raft.metrics().borrow().last_applied;
    assert!(
        missed < Some(log_id),
        "the follower could not have received the entry"
    );

    nodes[f].restart_listener().await;
    // The leader reconnects (after backing off) and the follower catches up. Leadership
    // may move meanwhile; the entry is committed, so every node ends up applying it.
    wait_applied(&nodes[f], log_id.index).await;
    assert_eq!(
        nodes[f].sm.state().await.keyval_get(&zone(), "while"),
        Some("down")
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_learner_catches_up_through_a_streamed_snapshot() {
    let mut nodes = cluster(3).await;
    let (l, _) = leader_of(&nodes).await;
    let commit = Duration::from_secs(10);
    let (done, _) = network::propose(&nodes[l].raft, configure(), commit)
        .await
        .expect("configure");
    assert_eq!(done, Ok(Applied::Done));
    let (_, mut last) = network::propose(&nodes[l].raft, add("k", "0"), commit)
        .await
        .expect("add");
    for i in 1..=30 {
        let (done, log_id) = network::propose(&nodes[l].raft, set("k", &i.to_string()), commit)
            .await
            .expect("set");
        assert_eq!(done, Ok(Applied::Done));
        last = log_id;
    }
    let last = last.index;

    let leader = nodes[l].raft.clone();
    leader.trigger().snapshot().await.expect("trigger snapshot");
    leader
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .expect("snapshot built");
    leader
        .trigger()
        .purge_log(last)
        .await
        .expect("trigger purge");
    leader
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await
        .expect("log purged up to the snapshot");

    let learner = Node::start(4).await;
    leader
        .add_learner(learner.id, learner.node(), true)
        .await
        .expect("learner added");
    wait_applied(&learner, last).await;
    // The purged log could only reach it as a snapshot.
    let m = learner.raft.metrics().borrow().clone();
    assert!(m.snapshot.is_some_and(|s| s.index >= last), "{m:?}");
    assert_eq!(learner.sm.state().await, nodes[l].sm.state().await);
    nodes.push(learner);
    shutdown(nodes).await;
}

#[test]
fn snapshot_deadline_grows_with_size_and_backoff_is_capped() {
    let c = NetworkConfig::default();
    assert_eq!(c.snapshot_deadline(0), Duration::from_secs(5));
    assert_eq!(c.snapshot_deadline(1), Duration::from_secs(6));
    assert_eq!(
        c.snapshot_deadline(10 * 1024 * 1024),
        Duration::from_secs(15)
    );
    assert_eq!(c.backoff_after(1), Duration::from_millis(50));
    assert_eq!(c.backoff_after(2), Duration::from_millis(100));
    assert_eq!(c.backoff_after(5), Duration::from_millis(800));
    assert_eq!(c.backoff_after(6), Duration::from_secs(1));
    assert_eq!(c.backoff_after(1000), Duration::from_secs(1));
}
