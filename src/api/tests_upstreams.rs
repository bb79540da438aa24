//! The upstream and statistics endpoints over the real reducer and a real configuration:
//! what an operator sees and changes, and what the data path does after the change.

use http::Method;
use serde_json::{json, Value};

use super::tests::{body, call, error, fake, Fake};
use crate::config::Config;
use crate::upstream::{SelectCtx, Tried};

const CONF: &str = "events {}
http {
    upstream backend {
        zone backend 64k;
        server 127.0.0.1:9001;
        server 127.0.0.1:9002 weight=2 max_fails=3 fail_timeout=30s;
    }
    upstream plain {
        server 127.0.0.1:9003;
    }
    server {
        listen 127.0.0.1:0;
        status_zone front;
        location / { proxy_pass http://backend; }
        location /p { proxy_pass http://plain; }
        location /api { api write=on; }
    }
}
";

fn config() -> Config {
    crate::config::load_str(CONF, "t.conf", std::env::temp_dir()).expect("loads")
}

/// The fake cluster with this configuration's commands applied, as a node proposes them.
fn configured(c: &Config) -> Fake {
    let f = fake();
    for entry in c.cluster_commands() {
        let mut g = f.state.lock().expect("lock");
        g.0 += 1;
        let index = g.0;
        g.1.apply(index, entry).expect("configured");
    }
    f
}

async fn get(f: &Fake, c: &Config, path: &str) -> Value {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut req = call(path);
    req.query = query;
    req.http = c.http.as_deref();
    let r = req.on(f).await;
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    body(&r)
}

#[tokio::test]
async fn upstreams_show_the_replicated_servers_with_nginx_shapes() {
    let c = config();
    let f = configured(&c);
    let all = get(&f, &c, "/2/http/upstreams/").await;
    let names: Vec<&String> = all.as_object().expect("map").keys().collect();
    assert_eq!(names, ["backend"], "a group without zone is not listed");
    let b = &all["backend"];
    assert_eq!(b["zone"], "backend");
    assert_eq!(
        (b["keepalive"].clone(), b["zombies"].clone()),
        (json!(0), json!(0))
    );
    let peers = b["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[1]["id"], 1);
    assert_eq!(peers[1]["server"], "127.0.0.1:9002");
    assert_eq!(peers[1]["weight"], 2);
    assert_eq!(peers[1]["state"], "up");
    assert_eq!(peers[1]["responses"]["total"], 0);
    assert!(peers[1].get("selected").is_none(), "never selected");

    let servers = get(&f, &c, "/2/http/upstreams/backend/servers").await;
    assert_eq!(
        servers[1],
        json!({"id": 1, "server": "127.0.0.1:9002", "weight": 2, "max_conns": 0,
               "max_fails": 3, "fail_timeout": "30s", "slow_start": "0s", "route": "",
               "backup": false, "down": false, "drain": false})
    );
    let names = get(&f, &c, "/2/http/upstreams/?fields=").await;
    assert_eq!(names, json!({"backend": {}}));
    let some = get(&f, &c, "/2/http/upstreams/backend/?fields=zone,zombies").await;
    assert_eq!(some, json!({"zone": "backend", "zombies": 0}));
}

#[tokio::test]
async fn server_writes_follow_v2_and_steer_the_data_path() {
    let c = config();
    let f = configured(&c);
    let http = c.http.as_deref();
    let send = |method: Method, path: &'static str, body: &'static str| {
        let mut r = call(path).method(method, body);
        r.http = http;
        r
    };

    let r = send(
        Method::POST,
        "/2/http/upstreams/backend/servers/",
        r#"{"server":"127.0.0.1:9004","weight":4}"#,
    )
    .on(&f)
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(body(&r)["id"], 2);
    assert_eq!(body(&r)["weight"], 4);

    let r = send(
        Method::PATCH,
        "/2/http/upstreams/backend/servers/0/",
        r#"{"drain":true}"#,
    )
    .on(&f)
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(body(&r)["drain"], true);

    let all = get(&f, &c, "/2/http/upstreams/backend").await;
    let states: Vec<&Value> = all["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| &p["state"])
        .collect();
    assert_eq!(states, [&json!("draining"), &json!("up"), &json!("up")]);

    // The data path: the group follows the applied list, so new requests skip the
    // draining server and reach the added one.
    let group = &c.http.as_ref().expect("http").upstreams["backend"];
    let seen: Vec<u16> = (0..12)
        .map(|_| {
            let g = group
                .select(&SelectCtx::default(), &mut Tried::new())
                .expect("a server");
            g.addr().port()
        })
        .collect();
    assert!(!seen.contains(&9001), "draining server picked: {seen:?}");
    assert!(seen.contains(&9004) && seen.contains(&9002), "{seen:?}");

    let r = send(Method::DELETE, "/2/http/upstreams/backend/servers/1", "")
        .on(&f)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let left = body(&r);
    let ids: Vec<&Value> = left
        .as_array()
        .expect("remaining")
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        ids,
        [&json!(0), &json!(2)],
        "DELETE answers the servers left"
    );

    let r = send(Method::GET, "/2/http/upstreams/backend/servers/1", "")
        .on(&f)
        .await;
    error(&r, 404, "UpstreamServerNotFound");
    let r = send(Method::GET, "/2/http/upstreams/backend/servers/x", "")
        .on(&f)
        .await;
    error(&r, 400, "UpstreamBadServerId");
    let r = send(
        Method::POST,
        "/2/http/upstreams/backend/servers/",
        r#"{"server":"127.0.0.1:9004"}"#,
    )
    .on(&f)
    .await;
    error(&r, 409, "EntryExists");
    let r = send(
        Method::POST,
        "/2/http/upstreams/backend/servers/",
        r#"{"server":"db.example:80"}"#,
    )
    .on(&f)
    .await;
    error(&r, 400, "UpstreamConfNoResolver");
    let r = send(
        Method::PATCH,
        "/2/http/upstreams/backend/servers/0",
        r#"{"weight":0}"#,
    )
    .on(&f)
    .await;
    error(&r, 400, "UpstreamBadWeight");
    let r = send(Method::GET, "/2/http/upstreams/plain/", "")
        .on(&f)
        .await;
    error(&r, 400, "UpstreamStatic");
    let r = send(
        Method::POST,
        "/2/http/upstreams/plain/servers",
        r#"{"server":"127.0.0.1:1"}"#,
    )
    .on(&f)
    .await;
    error(&r, 400, "UpstreamStatic");
    let r = send(Method::GET, "/2/http/upstreams/nope/", "")
        .on(&f)
        .await;
    error(&r, 404, "UpstreamNotFound");
    let r = send(Method::GET, "/2/stream/upstreams/nope/servers/", "")
        .on(&f)
        .await;
    error(&r, 404, "UpstreamNotFound");
    let mut ro = send(
        Method::PATCH,
        "/2/http/upstreams/backend/servers/0",
        r#"{"down":true}"#,
    );
    ro.write = false;
    error(&ro.on(&f).await, 405, "MethodDisabled");
}

#[tokio::test]
async fn node_statistics_endpoints() {
    let c = config();
    let f = configured(&c);
    let n = get(&f, &c, "/2/nginx").await;
    assert_eq!(n["generation"], 0);
    assert_eq!(n["address"], "127.0.0.1");
    assert!(n["load_timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        get(&f, &c, "/2/nginx?fields=pid,generation")
            .await
            .as_object()
            .map(|m| m.len()),
        Some(2)
    );
    assert_eq!(get(&f, &c, "/2/processes").await, json!({"respawned": 0}));
    let conns = get(&f, &c, "/2/connections").await;
    for k in ["accepted", "dropped", "active", "idle"] {
        assert!(conns[k].is_u64(), "{k}: {conns}");
    }
    assert_eq!(
        get(&f, &c, "/2/http/requests").await,
        json!({"total": 0, "current": 0})
    );
    let zones = get(&f, &c, "/2/http/server_zones/").await;
    assert_eq!(zones["front"]["responses"]["total"], 0);
    assert_eq!(get(&f, &c, "/2/http/caches/").await, json!({}));
    let slabs = get(&f, &c, "/2/slabs/").await;
    for zone in ["one", "two", "backend"] {
        assert!(slabs[zone]["pages"]["free"].is_u64(), "{zone}: {slabs}");
    }
    let kv = get(&f, &c, "/2/slabs/one").await;
    assert_eq!(kv["pages"]["used"], 0);

    let mut r = call("/2/http/server_zones/nope");
    r.http = c.http.as_deref();
    error(&r.on(&f).await, 404, "ServerZoneNotFound");
    let mut r = call("/2/http/caches/c");
    r.http = c.http.as_deref();
    error(&r.on(&f).await, 404, "CacheNotFound");
    let mut r = call("/2/slabs/nope");
    r.http = c.http.as_deref();
    error(&r.on(&f).await, 404, "SlabNotFound");
    for path in [
        "/2/connections",
        "/2/http/requests",
        "/2/http/server_zones/front",
        "/2/processes",
        "/2/ssl",
        "/2/http/upstreams/backend/",
    ] {
        let mut r = call(path).method(Method::DELETE, "");
        r.http = c.http.as_deref();
        let r = r.on(&f).await;
        assert_eq!(r.status, 204, "{path}: {:?}", r.body);
        assert!(r.body.is_empty());
    }
}
