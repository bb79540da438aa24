//! Cluster nodes in one process, each with its own sled store on disk and its own gRPC
//! listener on 127.0.0.1: writes through any node, read-your-writes, leader loss,
//! restart from disk. Every wait is on observable state with a limit, never a sleep.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use raftgate::cluster::{Node, NodeOptions, WriteError};
use raftgate_raft::network::NetworkConfig;
use raftgate_raft::{Applied, Command, Entry, KeyType, Ref, Rejected, Request, ZoneRef};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

fn zone() -> ZoneRef {
    Ref::http("z")
}

fn configure() -> Entry {
    Entry::Command(Command::ConfigureKeyvalZone {
        zone: zone(),
        capacity_bytes: 1 << 20,
        timeout_ms: None,
        key_type: KeyType::String,
    })
}

fn add(k: &str, v: &str) -> Entry {
    Entry::Command(Command::KeyvalAdd {
        zone: zone(),
        pairs: vec![(k.into(), v.into())],
        now_ms: 1,
    })
}

fn read(node: &Node, k: &str) -> Option<String> {
    node.reader
        .load()
        .state()
        .keyval_get(&zone(), k)
        .map(String::from)
}

/// Node 1 of a single-node cluster in `dir`, without a Raft listener.
fn single_node(dir: &std::path::Path) -> NodeOptions {
    NodeOptions {
        id: 1,
        listener: None,
        members: BTreeMap::from([(1, String::new())]),
        data_dir: dir.to_path_buf(),
        raft: NodeOptions::raft_config(None, None).expect("config"),
        network: NetworkConfig::default(),
    }
}

struct Cluster {
    dirs: Vec<PathBuf>,
    addrs: BTreeMap<u64, String>,
    nodes: Vec<Option<Node>>,
}

fn network() -> NetworkConfig {
    NetworkConfig {
        commit_timeout: Duration::from_secs(3),
        read_index_timeout: Duration::from_secs(3),
        ..NetworkConfig::default()
    }
}

impl Cluster {
    async fn new(n: u64) -> Cluster {
        let base = std::env::temp_dir().join(format!(
            "raftgate-node-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut listeners = Vec::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.insert(id, l.local_addr().expect("addr").to_string());
            listeners.push(l);
        }
        let dirs: Vec<PathBuf> = (1..=n).map(|id| base.join(format!("n{id}"))).collect();
        let mut c = Cluster {
            dirs,
            addrs,
            nodes: Vec::new(),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            let node = c.start(i as u64 + 1, l).await;
            c.nodes.push(Some(node));
        }
        c
    }

    async fn start(&self, id: u64, listener: TcpListener) -> Node {
        Node::start(NodeOptions {
            id,
            listener: Some(listener),
            members: self.addrs.clone(),
            data_dir: self.dirs[(id - 1) as usize].clone(),
            raft: NodeOptions::raft_config(None, None).expect("config"),
            network: network(),
        })
        .await
        .expect("node starts")
    }

    /// Restarts node `id` on its old address and data directory.
    async fn restart(&mut self, id: u64) {
        if let Some(n) = self.nodes[(id - 1) as usize].take() {
            n.shutdown().await;
        }
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(&self.addrs[&id]).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addrs[&id]),
            }
        };
        let node = self.start(id, listener).await;
        self.nodes[(id - 1) as usize] = Some(node);
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes[(id - 1) as usize].as_ref().expect("running")
    }

    async fn leader(&self) -> u64 {
        let any = self.nodes.iter().flatten().next().expect("a running node");
        any.leader(WAIT).await.expect("a leader is elected")
    }

    async fn stop(mut self) {
        for n in self.nodes.iter_mut() {
            if let Some(n) = n.take() {
                n.shutdown().await;
            }
        }
        if let Some(base) = self.dirs.first().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_any_node_is_read_there_at_once_and_everywhere_after_a_barrier() {
    let c = Cluster::new(3).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let (r, _) = c
        .node(follower)
        .write(configure(), WAIT)
        .await
        .expect("configure");
    assert_eq!(r, Ok(Applied::Done));
    for i in 0..20 {
        let via = (i % 3) + 1;
        let (r, _) = c
            .node(via)
            .write(add(&format!("k{i}"), "v"), WAIT)
            .await
            .expect("write");
        assert_eq!(r, Ok(Applied::Done));
        assert_eq!(
            read(c.node(via), &format!("k{i}")).as_deref(),
            Some("v"),
            "read-your-writes on node {via}"
        );
    }
    // The reducer's rejections come back as answers, not transport errors.
    let (r, _) = c
        .node(follower)
        .write(add("k0", "again"), WAIT)
        .await
        .expect("answered");
    assert!(matches!(r, Err(Rejected::KeyExists { .. })), "{r:?}");
    for id in 1..=3 {
        c.node(id).read_barrier(WAIT).await.expect("read barrier");
        assert_eq!(
            read(c.node(id), "k19").as_deref(),
            Some("v"),
            "node {id} after a read barrier"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_keeps_every_acknowledged_write_and_restart_keeps_state() {
    let mut c = Cluster::new(3).await;
    let first = c.leader().await;
    let via = (1..=3).find(|id| *id != first).expect("a follower");
    assert_eq!(
        c.node(via)
            .write(configure(), WAIT)
            .await
            .expect("configure")
            .0,
        Ok(Applied::Done)
    );
    let mut acked = Vec::new();
    for i in 0..10 {
        assert_eq!(
            c.node(via)
                .write(add(&format!("a{i}"), "1"), WAIT)
                .await
                .expect("write")
                .0,
            Ok(Applied::Done)
        );
        acked.push(format!("a{i}"));
    }
    // Stop the leader: the other two elect a new one and writes resume.
    if let Some(n) = c.nodes[(first - 1) as usize].take() {
        n.shutdown().await;
    }
    let mut resumed = false;
    for i in 0..50 {
        match c.node(via).write(add(&format!("b{i}"), "2"), WAIT).await {
            Ok(_) => {
                acked.push(format!("b{i}"));
                resumed = true;
                if acked.len() >= 15 {
                    break;
                }
            }
            Err(WriteError::NotApplied(_)) | Err(WriteError::Unknown(_)) => continue,
        }
    }
    assert!(resumed, "writes resume after the leader is lost");
    let second = c.node(via).leader(WAIT).await.expect("new leader");
    assert_ne!(second, first);
    // Restart every node from disk: all acknowledged writes are there.
    c.restart(first).await;
    for id in 1..=3 {
        c.restart(id).await;
    }
    let _ = c.leader().await;
    for id in 1..=3 {
        c.node(id)
            .read_barrier(WAIT)
            .await
            .expect("barrier after restart");
        for k in &acked {
            assert!(
                read(c.node(id), k).is_some(),
                "acknowledged write {k} lost on node {id}"
            );
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_without_peers_elects_itself_and_keeps_state_across_restarts() {
    let dir = std::env::temp_dir().join(format!(
        "raftgate-single-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let opts = || single_node(&dir);
    let node = Node::start(opts()).await.expect("start");
    assert_eq!(node.leader(WAIT).await, Some(1));
    assert_eq!(
        node.write(configure(), WAIT).await.expect("configure").0,
        Ok(Applied::Done)
    );
    assert_eq!(
        node.write(add("solo", "yes"), WAIT).await.expect("write").0,
        Ok(Applied::Done)
    );
    node.shutdown().await;
    let node = Node::start(opts()).await.expect("restart");
    assert_eq!(
        read(&node, "solo").as_deref(),
        Some("yes"),
        "state is back before Raft runs"
    );
    assert_eq!(node.leader(WAIT).await, Some(1));
    assert_eq!(
        node.write(add("again", "ok"), WAIT)
            .await
            .expect("write after restart")
            .0,
        Ok(Applied::Done)
    );
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_another_cluster_is_refused_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!(
        "raftgate-ident-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let single = single_node(&dir);
    let node = Node::start(single).await.expect("single node");
    assert_eq!(
        node.write(configure(), WAIT).await.expect("write").0,
        Ok(Applied::Done)
    );
    node.shutdown().await;
    // The same directory under a three-member cluster: refused before Raft starts.
    let three = NodeOptions {
        id: 1,
        listener: None,
        members: BTreeMap::from([
            (1, "127.0.0.1:1".into()),
            (2, "127.0.0.1:2".into()),
            (3, "127.0.0.1:3".into()),
        ]),
        data_dir: dir.clone(),
        raft: NodeOptions::raft_config(None, None).expect("config"),
        network: NetworkConfig::default(),
    };
    let err = Node::start(three).await.expect_err("refused");
    assert!(
        err.contains("belongs to a cluster formed by nodes [1]") && err.contains("[1,2,3]"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_resolves_once_raft_stops_so_the_process_can_exit() {
    let dir = std::env::temp_dir().join(format!(
        "raftgate-failed-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let node = std::sync::Arc::new(Node::start(single_node(&dir)).await.expect("start"));
    assert_eq!(node.leader(WAIT).await, Some(1));
    let watcher = {
        let node = node.clone();
        tokio::spawn(async move { node.failed().await })
    };
    assert!(!watcher.is_finished(), "a running node has not failed");
    node.raft.shutdown().await.expect("shutdown");
    let why = tokio::time::timeout(WAIT, watcher)
        .await
        .expect("failed() resolved")
        .expect("task");
    assert!(!why.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

type WriteResult =
    Result<(raftgate_raft::types::Response, raftgate_raft::types::LogId), WriteError>;

/// Polls every future to completion, in order of their results (no `futures` crate).
async fn join_all<T>(
    mut futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + '_>>>,
) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_each_gets_its_own_answer() {
    let c = Cluster::new(3).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let (configured, _) = c
        .node(leader)
        .write(configure(), WAIT)
        .await
        .expect("configure");
    assert_eq!(configured, Ok(Applied::Done));
    let last = |id| {
        c.node(id)
            .raft
            .metrics()
            .borrow()
            .last_log_index
            .unwrap_or(0)
    };
    let before = last(leader);
    // 200 API-style requests through the leader and a follower at once; the last one
    // adds a key that the first one adds too.
    let n = 200u64;
    let futs = (0..n)
        .map(|i| {
            let key = if i == n - 1 {
                "k0".to_string()
            } else {
                format!("k{i}")
            };
            let entry = Entry::Request(Request {
                client: 1000 + u128::from(i),
                serial: 1,
                command: Command::KeyvalAdd {
                    zone: zone(),
                    pairs: vec![(key, "v".into())],
                    now_ms: 1,
                },
            });
            let node = c.node(if i % 2 == 0 { leader } else { follower });
            let mine = format!("k{}", if i == n - 1 { 0 } else { i });
            // Batched or not, the accepting node has applied the write when it answers.
            Box::pin(async move {
                let r = node.write(entry, WAIT).await;
                (r, read(node, &mine).is_some())
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = (WriteResult, bool)> + Send + '_>,
                >
        })
        .collect();
    let results = join_all(futs).await;
    assert!(
        results.iter().all(|(_, seen)| *seen),
        "a write not yet applied on the node that answered it"
    );
    let answers: Vec<_> = results
        .into_iter()
        .map(|(r, _)| r.expect("committed").0)
        .collect();
    let refused = answers.iter().filter(|a| a.is_err()).count();
    assert_eq!(
        refused, 1,
        "exactly one of the two adds of k0 is refused: {answers:?}"
    );
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(Applied::Done) | Err(Rejected::KeyExists { .. }))));
    let entries = last(leader) - before;
    eprintln!("{n} concurrent writes took {entries} log entries");
    assert!(entries < n, "no batching: {entries} entries for {n} writes");
    for i in 0..n - 1 {
        assert_eq!(
            read(c.node(follower), &format!("k{i}")).as_deref(),
            Some("v")
        );
    }
    c.stop().await;
}
