//! The counters the API reports for this node: client connections, requests and server
//! zones (`status_zone`). They are each node's own, as in NGINX Plus, and are never
//! replicated; upstream peer counters live with the peers (`upstream::Live`).
//!
//! Every counter is a relaxed atomic: they only ever grow (or are reset by an API
//! DELETE), and nothing reads two of them expecting a consistent pair.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Process-wide counters, held by the runtime across reloads.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Client connections accepted (`connections.accepted`).
    pub accepted: AtomicU64,
    /// Connections closed without being served (`connections.dropped`).
    pub dropped: AtomicU64,
    /// Requests ever received (`http.requests.total`).
    pub requests: AtomicU64,
    /// Requests being processed now (`http.requests.current`).
    pub current: AtomicI64,
    /// Server zones by name: a zone keeps its counters across reloads that keep it.
    zones: Mutex<HashMap<String, Arc<ZoneStats>>>,
}

impl Metrics {
    /// The counters of zone `name`, created on first use.
    pub fn zone(&self, name: &str) -> Arc<ZoneStats> {
        let mut z = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        z.entry(name.to_string()).or_default().clone()
    }

    /// Counts one request for its whole life: from here until the returned guard and the
    /// guard's zone part are dropped.
    pub fn request(self: &Arc<Self>, zone: Option<Arc<ZoneStats>>, received: u64) -> InFlight {
        self.requests.fetch_add(1, Relaxed);
        self.current.fetch_add(1, Relaxed);
        if let Some(z) = &zone {
            z.processing.fetch_add(1, Relaxed);
            z.requests.fetch_add(1, Relaxed);
            z.received.fetch_add(received, Relaxed);
        }
        InFlight {
            metrics: self.clone(),
            zone,
        }
    }

    pub fn current(&self) -> u64 {
        u64::try_from(self.current.load(Relaxed)).unwrap_or(0)
    }
}

/// A request being processed. Dropping it ends the request in the counters.
#[derive(Debug)]
pub struct InFlight {
    metrics: Arc<Metrics>,
    zone: Option<Arc<ZoneStats>>,
}

impl InFlight {
    /// The response went out with `status` and `sent` bytes.
    pub fn responded(&self, status: u16, sent: u64) {
        if let Some(z) = &self.zone {
            if let 100..=599 = status {
                z.responses[usize::from(status / 100 - 1)].fetch_add(1, Relaxed);
            }
            z.sent.fetch_add(sent, Relaxed);
        }
    }

    /// The request ended without a response (nginx's `discarded`: 444, client gone).
    pub fn discarded(&self) {
        if let Some(z) = &self.zone {
            z.discarded.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.current.fetch_sub(1, Relaxed);
        if let Some(z) = &self.zone {
            z.processing.fetch_sub(1, Relaxed);
        }
    }
}

/// One `status_zone`'s counters (`NginxHTTPServerZone`).
#[derive(Debug, Default)]
pub struct ZoneStats {
    pub processing: AtomicI64,
    pub requests: AtomicU64,
    /// 1xx … 5xx.
    pub responses: [AtomicU64; 5],
    pub discarded: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

impl ZoneStats {
    pub fn processing(&self) -> u64 {
        u64::try_from(self.processing.load(Relaxed)).unwrap_or(0)
    }

    pub fn responses(&self, class: usize) -> u64 {
        self.responses[class].load(Relaxed)
    }

    /// The API's DELETE: every counter but `processing` back to zero.
    pub fn reset(&self) {
        self.requests.store(0, Relaxed);
        for r in &self.responses {
            r.store(0, Relaxed);
        }
        self.discarded.store(0, Relaxed);
        self.received.store(0, Relaxed);
        self.sent.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_in_its_zone_until_it_ends() {
        let m = Arc::new(Metrics::default());
        let z = m.zone("front");
        let r = m.request(Some(z.clone()), 100);
        assert_eq!((m.current(), z.processing()), (1, 1));
        r.responded(404, 50);
        drop(r);
        assert_eq!((m.current(), z.processing()), (0, 0));
        assert_eq!(z.responses(3), 1);
        assert_eq!(z.received.load(Relaxed), 100);
        assert_eq!(z.sent.load(Relaxed), 50);
        let r = m.request(Some(m.zone("front")), 0);
        r.discarded();
        drop(r);
        assert_eq!(z.discarded.load(Relaxed), 1, "the same zone by name");
        assert_eq!(m.requests.load(Relaxed), 2);
        z.reset();
        assert_eq!(z.requests.load(Relaxed), 0);
    }
}
