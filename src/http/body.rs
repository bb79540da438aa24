//! Bodies that stream: what the client uploads goes to the upstream frame by frame, and
//! what the upstream (or a file) sends goes to the client the same way, so memory per
//! request stays bounded whatever the size.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

/// Called once when a response body ends: bytes of body sent, and whether it completed.
pub type Finish = Box<dyn FnOnce(u64, bool) + Send>;

pub enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(BoxBody<Bytes, io::Error>),
}

/// The body of every response raftgate sends.
pub struct RespBody {
    kind: Kind,
    sent: u64,
    finish: Option<Finish>,
}

impl RespBody {
    pub fn empty() -> Self {
        Self::from_kind(Kind::Empty)
    }

    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            return Self::empty();
        }
        Self::from_kind(Kind::Full(Some(b)))
    }

    pub fn stream<B>(b: B) -> Self
    where
        B: Body<Data = Bytes, Error = io::Error> + Send + Sync + 'static,
    {
        Self::from_kind(Kind::Stream(BoxBody::new(b)))
    }

    fn from_kind(kind: Kind) -> Self {
        RespBody {
            kind,
            sent: 0,
            finish: None,
        }
    }

    /// Runs `f` when the body has been sent or abandoned (access log, statistics).
    pub fn on_finish(&mut self, f: Finish) {
        self.finish = Some(f);
    }

    fn done(&mut self, complete: bool) {
        if let Some(f) = self.finish.take() {
            f(self.sent, complete);
        }
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        self.done(false);
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let res = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx),
        };
        match &res {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.sent += d.len() as u64;
                }
                if this.is_end_stream() {
                    this.done(true);
                }
            }
            Poll::Ready(None) => this.done(true),
            Poll::Ready(Some(Err(_))) => this.done(false),
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map(|b| b.len() as u64).unwrap_or(0)),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}

/// Why a client's request body stopped before its end, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Larger than `client_max_body_size`: 413.
    TooLarge,
    /// The client sent nothing for `client_body_timeout`: 408.
    Timeout,
    /// The client's stream broke: a client abort, not an upstream fault.
    Broken,
}

/// The client's request body on its way upstream, cut off at `client_max_body_size`
/// and `client_body_timeout`.
pub struct ReqBody {
    inner: Option<Incoming>,
    limit: u64,
    seen: u64,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Set when the body stopped early, so the proxy answers for the client's fault
    /// (413/408/499) rather than blaming the upstream with a 502.
    pub fault: Arc<Mutex<Option<BodyFault>>>,
    /// Notified when the whole body has been handed to the upstream connection.
    pub sent: Arc<tokio::sync::Notify>,
}

impl ReqBody {
    pub fn new(inner: Option<Incoming>, limit: u64, timeout: Duration) -> Self {
        ReqBody {
            inner,
            limit,
            seen: 0,
            timeout,
            sleep: None,
            fault: Arc::default(),
            sent: Arc::default(),
        }
    }

    pub fn empty() -> Self {
        Self::new(None, 0, Duration::ZERO)
    }

    pub fn fault(&self) -> Option<BodyFault> {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(
        &mut self,
        f: BodyFault,
        msg: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        Poll::Ready(Some(Err(io::Error::other(msg))))
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.sleep = None;
                if let Some(d) = f.data_ref() {
                    this.seen += d.len() as u64;
                    if this.limit > 0 && this.seen > this.limit {
                        return this.fail(
                            BodyFault::TooLarge,
                            "client intended to send too large body",
                        );
                    }
                }
                if this.inner.as_ref().is_none_or(|b| b.is_end_stream()) {
                    this.sent.notify_one();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(_))) => {
                this.fail(BodyFault::Broken, "client closed the request body")
            }
            Poll::Ready(None) => {
                this.sent.notify_one();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timeout.is_zero() {
                    return Poll::Pending;
                }
                let limit = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return this.fail(
                        BodyFault::Timeout,
                        "client timed out sending the request body",
                    );
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

/// A file sent in chunks.
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

const FILE_CHUNK: usize = 64 * 1024;

impl FileBody {
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        FileBody {
            file,
            remaining: len,
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (this.remaining as usize).min(FILE_CHUNK);
        let mut chunk = vec![0u8; want];
        let mut rb = ReadBuf::new(&mut chunk);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ))));
                }
                this.remaining -= n as u64;
                chunk.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
