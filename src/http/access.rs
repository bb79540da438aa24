//! `allow`/`deny`: the first rule that matches the client address decides.

use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Rule {
    pub allow: bool,
    /// `None` = `all`.
    pub net: Option<(IpAddr, u8)>,
}

impl Rule {
    pub fn parse(allow: bool, s: &str) -> Result<Rule, String> {
        if s == "all" {
            return Ok(Rule { allow, net: None });
        }
        if s.starts_with("unix:") {
            return Err("unix: sockets are not supported".into());
        }
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid parameter \"{s}\""))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("invalid parameter \"{s}\""))?,
            None => max,
        };
        Ok(Rule {
            allow,
            net: Some((ip, bits)),
        })
    }

    fn matches(&self, ip: IpAddr) -> bool {
        let Some((net, bits)) = self.net else {
            return true;
        };
        let ip = match (net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rem = bits % 8;
    if rem == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rem);
    (a[full] & mask) == (b[full] & mask)
}

/// `true` when the client may proceed (no rule matched, or the first match is `allow`).
pub fn allowed(rules: &[Rule], ip: IpAddr) -> bool {
    rules
        .iter()
        .find(|r| r.matches(ip))
        .map(|r| r.allow)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn first_match_wins() {
        let rules = vec![
            Rule::parse(false, "192.168.1.1").expect("rule"),
            Rule::parse(true, "192.168.1.0/24").expect("rule"),
            Rule::parse(true, "2001:db8::/32").expect("rule"),
            Rule::parse(false, "all").expect("rule"),
        ];
        assert!(!allowed(&rules, ip("192.168.1.1")));
        assert!(allowed(&rules, ip("192.168.1.77")));
        assert!(allowed(&rules, ip("2001:db8::5")));
        assert!(!allowed(&rules, ip("10.0.0.1")));
        assert!(allowed(&rules, ip("::ffff:192.168.1.9")));
        assert!(allowed(&[], ip("10.0.0.1")));
    }

    #[test]
    fn bad_rules_are_rejected() {
        assert!(Rule::parse(true, "300.1.1.1").is_err());
        assert!(Rule::parse(true, "10.0.0.0/33").is_err());
        assert!(Rule::parse(true, "nonsense").is_err());
    }
}
