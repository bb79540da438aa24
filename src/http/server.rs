//! Accepting connections and serving HTTP/1.1 on them with hyper. Each request looks up
//! the configuration generation in force when it arrives (so keep-alive connections
//! move to a reloaded configuration at their next request).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::phases::{self, CloseConnection};
use super::req::ConnInfo;
use crate::runtime::{Runtime, Stop};

pub async fn accept_loop(rt: Arc<Runtime>, key: SocketAddr, listener: TcpListener) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::log_error!("accept() failed on {key} ({e})");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(key);
        let serial = rt.conn_serial.fetch_add(1, Ordering::Relaxed) + 1;
        rt.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(ConnInfo {
            remote,
            local,
            scheme: "http",
            serial,
        });
        tokio::spawn(serve_conn(rt.clone(), key, conn, stream));
    }
}

async fn serve_conn(
    rt: Arc<Runtime>,
    key: SocketAddr,
    conn: Arc<ConnInfo>,
    stream: tokio::net::TcpStream,
) {
    rt.open_conns.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(rt.clone());
    let requests = Arc::new(AtomicU64::new(0));
    // Connection-level settings come from the default server of the address, as the
    // server is not known before the first request's Host.
    let (keepalive, max_requests) = {
        let gen = rt.current.load();
        let conf = gen.config.http.as_ref().and_then(|h| {
            h.listens
                .iter()
                .find(|l| l.addr == key)
                .map(|l| h.servers[l.default_server].conf.clone())
        });
        (
            conf.as_ref()
                .and_then(|c| c.keepalive_timeout)
                .unwrap_or(super::DEFAULT_KEEPALIVE),
            conf.as_ref()
                .and_then(|c| c.keepalive_requests)
                .unwrap_or(super::DEFAULT_KEEPALIVE_REQUESTS),
        )
    };
    let rt2 = rt.clone();
    let svc = service_fn(move |req| {
        let gen = rt2.current.load_full();
        let rt = rt2.clone();
        let conn = conn.clone();
        let n = requests.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let Some(http) = gen.config.http.clone() else {
                return Err(CloseConnection);
            };
            let Some(group) = http.listens.iter().position(|l| l.addr == key) else {
                return Err(CloseConnection);
            };
            let mut resp = phases::handle(http, rt, group, conn, n, req).await?;
            if n >= max_requests {
                // hyper closes the connection after a response that says so.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.writev(false);
    // `keepalive_timeout 0` turns keep-alive off; a request header must still arrive
    // within nginx's `client_header_timeout` default of 60s.
    builder
        .timer(TokioTimer::new())
        .keep_alive(!keepalive.is_zero())
        .header_read_timeout(if keepalive.is_zero() {
            Duration::from_secs(60)
        } else {
            keepalive
        });
    let conn_fut = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn_fut);
    let mut stop = rt.stop.subscribe();
    loop {
        tokio::select! {
            res = conn_fut.as_mut() => {
                if let Err(e) = res {
                    if !e.is_incomplete_message() && !is_close(&e) {
                        crate::log_info!("client connection error ({e})");
                    }
                }
                return;
            }
            changed = stop.changed() => {
                let how = *stop.borrow();
                if changed.is_err() || how == Stop::Fast {
                    return;
                }
                if how == Stop::Graceful {
                    conn_fut.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn is_close(e: &hyper::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<CloseConnection>())
}

struct OpenGuard(Arc<Runtime>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_conns.fetch_sub(1, Ordering::AcqRel);
    }
}
