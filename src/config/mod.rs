//! Configuration: nginx syntax in, a checked, compiled [`Config`] out.
//!
//! Reading happens in three steps, each of which keeps going after a problem so that
//! every error is reported at once (as `FILE:LINE: message`) before any port is bound:
//!
//! 1. [`parse`] turns text into a tree of directives, expanding `include`;
//! 2. [`walk`] checks every directive against the table of [`Spec`]s (name, contexts,
//!    argument count, block or not) and hands it to its handler, which fills the build
//!    structures of its context;
//! 3. the http builder compiles what was collected (location trees, upstream groups,
//!    variables) and reports cross-references (unknown upstream, undefined variable).
//!
//! New directives are new rows in a table (`main::DIRECTIVES`, `crate::http::directives`,
//! `crate::upstream::directives`, ...); the parser and walker do not change.

pub mod cluster;
pub mod main;
pub mod parse;
pub mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use parse::{Directive, Word};

use crate::http::access_log::{LogFile, LogFormat};
use crate::http::build::{HttpBuild, IfBuild, LocationBuild, ServerBuild};
use crate::http::HttpConf;
use crate::upstream::build::UpstreamBuild;
use crate::vars::Registry;
use main::MainConf;

/// Errors and warnings collected while reading a configuration.
#[derive(Debug, Default)]
pub struct Diagnostics {
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Diagnostics {
    pub fn error(&mut self, file: &str, line: u32, msg: &str) {
        self.errors.push(format!("{file}:{line}: {msg}"));
    }

    pub fn error_at(&mut self, d: &Directive, msg: &str) {
        self.error(&d.file, d.line, msg);
    }

    /// An error that belongs to no line (a file that cannot be opened at all).
    pub fn error_plain(&mut self, msg: String) {
        self.errors.push(msg);
    }

    /// A warning with its FILE:LINE already in `msg`.
    pub fn warn_plain(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    pub fn warn_at(&mut self, d: &Directive, msg: &str) {
        self.warnings
            .push(format!("{}:{}: {}", d.file, d.line, msg));
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Contexts a directive may appear in (bit set).
pub mod ctx {
    pub const MAIN: u32 = 1;
    pub const EVENTS: u32 = 1 << 1;
    pub const HTTP: u32 = 1 << 2;
    pub const SERVER: u32 = 1 << 3;
    pub const LOCATION: u32 = 1 << 4;
    /// `if` inside `server`.
    pub const SIF: u32 = 1 << 5;
    /// `if` inside `location`.
    pub const LIF: u32 = 1 << 6;
    pub const UPSTREAM: u32 = 1 << 7;
    /// `cluster { }` in the main context.
    pub const CLUSTER: u32 = 1 << 8;
    /// The `stream {}` block.
    pub const STREAM: u32 = 1 << 9;
    /// The levels whose settings are inherited downwards.
    pub const HTTP_ANY: u32 = HTTP | SERVER | LOCATION;
    pub const SCRIPT: u32 = SERVER | LOCATION | SIF | LIF;
}

#[derive(Debug, Clone, Copy)]
pub enum Args {
    Exactly(usize),
    Between(usize, usize),
    AtLeast(usize),
}

impl Args {
    fn accepts(self, n: usize) -> bool {
        match self {
            Args::Exactly(k) => n == k,
            Args::Between(a, b) => (a..=b).contains(&n),
            Args::AtLeast(a) => n >= a,
        }
    }
}

/// What a directive does, by the kind of structure it writes into.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Accepted so that real nginx files load; has no effect here.
    Ignore,
    /// Accepted with a warning explaining why it has no effect.
    Warn(&'static str),
    Main(fn(&mut Cx, &mut MainConf, &Directive) -> Result<(), String>),
    /// Inheritable settings of http, server, location and `if`-in-location levels.
    Level(fn(&mut Cx, &mut crate::http::LocConf, &Directive) -> Result<(), String>),
    /// Rewrite-module statements (`set`, `return`, `rewrite`, `break`), kept in order.
    Script(fn(&mut Cx, &mut crate::http::rewrite::Script, &Directive) -> Result<(), String>),
    Http(fn(&mut Cx, &mut HttpBuild, &Directive) -> Result<(), String>),
    Server(fn(&mut Cx, &mut ServerBuild, &Directive) -> Result<(), String>),
    Upstream(fn(&mut Cx, &mut UpstreamBuild, &Directive) -> Result<(), String>),
    Cluster(fn(&mut Cx, &mut cluster::ClusterConf, &Directive) -> Result<(), String>),
    /// Block directives and anything that needs the whole enclosing frame.
    Frame(fn(&mut Cx, &mut Frame<'_>, &Directive) -> Result<(), String>),
}

/// One row of the directive table.
#[derive(Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub contexts: u32,
    pub args: Args,
    pub block: bool,
    pub handler: Handler,
}

/// Every directive raftgate knows, from every module's table.
pub fn table() -> impl Iterator<Item = &'static Spec> {
    main::DIRECTIVES
        .iter()
        .chain(cluster::DIRECTIVES.iter())
        .chain(crate::http::directives::DIRECTIVES.iter())
        .chain(crate::http::rewrite::DIRECTIVES.iter())
        .chain(crate::upstream::build::DIRECTIVES.iter())
        .chain(crate::keyval::DIRECTIVES.iter())
        .chain(crate::stream::DIRECTIVES.iter())
        .chain(crate::jwt::conf::DIRECTIVES.iter())
}

/// The row for `name` in the context `ctx`; `Err(true)` when the name exists but not
/// there, `Err(false)` when nothing has that name. (Names can repeat across contexts:
/// `server` is a block in `http` and a line in `upstream`.)
fn find_spec(name: &str, ctx: u32) -> Result<&'static Spec, bool> {
    let mut known = false;
    for s in table().filter(|s| s.name == name) {
        known = true;
        if s.contexts & ctx != 0 {
            return Ok(s);
        }
    }
    Err(known)
}

/// Compiles a configuration regex, with a one-line message on failure.
pub fn regex(pattern: &str, caseless: bool) -> Result<regex::Regex, String> {
    let full = if caseless {
        format!("(?i){pattern}")
    } else {
        pattern.to_string()
    };
    regex::Regex::new(&full).map_err(|e| {
        let text = e.to_string();
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ")
            .to_string();
        format!("invalid regex \"{pattern}\": {why}")
    })
}

/// The structure being filled by the directives of one block.
pub enum Frame<'a> {
    Main(&'a mut MainConf),
    Events,
    Http(&'a mut HttpBuild),
    Server(&'a mut ServerBuild),
    Location(&'a mut LocationBuild),
    If(&'a mut IfBuild),
    Upstream(&'a mut UpstreamBuild),
    Cluster(&'a mut cluster::ClusterConf),
    Stream(&'a mut crate::stream::StreamConf),
}

impl Frame<'_> {
    fn ctx(&self) -> u32 {
        match self {
            Frame::Main(_) => ctx::MAIN,
            Frame::Events => ctx::EVENTS,
            Frame::Stream(_) => ctx::STREAM,
            Frame::Http(_) => ctx::HTTP,
            Frame::Server(_) => ctx::SERVER,
            Frame::Location(_) => ctx::LOCATION,
            Frame::If(i) if i.in_location => ctx::LIF,
            Frame::If(_) => ctx::SIF,
            Frame::Upstream(_) => ctx::UPSTREAM,
            Frame::Cluster(_) => ctx::CLUSTER,
        }
    }
}

/// What every handler may use while a configuration is read.
pub struct Cx {
    pub diags: Diagnostics,
    pub vars: Registry,
    /// Relative paths (`root`, logs, `include`) resolve against this directory.
    pub prefix: PathBuf,
    /// `log_format`s by name; `access_log` refers to earlier ones, as in nginx.
    pub log_formats: HashMap<String, Arc<LogFormat>>,
    /// Access log files by path, so two `access_log`s of one file share a writer.
    pub log_files: HashMap<PathBuf, Arc<LogFile>>,
    /// Upstream groups named by `proxy_pass`, with where: resolved when the http block
    /// is complete (an `upstream` may be defined after the server that uses it).
    pub upstream_refs: Vec<(String, String)>,
    /// Every `proxy_pass` to a fixed group, linked to its group when the block is done.
    pub proxy_passes: Vec<Arc<crate::http::proxy::ProxyPass>>,
}

impl Cx {
    pub fn new(prefix: PathBuf) -> Self {
        Cx {
            diags: Diagnostics::default(),
            vars: Registry::default(),
            prefix,
            log_formats: HashMap::new(),
            log_files: HashMap::new(),
            upstream_refs: Vec::new(),
            proxy_passes: Vec::new(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.prefix.join(path)
        }
    }

    /// Compiles a regex and defines a variable for each named group, so `$name` works
    /// after a match, as in nginx.
    pub fn regex(&mut self, pattern: &str, caseless: bool) -> Result<regex::Regex, String> {
        let rx = regex(pattern, caseless)?;
        for name in rx.capture_names().flatten() {
            self.vars.define_set(name)?;
        }
        Ok(rx)
    }

    /// Parses a value with variables; reports and returns `None` on error.
    pub fn template(&mut self, d: &Directive, text: &str) -> Option<crate::vars::Template> {
        match crate::vars::Template::parse(text, &mut self.vars, &d.at()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.diags.error_at(d, &e);
                None
            }
        }
    }
}

/// Checks and dispatches every directive of a block.
pub fn walk(cx: &mut Cx, frame: &mut Frame<'_>, list: &[Directive]) {
    for d in list {
        let spec = match find_spec(&d.name, frame.ctx()) {
            Ok(s) => s,
            Err(false) => {
                cx.diags
                    .error_at(d, &format!("unknown directive \"{}\"", d.name));
                continue;
            }
            Err(true) => {
                cx.diags
                    .error_at(d, &format!("\"{}\" directive is not allowed here", d.name));
                continue;
            }
        };
        if !spec.args.accepts(d.args.len()) {
            cx.diags.error_at(
                d,
                &format!("invalid number of arguments in \"{}\" directive", d.name),
            );
            continue;
        }
        match (spec.block, d.block.is_some()) {
            (true, false) => {
                cx.diags.error_at(
                    d,
                    &format!("directive \"{}\" has no opening \"{{\"", d.name),
                );
                continue;
            }
            (false, true) => {
                cx.diags.error_at(
                    d,
                    &format!("directive \"{}\" is not terminated by \";\"", d.name),
                );
                continue;
            }
            _ => {}
        }
        let result = dispatch(cx, frame, spec.handler, d);
        if let Err(msg) = result {
            cx.diags.error_at(d, &msg);
        }
    }
}

fn dispatch(cx: &mut Cx, frame: &mut Frame<'_>, h: Handler, d: &Directive) -> Result<(), String> {
    match h {
        Handler::Ignore => Ok(()),
        Handler::Warn(why) => {
            cx.diags
                .warn_at(d, &format!("\"{}\" directive {}", d.name, why));
            Ok(())
        }
        Handler::Frame(f) => f(cx, frame, d),
        Handler::Main(f) => match frame {
            Frame::Main(m) => f(cx, m, d),
            _ => Err(misplaced(d)),
        },
        Handler::Http(f) => match frame {
            Frame::Http(h) => f(cx, h, d),
            _ => Err(misplaced(d)),
        },
        Handler::Server(f) => match frame {
            Frame::Server(s) => f(cx, s, d),
            _ => Err(misplaced(d)),
        },
        Handler::Upstream(f) => match frame {
            Frame::Upstream(u) => f(cx, u, d),
            _ => Err(misplaced(d)),
        },
        Handler::Cluster(f) => match frame {
            Frame::Cluster(c) => f(cx, c, d),
            _ => Err(misplaced(d)),
        },
        Handler::Level(f) => match frame {
            Frame::Http(h) => f(cx, &mut h.loc, d),
            Frame::Server(s) => f(cx, &mut s.loc, d),
            Frame::Location(l) => f(cx, &mut l.loc, d),
            Frame::If(i) => f(cx, &mut i.loc, d),
            _ => Err(misplaced(d)),
        },
        Handler::Script(f) => match frame {
            Frame::Server(s) => f(cx, &mut s.script, d),
            Frame::Location(l) => f(cx, &mut l.script, d),
            Frame::If(i) => f(cx, &mut i.script, d),
            _ => Err(misplaced(d)),
        },
    }
}

fn misplaced(d: &Directive) -> String {
    format!("\"{}\" directive is not allowed here", d.name)
}

/// A complete, checked configuration: what one generation of the server runs on.
#[derive(Debug)]
pub struct Config {
    pub main: MainConf,
    pub http: Option<Arc<HttpConf>>,
    /// The `stream {}` block, when there is one.
    pub stream: Option<Arc<crate::stream::StreamConf>>,
    /// The file it was read from (reload reads it again).
    pub path: PathBuf,
    pub warnings: Vec<String>,
}

impl Config {
    /// Every `keyval_zone` declaration, http and stream: what a node proposes to the
    /// cluster when this configuration loads.
    pub fn keyval_zones(&self) -> Vec<crate::keyval::ZoneDecl> {
        let http = self.http.iter().flat_map(|h| h.keyval_zones.iter());
        let stream = self.stream.iter().flat_map(|s| s.keyval_zones.iter());
        http.chain(stream).cloned().collect()
    }

    /// The commands that make the replicated state match this configuration: its keyval
    /// zones, its sticky-learn zones, then its zone-backed upstream groups (sorted by name, so every node proposes
    /// them in the same order).
    pub fn cluster_commands(&self) -> Vec<raftgate_raft::Entry> {
        use crate::upstream::sticky::Sticky;
        let mut entries = crate::keyval::configure_commands(&self.keyval_zones());
        if let Some(h) = &self.http {
            let mut names: Vec<&String> = h.upstreams.keys().collect();
            names.sort();
            for n in &names {
                if let Some(Sticky::Learn(l)) = &h.upstreams[*n].conf().sticky {
                    entries.push(raftgate_raft::Entry::Command(
                        raftgate_raft::Command::ConfigureStickyZone {
                            zone: l.zone.clone(),
                            capacity_bytes: l.size,
                            timeout_ms: l.timeout_ms,
                        },
                    ));
                }
            }
            entries.extend(
                names
                    .into_iter()
                    .filter_map(|n| h.upstreams[n].configure_command()),
            );
        }
        entries
    }
}

/// Reads and checks a configuration file. `Err` holds every error found.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("open() \"{}\" failed: {}", path.display(), e)])?;
    let prefix = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(&text, &path.display().to_string(), prefix)
}

/// Reads and checks configuration text as if it came from the file `name`.
pub fn load_str(text: &str, name: &str, prefix: PathBuf) -> Result<Config, Vec<String>> {
    let mut cx = Cx::new(prefix.clone());
    let tree = parse::Parser::new(prefix, &mut cx.diags).parse_str(text, name);
    let mut main = MainConf::default();
    walk(&mut cx, &mut Frame::Main(&mut main), &tree);
    let mut http = main
        .http
        .take()
        .and_then(|build| crate::http::build::finish(&mut cx, *build));
    for e in cx.vars.undefined() {
        cx.diags.error_plain(e);
    }
    if cx.diags.has_errors() {
        return Err(cx.diags.errors().to_vec());
    }
    let table = Arc::new(std::mem::take(&mut cx.vars).freeze());
    let stream = main.stream.take().map(Arc::new);
    if let Some(h) = http.as_mut() {
        h.vars = table;
        h.stream_configured = stream.is_some();
    }
    Ok(Config {
        main,
        http: http.map(Arc::new),
        stream,
        path: PathBuf::from(name),
        warnings: cx.diags.warnings().to_vec(),
    })
}
