//! Snapshots as files, replaced atomically.
//!
//! One file, `current.snap`, holds the newest snapshot: its metadata (last log id and
//! membership) and the reducer's encoding of the state, so the three can never disagree.
//! A new one is written to a uniquely named `*.tmp` file, fsynced, renamed over
//! `current.snap`, and the directory is fsynced — a crash leaves either the old file or the
//! new one, plus perhaps a stray temp file, which `open` deletes.
//!
//! Layout: `MAGIC` (8 bytes), meta length (u32 LE), meta (bincode), data length (u64 LE),
//! data, then a CRC-32 (LE) of everything before it. A file that fails any check is
//! reported as corrupt, never loaded: the log before it may have been purged, so starting
//! from an empty state instead would silently lose acknowledged writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use raftgate_raft::types::LogId;

pub(crate) type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;

/// A snapshot read back from disk: its meta and the state's encoding.
pub(crate) type Loaded = Option<(SnapshotMeta, Vec<u8>)>;

const MAGIC: &[u8; 8] = b"RGSNAP\0\x01";
const CURRENT: &str = "current.snap";

/// Why a snapshot file could not be read.
#[derive(Debug)]
pub enum SnapshotFileError {
    Io(io::Error),
    Corrupt(String),
}

impl std::fmt::Display for SnapshotFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotFileError::Io(e) => write!(f, "{e}"),
            SnapshotFileError::Corrupt(why) => write!(f, "corrupt snapshot: {why}"),
        }
    }
}

impl std::error::Error for SnapshotFileError {}

impl From<io::Error> for SnapshotFileError {
    fn from(e: io::Error) -> Self {
        SnapshotFileError::Io(e)
    }
}

/// The snapshot directory. The mutex serialises writers (a snapshot being built and one
/// being installed) and remembers the current file's last log id, so an older snapshot
/// finishing late never replaces a newer one.
#[derive(Debug)]
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    current: Mutex<Option<LogId>>,
    temp_seq: AtomicU64,
}

impl SnapshotFiles {
    /// Opens the directory, deletes temp files a crash left behind, and reads the current
    /// snapshot (checked) if there is one.
    pub(crate) fn open(dir: &Path) -> Result<(SnapshotFiles, Loaded), SnapshotFileError> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        let loaded = read_file(&dir.join(CURRENT))?;
        let files = SnapshotFiles {
            dir: dir.to_path_buf(),
            current: Mutex::new(loaded.as_ref().and_then(|(m, _)| m.last_log_id)),
            temp_seq: AtomicU64::new(0),
        };
        Ok((files, loaded))
    }

    pub(crate) fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// Makes `meta` + `data` the current snapshot, durably. With `only_if_newer`, a
    /// snapshot not newer than the current file is not written (returns `false`).
    pub(crate) fn save(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        only_if_newer: bool,
    ) -> io::Result<bool> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if only_if_newer && current.is_some() && meta.last_log_id <= *current {
            return Ok(false);
        }
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("snapshot-{}-{seq}.tmp", std::process::id()));
        let result = write_durably(&tmp, &self.current_path(), &self.dir, meta, data);
        if result.is_err() {
            // Best effort: a leftover is removed on the next open anyway.
            drop(fs::remove_file(&tmp));
        }
        result?;
        *current = meta.last_log_id;
        Ok(true)
    }

    /// Reads the current snapshot, checked.
    pub(crate) fn load(&self) -> Result<Loaded, SnapshotFileError> {
        let _writers = self.current.lock().unwrap_or_else(|p| p.into_inner());
        read_file(&self.current_path())
    }
}

/// A backup: the applied `state` in the format of a snapshot file, so that a backup
/// taken through the API and a `current.snap` copied out of any node's data directory
/// restore alike. Its meta names the last applied log id and the membership.
pub fn encode_backup(
    state: &raftgate_raft::State,
    last_applied: Option<LogId>,
    membership: &raftgate_raft::types::StoredMembership,
) -> Result<Vec<u8>, String> {
    let data = state.snapshot().map_err(|e| e.to_string())?;
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership.clone(),
        snapshot_id: format!("backup-{}", last_applied.map_or(0, |l| l.index)),
    };
    encode(&meta, &data).map_err(|e| e.to_string())
}

/// Reads a backup (or a snapshot file): the last log id it reflects and the state's
/// encoding, once its magic, lengths and checksum are right.
pub fn decode_backup(bytes: &[u8]) -> Result<(Option<LogId>, Vec<u8>), String> {
    decode(bytes).map(|(meta, data)| (meta.last_log_id, data))
}

fn encode(meta: &SnapshotMeta, data: &[u8]) -> io::Result<Vec<u8>> {
    let meta =
        bincode::serialize(meta).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "snapshot meta too large"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + meta.len() + 8 + data.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn write_durably(
    tmp: &Path,
    dest: &Path,
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
) -> io::Result<()> {
    let bytes = encode(meta, data)?;
    let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, dest)?;
    File::open(dir)?.sync_all()
}

fn read_file(path: &Path) -> Result<Loaded, SnapshotFileError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    decode(&bytes)
        .map(Some)
        .map_err(|why| SnapshotFileError::Corrupt(format!("{}: {why}", path.display())))
}

fn decode(bytes: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), String> {
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or("shorter than its checksum")?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err("checksum mismatch".into());
    }
    let rest = body
        .strip_prefix(&MAGIC[..])
        .ok_or("not a raftgate snapshot")?;
    let (meta_len, rest) = rest.split_first_chunk::<4>().ok_or("truncated header")?;
    let meta_len = usize::try_from(u32::from_le_bytes(*meta_len)).map_err(|e| e.to_string())?;
    let (meta, rest) = rest.split_at_checked(meta_len).ok_or("truncated meta")?;
    let meta: SnapshotMeta = bincode::deserialize(meta).map_err(|e| format!("meta: {e}"))?;
    let (data_len, data) = rest.split_first_chunk::<8>().ok_or("truncated header")?;
    if u64::from_le_bytes(*data_len) != data.len() as u64 {
        return Err("data length mismatch".into());
    }
    Ok((meta, data.to_vec()))
}
