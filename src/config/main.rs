//! The main context: process-wide settings, `events {}`, and the `http {}` block.

use std::path::PathBuf;

use super::{ctx, walk, Args, Cx, Directive, Frame, Handler, Spec};
use crate::http::build::HttpBuild;

#[derive(Debug, Default)]
pub struct MainConf {
    /// `error_log FILE [LEVEL]`; `None` = stderr.
    pub error_log: Option<PathBuf>,
    pub error_level: Option<crate::log::Level>,
    pub pid: Option<PathBuf>,
    /// `worker_processes N|auto`: raftgate runs one process, so this sizes the runtime's
    /// worker threads instead (`auto` or absent = one per core).
    pub worker_threads: Option<usize>,
    pub http: Option<Box<HttpBuild>>,
    pub cluster: Option<super::cluster::ClusterConf>,
    pub stream: Option<crate::stream::StreamConf>,
    seen_events: bool,
}

#[rustfmt::skip]
pub static DIRECTIVES: &[Spec] = &[
    Spec { name: "error_log", contexts: ctx::MAIN | ctx::HTTP_ANY, args: Args::Between(1, 2), block: false, handler: Handler::Frame(error_log) },
    Spec { name: "pid", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Main(pid) },
    Spec { name: "worker_processes", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Main(worker_processes) },
    Spec { name: "daemon", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Main(flag_only) },
    Spec { name: "master_process", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Main(flag_only) },
    Spec { name: "worker_rlimit_nofile", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Ignore },
    Spec { name: "user", contexts: ctx::MAIN, args: Args::Between(1, 2), block: false, handler: Handler::Ignore },
    Spec { name: "load_module", contexts: ctx::MAIN, args: Args::Exactly(1), block: false, handler: Handler::Warn("is ignored: raftgate's modules are built in") },
    Spec { name: "events", contexts: ctx::MAIN, args: Args::Exactly(0), block: true, handler: Handler::Frame(events) },
    Spec { name: "worker_connections", contexts: ctx::EVENTS, args: Args::Exactly(1), block: false, handler: Handler::Ignore },
    Spec { name: "use", contexts: ctx::EVENTS, args: Args::Exactly(1), block: false, handler: Handler::Ignore },
    Spec { name: "multi_accept", contexts: ctx::EVENTS, args: Args::Exactly(1), block: false, handler: Handler::Ignore },
    Spec { name: "http", contexts: ctx::MAIN, args: Args::Exactly(0), block: true, handler: Handler::Frame(http) },
];

fn error_log(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let level = match d.args.get(1) {
        Some(w) => Some(
            crate::log::Level::parse(&w.value)
                .ok_or_else(|| format!("invalid log level \"{}\"", w.value))?,
        ),
        None => None,
    };
    // error_log in http/server/location is accepted (nginx allows it) but raftgate keeps
    // one error log per process; only the main-level one chooses the file.
    if let Frame::Main(m) = frame {
        let target = d.arg(0);
        m.error_log = if target == "stderr" {
            None
        } else {
            Some(cx.path(target))
        };
        m.error_level = level;
    }
    Ok(())
}

fn pid(cx: &mut Cx, m: &mut MainConf, d: &Directive) -> Result<(), String> {
    m.pid = if d.arg(0) == "off" {
        None
    } else {
        Some(cx.path(d.arg(0)))
    };
    Ok(())
}

fn worker_processes(_: &mut Cx, m: &mut MainConf, d: &Directive) -> Result<(), String> {
    m.worker_threads = match d.arg(0) {
        "auto" => None,
        n => match n.parse::<usize>() {
            Ok(v) if v > 0 => Some(v),
            _ => {
                return Err(format!(
                    "invalid value \"{n}\" in \"worker_processes\" directive"
                ))
            }
        },
    };
    Ok(())
}

fn flag_only(_: &mut Cx, _: &mut MainConf, d: &Directive) -> Result<(), String> {
    super::values::parse_flag(d.arg(0)).map(|_| ())
}

fn events(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    if let Frame::Main(m) = frame {
        if m.seen_events {
            return Err("\"events\" directive is duplicate".into());
        }
        m.seen_events = true;
    }
    walk(
        cx,
        &mut Frame::Events,
        d.block.as_deref().unwrap_or_default(),
    );
    Ok(())
}

fn http(cx: &mut Cx, frame: &mut Frame<'_>, d: &Directive) -> Result<(), String> {
    let Frame::Main(m) = frame else {
        return Err("\"http\" directive is not allowed here".into());
    };
    if m.http.is_some() {
        return Err("\"http\" directive is duplicate".into());
    }
    let mut build = Box::<HttpBuild>::default();
    walk(
        cx,
        &mut Frame::Http(&mut build),
        d.block.as_deref().unwrap_or_default(),
    );
    m.http = Some(build);
    Ok(())
}

/// Where the pid file goes without a `pid` directive: `logs/raftgate.pid` under the
/// prefix (the configuration's directory, or `-p`), as nginx uses `logs/nginx.pid`.
pub fn default_pid_path(prefix: &std::path::Path) -> PathBuf {
    prefix.join("logs/raftgate.pid")
}
