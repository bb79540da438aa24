//! API v2 as clients use it, on three real `raftgate` processes: every endpoint of the spec
//! and every error case raftgate can be made to answer, validated against the official
//! specification through every node; and a drain set through one node seen as `draining`
//! through another, in its API, its dashboard and its data path.

#[path = "support/api_fixture.rs"]
mod fixture;
#[path = "spec/validate.rs"]
mod validate;

use std::time::Duration;

use fixture::{backend, start, BIN, READY};
use raftgate_cluster_tests::{eventually, Cluster};
use serde_json::Value;
use validate::Spec;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A request, the spec path it answers to, and the status raftgate must give.
struct Case {
    method: &'static str,
    path: String,
    template: &'static str,
    body: &'static str,
    status: u16,
}

fn case(
    method: &'static str,
    path: &str,
    template: &'static str,
    body: &'static str,
    status: u16,
) -> Case {
    Case {
        method,
        path: path.to_string(),
        template,
        body,
        status,
    }
}

/// Every operation of the spec that raftgate can answer successfully here, then every
/// error raftgate can be made to give; run in this order through one node.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let up = "/http/upstreams/{httpUpstreamName}/";
    let servers = "/http/upstreams/{httpUpstreamName}/servers/";
    let server = "/http/upstreams/{httpUpstreamName}/servers/{httpUpstreamServerId}";
    let kv = "/http/keyvals/{httpKeyvalZoneName}";
    vec![
        case("GET", "/", "/", "", 200),
        case("GET", "/nginx", "/nginx", "", 200),
        case("GET", "/nginx?fields=version,generation", "/nginx", "", 200),
        case("GET", "/processes", "/processes", "", 200),
        case("DELETE", "/processes", "/processes", "", 204),
        case("GET", "/connections", "/connections", "", 200),
        case("DELETE", "/connections", "/connections", "", 204),
        case("GET", "/ssl", "/ssl", "", 200),
        case("DELETE", "/ssl", "/ssl", "", 204),
        case("GET", "/slabs/", "/slabs/", "", 200),
        case("GET", "/slabs?fields=", "/slabs/", "", 200),
        case("GET", "/slabs/one", "/slabs/{slabZoneName}", "", 200),
        case("GET", "/slabs/backend", "/slabs/{slabZoneName}", "", 200),
        case("DELETE", "/slabs/one", "/slabs/{slabZoneName}", "", 204),
        case("GET", "/http/", "/http/", "", 200),
        case("GET", "/http/requests", "/http/requests", "", 200),
        case("DELETE", "/http/requests", "/http/requests", "", 204),
        case("GET", "/http/server_zones/", "/http/server_zones/", "", 200),
        case(
            "GET",
            "/http/server_zones/front",
            "/http/server_zones/{httpServerZoneName}",
            "",
            200,
        ),
        case(
            "DELETE",
            "/http/server_zones/front",
            "/http/server_zones/{httpServerZoneName}",
            "",
            204,
        ),
        case("GET", "/http/caches/", "/http/caches/", "", 200),
        case("GET", "/http/upstreams/", "/http/upstreams/", "", 200),
        case("GET", "/http/upstreams/backend/", up, "", 200),
        case("GET", "/http/upstreams/backend", up, "", 200),
        case("DELETE", "/http/upstreams/backend/", up, "", 204),
        case("GET", "/http/upstreams/backend/servers/", servers, "", 200),
        case("GET", "/http/upstreams/backend/servers", servers, "", 200),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:1","weight":2,"max_fails":0,"fail_timeout":"5s","slow_start":"0s","route":"r1","down":true}"#,
            201,
        ),
        case("GET", "/http/upstreams/backend/servers/NEW", server, "", 200),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/NEW/",
            server,
            r#"{"weight":3,"down":true}"#,
            200,
        ),
        case(
            "DELETE",
            "/http/upstreams/backend/servers/NEW/",
            server,
            "",
            200,
        ),
        case("GET", "/http/keyvals/", "/http/keyvals/", "", 200),
        case("POST", "/http/keyvals/one", kv, r#"{"k":"v"}"#, 201),
        case("GET", "/http/keyvals/one?key=k", kv, "", 200),
        case("PATCH", "/http/keyvals/one", kv, r#"{"k":"w"}"#, 204),
        case("DELETE", "/http/keyvals/one", kv, "", 204),
        case("GET", "/stream/", "/stream/", "", 404),
        // Errors.
        case("GET", "/slabs/nope", "/slabs/{slabZoneName}", "", 404),
        case("DELETE", "/slabs/nope", "/slabs/{slabZoneName}", "", 404),
        case(
            "GET",
            "/http/server_zones/nope",
            "/http/server_zones/{httpServerZoneName}",
            "",
            404,
        ),
        case(
            "DELETE",
            "/http/server_zones/nope",
            "/http/server_zones/{httpServerZoneName}",
            "",
            404,
        ),
        case(
            "GET",
            "/http/caches/nope",
            "/http/caches/{httpCacheZoneName}",
            "",
            404,
        ),
        case(
            "DELETE",
            "/http/caches/nope",
            "/http/caches/{httpCacheZoneName}",
            "",
            404,
        ),
        case("GET", "/http/upstreams/nope/", up, "", 404),
        case("DELETE", "/http/upstreams/nope/", up, "", 404),
        case("GET", "/http/upstreams/plain/", up, "", 400),
        case("DELETE", "/http/upstreams/plain/", up, "", 400),
        case("GET", "/http/upstreams/plain/servers/", servers, "", 400),
        case("GET", "/http/upstreams/nope/servers/", servers, "", 404),
        case(
            "POST",
            "/http/upstreams/plain/servers/",
            servers,
            r#"{"server":"127.0.0.1:2"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/nope/servers/",
            servers,
            r#"{"server":"127.0.0.1:2"}"#,
            404,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            "{",
            415,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            "{}",
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","bogus":1}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":["127.0.0.1:2"]}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:99999"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","weight":0}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","max_conns":-1}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","max_fails":-1}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","fail_timeout":"x"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","slow_start":"x"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","route":"0123456789012345678901234567890123456789"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","service":""}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"backend.example"}"#,
            400,
        ),
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            servers,
            r#"{"server":"127.0.0.1:2","backup":true}"#,
            400,
        ),
        case("GET", "/http/upstreams/backend/servers/x", server, "", 400),
        case("GET", "/http/upstreams/backend/servers/99", server, "", 404),
        case("GET", "/http/upstreams/nope/servers/0", server, "", 404),
        case("GET", "/http/upstreams/plain/servers/0", server, "", 400),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/99",
            server,
            r#"{"down":true}"#,
            404,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/x",
            server,
            r#"{"down":true}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            "not json",
            415,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"weight":"heavy"}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"server":"1.2.3.4:99999"}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"weight":0}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"max_conns":-1}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"max_fails":1.5}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"fail_timeout":"-"}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"slow_start":"-"}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"route":"0123456789012345678901234567890123456789"}"#,
            400,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            server,
            r#"{"service":""}"#,
            400,
        ),
        case(
            "DELETE",
            "/http/upstreams/backend/servers/99",
            server,
            "",
            404,
        ),
        case(
            "DELETE",
            "/http/upstreams/backend/servers/x",
            server,
            "",
            400,
        ),
        case("DELETE", "/http/upstreams/plain/servers/0", server, "", 400),
        case("GET", "/http/keyvals/nope", kv, "", 404),
        case("GET", "/http/keyvals/one?key=missing", kv, "", 404),
        case("POST", "/http/keyvals/one", kv, r#"{"a":"1"}"#, 201),
        case("POST", "/http/keyvals/one", kv, r#"{"a":"1"}"#, 409),
        case("POST", "/http/keyvals/one", kv, r#"{"b":"1","c":"2"}"#, 400),
        case("POST", "/http/keyvals/one", kv, r#"{"b":{"x":1}}"#, 400),
        case("POST", "/http/keyvals/one", kv, "{", 415),
        case("POST", "/http/keyvals/nope", kv, r#"{"a":"1"}"#, 404),
        case("PATCH", "/http/keyvals/one", kv, r#"{"missing":"1"}"#, 404),
        case(
            "PATCH",
            "/http/keyvals/one",
            kv,
            r#"{"a":"1","b":"2"}"#,
            400,
        ),
        case("PATCH", "/http/keyvals/one", kv, "{", 415),
        case("PATCH", "/http/keyvals/nope", kv, r#"{"a":"1"}"#, 404),
        case("DELETE", "/http/keyvals/nope", kv, "", 404),
        case(
            "GET",
            "/stream/server_zones/",
            "/stream/server_zones/",
            "",
            404,
        ),
        case("GET", "/stream/upstreams/", "/stream/upstreams/", "", 404),
        case("GET", "/stream/keyvals/", "/stream/keyvals/", "", 404),
    ]
}

/// Write methods through the `write=off` location: 405 `MethodDisabled`, as documented.
#[rustfmt::skip]
fn read_only_cases() -> Vec<Case> {
    vec![
        case(
            "POST",
            "/http/upstreams/backend/servers/",
            "/http/upstreams/{httpUpstreamName}/servers/",
            r#"{"server":"127.0.0.1:3"}"#,
            405,
        ),
        case(
            "PATCH",
            "/http/upstreams/backend/servers/0",
            "/http/upstreams/{httpUpstreamName}/servers/{httpUpstreamServerId}",
            r#"{"down":true}"#,
            405,
        ),
        case(
            "DELETE",
            "/http/upstreams/backend/servers/0",
            "/http/upstreams/{httpUpstreamName}/servers/{httpUpstreamServerId}",
            "",
            405,
        ),
        case(
            "DELETE",
            "/http/upstreams/backend/",
            "/http/upstreams/{httpUpstreamName}/",
            "",
            405,
        ),
        case("DELETE", "/slabs/one", "/slabs/{slabZoneName}", "", 405),
        case("DELETE", "/http/requests", "/http/requests", "", 405),
        case(
            "POST",
            "/http/keyvals/one",
            "/http/keyvals/{httpKeyvalZoneName}",
            r#"{"z":"1"}"#,
            405,
        ),
        case(
            "GET",
            "/http/upstreams/backend/servers/",
            "/http/upstreams/{httpUpstreamName}/servers/",
            "",
            200,
        ),
    ]
}

#[test]
fn every_endpoint_and_error_conforms_to_the_spec_through_every_node() {
    let (c, _, _) = start();
    let spec = Spec::load();
    let mut covered = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for i in 0..3 {
        // The id the last successful POST of a server got (ids are never reused).
        let mut new_id = String::new();
        for (prefix, cases) in [("/api/2", cases()), ("/ro/api/2", read_only_cases())] {
            for mut k in cases {
                k.path = k.path.replace("NEW", &new_id);
                let (status, body) = c
                    .call(i, k.method, &format!("{prefix}{}", k.path), k.body)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", k.method, k.path));
                if status == 201 && k.template.ends_with("/servers/") {
                    new_id = json(&body)["id"].to_string();
                }
                if status != k.status {
                    problems.push(format!(
                        "node {}: {} {}: {status}, expected {}: {body}",
                        i + 1,
                        k.method,
                        k.path,
                        k.status
                    ));
                    continue;
                }
                covered.insert((k.template.to_string(), k.method.to_string()));
                if k.template.starts_with("/stream/") && status == 404 {
                    // No `stream {}` here: every stream endpoint answers 404
                    // StreamNotConfigured (NGINX-PLUS.md §1.2), which the spec leaves out.
                    let v = json(&body);
                    assert_eq!(v["error"]["code"], "StreamNotConfigured", "{body}");
                    continue;
                }
                let partial = k.path.contains("fields=");
                problems.extend(
                    spec.check(k.template, k.method, status, &body, partial)
                        .into_iter()
                        .map(|p| format!("node {}: {} {p}", i + 1, k.path)),
                );
                if status >= 400 {
                    let v = json(&body);
                    assert_eq!(v["method"], k.method, "{body}");
                    assert!(
                        v["path"].as_str().is_some_and(|p| p.starts_with(prefix)),
                        "{body}"
                    );
                    assert_eq!(v["request_id"].as_str().map(str::len), Some(32), "{body}");
                    assert_eq!(
                        v["href"],
                        "https://nginx.org/en/docs/http/ngx_http_api_module.html"
                    );
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // `allow`/`deny` guard the API like any location: no JSON, no change.
    for (m, p, b) in [
        ("GET", "/denied/api/2/nginx", ""),
        (
            "PATCH",
            "/denied/api/2/http/upstreams/backend/servers/0",
            r#"{"down":true}"#,
        ),
    ] {
        let (status, _) = c.call(0, m, p, b).expect("denied");
        assert_eq!(status, 403, "{m} {p}");
    }
    let (_, server) = c
        .call(0, "GET", "/api/2/http/upstreams/backend/servers/0", "")
        .expect("get");
    assert_eq!(
        json(&server)["down"],
        false,
        "a denied PATCH changed nothing"
    );
    // Every http and general operation of the spec was exercised (the stream ones answer
    // StreamNotConfigured without a stream block; the unit tests cover them with one).
    let missing: Vec<_> = spec
        .operations()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("/stream/") || p == "/stream/")
        .filter(|op| !covered.contains(op))
        .collect();
    assert!(
        missing.is_empty(),
        "operations never exercised: {missing:?}"
    );
}

/// With a `stream {}` block, the stream endpoints answer (empty server zones and
/// upstreams, the stream keyval zones) in the spec's shapes, and their errors are the
/// documented ones.
#[test]
#[rustfmt::skip]
fn stream_endpoints_conform_with_a_stream_block() {
    let c = Cluster::start(BIN, raftgate_cluster_tests::Options {
        nodes: 1,
        main: "stream {\n    keyval_zone zone=s:1m;\n}\n".into(),
        ..raftgate_cluster_tests::Options::default()
    });
    assert!(c.wait_serving(0, "/api/2/stream/keyvals/s", READY));
    let spec = Spec::load();
    let kv = "/stream/keyvals/{streamKeyvalZoneName}";
    let up = "/stream/upstreams/{streamUpstreamName}/";
    let servers = "/stream/upstreams/{streamUpstreamName}/servers/";
    let server = "/stream/upstreams/{streamUpstreamName}/servers/{streamUpstreamServerId}";
    let zone = "/stream/server_zones/{streamServerZoneName}";
    let cases = [
        case("GET", "/stream/", "/stream/", "", 200),
        case("GET", "/stream/server_zones/", "/stream/server_zones/", "", 200),
        case("GET", "/stream/upstreams/", "/stream/upstreams/", "", 200),
        case("GET", "/stream/keyvals/", "/stream/keyvals/", "", 200),
        case("POST", "/stream/keyvals/s", kv, r#"{"10.0.0.1":"1"}"#, 201),
        case("GET", "/stream/keyvals/s", kv, "", 200),
        case("PATCH", "/stream/keyvals/s", kv, r#"{"10.0.0.1":null}"#, 204),
        case("DELETE", "/stream/keyvals/s", kv, "", 204),
        case("GET", "/stream/keyvals/nope", kv, "", 404),
        case("POST", "/stream/keyvals/s", kv, "{", 415),
        case("GET", "/stream/server_zones/nope", zone, "", 404),
        case("DELETE", "/stream/server_zones/nope", zone, "", 404),
        case("GET", "/stream/upstreams/nope/", up, "", 404),
        case("DELETE", "/stream/upstreams/nope/", up, "", 404),
        case("GET", "/stream/upstreams/nope/servers/", servers, "", 404),
        case("POST", "/stream/upstreams/nope/servers/", servers, r#"{"server":"127.0.0.1:5"}"#, 404),
        case("GET", "/stream/upstreams/nope/servers/0", server, "", 404),
        case("PATCH", "/stream/upstreams/nope/servers/0", server, r#"{"down":true}"#, 404),
        case("DELETE", "/stream/upstreams/nope/servers/0", server, "", 404),
    ];
    let mut problems = Vec::new();
    for k in cases {
        let (status, body) = c.call(0, k.method, &format!("/api/2{}", k.path), k.body).expect("call");
        if status != k.status {
            problems.push(format!("{} {}: {status}, expected {}: {body}", k.method, k.path, k.status));
            continue;
        }
        problems.extend(spec.check(k.template, k.method, status, &body, false));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn peer_states(c: &Cluster, i: usize) -> Vec<String> {
    let (status, body) = c
        .call(i, "GET", "/api/2/http/upstreams/backend", "")
        .expect("read");
    assert_eq!(status, 200, "{body}");
    json(&body)["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["state"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_drain_through_node_2_drains_on_node_3_in_api_dashboard_and_data_path() {
    let (mut c, _, _) = start();
    // Node 3's data path balances over both servers first.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (status, body) = c.call(2, "GET", "/", "").expect("proxied");
        assert_eq!(status, 200, "{body}");
        seen.insert(body);
    }
    assert_eq!(seen.len(), 2, "round robin over both: {seen:?}");

    let (status, body) = c
        .call(
            1,
            "PATCH",
            "/api/2/http/upstreams/backend/servers/0",
            r#"{"drain":true}"#,
        )
        .expect("patch");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["drain"], true);

    // A linearizable read through node 3 sees the write at once...
    assert_eq!(peer_states(&c, 2), ["draining", "up"]);
    // ...and node 3 has applied it, so its data path sends nothing new to server 0.
    for _ in 0..10 {
        let (status, body) = c.call(2, "GET", "/", "").expect("proxied");
        assert_eq!(
            (status, body.as_str()),
            (200, "two"),
            "node 3 sent a request to the draining server"
        );
    }
    // Node 1 too, within a commit latency.
    assert!(eventually(Duration::from_secs(2), || {
        c.call(
            0,
            "GET",
            "/api/2/http/upstreams/backend?consistency=local",
            "",
        )
        .map(|(_, b)| b.contains("\"draining\""))
        .unwrap_or(false)
    }));

    // Node 3 serves the dashboard though its root holds no such file.
    let (status, page) = c.call(2, "GET", "/dashboard.html", "").expect("dashboard");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>raftgate dashboard</title>"),
        "{}",
        &page[..page.len().min(200)]
    );

    // kill -9 and restart node 3: the drain is in its log, so its data path still avoids
    // server 0 from its first request.
    c.kill9(2);
    c.spawn(2);
    assert!(c.wait_serving(2, "/api/2/http/upstreams/backend/servers/", READY));
    assert_eq!(peer_states(&c, 2), ["draining", "up"]);
    for _ in 0..4 {
        let (status, body) = c.call(2, "GET", "/", "").expect("proxied");
        assert_eq!((status, body.as_str()), (200, "two"), "after restart");
    }

    // Undrain through node 1: node 2 balances over both again.
    let (status, _) = c
        .call(
            0,
            "PATCH",
            "/api/2/http/upstreams/backend/servers/0/",
            r#"{"drain":false}"#,
        )
        .expect("patch");
    assert_eq!(status, 200);
    assert_eq!(peer_states(&c, 1), ["up", "up"]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(c.call(1, "GET", "/", "").expect("proxied").1);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// `shared/reference/seed-configs/api-dashboard.conf`, copied unchanged: it loads as is,
/// and (on free ports, its two backends real) serves the API with writes from 127.0.0.1,
/// the dashboard though `/usr/share/nginx/html` holds none, and the old page's redirect.
#[test]
fn the_api_dashboard_seed_config_behaves_as_its_comments_say() {
    let text = fixture::seed("api-dashboard.conf");
    let (b1, b2) = (backend("one"), backend("two"));
    let http = raftgate_cluster_tests::free_addr();
    let text = text
        .replace("127.0.0.1:8080", &http.to_string())
        .replace("127.0.0.1:9001", &b1.to_string())
        .replace("127.0.0.1:9002", &b2.to_string());
    let mut procs = fixture::Procs::new("seed-dashboard");
    let pid = procs.spawn("api-dashboard", &text, &[]);
    let call = |m: &str, p: &str, b: &str| raftgate_cluster_tests::call(http, m, p, b);
    assert!(
        eventually(READY, || call(
            "GET",
            "/api/2/http/upstreams/backend/servers",
            ""
        )
        .map(|r| r.0)
            == Ok(200)),
        "the API never served the upstream"
    );
    let (status, page) = call("GET", "/dashboard.html", "").expect("dashboard");
    assert_eq!(status, 200);
    assert!(page.contains("<title>raftgate dashboard</title>"));
    let (status, _) = call("GET", "/status.html", "").expect("redirect");
    assert_eq!(status, 301);
    let (status, body) = call(
        "PATCH",
        "/api/2/http/upstreams/backend/servers/1",
        r#"{"drain":true}"#,
    )
    .expect("patch");
    assert_eq!(status, 200, "write=on from 127.0.0.1: {body}");
    for _ in 0..4 {
        assert_eq!(
            call("GET", "/", "").expect("proxied"),
            (200, "one".to_string())
        );
    }
    // A reload keeps the drain (replicated state) and the zone's counters.
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child with a valid signal.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    assert_eq!(rc, 0);
    assert!(eventually(READY, || call("GET", "/api/2/nginx", "")
        .map(|(_, b)| b.contains("\"generation\":1"))
        .unwrap_or(false)));
    for _ in 0..4 {
        assert_eq!(
            call("GET", "/", "").expect("proxied"),
            (200, "one".to_string())
        );
    }
    let (_, zones) = call("GET", "/api/2/http/server_zones/frontend", "").expect("zone");
    assert!(json(&zones)["requests"].as_u64() >= Some(10), "{zones}");
}
