//! `log_format` and `access_log`. A request formats its line when its response body
//! ends and appends it to an in-memory buffer; a background thread writes buffers to
//! disk, so no request waits on the file system.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use super::req::Req;
use crate::vars::{Segment, Template};

pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Default,
    Json,
    None,
}

#[derive(Debug)]
pub struct LogFormat {
    pub name: String,
    pub template: Template,
    pub escape: Escape,
}

impl LogFormat {
    /// One log line (without the newline). Empty or missing variables print as `-`,
    /// and variable values are escaped as the format asks; literal text is kept as is.
    pub fn format(&self, req: &mut Req) -> String {
        let mut out = String::with_capacity(128);
        for seg in &self.template.segs {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Var(id) => {
                    let v = req.var(*id).unwrap_or_default();
                    if v.is_empty() && self.escape != Escape::Json {
                        out.push('-');
                    } else {
                        escape_into(&v, self.escape, &mut out);
                    }
                }
                Segment::Capture(n) => {
                    let v = req.captures.get(*n).cloned().flatten().unwrap_or_default();
                    escape_into(&v, self.escape, &mut out);
                }
            }
        }
        out
    }
}

fn escape_into(v: &str, esc: Escape, out: &mut String) {
    match esc {
        Escape::None => out.push_str(v),
        Escape::Default => {
            for b in v.bytes() {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    out.push_str(&format!("\\x{b:02X}"));
                } else {
                    out.push(b as char);
                }
            }
        }
        Escape::Json => {
            for c in v.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
        }
    }
}

/// An access log file: lines are appended to `buf` by requests and written by the
/// flusher thread.
#[derive(Debug)]
pub struct LogFile {
    pub path: PathBuf,
    file: Mutex<std::fs::File>,
    buf: Mutex<Vec<u8>>,
}

/// Above this, lines are dropped rather than letting a stuck disk eat memory.
const MAX_PENDING: usize = 16 << 20;

impl LogFile {
    pub fn open(path: &Path) -> std::io::Result<Arc<LogFile>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let lf = Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
        });
        register(&lf);
        Ok(lf)
    }

    pub fn append(&self, line: &str) {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() + line.len() < MAX_PENDING {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
    }

    /// Reopens the file by name (after log rotation moved the old one away).
    pub fn reopen(&self) {
        self.flush();
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            Ok(f) => *self.file.lock().unwrap_or_else(|e| e.into_inner()) = f,
            Err(e) => crate::log_error!("reopen() \"{}\" failed: {e}", self.path.display()),
        }
    }

    pub fn flush(&self) {
        let pending = {
            let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if buf.is_empty() {
                return;
            }
            std::mem::replace(&mut *buf, Vec::with_capacity(64 << 10))
        };
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(&pending) {
            crate::log_error!("write() to \"{}\" failed: {e}", self.path.display());
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        self.flush();
    }
}

static FILES: Mutex<Vec<Weak<LogFile>>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();

fn register(lf: &Arc<LogFile>) {
    FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::downgrade(lf));
    FLUSHER.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(200));
                flush_all();
            });
        if let Err(e) = spawned {
            crate::log_error!("cannot start the access log writer: {e}");
        }
    });
}

/// Reopens every access log (SIGUSR1, `raftgate -s reopen`).
pub fn reopen_all() {
    let files: Vec<Arc<LogFile>> = {
        let list = FILES.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for f in files {
        f.reopen();
    }
}

/// Writes every pending line now (the flusher does this periodically; shutdown and
/// tests call it directly).
pub fn flush_all() {
    let files: Vec<Arc<LogFile>> = {
        let mut list = FILES.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for f in files {
        f.flush();
    }
}

/// One `access_log` line of a level.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub file: Arc<LogFile>,
    pub format: Arc<LogFormat>,
    /// `if=COND`: the line is written only when the value is neither empty nor "0".
    pub cond: Option<Template>,
}

pub fn write(targets: &[LogTarget], req: &mut Req) {
    for t in targets {
        if let Some(c) = &t.cond {
            if !crate::vars::truthy(&c.eval(req)) {
                continue;
            }
        }
        let line = t.format.format(req);
        t.file.append(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_into("a\"b\\c\u{1}é", Escape::Default, &mut s);
        assert_eq!(s, "a\\x22b\\x5Cc\\x01\\xC3\\xA9");
        s.clear();
        escape_into("a\"b\n", Escape::Json, &mut s);
        assert_eq!(s, "a\\\"b\\n");
        s.clear();
        escape_into("a\"b", Escape::None, &mut s);
        assert_eq!(s, "a\"b");
    }
}
