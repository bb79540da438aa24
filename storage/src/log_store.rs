//! The Raft log, vote and commit index in one sled tree.
//!
//! Layout (one tree, so that a sled `Batch` makes any change atomic):
//! - `[0] ++ name`: metadata — `vote`, `committed`, `purged` (bincode);
//! - `[1] ++ index (u64 BE) ++ chunk (u32 BE)`: a log entry, bincode-encoded and cut into
//!   chunks of at most [`CHUNK`] bytes. Chunk 0 starts with the chunk count (u32 BE).
//!
//! Why chunks: sled writes any page bigger than a quarter segment (128 KiB with the default
//! 512 KiB segments) to a separate blob file that its flush never syncs, and a leaf holds up
//! to 17 values before it splits. At 4 KiB per value a leaf stays far below the threshold,
//! so every byte of the log lives in the one file the sync thread fdatasyncs.
//!
//! Durability: `append` acknowledges (through openraft's callback) only after a flush +
//! fdatasync that started after the entries were written; `save_vote` and `truncate`
//! return only after one. `purge` and `save_committed` are not synced on their own: a
//! crash that loses them only brings back purged entries (still covered by the snapshot)
//! or an older commit index (less replay at start-up), and the next sync makes them
//! durable along with everything written before it. A purge is only asked for after the
//! snapshot covering it was fsynced.

// Helpers return openraft's `StorageError` because the trait methods must: boxing it
// here would only be unboxed again at every call site.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError};
use raftgate_raft::types::{LogEntry, LogId, TypeConfig, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::flusher::{Flusher, Purpose, SyncCounts, SyncPause, Waiter};

/// Largest sled value the log writes (see the module docs).
pub const CHUNK: usize = 4096;

const TAG_META: u8 = 0;
const TAG_LOG: u8 = 1;
const KEY_VOTE: &[u8] = b"\0vote";
const KEY_COMMITTED: &[u8] = b"\0committed";
const KEY_PURGED: &[u8] = b"\0purged";

type StorageResult<T> = Result<T, StorageError<u64>>;

/// openraft's log store (and log reader: clones share everything).
#[derive(Clone)]
pub struct LogStore {
    // Field order is drop order: the purge thread (which holds a handle on the tree) is
    // joined before the tree and the flusher go, so the last store handle dropped
    // releases sled's lock on the directory.
    purger: Arc<Purger>,
    tree: sled::Db,
    flusher: Arc<Flusher>,
}

/// The background deletion of purged entries (at most one at a time).
#[derive(Default)]
struct Purger {
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set when the store goes away: a running deletion stops at its next slice (the
    /// next purge picks up what is left).
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl LogStore {
    pub(crate) fn new(tree: sled::Db, flusher: Flusher) -> Self {
        debug_assert_eq!(KEY_VOTE[0], TAG_META);
        LogStore {
            purger: Arc::default(),
            tree,
            flusher: Arc::new(flusher),
        }
    }

    /// What the sync thread has done: the proof that acknowledgements waited for fdatasync,
    /// and the group-commit factor.
    pub fn sync_counts(&self) -> SyncCounts {
        self.flusher.counts()
    }

    /// Holds the sync thread before its next round until the guard is dropped: waiters
    /// queued meanwhile share one sync. For tests and measurements (it proves that an
    /// acknowledgement waits for the sync, and makes group commit deterministic).
    #[doc(hidden)]
    pub fn pause_syncs(&self) -> SyncPause<'_> {
        self.flusher.pause()
    }

    /// Writes entries and returns a future that resolves once they are durable, without
    /// holding `&mut self` meanwhile — what openraft does with its callback. Used to
    /// measure group commit (several appends outstanding behind one sync).
    pub fn append_nowait(
        &self,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> io::Result<impl std::future::Future<Output = io::Result<()>> + Send + 'static> {
        self.write_entries(entries)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.submit(Waiter::Notify(tx, Purpose::Append));
        Ok(async move {
            rx.await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "log sync thread stopped"))?
        })
    }

    /// Writes entries and waits until they are durable.
    pub async fn append_durable(
        &self,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> io::Result<()> {
        self.append_nowait(entries)?.await
    }

    fn write_entries(&self, entries: impl IntoIterator<Item = LogEntry>) -> io::Result<()> {
        let mut inserts: Vec<([u8; 13], Vec<u8>)> = Vec::new();
        let mut range: Option<(u64, u64)> = None;
        for entry in entries {
            let index = entry.get_log_id().index;
            range = Some(range.map_or((index, index), |(lo, _)| (lo, index)));
            let bytes = bincode::serialize(&entry).map_err(to_io)?;
            let chunks = bytes.chunks(CHUNK).collect::<Vec<_>>();
            let count = u32::try_from(chunks.len().max(1))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "log entry too large"))?;
            let mut first = count.to_be_bytes().to_vec();
            first.extend_from_slice(chunks.first().copied().unwrap_or_default());
            inserts.push((log_key(index, 0), first));
            for (i, chunk) in chunks.iter().enumerate().skip(1) {
                let i = u32::try_from(i).expect("fewer chunks than `count`, which fits in u32");
                inserts.push((log_key(index, i), chunk.to_vec()));
            }
        }
        let Some((lo, hi)) = range else {
            return Ok(());
        };
        let mut stale = Vec::new();
        for kv in self
            .tree
            .range(log_key(lo, 0)..log_key(hi.saturating_add(1), 0))
        {
            let (k, _) = kv.map_err(io::Error::from)?;
            stale.push(k);
        }
        // The common case: fresh entries of one chunk each. Plain inserts, because every
        // sled batch seals and writes the current I/O buffer twice (two writes and two
        // `sync_file_range`s on sled's threads, on top of the flush that follows).
        // Atomicity across entries is not needed: the append is acknowledged only after
        // the flush, and sled recovers a prefix of its log, so a crash leaves a prefix of
        // the entries, which Raft treats as a shorter, unacknowledged log.
        if stale.is_empty() && inserts.iter().all(|(k, _)| is_first_chunk(k)) {
            for (k, v) in inserts {
                self.tree.insert(&k[..], v).map_err(io::Error::from)?;
            }
            return Ok(());
        }
        // `Batch` keeps the last operation per key: removing what the range held and then
        // inserting means an overwritten entry (rare: openraft truncates conflicts first)
        // leaves none of its extra chunks behind, and an entry of several chunks is
        // never half there, all in one atomic batch.
        let mut batch = sled::Batch::default();
        for k in stale {
            batch.remove(k);
        }
        for (k, v) in inserts {
            batch.insert(&k[..], v);
        }
        self.tree.apply_batch(batch).map_err(io::Error::from)
    }

    fn read_entries(&self, start: u64, end: u64) -> StorageResult<Vec<LogEntry>> {
        let mut out = Vec::new();
        // Purged entries may linger until the background delete reaches them.
        let start = match self.last_purged()? {
            Some(p) => start.max(p.index.saturating_add(1)),
            None => start,
        };
        if start >= end {
            return Ok(out);
        }
        let upper = if end == u64::MAX {
            vec![TAG_LOG + 1]
        } else {
            log_key(end, 0).to_vec()
        };
        let mut current: Option<Partial> = None;
        for kv in self.tree.range(log_key(start, 0).to_vec()..upper) {
            let (k, v) = kv.map_err(|e| read_err(&e))?;
            let (index, chunk) = parse_log_key(&k).ok_or_else(|| corrupt("log key"))?;
            if chunk == 0 {
                if let Some(done) = current.take() {
                    out.push(done.decode()?);
                }
                let (count, rest) = v
                    .split_at_checked(4)
                    .ok_or_else(|| corrupt("chunk header"))?;
                let count = u32::from_be_bytes(count.try_into().expect("split at 4"));
                current = Some(Partial {
                    index,
                    count,
                    seen: 1,
                    bytes: rest.to_vec(),
                });
            } else {
                match &mut current {
                    Some(p) if p.index == index && p.seen == chunk => {
                        p.seen += 1;
                        p.bytes.extend_from_slice(&v);
                    }
                    _ => return Err(corrupt(&format!("log entry {index}: stray chunk {chunk}"))),
                }
            }
        }
        if let Some(done) = current.take() {
            out.push(done.decode()?);
        }
        Ok(out)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.tree.get(key).map_err(|e| read_err(&e))? {
            None => Ok(None),
            Some(v) => bincode::deserialize(&v).map(Some).map_err(|e| read_err(&e)),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> StorageResult<()> {
        let bytes = bincode::serialize(value).map_err(|e| write_err(&e))?;
        self.tree.insert(key, bytes).map_err(|e| write_err(&e))?;
        Ok(())
    }

    /// Both are stored as `Option<LogId>` (openraft's own type for them).
    pub(crate) fn last_purged(&self) -> StorageResult<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(KEY_PURGED)?.flatten())
    }

    pub(crate) fn committed(&self) -> StorageResult<Option<LogId>> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    /// Entries in `[start, end)` (missing ones skipped), for recovery replay.
    pub(crate) fn entries(&self, start: u64, end: u64) -> StorageResult<Vec<LogEntry>> {
        self.read_entries(start, end)
    }

    fn last_log_id(&self) -> StorageResult<Option<LogId>> {
        let last = self
            .tree
            .range(log_key(0, 0).to_vec()..vec![TAG_LOG + 1])
            .next_back()
            .transpose()
            .map_err(|e| read_err(&e))?;
        let Some((k, _)) = last else {
            return Ok(None);
        };
        let (index, _) = parse_log_key(&k).ok_or_else(|| corrupt("log key"))?;
        let entries = self.read_entries(index, index.saturating_add(1))?;
        Ok(entries.last().map(|e| *e.get_log_id()))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<LogEntry>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        self.read_entries(start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        // Entries at or below the purge point may still be on disk for a moment (they
        // are deleted in the background): they never count as the last log.
        let last_log_id = match (self.last_log_id()?, last_purged_log_id) {
            (Some(last), Some(purged)) if last.index <= purged.index => Some(purged),
            (last, purged) => last.or(purged),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> StorageResult<()> {
        self.put_meta(KEY_VOTE, vote)?;
        self.flusher
            .sync(Purpose::Vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote>> {
        self.get_meta(KEY_VOTE)
    }

    /// Not synced on its own: a lost commit index only makes recovery replay less (the
    /// leader tells a follower again; a restarted leader re-commits with its first entry).
    async fn save_committed(&mut self, committed: Option<LogId>) -> StorageResult<()> {
        self.put_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId>> {
        self.committed()
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        self.write_entries(entries)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.flusher.submit(Waiter::Raft(callback));
        Ok(())
    }

    /// Synced before returning: openraft appends the leader's entries right after, and
    /// a truncation must not be undone by a crash while those are acknowledged.
    async fn truncate(&mut self, log_id: LogId) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        for kv in self
            .tree
            .range(log_key(log_id.index, 0).to_vec()..vec![TAG_LOG + 1])
        {
            let (k, _) = kv.map_err(|e| write_err(&e))?;
            batch.remove(k);
        }
        self.tree.apply_batch(batch).map_err(|e| write_err(&e))?;
        self.flusher
            .sync(Purpose::Truncate)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    /// Records the purge point at once, then deletes the entries below it in the
    /// background, in slices: openraft awaits `purge` in its core loop, and deleting
    /// 10,000 entries in one sled batch stalled every write for a few hundred
    /// milliseconds. Entries at or below the recorded point are never read again (the
    /// log state starts after it), and they are never rewritten, so deleting them late
    /// — or after a crash, by the next purge, which starts from index 0 — is safe.
    async fn purge(&mut self, log_id: LogId) -> StorageResult<()> {
        self.put_meta(KEY_PURGED, &Some(log_id))?;
        let mut thread = self
            .purger
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread.as_ref().is_some_and(|t| !t.is_finished()) {
            // Still deleting an earlier range; the next purge starts from index 0 and
            // takes this one's entries along.
            return Ok(());
        }
        let tree = self.tree.clone();
        let stop = self.purger.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("raftgate-purge".into())
            .spawn(move || {
                crate::lower_priority();
                delete_up_to(&tree, log_id.index, &stop);
            });
        *thread = spawned.ok();
        Ok(())
    }
}

/// Log entries deleted per slice when purging, and the pause after each slice.
///
/// Every removal is a record in sled's log that the write path's next flush must write
/// and sync. Deleted all at once (it used to be 1,000 per `sled::Batch`, and each batch
/// also seals and writes sled's I/O buffer twice), the ~9,000 entries behind a snapshot
/// made the writes of the next few hundred milliseconds wait 20-90 ms each on this
/// project's 2-core machine. In small paced slices a flush carries at most a slice's
/// records; the purge takes ~0.2 s longer, which nobody waits for.
const PURGE_SLICE: usize = 128;
const PURGE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Deletes every log entry up to `index`, a slice at a time.
fn delete_up_to(tree: &sled::Db, index: u64, stop: &std::sync::atomic::AtomicBool) {
    let end = log_key(index.saturating_add(1), 0);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let keys: Vec<sled::IVec> = match tree
            .range(log_key(0, 0).to_vec()..end.to_vec())
            .keys()
            .take(PURGE_SLICE)
            .collect()
        {
            Ok(keys) => keys,
            Err(_) => return,
        };
        if keys.is_empty() {
            return;
        }
        // Plain removes: entries at or below the purge point are never read again, so a
        // crash halfway through a slice leaves nothing inconsistent.
        for key in keys {
            if tree.remove(key).is_err() {
                return;
            }
        }
        std::thread::sleep(PURGE_PAUSE);
    }
}

/// Whether `key` (from [`log_key`]) names an entry's first chunk.
fn is_first_chunk(key: &[u8; 13]) -> bool {
    key[9..13] == 0u32.to_be_bytes()
}

fn log_key(index: u64, chunk: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = TAG_LOG;
    k[1..9].copy_from_slice(&index.to_be_bytes());
    k[9..13].copy_from_slice(&chunk.to_be_bytes());
    k
}

fn parse_log_key(k: &[u8]) -> Option<(u64, u32)> {
    if k.len() != 13 || k[0] != TAG_LOG {
        return None;
    }
    let index = u64::from_be_bytes(k[1..9].try_into().ok()?);
    let chunk = u32::from_be_bytes(k[9..13].try_into().ok()?);
    Some((index, chunk))
}

/// An entry being reassembled from its chunks.
struct Partial {
    index: u64,
    count: u32,
    seen: u32,
    bytes: Vec<u8>,
}

impl Partial {
    fn decode(self) -> StorageResult<LogEntry> {
        if self.seen != self.count {
            return Err(corrupt(&format!(
                "log entry {}: {} of {} chunks",
                self.index, self.seen, self.count
            )));
        }
        bincode::deserialize(&self.bytes)
            .map_err(|e| StorageIOError::read_log_at_index(self.index, &e).into())
    }
}

fn to_io(e: bincode::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn read_err(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::read_logs(e).into()
}

fn write_err(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_logs(e).into()
}

fn corrupt(what: &str) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::error(format!("corrupt Raft log: {what}"))).into()
}
