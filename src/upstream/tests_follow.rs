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
        sticky: None,
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

#[test]
fn a_reload_keeps_the_state_of_servers_added_through_the_api() {
    let old = zoned();
    let mut state = State::new();
    let mut index = 0;
    let Some(Entry::Command(configure)) = old.configure_command() else {
        panic!("configures");
    };
    apply(&mut state, &mut index, configure);
    apply(
        &mut state,
        &mut index,
        Command::ServerAdd {
            upstream: UpstreamRef::http("backend"),
            spec: ServerSpec::new("127.0.0.1:9007"),
        },
    );
    old.follow(&state);
    let added = old.peer(3).expect("the POSTed server");
    added.count_request();
    let held = old.select_bound(added.id, &mut Tried::new(), Instant::now());
    assert!(held.is_some());

    // The reload: a new group from the same configuration takes over, then follows.
    let new = zoned();
    new.adopt(&old);
    new.follow(&state);
    let same = new.peer(3).expect("still there");
    assert_eq!(same.stats().requests(), 1, "counters kept");
    assert_eq!(same.active(), 1, "the request in flight is still counted");
    drop(held);
    assert_eq!(same.active(), 0);
}

#[test]
fn an_older_applied_state_never_rolls_the_group_back() {
    let up = zoned();
    let mut state = State::new();
    let mut index = 0;
    let Some(Entry::Command(configure)) = up.configure_command() else {
        panic!("configures");
    };
    apply(&mut state, &mut index, configure);
    let before = state.clone();
    apply(
        &mut state,
        &mut index,
        Command::ServerRemove {
            upstream: UpstreamRef::http("backend"),
            id: 0,
        },
    );
    up.follow(&state);
    assert!(up.peer(0).is_none());
    // A request that loaded the applied state just before the removal follows late.
    up.follow(&before);
    assert!(up.peer(0).is_none(), "the removed server came back");
}

#[test]
fn downtime_counts_the_time_out_of_service_whenever_it_is_read() {
    let mut conf = srv(0, 1);
    conf.fail_timeout = std::time::Duration::from_millis(100);
    let up = super::tests::group(Method::RoundRobin, vec![conf, srv(1, 1)]);
    let t0 = Instant::now();
    let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
    let g = up.select_bound(0, &mut Tried::new(), t0).expect("server 0");
    g.failure_at(t0);
    drop(g);
    let p = up.peers()[0].clone();
    assert_eq!(p.state(ms(50)), PeerState::Unavail);
    assert!(p.downstart(ms(50)).is_some());
    // A probe after the window: it succeeds, and no read happened in between.
    let probe = up
        .select_bound(0, &mut Tried::new(), ms(300))
        .expect("probe");
    probe.success_at(ms(300));
    drop(probe);
    let read_late = p.downtime(ms(5_000));
    assert_eq!(
        read_late.as_millis(),
        100,
        "the fail_timeout window, not until the read"
    );
    assert!(p.downstart(ms(5_000)).is_none());
}
