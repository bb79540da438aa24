//! The error log: nginx's levels and line format, one file per process.
//!
//! Error-log lines are rare (failures, reloads), so they are written synchronously under a
//! mutex; the access log, written per request, has its own off-path writer.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Crit,
    Alert,
    Emerg,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "notice" => Level::Notice,
            "warn" => Level::Warn,
            "error" => Level::Error,
            "crit" => Level::Crit,
            "alert" => Level::Alert,
            "emerg" => Level::Emerg,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Crit => "crit",
            Level::Alert => "alert",
            Level::Emerg => "emerg",
        }
    }
}

struct Sink {
    file: Option<std::fs::File>,
    path: Option<std::path::PathBuf>,
    level: Level,
}

/// nginx's default level is `error`.
static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    path: None,
    level: Level::Error,
});

/// Points the error log at a file (or stderr for `None`). Called at start and on reload.
pub fn configure(path: Option<&Path>, level: Option<Level>) -> std::io::Result<()> {
    let file = match path {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )
        }
        None => None,
    };
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    sink.file = file;
    sink.path = path.map(Path::to_path_buf);
    sink.level = level.unwrap_or(Level::Error);
    Ok(())
}

/// Reopens the error log file by name (log rotation).
pub fn reopen() {
    let (path, level) = {
        let sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
        (sink.path.clone(), sink.level)
    };
    if let Err(e) = configure(path.as_deref(), Some(level)) {
        log(
            Level::Alert,
            format_args!("cannot reopen the error log: {e}"),
        );
    }
}

pub fn log(level: Level, msg: std::fmt::Arguments<'_>) {
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if level < sink.level {
        return;
    }
    let line = format!(
        "{} [{}] {}#0: {}\n",
        chrono::Local::now().format("%Y/%m/%d %H:%M:%S"),
        level.name(),
        std::process::id(),
        msg
    );
    let written = match sink.file.as_mut() {
        Some(f) => f.write_all(line.as_bytes()).is_ok(),
        None => false,
    };
    if !written {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_notice { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Notice, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($t)*)) } }
