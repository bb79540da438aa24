//! What a durable append costs: `cargo run --release -p raftgate-storage --example append_cost [N] [DIR]`.
//!
//! Prints, for N small entries (a keyval write, ~100 bytes encoded):
//! - the disk floor: a 4 KiB write + fdatasync to a plain file in the same directory;
//! - sequential: one append at a time, each awaited durable (flush + fdatasync);
//! - concurrent: K clients appending at once, so that appends queue behind one sync
//!   (group commit), as openraft does with its append callbacks under load.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::{CommittedLeaderId, EntryPayload};
use raftgate_raft::types::{LogEntry, LogId};
use raftgate_raft::{Command, Entry, Ref};

fn entry(index: u64) -> LogEntry {
    LogEntry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Entry::Command(Command::KeyvalSet {
            zone: Ref::http("sessions"),
            key: format!("key-{index:08}"),
            value: format!("value-{index:08}-0123456789abcdef0123456789abcdef"),
            now_ms: 1_700_000_000_000 + index,
        })),
    }
}

fn floor(dir: &std::path::Path, n: u64) -> std::io::Result<f64> {
    let path = dir.join("floor.bin");
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&block)?;
        f.sync_data()?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    std::fs::remove_file(&path)?;
    Ok(us)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("raftgate-append-cost-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    println!("{n} appends per run, data in {}", dir.display());
    println!(
        "disk floor (4 KiB write + fdatasync):        {:8.1} µs",
        floor(&dir, n)?
    );

    let (log, _sm) = raftgate_storage::open(&dir).await?;
    let next = Arc::new(AtomicU64::new(1));

    let before = log.sync_counts();
    let start = Instant::now();
    for _ in 0..n {
        let i = next.fetch_add(1, Ordering::Relaxed);
        log.append_durable([entry(i)]).await?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let after = log.sync_counts();
    println!(
        "sequential, 1 outstanding:                  {us:8.1} µs per durable append, {:5.2} appends/sync",
        (after.appends - before.appends) as f64 / (after.syncs - before.syncs) as f64
    );

    for clients in [4u64, 16, 64] {
        let before = log.sync_counts();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let log = log.clone();
            let next = Arc::clone(&next);
            tasks.push(tokio::spawn(async move {
                for _ in 0..n / clients {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    log.append_durable([entry(i)]).await?;
                }
                Ok::<(), std::io::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let done = (n / clients) * clients;
        let us = start.elapsed().as_secs_f64() * 1e6 / done as f64;
        let after = log.sync_counts();
        println!(
            "concurrent, {clients:2} clients:                     {us:8.1} µs per durable append, {:5.2} appends/sync",
            (after.appends - before.appends) as f64 / (after.syncs - before.syncs) as f64
        );
    }

    drop(log);
    drop(_sm);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
