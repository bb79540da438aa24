use raftgate_raft::state::DEFAULT_STICKY_TIMEOUT_MS;
use raftgate_raft::{
    Applied, Command, KeyType, Rejected, RestoreReport, ServerChanges, ServerKey, ServerSpec,
    State, UpstreamRef, ZoneRef,
};

use crate::Log;

const HOUR: u64 = 3_600_000;

fn zone(name: &str, timeout_ms: Option<u64>) -> Command {
    Command::ConfigureKeyvalZone {
        zone: ZoneRef::http(name),
        capacity_bytes: 1 << 20,
        timeout_ms,
        key_type: KeyType::String,
    }
}

fn put(name: &str, key: &str, value: &str, now_ms: u64) -> Command {
    Command::KeyvalAdd {
        zone: ZoneRef::http(name),
        pairs: vec![(key.into(), value.into())],
        now_ms,
    }
}

fn sticky(capacity_bytes: u64) -> Command {
    Command::ConfigureStickyZone {
        zone: "sessions".into(),
        capacity_bytes,
        timeout_ms: DEFAULT_STICKY_TIMEOUT_MS,
    }
}

fn learn(session: &str, addr: &str, now_ms: u64) -> Command {
    Command::StickyLearn {
        zone: "sessions".into(),
        session: session.into(),
        server: ServerKey {
            upstream: "backend".into(),
            server: addr.into(),
        },
        now_ms,
    }
}

fn upstream(addrs: &[&str]) -> Command {
    Command::ConfigureUpstream {
        upstream: UpstreamRef::http("backend"),
        servers: addrs.iter().map(|a| ServerSpec::new(*a)).collect(),
    }
}

fn restore(from: &Log, now_ms: u64) -> Command {
    Command::Restore {
        snapshot: from.snap(),
        now_ms,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The cluster the backup is taken from: keys, a session, a drained API server.
fn source() -> Log {
    let mut log = Log::new();
    log.ok(zone("one", None));
    log.ok(zone("only-there", None));
    log.ok(put("one", "a", "1", 1_000));
    log.ok(put("only-there", "x", "9", 1_000));
    log.ok(sticky(1 << 20));
    log.ok(learn("s1", "10.0.0.1:80", 2_000));
    log.ok(upstream(&["10.0.0.1:80"]));
    log.ok(Command::ServerAdd {
        upstream: UpstreamRef::http("backend"),
        spec: ServerSpec::new("10.0.0.9:80"),
    });
    for id in [0, 1] {
        log.ok(Command::ServerPatch {
            upstream: UpstreamRef::http("backend"),
            id,
            changes: ServerChanges {
                drain: Some(true),
                ..ServerChanges::default()
            },
        });
    }
    // Configured there only: never taken by a restore.
    log.ok(upstream(&["10.0.0.1:80", "10.0.0.7:80"]));
    log
}

#[test]
fn restores_what_both_declare_skips_the_rest_and_reports_each() {
    let backup = source();
    let mut log = Log::new();
    log.ok(zone("one", None));
    log.ok(zone("only-here", None));
    log.ok(put("one", "stale", "0", 5_000));
    log.ok(put("only-here", "k", "v", 5_000));
    log.ok(sticky(1 << 20));
    log.ok(upstream(&["10.0.0.1:80", "10.0.0.2:80"]));
    let revision = log.state.upstream_revision(&UpstreamRef::http("backend"));

    let report = log.ok(restore(&backup, 10_000));
    assert_eq!(
        report,
        Applied::Restored(RestoreReport {
            restored: names(&[
                "http/keyvals/one",
                "sticky/sessions",
                "http/upstreams/backend"
            ]),
            skipped: names(&["http/keyvals/only-there"]),
            kept: names(&["http/keyvals/only-here"]),
        })
    );
    let one = ZoneRef::http("one");
    let entries: Vec<_> = log.state.keyval_entries(&one).expect("zone").collect();
    assert_eq!(
        entries,
        vec![("a", "1")],
        "the zone holds the backup's keys only"
    );
    assert_eq!(
        log.state.keyval_get(&ZoneRef::http("only-here"), "k"),
        Some("v")
    );
    assert!(log
        .state
        .keyval_zone_config(&ZoneRef::http("only-there"))
        .is_none());
    assert_eq!(
        log.state
            .sticky_lookup("sessions", "s1")
            .map(|k| k.server.as_str()),
        Some("10.0.0.1:80")
    );
    let servers = log
        .state
        .upstream_servers(&UpstreamRef::http("backend"))
        .expect("group");
    let shown: Vec<(u64, &str, bool)> = servers
        .iter()
        .map(|v| (v.id, v.spec.server.as_str(), v.spec.drain))
        .collect();
    // This configuration's servers, with the backup's changes to the same address; the
    // server added through the API there, with an id of this group; not 10.0.0.7, which
    // only the backup's configuration names.
    assert_eq!(
        shown,
        vec![
            (0, "10.0.0.1:80", true),
            (1, "10.0.0.2:80", false),
            (2, "10.0.0.9:80", true)
        ]
    );
    assert!(log.state.upstream_revision(&UpstreamRef::http("backend")) > revision);
}

#[test]
fn keys_and_sessions_keep_their_age() {
    let mut backup = Log::new();
    backup.ok(zone("one", Some(HOUR)));
    backup.ok(put("one", "a", "1", 1_000));
    backup.ok(sticky(1 << 20));
    backup.ok(learn("s1", "10.0.0.1:80", 1_000));
    // The backup is taken a minute after the writes.
    backup.ok(put("one", "b", "2", 61_000));

    let mut log = Log::new();
    log.ok(zone("one", Some(HOUR)));
    log.ok(sticky(1 << 20));
    let later = 10 * HOUR;
    log.ok(restore(&backup, later));
    // `a` was a minute old in the backup, and is a minute old now: it expires an hour
    // after its write, not at once and not an hour from now.
    let session = log.state.sticky_session("sessions", "s1").expect("session");
    assert_eq!(session.last_access_ms, later - 60_000);
    log.ok(Command::Expire {
        now_ms: later + HOUR - 60_001,
    });
    assert_eq!(log.state.keyval_get(&ZoneRef::http("one"), "a"), Some("1"));
    log.ok(Command::Expire {
        now_ms: later + HOUR - 60_000,
    });
    assert_eq!(log.state.keyval_get(&ZoneRef::http("one"), "a"), None);
    assert_eq!(log.state.keyval_get(&ZoneRef::http("one"), "b"), Some("2"));
}

#[test]
fn keeps_this_clusters_zone_configuration() {
    let mut backup = Log::new();
    backup.ok(zone("one", None));
    backup.ok(put("one", "a", "1", 1_000));
    let mut log = Log::new();
    log.ok(Command::ConfigureKeyvalZone {
        zone: ZoneRef::http("one"),
        capacity_bytes: 4096,
        timeout_ms: Some(HOUR),
        key_type: KeyType::String,
    });
    log.ok(restore(&backup, 2_000));
    let config = log
        .state
        .keyval_zone_config(&ZoneRef::http("one"))
        .expect("zone");
    assert_eq!(
        (config.capacity_bytes, config.timeout_ms),
        (4096, Some(HOUR))
    );
    assert_eq!(log.state.keyval_get(&ZoneRef::http("one"), "a"), Some("1"));
}

#[test]
fn an_unreadable_snapshot_is_refused_and_changes_nothing() {
    let mut log = Log::new();
    log.ok(zone("one", None));
    log.ok(put("one", "a", "1", 1_000));
    let before = log.snap();
    let good = source().snap();
    let mut wrong_format = good.clone();
    wrong_format[0] = 99;
    let mut huge_length = vec![good[0]];
    huge_length.extend_from_slice(&[0xff; 16]);
    for bad in [
        Vec::new(),
        wrong_format,
        good[..good.len() / 2].to_vec(),
        huge_length,
        b"not a snapshot".to_vec(),
    ] {
        let r = log.run(Command::Restore {
            snapshot: bad.clone(),
            now_ms: 9_000,
        });
        assert!(
            matches!(r, Err(Rejected::BadSnapshot { .. })),
            "{bad:?}: {r:?}"
        );
        assert_eq!(log.snap(), before, "a refused restore changed the state");
    }
}

#[test]
fn restoring_a_cluster_into_itself_changes_no_key() {
    let mut log = source();
    let copy = Log {
        state: State::from_snapshot(&log.snap()).expect("decodes"),
        index: 0,
    };
    let now = log.state.log_time_ms();
    log.ok(restore(&copy, now));
    let one = ZoneRef::http("one");
    let entries: Vec<_> = log.state.keyval_entries(&one).expect("zone").collect();
    assert_eq!(entries, vec![("a", "1")]);
    assert_eq!(
        log.state
            .sticky_session("sessions", "s1")
            .map(|s| s.last_access_ms),
        Some(2_000)
    );
}
