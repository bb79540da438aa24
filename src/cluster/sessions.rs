//! Sticky-learn sessions from the data path to the log: asynchronous and batched
//! (DESIGN.md §3, promise 3). A request that learns or touches a session only queues an
//! event and goes on; one task per node drains the queue and proposes everything that
//! arrived while its previous proposal was in flight as one entry per zone and kind. So
//! under load a batch holds what one commit latency gathers, and at rest a lone session
//! goes out at once.
//!
//! Sessions are soft state: when the queue is full (the cluster cannot keep up, or has no
//! leader) events are dropped and counted; a dropped learn costs one later request its
//! stickiness, never correctness. Touches are sent at most every [`touch_every`] per
//! session, so a busy session does not turn every request into a log write; expiry is
//! then up to that much later than nginx's, and the same on every node.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftgate_raft::{Command, Entry, ServerKey};
use tokio::sync::mpsc;

use super::Node;

/// Events queued before new ones are dropped.
const QUEUE: usize = 65_536;
/// Most sessions proposed in one entry.
const MAX_BATCH: usize = 4096;
/// How long one proposal may take before the batch is given up.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The minimum time between two touches of one session: a sixteenth of the zone's
/// timeout, at least one second.
pub fn touch_every(timeout_ms: u64) -> u64 {
    (timeout_ms / 16).max(1000)
}

#[derive(Debug)]
enum Event {
    Learn {
        zone: String,
        session: String,
        server: ServerKey,
    },
    Touch {
        zone: String,
        session: String,
    },
}

/// Counters of what the batcher did, for `/api/2/cluster` and the measurements.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Sessions learned and touches proposed (after de-duplication in a batch).
    pub learned: AtomicU64,
    pub touched: AtomicU64,
    /// Log entries they went out in.
    pub entries: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Batches the cluster did not take (no leader, timeout).
    pub failed: AtomicU64,
}

/// The data path's handle: queue events, never wait.
#[derive(Debug)]
pub struct Sessions {
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    pub stats: Arc<SessionStats>,
}

impl Default for Sessions {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Sessions {
            tx,
            rx: Mutex::new(Some(rx)),
            stats: Arc::default(),
        }
    }
}

impl Sessions {
    pub fn learn(&self, zone: &str, session: String, server: ServerKey) {
        self.send(Event::Learn {
            zone: zone.to_string(),
            session,
            server,
        });
    }

    pub fn touch(&self, zone: &str, session: String) {
        self.send(Event::Touch {
            zone: zone.to_string(),
            session,
        });
    }

    fn send(&self, e: Event) {
        if self.tx.try_send(e).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Starts the node's batcher (once; later calls do nothing).
pub fn start(node: Arc<Node>) {
    let rx = node
        .sessions
        .rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(mut rx) = rx else { return };
    let stats = node.sessions.stats.clone();
    tokio::spawn(async move {
        let mut events = Vec::new();
        while rx.recv_many(&mut events, MAX_BATCH).await > 0 {
            for entry in batch(std::mem::take(&mut events), &stats) {
                match node.write(entry, PROPOSE_TIMEOUT).await {
                    Ok((Ok(_), _)) => {}
                    Ok((Err(rejected), _)) => {
                        crate::log_info!("sticky sessions not learned: {rejected}");
                        stats.failed.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        crate::log_info!("sticky sessions not learned: {e:?}");
                        stats.failed.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    });
}

/// The entries for one batch of events: per zone, one learn entry (the last binding of
/// each session wins, in arrival order) and one touch entry (each session once).
fn batch(events: Vec<Event>, stats: &SessionStats) -> Vec<Entry> {
    let mut learns: BTreeMap<String, Vec<(String, ServerKey)>> = BTreeMap::new();
    let mut touches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        match e {
            Event::Learn {
                zone,
                session,
                server,
            } => learns.entry(zone).or_default().push((session, server)),
            Event::Touch { zone, session } => touches.entry(zone).or_default().push(session),
        }
    }
    // Keep the last binding of each session (in its place), and each touch once.
    for list in learns.values_mut() {
        let mut seen = HashSet::new();
        list.reverse();
        list.retain(|(s, _)| seen.insert(s.clone()));
        list.reverse();
    }
    for list in touches.values_mut() {
        let mut seen = HashSet::new();
        list.retain(|s| seen.insert(s.clone()));
    }
    let now_ms = crate::api::now_ms();
    let mut out = Vec::new();
    for (zone, sessions) in learns {
        stats.learned.fetch_add(sessions.len() as u64, Relaxed);
        out.push(Command::StickyLearnBatch {
            zone,
            sessions,
            now_ms,
        });
    }
    for (zone, sessions) in touches {
        stats.touched.fetch_add(sessions.len() as u64, Relaxed);
        out.push(Command::StickyTouch {
            zone,
            sessions,
            now_ms,
        });
    }
    stats.entries.fetch_add(out.len() as u64, Relaxed);
    out.into_iter().map(Entry::Command).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(addr: &str) -> ServerKey {
        ServerKey {
            upstream: "b".into(),
            server: addr.into(),
        }
    }

    #[test]
    fn a_batch_is_one_entry_per_zone_and_kind_with_the_last_binding() {
        let stats = SessionStats::default();
        let learn = |z: &str, s: &str, a: &str| Event::Learn {
            zone: z.into(),
            session: s.into(),
            server: key(a),
        };
        let touch = |z: &str, s: &str| Event::Touch {
            zone: z.into(),
            session: s.into(),
        };
        let entries = batch(
            vec![
                learn("z", "a", "1"),
                learn("z", "b", "1"),
                touch("z", "c"),
                learn("z", "a", "2"),
                touch("z", "c"),
                learn("y", "a", "3"),
            ],
            &stats,
        );
        assert_eq!(entries.len(), 3);
        let Entry::Command(Command::StickyLearnBatch { zone, sessions, .. }) = &entries[1] else {
            panic!("{entries:?}");
        };
        assert_eq!(zone, "z");
        assert_eq!(
            sessions,
            &[("b".to_string(), key("1")), ("a".to_string(), key("2"))]
        );
        let Entry::Command(Command::StickyTouch { sessions, .. }) = &entries[2] else {
            panic!("{entries:?}");
        };
        assert_eq!(sessions, &["c".to_string()]);
        assert_eq!(stats.learned.load(Relaxed), 3);
        assert_eq!(stats.entries.load(Relaxed), 3);
        assert_eq!(touch_every(600_000), 37_500);
        assert_eq!(touch_every(2_000), 1_000);
    }
}
