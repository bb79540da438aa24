use raftgate_raft::state::{DEFAULT_STICKY_TIMEOUT_MS, STICKY_SESSION_BYTES};
use raftgate_raft::{Applied, Command, Rejected, ServerKey};

use crate::Log;

fn server(addr: &str) -> ServerKey {
    ServerKey {
        upstream: "backend".into(),
        server: addr.into(),
    }
}

fn configure(capacity_bytes: u64) -> Command {
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
        server: server(addr),
        now_ms,
    }
}

fn touch(sessions: &[&str], now_ms: u64) -> Command {
    Command::StickyTouch {
        zone: "sessions".into(),
        sessions: sessions.iter().map(|s| s.to_string()).collect(),
        now_ms,
    }
}

fn sessions(log: &Log) -> Vec<String> {
    log.state
        .sticky_sessions("sessions")
        .expect("zone exists")
        .map(|(id, _)| id.to_string())
        .collect()
}

#[test]
fn learn_binds_and_rebinds() {
    let mut log = Log::new();
    log.ok(configure(1 << 20));
    assert_eq!(log.ok(learn("s1", "10.0.0.1:80", 1)), Applied::Done);
    assert_eq!(
        log.state.sticky_lookup("sessions", "s1"),
        Some(&server("10.0.0.1:80"))
    );
    log.ok(learn("s1", "10.0.0.2:80", 2));
    assert_eq!(
        log.state.sticky_lookup("sessions", "s1"),
        Some(&server("10.0.0.2:80"))
    );
    assert_eq!(
        log.state
            .sticky_session("sessions", "s1")
            .map(|s| s.last_access_ms),
        Some(2)
    );
    assert_eq!(log.state.sticky_lookup("sessions", "s2"), None);
    let usage = log.state.sticky_usage("sessions").expect("zone");
    assert_eq!((usage.entries, usage.used_bytes), (1, STICKY_SESSION_BYTES));
}

#[test]
fn rejections_change_nothing() {
    let mut log = Log::new();
    log.ok(configure(STICKY_SESSION_BYTES - 1));
    let before = log.snap();
    assert_eq!(
        log.run(learn("s1", "a:1", 1)),
        Err(Rejected::StickyZoneTooSmall {
            zone: "sessions".into()
        })
    );
    let unknown = Rejected::UnknownStickyZone {
        zone: "nope".into(),
    };
    let learn_unknown = Command::StickyLearn {
        zone: "nope".into(),
        session: "s".into(),
        server: server("a:1"),
        now_ms: 1,
    };
    assert_eq!(log.run(learn_unknown), Err(unknown.clone()));
    let touch_unknown = Command::StickyTouch {
        zone: "nope".into(),
        sessions: vec!["s".into()],
        now_ms: 1,
    };
    assert_eq!(log.run(touch_unknown), Err(unknown));
    assert_eq!(log.snap(), before);
}

#[test]
fn full_zone_evicts_least_recently_used() {
    let mut log = Log::new();
    log.ok(configure(3 * STICKY_SESSION_BYTES));
    log.ok(learn("a", "x:1", 1));
    log.ok(learn("b", "x:1", 2));
    log.ok(learn("c", "x:1", 3));
    log.ok(touch(&["a"], 4));
    log.ok(learn("d", "x:1", 5));
    assert_eq!(sessions(&log), ["a", "c", "d"], "b was least recently used");
    log.ok(learn("e", "x:1", 6));
    assert_eq!(sessions(&log), ["a", "d", "e"], "then c");
    // Re-learning an existing session in a full zone evicts nobody.
    log.ok(learn("a", "x:2", 7));
    assert_eq!(sessions(&log), ["a", "d", "e"]);
}

#[test]
fn eviction_ties_go_to_the_smallest_session_id() {
    let mut log = Log::new();
    log.ok(configure(3 * STICKY_SESSION_BYTES));
    for s in ["z", "x", "y"] {
        log.ok(learn(s, "x:1", 10));
    }
    log.ok(learn("w", "x:1", 10));
    assert_eq!(sessions(&log), ["w", "y", "z"]);
    log.ok(learn("v", "x:1", 10));
    assert_eq!(
        sessions(&log),
        ["v", "y", "z"],
        "w, y and z tie at 10; w is smallest"
    );
}

#[test]
fn long_session_ids_cost_more() {
    let mut log = Log::new();
    log.ok(configure(1 << 20));
    let long = "s".repeat(40);
    log.ok(learn(&long, "x:1", 1));
    assert_eq!(
        log.state.sticky_usage("sessions").map(|u| u.used_bytes),
        Some(STICKY_SESSION_BYTES + 8)
    );
}

#[test]
fn touch_moves_access_forward_only_and_skips_unknown_sessions() {
    let mut log = Log::new();
    log.ok(configure(1 << 20));
    log.ok(learn("a", "x:1", 100));
    log.ok(touch(&["a", "ghost"], 200));
    let access = |log: &Log| {
        log.state
            .sticky_session("sessions", "a")
            .map(|s| s.last_access_ms)
    };
    assert_eq!(access(&log), Some(200));
    assert_eq!(sessions(&log), ["a"], "unknown sessions are not created");
    // Log time is 200 now; an older clock reads as 200.
    log.ok(touch(&["a"], 150));
    assert_eq!(access(&log), Some(200));
}

#[test]
fn sessions_expire_timeout_after_last_access() {
    let mut log = Log::new();
    log.ok(configure(1 << 20));
    log.ok(learn("a", "x:1", 1000));
    log.ok(learn("b", "x:1", 1000));
    log.ok(touch(&["b"], 2000));
    assert_eq!(
        log.state.next_expiry_ms(),
        Some(1000 + DEFAULT_STICKY_TIMEOUT_MS)
    );
    log.ok(Command::Expire {
        now_ms: 1000 + DEFAULT_STICKY_TIMEOUT_MS - 1,
    });
    assert_eq!(sessions(&log), ["a", "b"]);
    match log.ok(Command::Expire {
        now_ms: 1000 + DEFAULT_STICKY_TIMEOUT_MS,
    }) {
        Applied::Expired(n) => assert_eq!(n.sessions, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(sessions(&log), ["b"]);
    log.ok(Command::Expire {
        now_ms: 2000 + DEFAULT_STICKY_TIMEOUT_MS,
    });
    assert!(sessions(&log).is_empty());
}

#[test]
fn shrinking_a_zone_evicts_on_the_next_learn() {
    let mut log = Log::new();
    log.ok(configure(4 * STICKY_SESSION_BYTES));
    for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
        log.ok(learn(s, "x:1", i as u64));
    }
    let cfg = configure(2 * STICKY_SESSION_BYTES);
    log.ok(cfg.clone());
    assert_eq!(sessions(&log).len(), 4, "a reload drops nothing");
    let snap = log.snap();
    log.ok(cfg);
    assert_eq!(log.snap(), snap, "idempotent");
    log.ok(learn("e", "x:1", 10));
    assert_eq!(sessions(&log), ["d", "e"]);
}

/// The data path's batches: every session binds, in order, and one that cannot fit even
/// an empty zone is skipped without losing the rest.
#[test]
fn a_learn_batch_binds_every_session_in_order() {
    let mut log = Log::new();
    log.ok(configure(4 * STICKY_SESSION_BYTES));
    let too_long = "x".repeat(4 * STICKY_SESSION_BYTES as usize);
    let batch = Command::StickyLearnBatch {
        zone: "sessions".into(),
        sessions: vec![
            ("a".into(), server("10.0.0.1:80")),
            (too_long, server("10.0.0.1:80")),
            ("b".into(), server("10.0.0.2:80")),
            ("a".into(), server("10.0.0.3:80")),
        ],
        now_ms: 5,
    };
    assert_eq!(log.ok(batch), Applied::Done);
    assert_eq!(sessions(&log), ["a", "b"]);
    assert_eq!(
        log.state.sticky_lookup("sessions", "a"),
        Some(&server("10.0.0.3:80")),
        "the later binding wins"
    );
    let unknown = Command::StickyLearnBatch {
        zone: "nope".into(),
        sessions: vec![("c".into(), server("10.0.0.1:80"))],
        now_ms: 6,
    };
    assert!(matches!(
        log.run(unknown),
        Err(Rejected::UnknownStickyZone { .. })
    ));
}
