//! ip_hash, hash, hash consistent and random.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::conf::{Method, ServerConf};
use super::tests::{group, pick, srv};
use super::*;

fn hash_method(consistent: bool) -> Method {
    Method::Hash {
        key: crate::vars::Template::default(),
        consistent,
    }
}

fn client(ip: IpAddr) -> SelectCtx<'static> {
    SelectCtx {
        client_ip: Some(ip),
        hash_key: None,
    }
}

fn keyed(key: &[u8]) -> SelectCtx<'_> {
    SelectCtx {
        client_ip: None,
        hash_key: Some(key),
    }
}

#[test]
fn ip_hash_matches_nginx_formula() {
    // hash = 89; for 127, 0, 0: hash = (hash * 113 + byte) % 6271 → 4040; 4040 % 2 = 0.
    let up = group(Method::IpHash, vec![srv(0, 1), srv(1, 1)]);
    let ctx = client([127, 0, 0, 1].into());
    assert_eq!(pick(&up, &ctx, Instant::now()), Some(0));
    // 4040 % 3 = 2 with three equal servers; with weights 2,1,1 slot 4040 % 4 = 0 → server 0.
    let up = group(Method::IpHash, vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    assert_eq!(pick(&up, &ctx, Instant::now()), Some(2));
    let up = group(Method::IpHash, vec![srv(0, 2), srv(1, 1), srv(2, 1)]);
    assert_eq!(pick(&up, &ctx, Instant::now()), Some(0));
}

#[test]
fn ip_hash_is_stable_per_client_and_spreads() {
    let up = group(Method::IpHash, vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    let now = Instant::now();
    let mut c = [0usize; 3];
    for x in 0..=255u8 {
        let first = pick(&up, &client([10, 20, x, 1].into()), now);
        for host in [2, 77, 254] {
            // Same /24, other requests in between: same server.
            assert_eq!(pick(&up, &client([10, 20, x, host].into()), now), first);
        }
        c[first.unwrap_or(0)] += 1;
    }
    assert!(c.iter().all(|&n| n > 40), "{c:?}");

    let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
    let first = pick(&up, &client(v6), now);
    assert!((0..10).all(|_| pick(&up, &client(v6), now) == first));
}

#[test]
fn ip_hash_moves_a_client_only_while_its_server_is_unusable() {
    let up = group(Method::IpHash, vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    let now = Instant::now();
    let ctx = client([127, 0, 0, 1].into());
    let home = pick(&up, &ctx, now).unwrap_or(0);
    up.peers()[home].set_down(true);
    let away = pick(&up, &ctx, now);
    assert_ne!(away, Some(home));
    assert!(
        (0..5).all(|_| pick(&up, &ctx, now) == away),
        "rehash is deterministic"
    );
    up.peers()[home].set_down(false);
    assert_eq!(pick(&up, &ctx, now), Some(home));
}

#[test]
fn hash_matches_nginx_formula() {
    // crc32("abc") = 0x352441c2; (crc >> 16) & 0x7fff = 13604; 13604 % 3 = 2.
    let up = group(hash_method(false), vec![srv(0, 1), srv(1, 1), srv(2, 1)]);
    assert_eq!(pick(&up, &keyed(b"abc"), Instant::now()), Some(2));
    // Server 2 down: rehash with crc32("1abc") → 13604 + 9142 = 22746, % 3 = 0.
    up.peers()[2].set_down(true);
    assert_eq!(pick(&up, &keyed(b"abc"), Instant::now()), Some(0));
    // And 0 too: crc32("2abc") → 22746 + 12547 = 35293, % 3 = 1.
    up.peers()[0].set_down(true);
    assert_eq!(pick(&up, &keyed(b"abc"), Instant::now()), Some(1));
}

#[test]
fn hash_is_stable_spreads_and_rehashes_around_down_servers() {
    let up = group(hash_method(false), (0..4).map(|i| srv(i, 1)).collect());
    let now = Instant::now();
    let keys: Vec<String> = (0..400).map(|i| format!("/item/{i}")).collect();
    let home: Vec<Option<usize>> = keys
        .iter()
        .map(|k| pick(&up, &keyed(k.as_bytes()), now))
        .collect();
    let mut c = [0usize; 4];
    for (k, h) in keys.iter().zip(&home) {
        assert_eq!(pick(&up, &keyed(k.as_bytes()), now), *h);
        c[h.unwrap_or(0)] += 1;
    }
    assert!(c.iter().all(|&n| n > 60), "{c:?}");

    up.peers()[1].set_down(true);
    for (k, h) in keys.iter().zip(&home) {
        let now_at = pick(&up, &keyed(k.as_bytes()), now);
        if *h == Some(1) {
            assert_ne!(now_at, Some(1));
        } else {
            assert_eq!(now_at, *h, "keys of live servers stay put");
        }
    }
}

#[test]
fn hash_without_key_or_with_one_server_is_round_robin() {
    let up = group(hash_method(false), vec![srv(0, 1), srv(1, 1)]);
    let now = Instant::now();
    let ids: Vec<_> = (0..4).map(|_| pick(&up, &keyed(b""), now)).collect();
    assert_eq!(ids, vec![Some(0), Some(1), Some(0), Some(1)]);
    let up = group(hash_method(true), vec![srv(0, 1)]);
    assert_eq!(pick(&up, &keyed(b"x"), now), Some(0));
}

fn ring_owner(up: &Upstream, key: &str) -> usize {
    pick(up, &keyed(key.as_bytes()), Instant::now()).unwrap_or(usize::MAX)
}

fn named(i: u16) -> ServerConf {
    let addr = SocketAddr::from(([10, 0, 0, i as u8 + 1], 80));
    ServerConf::new(addr, format!("cache{i}.example:11211"))
}

#[test]
fn consistent_hash_moves_about_one_fifth_when_a_fifth_server_joins() {
    let four = group(hash_method(true), (0..4).map(named).collect());
    let five = group(hash_method(true), (0..5).map(named).collect());
    let keys: Vec<String> = (0..10_000).map(|i| format!("/obj/{i}")).collect();
    let mut moved = 0;
    let mut c = [0usize; 5];
    for k in &keys {
        let (before, after) = (ring_owner(&four, k), ring_owner(&five, k));
        c[after] += 1;
        if before != after {
            moved += 1;
            assert_eq!(after, 4, "a key only moves to the new server");
        }
    }
    assert!(moved <= 3_000, "moved {moved} of 10000");
    assert!(moved >= 1_000, "the new server takes its share: {moved}");
    assert!(c.iter().all(|&n| n > 1_000), "{c:?}");
}

#[test]
fn consistent_hash_matches_ketama_of_nginx() {
    // Computed independently from nginx's formula: crc32(HOST \0 PORT PREV_HASH_LE) points,
    // key → first point >= crc32(key).
    let up = group(hash_method(true), (0..4).map(named).collect());
    assert_eq!(up.group.load().ring[0].hash, 6_732_931);
    let owners: Vec<usize> = (0..12)
        .map(|i| ring_owner(&up, &format!("/obj/{i}")))
        .collect();
    assert_eq!(owners, vec![1, 0, 2, 2, 3, 3, 2, 2, 3, 2, 0, 2]);
}

#[test]
fn consistent_hash_ring_has_160_points_per_weight() {
    let up = group(hash_method(true), vec![named(0), named(1)]);
    let mut heavy = named(2);
    heavy.weight = 2;
    let up3 = group(hash_method(true), vec![named(0), named(1), heavy]);
    assert!(up.group.load().ring.len() <= 320 && up.group.load().ring.len() > 310);
    assert!(up3.group.load().ring.len() <= 640 && up3.group.load().ring.len() > 630);
    assert!(up3
        .group
        .load()
        .ring
        .windows(2)
        .all(|w| w[0].hash < w[1].hash));
}

#[test]
fn consistent_hash_skips_down_servers_clockwise_and_shares_names() {
    let up = group(hash_method(true), (0..4).map(named).collect());
    let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    let home: Vec<usize> = keys.iter().map(|k| ring_owner(&up, k)).collect();
    // A down server's keys go exactly where they would if it were removed from the ring.
    let without = group(hash_method(true), [0, 1, 3].map(named).to_vec());
    up.peers()[2].set_down(true);
    for (k, &h) in keys.iter().zip(&home) {
        let now_at = ring_owner(&up, k);
        if h == 2 {
            let expected = [0, 1, 3][ring_owner(&without, k)];
            assert_eq!(now_at, expected, "{k}");
        } else {
            assert_eq!(now_at, h);
        }
    }

    // Two addresses of one server name share its points and take turns.
    let mut twin = named(0);
    twin.addr = SocketAddr::from(([10, 0, 0, 99], 80));
    let up = group(hash_method(true), vec![named(0), twin, named(1)]);
    let key = (0..)
        .map(|i| format!("t{i}"))
        .find(|k| ring_owner(&up, k) < 2)
        .unwrap_or_default();
    let mut c = [0usize; 3];
    for _ in 0..10 {
        c[ring_owner(&up, &key)] += 1;
    }
    assert_eq!(c, [5, 5, 0]);
}

#[test]
fn random_follows_weights() {
    let up = group(Method::Random { two: false }, vec![srv(0, 1), srv(1, 3)]);
    up.reseed(42);
    let now = Instant::now();
    let mut c = [0usize; 2];
    for _ in 0..4000 {
        c[pick(&up, &SelectCtx::default(), now).unwrap_or(0)] += 1;
    }
    assert!((850..=1150).contains(&c[0]), "{c:?}");
}

#[test]
fn random_two_spreads_and_avoids_a_loaded_server() {
    let up = group(
        Method::Random { two: true },
        vec![srv(0, 1), srv(1, 1), srv(2, 1)],
    );
    up.reseed(1);
    let now = Instant::now();
    let mut c = [0usize; 3];
    for _ in 0..300 {
        c[pick(&up, &SelectCtx::default(), now).unwrap_or(0)] += 1;
    }
    assert!(c.iter().all(|&n| n > 60), "idle servers share: {c:?}");

    let _busy: Vec<_> = (0..10)
        .filter_map(|_| up.select_bound(0, &mut Tried::new(), now))
        .collect();
    let mut c = [0usize; 3];
    for _ in 0..300 {
        c[pick(&up, &SelectCtx::default(), now).unwrap_or(0)] += 1;
    }
    assert_eq!(c[0], 0, "the loaded server loses every pair: {c:?}");
    assert!(c[1] > 60 && c[2] > 60, "{c:?}");
}
