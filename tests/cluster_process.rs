//! Real `raftgate` processes on loopback (the `raftgate-cluster-tests` harness), driven
//! only through signals and the public API: what is written through one node is read
//! through every other right after the write returns; acknowledged writes survive kill -9
//! of the leader, of every node, membership changes and a catch-up by snapshot; a paused
//! majority leaves the rest unable to write, and saying so quickly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raftgate_cluster_tests::{eventually, Cluster, Options};

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");
const ZONE: &str = "/api/2/http/keyvals/one";
const READY: Duration = Duration::from_secs(30);

fn cluster(options: Options) -> Cluster {
    let c = Cluster::start(BIN, options);
    // The zone exists once the configuration's declaration is committed.
    for i in 0..c.members.len() {
        assert!(
            c.wait_serving(i, ZONE, READY),
            "node {} never served the zone",
            i + 1
        );
    }
    c
}

fn post(c: &Cluster, via: usize, key: &str) -> Result<(u16, String), String> {
    c.call(via, "POST", ZONE, &format!("{{\"{key}\":\"1\"}}"))
}

/// Asserts every key in `keys` is in the zone as read (linearizably) through member `i`.
fn assert_has_all(c: &Cluster, i: usize, keys: &[String]) {
    let (status, body) = c.call(i, "GET", ZONE, "").expect("read");
    assert_eq!(status, 200, "read through node {}: {body}", c.members[i].id);
    let zone: serde_json::Value = serde_json::from_str(&body).expect("json");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| zone.get(k.as_str()).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "node {} lost {} acknowledged writes: {:?}",
        c.members[i].id,
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Writers POSTing unique keys through `via` until stopped; every key answered 201 is
/// recorded (the acknowledged writes that must never be lost).
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    /// Every answer other than 201, as `STATUS BODY` (or the transport error).
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(c: &Cluster, via: &[usize], tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let threads = via
            .iter()
            .map(|&i| {
                let addr = c.members[i].http;
                let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
                let tag = format!("{tag}{i}-");
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{tag}{n}");
                        n += 1;
                        let body = format!("{{\"{key}\":\"1\"}}");
                        match raftgate_cluster_tests::call(addr, "POST", ZONE, &body) {
                            Ok((201, _)) => acked.lock().expect("lock").push(key),
                            // Refused or unknown: the writer moves on; not counted.
                            other => {
                                let what = match other {
                                    Ok((status, body)) => format!("{status} {body}"),
                                    Err(e) => e,
                                };
                                failed.lock().expect("lock").push(what);
                                std::thread::sleep(Duration::from_millis(20))
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            failed,
            threads,
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().expect("lock").len()
    }

    /// Waits until `more` further writes have been acknowledged.
    fn wait_for(&self, more: usize, limit: Duration) -> bool {
        let target = self.count() + more;
        eventually(limit, || self.count() >= target)
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("writer");
        }
        Arc::try_unwrap(self.acked)
            .map(|m| m.into_inner().expect("lock"))
            .unwrap_or_default()
    }
}

#[test]
fn a_key_written_through_any_node_is_read_through_every_other_at_once() {
    let c = cluster(Options::default());
    for writer in 0..3 {
        let key = format!("k{writer}");
        let (status, body) = post(&c, writer, &key).expect("post");
        assert_eq!(status, 201, "POST through node {}: {body}", writer + 1);
        for reader in 0..3 {
            let (status, body) = c
                .call(reader, "GET", &format!("{ZONE}?key={key}"), "")
                .expect("get");
            assert_eq!(
                (status, body.as_str()),
                (200, &*format!("{{\"{key}\":\"1\"}}")),
                "node {} reading what node {} wrote",
                reader + 1,
                writer + 1
            );
        }
    }
    // A second POST of the same key is refused on every node, as NGINX Plus does.
    let (status, body) = c.call(2, "POST", ZONE, "{\"k0\":\"x\"}").expect("post");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"KeyvalKeyExists\""), "{body}");
    // PATCH with null deletes everywhere (zone_sync never propagated deletes).
    assert_eq!(
        c.call(1, "PATCH", ZONE, "{\"k0\":null}").expect("patch").0,
        204
    );
    let (status, _) = c
        .call(0, "GET", &format!("{ZONE}?key=k0"), "")
        .expect("get");
    assert_eq!(status, 404);
}

#[test]
fn kill_9_of_the_leader_during_writes_loses_nothing_and_writes_resume() {
    let mut c = cluster(Options::default());
    let leader = c.leader(READY).expect("a leader");
    // Write through every node, the leader included, while it dies.
    let load = Load::start(&c, &[0, 1, 2], "w");
    assert!(load.wait_for(30, READY), "writes never got going");
    let before = load.count();
    c.kill9(leader);
    let killed_at = Instant::now();
    let survivor = (leader + 1) % 3;
    let new_leader = c.leader(READY).expect("a new leader");
    assert_ne!(new_leader, leader, "the killed node cannot lead");
    assert!(
        load.wait_for(30, READY),
        "writes did not resume after the leader died"
    );
    eprintln!(
        "leader node {} killed after {before} acknowledged writes; node {} leads; writes resumed within {:?}",
        leader + 1,
        new_leader + 1,
        killed_at.elapsed()
    );
    c.spawn(leader);
    assert!(load.wait_for(10, READY));
    let acked = load.finish();
    for i in 0..3 {
        assert!(c.wait_serving(i, ZONE, READY));
        assert_has_all(&c, i, &acked);
    }
    assert_has_all(&c, survivor, &acked);
}

#[test]
fn acknowledged_writes_survive_kill_9_of_every_node() {
    let mut c = cluster(Options::default());
    let load = Load::start(&c, &[0, 1, 2], "a");
    assert!(load.wait_for(20, READY));
    c.kill9(0);
    assert!(
        load.wait_for(20, READY),
        "the majority stopped accepting writes"
    );
    c.spawn(0);
    let acked = load.finish();
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.spawn(i);
    }
    for i in 0..3 {
        assert!(c.wait_serving(i, ZONE, READY));
        assert_has_all(&c, i, &acked);
    }
}

#[test]
fn a_paused_minority_cannot_write_while_the_majority_can() {
    let mut c = cluster(Options::default());
    let leader = c.leader(READY).expect("a leader");
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // One node paused: the other two are a majority and keep writing.
    c.pause(follower);
    for (n, via) in [leader, other].into_iter().enumerate() {
        let (status, body) = post(&c, via, &format!("majority{n}")).expect("post");
        assert_eq!(status, 201, "a majority must accept writes: {body}");
    }
    c.resume(follower);
    assert!(eventually(READY, || post(&c, follower, "back")
        .map(|r| r.0)
        == Ok(201)));
    // Two paused: the one left is a minority. Its writes fail with an error object —
    // 503 (certainly not applied) or 504 (sent to a leader that may yet run it) — and
    // never hang; once it has noticed the leader is gone, they fail fast with 503.
    c.pause(leader);
    c.pause(other);
    let mut last = 0;
    for n in 0..4 {
        let t = Instant::now();
        let (status, body) = post(&c, follower, &format!("minority{n}")).expect("answered");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a write without a majority took {:?}",
            t.elapsed()
        );
        assert!(matches!(status, 503 | 504), "{status} {body}");
        assert!(body.contains("\"error\""), "{body}");
        last = status;
    }
    assert_eq!(
        last, 503,
        "without a leader a write is refused as not applied"
    );
    let local = c
        .call(
            follower,
            "GET",
            &format!("{ZONE}?key=minority3&consistency=local"),
            "",
        )
        .expect("local read");
    assert_eq!(local.0, 404, "a refused write must not apply: {}", local.1);
    c.resume(leader);
    c.resume(other);
    assert!(eventually(READY, || post(&c, follower, "healed")
        .map(|r| r.0)
        == Ok(201)));
}

#[test]
fn a_fourth_node_joins_and_one_is_removed_under_write_load() {
    let mut c = cluster(Options::default());
    let load = Load::start(&c, &[0, 1], "m");
    assert!(load.wait_for(20, READY));
    let new = c.start_new_member();
    let body = format!("{{\"id\": 4, \"address\": \"{}\"}}", c.members[new].dial);
    let (status, answer) = c
        .call(1, "POST", "/api/2/cluster/nodes", &body)
        .expect("join");
    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains("\"voter\":true"), "{answer}");
    assert!(load.wait_for(20, READY), "writes stalled after the join");
    // The new node serves linearizable reads of everything acknowledged so far.
    let so_far = load.acked.lock().expect("lock").clone();
    assert!(c.wait_serving(new, ZONE, READY));
    assert_has_all(&c, new, &so_far);
    let status = c.status(new).expect("status");
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );
    // Remove node 3 through the new node, then stop it.
    let (status, answer) = c
        .call(new, "DELETE", "/api/2/cluster/nodes/3", "")
        .expect("remove");
    assert_eq!(status, 200, "{answer}");
    let ids: Vec<u64> = serde_json::from_str::<serde_json::Value>(&answer)
        .expect("json")
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![1, 2, 4]);
    c.kill9(2);
    assert!(load.wait_for(20, READY), "writes stalled after the removal");
    // A second change while none runs is fine; removing what is gone is 404.
    let (status, answer) = c
        .call(0, "DELETE", "/api/2/cluster/nodes/3", "")
        .expect("again");
    assert_eq!(status, 404, "{answer}");
    let acked = load.finish();
    for i in [0, 1, new] {
        assert_has_all(&c, i, &acked);
    }
    // With 3 remaining voters, one more loss is survivable: node 3 is out of the quorum.
    let leader = c.leader(READY).expect("leader");
    let survivor = [0, 1, new]
        .into_iter()
        .find(|i| *i != leader)
        .expect("another");
    c.kill9(leader);
    assert!(eventually(READY, || post(&c, survivor, "after")
        .map(|r| r.0)
        == Ok(201)));
}

#[test]
fn a_follower_behind_a_purged_log_catches_up_by_snapshot() {
    let mut c = cluster(Options {
        snapshot_entries: Some(20),
        ..Options::default()
    });
    let leader = c.leader(READY).expect("leader");
    let behind = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let last_seen = c.status(behind).expect("status")["last_log_index"]
        .as_u64()
        .expect("index");
    c.kill9(behind);
    let mut acked = Vec::new();
    for n in 0..150 {
        let key = format!("s{n}");
        if post(&c, [leader, other][n % 2], &key).map(|r| r.0) == Ok(201) {
            acked.push(key);
        }
    }
    assert!(
        acked.len() >= 140,
        "only {} writes acknowledged",
        acked.len()
    );
    // The leader no longer has the entries the stopped follower needs next.
    let purged = c.status(leader).expect("status")["purged_index"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        purged > last_seen,
        "the leader kept its log (purged {purged}, follower at {last_seen})"
    );
    c.spawn(behind);
    assert!(c.wait_serving(behind, ZONE, READY));
    assert!(
        eventually(READY, || c
            .status(behind)
            .and_then(|s| s["snapshot_index"].as_u64())
            .is_some_and(|s| s > last_seen)),
        "the follower never installed a snapshot"
    );
    assert_has_all(&c, behind, &acked);
}

#[test]
fn cluster_local_starts_three_nodes_and_ctrl_c_stops_them_all() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("raftgate-local-{}", fastrand::u64(..)));
    let mut parent = std::process::Command::new(BIN)
        .args([
            "cluster",
            "local",
            "--nodes",
            "3",
            "--http-port",
            "0",
            "--raft-port",
            "0",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = std::io::BufReader::new(parent.stdout.take().expect("stdout"));
    let mut nodes: Vec<(std::net::SocketAddr, i32)> = Vec::new();
    let mut lines = out.lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        // "  node 1  http://127.0.0.1:P/   api ...   raft ...   pid N   log ..."
        if let Some(rest) = line.trim().strip_prefix("node ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let http = words[1].trim_start_matches("http://").trim_end_matches('/');
            let pid = words[words.iter().position(|w| *w == "pid").expect("pid") + 1];
            nodes.push((http.parse().expect("addr"), pid.parse().expect("pid")));
        }
        if line.starts_with("cluster formed") {
            break;
        }
    }
    assert_eq!(nodes.len(), 3);
    let demo = "/api/2/http/keyvals/demo";
    assert!(eventually(READY, || raftgate_cluster_tests::call(
        nodes[0].0,
        "POST",
        demo,
        "{\"alice\":\"1\"}"
    )
    .map(|r| r.0)
        == Ok(201)));
    let (status, body) = raftgate_cluster_tests::call(nodes[2].0, "GET", demo, "").expect("read");
    assert_eq!((status, body.as_str()), (200, "{\"alice\":\"1\"}"));
    // Ctrl-C: the command stops every node and exits.
    // SAFETY: kill(2) on the child this test spawned.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(parent.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = parent.wait().expect("wait");
    assert!(status.success(), "{status}");
    for (_, pid) in &nodes {
        // SAFETY: signal 0 only checks whether the process exists.
        #[allow(unsafe_code)]
        let alive = unsafe { libc::kill(*pid, 0) } == 0;
        assert!(!alive, "node pid {pid} still running after Ctrl-C");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keyval_timeout_expires_a_key_on_every_node_by_the_leaders_clock() {
    let c = cluster(Options {
        http: "keyval_zone zone=one:1m;\n    keyval_zone zone=short:1m timeout=2s;\n".into(),
        ..Options::default()
    });
    let short = "/api/2/http/keyvals/short";
    assert!(c.wait_serving(0, short, READY));
    let written = Instant::now();
    assert_eq!(
        c.call(1, "POST", short, "{\"tmp\":\"1\"}").expect("post").0,
        201
    );
    for i in 0..3 {
        let (status, body) = c.call(i, "GET", short, "").expect("read");
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"tmp\":\"1\"}"),
            "node {}",
            i + 1
        );
    }
    // Gone everywhere once the leader proposes the expiry, and not before the timeout.
    for i in 0..3 {
        let local = format!("{short}?consistency=local");
        assert!(
            eventually(Duration::from_secs(10), || c
                .call(i, "GET", &local, "")
                .is_ok_and(|(s, b)| s == 200 && b == "{}")),
            "node {} kept an expired key",
            i + 1
        );
    }
    let took = written.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "expired after {took:?}, before its 2 s timeout"
    );
    eprintln!("a 2 s keyval expired on all three nodes {took:?} after its write");
}

#[test]
fn leadership_handed_over_under_writes_refuses_and_loses_nothing() {
    let c = cluster(Options::default());
    let load = Load::start(&c, &[0, 1, 2], "h");
    assert!(load.wait_for(30, READY), "writes never got going");
    for round in 0..6 {
        let leader = c.leader(READY).expect("a leader");
        let to = (leader + 1) % 3;
        // Asked through the leader, the target or the third node in turn.
        let via = [leader, to, 3 - leader - to][round % 3];
        let started = Instant::now();
        let ask = || {
            c.call(
                via,
                "POST",
                "/api/2/cluster/leader",
                &format!("{{\"id\": {}}}", c.members[to].id),
            )
            .expect("transfer")
        };
        // A handover given up because the target lagged (a loaded machine) changed
        // nothing and says so; asking again is what an operator does.
        let mut answer = ask();
        for _ in 0..3 {
            if !(answer.0 == 504 && answer.1.contains("ClusterNodeNotCaughtUp")) {
                break;
            }
            answer = ask();
        }
        let (status, body) = answer;
        let took = started.elapsed();
        assert_eq!(status, 200, "round {round}: {body}");
        let shown: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(shown["id"], c.members[to].id, "{body}");
        assert_eq!(shown["role"], "leader", "{body}");
        eprintln!(
            "round {round}: node {} handed over to node {} (asked through node {}) in {took:?}",
            c.members[leader].id, c.members[to].id, c.members[via].id
        );
        // Every node names the new leader, and writes go on through all.
        assert_eq!(c.leader(READY), Some(to), "round {round}");
        assert!(
            load.wait_for(20, READY),
            "writes stopped after round {round}"
        );
    }
    // Handing over to the leader itself changes nothing; to a non-member is a 404.
    let leader = c.leader(READY).expect("a leader");
    let me = format!("{{\"id\": {}}}", c.members[leader].id);
    let (status, _) = c
        .call(leader, "POST", "/api/2/cluster/leader", &me)
        .expect("no-op");
    assert_eq!(status, 200);
    let (status, body) = c
        .call(0, "POST", "/api/2/cluster/leader", r#"{"id": 9}"#)
        .expect("unknown");
    assert_eq!(status, 404, "{body}");
    let failed = load.failed.lock().expect("lock").clone();
    let acked = load.finish();
    // No write is refused (503) for a handover. One forwarded at the very moment may,
    // rarely, be answered "outcome unknown" (504): it may have applied, so it is never
    // counted as acknowledged, and nothing acknowledged may be missing below.
    let refused: Vec<&String> = failed.iter().filter(|f| !f.starts_with("504 ")).collect();
    assert!(
        refused.is_empty(),
        "writes refused during handovers: {refused:?}"
    );
    eprintln!(
        "{} writes acknowledged, {} outcome unknown",
        acked.len(),
        failed.len()
    );
    for i in 0..3 {
        assert_has_all(&c, i, &acked);
    }
}
