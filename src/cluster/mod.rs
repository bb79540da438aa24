//! The cluster as the proxy sees it: a node of the Raft group (`node`), through which
//! API writes are committed and linearizable reads are fenced, and whose applied state
//! the data path reads without waiting.

pub mod expiry;
pub mod node;
pub mod status;

pub use node::{Node, NodeOptions, WriteError};
pub use status::{ClusterStatus, NodeStatus, StorageStatus};

use std::sync::Arc;
use std::time::Duration;

/// Proposes the configuration's `keyval_zone` declarations to the cluster, retrying in
/// the background until they are committed: a node may load its configuration before
/// the cluster has a leader. Declarations are idempotent, so every node proposing them
/// (at start and on reload) converges on the same zones.
pub fn configure_zones(node: Arc<Node>, zones: Vec<crate::keyval::ZoneDecl>) {
    if zones.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for entry in crate::keyval::configure_commands(&zones) {
            let mut delay = Duration::from_millis(100);
            loop {
                match node.write(entry.clone(), Duration::from_secs(5)).await {
                    Ok((Ok(_), _)) => break,
                    Ok((Err(rejected), _)) => {
                        crate::log_error!("zone configuration refused: {rejected}");
                        break;
                    }
                    Err(e) => {
                        crate::log_info!("zone configuration not committed yet ({e:?}); retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    });
}
