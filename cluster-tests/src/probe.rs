//! The write-unavailability window: how long after a fault the cluster acknowledges a
//! write again.
//!
//! One prober per node writes a key of its own (so the clients' history is untouched)
//! through that node every 20 ms, with a short timeout. A client that knows every node
//! sees the cluster writable again when the first of them acknowledges, so the window
//! after a fault ends at the earliest acknowledgement of a write invoked after it: a
//! prober stuck on a paused or cut-off node does not hold the window open, and one that
//! got in before the fault does not close it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::history::Recorder;

/// The (invocation, acknowledgement) times of acknowledged probe writes.
type Acks = Arc<Mutex<Vec<(u64, u64)>>>;

pub struct Probe {
    rec: Recorder,
    stop: Arc<AtomicBool>,
    acks: Acks,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Probe {
    pub fn start(rec: &Recorder, nodes: &[SocketAddr]) -> Probe {
        let mut p = Probe {
            rec: rec.clone(),
            stop: Arc::default(),
            acks: Arc::default(),
            threads: Vec::new(),
        };
        for a in nodes {
            p.add(*a);
        }
        p
    }

    /// Starts probing one more node (a member just added).
    pub fn add(&mut self, addr: SocketAddr) {
        let (stop, acks, rec) = (self.stop.clone(), self.acks.clone(), self.rec.clone());
        let key = format!("probe-{}", addr.port());
        self.threads.push(std::thread::spawn(move || {
            let zone = format!("/api/2/http/keyvals/{}", crate::history::ZONE);
            let timeout = Duration::from_secs(1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let call = rec.now();
                let body = format!("{{\"{key}\":\"{n}\"}}");
                // PATCH the key, or POST it while it does not exist yet.
                let r = match crate::call_with(addr, "PATCH", &zone, &body, timeout) {
                    Ok((404, _)) => crate::call_with(addr, "POST", &zone, &body, timeout),
                    r => r,
                };
                if let Ok((201 | 204, _)) = r {
                    let ret = rec.now();
                    acks.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((call, ret));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }

    /// The window after a fault in place at `at`, once a write invoked after it has
    /// been acknowledged.
    pub fn window_after(&self, at: u64) -> Option<Duration> {
        window(&self.acks.lock().unwrap_or_else(|e| e.into_inner()), at)
    }

    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn window(acks: &[(u64, u64)], at: u64) -> Option<Duration> {
    acks.iter()
        .filter(|(call, _)| *call >= at)
        .map(|(_, ret)| *ret)
        .min()
        .map(|t| Duration::from_nanos(t - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_ends_at_the_first_acknowledgement_of_a_write_invoked_after_the_fault() {
        let ms = |n: u64| n * 1_000_000;
        // Acknowledged before the fault at 100 ms but invoked earlier: does not count.
        // Two invoked after it: the earlier acknowledgement ends the window.
        let acks = [(ms(90), ms(130)), (ms(120), ms(700)), (ms(300), ms(450))];
        assert_eq!(window(&acks, ms(100)), Some(Duration::from_millis(350)));
        assert_eq!(window(&acks, ms(400)), None);
    }
}
