//! Address blocks for `type=ip` keyval zones.
//!
//! A block is kept as its family, prefix length and masked bits, so that a lookup can
//! probe each prefix length of the looked-up address in a sorted map instead of scanning
//! every key.

use std::net::IpAddr;

/// A masked address block. Ordering is only used for map keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Net {
    V4 { bits: u32, len: u8 },
    V6 { bits: u128, len: u8 },
}

fn mask4(bits: u32, len: u8) -> u32 {
    match len {
        0 => 0,
        l => bits & (u32::MAX << (32 - u32::from(l))),
    }
}

fn mask6(bits: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l => bits & (u128::MAX << (128 - u32::from(l))),
    }
}

impl Net {
    /// Parses `addr` or `addr/len`. Host bits below the prefix are dropped (nginx accepts
    /// them too and only warns), so `10.1.2.3/8` is the block `10.0.0.0/8`.
    pub(crate) fn parse(key: &str) -> Option<Net> {
        let (addr, len) = match key.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, Some(l.parse::<u8>().ok()?))
            }
            None => (key, None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                (len <= 32).then(|| Net::V4 {
                    bits: mask4(u32::from(a), len),
                    len,
                })
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                (len <= 128).then(|| Net::V6 {
                    bits: mask6(u128::from(a), len),
                    len,
                })
            }
        }
    }

    /// The blocks that could contain `addr`, longest first.
    pub(crate) fn candidates(addr: IpAddr) -> impl Iterator<Item = Net> {
        let (v4, v6) = match addr {
            IpAddr::V4(a) => (Some(u32::from(a)), None),
            IpAddr::V6(a) => (None, Some(u128::from(a))),
        };
        let four = v4.into_iter().flat_map(|b| {
            (0..=32u8).rev().map(move |len| Net::V4 {
                bits: mask4(b, len),
                len,
            })
        });
        let six = v6.into_iter().flat_map(|b| {
            (0..=128u8).rev().map(move |len| Net::V6 {
                bits: mask6(b, len),
                len,
            })
        });
        four.chain(six)
    }
}
