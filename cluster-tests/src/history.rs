//! Clients that drive the keyvals API of random nodes and record every operation's
//! invocation, completion and outcome, for the [`checker`](crate::checker).
//!
//! How an answer becomes an outcome (DESIGN.md §3.6):
//! - 201 / 204 → `Ok`; 409 → `Exists`; 404 `KeyvalKeyNotFound` → `Missing` (or, for a
//!   read, the key absent); 200 on a read → its value;
//! - 503, or a connection that could not be opened → certainly not applied: the operation
//!   is left out of the history;
//! - anything else (504, a timeout, a connection lost after sending) → `Unknown`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checker::{Kind, Op, Outcome};
use crate::{exchange, Exchange};

/// The zone the clients use; the cluster's configuration must declare it.
pub const ZONE: &str = "one";

/// How long a client waits for one answer (an API write decides within ~8 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared record of a run.
#[derive(Clone)]
pub struct Recorder {
    epoch: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            epoch: Instant::now(),
            ops: Arc::default(),
        }
    }
}

impl Recorder {
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// How many operations are recorded (without copying them).
    pub fn len(&self) -> usize {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(String::from))
        .unwrap_or_default()
}

/// One operation through `addr`, recorded unless it certainly changed nothing; false
/// when the request could not even be sent (the node is down).
pub fn run_op(rec: &Recorder, addr: SocketAddr, client: u32, key: &str, kind: Kind) -> bool {
    let zone = format!("/api/2/http/keyvals/{ZONE}");
    let (method, path, body) = match &kind {
        Kind::Add(v) => ("POST", zone, format!("{{\"{key}\":\"{v}\"}}")),
        Kind::Set(v) => ("PATCH", zone, format!("{{\"{key}\":\"{v}\"}}")),
        Kind::Delete => ("PATCH", zone, format!("{{\"{key}\":null}}")),
        Kind::Read => ("GET", format!("{zone}?key={key}"), String::new()),
    };
    let call = rec.now();
    let answer = exchange(addr, method, &path, &body, ANSWER_TIMEOUT);
    let ret = rec.now();
    let outcome = match (&kind, answer) {
        (_, Exchange::NotSent(_)) => return false,
        (_, Exchange::Answer(503, _)) => return true,
        (_, Exchange::NoAnswer(_)) => Outcome::Unknown,
        (Kind::Read, Exchange::Answer(200, b)) => {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            match v.get(key).and_then(|x| x.as_str()) {
                Some(x) => Outcome::Value(Some(x.to_string())),
                None => Outcome::Unknown,
            }
        }
        (Kind::Read, Exchange::Answer(404, b)) if code(&b) == "KeyvalKeyNotFound" => {
            Outcome::Value(None)
        }
        (Kind::Add(_), Exchange::Answer(201, _)) => Outcome::Ok,
        (Kind::Add(_), Exchange::Answer(409, _)) => Outcome::Exists,
        (Kind::Set(_) | Kind::Delete, Exchange::Answer(204, _)) => Outcome::Ok,
        (Kind::Set(_) | Kind::Delete, Exchange::Answer(404, b))
            if code(&b) == "KeyvalKeyNotFound" =>
        {
            Outcome::Missing
        }
        _ => Outcome::Unknown,
    };
    let known = outcome != Outcome::Unknown;
    rec.push(Op {
        client,
        key: key.to_string(),
        kind,
        call,
        ret: known.then_some(ret),
        outcome,
    });
    true
}

/// The HTTP addresses clients pick from; a membership change updates it while they run.
#[derive(Clone, Default)]
pub struct Nodes(Arc<Mutex<Vec<SocketAddr>>>);

impl Nodes {
    pub fn new(addrs: Vec<SocketAddr>) -> Nodes {
        Nodes(Arc::new(Mutex::new(addrs)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SocketAddr>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pick(&self, rng: &mut fastrand::Rng) -> Option<SocketAddr> {
        let nodes = self.lock();
        (!nodes.is_empty()).then(|| nodes[rng.usize(..nodes.len())])
    }

    pub fn add(&self, addr: SocketAddr) {
        self.lock().push(addr);
    }

    pub fn remove(&self, addr: SocketAddr) {
        self.lock().retain(|a| *a != addr);
    }

    pub fn all(&self) -> Vec<SocketAddr> {
        self.lock().clone()
    }
}

/// Clients running until `stop`: each picks a random node, key and operation.
pub struct Clients {
    pub stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Clients {
    pub fn start(rec: &Recorder, nodes: &Nodes, clients: u32, keys: u32, seed: u64) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|c| {
                let (rec, nodes, stop) = (rec.clone(), nodes.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(
                        seed.wrapping_mul(1000).wrapping_add(u64::from(c)),
                    );
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let Some(addr) = nodes.pick(&mut rng) else {
                            break;
                        };
                        let key = format!("k{}", rng.u32(..keys));
                        let value = format!("c{c}-{n}");
                        let kind = match rng.u8(..10) {
                            0..=2 => Kind::Add(value),
                            3..=5 => Kind::Set(value),
                            6 => Kind::Delete,
                            _ => Kind::Read,
                        };
                        if !run_op(&rec, addr, c, &key, kind) {
                            // A node that is down refuses at once: do not spin on it.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                })
            })
            .collect();
        Clients { stop, threads }
    }

    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
