//! `server_name`: which server of a listen address takes a request, by `Host`.
//!
//! nginx's order: exact name, longest wildcard starting with `*`, longest wildcard
//! ending with `*`, first matching regex (in configuration order), else the default
//! server of the address.

use std::collections::HashMap;

use regex::Regex;

use super::req::Captured;

#[derive(Debug, Clone, Default)]
pub struct ServerNames {
    exact: HashMap<String, usize>,
    /// `*.example.com` / `.example.com` as the suffix `.example.com`.
    head: Vec<(String, usize)>,
    /// `www.example.*` as the prefix `www.example.`.
    tail: Vec<(String, usize)>,
    regex: Vec<(Regex, usize)>,
}

impl ServerNames {
    /// Adds a name for server `idx`. The first server to claim a name keeps it (nginx
    /// warns "conflicting server name" and ignores the later one).
    pub fn add(&mut self, name: &str, idx: usize) -> Result<(), String> {
        if let Some(re) = name.strip_prefix('~') {
            let rx = crate::config::regex(re, true)?;
            self.regex.push((rx, idx));
            return Ok(());
        }
        let name = name.to_ascii_lowercase();
        if let Some(rest) = name.strip_prefix("*.") {
            self.head.push((format!(".{rest}"), idx));
        } else if let Some(rest) = name.strip_prefix('.') {
            self.exact.entry(rest.to_string()).or_insert(idx);
            self.head.push((name.clone(), idx));
        } else if let Some(rest) = name.strip_suffix(".*") {
            self.tail.push((format!("{rest}."), idx));
        } else if name.contains('*') {
            return Err(format!("invalid server name or wildcard \"{name}\""));
        } else {
            self.exact.entry(name).or_insert(idx);
        }
        Ok(())
    }

    pub fn finish(&mut self) {
        self.head.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        self.tail.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    }

    /// The server for a lowercased host without port; regex captures are returned so
    /// `$1` and friends work in the chosen server.
    pub fn find(&self, host: &str) -> Option<(usize, Option<Captured>)> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(i) = self.exact.get(host) {
            return Some((*i, None));
        }
        if let Some((_, i)) = self.head.iter().find(|(m, _)| host.ends_with(m.as_str())) {
            return Some((*i, None));
        }
        if let Some((_, i)) = self.tail.iter().find(|(m, _)| host.starts_with(m.as_str())) {
            return Some((*i, None));
        }
        for (rx, i) in &self.regex {
            if let Some(c) = rx.captures(host) {
                return Some((*i, Some(Captured::new(rx, &c))));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_priority_order() {
        let mut n = ServerNames::default();
        n.add("example.com", 0).expect("name");
        n.add("*.example.com", 1).expect("name");
        n.add("*.api.example.com", 2).expect("name");
        n.add("www.example.*", 3).expect("name");
        n.add("~^(?<user>[a-z]+)\\.users\\.test$", 4).expect("name");
        n.add(".example.org", 5).expect("name");
        n.finish();
        assert_eq!(n.find("example.com").map(|x| x.0), Some(0));
        assert_eq!(n.find("a.example.com").map(|x| x.0), Some(1));
        assert_eq!(n.find("v1.api.example.com").map(|x| x.0), Some(2));
        assert_eq!(
            n.find("www.example.com").map(|x| x.0),
            Some(1),
            "head mask beats tail mask"
        );
        assert_eq!(n.find("www.example.net").map(|x| x.0), Some(3));
        let (i, caps) = n.find("bob.users.test").expect("regex");
        assert_eq!(i, 4);
        assert_eq!(caps.expect("caps").positional[1].as_deref(), Some("bob"));
        assert_eq!(n.find("example.org").map(|x| x.0), Some(5));
        assert_eq!(n.find("x.example.org").map(|x| x.0), Some(5));
        assert!(n.find("nothing.test").is_none());
    }
}
