use raftgate_raft::state::{DEDUP_CLIENT_IDLE_MS, DEDUP_WINDOW, MAX_DEDUP_CLIENTS};
use raftgate_raft::{Applied, Command, KeyType, Rejected, ServerSpec, UpstreamRef, ZoneRef};

use crate::Log;

fn zone() -> ZoneRef {
    ZoneRef::http("one")
}

fn setup() -> Log {
    let mut log = Log::new();
    log.ok(Command::ConfigureKeyvalZone {
        zone: zone(),
        capacity_bytes: 1 << 20,
        timeout_ms: None,
        key_type: KeyType::String,
    });
    log.ok(Command::ConfigureUpstream {
        upstream: UpstreamRef::http("backend"),
        servers: vec![ServerSpec::new("10.0.0.1:80")],
    });
    log
}

fn add_key(key: &str, now_ms: u64) -> Command {
    Command::KeyvalAdd {
        zone: zone(),
        pairs: vec![(key.into(), "v".into())],
        now_ms,
    }
}

#[test]
fn a_retry_gets_the_original_result_without_applying_again() {
    let mut log = setup();
    let post = Command::ServerAdd {
        upstream: UpstreamRef::http("backend"),
        spec: ServerSpec::new("10.0.0.2"),
    };
    let first = log.req(7, 1, post.clone());
    assert!(matches!(&first, Ok(Applied::Server(v)) if v.id == 1));
    let after_first = log.snap();
    // The same request again (a retry after a leader change): the original answer, not
    // `EntryExists`, and no second server.
    assert_eq!(log.req(7, 1, post.clone()), first);
    assert_eq!(log.snap(), after_first);
    // A new serial is a new request.
    assert_eq!(
        log.req(7, 2, post),
        Err(Rejected::ServerExists {
            server: "10.0.0.2:80".into()
        })
    );
    assert_eq!(
        log.state.request_outcome(7, 1).map(|(i, r)| (i, r.clone())),
        Some((3, first))
    );
}

#[test]
fn a_retried_rejection_stays_rejected() {
    let mut log = setup();
    log.ok(add_key("a", 1));
    let dup = log.req(1, 1, add_key("a", 2));
    assert_eq!(dup, Err(Rejected::KeyExists { key: "a".into() }));
    log.ok(Command::KeyvalDelete {
        zone: zone(),
        key: "a".into(),
    });
    assert_eq!(log.req(1, 1, add_key("a", 3)), dup);
    assert_eq!(
        log.state.keyval_get(&zone(), "a"),
        None,
        "not applied by the retry"
    );
}

#[test]
fn clients_are_independent_and_serials_may_arrive_out_of_order() {
    let mut log = setup();
    assert_eq!(log.req(1, 5, add_key("a", 1)), Ok(Applied::Done));
    assert_eq!(log.req(2, 5, add_key("b", 1)), Ok(Applied::Done));
    assert_eq!(log.req(1, 3, add_key("c", 1)), Ok(Applied::Done));
    for k in ["a", "b", "c"] {
        assert_eq!(log.state.keyval_get(&zone(), k), Some("v"));
    }
}

#[test]
fn serials_older_than_the_window_are_stale() {
    let mut log = setup();
    for serial in 0..=DEDUP_WINDOW as u64 {
        log.req(1, serial, add_key(&format!("k{serial}"), 1))
            .expect("applied");
    }
    // Serial 0 fell out of the window: it is refused, not applied again.
    log.ok(Command::KeyvalClear { zone: zone() });
    assert_eq!(
        log.req(1, 0, add_key("k0", 2)),
        Err(Rejected::StaleRequest {
            client: 1,
            serial: 0
        })
    );
    assert_eq!(log.state.keyval_get(&zone(), "k0"), None);
    // Serial 1 is still remembered.
    assert_eq!(log.req(1, 1, add_key("k1", 2)), Ok(Applied::Done));
    assert_eq!(log.state.keyval_get(&zone(), "k1"), None);
}

#[test]
fn idle_clients_expire_by_log_time() {
    let mut log = setup();
    log.req(1, 1, add_key("a", 1000)).expect("applied");
    log.req(2, 1, add_key("b", 5000)).expect("applied");
    assert_eq!(
        log.state.next_expiry_ms(),
        Some(1000 + DEDUP_CLIENT_IDLE_MS)
    );
    log.ok(Command::Expire {
        now_ms: 1000 + DEDUP_CLIENT_IDLE_MS - 1,
    });
    assert_eq!(log.state.dedup_clients(), 2);
    match log.ok(Command::Expire {
        now_ms: 1000 + DEDUP_CLIENT_IDLE_MS,
    }) {
        Applied::Expired(n) => assert_eq!(n.clients, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.state.dedup_clients(), 1);
    assert!(log.state.request_outcome(1, 1).is_none());
    assert!(log.state.request_outcome(2, 1).is_some());
}

#[test]
fn the_least_recently_seen_client_goes_first() {
    let mut log = setup();
    for client in 0..MAX_DEDUP_CLIENTS as u128 {
        let now = 1000 - (client as u64 % 2);
        log.req(client, 0, Command::Expire { now_ms: now })
            .expect("applied");
    }
    assert_eq!(log.state.dedup_clients(), MAX_DEDUP_CLIENTS);
    log.req(u128::MAX, 0, Command::Expire { now_ms: 2000 })
        .expect("applied");
    assert_eq!(log.state.dedup_clients(), MAX_DEDUP_CLIENTS);
    // All clients were seen at log time 1000 (an older clock reads as the log's), so the
    // tie goes to the smallest id.
    assert!(log.state.request_outcome(0, 0).is_none());
    assert!(log.state.request_outcome(1, 0).is_some());
    assert!(log.state.request_outcome(u128::MAX, 0).is_some());
}

#[test]
fn a_batch_applies_each_request_in_order_with_its_own_result_and_dedup() {
    use raftgate_raft::{Entry, Request};
    let mut log = setup();
    let req = |client: u128, key: &str| Request {
        client,
        serial: 1,
        command: add_key(key, 1000),
    };
    log.index += 1;
    let applied = log.state.apply(
        log.index,
        Entry::Batch(vec![req(1, "a"), req(2, "a"), req(1, "a"), req(3, "b")]),
    );
    let key_exists = log.req(9, 1, add_key("a", 1000)).expect_err("exists");
    assert_eq!(
        applied,
        Ok(Applied::Batch(vec![
            Ok(Applied::Done),
            // The second add of the same key is refused on its own...
            Err(key_exists),
            // ...and client 1's retry inside the batch gets its first result back.
            Ok(Applied::Done),
            Ok(Applied::Done),
        ]))
    );
    assert_eq!(log.state.keyval_get(&zone(), "a"), Some("v"));
    assert_eq!(log.state.keyval_get(&zone(), "b"), Some("v"));
    // A later retry of any of them, alone, gets the same answer.
    assert_eq!(log.req(3, 1, add_key("b", 2000)), Ok(Applied::Done));
    assert!(log.req(2, 1, add_key("a", 2000)).is_err());
}

#[test]
fn the_client_index_survives_a_snapshot_so_expiry_and_eviction_keep_working() {
    let mut log = setup();
    log.req(1, 1, add_key("a", 1000)).expect("applied");
    log.req(2, 1, add_key("b", 5000)).expect("applied");
    let restored = raftgate_raft::State::from_snapshot(&log.snap()).expect("decodes");
    assert_eq!(restored, log.state);
    let mut log = crate::Log {
        state: restored,
        index: log.index,
    };
    assert_eq!(
        log.state.next_expiry_ms(),
        Some(1000 + DEDUP_CLIENT_IDLE_MS)
    );
    match log.ok(Command::Expire {
        now_ms: 1000 + DEDUP_CLIENT_IDLE_MS,
    }) {
        Applied::Expired(n) => assert_eq!(n.clients, 1),
        other => panic!("{other:?}"),
    }
    assert!(log.state.request_outcome(1, 1).is_none());
    assert!(log.state.request_outcome(2, 1).is_some());
}
