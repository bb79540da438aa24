//! The cluster as the proxy sees it: a node of the Raft group (`node`), through which
//! API writes are committed and linearizable reads are fenced, and whose applied state
//! the data path reads without waiting.

pub mod expiry;
pub mod node;
pub mod sessions;
pub mod status;

pub use node::{Node, NodeOptions, WriteError};
pub use status::{ClusterStatus, NodeStatus, SessionsStatus, StorageStatus};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Proposes the configuration's replicated parts (`keyval_zone` declarations, zone-backed
/// upstream groups) to the cluster, retrying in the background until they are committed:
/// a node may load its configuration before the cluster has a leader. The commands are
/// idempotent, so every node proposing them (at start and on reload) converges on the
/// same state.
///
/// A newer call supersedes an older one still retrying, so a configuration that reached
/// the cluster late can never overwrite the one loaded after it.
pub fn configure(node: Arc<Node>, entries: Vec<raftgate_raft::Entry>) {
    let me = node.configure_serial.fetch_add(1, Ordering::AcqRel) + 1;
    if entries.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for entry in entries {
            let mut delay = Duration::from_millis(100);
            loop {
                if node.configure_serial.load(Ordering::Acquire) != me {
                    return;
                }
                match node.write(entry.clone(), Duration::from_secs(5)).await {
                    Ok((Ok(_), _)) => break,
                    Ok((Err(rejected), _)) => {
                        crate::log_error!("configuration refused by the cluster: {rejected}");
                        break;
                    }
                    Err(e) => {
                        crate::log_info!("configuration not committed yet ({e:?}); retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    });
}
