use raftgate_raft::state::{MAX_DURATION_MS, MAX_SERVERS_PER_UPSTREAM};
use raftgate_raft::{
    Applied, Command, HttpOnlyField, ImmutableField, Origin, Rejected, ServerChanges, ServerSpec,
    ServerView, UpstreamRef,
};

use crate::Log;

pub const A: &str = "10.0.0.1:80";
pub const B: &str = "10.0.0.2:80";
pub const C: &str = "10.0.0.3:80";
pub const D: &str = "10.0.0.4:80";

pub fn up() -> UpstreamRef {
    UpstreamRef::http("backend")
}

fn tcp() -> UpstreamRef {
    UpstreamRef::stream("tcp")
}

pub fn configure(upstream: UpstreamRef, specs: Vec<ServerSpec>) -> Command {
    Command::ConfigureUpstream {
        upstream,
        servers: specs,
    }
}

pub fn specs(addrs: &[&str]) -> Vec<ServerSpec> {
    addrs.iter().map(|a| ServerSpec::new(*a)).collect()
}

pub fn add(upstream: UpstreamRef, spec: ServerSpec) -> Command {
    Command::ServerAdd { upstream, spec }
}

pub fn patch(id: u64, changes: ServerChanges) -> Command {
    Command::ServerPatch {
        upstream: up(),
        id,
        changes,
    }
}

pub fn servers(log: &Log) -> Vec<(u64, String)> {
    log.state
        .upstream_servers(&up())
        .expect("upstream exists")
        .into_iter()
        .map(|v| (v.id, v.spec.server))
        .collect()
}

pub fn list(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
    pairs.iter().map(|(i, a)| (*i, a.to_string())).collect()
}

pub fn view(log: &Log, id: u64) -> ServerView {
    log.state.upstream_server(&up(), id).expect("server exists")
}

#[test]
fn configure_numbers_from_zero_and_normalizes_addresses() {
    let mut log = Log::new();
    let got = log.ok(configure(
        up(),
        specs(&["10.0.0.1", "10.0.0.2:8080", "[::1]:81", "Backend.Example"]),
    ));
    let want = list(&[
        (0, "10.0.0.1:80"),
        (1, "10.0.0.2:8080"),
        (2, "[::1]:81"),
        (3, "backend.example:80"),
    ]);
    assert_eq!(servers(&log), want);
    assert_eq!(
        got,
        Applied::Servers(log.state.upstream_servers(&up()).expect("up"))
    );
    assert!(log
        .state
        .upstream_servers(&up())
        .expect("up")
        .iter()
        .all(|v| v.origin == Origin::Config));
    let stream = log.ok(configure(tcp(), specs(&["10.0.0.1:5432"])));
    assert_eq!(
        stream,
        Applied::Servers(vec![ServerView {
            id: 0,
            origin: Origin::Config,
            spec: ServerSpec::new("10.0.0.1:5432"),
        }])
    );
}

#[test]
fn add_returns_the_created_server_with_nginx_defaults() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    let got = log.ok(add(up(), ServerSpec::new("10.0.0.9")));
    let want = ServerView {
        id: 2,
        origin: Origin::Api,
        spec: ServerSpec {
            server: "10.0.0.9:80".into(),
            service: None,
            weight: 1,
            max_conns: 0,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            slow_start_ms: 0,
            route: None,
            backup: false,
            down: false,
            drain: false,
        },
    };
    assert_eq!(got, Applied::Server(want.clone()));
    assert_eq!(view(&log, 2), want);
}

#[test]
fn add_accepts_edge_values() {
    let mut log = Log::new();
    let mut backup = ServerSpec::new(B);
    backup.backup = true;
    log.ok(configure(up(), vec![ServerSpec::new(A), backup]));
    let mut s = ServerSpec::new(C);
    s.route = Some("r".repeat(32));
    s.fail_timeout_ms = MAX_DURATION_MS;
    s.slow_start_ms = MAX_DURATION_MS;
    log.ok(add(up(), s));
    let mut s = ServerSpec::new(D);
    s.backup = true;
    log.ok(add(up(), s));
    let mut s = ServerSpec::new("Srv.Example");
    s.service = Some("_http._tcp".into());
    match log.ok(add(up(), s)) {
        Applied::Server(v) => assert_eq!(v.spec.server, "srv.example"),
        other => panic!("{other:?}"),
    }
    let mut s = ServerSpec::new("10.0.0.5:81");
    s.route = Some(String::new());
    match log.ok(add(up(), s)) {
        Applied::Server(v) => assert_eq!(v.spec.route, None, "an empty route is no route"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn add_rejections() {
    let with = |f: &dyn Fn(&mut ServerSpec)| {
        let mut s = ServerSpec::new("10.0.0.5");
        f(&mut s);
        s
    };
    let bad_addr = |a: &str| Rejected::UpstreamBadAddress { server: a.into() };
    let mut cases: Vec<(&str, UpstreamRef, ServerSpec, Rejected)> = vec![
        (
            "weight 0",
            up(),
            with(&|s| s.weight = 0),
            Rejected::UpstreamBadWeight,
        ),
        (
            "fail_timeout too long",
            up(),
            with(&|s| s.fail_timeout_ms = MAX_DURATION_MS + 1),
            Rejected::UpstreamBadFailTimeout,
        ),
        (
            "slow_start too long",
            up(),
            with(&|s| s.slow_start_ms = MAX_DURATION_MS + 1),
            Rejected::UpstreamBadSlowStart,
        ),
        (
            "route of 33 characters",
            up(),
            with(&|s| s.route = Some("r".repeat(33))),
            Rejected::UpstreamBadRoute,
        ),
        (
            "empty service",
            up(),
            with(&|s| s.service = Some(String::new())),
            Rejected::UpstreamBadService,
        ),
        (
            "service with a port",
            up(),
            ServerSpec {
                service: Some("_http._tcp".into()),
                ..ServerSpec::new("srv.example:80")
            },
            bad_addr("srv.example:80"),
        ),
        (
            "service with an address",
            up(),
            ServerSpec {
                service: Some("_http._tcp".into()),
                ..ServerSpec::new("10.0.0.5")
            },
            bad_addr("10.0.0.5"),
        ),
        (
            "stream server without port",
            tcp(),
            ServerSpec::new("10.0.0.5"),
            bad_addr("10.0.0.5"),
        ),
        (
            "stream route",
            tcp(),
            ServerSpec {
                route: Some("a".into()),
                ..ServerSpec::new("10.0.0.5:5432")
            },
            Rejected::HttpOnly {
                field: HttpOnlyField::Route,
            },
        ),
        (
            "stream drain",
            tcp(),
            ServerSpec {
                drain: true,
                ..ServerSpec::new("10.0.0.5:5432")
            },
            Rejected::HttpOnly {
                field: HttpOnlyField::Drain,
            },
        ),
        (
            "backup into a group without backups",
            up(),
            with(&|s| s.backup = true),
            Rejected::NoBackup,
        ),
        (
            "duplicate address, spelled differently",
            up(),
            ServerSpec::new("10.0.0.1"),
            Rejected::ServerExists { server: A.into() },
        ),
        (
            "unknown upstream",
            UpstreamRef::http("nope"),
            ServerSpec::new("10.0.0.5"),
            Rejected::UnknownUpstream {
                upstream: UpstreamRef::http("nope"),
            },
        ),
        (
            "http and stream upstreams are separate",
            UpstreamRef::stream("backend"),
            ServerSpec::new("10.0.0.5:80"),
            Rejected::UnknownUpstream {
                upstream: UpstreamRef::stream("backend"),
            },
        ),
    ];
    for a in [
        "",
        "a b",
        "10.0.0.5:0",
        "10.0.0.5:70000",
        "10.0.0.5:+80",
        "10.0.0.5:",
        "::1",
        "[::1",
        "[::1]x",
        "[nope]:80",
        "unix:/tmp/sock",
        "host:port",
        "-host",
    ] {
        cases.push(("bad address", up(), ServerSpec::new(a), bad_addr(a)));
    }
    for (name, upstream, spec, want) in cases {
        let mut log = Log::new();
        log.ok(configure(up(), specs(&[A])));
        log.ok(configure(tcp(), specs(&["10.0.0.1:5432"])));
        let before = log.snap();
        let shown = format!("{spec:?}");
        assert_eq!(log.run(add(upstream, spec)), Err(want), "{name}: {shown}");
        assert_eq!(log.snap(), before, "{name}: a rejection changes nothing");
    }
}

#[test]
fn add_beyond_the_limit_is_out_of_memory() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A])));
    for i in 1..MAX_SERVERS_PER_UPSTREAM {
        let addr = format!("10.1.{}.{}:80", i / 256, i % 256);
        log.ok(add(up(), ServerSpec::new(addr)));
    }
    assert_eq!(
        log.run(add(up(), ServerSpec::new("10.2.0.0"))),
        Err(Rejected::UpstreamOutOfMemory)
    );
}

#[test]
fn patch_changes_every_mutable_field() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    let changes = ServerChanges {
        server: Some("10.0.0.7".into()),
        weight: Some(5),
        max_conns: Some(10),
        max_fails: Some(0),
        fail_timeout_ms: Some(30_000),
        slow_start_ms: Some(20_000),
        route: Some("blue".into()),
        down: Some(true),
        drain: Some(true),
        id: Some(1),
        backup: Some(false),
        service: Some(String::new()),
    };
    let want = ServerView {
        id: 1,
        origin: Origin::Config,
        spec: ServerSpec {
            server: "10.0.0.7:80".into(),
            service: None,
            weight: 5,
            max_conns: 10,
            max_fails: 0,
            fail_timeout_ms: 30_000,
            slow_start_ms: 20_000,
            route: Some("blue".into()),
            backup: false,
            down: true,
            drain: true,
        },
    };
    assert_eq!(log.ok(patch(1, changes)), Applied::Server(want.clone()));
    assert_eq!(view(&log, 1), want);
    // Fields not named stay as they are; an empty route removes the route.
    let got = log.ok(patch(
        1,
        ServerChanges {
            route: Some(String::new()),
            down: Some(false),
            ..Default::default()
        },
    ));
    let mut want = want;
    want.spec.route = None;
    want.spec.down = false;
    assert_eq!(got, Applied::Server(want));
    // Patching a server to its own address is not a duplicate.
    log.ok(patch(
        1,
        ServerChanges {
            server: Some("10.0.0.7:80".into()),
            ..Default::default()
        },
    ));
}

#[test]
fn patch_rejections() {
    let ch = |f: &dyn Fn(&mut ServerChanges)| {
        let mut c = ServerChanges::default();
        f(&mut c);
        c
    };
    let cases: Vec<(&str, UpstreamRef, u64, ServerChanges, Rejected)> = vec![
        (
            "weight 0",
            up(),
            0,
            ch(&|c| c.weight = Some(0)),
            Rejected::UpstreamBadWeight,
        ),
        (
            "fail_timeout",
            up(),
            0,
            ch(&|c| c.fail_timeout_ms = Some(MAX_DURATION_MS + 1)),
            Rejected::UpstreamBadFailTimeout,
        ),
        (
            "slow_start",
            up(),
            0,
            ch(&|c| c.slow_start_ms = Some(MAX_DURATION_MS + 1)),
            Rejected::UpstreamBadSlowStart,
        ),
        (
            "route",
            up(),
            0,
            ch(&|c| c.route = Some("r".repeat(33))),
            Rejected::UpstreamBadRoute,
        ),
        (
            "address",
            up(),
            0,
            ch(&|c| c.server = Some("not an address".into())),
            Rejected::UpstreamBadAddress {
                server: "not an address".into(),
            },
        ),
        (
            "address of another server",
            up(),
            0,
            ch(&|c| c.server = Some("10.0.0.2".into())),
            Rejected::ServerExists { server: B.into() },
        ),
        (
            "id",
            up(),
            0,
            ch(&|c| c.id = Some(7)),
            Rejected::Immutable {
                field: ImmutableField::Id,
            },
        ),
        (
            "backup",
            up(),
            0,
            ch(&|c| c.backup = Some(true)),
            Rejected::Immutable {
                field: ImmutableField::Backup,
            },
        ),
        (
            "service",
            up(),
            0,
            ch(&|c| c.service = Some("_http._tcp".into())),
            Rejected::Immutable {
                field: ImmutableField::Service,
            },
        ),
        (
            "immutables are checked before values",
            up(),
            0,
            ch(&|c| {
                c.weight = Some(0);
                c.backup = Some(true);
            }),
            Rejected::Immutable {
                field: ImmutableField::Backup,
            },
        ),
        (
            "unknown id",
            up(),
            9,
            ch(&|c| c.weight = Some(2)),
            Rejected::ServerNotFound { id: 9 },
        ),
        (
            "unknown upstream",
            UpstreamRef::http("nope"),
            0,
            ch(&|c| c.weight = Some(2)),
            Rejected::UnknownUpstream {
                upstream: UpstreamRef::http("nope"),
            },
        ),
        (
            "stream route",
            tcp(),
            0,
            ch(&|c| c.route = Some("a".into())),
            Rejected::HttpOnly {
                field: HttpOnlyField::Route,
            },
        ),
        (
            "stream drain",
            tcp(),
            0,
            ch(&|c| c.drain = Some(true)),
            Rejected::HttpOnly {
                field: HttpOnlyField::Drain,
            },
        ),
    ];
    for (name, upstream, id, changes, want) in cases {
        let mut log = Log::new();
        log.ok(configure(up(), specs(&[A, B])));
        log.ok(configure(tcp(), specs(&["10.0.0.1:5432"])));
        let before = log.snap();
        let cmd = Command::ServerPatch {
            upstream,
            id,
            changes,
        };
        assert_eq!(log.run(cmd), Err(want), "{name}");
        assert_eq!(log.snap(), before, "{name}: a rejection changes nothing");
    }
}

#[test]
fn remove_returns_the_remaining_servers_and_ids_are_not_reused() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B, C])));
    match log.ok(Command::ServerRemove {
        upstream: up(),
        id: 1,
    }) {
        Applied::Servers(v) => {
            let got: Vec<(u64, String)> = v.into_iter().map(|v| (v.id, v.spec.server)).collect();
            assert_eq!(got, list(&[(0, A), (2, C)]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        log.run(Command::ServerRemove {
            upstream: up(),
            id: 1
        }),
        Err(Rejected::ServerNotFound { id: 1 })
    );
    assert_eq!(
        log.run(Command::ServerRemove {
            upstream: UpstreamRef::http("nope"),
            id: 0
        }),
        Err(Rejected::UnknownUpstream {
            upstream: UpstreamRef::http("nope")
        })
    );
    log.ok(add(up(), ServerSpec::new(B)));
    assert_eq!(servers(&log), list(&[(0, A), (2, C), (3, B)]));
}

#[test]
fn invalid_configuration_is_rejected_whole() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    let before = log.snap();
    let mut bad = ServerSpec::new(C);
    bad.weight = 0;
    assert_eq!(
        log.run(configure(up(), vec![ServerSpec::new(A), bad.clone()])),
        Err(Rejected::UpstreamBadWeight)
    );
    assert_eq!(log.snap(), before);
    let other = UpstreamRef::http("other");
    assert_eq!(
        log.run(configure(other.clone(), vec![bad])),
        Err(Rejected::UpstreamBadWeight)
    );
    assert_eq!(log.state.upstream_servers(&other), None, "not created");
}

/// The data path rebuilds a group only when the revision moves, so it must move with
/// every change to the effective list and stay put for a reload that changes nothing.
#[test]
fn the_revision_moves_exactly_when_the_server_list_changes() {
    let mut log = Log::new();
    let rev = |log: &Log| log.state.upstream_revision(&up());
    assert_eq!(rev(&log), None);
    log.ok(configure(up(), specs(&[A, B])));
    let first = rev(&log).expect("configured");
    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(rev(&log), Some(first), "an identical reload");
    let mut last = first;
    let mut moved = |log: &Log, what: &str| {
        let now = rev(log).expect("configured");
        assert!(now > last, "{what}: {now} after {last}");
        last = now;
    };
    log.ok(configure(up(), specs(&[A, B, C])));
    moved(&log, "a config line added");
    log.ok(add(up(), ServerSpec::new(D)));
    moved(&log, "a POST");
    log.ok(patch(
        0,
        ServerChanges {
            drain: Some(true),
            ..Default::default()
        },
    ));
    moved(&log, "a drain");
    log.ok(Command::ServerRemove {
        upstream: up(),
        id: 1,
    });
    moved(&log, "a DELETE");
    let before = rev(&log);
    assert!(log.run(patch(99, ServerChanges::default())).is_err());
    assert_eq!(rev(&log), before, "a rejected PATCH");
}
