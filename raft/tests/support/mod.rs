//! A node of an in-process cluster: a real `Raft` with the in-memory store, served
//! over real gRPC on a 127.0.0.1 listener.

pub mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config};
use raftgate_raft::network::{self, NetworkConfig, Peers};
use raftgate_raft::types::Raft;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use store::{LogStore, StateMachine};

/// Generous for slow CI machines; every wait returns as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn raft_config() -> Arc<Config> {
    let config = Config {
        cluster_name: "raftgate-test".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // Snapshots only when a test asks for one.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// Short commit and read-index waits so the "outcome unknown" test is quick.
pub fn network_config() -> NetworkConfig {
    NetworkConfig {
        commit_timeout: Duration::from_secs(1),
        read_index_timeout: Duration::from_secs(1),
        ..NetworkConfig::default()
    }
}

pub struct Node {
    pub id: u64,
    pub addr: SocketAddr,
    pub raft: Raft,
    pub peers: Peers,
    pub sm: StateMachine,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Node {
    pub async fn start(id: u64) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let peers = Peers::new(network_config());
        let sm = StateMachine::default();
        let raft = Raft::new(
            id,
            raft_config(),
            peers.clone(),
            LogStore::default(),
            sm.clone(),
        )
        .await
        .expect("raft starts");
        peers.track(&raft);
        let mut node = Node {
            id,
            addr,
            raft,
            peers,
            sm,
            server: None,
        };
        node.serve(listener);
        node
    }

    pub fn node(&self) -> BasicNode {
        BasicNode {
            addr: self.addr.to_string(),
        }
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let svc = network::service_with(self.raft.clone(), network_config());
        let task = tokio::spawn(async move {
            network::serve(listener, svc, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        self.server = Some((stop, task));
    }

    /// Takes the Raft port down (the node itself keeps running) and waits until the
    /// listener and every connection are closed.
    pub async fn stop_listener(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.await.expect("server task");
        }
    }

    /// Serves the Raft port again on the same address.
    pub async fn restart_listener(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind same port");
        self.serve(listener);
    }

    pub async fn shutdown(mut self) {
        self.stop_listener().await;
        self.raft.shutdown().await.expect("raft shuts down");
    }
}

/// Starts `n` nodes (ids 1..=n), initializes them as one cluster from node 1 and waits
/// for every node to know the same leader.
pub async fn cluster(n: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=n {
        nodes.push(Node::start(id).await);
    }
    let members: BTreeMap<u64, BasicNode> = nodes.iter().map(|n| (n.id, n.node())).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    let leader = wait_leader(&nodes[0]).await;
    for node in &nodes {
        node.raft
            .wait(Some(WAIT))
            .metrics(
                |m| {
                    m.current_leader == Some(leader)
                        && m.membership_config.nodes().count() == nodes.len()
                },
                "knows the leader and the members",
            )
            .await
            .expect("every node learns the leader and the members");
    }
    nodes
}

pub async fn wait_leader(node: &Node) -> u64 {
    let m = node
        .raft
        .wait(Some(WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("a leader is elected");
    m.current_leader.expect("leader")
}

pub async fn wait_applied(node: &Node, index: u64) {
    node.raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", node.id));
}
