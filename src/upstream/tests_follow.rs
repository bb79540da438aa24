//! A zone-backed group following the replicated server list.

use std::time::Instant;

use raftgate_raft::{Command, Entry, ServerChanges, ServerSpec, State, UpstreamRef};

use super::conf::{Method, UpstreamConf, ZoneConf};
use super::tests::srv;
use super::*;

fn zoned() -> Upstream {
    Upstream::new(UpstreamConf {
        name: "backend".into(),
        servers: vec![srv(0, 1), srv(1, 1), srv(2, 1)],
        method: Method::RoundRobin,
        keepalive: None,
        zone: Some(ZoneConf {
            name: "backend".into(),
            size: None,
        }),
        file: "test.conf".into(),
        line: 1,
        implicit: false,
    })
}

fn apply(state: &mut State, index: &mut u64, c: Command) {
    *index += 1;
    state.apply(*index, Entry::Command(c)).expect("applied");
}

fn ports(up: &Upstream, n: usize, state: &State) -> Vec<u16> {
    (0..n)
        .map(|_| {
            up.follow(state);
            let g = up
                .select_at(&SelectCtx::default(), &mut Tried::new(), Instant::now())
                .expect("a server");
            g.addr().port()
        })
        .collect()
}

#[test]
fn the_group_follows_drains_additions_and_removals_and_keeps_its_counters() {
    let up = zoned();
    let mut state = State::new();
    let mut index = 0;
    let Some(Entry::Command(configure)) = up.configure_command() else {
        panic!("a zone-backed group configures the log");
    };
    apply(&mut state, &mut index, configure);
    assert_eq!(ports(&up, 3, &state), [9000, 9001, 9002]);
    let before = up.peer(1).expect("server 1").stats().requests();
    up.peer(1).expect("server 1").count_request();

    let upstream = UpstreamRef::http("backend");
    apply(
        &mut state,
        &mut index,
        Command::ServerPatch {
            upstream: upstream.clone(),
            id: 0,
            changes: ServerChanges {
                drain: Some(true),
                ..Default::default()
            },
        },
    );
    let seen = ports(&up, 6, &state);
    assert!(
        !seen.contains(&9000),
        "a draining server takes no new request: {seen:?}"
    );
    assert_eq!(
        up.peer(0).expect("server 0").state(Instant::now()),
        PeerState::Draining
    );
    assert_eq!(
        up.peer(1).expect("server 1").stats().requests(),
        before + 1,
        "counters survive the rebuild"
    );

    apply(
        &mut state,
        &mut index,
        Command::ServerAdd {
            upstream: upstream.clone(),
            spec: ServerSpec::new("127.0.0.1:9007"),
        },
    );
    let held = up
        .select_at(&SelectCtx::default(), &mut Tried::new(), Instant::now())
        .expect("a server");
    let held_id = held.peer().server_id;
    apply(
        &mut state,
        &mut index,
        Command::ServerRemove {
            upstream,
            id: held_id,
        },
    );
    up.follow(&state);
    assert!(up.peer(held_id).is_none(), "removed");
    assert_eq!(up.zombies(), 1, "still serving the request in flight");
    drop(held);
    assert_eq!(up.zombies(), 0);
    let seen = ports(&up, 8, &state);
    assert!(!seen.contains(&9000));
    assert_eq!(seen.len(), 8);
}

#[test]
fn an_unchanged_list_keeps_the_round_robin_going() {
    let up = zoned();
    let mut state = State::new();
    let mut index = 0;
    // Two picks from the configuration's own list, then the log configures the same list:
    // the rotation continues where it was instead of starting over.
    let first = ports(&up, 2, &state);
    let Some(Entry::Command(configure)) = up.configure_command() else {
        panic!("configures");
    };
    apply(&mut state, &mut index, configure);
    let next = ports(&up, 1, &state);
    assert_eq!([first, next].concat(), [9000, 9001, 9002]);
}
