//! Connections to upstream servers: connect with a deadline, keep idle ones per group
//! (`keepalive N`), and stream a response body back while holding its connection and
//! its server's active-connection slot until the body ends.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::body::ReqBody;
use super::error::{Fail, Kind};
use crate::upstream::conf::Keepalive;
use crate::upstream::PeerGuard;

pub type Sender = SendRequest<ReqBody>;

/// Idle keep-alive connections of one upstream group, at most `keepalive N` in all.
#[derive(Debug)]
pub struct Pool {
    conf: Keepalive,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// A connection waiting for its next request.
#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
    /// Requests it has carried so far (`keepalive_requests`).
    uses: u64,
}

/// A connection lent out by the pool, with how many requests it has carried.
pub struct Lent {
    pub sender: Sender,
    pub uses: u64,
}

impl Pool {
    pub fn new(conf: Keepalive) -> Self {
        Pool {
            conf,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// An idle connection to `addr` that has not been closed, if any. The caller waits
    /// for it to be ready: a connection returned at the end of a body may still be
    /// finishing that response.
    pub fn take(&self, addr: SocketAddr) -> Option<Lent> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        // Newest first; anything idle past keepalive_timeout is closed on the way.
        while let Some(i) = list.pop() {
            if !i.sender.is_closed() && now.duration_since(i.since) < self.conf.timeout {
                return Some(Lent {
                    sender: i.sender,
                    uses: i.uses,
                });
            }
        }
        None
    }

    /// Idle connections held now (the API's `keepalive`).
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// Returns a connection after a complete response; `uses` counts that response.
    pub fn put(&self, addr: SocketAddr, sender: Sender, uses: u64) {
        if sender.is_closed() || uses >= self.conf.requests {
            return;
        }
        let s = Idle {
            sender,
            since: Instant::now(),
            uses,
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Close what timed out or was closed by the server while it waited.
        let timeout = self.conf.timeout;
        if let Some(list) = idle.get_mut(&addr) {
            list.retain(|i| !i.sender.is_closed() && i.since.elapsed() < timeout);
        }
        let total: usize = idle.values().map(Vec::len).sum();
        if total >= self.conf.idle {
            // nginx closes the least recently used connection; drop the oldest of this
            // address, or refuse when this address holds none.
            match idle.get_mut(&addr) {
                Some(list) if !list.is_empty() => {
                    list.remove(0);
                }
                _ => return,
            }
        }
        idle.entry(addr).or_default().push(s);
    }
}

/// Opens a connection and performs the HTTP/1 handshake.
pub async fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
    send_timeout: Duration,
) -> Result<Sender, Fail> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Fail::upstream(
                Kind::UpstreamError,
                format!("connect() to {addr} failed ({e})"),
            ));
        }
        Err(_) => {
            return Err(Fail::upstream(
                Kind::UpstreamTimeout,
                format!("upstream timed out (connecting to {addr})"),
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteTimeout::new(stream, send_timeout));
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .writev(false)
        .handshake(io)
        .await
        .map_err(|e| {
            Fail::upstream(
                Kind::UpstreamError,
                format!("handshake with {addr} failed ({e})"),
            )
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A stream whose writes fail after `limit` without progress (`proxy_send_timeout`).
pub struct WriteTimeout {
    inner: TcpStream,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            sleep: None,
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "upstream send timed out",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;

impl AsyncRead for WriteTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => match self.check(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.sleep = None;
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => match self.check(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.sleep = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An upstream response body on its way to the client. Each wait for data is bounded by
/// `proxy_read_timeout`; when the body ends cleanly the connection goes back to the pool.
pub struct UpstreamBody {
    inner: Incoming,
    read_timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    conn: Option<(Arc<Pool>, SocketAddr, Sender, u64)>,
    guard: Option<PeerGuard>,
    received: u64,
    /// Where to record the time from the attempt's start to the body's end
    /// (`$upstream_response_time`), in microseconds.
    timing: Option<(Arc<std::sync::atomic::AtomicU64>, Instant)>,
}

impl UpstreamBody {
    pub fn new(
        inner: Incoming,
        read_timeout: Duration,
        conn: Option<(Arc<Pool>, SocketAddr, Sender, u64)>,
        guard: Option<PeerGuard>,
        timing: Option<(Arc<std::sync::atomic::AtomicU64>, Instant)>,
    ) -> Self {
        UpstreamBody {
            inner,
            read_timeout,
            sleep: None,
            conn,
            guard,
            received: 0,
            timing,
        }
    }

    fn finish(&mut self) {
        if let Some((cell, started)) = self.timing.take() {
            let took = started.elapsed();
            cell.store(
                took.as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            if let Some(g) = &self.guard {
                g.peer().stats().record_response_time(took);
            }
        }
        if let Some((pool, addr, sender, uses)) = self.conn.take() {
            pool.put(addr, sender, uses);
        }
        if let Some(g) = self.guard.take() {
            g.peer().add_received(self.received);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.sleep = None;
                if let Some(d) = f.data_ref() {
                    this.received += d.len() as u64;
                }
                // hyper stops polling once a body says it has ended, so the end is
                // noticed here rather than at a final `None`.
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                if let Some(g) = this.guard.take() {
                    g.failure();
                }
                crate::log_error!(
                    "upstream prematurely closed connection while reading upstream ({e})"
                );
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                let limit = this.read_timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.conn = None;
                    crate::log_error!("upstream timed out while reading upstream");
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "upstream timed out",
                    ))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            // An empty body (204, HEAD) is complete without ever being polled.
            self.finish();
        } else {
            // Dropped mid-response: the connection cannot be reused.
            self.conn = None;
        }
    }
}
