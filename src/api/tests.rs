//! The whole handler over the real reducer, without Raft: a `Backend` that applies
//! entries to a `State` behind a mutex, and can be told to fail like a cluster does.

use std::sync::Mutex;

use bytes::Bytes;
use http::Method;
use raftgate_raft::types::Response;
use raftgate_raft::{Command, Entry, KeyType, Ref, State};
use serde_json::{json, Value};

use super::{serve, ApiRequest, ApiResponse, Backend};
use crate::cluster::{ClusterStatus, NodeStatus, StorageStatus, WriteError};
use raftgate_raft::network::{MembershipChange, MembershipError};

#[derive(Default)]
pub(super) struct Fake {
    pub(super) state: Mutex<(u64, State)>,
    entries: Mutex<Vec<Entry>>,
    barrier_error: Option<String>,
    write_error: Option<WriteError>,
    barriers: Mutex<u32>,
    members: Mutex<Vec<NodeStatus>>,
    membership_error: Option<MembershipError>,
}

fn member(id: u64, role: &'static str) -> NodeStatus {
    NodeStatus {
        id,
        address: format!("127.0.0.1:710{id}"),
        role,
        voter: role != "learner",
        matched_index: Some(7),
        lag: Some(0),
        last_contact: Some(0),
    }
}

impl Backend for Fake {
    async fn barrier(&self) -> Result<(), String> {
        *self.barriers.lock().expect("lock") += 1;
        match &self.barrier_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn propose(&self, entry: Entry) -> Result<Response, WriteError> {
        if let Some(e) = &self.write_error {
            return Err(e.clone());
        }
        self.entries.lock().expect("lock").push(entry.clone());
        let mut g = self.state.lock().expect("lock");
        g.0 += 1;
        let index = g.0;
        Ok(g.1.apply(index, entry))
    }

    fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("lock").1)
    }

    async fn cluster_status(&self) -> ClusterStatus {
        let nodes = self.members.lock().expect("lock").clone();
        ClusterStatus {
            id: 1,
            state: "leader",
            leader: nodes.iter().find(|n| n.role == "leader").map(|n| n.id),
            term: 2,
            commit_index: Some(7),
            applied_index: Some(7),
            last_log_index: Some(7),
            snapshot_index: None,
            purged_index: None,
            last_contact: Some(0),
            membership_index: Some(1),
            nodes,
            storage: StorageStatus::default(),
            sessions: Default::default(),
        }
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<u64, MembershipError> {
        if let Some(e) = &self.membership_error {
            return Err(e.clone());
        }
        let mut members = self.members.lock().expect("lock");
        match change {
            MembershipChange::Add { id, addr, voter } => members.push(NodeStatus {
                address: addr,
                ..member(id, if voter { "voter" } else { "learner" })
            }),
            MembershipChange::Remove { id } => {
                let before = members.len();
                members.retain(|m| m.id != id);
                if members.len() == before {
                    return Err(MembershipError::NotFound(id));
                }
            }
            MembershipChange::TransferLeader { to } => {
                match members.iter().find(|m| m.id == to).map(|m| m.role) {
                    None => return Err(MembershipError::NotFound(to)),
                    Some("learner") => return Err(MembershipError::Invalid("learner".into())),
                    Some(_) => {}
                }
                for m in members.iter_mut() {
                    m.role = match (m.id == to, m.role) {
                        (true, _) => "leader",
                        (false, "leader") => "voter",
                        (false, role) => role,
                    };
                }
            }
        }
        Ok(8)
    }

    fn backup(&self) -> Result<Vec<u8>, String> {
        let g = self.state.lock().expect("lock");
        raftgate_storage::encode_backup(&g.1, None, &Default::default())
    }
}

pub(super) fn fake() -> Fake {
    let f = Fake {
        members: Mutex::new(vec![member(1, "leader"), member(2, "voter")]),
        ..Fake::default()
    };
    for zone in [Ref::http("one"), Ref::http("two"), Ref::stream("one")] {
        let mut g = f.state.lock().expect("lock");
        g.0 += 1;
        let index = g.0;
        g.1.apply(
            index,
            Entry::Command(Command::ConfigureKeyvalZone {
                zone,
                capacity_bytes: 1 << 20,
                timeout_ms: None,
                key_type: KeyType::String,
            }),
        )
        .expect("zone");
    }
    f
}

pub(super) struct Call<'a> {
    method: Method,
    path: &'a str,
    pub(super) query: Option<&'a str>,
    body: &'a [u8],
    pub(super) write: bool,
    pub(super) stream: bool,
    pub(super) http: Option<&'a crate::http::HttpConf>,
}

pub(super) fn call(path: &str) -> Call<'_> {
    Call {
        method: Method::GET,
        path,
        query: None,
        body: b"",
        write: true,
        stream: true,
        http: None,
    }
}

impl<'a> Call<'a> {
    pub(super) fn method(self, m: Method, body: &'a str) -> Self {
        self.method_bytes(m, body.as_bytes())
    }

    pub(super) fn method_bytes(mut self, m: Method, body: &'a [u8]) -> Self {
        self.method = m;
        self.body = body;
        self
    }

    pub(super) fn query(mut self, q: &'a str) -> Self {
        self.query = Some(q);
        self
    }

    pub(super) async fn on(self, b: &Fake) -> ApiResponse {
        let full = format!("/api{}", self.path);
        serve(
            b,
            ApiRequest {
                method: &self.method,
                path: self.path,
                query: self.query,
                body: Bytes::copy_from_slice(self.body),
                write: self.write,
                request_id: "rid",
                full_path: &full,
                stream_configured: self.stream,
                local: super::Local {
                    http: self.http,
                    metrics: &crate::metrics::Metrics::default(),
                    open_connections: 0,
                    generation: 0,
                    loaded: std::time::SystemTime::UNIX_EPOCH,
                    address: "127.0.0.1".into(),
                },
            },
        )
        .await
    }
}

pub(super) fn body(r: &ApiResponse) -> Value {
    serde_json::from_slice(&r.body).expect("json body")
}

/// Asserts an error answer and its object; returns the text.
pub(super) fn error(r: &ApiResponse, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{:?}", r.body);
    let v = body(r);
    assert_eq!(v["error"]["status"], json!(status));
    assert_eq!(v["error"]["code"], json!(code), "{v}");
    assert_eq!(v["request_id"], json!("rid"));
    assert!(v["path"].as_str().is_some_and(|p| p.starts_with("/api/")));
    v["error"]["text"].as_str().expect("text").to_string()
}

#[tokio::test]
async fn listings_versions_and_unknown_paths() {
    let b = fake();
    for (path, want) in [
        ("/", json!([2])),
        ("", json!([2])),
        (
            "/2",
            json!([
                "nginx",
                "processes",
                "connections",
                "ssl",
                "slabs",
                "http",
                "stream",
                "cluster"
            ]),
        ),
        (
            "/2/http",
            json!(["requests", "server_zones", "caches", "upstreams", "keyvals"]),
        ),
        (
            "/2/stream/",
            json!(["server_zones", "upstreams", "keyvals"]),
        ),
    ] {
        let r = call(path).on(&b).await;
        assert_eq!((r.status, body(&r)), (200, want), "{path}");
    }
    error(
        &call("/1/http/keyvals/").on(&b).await,
        404,
        "UnknownVersion",
    );
    error(&call("/x").on(&b).await, 404, "UnknownVersion");
    error(&call("/2/nginx/x").on(&b).await, 404, "PathNotFound");
    let mut no_stream = call("/2/stream/");
    no_stream.stream = false;
    error(&no_stream.on(&b).await, 404, "StreamNotConfigured");
    let mut no_stream = call("/2/stream/keyvals/one").method(Method::POST, "{}");
    no_stream.stream = false;
    error(&no_stream.on(&b).await, 404, "StreamNotConfigured");
    let r = call("/2/").method(Method::POST, "{}").on(&b).await;
    error(&r, 405, "MethodNotSupported");
    let r = call("/2/http/keyvals/")
        .method(Method::DELETE, "")
        .on(&b)
        .await;
    error(&r, 405, "MethodNotSupported");
    let r = call("/2/http/keyvals/one")
        .method(Method::PUT, "")
        .on(&b)
        .await;
    error(&r, 405, "MethodNotSupported");
}

#[tokio::test]
async fn the_nginx_keyval_table() {
    let b = fake();
    let r = call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"a":"1","b":"2"}"#)
        .on(&b)
        .await;
    assert_eq!(
        (r.status, r.body.len()),
        (201, 0),
        "several pairs into an empty zone"
    );
    let r = call("/2/http/keyvals/one").on(&b).await;
    assert_eq!((r.status, body(&r)), (200, json!({"a": "1", "b": "2"})));
    let r = call("/2/http/keyvals/one/").query("key=a").on(&b).await;
    assert_eq!((r.status, body(&r)), (200, json!({"a": "1"})));
    error(
        &call("/2/http/keyvals/one").query("key=zz").on(&b).await,
        404,
        "KeyvalKeyNotFound",
    );
    error(
        &call("/2/http/keyvals/nope").on(&b).await,
        404,
        "KeyvalNotFound",
    );

    let r = call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"c":"3","d":"4"}"#)
        .on(&b)
        .await;
    assert_eq!(
        error(&r, 400, "KeyvalFormatError"),
        "only one key can be added"
    );
    let r = call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"a":"x"}"#)
        .on(&b)
        .await;
    assert_eq!(
        error(&r, 409, "KeyvalKeyExists"),
        "key \"a\" already exists"
    );
    let r = call("/2/http/keyvals/one/")
        .method(Method::PATCH, r#"{"a":"v2"}"#)
        .on(&b)
        .await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = call("/2/http/keyvals/one")
        .method(Method::PATCH, r#"{"b":null}"#)
        .on(&b)
        .await;
    assert_eq!(r.status, 204);
    let r = call("/2/http/keyvals/one").on(&b).await;
    assert_eq!(body(&r), json!({"a": "v2"}));
    let r = call("/2/http/keyvals/one")
        .method(Method::PATCH, r#"{"zz":"1"}"#)
        .on(&b)
        .await;
    error(&r, 404, "KeyvalKeyNotFound");
    let r = call("/2/http/keyvals/one")
        .method(Method::PATCH, r#"{"a":"1","b":"2"}"#)
        .on(&b)
        .await;
    assert_eq!(
        error(&r, 400, "KeyvalFormatError"),
        "only one key can be updated"
    );
    let r = call("/2/http/keyvals/nope")
        .method(Method::POST, r#"{"a":"1"}"#)
        .on(&b)
        .await;
    assert_eq!(
        error(&r, 404, "KeyvalNotFound"),
        "keyval \"nope\" not found"
    );

    // Numbers and booleans are stored as their JSON text.
    let r = call("/2/http/keyvals/two")
        .method(Method::POST, r#"{"n":1,"t":true}"#)
        .on(&b)
        .await;
    assert_eq!(r.status, 201);
    let r = call("/2/http/keyvals/").on(&b).await;
    assert_eq!(
        body(&r),
        json!({"one": {"a": "v2"}, "two": {"n": "1", "t": "true"}})
    );
    let r = call("/2/http/keyvals").query("fields=").on(&b).await;
    assert_eq!(body(&r), json!({"one": {}, "two": {}}));
    let r = call("/2/http/keyvals/")
        .query("fields=t,a,zz,a")
        .on(&b)
        .await;
    assert_eq!(body(&r), json!({"one": {"a": "v2"}, "two": {"t": "true"}}));

    let r = call("/2/http/keyvals/two/")
        .method(Method::DELETE, "")
        .on(&b)
        .await;
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = call("/2/http/keyvals/two").on(&b).await;
    assert_eq!(body(&r), json!({}));
    let r = call("/2/http/keyvals/nope")
        .method(Method::DELETE, "")
        .on(&b)
        .await;
    error(&r, 404, "KeyvalNotFound");

    // http and stream zones are apart.
    let r = call("/2/stream/keyvals/").on(&b).await;
    assert_eq!(body(&r), json!({"one": {}}));
}

#[tokio::test]
async fn refused_bodies_propose_nothing_and_change_nothing() {
    let b = fake();
    let post = |body| call("/2/http/keyvals/one").method(Method::POST, body);
    assert_eq!(post(r#"{"a":"1"}"#).on(&b).await.status, 201);
    let before = b.state.lock().expect("lock").1.clone();
    let proposed = b.entries.lock().expect("lock").len();
    for (body, status, code) in [
        ("", 415, "JsonError"),
        ("{\"b\":", 415, "JsonError"),
        ("{\"b\":\"\u{0}", 415, "JsonError"),
        ("[]", 400, "KeyvalFormatError"),
        ("{}", 400, "KeyvalFormatError"),
        (r#"{"b":{"c":"d"}}"#, 400, "KeyvalFormatError"),
        (r#"{"b":["c"]}"#, 400, "KeyvalFormatError"),
        (r#"{"b":null}"#, 400, "KeyvalFormatError"),
    ] {
        error(&post(body).on(&b).await, status, code);
        let patch = call("/2/http/keyvals/one").method(Method::PATCH, body);
        if body != r#"{"b":null}"# {
            error(&patch.on(&b).await, status, code);
        }
    }
    let r = call("/2/http/keyvals/one")
        .method(Method::POST, "{\"b\":\"1\"}x")
        .on(&b)
        .await;
    error(&r, 415, "JsonError");
    assert_eq!(b.entries.lock().expect("lock").len(), proposed);
    assert_eq!(b.state.lock().expect("lock").1, before);

    // Refused by the reducer: proposed, but nothing in the zone changes.
    error(&post(r#"{"a":"2"}"#).on(&b).await, 409, "KeyvalKeyExists");
    error(
        &post(r#"{"x":"1","y":"2"}"#).on(&b).await,
        400,
        "KeyvalFormatError",
    );
    error(&post(r#"{"":"1"}"#).on(&b).await, 400, "KeyvalFormatError");
    let r = call("/2/http/keyvals/one").on(&b).await;
    assert_eq!(body(&r), json!({"a": "1"}));
}

#[tokio::test]
async fn write_off_disables_writes_but_not_reads() {
    let b = fake();
    for m in [Method::POST, Method::PATCH, Method::DELETE] {
        let mut c = call("/2/http/keyvals/one").method(m, r#"{"a":"1"}"#);
        c.write = false;
        let text = error(&c.on(&b).await, 405, "MethodDisabled");
        assert_eq!(text, "method disabled");
    }
    assert!(b.entries.lock().expect("lock").is_empty());
    let mut c = call("/2/http/keyvals/one");
    c.write = false;
    assert_eq!(c.on(&b).await.status, 200);
}

#[tokio::test]
async fn reads_take_a_barrier_unless_local_and_cluster_failures_map() {
    let mut b = fake();
    call("/2/http/keyvals/one").on(&b).await;
    call("/2/http/keyvals/").on(&b).await;
    call("/2/http/keyvals/")
        .query("consistency=local")
        .on(&b)
        .await;
    call("/2/").on(&b).await;
    assert_eq!(*b.barriers.lock().expect("lock"), 2);

    b.barrier_error = Some("no leader".into());
    let r = call("/2/http/keyvals/one").on(&b).await;
    let text = error(&r, 503, "ClusterUnavailable");
    assert!(text.contains("no leader"), "{text}");
    let r = call("/2/http/keyvals/one")
        .query("consistency=local")
        .on(&b)
        .await;
    assert_eq!(r.status, 200);

    b.write_error = Some(WriteError::NotApplied("no leader: not proposed".into()));
    let r = call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"a":"1"}"#)
        .on(&b)
        .await;
    assert_eq!(
        error(&r, 503, "ClusterUnavailable"),
        "no leader: not proposed"
    );
    b.write_error = Some(WriteError::Unknown("not confirmed".into()));
    let r = call("/2/http/keyvals/one")
        .method(Method::DELETE, "")
        .on(&b)
        .await;
    assert_eq!(error(&r, 504, "WriteOutcomeUnknown"), "not confirmed");
}

#[tokio::test]
async fn writes_are_deduplicated_requests_with_the_clock() {
    let b = fake();
    let before = super::now_ms();
    call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"a":"1"}"#)
        .on(&b)
        .await;
    call("/2/http/keyvals/one")
        .method(Method::PATCH, r#"{"a":null}"#)
        .on(&b)
        .await;
    let entries = b.entries.lock().expect("lock").clone();
    let [Entry::Request(add), Entry::Request(del)] = entries.as_slice() else {
        panic!("two requests: {entries:?}");
    };
    assert_ne!(add.client, del.client, "one client per API request");
    assert_eq!((add.serial, del.serial), (1, 1));
    match &add.command {
        Command::KeyvalAdd {
            zone,
            pairs,
            now_ms,
        } => {
            assert_eq!(zone, &Ref::http("one"));
            assert_eq!(pairs, &vec![("a".to_string(), "1".to_string())]);
            assert!(*now_ms >= before);
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        del.command,
        Command::KeyvalDelete {
            zone: Ref::http("one"),
            key: "a".into()
        }
    );
}

#[tokio::test]
async fn cluster_status_and_members() {
    let f = fake();
    let r = call("/2/cluster").on(&f).await;
    assert_eq!(r.status, 200);
    let v = body(&r);
    assert_eq!(v["leader"], 1);
    assert_eq!(v["nodes"][1]["role"], "voter");
    assert_eq!(v["nodes"][1]["address"], "127.0.0.1:7102");
    let r = call("/2/cluster/nodes/2").on(&f).await;
    assert_eq!((r.status, body(&r)["id"].clone()), (200, json!(2)));
    let r = call("/2/cluster/nodes/9").on(&f).await;
    error(&r, 404, "ClusterNodeNotFound");
    let r = call("/2/cluster/nodes/x").on(&f).await;
    error(&r, 400, "ClusterNodeFormatError");
}

#[tokio::test]
async fn cluster_add_and_remove() {
    let f = fake();
    let add = r#"{"id": 3, "address": "127.0.0.1:7103"}"#;
    let r = call("/2/cluster/nodes")
        .method(Method::POST, add)
        .on(&f)
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(body(&r)["role"], "voter");
    let learner = r#"{"id": 4, "address": "h:7104", "voter": false}"#;
    let r = call("/2/cluster/nodes/")
        .method(Method::POST, learner)
        .on(&f)
        .await;
    assert_eq!(
        (r.status, body(&r)["role"].clone()),
        (201, json!("learner"))
    );
    let r = call("/2/cluster/nodes/2")
        .method(Method::DELETE, "")
        .on(&f)
        .await;
    assert_eq!(r.status, 200);
    let ids: Vec<Value> = body(&r)
        .as_array()
        .expect("array")
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!(3), json!(4)]);
    let r = call("/2/cluster/nodes/2")
        .method(Method::DELETE, "")
        .on(&f)
        .await;
    error(&r, 404, "ClusterNodeNotFound");
}

#[tokio::test]
async fn cluster_bad_bodies_change_nothing() {
    let f = fake();
    for (b, status, c) in [
        ("{", 415, "JsonError"),
        ("", 415, "JsonError"),
        ("[1]", 400, "ClusterNodeFormatError"),
        (r#"{"id": 3}"#, 400, "ClusterNodeFormatError"),
        (
            r#"{"id": "3", "address": "h:1"}"#,
            400,
            "ClusterNodeFormatError",
        ),
        (
            r#"{"id": 0, "address": "h:1"}"#,
            400,
            "ClusterNodeFormatError",
        ),
        (
            r#"{"id": 3, "address": "nohost"}"#,
            400,
            "ClusterNodeFormatError",
        ),
        (
            r#"{"id": 3, "address": "h:99999"}"#,
            400,
            "ClusterNodeFormatError",
        ),
        (
            r#"{"id": 3, "address": "h:1", "extra": 1}"#,
            400,
            "ClusterNodeFormatError",
        ),
    ] {
        let r = call("/2/cluster/nodes")
            .method(Method::POST, b)
            .on(&f)
            .await;
        error(&r, status, c);
    }
    assert_eq!(f.members.lock().expect("lock").len(), 2);
    let r = call("/2/cluster/nodes")
        .method(Method::PUT, "{}")
        .on(&f)
        .await;
    error(&r, 405, "MethodNotSupported");
    let r = call("/2/cluster").method(Method::POST, "{}").on(&f).await;
    assert_eq!(r.status, 405);
    let mut ro = call("/2/cluster/nodes/2").method(Method::DELETE, "");
    ro.write = false;
    let r = ro.on(&f).await;
    error(&r, 405, "MethodDisabled");
    assert_eq!(f.members.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn cluster_change_errors_map_to_statuses() {
    for (e, status, c) in [
        (
            MembershipError::InProgress("x".into()),
            409,
            "ClusterChangeInProgress",
        ),
        (
            MembershipError::NotLeader { leader: None },
            503,
            "ClusterUnavailable",
        ),
        (
            MembershipError::Invalid("x".into()),
            400,
            "ClusterChangeInvalid",
        ),
        (
            MembershipError::NotCaughtUp {
                id: 3,
                reason: "x".into(),
            },
            504,
            "ClusterNodeNotCaughtUp",
        ),
        (
            MembershipError::NotTakenOver {
                id: 2,
                reason: "x".into(),
            },
            504,
            "ClusterNodeNotCaughtUp",
        ),
        (
            MembershipError::Unknown("x".into()),
            504,
            "WriteOutcomeUnknown",
        ),
    ] {
        let f = Fake {
            membership_error: Some(e.clone()),
            ..fake()
        };
        let r = call("/2/cluster/nodes/2")
            .method(Method::DELETE, "")
            .on(&f)
            .await;
        error(&r, status, c);
    }
}

#[tokio::test]
async fn cluster_leader_shown_and_handed_over() {
    let f = fake();
    let r = call("/2/cluster/leader").on(&f).await;
    assert_eq!((r.status, body(&r)["id"].clone()), (200, json!(1)));
    let r = call("/2/cluster/leader")
        .method(Method::POST, r#"{"id": 2}"#)
        .on(&f)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (body(&r)["id"].clone(), body(&r)["role"].clone()),
        (json!(2), json!("leader"))
    );
    let r = call("/2/cluster/leader").on(&f).await;
    assert_eq!(body(&r)["id"], 2);
    let r = call("/2/cluster/leader")
        .method(Method::POST, r#"{"id": 9}"#)
        .on(&f)
        .await;
    error(&r, 404, "ClusterNodeNotFound");
    for (b, status, c) in [
        ("{", 415, "JsonError"),
        ("[2]", 400, "ClusterNodeFormatError"),
        (r#"{"id": "2"}"#, 400, "ClusterNodeFormatError"),
        (r#"{"id": 2, "force": true}"#, 400, "ClusterNodeFormatError"),
        (r#"{}"#, 400, "ClusterNodeFormatError"),
    ] {
        let r = call("/2/cluster/leader")
            .method(Method::POST, b)
            .on(&f)
            .await;
        error(&r, status, c);
    }
    let r = call("/2/cluster/leader")
        .method(Method::DELETE, "")
        .on(&f)
        .await;
    error(&r, 405, "MethodNotSupported");
    // Nothing above moved the leader again.
    let r = call("/2/cluster/leader").on(&f).await;
    assert_eq!(body(&r)["id"], 2);
    f.members
        .lock()
        .expect("lock")
        .iter_mut()
        .for_each(|m| m.role = "voter");
    let r = call("/2/cluster/leader").on(&f).await;
    error(&r, 503, "ClusterUnavailable");
}

#[tokio::test]
async fn cluster_snapshot_backs_up_and_restores_into_another_cluster() {
    let from = fake();
    let r = call("/2/http/keyvals/one")
        .method(Method::POST, r#"{"a": "1"}"#)
        .on(&from)
        .await;
    assert_eq!(r.status, 201);
    let backup = call("/2/cluster/snapshot").on(&from).await;
    assert_eq!(
        (backup.status, backup.content_type),
        (200, "application/octet-stream")
    );
    assert_eq!(
        *from.barriers.lock().expect("lock"),
        1,
        "a backup is a linearizable read"
    );

    let into = fake();
    let r = call("/2/http/keyvals/two")
        .method(Method::POST, r#"{"kept": "yes"}"#)
        .on(&into)
        .await;
    assert_eq!(r.status, 201);
    let r = call("/2/cluster/snapshot")
        .method_bytes(Method::PUT, &backup.body)
        .on(&into)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = body(&r);
    assert_eq!(
        v["restored"],
        json!(["http/keyvals/one", "http/keyvals/two", "stream/keyvals/one"])
    );
    assert_eq!(v["skipped"], json!([]));
    let r = call("/2/http/keyvals/one").on(&into).await;
    assert_eq!(body(&r), json!({"a": "1"}));
    // Zone two was empty in the backup: it is empty now.
    let r = call("/2/http/keyvals/two").on(&into).await;
    assert_eq!(body(&r), json!({}));
}

#[tokio::test]
async fn cluster_restore_refuses_what_is_not_a_backup_and_proposes_nothing() {
    let f = fake();
    let good = call("/2/cluster/snapshot").on(&f).await.body;
    let mut flipped = good.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    let too_big = vec![0u8; super::cluster::MAX_RESTORE_BYTES + 1];
    for (bad, status) in [
        (&b""[..], 400),
        (&b"{\"one\": {}}"[..], 400),
        (&flipped[..], 400),
        (&good[..good.len() - 1], 400),
        (&too_big[..], 413),
    ] {
        let r = call("/2/cluster/snapshot")
            .method_bytes(Method::PUT, bad)
            .on(&f)
            .await;
        error(&r, status, "SnapshotFormatError");
    }
    let mut ro = call("/2/cluster/snapshot").method_bytes(Method::PUT, &good);
    ro.write = false;
    error(&ro.on(&f).await, 405, "MethodDisabled");
    let r = call("/2/cluster/snapshot")
        .method(Method::POST, "")
        .on(&f)
        .await;
    error(&r, 405, "MethodNotSupported");
    assert!(
        f.entries.lock().expect("lock").is_empty(),
        "a refused restore reached the log"
    );
}
