//! Reloads: how a new configuration meets the runtime server list.

use raftgate_raft::{Command, Origin, Rejected, ServerChanges, ServerSpec};

use crate::upstream::{add, configure, list, patch, servers, specs, up, view, A, B, C, D};
use crate::Log;

#[test]
fn reload_keeps_ids_and_overrides_and_drops_removed_servers() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B, C])));
    log.ok(patch(
        1,
        ServerChanges {
            weight: Some(5),
            down: Some(true),
            ..Default::default()
        },
    ));
    log.ok(configure(up(), specs(&[A, B, C, D])));
    assert_eq!(servers(&log), list(&[(0, A), (1, B), (2, C), (3, D)]));
    assert_eq!(
        (view(&log, 1).spec.weight, view(&log, 1).spec.down),
        (5, true)
    );

    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(servers(&log), list(&[(0, A), (1, B)]));
    log.ok(configure(up(), specs(&[A, B, C])));
    assert_eq!(
        servers(&log),
        list(&[(0, A), (1, B), (4, C)]),
        "a server back in the config is new"
    );

    let snap = log.snap();
    log.ok(configure(up(), specs(&[A, B, C])));
    assert_eq!(log.snap(), snap, "the same config twice changes nothing");
}

#[test]
fn reload_changing_a_field_drops_only_that_override() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    log.ok(patch(
        1,
        ServerChanges {
            weight: Some(5),
            down: Some(true),
            ..Default::default()
        },
    ));
    let mut b = ServerSpec::new(B);
    b.weight = 2;
    log.ok(configure(up(), vec![ServerSpec::new(A), b]));
    let v = view(&log, 1);
    assert_eq!((v.spec.weight, v.spec.down), (2, true));
}

#[test]
fn reload_keeps_a_patched_address() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    log.ok(patch(
        0,
        ServerChanges {
            server: Some("10.0.0.50".into()),
            ..Default::default()
        },
    ));
    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(servers(&log), list(&[(0, "10.0.0.50:80"), (1, B)]));
}

#[test]
fn api_servers_survive_reloads_and_are_adopted_by_config() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A])));
    log.ok(add(up(), ServerSpec::new(B)));
    log.ok(add(up(), ServerSpec::new(C)));
    log.ok(patch(
        2,
        ServerChanges {
            down: Some(true),
            ..Default::default()
        },
    ));
    log.ok(configure(up(), specs(&[A])));
    assert_eq!(servers(&log), list(&[(0, A), (1, B), (2, C)]));
    assert_eq!(view(&log, 1).origin, Origin::Api);

    let mut c = ServerSpec::new(C);
    c.weight = 3;
    log.ok(configure(up(), vec![ServerSpec::new(A), c]));
    assert_eq!(servers(&log), list(&[(0, A), (1, B), (2, C)]));
    let v = view(&log, 2);
    assert_eq!(
        (v.origin, v.spec.weight, v.spec.down),
        (Origin::Config, 3, true)
    );
    // Once adopted, leaving the config removes it like any config server.
    log.ok(configure(up(), specs(&[A])));
    assert_eq!(servers(&log), list(&[(0, A), (1, B)]));
}

#[test]
fn config_server_deleted_through_the_api_stays_deleted() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, B])));
    log.ok(Command::ServerRemove {
        upstream: up(),
        id: 1,
    });
    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(servers(&log), list(&[(0, A)]));
    // Once the line leaves the config, re-adding it brings the server back.
    log.ok(configure(up(), specs(&[A])));
    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(servers(&log), list(&[(0, A), (2, B)]));
    // POSTing it again after a delete gives an API server that the config adopts.
    log.ok(Command::ServerRemove {
        upstream: up(),
        id: 2,
    });
    log.ok(add(up(), ServerSpec::new(B)));
    log.ok(configure(up(), specs(&[A, B])));
    assert_eq!(servers(&log), list(&[(0, A), (3, B)]));
    assert_eq!(view(&log, 3).origin, Origin::Config);
}

#[test]
fn duplicate_config_lines_are_distinct_servers() {
    let mut log = Log::new();
    log.ok(configure(up(), specs(&[A, A, B])));
    log.ok(patch(
        1,
        ServerChanges {
            weight: Some(9),
            ..Default::default()
        },
    ));
    log.ok(configure(up(), specs(&[A, B, A])));
    assert_eq!(servers(&log), list(&[(0, A), (1, A), (2, B)]));
    assert_eq!(view(&log, 1).spec.weight, 9);
    log.ok(Command::ServerRemove {
        upstream: up(),
        id: 0,
    });
    log.ok(configure(up(), specs(&[A, A, B])));
    assert_eq!(servers(&log), list(&[(1, A), (2, B)]));
}

#[test]
fn backup_is_allowed_only_with_configured_backups() {
    let mut log = Log::new();
    let mut b = ServerSpec::new(B);
    b.backup = true;
    log.ok(configure(up(), vec![ServerSpec::new(A), b]));
    let mut c = ServerSpec::new(C);
    c.backup = true;
    log.ok(add(up(), c));
    log.ok(Command::ServerRemove {
        upstream: up(),
        id: 2,
    });
    log.ok(configure(up(), specs(&[A])));
    let mut d = ServerSpec::new(D);
    d.backup = true;
    assert_eq!(log.run(add(up(), d)), Err(Rejected::NoBackup));
}
