//! `map SOURCE $var { ... }`: a variable whose value is looked up from another value.
//!
//! Priority, as nginx documents it: exact string (case-insensitive), longest `*.`-prefix
//! mask, longest `.*`-suffix mask (both only with `hostnames`), first matching regex in
//! configuration order, then `default`.

use std::collections::HashMap;

use regex::Regex;

use super::{DynVar, Template};
use crate::http::req::Req;

#[derive(Debug, Default)]
pub struct MapVar {
    pub source: Template,
    pub default: Option<Template>,
    pub hostnames: bool,
    /// Lowercased exact keys.
    pub exact: HashMap<String, Template>,
    /// `*.example.com` and `.example.com` stored as the suffix `.example.com`; a leading
    /// dot key also matches the bare name (kept in `exact` too).
    pub head_masks: Vec<(String, Template)>,
    /// `mail.*` stored as the prefix `mail.`.
    pub tail_masks: Vec<(String, Template)>,
    pub regexes: Vec<(Regex, Template)>,
}

impl MapVar {
    /// Adds one `key value;` line; returns an error text for bad keys.
    pub fn add(&mut self, key: &str, value: Template) -> Result<(), String> {
        if let Some(re) = key.strip_prefix('~') {
            let (pat, ci) = match re.strip_prefix('*') {
                Some(p) => (p, true),
                None => (re, false),
            };
            let rx = crate::config::regex(pat, ci)?;
            self.regexes.push((rx, value));
            return Ok(());
        }
        let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
        if self.hostnames {
            if let Some(rest) = key.strip_prefix("*.") {
                self.head_masks.push((format!(".{rest}"), value));
                return Ok(());
            }
            if let Some(rest) = key.strip_prefix('.') {
                self.exact.entry(rest.to_string()).or_insert(value.clone());
                self.head_masks.push((key.clone(), value));
                return Ok(());
            }
            if let Some(rest) = key.strip_suffix(".*") {
                self.tail_masks.push((format!("{rest}."), value));
                return Ok(());
            }
        }
        if self.exact.contains_key(&key) {
            return Err(format!("duplicate map key \"{key}\""));
        }
        self.exact.insert(key, value);
        Ok(())
    }

    /// Orders masks so the longest wins, once all lines are in.
    pub fn finish(&mut self) {
        self.head_masks
            .sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        self.tail_masks
            .sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    }

    fn find(&self, req: &mut Req, key: &str) -> Option<Template> {
        let mut lk = key.to_ascii_lowercase();
        if self.hostnames && lk.ends_with('.') {
            lk.pop();
        }
        if let Some(v) = self.exact.get(&lk) {
            return Some(v.clone());
        }
        if self.hostnames {
            if let Some((_, v)) = self
                .head_masks
                .iter()
                .find(|(m, _)| lk.ends_with(m.as_str()))
            {
                return Some(v.clone());
            }
            if let Some((_, v)) = self
                .tail_masks
                .iter()
                .find(|(m, _)| lk.starts_with(m.as_str()))
            {
                return Some(v.clone());
            }
        }
        for (rx, v) in &self.regexes {
            if let Some(caps) = rx.captures(key) {
                req.set_captures(crate::http::req::Captured::new(rx, &caps));
                return Some(v.clone());
            }
        }
        None
    }
}

impl DynVar for MapVar {
    fn get(&self, req: &mut Req) -> Option<String> {
        let key = self.source.eval(req);
        match self.find(req, &key) {
            Some(t) => Some(t.eval(req)),
            None => Some(
                self.default
                    .as_ref()
                    .map(|d| d.eval(req))
                    .unwrap_or_default(),
            ),
        }
    }
}
