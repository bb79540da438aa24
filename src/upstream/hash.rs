//! `ip_hash`, `hash KEY` and `hash KEY consistent`.
//!
//! The hash functions are nginx's to the bit, so that a group moved from nginx (or from a
//! Cache::Memcached client, whose formulas nginx copied) keeps sending each client or key to
//! the same server.

use std::net::IpAddr;

use super::balance::advance;
use super::{Group, Peer, State, Tried, HASH_TRIES};

/// One point of the ketama ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct Point {
    pub(super) hash: u32,
    /// Index into `Group::ring_members`: points belong to a server *name*, so the addresses
    /// one name resolves to share its points.
    name: usize,
}

/// nginx splits `server` at the last ':' only when everything after it is digits, so
/// `[::1]` or `backend` have no port; `unix:` paths have none either.
fn host_and_port(server: &str) -> (&[u8], &[u8]) {
    let bytes = server.as_bytes();
    if bytes.len() >= 5 && bytes[..5].eq_ignore_ascii_case(b"unix:") {
        return (&bytes[5..], b"");
    }
    for (j, &c) in bytes.iter().enumerate().rev() {
        if c == b':' {
            return (&bytes[..j], &bytes[j + 1..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (bytes, b"")
}

/// `ngx_http_upstream_update_chash`: each server contributes `160 * weight` points,
/// `crc32(HOST \0 PORT PREV_HASH)` (Cache::Memcached::Fast's formula), where PREV_HASH is the
/// previous point's hash as 4 little-endian bytes, starting from 0. Points are sorted and
/// duplicate hashes dropped, keeping the first.
pub(super) fn build_ring(primaries: &[std::sync::Arc<Peer>]) -> (Vec<Point>, Vec<Vec<usize>>) {
    let mut names: Vec<&str> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut ring = Vec::new();
    for (id, peer) in primaries.iter().enumerate() {
        let server = peer.conf.name.as_str();
        let name = match names.iter().position(|n| *n == server) {
            Some(n) => n,
            None => {
                names.push(server);
                members.push(Vec::new());
                names.len() - 1
            }
        };
        members[name].push(id);

        let (host, port) = host_and_port(server);
        let mut base = crc32fast::Hasher::new();
        base.update(host);
        base.update(&[0]);
        base.update(port);
        let mut prev: u32 = 0;
        for _ in 0..u64::from(peer.weight) * 160 {
            let mut h = base.clone();
            h.update(&prev.to_le_bytes());
            prev = h.finalize();
            ring.push(Point { hash: prev, name });
        }
    }
    ring.sort_by_key(|p| p.hash);
    ring.dedup_by_key(|p| p.hash);
    (ring, members)
}

/// The bytes ip_hash feeds to its hash: the first three octets of IPv4 (a /24 shares a
/// server), all sixteen of IPv6, and nginx's pseudo address of three zeros otherwise.
fn ip_bytes(ip: Option<IpAddr>) -> ([u8; 16], usize) {
    let mut buf = [0u8; 16];
    match ip {
        Some(IpAddr::V4(v4)) => {
            buf[..3].copy_from_slice(&v4.octets()[..3]);
            (buf, 3)
        }
        Some(IpAddr::V6(v6)) => (v6.octets(), 16),
        None => (buf, 3),
    }
}

/// `%ui` formatting of nginx's rehash counter, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl Group {
    /// The primary that owns slot `w` of `total_weight`, walking weights in order.
    fn walk(&self, mut w: u64) -> usize {
        let last = self.primaries.saturating_sub(1);
        for (id, p) in self.peers[..last].iter().enumerate() {
            let weight = u64::from(p.weight);
            if w < weight {
                return id;
            }
            w -= weight;
        }
        last
    }

    /// `ngx_http_upstream_get_ip_hash_peer`.
    pub(super) fn ip_hash_get(
        &self,
        st: &mut State,
        client: Option<IpAddr>,
        tried: &mut Tried,
        now: u64,
    ) -> Option<usize> {
        if tried.tries > HASH_TRIES || self.single || self.total_weight == 0 {
            return self.rr_get(st, tried, now);
        }
        let (buf, len) = ip_bytes(client);
        // Each unusable candidate hashes the address once more, continuing from the last
        // value; the value is kept only when a server is found (nginx's local `hash`).
        let mut hash = tried.hash.unwrap_or(89);
        loop {
            for &b in &buf[..len] {
                hash = (hash * 113 + u64::from(b)) % 6271;
            }
            let id = self.walk(hash % self.total_weight);
            if self.usable(id, tried, now) {
                tried.hash = Some(hash);
                return Some(id);
            }
            tried.tries += 1;
            if tried.tries > HASH_TRIES {
                return self.rr_get(st, tried, now);
            }
        }
    }

    /// `ngx_http_upstream_get_hash_peer`: Cache::Memcached's
    /// `((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH`, REHASH omitted the first time.
    pub(super) fn hash_get(
        &self,
        st: &mut State,
        key: &[u8],
        tried: &mut Tried,
        now: u64,
    ) -> Option<usize> {
        if tried.tries > HASH_TRIES || self.primaries < 2 || key.is_empty() {
            return self.rr_get(st, tried, now);
        }
        loop {
            let mut h = crc32fast::Hasher::new();
            if tried.rehash > 0 {
                let mut buf = [0u8; 20];
                h.update(decimal(tried.rehash, &mut buf));
            }
            h.update(key);
            let part = u64::from((h.finalize() >> 16) & 0x7fff);
            let acc = tried.hash.unwrap_or(0).wrapping_add(part);
            tried.hash = Some(acc);
            tried.rehash += 1;
            let id = self.walk(acc % self.total_weight);
            if self.usable(id, tried, now) {
                return Some(id);
            }
            tried.tries += 1;
            if tried.tries > HASH_TRIES {
                return self.rr_get(st, tried, now);
            }
        }
    }

    /// `ngx_http_upstream_get_chash_peer`: start at the first point at or after
    /// `crc32(KEY)` (wrapping), move clockwise past points whose server cannot be used, and
    /// among the usable addresses of the chosen server name balance by smooth round robin.
    pub(super) fn chash_get(
        &self,
        st: &mut State,
        key: &[u8],
        tried: &mut Tried,
        now: u64,
    ) -> Option<usize> {
        if tried.tries > HASH_TRIES || self.single || key.is_empty() {
            return self.rr_get(st, tried, now);
        }
        if self.ring.is_empty() {
            return None;
        }
        let len = self.ring.len() as u64;
        let mut point = match tried.hash {
            Some(p) => p,
            None => {
                let h = crc32fast::hash(key);
                self.ring.partition_point(|p| p.hash < h) as u64
            }
        };
        tried.hash = Some(point);
        loop {
            let name = self.ring[(point % len) as usize].name;
            let mut best: Option<usize> = None;
            let mut total = 0;
            for &id in &self.ring_members[name] {
                if !self.usable(id, tried, now) {
                    continue;
                }
                advance(
                    &mut st.weights[id],
                    self.peers[id].weight_limit(now),
                    &mut total,
                );
                if best.is_none_or(|b| st.weights[id].current > st.weights[b].current) {
                    best = Some(id);
                }
            }
            if let Some(id) = best {
                st.weights[id].current -= total;
                return Some(id);
            }
            point += 1;
            tried.hash = Some(point);
            tried.tries += 1;
            if tried.tries > HASH_TRIES {
                return self.rr_get(st, tried, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_split_like_nginx() {
        assert_eq!(
            host_and_port("10.0.0.1:8080"),
            (&b"10.0.0.1"[..], &b"8080"[..])
        );
        assert_eq!(host_and_port("backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(host_and_port("[::1]:81"), (&b"[::1]"[..], &b"81"[..]));
        assert_eq!(host_and_port("[::1]"), (&b"[::1]"[..], &b""[..]));
        assert_eq!(host_and_port("unix:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
    }

    #[test]
    fn rehash_counter_formats_as_decimal() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(1, &mut buf), b"1");
        assert_eq!(decimal(20, &mut buf), b"20");
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn ip_hash_uses_three_octets_of_v4_and_all_of_v6() {
        let v4 = "10.1.2.3".parse().ok();
        assert_eq!(ip_bytes(v4).1, 3);
        assert_eq!(&ip_bytes(v4).0[..3], &[10, 1, 2]);
        assert_eq!(ip_bytes("::1".parse().ok()).1, 16);
        assert_eq!(ip_bytes(None), ([0; 16], 3));
    }
}
