//! Group commit: one thread makes sled's writes durable for every waiter queued behind it.
//!
//! sled 0.34.7's `flush` writes its buffers and calls `sync_file_range`, which neither
//! flushes the drive's cache nor the file's metadata, so a flushed write can still be lost
//! at power failure. After every flush this thread calls `fdatasync` on sled's data file
//! (`<dir>/db`, sled's only log file; values are kept small so that nothing goes to sled's
//! blob files, which are never synced — see `log_store::CHUNK`).
//!
//! Callers write into sled first and queue a waiter second. The thread takes the first
//! waiter, drains every waiter queued meanwhile, then runs one flush + `fdatasync` and
//! completes them all. Every write made before a waiter was queued is in sled's memory
//! before the flush starts, so it is on disk when the waiter completes. While one sync
//! runs (~0.2 ms here), concurrent appends queue up and share the next one: no timer, no
//! added latency for a lone append.
//!
//! A failed `fdatasync` poisons the store: after one, the kernel may have dropped the dirty
//! pages and a later "successful" sync proves nothing (the fsyncgate lesson), so every
//! later waiter gets an error too and the node must restart and recover from what is on disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use raftgate_raft::types::TypeConfig;
use tokio::sync::oneshot;

/// Why a waiter needs durability (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Append,
    Vote,
    Truncate,
}

/// Someone to tell when the writes queued before it are durable.
pub(crate) enum Waiter {
    /// openraft's own append callback.
    Raft(LogFlushed<TypeConfig>),
    /// An awaited save (vote, truncate) or an append made through the inherent API.
    Notify(oneshot::Sender<io::Result<()>>, Purpose),
}

impl Waiter {
    fn purpose(&self) -> Purpose {
        match self {
            Waiter::Raft(_) => Purpose::Append,
            Waiter::Notify(_, p) => *p,
        }
    }

    fn complete(self, result: &Result<(), (io::ErrorKind, String)>) {
        let result = result
            .as_ref()
            .map(|_| ())
            .map_err(|(kind, msg)| io::Error::new(*kind, msg.clone()));
        match self {
            Waiter::Raft(cb) => cb.log_io_completed(result),
            // The receiver may have given up (its task was cancelled): nothing to tell.
            Waiter::Notify(tx, _) => drop(tx.send(result)),
        }
    }
}

/// What the sync thread has done since the store was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    /// flush + `fdatasync` rounds.
    pub syncs: u64,
    /// Appends acknowledged durable (openraft callbacks and `append_durable`).
    pub appends: u64,
    pub votes: u64,
    pub truncates: u64,
    /// Time spent in flush + `fdatasync`, summed over every round.
    pub sync_micros: u64,
}

impl SyncCounts {
    /// Appends per sync: the group-commit factor.
    pub fn appends_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.appends as f64 / self.syncs as f64
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    syncs: AtomicU64,
    appends: AtomicU64,
    votes: AtomicU64,
    truncates: AtomicU64,
    sync_micros: AtomicU64,
}

/// The sync thread and its queue. Dropping it closes the queue and joins the thread, so
/// that when the last store handle is gone sled's files are closed and the directory can
/// be reopened at once (sled holds an exclusive lock on `db`).
pub(crate) struct Flusher {
    tx: Option<mpsc::Sender<Waiter>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    /// Taken by the thread for each round; tests hold it to queue waiters deterministically.
    gate: Arc<Mutex<()>>,
}

/// While held, the sync thread starts no new round (see [`crate::LogStore::pause_syncs`]).
pub struct SyncPause<'a> {
    _guard: MutexGuard<'a, ()>,
}

impl Flusher {
    /// Starts the thread for the sled database at `dir`.
    pub(crate) fn start(db: sled::Db, dir: &Path) -> io::Result<Flusher> {
        // A second descriptor on sled's data file: fdatasync acts on the inode, so it
        // makes sled's writes through its own descriptor durable.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("db"))?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let gate = Arc::new(Mutex::new(()));
        let thread_counters = Arc::clone(&counters);
        let thread_gate = Arc::clone(&gate);
        let thread = std::thread::Builder::new()
            .name("raftgate-log-sync".into())
            .spawn(move || run(db, file, rx, &thread_counters, &thread_gate))?;
        Ok(Flusher {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            gate,
        })
    }

    /// Queues a waiter; it completes after the next flush + fdatasync.
    pub(crate) fn submit(&self, waiter: Waiter) {
        let Some(tx) = &self.tx else {
            return closed(waiter);
        };
        if let Err(mpsc::SendError(waiter)) = tx.send(waiter) {
            closed(waiter);
        }
    }

    /// Queues a notification and waits for it.
    pub(crate) async fn sync(&self, purpose: Purpose) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(Waiter::Notify(tx, purpose));
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "log sync thread stopped"))?
    }

    pub(crate) fn pause(&self) -> SyncPause<'_> {
        SyncPause {
            _guard: self.gate.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    pub(crate) fn counts(&self) -> SyncCounts {
        SyncCounts {
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
            votes: self.counters.votes.load(Ordering::Relaxed),
            truncates: self.counters.truncates.load(Ordering::Relaxed),
            sync_micros: self.counters.sync_micros.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // The thread only panics if a waiter's completion does; nothing to recover.
            drop(thread.join());
        }
    }
}

fn closed(waiter: Waiter) {
    waiter.complete(&Err((
        io::ErrorKind::BrokenPipe,
        "log sync thread stopped".to_string(),
    )));
}

fn run(
    db: sled::Db,
    file: File,
    rx: mpsc::Receiver<Waiter>,
    counters: &Counters,
    gate: &Mutex<()>,
) {
    let mut poisoned: Option<(io::ErrorKind, String)> = None;
    while let Ok(first) = rx.recv() {
        let _round = gate.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = match &poisoned {
            Some(e) => Err(e.clone()),
            None => {
                let started = std::time::Instant::now();
                let r = db
                    .flush()
                    .map_err(io::Error::from)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| (e.kind(), format!("making the Raft log durable: {e}")));
                counters.syncs.fetch_add(1, Ordering::Relaxed);
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counters.sync_micros.fetch_add(took, Ordering::Relaxed);
                if let Err(e) = &r {
                    poisoned = Some(e.clone());
                }
                r
            }
        };
        for waiter in batch {
            if result.is_ok() {
                let counter = match waiter.purpose() {
                    Purpose::Append => &counters.appends,
                    Purpose::Vote => &counters.votes,
                    Purpose::Truncate => &counters.truncates,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            waiter.complete(&result);
        }
    }
}
