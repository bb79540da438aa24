//! nginx's value syntaxes: sizes (`1m`), times (`1h 30s`, `500ms`), flags (`on`/`off`).

use std::time::Duration;

/// `1024`, `8k`, `1m`, `1g` (case-insensitive), as nginx's `ngx_parse_offset`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size \"{s}\"");
    let (num, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024u64),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// `30`, `30s`, `500ms`, `1h 30m`, `1d`, as nginx's `ngx_parse_time`; a bare number is seconds.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid time \"{s}\"");
    let mut total_ms: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let ms_per = match unit {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "M" => 30 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total_ms = n
            .checked_mul(ms_per)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total_ms))
}

pub fn parse_flag(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!(
            "invalid value \"{s}\", it must be \"on\" or \"off\""
        )),
    }
}

/// Formats a duration the way the API shows `fail_timeout`/`slow_start` ("10s", "500ms").
pub fn format_time(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("1x").is_err());
        assert!(parse_size("m").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("1h 30s"), Ok(Duration::from_secs(3630)));
        assert_eq!(parse_time("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_time("10q").is_err());
        assert!(parse_time("").is_err());
        assert!(parse_time("s").is_err());
        assert_eq!(format_time(Duration::from_secs(10)), "10s");
        assert_eq!(format_time(Duration::from_millis(1500)), "1500ms");
    }
}
