//! `location` matching, in nginx's order: an exact `=` match wins at once; otherwise the
//! longest prefix is remembered (and searched for nested locations); a `^~` prefix stops
//! there; otherwise regex locations are tried in configuration order (nested ones of the
//! matched prefix first) and the first match wins; failing that, the longest prefix.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use super::req::Captured;
use super::rewrite::Script;
use super::LocConf;

#[derive(Debug)]
pub enum Kind {
    Exact,
    Prefix,
    /// `^~`: a prefix that, when it is the longest, skips the regexes.
    NoRegex,
    Regex(Regex),
    Named,
}

#[derive(Debug)]
pub struct Location {
    /// As written (`/images/`, `~* \.png$`, `@fallback`).
    pub name: String,
    pub kind: Kind,
    pub conf: Arc<LocConf>,
    pub script: Script,
    pub children: Locations,
    pub at: String,
}

impl Location {
    /// The prefix that `proxy_pass` with a URI replaces (`None` for regex and named).
    pub fn prefix(&self) -> Option<&str> {
        match self.kind {
            Kind::Exact | Kind::Prefix | Kind::NoRegex => Some(&self.name),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Locations {
    exact: HashMap<String, Arc<Location>>,
    /// Longest first.
    prefix: Vec<Arc<Location>>,
    regex: Vec<Arc<Location>>,
    pub named: HashMap<String, Arc<Location>>,
}

/// A successful match: the location and the captures of a regex location.
pub struct Found {
    pub loc: Arc<Location>,
    pub captures: Option<Captured>,
}

enum Step {
    /// A final answer (exact, `^~`, or regex match).
    Done(Found),
    /// The longest prefix so far; regexes of outer levels may still win.
    Prefix(Arc<Location>),
    None,
}

impl Locations {
    pub fn add(&mut self, loc: Arc<Location>) -> Result<(), String> {
        let dup = || format!("duplicate location \"{}\"", loc.name);
        match &loc.kind {
            Kind::Exact => {
                if self.exact.insert(loc.name.clone(), loc.clone()).is_some() {
                    return Err(dup());
                }
            }
            Kind::Prefix | Kind::NoRegex => {
                if self.prefix.iter().any(|l| l.name == loc.name) {
                    return Err(dup());
                }
                self.prefix.push(loc);
                self.prefix.sort_by_key(|l| std::cmp::Reverse(l.name.len()));
            }
            Kind::Regex(_) => self.regex.push(loc),
            Kind::Named => {
                if self.named.insert(loc.name.clone(), loc.clone()).is_some() {
                    return Err(dup());
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty() && self.regex.is_empty()
    }

    /// Finds the location for a decoded, normalised URI.
    pub fn find(&self, uri: &str) -> Option<Found> {
        match self.step(uri) {
            Step::Done(f) => Some(f),
            Step::Prefix(loc) => Some(Found {
                loc,
                captures: None,
            }),
            Step::None => None,
        }
    }

    fn step(&self, uri: &str) -> Step {
        if let Some(loc) = self.exact.get(uri) {
            return Step::Done(Found {
                loc: loc.clone(),
                captures: None,
            });
        }
        let mut best: Option<Arc<Location>> = None;
        if let Some(p) = self
            .prefix
            .iter()
            .find(|l| uri.starts_with(l.name.as_str()))
        {
            best = Some(p.clone());
            if !p.children.is_empty() {
                match p.children.step(uri) {
                    Step::Done(f) => return Step::Done(f),
                    Step::Prefix(deeper) => best = Some(deeper),
                    Step::None => {}
                }
            }
            if let Some(b) = &best {
                if matches!(b.kind, Kind::NoRegex) {
                    return Step::Done(Found {
                        loc: b.clone(),
                        captures: None,
                    });
                }
            }
        }
        for loc in &self.regex {
            if let Kind::Regex(rx) = &loc.kind {
                if let Some(c) = rx.captures(uri) {
                    let caps = Captured::new(rx, &c);
                    // A regex location may hold nested locations of its own.
                    if !loc.children.is_empty() {
                        if let Some(inner) = loc.children.find(uri) {
                            return Step::Done(inner);
                        }
                    }
                    return Step::Done(Found {
                        loc: loc.clone(),
                        captures: Some(caps),
                    });
                }
            }
        }
        match best {
            Some(b) => Step::Prefix(b),
            None => Step::None,
        }
    }
}
