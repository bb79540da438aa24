//! nginx's signal interface: HUP reloads, TERM/INT stop fast, QUIT stops gracefully,
//! USR1 reopens log files (for rotation). `raftgate -s NAME` sends them to the
//! process named in the pid file.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::runtime::{Runtime, Stop};

/// Runs until the process is asked to stop; reloads on SIGHUP/SIGUSR1.
pub fn install(rt: Arc<Runtime>) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&rt).await,
                _ = usr1.recv() => {
                    crate::log::reopen();
                    crate::http::access_log::reopen_all();
                    crate::log_notice!("reopened log files");
                }
                _ = term.recv() => { rt.request_stop(Stop::Fast); }
                _ = int.recv() => { rt.request_stop(Stop::Fast); }
                _ = quit.recv() => {
                    crate::log_notice!("gracefully shutting down");
                    rt.request_stop(Stop::Graceful);
                }
            }
        }
    });
    Ok(())
}

async fn reload(rt: &Arc<Runtime>) {
    crate::log_notice!("signal received, reconfiguring");
    match rt.reload().await {
        Ok(n) => crate::log_notice!("reconfigured: generation {n} is serving"),
        Err(errors) => {
            for e in &errors {
                crate::log::log(crate::log::Level::Emerg, format_args!("{e}"));
            }
            crate::log_error!(
                "reload refused ({} errors); the previous configuration keeps serving",
                errors.len()
            );
        }
    }
}

/// `-s stop|quit|reload|reopen`: signal the running process through its pid file.
pub fn send(pid_file: &Path, name: &str) -> Result<(), String> {
    let sig = match name {
        "stop" => libc::SIGTERM,
        "quit" => libc::SIGQUIT,
        "reload" => libc::SIGHUP,
        "reopen" => libc::SIGUSR1,
        other => return Err(format!("invalid option: \"-s {other}\"")),
    };
    let text = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("open() \"{}\" failed ({e})", pid_file.display()))?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
        format!(
            "invalid PID number \"{}\" in \"{}\"",
            text.trim(),
            pid_file.display()
        )
    })?;
    kill(pid, sig)
}

/// kill(2): sends `sig` to process `pid` (> 0).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> Result<(), String> {
    if pid <= 0 {
        return Err(format!("invalid pid {pid}"));
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a positive pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(format!(
            "kill({pid}, {sig}) failed ({})",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
