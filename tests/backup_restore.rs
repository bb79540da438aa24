//! Backup and restore through the API, between two real clusters: a backup taken through
//! any node of one, and a snapshot file copied out of a node's data directory, both
//! restore into another cluster, where every node then serves the restored keys and
//! server flags. What is not a backup is refused and changes nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use raftgate_cluster_tests::{eventually, Cluster, Options};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");
const READY: Duration = Duration::from_secs(30);
const SNAPSHOT: &str = "/api/2/cluster/snapshot";
const UPSTREAM: &str = "upstream backend { zone backend 64k; server 127.0.0.1:9; }\n";

/// One request with a binary body; the status and the raw body.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let status = String::from_utf8_lossy(&out[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, out[end + 4..].to_vec())
}

fn cluster(http: &str, snapshot_entries: Option<u64>) -> Cluster {
    let c = Cluster::start(
        BIN,
        Options {
            http: http.to_string(),
            snapshot_entries,
            ..Options::default()
        },
    );
    for i in 0..3 {
        assert!(c.wait_serving(i, "/api/2/http/keyvals/one", READY));
    }
    c
}

fn get(c: &Cluster, i: usize, path: &str) -> Value {
    let (status, body) = c.call(i, "GET", path, "").expect("get");
    assert_eq!(status, 200, "{path} through node {}: {body}", i + 1);
    serde_json::from_str(&body).expect("json")
}

fn ok(c: &Cluster, i: usize, method: &str, path: &str, body: &str) {
    let (status, answer) = c.call(i, method, path, body).expect("call");
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
}

#[test]
fn a_backup_and_a_copied_snapshot_file_restore_into_another_cluster() {
    // The cluster backed up: 60 keys, an API server that is draining, a zone the other
    // cluster does not declare. A snapshot every 20 entries leaves one on disk.
    let a = cluster(
        &format!("keyval_zone zone=one:1m;\nkeyval_zone zone=old:1m;\n{UPSTREAM}"),
        Some(20),
    );
    for n in 0..60 {
        ok(
            &a,
            n % 3,
            "POST",
            "/api/2/http/keyvals/one",
            &format!("{{\"k{n}\": \"v{n}\"}}"),
        );
    }
    ok(&a, 0, "POST", "/api/2/http/keyvals/old", r#"{"gone": "1"}"#);
    let servers = "/api/2/http/upstreams/backend/servers/";
    ok(&a, 1, "POST", servers, r#"{"server": "127.0.0.1:10"}"#);
    ok(&a, 2, "PATCH", &format!("{servers}1"), r#"{"drain": true}"#);
    let (status, backup) = exchange(a.members[1].http, "GET", SNAPSHOT, b"");
    assert_eq!(status, 200);
    assert!(backup.starts_with(b"RGSNAP"), "a backup is a snapshot file");
    let file = a.members[0].dir.join("data/snapshots/current.snap");
    assert!(
        eventually(READY, || file.exists()),
        "no snapshot file in {}",
        file.display()
    );
    let copied = std::fs::read(&file).expect("snapshot file");
    drop(a);

    // The cluster restored into: declares `one`, `new` and the group, not `old`.
    let b = cluster(
        &format!("keyval_zone zone=one:1m;\nkeyval_zone zone=new:1m;\n{UPSTREAM}"),
        None,
    );
    ok(
        &b,
        0,
        "POST",
        "/api/2/http/keyvals/one",
        r#"{"stale": "x"}"#,
    );
    ok(&b, 0, "POST", "/api/2/http/keyvals/new", r#"{"mine": "1"}"#);
    for bad in [&b"not a backup"[..], &backup[..backup.len() - 1], &b""[..]] {
        let (status, body) = exchange(b.members[2].http, "PUT", SNAPSHOT, bad);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("SnapshotFormatError"), "{text}");
    }
    assert_eq!(get(&b, 1, "/api/2/http/keyvals/one"), json!({"stale": "x"}));

    let (status, body) = exchange(b.members[2].http, "PUT", SNAPSHOT, &backup);
    let report: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["restored"],
        json!(["http/keyvals/one", "http/upstreams/backend"])
    );
    assert_eq!(report["skipped"], json!(["http/keyvals/old"]));
    assert_eq!(report["kept"], json!(["http/keyvals/new"]));
    // Every node serves the restored state, at once (a linearizable read).
    for i in 0..3 {
        let one = get(&b, i, "/api/2/http/keyvals/one");
        let want: serde_json::Map<String, Value> = (0..60)
            .map(|n| (format!("k{n}"), json!(format!("v{n}"))))
            .collect();
        assert_eq!(one, Value::Object(want), "node {}", i + 1);
        assert_eq!(get(&b, i, "/api/2/http/keyvals/new"), json!({"mine": "1"}));
        let drained = get(&b, i, &format!("{servers}1"));
        assert_eq!(
            (drained["server"].clone(), drained["drain"].clone()),
            (json!("127.0.0.1:10"), json!(true)),
            "node {}",
            i + 1
        );
    }

    // A snapshot file copied out of a node's data directory restores too, with the keys
    // written before it was taken (k0 among them: the snapshot is of index 20 or later).
    ok(&b, 0, "DELETE", "/api/2/http/keyvals/one", "");
    let (status, body) = exchange(b.members[0].http, "PUT", SNAPSHOT, &copied);
    let report: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "{report}");
    assert!(
        report["backup_index"].as_u64().is_some_and(|i| i >= 20),
        "{report}"
    );
    let one = get(&b, 2, "/api/2/http/keyvals/one");
    assert!(
        one.as_object()
            .is_some_and(|m| m.len() >= 10 && m["k0"] == "v0"),
        "{one}"
    );
}
