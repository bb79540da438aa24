//! Variables, as nginx has them: named at configuration time, computed lazily during a
//! request, at most once, then cached for the rest of that request.
//!
//! A configuration names a variable (`$host`, `$arg_id`, `$my_map`) and gets a [`VarId`].
//! What computes it is a [`VarKind`]: a built-in getter, a prefix getter (`$http_*`), a
//! slot written by `set`, or a [`DynVar`] registered by a module (`map` today; `keyval`,
//! JWT claims and `js_set` later), so new sources are added by registering them here, not
//! by editing the request code.

pub mod http;
pub mod map;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::http::req::Req;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VarId(pub u32);

/// A getter for one built-in variable.
pub type Getter = fn(&mut Req) -> Option<String>;
/// A getter for a family of variables sharing a prefix; receives the part after it.
pub type PrefixGetter = fn(&mut Req, &str) -> Option<String>;
/// A writer for the few built-ins that `set` may change (`$args`).
pub type Setter = fn(&mut Req, String);

/// A source of built-in variables: given a name, the kind that computes it, if the
/// source knows the name. Modules add their families (`$jwt_claim_*`, ...) as a line in
/// [`PROVIDERS`], the way directives are rows in the directive table.
pub type Provider = fn(&str) -> Option<VarKind>;

/// Every source of built-in variables, asked in order.
pub static PROVIDERS: &[Provider] = &[http::builtin, crate::jwt::claims::provider];

fn provided(name: &str) -> Option<VarKind> {
    PROVIDERS.iter().find_map(|p| p(name))
}

/// A variable computed by a module from the request (map, keyval, claims, js_set).
pub trait DynVar: Send + Sync + fmt::Debug {
    fn get(&self, req: &mut Req) -> Option<String>;
}

#[derive(Clone)]
pub enum VarKind {
    Builtin {
        get: Getter,
        /// `false` for values that change during a request (`$uri`, `$status`, timings).
        cache: bool,
        set: Option<Setter>,
    },
    Prefix {
        get: PrefixGetter,
        suffix: Box<str>,
        cache: bool,
    },
    /// Written by `set` or by a named regex capture; empty until then.
    Set,
    Dyn(Arc<dyn DynVar>),
}

impl fmt::Debug for VarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarKind::Builtin { .. } => f.write_str("Builtin"),
            VarKind::Prefix { suffix, .. } => write!(f, "Prefix({suffix})"),
            VarKind::Set => f.write_str("Set"),
            VarKind::Dyn(d) => write!(f, "Dyn({d:?})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VarDef {
    pub name: String,
    pub kind: VarKind,
}

/// Built while a configuration is read; frozen into a [`VarTable`] when it is complete.
#[derive(Debug, Default)]
pub struct Registry {
    defs: Vec<VarDef>,
    by_name: HashMap<String, VarId>,
    /// Names used but not (yet) defined, with where they were first used; a variable that
    /// is never defined by the end of the configuration is an error, as in nginx.
    pending: HashMap<String, String>,
}

impl Registry {
    /// Looks a name up, resolving built-ins and prefixes on first use. `at` (FILE:LINE) is
    /// kept for the "unknown variable" error if nothing ever defines the name.
    pub fn lookup(&mut self, name: &str, at: &str) -> VarId {
        if let Some(id) = self.by_name.get(name) {
            return *id;
        }
        let kind = provided(name);
        let pending = kind.is_none();
        let id = self.push(name, kind.unwrap_or(VarKind::Set));
        if pending {
            self.pending.insert(name.to_string(), at.to_string());
        }
        id
    }

    /// Defines (or redefines a pending) user variable, e.g. the target of `set`.
    /// Returns `Err` when the name is a built-in that cannot be written.
    pub fn define_set(&mut self, name: &str) -> Result<VarId, String> {
        if let Some(&id) = self.by_name.get(name) {
            self.pending.remove(name);
            return match &self.defs[id.0 as usize].kind {
                VarKind::Set => Ok(id),
                VarKind::Builtin { set: Some(_), .. } => Ok(id),
                VarKind::Dyn(_) => Err(format!("the duplicate \"{name}\" variable")),
                _ => Err(format!("the \"{name}\" variable cannot be set")),
            };
        }
        if let Some(kind) = provided(name) {
            let writable = matches!(kind, VarKind::Builtin { set: Some(_), .. });
            let id = self.push(name, kind);
            return if writable {
                Ok(id)
            } else {
                Err(format!("the \"{name}\" variable cannot be set"))
            };
        }
        Ok(self.push(name, VarKind::Set))
    }

    /// Defines a module variable (map, keyval, claim set, js_set). A second definition of
    /// the same name is an error, as nginx reports for two `map`s with one target.
    pub fn define_dyn(&mut self, name: &str, var: Arc<dyn DynVar>) -> Result<VarId, String> {
        if let Some(&id) = self.by_name.get(name) {
            if self.pending.remove(name).is_some() {
                self.defs[id.0 as usize].kind = VarKind::Dyn(var);
                return Ok(id);
            }
            return Err(format!("the duplicate \"{name}\" variable"));
        }
        if provided(name).is_some() {
            return Err(format!("the duplicate \"{name}\" variable"));
        }
        Ok(self.push(name, VarKind::Dyn(var)))
    }

    fn push(&mut self, name: &str, kind: VarKind) -> VarId {
        let id = VarId(self.defs.len() as u32);
        self.defs.push(VarDef {
            name: name.to_string(),
            kind,
        });
        self.by_name.insert(name.to_string(), id);
        id
    }

    /// Every variable used but never defined, as `FILE:LINE: unknown "name" variable`.
    pub fn undefined(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pending
            .iter()
            .map(|(name, at)| format!("{at}: unknown \"{name}\" variable"))
            .collect();
        v.sort();
        v
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.iter().map(|d| d.name.as_str())
    }

    pub fn freeze(self) -> VarTable {
        VarTable {
            defs: self.defs,
            by_name: self.by_name,
        }
    }
}

/// The variables of one configuration generation; shared by all its requests.
#[derive(Debug, Default)]
pub struct VarTable {
    pub defs: Vec<VarDef>,
    by_name: HashMap<String, VarId>,
}

impl VarTable {
    pub fn id(&self, name: &str) -> Option<VarId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

/// Per-request storage: one slot per variable of the configuration.
#[derive(Debug, Clone)]
pub enum Slot {
    Unset,
    /// Being computed: a variable that needs itself (a map of itself) reads as empty
    /// instead of recursing forever, as nginx reports "cycle while evaluating variable".
    Busy,
    Val(Option<String>),
}

/// One piece of a value with variables in it.
#[derive(Debug, Clone)]
pub enum Segment {
    Lit(String),
    Var(VarId),
    /// `$1`..`$9`: the last regex match of this request.
    Capture(usize),
}

/// A configuration value that may contain variables (nginx's "complex value").
#[derive(Debug, Clone, Default)]
pub struct Template {
    pub segs: Vec<Segment>,
    pub raw: String,
}

impl Template {
    /// Parses `text`, naming every `$var`/`${var}` in `reg`. `at` is FILE:LINE for errors.
    pub fn parse(text: &str, reg: &mut Registry, at: &str) -> Result<Template, String> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                let start = i;
                while i < b.len() && b[i] != b'$' {
                    i += 1;
                }
                lit.push_str(&text[start..i]);
                continue;
            }
            i += 1;
            let braced = b.get(i) == Some(&b'{');
            if braced {
                i += 1;
            }
            let start = i;
            if !braced && b.get(i).is_some_and(u8::is_ascii_digit) {
                // `$1` takes one digit: `$10` is capture 1 then "0", as in nginx.
                i += 1;
            } else {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            let name = &text[start..i];
            if braced {
                if b.get(i) != Some(&b'}') {
                    return Err(format!(
                        "the closing bracket in \"{name}\" variable is missing"
                    ));
                }
                i += 1;
            }
            if name.is_empty() {
                return Err(format!("invalid variable name in \"{text}\""));
            }
            if !lit.is_empty() {
                segs.push(Segment::Lit(std::mem::take(&mut lit)));
            }
            if name.bytes().all(|c| c.is_ascii_digit()) {
                let n: usize = name
                    .parse()
                    .map_err(|_| format!("invalid capture \"${name}\""))?;
                segs.push(Segment::Capture(n));
            } else {
                segs.push(Segment::Var(reg.lookup(name, at)));
            }
        }
        if !lit.is_empty() {
            segs.push(Segment::Lit(lit));
        }
        Ok(Template {
            segs,
            raw: text.to_string(),
        })
    }

    /// A value without variables, known at configuration time.
    pub fn literal(text: &str) -> Template {
        Template {
            segs: if text.is_empty() {
                Vec::new()
            } else {
                vec![Segment::Lit(text.to_string())]
            },
            raw: text.to_string(),
        }
    }

    pub fn as_literal(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [] => Some(""),
            [Segment::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn has_captures(&self) -> bool {
        self.segs.iter().any(|s| matches!(s, Segment::Capture(_)))
    }

    pub fn eval(&self, req: &mut Req) -> String {
        if let Some(s) = self.as_literal() {
            return s.to_string();
        }
        let mut out = String::new();
        self.eval_into(req, &mut out);
        out
    }

    pub fn eval_into(&self, req: &mut Req, out: &mut String) {
        for seg in &self.segs {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Var(id) => req.append_var(*id, out),
                Segment::Capture(n) => {
                    if let Some(c) = req.captures.get(*n).and_then(|c| c.as_deref()) {
                        out.push_str(c);
                    }
                }
            }
        }
    }
}

/// nginx's truth of a variable in `if ($var)`: empty and "0" are false.
pub fn truthy(v: &str) -> bool {
    !(v.is_empty() || v == "0")
}
