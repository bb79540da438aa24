//! The leader's expiry tick (DESIGN.md §3 promise 4): nodes never expire state on their
//! own clocks; the leader looks at the applied state, and once its clock passes the
//! earliest due time ([`State::next_expiry_ms`](raftgate_raft::State::next_expiry_ms))
//! it proposes one `Expire { now_ms }` entry. Every node applies that entry at the same
//! log position, so keyvals past their `timeout=`, idle sticky sessions and idle
//! deduplication clients disappear everywhere at the same logical time. An idle
//! cluster, with nothing due, writes nothing.

use std::sync::Weak;
use std::time::Duration;

use openraft::ServerState;
use raftgate_raft::{Command, Entry};

use super::Node;

/// How often the leader checks for due state: the resolution of every timeout.
pub const TICK: Duration = Duration::from_millis(250);

/// Runs the tick for as long as the node exists.
pub fn spawn(node: Weak<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(node) = node.upgrade() else {
                return;
            };
            if let Err(e) = expire_due(&node).await {
                crate::log_info!("expiry not committed this tick: {e}");
            }
        }
    })
}

/// Proposes `Expire` if this node leads and something is due by its clock.
pub async fn expire_due(node: &Node) -> Result<bool, String> {
    if node.raft.metrics().borrow().state != ServerState::Leader {
        return Ok(false);
    }
    let now_ms = crate::api::now_ms();
    let due = node.reader.load().state().next_expiry_ms();
    if due.is_none_or(|t| t > now_ms) {
        return Ok(false);
    }
    let entry = Entry::Command(Command::Expire { now_ms });
    // Through the proposer, which holds it while leadership is handed over.
    match tokio::time::timeout(TICK * 8, node.proposer.submit(entry)).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("not committed within {:?}", TICK * 8)),
    }
}
