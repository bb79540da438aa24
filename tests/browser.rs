//! The dashboard in a real browser: headless Chromium opens node 1's dashboard, clicks
//! "drain" on a server, and node 3's dashboard shows that server `draining`; then, with the
//! other two nodes paused, node 3's dashboard keeps showing its state and says it has no
//! leader. Chromium is driven over the DevTools protocol (a WebSocket), nothing else.
//!
//! Needs a Chromium binary (`apt-get install chromium`; `.ci/run` installs it). Without
//! one the test says so and passes: `cargo test` must work on a machine with only Rust.
//! `RAFTGATE_SCREENSHOTS=DIR` saves the screenshots there (docs/img is made that way);
//! otherwise they go to the target directory.

#[path = "support/api_fixture.rs"]
mod fixture;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

const WAIT: Duration = Duration::from_secs(20);

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RAFTGATE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| {
            ["chromium", "chromium-browser", "google-chrome"]
                .into_iter()
                .map(move |n| d.join(n))
        })
        .find(|p| p.is_file())
}

struct Browser {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Browser {
    fn start(bin: &Path) -> Browser {
        let profile =
            std::env::temp_dir().join(format!("raftgate-chromium-{}", std::process::id()));
        let mut child = Command::new(bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,800",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromium printed its DevTools address")
                .expect("line");
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                break rest
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port");
            }
        };
        // Keep draining stderr so chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Browser {
            child,
            port,
            profile,
        }
    }

    /// A new tab on `url`, driven over its own DevTools WebSocket.
    fn open(&self, url: &str) -> Page {
        let body = devtools_http(self.port, &format!("/json/new?{url}"));
        let target: Value = serde_json::from_str(&body).expect("target json");
        let ws = target["webSocketDebuggerUrl"].as_str().expect("ws url");
        let (socket, _) = tungstenite::connect(ws).expect("devtools socket");
        let mut page = Page { socket, next: 0 };
        page.call("Page.enable", json!({}));
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One request to Chromium's DevTools HTTP endpoint (it keeps connections open, so the
/// body is read by its length).
fn devtools_http(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("devtools http");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    assert!(status.contains(" 200 "), "{status}");
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().expect("length");
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    String::from_utf8(body).expect("utf-8")
}

struct Page {
    socket: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .expect("send");
        loop {
            let m = self.socket.read().expect("devtools answer");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page; its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits until `js` evaluates to true in the page.
    fn wait_for(&mut self, js: &str, what: &str) {
        let t = Instant::now();
        while t.elapsed() < WAIT {
            if self.eval(js) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = self.eval("document.body.innerText");
        panic!("{what} never happened; the page says:\n{text}");
    }

    fn screenshot(&mut self, name: &str) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("png data"))
            .expect("base64");
        let dir = std::env::var_os("RAFTGATE_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), png).expect("screenshot");
    }
}

fn state_of(server: u64) -> String {
    format!("(document.querySelector('tr[data-server=\"{server}\"] td.state') || {{}}).textContent")
}

#[test]
fn drain_on_node_1_shows_draining_on_node_3_and_node_3_says_when_it_loses_the_leader() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: the dashboard browser test needs Chromium (apt-get install chromium, \
             or RAFTGATE_CHROMIUM=/path/to/chrome); .ci/run installs it"
        );
        return;
    };
    let (mut c, _, _) = fixture::start();
    let browser = Browser::start(&bin);
    let url =
        |i: usize, tab: &str| format!("http://{}/dashboard.html?tab={tab}", c.members[i].http);

    let mut one = browser.open(&url(0, "upstreams"));
    one.wait_for(
        "!!document.querySelector('button[data-act=\"drain\"][data-id=\"0\"]')",
        "node 1's dashboard showing a writable upstream",
    );
    assert_eq!(one.eval(&state_of(0)), json!("up"));
    one.eval("document.querySelector('button[data-act=\"drain\"][data-id=\"0\"]').click(); true");
    one.wait_for(
        &format!("{} === 'draining'", state_of(0)),
        "node 1 showing the drain",
    );
    one.screenshot("dashboard-upstreams.png");

    let mut three = browser.open(&url(2, "upstreams"));
    three.wait_for(
        &format!("{} === 'draining'", state_of(0)),
        "node 3's dashboard showing server 0 draining",
    );
    assert_eq!(three.eval(&state_of(1)), json!("up"));
    let (_, body) = c
        .call(2, "GET", "/api/2/http/upstreams/backend/servers/0", "")
        .expect("api");
    assert!(body.contains("\"drain\":true"), "{body}");

    // A drain through node 2's API shows in node 3's dashboard as well.
    let (status, body) = c
        .call(
            1,
            "PATCH",
            "/api/2/http/upstreams/backend/servers/1",
            r#"{"drain":true}"#,
        )
        .expect("patch");
    assert_eq!(status, 200, "{body}");
    three.wait_for(
        &format!("{} === 'draining'", state_of(1)),
        "node 3's dashboard showing server 1 drained through node 2",
    );

    // The Cluster tab: every node with its role and replication figures.
    three.eval("document.querySelector('nav button[data-tab=\"cluster\"]').click(); true");
    three.wait_for(
        "document.querySelectorAll('#nodes tr[data-node]').length === 3",
        "node 3's Cluster tab listing three nodes",
    );
    three.screenshot("dashboard-cluster.png");

    // A follower cut off from the others loses the leader; its page keeps showing its
    // applied state and says why. Node 3 unless node 3 leads (a leader cut off may stay
    // leader for a while), then node 1.
    let leader = c.leader(fixture::READY).expect("a leader");
    let (watched, page) = if leader == 2 {
        (0, &mut one)
    } else {
        (2, &mut three)
    };
    page.eval("document.querySelector('nav button[data-tab=\"upstreams\"]').click(); true");
    let others: Vec<usize> = (0..3).filter(|i| *i != watched).collect();
    for &i in &others {
        c.pause(i);
    }
    page.wait_for(
        "document.getElementById('banner').textContent.includes('no leader')",
        "the cut-off node's dashboard saying it has no leader",
    );
    page.wait_for(
        &format!("{} === 'draining'", state_of(0)),
        "the cut-off node's dashboard still showing its applied state",
    );
    page.screenshot("dashboard-no-leader.png");
    for &i in &others {
        c.resume(i);
    }
}
