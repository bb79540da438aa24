//! Test support: raftgate started in-process on port 0, real backends on real sockets,
//! and a small HTTP client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use raftgate::runtime::{Runtime, Source};

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "raftgate-test-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub struct Gate {
    pub rt: Arc<Runtime>,
    pub dir: PathBuf,
}

impl Gate {
    /// The address actually bound for the n-th listener (sorted by configured address).
    pub fn addr(&self) -> SocketAddr {
        self.rt.bound()[0].1
    }

    pub fn addr_of(&self, configured: &str) -> SocketAddr {
        let want: SocketAddr = configured.parse().expect("addr");
        self.rt
            .bound()
            .into_iter()
            .find(|b| b.0 == want)
            .map(|b| b.1)
            .expect("listener")
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.rt.request_stop(raftgate::runtime::Stop::Fast);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts raftgate on `conf` (listen on `127.0.0.1:0` to get a free port).
pub async fn start(conf: &str) -> Gate {
    start_with(conf, &[]).await
}

/// Starts raftgate on `conf` with `files` (name, contents) written into its prefix
/// first, for the files a configuration names relatively (a key set).
pub async fn start_with(conf: &str, files: &[(&str, &str)]) -> Gate {
    let dir = temp_dir("gate");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write file");
    }
    let source = Source::Text {
        name: "test.conf".into(),
        text: conf.to_string(),
        prefix: dir.clone(),
    };
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => panic!("config errors: {e:#?}"),
    };
    let rt = Runtime::start(config, source).await.expect("start");
    Gate { rt, dir }
}

pub fn load_errors(conf: &str) -> Vec<String> {
    match raftgate::config::load_str(conf, "test.conf", std::env::temp_dir()) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

#[derive(Clone)]
pub enum Behave {
    /// Answers 200 with "NAME\nMETHOD URI\nheader: value..." (request headers echoed).
    Echo,
    Status(u16),
    /// Waits before answering.
    Delay(Duration),
    /// Accepts and immediately closes every connection.
    Close,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted, to see upstream keep-alive at work.
    pub conns: Arc<AtomicUsize>,
    pub name: String,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn backend(name: &str, behave: Behave) -> Backend {
    backend_on("127.0.0.1:0", name, behave).await
}

pub async fn backend_on(addr: &str, name: &str, behave: Behave) -> Backend {
    let listener = TcpListener::bind(addr).await.expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let c = conns.clone();
    let n = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            c.fetch_add(1, Ordering::SeqCst);
            if let Behave::Close = behave {
                h.fetch_add(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            let h = h.clone();
            let n = n.clone();
            let behave = behave.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let h = h.clone();
                    let n = n.clone();
                    let behave = behave.clone();
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        let mut text = format!("{n}\n{} {}\n", req.method(), req.uri());
                        for (k, v) in req.headers() {
                            text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
                        }
                        let _ = req.into_body().collect().await;
                        let status = match behave {
                            Behave::Status(s) => s,
                            Behave::Delay(d) => {
                                tokio::time::sleep(d).await;
                                200
                            }
                            _ => 200,
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("x-backend", n.as_str())
                            .header("set-cookie", format!("srv={n}; Path=/"))
                            .body(Full::new(Bytes::from(text)))
                            .expect("response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend {
        addr,
        hits,
        conns,
        name: name.to_string(),
        task,
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first line of an echo body: the backend's name.
    pub fn backend(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }

    /// The request line the backend saw.
    pub fn upstream_request(&self) -> &str {
        self.body.lines().nth(1).unwrap_or("")
    }

    /// A request header as the backend saw it.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.body
            .lines()
            .skip(2)
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    send(
        addr,
        Request::get(path)
            .header("host", "localhost")
            .body(Bytes::new())
            .expect("req"),
    )
    .await
}

pub async fn get_host(addr: SocketAddr, path: &str, host: &str) -> Resp {
    send(
        addr,
        Request::get(path)
            .header("host", host)
            .body(Bytes::new())
            .expect("req"),
    )
    .await
}

/// One request on a fresh connection.
pub async fn send(addr: SocketAddr, req: Request<Bytes>) -> Resp {
    try_send(addr, req).await.expect("request failed")
}

pub async fn try_send(addr: SocketAddr, req: Request<Bytes>) -> Result<Resp, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    send_on(stream, req).await
}

pub async fn send_on(stream: TcpStream, req: Request<Bytes>) -> Result<Resp, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(body));
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A GET from a chosen loopback source address (127.0.0.0/8 is all local on Linux).
pub async fn get_from(addr: SocketAddr, src: &str, path: &str) -> Resp {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{src}:0").parse().expect("src"))
        .expect("bind src");
    let stream = sock.connect(addr).await.expect("connect");
    send_on(
        stream,
        Request::get(path)
            .header("host", "localhost")
            .body(Bytes::new())
            .expect("req"),
    )
    .await
    .expect("request")
}

pub fn empty() -> Empty<Bytes> {
    Empty::new()
}
