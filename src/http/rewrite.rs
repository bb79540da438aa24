//! The rewrite module: `set`, `if`, `return`, `rewrite` and `break`, compiled into a
//! script per server and per location and run in order, as nginx's rewrite phases do.

use std::sync::Arc;

use regex::Regex;

use super::build::IfBuild;
use super::req::{Captured, Req};
use super::LocConf;
use crate::config::{ctx, walk, Args, Cx, Directive, Frame, Handler, Spec};
use crate::vars::{truthy, Template, VarId};

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "set", contexts: ctx::SCRIPT, args: Args::Exactly(2), block: false, handler: Handler::Script(set) },
    Spec { name: "return", contexts: ctx::SCRIPT, args: Args::Between(1, 2), block: false, handler: Handler::Script(ret) },
    Spec { name: "rewrite", contexts: ctx::SCRIPT, args: Args::Between(2, 3), block: false, handler: Handler::Script(rewrite) },
    Spec { name: "break", contexts: ctx::SCRIPT, args: Args::Exactly(0), block: false, handler: Handler::Script(brk) },
    Spec { name: "if", contexts: ctx::SERVER | ctx::LOCATION, args: Args::AtLeast(1), block: true, handler: Handler::Frame(if_block) },
];

#[derive(Debug, Default)]
pub struct Script {
    pub ops: Vec<Op>,
}

impl Script {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[derive(Debug)]
pub enum Op {
    Set(VarId, Template),
    If(Box<IfOp>),
    Return(Return),
    Rewrite(Box<RewriteOp>),
    Break,
}

#[derive(Debug)]
pub struct IfOp {
    pub cond: Cond,
    pub script: Script,
    /// In a location, a matching `if` switches the request to this configuration
    /// (merged from the location's own by `build::merge_ifs`).
    pub conf: Option<Arc<LocConf>>,
}

#[derive(Debug)]
pub enum Cond {
    Truth(Template),
    Eq(Template, Template, bool),
    Match(Template, Regex, bool),
    File(Template, FileTest, bool),
}

#[derive(Debug, Clone, Copy)]
pub enum FileTest {
    File,
    Dir,
    Exists,
    Exec,
}

#[derive(Debug, Clone)]
pub struct Return {
    pub status: u16,
    /// A body for most codes; the `Location` for redirect codes.
    pub text: Option<Template>,
}

#[derive(Debug)]
pub struct RewriteOp {
    pub regex: Regex,
    pub replacement: Template,
    pub flag: Flag,
    /// The replacement (before variables) has a `?`: new arguments replace the old ones.
    pub has_args: bool,
    /// It ends with `?`: the old arguments are dropped.
    pub drop_args: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    None,
    Last,
    Break,
    Redirect,
    Permanent,
}

/// How a script run ended.
#[derive(Debug)]
pub enum Flow {
    /// Ran to the end; `uri_changed` asks for a new location search.
    Done { uri_changed: bool },
    /// `break` (or `rewrite ... break`): stop the scripts, stay in this location.
    Break { uri_changed: bool },
    /// `rewrite ... last`: search locations again with the new URI.
    Last,
    /// `return` or a redirecting `rewrite`: answer now.
    Respond { status: u16, text: Option<String> },
}

fn set(cx: &mut Cx, s: &mut Script, d: &Directive) -> Result<(), String> {
    let name = d
        .arg(0)
        .strip_prefix('$')
        .ok_or_else(|| format!("invalid variable name \"{}\"", d.arg(0)))?;
    let id = cx.vars.define_set(name)?;
    let value = cx.template(d, d.arg(1)).ok_or("")?;
    s.ops.push(Op::Set(id, value));
    Ok(())
}

fn ret(cx: &mut Cx, s: &mut Script, d: &Directive) -> Result<(), String> {
    let first = d.arg(0);
    let (status, text) = match first.parse::<u16>() {
        Ok(code) => {
            if code > 999 {
                return Err(format!("invalid return code \"{first}\""));
            }
            (code, d.args.get(1).map(|w| w.value.clone()))
        }
        Err(_) if d.args.len() == 1 && is_url(first) => (302, Some(first.to_string())),
        Err(_) => return Err(format!("invalid return code \"{first}\"")),
    };
    let text = match text {
        Some(t) => Some(cx.template(d, &t).ok_or("")?),
        None => None,
    };
    s.ops.push(Op::Return(Return { status, text }));
    Ok(())
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("$scheme")
}

fn rewrite(cx: &mut Cx, s: &mut Script, d: &Directive) -> Result<(), String> {
    let regex = cx.regex(d.arg(0), false)?;
    let raw = d.arg(1);
    let mut flag = match d.args.get(2).map(|w| w.value.as_str()) {
        None => Flag::None,
        Some("last") => Flag::Last,
        Some("break") => Flag::Break,
        Some("redirect") => Flag::Redirect,
        Some("permanent") => Flag::Permanent,
        Some(other) => return Err(format!("invalid parameter \"{other}\"")),
    };
    if is_url(raw) && matches!(flag, Flag::None | Flag::Last | Flag::Break) {
        flag = Flag::Redirect;
    }
    let replacement = cx.template(d, raw).ok_or("")?;
    s.ops.push(Op::Rewrite(Box::new(RewriteOp {
        regex,
        replacement,
        flag,
        has_args: raw.contains('?'),
        drop_args: raw.ends_with('?'),
    })));
    Ok(())
}

fn brk(_: &mut Cx, s: &mut Script, _: &Directive) -> Result<(), String> {
    s.ops.push(Op::Break);
    Ok(())
}

fn if_block(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let cond = parse_cond(cx, d)?;
    let in_location = matches!(
        frame,
        Frame::Location(_)
            | Frame::If(IfBuild {
                in_location: true,
                ..
            })
    );
    let mut ib = IfBuild {
        cond: Some(cond),
        in_location,
        ..Default::default()
    };
    walk(
        cx,
        &mut Frame::If(&mut ib),
        d.block.as_deref().unwrap_or_default(),
    );
    let script = match frame {
        Frame::Server(s) => &mut s.script,
        Frame::Location(l) => &mut l.script,
        _ => return Err("\"if\" directive is not allowed here".into()),
    };
    script.ops.push(Op::If(Box::new(IfOp {
        cond: ib.cond.take().ok_or("missing condition")?,
        script: std::mem::take(&mut ib.script),
        // Merged with the enclosing location once that location is complete.
        conf: in_location.then(|| Arc::new(std::mem::take(&mut ib.loc))),
    })));
    Ok(())
}

fn parse_cond(cx: &mut Cx, d: &Directive) -> Result<Cond, String> {
    let mut words: Vec<String> = d.args.iter().map(|w| w.value.clone()).collect();
    let first = words.first_mut().ok_or("invalid condition")?;
    *first = first
        .strip_prefix('(')
        .ok_or_else(|| format!("invalid condition \"{first}\""))?
        .to_string();
    let last = words.last_mut().ok_or("invalid condition")?;
    *last = last
        .strip_suffix(')')
        .ok_or_else(|| format!("invalid condition \"{last}\""))?
        .to_string();
    if words.first().is_some_and(|w| w.is_empty()) {
        words.remove(0);
    }
    if words.last().is_some_and(|w| w.is_empty()) {
        words.pop();
    }
    let bad = || {
        format!(
            "invalid condition \"{}\"",
            d.args
                .iter()
                .map(|w| w.value.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    match words.as_slice() {
        [v] if v.starts_with('$') => Ok(Cond::Truth(cx.template(d, v).ok_or("")?)),
        [op, path] if op.trim_start_matches('!').starts_with('-') => {
            let neg = op.starts_with('!');
            let test = match op.trim_start_matches('!') {
                "-f" => FileTest::File,
                "-d" => FileTest::Dir,
                "-e" => FileTest::Exists,
                "-x" => FileTest::Exec,
                _ => return Err(bad()),
            };
            Ok(Cond::File(cx.template(d, path).ok_or("")?, test, neg))
        }
        [v, op, arg] if v.starts_with('$') => {
            let left = cx.template(d, v).ok_or("")?;
            match op.as_str() {
                "=" | "!=" => Ok(Cond::Eq(left, cx.template(d, arg).ok_or("")?, op == "!=")),
                "~" | "~*" | "!~" | "!~*" => {
                    let ci = op.ends_with('*');
                    let rx = cx.regex(arg, ci)?;
                    Ok(Cond::Match(left, rx, op.starts_with('!')))
                }
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// Runs a script. `conf` is switched when an `if` in a location matches.
pub fn run(script: &Script, req: &mut Req, conf: &mut Arc<LocConf>) -> Flow {
    let mut uri_changed = false;
    match run_ops(&script.ops, req, conf, &mut uri_changed) {
        Some(Flow::Break { .. }) => Flow::Break { uri_changed },
        Some(flow) => flow,
        None => Flow::Done { uri_changed },
    }
}

fn run_ops(
    ops: &[Op],
    req: &mut Req,
    conf: &mut Arc<LocConf>,
    uri_changed: &mut bool,
) -> Option<Flow> {
    for op in ops {
        match op {
            Op::Set(id, t) => {
                let v = t.eval(req);
                req.set_var(*id, v);
            }
            Op::Break => return Some(Flow::Break { uri_changed: false }),
            Op::Return(r) => {
                return Some(Flow::Respond {
                    status: r.status,
                    text: r.text.as_ref().map(|t| t.eval(req)),
                })
            }
            Op::If(i) => {
                if eval_cond(&i.cond, req) {
                    if let Some(c) = &i.conf {
                        *conf = c.clone();
                    }
                    if let Some(flow) = run_ops(&i.script.ops, req, conf, uri_changed) {
                        return Some(flow);
                    }
                }
            }
            Op::Rewrite(rw) => {
                if let Some(flow) = apply_rewrite(rw, req, uri_changed) {
                    return Some(flow);
                }
            }
        }
    }
    None
}

fn apply_rewrite(rw: &RewriteOp, req: &mut Req, uri_changed: &mut bool) -> Option<Flow> {
    let uri = req.uri.clone();
    let caps = rw.regex.captures(&uri)?;
    req.set_captures(Captured::new(&rw.regex, &caps));
    let value = rw.replacement.eval(req);
    let (path, new_args) = match value.split_once('?') {
        Some((p, a)) => (p.to_string(), Some(a.to_string())),
        None => (value.clone(), None),
    };
    let args = if rw.has_args {
        match (
            new_args.filter(|a| !a.is_empty()),
            req.args.as_ref().filter(|_| !rw.drop_args),
        ) {
            (Some(n), Some(old)) => Some(format!("{n}&{old}")),
            (Some(n), None) => Some(n),
            (None, Some(old)) => Some(old.clone()),
            (None, None) => None,
        }
    } else {
        req.args.clone()
    };
    if matches!(rw.flag, Flag::Redirect | Flag::Permanent) {
        let mut location = path;
        if let Some(a) = args.filter(|a| !a.is_empty()) {
            location.push('?');
            location.push_str(&a);
        }
        let status = if rw.flag == Flag::Permanent { 301 } else { 302 };
        return Some(Flow::Respond {
            status,
            text: Some(location),
        });
    }
    req.uri = path;
    req.args = args;
    *uri_changed = true;
    match rw.flag {
        Flag::Last => Some(Flow::Last),
        Flag::Break => Some(Flow::Break { uri_changed: true }),
        _ => None,
    }
}

fn eval_cond(c: &Cond, req: &mut Req) -> bool {
    match c {
        Cond::Truth(t) => truthy(&t.eval(req)),
        Cond::Eq(a, b, neg) => (a.eval(req) == b.eval(req)) != *neg,
        Cond::Match(t, rx, neg) => {
            let v = t.eval(req);
            match rx.captures(&v) {
                Some(caps) => {
                    req.set_captures(Captured::new(rx, &caps));
                    !*neg
                }
                None => *neg,
            }
        }
        Cond::File(t, test, neg) => {
            let path = t.eval(req);
            let meta = std::fs::metadata(&path);
            let ok = match (test, meta) {
                (FileTest::File, Ok(m)) => m.is_file(),
                (FileTest::Dir, Ok(m)) => m.is_dir(),
                (FileTest::Exists, Ok(_)) => true,
                (FileTest::Exec, Ok(m)) => {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                }
                (_, Err(_)) => false,
            };
            ok != *neg
        }
    }
}
