//! The keyval API over a real single-node cluster (sled on disk, openraft, no peers):
//! every row of NGINX's keyval table through `api::handle`, with reads fenced by the read
//! barrier and writes committed through Raft.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use raftgate::api::{self, ApiRequest, ApiResponse};
use raftgate::cluster::{Node, NodeOptions};
use raftgate_raft::network::NetworkConfig;
use raftgate_raft::{Applied, Command, Entry, KeyType, Ref};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Single {
    node: Node,
    dir: std::path::PathBuf,
}

impl Single {
    /// A single-node cluster with http zones `one` and `two` and stream zone `one`.
    async fn start() -> Single {
        let dir = std::env::temp_dir().join(format!(
            "raftgate-api-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let node = Node::start(NodeOptions {
            id: 1,
            listener: None,
            members: BTreeMap::from([(1, String::new())]),
            data_dir: dir.clone(),
            raft: NodeOptions::raft_config(None, None).expect("config"),
            network: NetworkConfig::default(),
        })
        .await
        .expect("node starts");
        assert_eq!(node.leader(WAIT).await, Some(1));
        for zone in [Ref::http("one"), Ref::http("two"), Ref::stream("one")] {
            let entry = Entry::Command(Command::ConfigureKeyvalZone {
                zone,
                capacity_bytes: 1 << 20,
                timeout_ms: None,
                key_type: KeyType::String,
            });
            let (applied, _) = node.write(entry, WAIT).await.expect("configure");
            assert_eq!(applied, Ok(Applied::Done));
        }
        Single { node, dir }
    }

    async fn stop(self) {
        self.node.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: &str,
    ) -> ApiResponse {
        self.send_with(method, path, query, body, true).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: &str,
        write: bool,
    ) -> ApiResponse {
        let full = format!("/api{path}");
        api::handle(
            &self.node,
            ApiRequest {
                method: &method,
                path,
                query,
                body: Bytes::copy_from_slice(body.as_bytes()),
                write,
                request_id: "0123456789abcdef0123456789abcdef",
                full_path: &full,
                stream_configured: true,
                local: api::Local {
                    http: None,
                    metrics: &raftgate::metrics::Metrics::default(),
                    open_connections: 0,
                    generation: 0,
                    loaded: std::time::SystemTime::now(),
                    address: "127.0.0.1".into(),
                },
            },
        )
        .await
    }

    async fn get(&self, path: &str, query: Option<&str>) -> (u16, Value) {
        let r = self.send(Method::GET, path, query, "").await;
        (r.status, json_of(&r))
    }

    /// The zone's contents as this node's applied state holds them.
    fn zone(&self, name: &str) -> BTreeMap<String, String> {
        let applied = self.node.reader.load();
        applied
            .state()
            .keyval_entries(&Ref::http(name))
            .map(|it| it.map(|(k, v)| (k.to_string(), v.to_string())).collect())
            .unwrap_or_default()
    }
}

fn json_of(r: &ApiResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.body))
}

/// Asserts an NGINX error object; returns `error.text`.
fn assert_error(r: &ApiResponse, method: &str, path: &str, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{:?}", r.body);
    let v = json_of(r);
    assert_eq!(v["path"], json!(format!("/api{path}")));
    assert_eq!(v["method"], json!(method));
    assert_eq!(v["error"]["status"], json!(status));
    assert_eq!(v["error"]["code"], json!(code), "{v}");
    assert_eq!(v["request_id"], json!("0123456789abcdef0123456789abcdef"));
    assert_eq!(
        v["href"],
        json!("https://nginx.org/en/docs/http/ngx_http_api_module.html")
    );
    v["error"]["text"].as_str().expect("text").to_string()
}

fn assert_empty(r: &ApiResponse, status: u16) {
    assert_eq!((r.status, &r.body[..]), (status, &b""[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_nginx_keyval_table_on_a_real_node() {
    let c = Single::start().await;
    let zone = "/2/http/keyvals/one";

    assert_eq!(c.get("/", None).await, (200, json!([2])));
    // The listings themselves are the unit tests' (src/api/tests.rs); here: served.
    for path in ["/2/", "/2/http"] {
        let (status, list) = c.get(path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            list.as_array()
                .is_some_and(|l| l.contains(&json!("keyvals")) || l.contains(&json!("http"))),
            "{path}: {list}"
        );
    }

    // POST several pairs into an empty zone, then read them back every way.
    let r = c
        .send(Method::POST, zone, None, r#"{"a":"1","b":"2"}"#)
        .await;
    assert_empty(&r, 201);
    assert_eq!(c.get(zone, None).await, (200, json!({"a": "1", "b": "2"})));
    assert_eq!(
        c.get("/2/http/keyvals/one/", Some("key=b")).await,
        (200, json!({"b": "2"}))
    );
    let r = c.send(Method::GET, zone, Some("key=zz"), "").await;
    let text = assert_error(&r, "GET", zone, 404, "KeyvalKeyNotFound");
    assert_eq!(text, "key \"zz\" not found");
    let r = c.send(Method::GET, "/2/http/keyvals/nope", None, "").await;
    assert_error(&r, "GET", "/2/http/keyvals/nope", 404, "KeyvalNotFound");
    assert_eq!(
        c.get("/2/http/keyvals/", None).await,
        (200, json!({"one": {"a": "1", "b": "2"}, "two": {}}))
    );
    assert_eq!(
        c.get("/2/http/keyvals", Some("fields=")).await,
        (200, json!({"one": {}, "two": {}}))
    );
    assert_eq!(
        c.get(zone, Some("consistency=local")).await,
        (200, json!({"a": "1", "b": "2"}))
    );

    // POST refusals.
    let r = c
        .send(Method::POST, zone, None, r#"{"c":"3","d":"4"}"#)
        .await;
    let text = assert_error(&r, "POST", zone, 400, "KeyvalFormatError");
    assert_eq!(text, "only one key can be added");
    let r = c.send(Method::POST, zone, None, r#"{"a":"x"}"#).await;
    let text = assert_error(&r, "POST", zone, 409, "KeyvalKeyExists");
    assert_eq!(text, "key \"a\" already exists");
    let r = c.send(Method::POST, zone, None, r#"{"n":{"x":"y"}}"#).await;
    assert_error(&r, "POST", zone, 400, "KeyvalFormatError");
    let r = c.send(Method::POST, zone, None, r#"{"n":"1""#).await;
    assert_error(&r, "POST", zone, 415, "JsonError");
    let r = c
        .send(Method::POST, "/2/http/keyvals/nope", None, r#"{"a":"1"}"#)
        .await;
    assert_error(&r, "POST", "/2/http/keyvals/nope", 404, "KeyvalNotFound");

    // A number is stored as its JSON text.
    assert_empty(&c.send(Method::POST, zone, None, r#"{"n":42}"#).await, 201);
    assert_eq!(c.get(zone, Some("key=n")).await, (200, json!({"n": "42"})));

    // PATCH: change, delete with null, refusals; a trailing slash is fine.
    let r = c
        .send(Method::PATCH, "/2/http/keyvals/one/", None, r#"{"a":"v2"}"#)
        .await;
    assert_empty(&r, 204);
    assert_eq!(c.get(zone, Some("key=a")).await, (200, json!({"a": "v2"})));
    assert_empty(
        &c.send(Method::PATCH, zone, None, r#"{"b":null}"#).await,
        204,
    );
    assert_eq!(
        c.get(zone, None).await,
        (200, json!({"a": "v2", "n": "42"}))
    );
    let r = c.send(Method::PATCH, zone, None, r#"{"b":"again"}"#).await;
    assert_error(&r, "PATCH", zone, 404, "KeyvalKeyNotFound");
    let r = c
        .send(Method::PATCH, zone, None, r#"{"a":"1","n":"2"}"#)
        .await;
    let text = assert_error(&r, "PATCH", zone, 400, "KeyvalFormatError");
    assert_eq!(text, "only one key can be updated");

    // DELETE empties the zone; the other zone and the stream zone of the same name stay.
    assert_empty(
        &c.send(Method::POST, "/2/http/keyvals/two", None, r#"{"k":"v"}"#)
            .await,
        201,
    );
    assert_empty(
        &c.send(Method::POST, "/2/stream/keyvals/one", None, r#"{"s":"1"}"#)
            .await,
        201,
    );
    assert_empty(
        &c.send(Method::DELETE, "/2/http/keyvals/one/", None, "")
            .await,
        204,
    );
    assert_eq!(c.get(zone, None).await, (200, json!({})));
    assert_eq!(
        c.get("/2/http/keyvals/", None).await,
        (200, json!({"one": {}, "two": {"k": "v"}}))
    );
    assert_eq!(
        c.get("/2/stream/keyvals/", None).await,
        (200, json!({"one": {"s": "1"}}))
    );
    let r = c
        .send(Method::DELETE, "/2/http/keyvals/nope", None, "")
        .await;
    assert_error(&r, "DELETE", "/2/http/keyvals/nope", 404, "KeyvalNotFound");

    // Once empty, several pairs may be added again.
    let r = c
        .send(Method::POST, zone, None, r#"{"x":"1","y":"2"}"#)
        .await;
    assert_empty(&r, 201);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_changes_nothing() {
    let c = Single::start().await;
    let zone = "/2/http/keyvals/one";
    assert_empty(&c.send(Method::POST, zone, None, r#"{"a":"1"}"#).await, 201);
    let before = c.zone("one");
    let huge_key = "k".repeat(70_000);
    let refused = [
        (Method::POST, r#"{"a":"2"}"#.to_string(), 409),
        (Method::POST, r#"{"b":"1","c":"2"}"#.to_string(), 400),
        (Method::POST, r#"{"b":"1","a":"2"}"#.to_string(), 400),
        (Method::POST, r#"{"b":"1","c":["x"]}"#.to_string(), 400),
        (Method::POST, r#"{"b":null}"#.to_string(), 400),
        (Method::POST, r#"{"":"1"}"#.to_string(), 400),
        (Method::POST, "{}".to_string(), 400),
        (Method::POST, format!(r#"{{"{huge_key}":"v"}}"#), 400),
        (Method::POST, "{\"b\":\"\u{1}\"}".to_string(), 415),
        (Method::PATCH, r#"{"a":"2","b":"3"}"#.to_string(), 400),
        (Method::PATCH, r#"{"a":{"x":1}}"#.to_string(), 400),
        (Method::PATCH, r#"{"missing":null}"#.to_string(), 404),
        (Method::PATCH, r#"{"a":"2""#.to_string(), 415),
    ];
    for (method, body, status) in refused {
        let r = c.send(method.clone(), zone, None, &body).await;
        assert_eq!(
            r.status,
            status,
            "{method} {}: {:?}",
            &body[..body.len().min(40)],
            r.body
        );
        assert_eq!(
            c.zone("one"),
            before,
            "{method} {}",
            &body[..body.len().min(40)]
        );
    }
    assert_eq!(c.get(zone, None).await, (200, json!({"a": "1"})));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_off_answers_405_method_disabled_and_still_reads() {
    let c = Single::start().await;
    let zone = "/2/http/keyvals/one";
    for (method, body) in [
        (Method::POST, r#"{"a":"1"}"#),
        (Method::PATCH, r#"{"a":"2"}"#),
        (Method::DELETE, ""),
    ] {
        let r = c.send_with(method.clone(), zone, None, body, false).await;
        let text = assert_error(&r, method.as_str(), zone, 405, "MethodDisabled");
        assert_eq!(text, "method disabled");
    }
    assert!(c.zone("one").is_empty());
    let r = c.send_with(Method::GET, zone, None, "", false).await;
    assert_eq!((r.status, json_of(&r)), (200, json!({})));
    let r = c.send_with(Method::PUT, zone, None, "", false).await;
    assert_error(&r, "PUT", zone, 405, "MethodNotSupported");
    c.stop().await;
}
