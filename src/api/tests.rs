//! The whole handler over the real reducer, without Raft: a `Backend` that applies
//! entries to a `State` behind a mutex, and can be told to fail like a cluster does.

use std::sync::Mutex;

use bytes::Bytes;
use http::Method;
use raftgate_raft::types::Response;
use raftgate_raft::{Command, Entry, KeyType, Ref, State};
use serde_json::{json, Value};

use super::{serve, ApiRequest, ApiResponse, Backend};
use crate::cluster::WriteError;

#[derive(Default)]
struct Fake {
    state: Mutex<(u64, State)>,
    entries: Mutex<Vec<Entry>>,
    barrier_error: Option<String>,
    write_error: Option<WriteError>,
    barriers: Mutex<u32>,
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
}

fn fake() -> Fake {
    let f = Fake::default();
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

struct Call<'a> {
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    body: &'a str,
    write: bool,
    stream: bool,
}

fn call(path: &str) -> Call<'_> {
    Call {
        method: Method::GET,
        path,
        query: None,
        body: "",
        write: true,
        stream: true,
    }
}

impl<'a> Call<'a> {
    fn method(mut self, m: Method, body: &'a str) -> Self {
        self.method = m;
        self.body = body;
        self
    }

    fn query(mut self, q: &'a str) -> Self {
        self.query = Some(q);
        self
    }

    async fn on(self, b: &Fake) -> ApiResponse {
        let full = format!("/api{}", self.path);
        serve(
            b,
            ApiRequest {
                method: &self.method,
                path: self.path,
                query: self.query,
                body: Bytes::copy_from_slice(self.body.as_bytes()),
                write: self.write,
                request_id: "rid",
                full_path: &full,
                stream_configured: self.stream,
            },
        )
        .await
    }
}

fn body(r: &ApiResponse) -> Value {
    serde_json::from_slice(&r.body).expect("json body")
}

/// Asserts an error answer and its object; returns the text.
fn error(r: &ApiResponse, status: u16, code: &str) -> String {
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
        ("/2", json!(["http", "stream"])),
        ("/2/", json!(["http", "stream"])),
        ("/2/http", json!(["keyvals"])),
        ("/2/stream/", json!(["keyvals"])),
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
    error(&call("/2/nginx").on(&b).await, 404, "PathNotFound");
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
