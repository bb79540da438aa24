//! Round robin, least_conn, passive health, backups and the per-request bookkeeping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conf::{Method, ServerConf, UpstreamConf};
use super::*;

pub(super) fn srv(i: u16, weight: u32) -> ServerConf {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9000 + i));
    let mut s = ServerConf::new(addr, addr.to_string());
    s.weight = weight;
    s
}

pub(super) fn group(method: Method, servers: Vec<ServerConf>) -> Upstream {
    Upstream::new(UpstreamConf {
        name: "backend".into(),
        servers,
        method,
        keepalive: None,
        zone: None,
        file: "test.conf".into(),
        line: 1,
        implicit: false,
        sticky: None,
    })
}

/// One complete request: pick, succeed, release. Returns the peer id.
pub(super) fn pick(up: &Upstream, ctx: &SelectCtx<'_>, now: Instant) -> Option<usize> {
    let guard = up.select_at(ctx, &mut Tried::new(), now).ok()?;
    guard.success_at(now);
    Some(guard.peer().id)
}

fn picks(up: &Upstream, n: usize, now: Instant) -> Vec<usize> {
    (0..n)
        .map(|_| pick(up, &SelectCtx::default(), now).unwrap_or(usize::MAX))
        .collect()
}

fn counts(ids: &[usize], peers: usize) -> Vec<usize> {
    let mut c = vec![0; peers];
    for &id in ids {
        c[id] += 1;
    }
    c
}

fn hold(up: &Upstream, id: usize, n: usize) -> Vec<PeerGuard> {
    let now = Instant::now();
    (0..n)
        .filter_map(|_| up.select_bound(id, &mut Tried::new(), now))
        .collect()
}

#[test]
fn weights_3_to_1_give_exactly_300_and_100_interleaved() {
    let up = group(Method::RoundRobin, vec![srv(0, 3), srv(1, 1)]);
    let ids = picks(&up, 400, Instant::now());
    assert_eq!(counts(&ids, 2), vec![300, 100]);
    // Smooth: a a b a, never b b, and a never more than 3 times in a row.
    for chunk in ids.chunks(4) {
        assert_eq!(chunk, &[0, 0, 1, 0]);
    }
}

#[test]
fn weights_5_1_1_follow_nginx_smooth_sequence() {
    // The example of nginx's commit introducing smooth weighted round robin.
    let up = group(Method::RoundRobin, vec![srv(0, 5), srv(1, 1), srv(2, 1)]);
    let ids = picks(&up, 14, Instant::now());
    assert_eq!(ids, vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn equal_weights_alternate() {
    let up = group(Method::RoundRobin, vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    assert_eq!(picks(&up, 6, Instant::now()), vec![0, 1, 2, 0, 1, 2]);
}

#[test]
fn least_conn_prefers_fewer_active_connections() {
    let up = group(Method::LeastConn, vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    let _a = hold(&up, 0, 2);
    let _b = hold(&up, 1, 1);
    let now = Instant::now();
    let g = up.select_at(&SelectCtx::default(), &mut Tried::new(), now);
    assert_eq!(g.as_ref().map(|g| g.peer().id), Ok(2));
    // Now 2,1,1: the two with one connection share requests, the busy one gets none.
    let ids = picks(&up, 10, now);
    let c = counts(&ids, 3);
    assert_eq!(c[0], 0);
    assert_eq!(c[1], 5);
    assert_eq!(c[2], 5);
}

#[test]
fn least_conn_weights_connections_and_breaks_ties_by_weight() {
    let up = group(Method::LeastConn, vec![srv(0, 3), srv(1, 1)]);
    // Idle servers tie on every pick: smooth weighted round robin decides.
    assert_eq!(counts(&picks(&up, 400, Instant::now()), 2), vec![300, 100]);
    // 2 connections on weight 3 beat 1 connection on weight 1.
    let _a = hold(&up, 0, 2);
    let _b = hold(&up, 1, 1);
    assert_eq!(pick(&up, &SelectCtx::default(), Instant::now()), Some(0));
    let _c = hold(&up, 0, 2);
    assert_eq!(pick(&up, &SelectCtx::default(), Instant::now()), Some(1));
}

#[test]
fn guard_counts_active_and_requests() {
    let up = group(Method::RoundRobin, vec![srv(0, 1)]);
    let peer = Arc::clone(&up.peers()[0]);
    let g = up.select(&SelectCtx::default(), &mut Tried::new());
    assert_eq!(peer.active(), 1);
    if let Ok(g) = &g {
        g.peer().count_request();
        g.peer().add_sent(10);
        g.peer().add_received(20);
    }
    drop(g);
    assert_eq!(peer.active(), 0);
    assert_eq!(peer.stats().requests(), 1);
    assert_eq!((peer.stats().sent(), peer.stats().received()), (10, 20));
    peer.count_response(204);
    peer.count_response(502);
    peer.count_response(42);
    assert_eq!(peer.stats().responses(2), 1);
    assert_eq!(peer.stats().responses(5), 1);
    assert_eq!(peer.stats().responses_total(), 2);
}

fn health_group(method: Method) -> Upstream {
    let mut servers = vec![srv(0, 1), srv(1, 1)];
    for s in &mut servers {
        s.max_fails = 2;
        s.fail_timeout = Duration::from_millis(100);
    }
    group(method, servers)
}

/// Fail one attempt on `id` at `now`, using `select_bound` to reach it directly.
fn fail(up: &Upstream, id: usize, now: Instant) {
    let g = up.select_bound(id, &mut Tried::new(), now);
    assert!(g.is_some(), "peer {id} should be selectable");
    if let Some(g) = g {
        g.failure_at(now);
    }
}

#[test]
fn max_fails_takes_a_server_out_until_fail_timeout_then_one_probe() {
    for method in [Method::RoundRobin, Method::LeastConn] {
        let up = health_group(method);
        let t0 = Instant::now();
        let a = Arc::clone(&up.peers()[0]);
        fail(&up, 0, t0);
        assert_eq!(a.state(t0), PeerState::Up, "one failure of two");
        fail(&up, 0, t0 + Duration::from_millis(10));
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(a.state(t1), PeerState::Unavail);
        assert!(!a.is_available(t1));
        assert_eq!(a.stats().unavail(), 1);
        assert_eq!(a.stats().fails(), 2);

        // Within fail_timeout everything goes to the other server.
        let within = t1 + Duration::from_millis(100);
        assert_eq!(counts(&picks(&up, 10, within), 2), vec![0, 10]);

        // After it, exactly one request probes; while the probe is out, the server is
        // skipped again because the probe restarted the window.
        let after = t1 + Duration::from_millis(101);
        let mut probe = None;
        for _ in 0..4 {
            let g = up.select_at(&SelectCtx::default(), &mut Tried::new(), after);
            if let Ok(g) = g {
                if g.peer().id == 0 {
                    assert!(probe.is_none(), "only one probe per fail_timeout");
                    probe = Some(g);
                }
            }
        }
        let probe = probe.expect("a probe after fail_timeout");
        // The probe succeeds: fails reset, the server is back in rotation.
        probe.success_at(after);
        drop(probe);
        assert_eq!(a.fails(), 0);
        assert_eq!(a.state(after), PeerState::Up);
        let c = counts(&picks(&up, 20, after), 2);
        assert!(c[0] >= 8, "recovered server gets its share again: {c:?}");
    }
}

#[test]
fn failed_probe_starts_another_unavailable_period() {
    let up = health_group(Method::RoundRobin);
    let t0 = Instant::now();
    fail(&up, 0, t0);
    fail(&up, 0, t0);
    let t1 = t0 + Duration::from_millis(150);
    fail(&up, 0, t1); // the probe
    let a = &up.peers()[0];
    assert_eq!(a.state(t1 + Duration::from_millis(50)), PeerState::Unavail);
    assert_eq!(a.stats().unavail(), 2);
    assert_eq!(a.state(t1 + Duration::from_millis(101)), PeerState::Up);
}

#[test]
fn failures_spread_over_windows_accumulate_until_a_checked_success() {
    // nginx only clears `fails` on a success that follows a new window (accessed < checked).
    let up = health_group(Method::RoundRobin);
    let t0 = Instant::now();
    fail(&up, 0, t0);
    let later = t0 + Duration::from_millis(500);
    fail(&up, 0, later);
    assert_eq!(up.peers()[0].state(later), PeerState::Unavail);

    // A success inside the same window does not clear it either.
    let up = health_group(Method::RoundRobin);
    fail(&up, 0, t0);
    if let Some(g) = up.select_bound(0, &mut Tried::new(), t0 + Duration::from_millis(10)) {
        g.success_at(t0 + Duration::from_millis(10));
    }
    fail(&up, 0, t0 + Duration::from_millis(20));
    assert_eq!(
        up.peers()[0].state(later - Duration::from_millis(400)),
        PeerState::Unavail
    );

    let up = health_group(Method::RoundRobin);
    fail(&up, 0, t0);
    if let Some(g) = up.select_bound(0, &mut Tried::new(), later) {
        g.success_at(later);
    }
    fail(&up, 0, later);
    assert_eq!(up.peers()[0].state(later), PeerState::Up);
}

#[test]
fn a_failed_server_returns_with_effective_weight_recovering_one_unit_per_pick() {
    let mut servers = vec![srv(0, 2), srv(1, 2)];
    for s in &mut servers {
        s.max_fails = 1;
        s.fail_timeout = Duration::from_millis(100);
    }
    let up = group(Method::RoundRobin, servers);
    let t0 = Instant::now();
    fail(&up, 0, t0);
    // effective weight 2 - 2/1 = 0; after fail_timeout it climbs 0, 1, 2 while server 1
    // keeps 2, which is nginx's sequence b b a b a b a b.
    let ids = picks(&up, 8, t0 + Duration::from_millis(150));
    assert_eq!(ids, vec![1, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn single_server_is_never_marked_unavailable() {
    let mut s = srv(0, 1);
    s.max_fails = 1;
    let up = group(Method::RoundRobin, vec![s]);
    let now = Instant::now();
    for _ in 0..5 {
        fail(&up, 0, now);
    }
    assert_eq!(up.peers()[0].state(now), PeerState::Up);
    assert_eq!(up.peers()[0].fails(), 0);
    assert_eq!(up.peers()[0].stats().fails(), 5);
    assert_eq!(pick(&up, &SelectCtx::default(), now), Some(0));
}

#[test]
fn backup_only_when_no_primary_is_usable() {
    for method in [Method::RoundRobin, Method::LeastConn] {
        let mut b = srv(2, 1);
        b.backup = true;
        let mut servers = vec![b, srv(0, 1), srv(1, 1)];
        for s in &mut servers {
            s.max_fails = 1;
        }
        let up = group(method.clone(), servers);
        // Backups are listed after the primaries whatever the configuration order.
        assert!(up.peers()[2].conf.backup);
        let now = Instant::now();
        assert_eq!(counts(&picks(&up, 10, now), 3), vec![5, 5, 0]);

        // Primaries tried by this request: the backup takes the next attempt.
        let mut tried = Tried::new();
        let ids: Vec<_> = (0..3)
            .filter_map(|_| up.select_at(&SelectCtx::default(), &mut tried, now).ok())
            .map(|g| g.peer().id)
            .collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[2], 2);
        assert!(up
            .select_at(&SelectCtx::default(), &mut tried, now)
            .is_err());

        // One primary down, the other failing: backup.
        up.peers()[0].set_down(true);
        fail(&up, 1, now);
        assert_eq!(counts(&picks(&up, 4, now), 3), vec![0, 0, 4], "{method:?}");
        // A request that moved to the backups stays there, as nginx's does.
        let mut tried = Tried::new();
        let first = up.select_at(&SelectCtx::default(), &mut tried, now);
        assert_eq!(first.map(|g| g.peer().id), Ok(2));
        up.peers()[0].set_down(false);
        assert!(up
            .select_at(&SelectCtx::default(), &mut tried, now)
            .is_err());
        assert_eq!(counts(&picks(&up, 4, now), 3), vec![4, 0, 0], "{method:?}");
    }
}

#[test]
fn down_backups_are_skipped_and_backups_balance_by_weight() {
    let mut servers = vec![srv(0, 1)];
    for (i, w) in [(1, 3), (2, 1), (3, 5)] {
        let mut b = srv(i, w);
        b.backup = true;
        servers.push(b);
    }
    servers[3].down = true;
    servers[0].down = true;
    let up = group(Method::RoundRobin, servers);
    assert_eq!(
        counts(&picks(&up, 400, Instant::now()), 4),
        vec![0, 300, 100, 0]
    );
}

#[test]
fn max_conns_is_respected() {
    let mut a = srv(0, 1);
    a.max_conns = 1;
    let up = group(Method::RoundRobin, vec![a, srv(1, 1)]);
    let held = hold(&up, 0, 2);
    assert_eq!(held.len(), 1, "select_bound honours max_conns too");
    assert_eq!(counts(&picks(&up, 6, Instant::now()), 2), vec![0, 6]);
    drop(held);
    assert!(counts(&picks(&up, 6, Instant::now()), 2)[0] > 0);

    let mut only = srv(0, 1);
    only.max_conns = 1;
    let up = group(Method::RoundRobin, vec![only]);
    let _held = hold(&up, 0, 1);
    assert_eq!(
        up.select(&SelectCtx::default(), &mut Tried::new()).err(),
        Some(NoLivePeers)
    );
}

pub(super) fn all_methods() -> Vec<Method> {
    vec![
        Method::RoundRobin,
        Method::LeastConn,
        Method::IpHash,
        Method::Hash {
            key: crate::vars::Template::default(),
            consistent: false,
        },
        Method::Hash {
            key: crate::vars::Template::default(),
            consistent: true,
        },
        Method::Random { two: false },
        Method::Random { two: true },
    ]
}

#[test]
fn down_and_drain_servers_never_get_balanced_requests() {
    for method in all_methods() {
        let mut servers: Vec<ServerConf> = (0..4).map(|i| srv(i, 1)).collect();
        servers[0].down = true;
        servers[2].drain = true;
        let up = group(method.clone(), servers);
        up.reseed(7);
        let now = Instant::now();
        let mut c = vec![0; 4];
        for i in 0..200u32 {
            let key = i.to_string();
            let ctx = SelectCtx {
                client_ip: Some(std::net::IpAddr::from([10, 0, (i % 250) as u8, 1])),
                hash_key: Some(key.as_bytes()),
            };
            c[pick(&up, &ctx, now).unwrap_or(0)] += 1;
        }
        assert_eq!((c[0], c[2]), (0, 0), "{method:?}: {c:?}");
        assert_eq!(c[1] + c[3], 200, "{method:?}");
        assert_eq!(up.peers()[2].state(now), PeerState::Draining);
        assert_eq!(up.peers()[0].state(now), PeerState::Down);
        // A session bound to the draining server still reaches it.
        assert!(up.select_bound(2, &mut Tried::new(), now).is_some());
        assert!(up.select_bound(0, &mut Tried::new(), now).is_none());
    }
}

#[test]
fn tried_servers_are_excluded_then_no_live_peers() {
    for method in all_methods() {
        let up = group(method.clone(), vec![srv(0, 1), srv(1, 2), srv(2, 1)]);
        let ctx = SelectCtx {
            client_ip: Some([192, 168, 1, 9].into()),
            hash_key: Some(b"/index.html"),
        };
        let mut tried = Tried::new();
        let mut seen = Vec::new();
        while let Ok(g) = up.select_at(&ctx, &mut tried, Instant::now()) {
            g.failure();
            seen.push(g.peer().id);
            assert!(seen.len() <= 3, "{method:?} repeated a server: {seen:?}");
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2], "{method:?}");
        assert_eq!(tried.count(), 3);
    }
}

#[test]
fn all_down_means_no_live_peers() {
    for method in all_methods() {
        let mut servers = vec![srv(0, 1), srv(1, 1)];
        servers.iter_mut().for_each(|s| s.down = true);
        let up = group(method.clone(), servers);
        let err = up.select(&SelectCtx::default(), &mut Tried::new()).err();
        assert_eq!(err, Some(NoLivePeers), "{method:?}");
        assert_eq!(NoLivePeers.to_string(), "no live upstreams");
    }
    let up = group(Method::RoundRobin, Vec::new());
    assert!(up.select(&SelectCtx::default(), &mut Tried::new()).is_err());
}

#[test]
fn tries_counts_servers_not_down() {
    let mut servers = vec![srv(0, 1), srv(1, 1), srv(2, 1)];
    servers[1].down = true;
    servers[2].backup = true;
    assert_eq!(group(Method::RoundRobin, servers).tries(), 2);
}

#[test]
fn tried_bitset_covers_more_than_64_servers() {
    let up = group(Method::RoundRobin, (0..100).map(|i| srv(i, 1)).collect());
    let mut tried = Tried::new();
    let now = Instant::now();
    for n in 1..=100 {
        assert!(up.select_at(&SelectCtx::default(), &mut tried, now).is_ok());
        assert_eq!(tried.count(), n);
    }
    assert!((0..100).all(|id| tried.contains(id)));
    assert!(up
        .select_at(&SelectCtx::default(), &mut tried, now)
        .is_err());
}

#[test]
fn slow_start_ramps_a_recovered_server() {
    let mut servers = vec![srv(0, 1), srv(1, 1)];
    for s in &mut servers {
        s.max_fails = 1;
        s.fail_timeout = Duration::from_millis(100);
        s.slow_start = Duration::from_secs(10);
    }
    let up = group(Method::RoundRobin, servers);
    let t0 = Instant::now();
    fail(&up, 0, t0);
    let back = t0 + Duration::from_millis(200);
    if let Some(g) = up.select_bound(0, &mut Tried::new(), back) {
        g.success_at(back);
    }
    // One second into a ten-second ramp: about a tenth of the other server's weight.
    let c = counts(&picks(&up, 1100, back + Duration::from_secs(1)), 2);
    assert!((50..=150).contains(&c[0]), "{c:?}");
    // Ramp over: equal shares again.
    let c = counts(&picks(&up, 1000, back + Duration::from_secs(11)), 2);
    assert!((480..=520).contains(&c[0]), "{c:?}");
}

#[test]
fn shared_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Upstream>();
    send_sync::<PeerGuard>();
    send_sync::<Tried>();
    send_sync::<Peer>();
}

#[test]
fn only_rr_and_least_conn_accept_backup() {
    let allowed: Vec<bool> = all_methods().iter().map(method_allows_backup).collect();
    assert_eq!(allowed, vec![true, true, false, false, false, false, false]);
}
