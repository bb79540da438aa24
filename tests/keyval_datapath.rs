//! `keyval` in the data path on real processes: a denylist entry written through one node
//! blocks that node's next request at once and every other node's within a commit
//! latency, and its removal unblocks them; `type=ip` zones match CIDR blocks; the R14
//! denylist example loads unchanged and works as its comments say.

#[path = "support/api_fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{backend, BIN, READY};
use raftgate_cluster_tests::{eventually, Cluster, Options};

const DENYLIST: &str = "/api/2/http/keyvals/denylist";

fn get(c: &Cluster, i: usize, path: &str) -> (u16, String) {
    c.call(i, "GET", path, "").expect("request")
}

#[test]
fn a_denylist_entry_written_through_node_3_blocks_node_1_and_its_removal_unblocks() {
    let c = Cluster::start(
        BIN,
        Options {
            http: "keyval_zone zone=denylist:1m;\n\
                   keyval $remote_addr $denied zone=denylist;\n\
                   keyval_zone zone=nets:1m type=ip;\n\
                   keyval $remote_addr $net zone=nets;\n"
                .into(),
            server:
                "        location /guarded { if ($denied) { return 403; } return 200 \"ok\"; }\n\
                     location /net { return 200 \"net=$net\"; }\n"
                    .into(),
            ..Options::default()
        },
    );
    for i in 0..3 {
        assert!(c.wait_serving(i, DENYLIST, READY), "node {}", i + 1);
        assert_eq!(get(&c, i, "/guarded"), (200, "ok".into()));
    }

    let (status, body) = c
        .call(2, "POST", DENYLIST, r#"{"127.0.0.1":"1"}"#)
        .expect("post");
    assert_eq!(status, 201, "{body}");
    // The writing node applied it before answering: its very next request is refused.
    assert_eq!(get(&c, 2, "/guarded").0, 403);
    // The others within a commit latency.
    for i in [0, 1] {
        assert!(
            eventually(Duration::from_secs(2), || get(&c, i, "/guarded").0 == 403),
            "node {} never applied the denylist entry",
            i + 1
        );
    }

    let (status, body) = c
        .call(1, "PATCH", DENYLIST, r#"{"127.0.0.1":null}"#)
        .expect("patch");
    assert_eq!(status, 204, "{body}");
    assert_eq!(get(&c, 1, "/guarded"), (200, "ok".into()));
    for i in [0, 2] {
        assert!(
            eventually(Duration::from_secs(2), || get(&c, i, "/guarded").0 == 200),
            "node {} still blocks after the removal",
            i + 1
        );
    }

    // `type=ip`: the longest block holding the client address wins.
    assert_eq!(get(&c, 0, "/net"), (200, "net=".into()));
    let (status, _) = c
        .call(
            0,
            "POST",
            "/api/2/http/keyvals/nets",
            r#"{"127.0.0.0/8":"loopback"}"#,
        )
        .expect("post");
    assert_eq!(status, 201);
    let (status, _) = c
        .call(
            0,
            "PATCH",
            "/api/2/http/keyvals/nets",
            r#"{"127.0.0.0/8":"lo"}"#,
        )
        .expect("patch");
    assert_eq!(status, 204);
    let (status, _) = c
        .call(
            0,
            "POST",
            "/api/2/http/keyvals/nets",
            r#"{"127.0.0.1/32":"me"}"#,
        )
        .expect("post");
    assert_eq!(status, 201);
    assert_eq!(get(&c, 0, "/net"), (200, "net=me".into()));
}

/// `shared/reference/seed-configs/keyval-denylist.conf`, copied unchanged: it loads as is,
/// and (on free ports, its backend real) refuses an address added through the API with
/// 403 and proxies it again once the address is removed.
#[test]
fn the_denylist_seed_config_behaves_as_its_comments_say() {
    let text = fixture::seed("keyval-denylist.conf");
    let up = backend("one");
    let http = raftgate_cluster_tests::free_addr();
    let text = text
        .replace("127.0.0.1:8080", &http.to_string())
        .replace("127.0.0.1:9001", &up.to_string());
    let mut procs = fixture::Procs::new("seed-denylist");
    procs.spawn("keyval-denylist", &text, &[]);
    let call = |m: &str, p: &str, b: &str| raftgate_cluster_tests::call(http, m, p, b);
    assert!(
        eventually(READY, || call("GET", DENYLIST, "").map(|r| r.0) == Ok(200)),
        "the zone never appeared"
    );
    assert_eq!(
        call("GET", "/", "").expect("proxied"),
        (200, "one".to_string())
    );
    assert_eq!(
        call("POST", DENYLIST, r#"{"127.0.0.1":"1"}"#)
            .expect("post")
            .0,
        201
    );
    assert_eq!(call("GET", "/", "").expect("denied").0, 403);
    assert_eq!(
        call("PATCH", DENYLIST, r#"{"127.0.0.1":null}"#)
            .expect("patch")
            .0,
        204
    );
    assert_eq!(
        call("GET", "/", "").expect("proxied"),
        (200, "one".to_string())
    );
}
