//! Upstream runtime state: the server list of a zone-backed upstream, with stable ids.
//!
//! Each server keeps its `base` (the config line, or the POST body) apart from the API's
//! `overrides` (PATCHes), so that a reload can take new config values without losing the
//! runtime changes made since. Rules:
//! - Ids start at 0 in config order (as nginx numbers peers) and are never reused.
//! - A reload matches each config line to a config server of the same configured address
//!   (duplicates in config order): it keeps its id and its overrides, except an override
//!   of a field whose config value the reload changes (the newer intent wins). Config
//!   servers no longer in the config disappear; new lines get fresh ids.
//! - Servers added through the API survive reloads (they are replicated state, where NGINX
//!   Plus loses them without a `state` file). A new config line whose address equals an
//!   API server's adopts it: one server, keeping its id, now owned by the config.
//! - A config server deleted through the API stays deleted across reloads for as long as
//!   the config keeps naming it (a tombstone per address); it comes back if the line is
//!   removed and re-added, or is POSTed again.
//! - POST of an address the group already has is refused with `EntryExists` (409, as NGINX
//!   documents from later API versions); so is a PATCH of `server` onto another server's
//!   address. Duplicate config lines are allowed, as in nginx.
//! - `backup` may be POSTed only if the group had a backup server in its configuration
//!   (nginx allocates the backup list only then); a reload recomputes it.
//! - A group holds at most `MAX_SERVERS_PER_UPSTREAM` servers through POST
//!   (`UpstreamOutOfMemory`); the config itself is never refused for its length.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::validate;
use crate::command::{Kind, ServerChanges, ServerSpec};
use crate::outcome::{Applied, ImmutableField, Origin, Rejected, ServerView};

/// Servers a group may reach through POST, standing in for nginx's upstream zone size:
/// bounded so that one client cannot grow the replicated state without limit, and large
/// enough for any group the data path balances well.
pub const MAX_SERVERS_PER_UPSTREAM: usize = 1024;

/// The API's changes to a server; `None` means "as in `base`".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Overrides {
    server: Option<String>,
    weight: Option<u32>,
    max_conns: Option<u32>,
    max_fails: Option<u32>,
    fail_timeout_ms: Option<u64>,
    slow_start_ms: Option<u64>,
    /// `Some(None)`: the route was removed.
    route: Option<Option<String>>,
    down: Option<bool>,
    drain: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Server {
    origin: Origin,
    base: ServerSpec,
    overrides: Overrides,
}

impl Server {
    fn effective(&self) -> ServerSpec {
        let (b, o) = (&self.base, &self.overrides);
        ServerSpec {
            server: o.server.clone().unwrap_or_else(|| b.server.clone()),
            service: b.service.clone(),
            weight: o.weight.unwrap_or(b.weight),
            max_conns: o.max_conns.unwrap_or(b.max_conns),
            max_fails: o.max_fails.unwrap_or(b.max_fails),
            fail_timeout_ms: o.fail_timeout_ms.unwrap_or(b.fail_timeout_ms),
            slow_start_ms: o.slow_start_ms.unwrap_or(b.slow_start_ms),
            route: o.route.clone().unwrap_or_else(|| b.route.clone()),
            backup: b.backup,
            down: o.down.unwrap_or(b.down),
            drain: o.drain.unwrap_or(b.drain),
        }
    }

    fn address(&self) -> &str {
        self.overrides
            .server
            .as_deref()
            .unwrap_or(&self.base.server)
    }

    /// Takes a new config line, dropping the overrides of the fields it changes.
    fn rebase(&mut self, new: ServerSpec) {
        let (b, o) = (&self.base, &mut self.overrides);
        if b.server != new.server {
            o.server = None;
        }
        if b.weight != new.weight {
            o.weight = None;
        }
        if b.max_conns != new.max_conns {
            o.max_conns = None;
        }
        if b.max_fails != new.max_fails {
            o.max_fails = None;
        }
        if b.fail_timeout_ms != new.fail_timeout_ms {
            o.fail_timeout_ms = None;
        }
        if b.slow_start_ms != new.slow_start_ms {
            o.slow_start_ms = None;
        }
        if b.route != new.route {
            o.route = None;
        }
        if b.down != new.down {
            o.down = None;
        }
        if b.drain != new.drain {
            o.drain = None;
        }
        self.base = new;
        self.origin = Origin::Config;
    }

    fn view(&self, id: u64) -> ServerView {
        ServerView {
            id,
            origin: self.origin,
            spec: self.effective(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Upstream {
    kind: Kind,
    backup_allowed: bool,
    next_id: u64,
    servers: BTreeMap<u64, Server>,
    /// Configured addresses deleted through the API, with how many lines each suppresses.
    tombstones: BTreeMap<String, u32>,
    /// Counts the changes to the effective server list: the data path rebuilds its group
    /// when this moves, and compares nothing else on its hot path.
    revision: u64,
}

/// Queue of ids per address, in id order: how lines are matched to servers.
fn ids_by<'a>(
    servers: impl Iterator<Item = (&'a u64, &'a Server)>,
    addr: impl Fn(&Server) -> &str,
) -> BTreeMap<String, VecDeque<u64>> {
    let mut m: BTreeMap<String, VecDeque<u64>> = BTreeMap::new();
    for (id, s) in servers {
        m.entry(addr(s).to_string()).or_default().push_back(*id);
    }
    m
}

impl Upstream {
    pub(crate) fn new(kind: Kind) -> Self {
        Upstream {
            kind,
            backup_allowed: false,
            next_id: 0,
            servers: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            revision: 0,
        }
    }

    /// Takes `backup`'s runtime state under this configuration (see `state::restore`):
    /// each server of this configuration takes the API changes (drain, down, weight...)
    /// that the backup's configured server at the same address had, or none; the servers
    /// added through the API are the backup's, with ids of this group. The backup's own
    /// configured servers are not taken: the data path never sends traffic to a server
    /// that this configuration does not name and nobody added here. The revision moves
    /// on, so every node's data path rebuilds the group.
    pub(crate) fn restore(&mut self, backup: Upstream) {
        let mut theirs: BTreeMap<&str, VecDeque<&Server>> = BTreeMap::new();
        for s in backup.servers.values() {
            if s.origin == Origin::Config {
                theirs
                    .entry(s.base.server.as_str())
                    .or_default()
                    .push_back(s);
            }
        }
        for s in self.servers.values_mut() {
            if s.origin == Origin::Config {
                s.overrides = theirs
                    .get_mut(s.base.server.as_str())
                    .and_then(VecDeque::pop_front)
                    .map(|b| b.overrides.clone())
                    .unwrap_or_default();
            }
        }
        self.servers.retain(|_, s| s.origin == Origin::Config);
        for s in backup.servers.into_values() {
            let taken = self.servers.values().any(|x| x.address() == s.address());
            if s.origin == Origin::Api && !taken {
                let id = self.fresh_id();
                self.servers.insert(id, s);
            }
        }
        self.backup_allowed |= self.servers.values().any(|s| s.base.backup);
        self.revision += 1;
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn configure(&mut self, specs: Vec<ServerSpec>) -> Result<Applied, Rejected> {
        let specs = specs
            .into_iter()
            .map(|s| validate::spec(self.kind, s))
            .collect::<Result<Vec<_>, _>>()?;
        let before = self.views();
        let mut slots: Vec<Option<u64>> = vec![None; specs.len()];

        let mut config = ids_by(
            self.servers
                .iter()
                .filter(|(_, s)| s.origin == Origin::Config),
            |s| &s.base.server,
        );
        for (slot, spec) in slots.iter_mut().zip(&specs) {
            *slot = config.get_mut(&spec.server).and_then(VecDeque::pop_front);
        }
        let mut api = ids_by(
            self.servers.iter().filter(|(_, s)| s.origin == Origin::Api),
            Server::address,
        );
        for (slot, spec) in slots.iter_mut().zip(&specs) {
            if slot.is_none() {
                *slot = api.get_mut(&spec.server).and_then(VecDeque::pop_front);
            }
        }
        let mut suppressed = vec![false; specs.len()];
        let mut tombstones: BTreeMap<String, u32> = BTreeMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let left = self.tombstones.get(&spec.server).copied().unwrap_or(0);
            let used = tombstones.entry(spec.server.clone()).or_insert(0);
            if slots[i].is_none() && *used < left {
                *used += 1;
                suppressed[i] = true;
            }
        }
        tombstones.retain(|_, n| *n > 0);
        self.tombstones = tombstones;

        let matched: BTreeSet<u64> = slots.iter().flatten().copied().collect();
        self.servers
            .retain(|id, s| s.origin == Origin::Api || matched.contains(id));
        self.backup_allowed = specs.iter().any(|s| s.backup);
        for ((spec, slot), hidden) in specs.into_iter().zip(slots).zip(suppressed) {
            match slot {
                Some(id) => {
                    if let Some(s) = self.servers.get_mut(&id) {
                        s.rebase(spec);
                    }
                }
                None if hidden => {}
                None => {
                    let id = self.fresh_id();
                    self.servers.insert(
                        id,
                        Server {
                            origin: Origin::Config,
                            base: spec,
                            overrides: Overrides::default(),
                        },
                    );
                }
            }
        }
        self.backup_allowed |= self.servers.values().any(|s| s.base.backup);
        let after = self.views();
        if after != before {
            self.revision += 1;
        }
        Ok(Applied::Servers(after))
    }

    fn check_unique(&self, addr: &str, except: Option<u64>) -> Result<(), Rejected> {
        let taken = self
            .servers
            .iter()
            .any(|(id, s)| Some(*id) != except && s.address() == addr);
        if taken {
            Err(Rejected::ServerExists {
                server: addr.to_string(),
            })
        } else {
            Ok(())
        }
    }

    pub(crate) fn add(&mut self, spec: ServerSpec) -> Result<Applied, Rejected> {
        let spec = validate::spec(self.kind, spec)?;
        if spec.backup && !self.backup_allowed {
            return Err(Rejected::NoBackup);
        }
        self.check_unique(&spec.server, None)?;
        if self.servers.len() >= MAX_SERVERS_PER_UPSTREAM {
            return Err(Rejected::UpstreamOutOfMemory);
        }
        let id = self.fresh_id();
        let s = Server {
            origin: Origin::Api,
            base: spec,
            overrides: Overrides::default(),
        };
        let view = s.view(id);
        self.servers.insert(id, s);
        self.revision += 1;
        Ok(Applied::Server(view))
    }

    pub(crate) fn patch(&mut self, id: u64, c: ServerChanges) -> Result<Applied, Rejected> {
        let Some(srv) = self.servers.get(&id) else {
            return Err(Rejected::ServerNotFound { id });
        };
        let eff = srv.effective();
        if c.id.is_some_and(|x| x != id) {
            return Err(Rejected::Immutable {
                field: ImmutableField::Id,
            });
        }
        if c.backup.is_some_and(|b| b != eff.backup) {
            return Err(Rejected::Immutable {
                field: ImmutableField::Backup,
            });
        }
        if let Some(svc) = &c.service {
            if svc.as_str() != eff.service.as_deref().unwrap_or("") {
                return Err(Rejected::Immutable {
                    field: ImmutableField::Service,
                });
            }
        }
        let server = match &c.server {
            Some(a) => {
                let a = validate::normalize_address(self.kind, a, eff.service.is_some())?;
                Some(a)
            }
            None => None,
        };
        if let Some(w) = c.weight {
            validate::check_weight(w)?;
        }
        if let Some(ms) = c.fail_timeout_ms {
            validate::check_fail_timeout(ms)?;
        }
        if let Some(ms) = c.slow_start_ms {
            validate::check_slow_start(ms)?;
        }
        let route = match c.route {
            Some(r) => Some(validate::check_route(self.kind, Some(r))?),
            None => None,
        };
        if let Some(d) = c.drain {
            validate::check_drain(self.kind, d)?;
        }
        if let Some(a) = &server {
            self.check_unique(a, Some(id))?;
        }

        let Some(srv) = self.servers.get_mut(&id) else {
            return Err(Rejected::ServerNotFound { id });
        };
        let o = &mut srv.overrides;
        o.server = server.or(o.server.take());
        o.weight = c.weight.or(o.weight);
        o.max_conns = c.max_conns.or(o.max_conns);
        o.max_fails = c.max_fails.or(o.max_fails);
        o.fail_timeout_ms = c.fail_timeout_ms.or(o.fail_timeout_ms);
        o.slow_start_ms = c.slow_start_ms.or(o.slow_start_ms);
        o.route = route.or(o.route.take());
        o.down = c.down.or(o.down);
        o.drain = c.drain.or(o.drain);
        let view = srv.view(id);
        self.revision += 1;
        Ok(Applied::Server(view))
    }

    pub(crate) fn remove(&mut self, id: u64) -> Result<Applied, Rejected> {
        let Some(s) = self.servers.remove(&id) else {
            return Err(Rejected::ServerNotFound { id });
        };
        if s.origin == Origin::Config {
            *self.tombstones.entry(s.base.server).or_insert(0) += 1;
        }
        self.revision += 1;
        Ok(Applied::Servers(self.views()))
    }

    pub(crate) fn views(&self) -> Vec<ServerView> {
        self.servers.iter().map(|(id, s)| s.view(*id)).collect()
    }

    pub(crate) fn view(&self, id: u64) -> Option<ServerView> {
        self.servers.get(&id).map(|s| s.view(id))
    }
}
