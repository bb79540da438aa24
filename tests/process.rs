//! The `raftgate` binary as a user runs it: `-t`, signals and reload under load, and
//! gibibyte bodies streamed through with bounded memory.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_raftgate");

fn check(conf: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["-t", "-c"])
        .arg(conf)
        .output()
        .expect("run raftgate -t");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_test_reports_every_mistake_with_file_and_line() {
    let dir = temp_dir("badconf");
    std::fs::write(
        dir.join("extra.conf"),
        "server {\n  listen 127.0.0.1:0;\n  bogus_in_include on;\n}\n",
    )
    .expect("write");
    let conf = dir.join("bad.conf");
    std::fs::write(
        &conf,
        r#"events {}
no_such_directive on;
http {
    upstream u { server 127.0.0.1:1 weight=0; least_conn; ip_hash; }
    server {
        listen 127.0.0.1:0;
        location / { proxy_pass http://undefined_group_name; }
        location ~ ^/(unclosed { }
        location /a { rewrite ^ /b bogusflag; }
        location /b { return 200 $no_such_var; }
        error_page 200 /x;
        client_max_body_size 10q;
        keepalive_timeout forever;
        add_header X-Only-Name;
        proxy_http_version 2.0;
        access_log /tmp/x.log undefined_format;
        allow 999.1.1.1;
        server_name bad*name;
    }
    include extra.conf;
    server_name misplaced;
}
"#,
    )
    .expect("write");
    let (ok, err) = check(&conf);
    assert!(!ok, "{err}");
    let c = conf.display().to_string();
    let expected = [
        (2, "unknown directive \"no_such_directive\""),
        (4, "invalid parameter \"weight=0\""),
        (4, "load balancing method redefined"),
        (7, "host not found in upstream \"undefined_group_name\""),
        (8, "invalid regex \"^/(unclosed\""),
        (9, "invalid parameter \"bogusflag\""),
        (10, "unknown \"no_such_var\" variable"),
        (11, "value \"200\" must be between 300 and 599"),
        (12, "invalid size \"10q\""),
        (13, "invalid time \"forever\""),
        (
            14,
            "invalid number of arguments in \"add_header\" directive",
        ),
        (15, "invalid value \"2.0\""),
        (16, "unknown log format \"undefined_format\""),
        (17, "invalid parameter \"999.1.1.1\""),
        (18, "invalid server name or wildcard \"bad*name\""),
        (21, "\"server_name\" directive is not allowed here"),
    ];
    for (line, msg) in expected {
        let prefix = format!("{c}:{line}: ");
        assert!(
            err.lines().any(|l| l.contains(&prefix) && l.contains(msg)),
            "missing {prefix}{msg} in:\n{err}"
        );
    }
    let inc = dir.join("extra.conf").display().to_string();
    assert!(
        err.contains(&format!("{inc}:3: unknown directive \"bogus_in_include\"")),
        "{err}"
    );
    assert!(err.contains("test failed"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn seed_config_with_drain_is_accepted_unchanged() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed-configs/upstream-drain.conf");
    let (ok, err) = check(&seed);
    assert!(ok, "{err}");
    assert!(err.contains("test is successful"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Proc {
    child: Child,
    dir: PathBuf,
}

impl Proc {
    fn start(dir: &Path, conf_text: &str) -> Proc {
        let conf = dir.join("raftgate.conf");
        std::fs::write(&conf, conf_text).expect("write conf");
        let child = Command::new(BIN)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Proc {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new(BIN)
            .args(["-s", name, "-c"])
            .arg(self.dir.join("raftgate.conf"))
            .status()
            .expect("-s");
        assert!(status.success(), "raftgate -s {name} failed");
    }

    fn hup(&self) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child with a valid signal.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
        assert_eq!(rc, 0);
    }

    fn wait_exit(&mut self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Peak resident memory of the process (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_http(addr: SocketAddr, path: &str, want: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if let Ok(body) = blocking_get(addr, path) {
            if body.contains(want) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr}{path} never answered {want:?}");
}

/// A plain HTTP/1.1 GET on a fresh connection; the body, or the error.
fn blocking_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let (head, body) = buf.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    Ok(body.to_string())
}

fn reload_conf(port: u16, pid: &Path, b1: SocketAddr, b2: SocketAddr, tag: &str) -> String {
    format!(
        r#"pid {pid};
error_log {log};
events {{}}
http {{
    upstream u {{ server {b1}; server {b2}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header X-Generation {tag};
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /tag {{ return 200 "{tag}"; }}
    }}
}}
"#,
        pid = pid.display(),
        log = pid.with_file_name("error.log").display()
    )
}

#[test]
fn reload_under_load_fails_no_request_and_bad_config_keeps_the_old_one() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let (b1, b2) = rt.block_on(async {
        (
            backend("b1", Behave::Echo).await,
            backend("b2", Behave::Echo).await,
        )
    });
    let dir = temp_dir("reload");
    let port = free_port();
    let pid = dir.join("raftgate.pid");
    let mut p = Proc::start(&dir, &reload_conf(port, &pid, b1.addr, b2.addr, "gen0"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_http(addr, "/tag", "gen0");

    // Load: 4 clients, each on keep-alive connections, counting every failure.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match keepalive_batch(addr, 20) {
                    Ok(n) => {
                        ok.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for gen in 1..=5 {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(
            dir.join("raftgate.conf"),
            reload_conf(port, &pid, b1.addr, b2.addr, &format!("gen{gen}")),
        )
        .expect("write");
        p.signal("reload");
        wait_http(addr, "/tag", &format!("gen{gen}"));
    }
    // A broken configuration is refused; the last good one keeps serving.
    std::fs::write(
        dir.join("raftgate.conf"),
        "events {}\nhttp { server { listen 127.0.0.1:1; bogus; } }\n",
    )
    .expect("write");
    // (`raftgate -s reload` would refuse to signal with a broken file; a plain SIGHUP
    // reaches the process, which must refuse it itself.)
    p.hup();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    assert_eq!(blocking_get(addr, "/tag").as_deref(), Ok("gen5"));
    let log = std::fs::read_to_string(dir.join("error.log")).expect("error log");
    let conf_name = dir.join("raftgate.conf").display().to_string();
    assert!(
        log.contains(&format!("{conf_name}:2: unknown directive \"bogus\"")),
        "the refused reload's errors are in the error log:\n{log}"
    );
    assert!(log.contains("reload refused"), "{log}");
    let served = ok.load(Ordering::Relaxed);
    eprintln!("{served} requests served across 5 reloads and 1 refused reload");
    assert!(served > 200, "only {served} requests under load");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during reloads ({served} succeeded)"
    );
    // Graceful stop removes the pid file and exits.
    std::fs::write(
        dir.join("raftgate.conf"),
        reload_conf(port, &pid, b1.addr, b2.addr, "gen5"),
    )
    .expect("write");
    p.signal("quit");
    assert!(p.wait_exit(Duration::from_secs(10)), "did not exit on quit");
    assert!(!pid.exists(), "pid file left behind");
    let _ = std::fs::remove_dir_all(dir);
}

/// `n` requests on one keep-alive connection; Ok(n) when all answered 200.
fn keepalive_batch(addr: SocketAddr, n: u64) -> Result<u64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // write! issues several writes: without TCP_NODELAY, Nagle and delayed ACKs add 40 ms.
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut done = 0;
    for i in 0..n {
        let close = if i + 1 == n {
            "Connection: close\r\n"
        } else {
            ""
        };
        write!(s, "GET /x{i} HTTP/1.1\r\nHost: t\r\n{close}\r\n").map_err(|e| e.to_string())?;
        let (status, _) = read_response(&mut s)?;
        if status != 200 {
            return Err(format!("status {status}"));
        }
        done += 1;
    }
    Ok(done)
}

/// Reads one response with a Content-Length body.
fn read_response(s: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed after {} header bytes",
                head.len()
            ));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or("no content-length")?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
}

const GIB: u64 = 1 << 30;

#[test]
fn one_gib_upload_and_download_stream_with_bounded_memory() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let big = rt.block_on(big_backend());
    let dir = temp_dir("big");
    let port = free_port();
    let conf = format!(
        "pid {}/raftgate.pid;\nevents {{}}\nhttp {{ upstream big {{ server {big}; keepalive 2; }}
         server {{ listen 127.0.0.1:{port}; client_max_body_size 0;
           location / {{ proxy_pass http://big; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
        dir.display()
    );
    let p = Proc::start(&dir, &conf);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_http(addr, "/size/1", "x");

    // Download 1 GiB.
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /size/{GIB} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut header_done = false;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        if header_done {
            total += n as u64;
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                header_done = true;
                total += (head.len() - i - 4) as u64;
            }
        }
    }
    assert_eq!(total, GIB, "downloaded bytes");

    // Upload 1 GiB with Content-Length; the backend answers with what it received.
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {GIB}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let chunk = vec![b'u'; 1 << 20];
    for _ in 0..1024 {
        s.write_all(&chunk).expect("upload");
    }
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(&format!("received {GIB}")), "{resp}");

    let peak = p.peak_rss_kib();
    eprintln!("peak RSS of raftgate after 1 GiB down + 1 GiB up: {peak} KiB");
    assert!(
        peak < 96 * 1024,
        "peak RSS {peak} KiB while streaming 2 GiB: bodies are being buffered"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `/size/N` answers N bytes, streamed; POST answers "received N" after counting the body.
async fn big_backend() -> SocketAddr {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::{Frame, Incoming};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    struct Gen(u64, Bytes);
    impl http_body::Body for Gen {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.0 == 0 {
                return Poll::Ready(None);
            }
            let n = self.0.min(self.1.len() as u64);
            self.0 -= n;
            Poll::Ready(Some(Ok(Frame::data(self.1.slice(..n as usize)))))
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.0)
        }
    }
    enum Either {
        Gen(Gen),
        Text(http_body_util::Full<Bytes>),
    }
    impl http_body::Body for Either {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            match self.get_mut() {
                Either::Gen(g) => Pin::new(g).poll_frame(cx),
                Either::Text(t) => Pin::new(t).poll_frame(cx).map_err(|e| match e {}),
            }
        }
        fn size_hint(&self) -> http_body::SizeHint {
            match self {
                Either::Gen(g) => g.size_hint(),
                Either::Text(t) => t.size_hint(),
            }
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; 256 * 1024]);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let chunk = chunk.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = if let Some(n) = path.strip_prefix("/size/") {
                            Either::Gen(Gen(n.parse().unwrap_or(0), chunk))
                        } else {
                            let mut body = req.into_body();
                            let mut n = 0u64;
                            while let Some(f) = body.frame().await {
                                if let Ok(d) = f.map(|f| f.into_data()) {
                                    n += d.map(|d| d.len() as u64).unwrap_or(0);
                                }
                            }
                            Either::Text(http_body_util::Full::new(Bytes::from(format!(
                                "received {n}"
                            ))))
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[test]
fn stop_signal_exits_fast_and_removes_the_pid_file() {
    let dir = temp_dir("stop");
    let port = free_port();
    let conf = format!(
        "events {{}}\nhttp {{ server {{ listen 127.0.0.1:{port}; return 200 \"up\"; }} }}\n"
    );
    let mut p = Proc::start(&dir, &conf);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_http(addr, "/", "up");
    // Without a `pid` directive the pid file is logs/raftgate.pid under the prefix.
    let pid = dir.join("logs/raftgate.pid");
    assert!(pid.exists(), "default pid file");
    p.signal("stop");
    assert!(p.wait_exit(Duration::from_secs(5)), "did not exit on stop");
    assert!(!pid.exists());
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after stop"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_mode_balances_over_its_demo_backends_and_stops_on_ctrl_c() {
    use std::io::BufRead;
    let dir = temp_dir("dev");
    let mut proc = Proc {
        child: Command::new(BIN)
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dev"),
        dir: dir.clone(),
    };
    let stdout = proc.child.stdout.take().expect("stdout");
    let mut url = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.trim().strip_prefix("proxy:") {
            url = rest.split_whitespace().next().map(String::from);
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    let url = url.expect("dev mode prints its proxy URL");
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("addr");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let body = blocking_get(addr, "/hello").expect("proxied");
        seen.insert(body.split_whitespace().next().unwrap_or("").to_string());
    }
    assert_eq!(
        seen.len(),
        3,
        "round robin over three demo backends: {seen:?}"
    );
    assert_eq!(blocking_get(addr, "/healthz").as_deref(), Ok("ok\n"));
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child with a valid signal.
    let rc = unsafe { libc::kill(proc.child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    assert!(
        proc.wait_exit(Duration::from_secs(5)),
        "dev mode did not stop on Ctrl-C"
    );
    let log = std::fs::read_to_string(dir.join("logs/access.log")).expect("access log");
    assert!(
        log.lines().filter(|l| l.contains("GET /hello")).count() == 3,
        "{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_single_node_keeps_its_keyval_zone_across_kill_9() {
    // The keyval_zone and api lines of the R14 denylist example, unchanged.
    let dir = temp_dir("kvstate");
    let port = free_port();
    let conf = format!(
        "events {{}}\nhttp {{\n    keyval_zone zone=denylist:1m state=denylist.json;\n    server {{\n        listen 127.0.0.1:{port};\n        location /api {{\n            api write=on;\n            allow 127.0.0.1;\n            deny all;\n        }}\n    }}\n}}\nstream {{\n    keyval_zone zone=conns:1m;\n}}\n"
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut p = Proc::start(&dir, &conf);
    wait_http(addr, "/api/2/http/keyvals/denylist", "{");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let body = "{\"10.0.0.1\":\"1\"}";
    write!(s, "POST /api/2/http/keyvals/denylist HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    // A stream {} block's zone is served under /api/2/stream/keyvals/.
    let stream = "/api/2/stream/keyvals/conns";
    let (status, body) =
        raftgate_cluster_tests::call(addr, "POST", stream, "{\"10.0.0.2\":\"x\"}").expect("post");
    assert_eq!(status, 201, "{body}");
    let _ = p.child.kill();
    let _ = p.child.wait();
    let _p2 = Proc::start(&dir, &conf);
    wait_http(addr, "/api/2/http/keyvals/denylist", "10.0.0.1");
    assert_eq!(
        blocking_get(addr, "/api/2/http/keyvals/denylist").as_deref(),
        Ok("{\"10.0.0.1\":\"1\"}")
    );
    assert_eq!(
        blocking_get(addr, "/api/2/stream/keyvals/").as_deref(),
        Ok("{\"conns\":{\"10.0.0.2\":\"x\"}}")
    );
    let _ = std::fs::remove_dir_all(dir);
}
