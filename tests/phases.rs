//! The request phases over real sockets: server and location selection, the rewrite
//! module, map, access control, error pages, headers, static files, proxy URIs.

mod common;

use bytes::Bytes;
use common::*;
use http::Request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_matching_follows_nginx_order() {
    let g = start(
        r#"
        events {}
        http {
            server {
                listen 127.0.0.1:0;
                location = /exact      { return 200 "exact"; }
                location /exact        { return 200 "prefix-exact"; }
                location ^~ /static/   { return 200 "noregex"; }
                location /images/      { return 200 "prefix-images"; }
                location ~ \.(png|jpg)$ { return 200 "regex-$1"; }
                location ~* \.GIF$     { return 200 "caseless"; }
                location /             { return 200 "root"; }
                location /nest/ {
                    location /nest/inner/ { return 200 "nested-prefix"; }
                    location ~ /nest/.*\.txt$ { return 200 "nested-regex"; }
                    return 200 "nest";
                }
                location ~ ^/nest/.*\.txt$ { return 200 "outer-regex"; }
            }
        }"#,
    )
    .await;
    let a = g.addr();
    let cases = [
        ("/exact", "exact"),
        ("/exact/more", "prefix-exact"),
        ("/static/a.png", "noregex"),
        ("/images/a.png", "regex-png"),
        ("/images/a.txt", "prefix-images"),
        ("/x/Y.gif", "caseless"),
        ("/other", "root"),
        ("/nest/inner/x", "nested-prefix"),
        ("/nest/a.txt", "nested-regex"),
        ("/nest/b", "nest"),
        // decoded and normalised before matching
        ("/images/../exact", "exact"),
        ("/%65xact", "exact"),
    ];
    for (path, want) in cases {
        let r = get(a, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_and_rewrite() {
    let g = start(
        r#"
        events {}
        http {
            server {
                listen 127.0.0.1:0;
                rewrite ^/old/(.*)$ /new/$1 last;
                location /new/ { return 200 "new:$uri:$args"; }
                location /perm { rewrite ^/perm/(.*)$ /target/$1 permanent; }
                location /temp { rewrite ^ http://example.com/x redirect; }
                location /args { rewrite ^/args$ /new/a?x=1; }
                location /noargs { rewrite ^/noargs$ /new/b?; }
                location /brk {
                    rewrite ^/brk/(.*)$ /moved/$1 break;
                    return 200 "never reached: break ends the rewrite module";
                }
                location /chain {
                    rewrite ^/chain$ /step1;
                    rewrite ^/step1$ /new/step2;
                }
                location = /r301 { return 301 /elsewhere; }
                location = /r302url { return https://example.org/p; }
                location = /text { return 404 "custom not found"; }
                location = /code { return 403; }
                location = /loop { rewrite ^ /loop last; }
                location = /close { return 444; }
            }
        }"#,
    )
    .await;
    let a = g.addr();
    assert_eq!(get(a, "/old/p?q=1").await.body, "new:/new/p:q=1");
    let r = get(a, "/perm/z?k=v").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(&*format!("http://localhost:{}/target/z?k=v", a.port()))
    );
    let r = get(a, "/temp").await;
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("http://example.com/x"))
    );
    assert_eq!(get(a, "/args?orig=2").await.body, "new:/new/a:x=1&orig=2");
    assert_eq!(get(a, "/noargs?orig=2").await.body, "new:/new/b:");
    let r = get(a, "/brk/q").await;
    assert_eq!(
        r.status, 404,
        "after break the content phase serves /moved/q: {}",
        r.body
    );
    assert_eq!(get(a, "/chain").await.body, "new:/new/step2:");
    let r = get(a, "/r301").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(&*format!("http://localhost:{}/elsewhere", a.port()))
    );
    assert!(r.body.contains("301 Moved Permanently"));
    assert_eq!(
        get(a, "/r302url").await.header("location"),
        Some("https://example.org/p")
    );
    let r = get(a, "/text").await;
    assert_eq!((r.status, r.body.as_str()), (404, "custom not found"));
    let r = get(a, "/code").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("<h1>403 Forbidden</h1>"));
    assert_eq!(
        get(a, "/loop").await.status,
        500,
        "rewrite cycle ends in 500"
    );
    assert!(
        try_send(a, Request::get("/close").body(Bytes::new()).expect("req"))
            .await
            .is_err(),
        "444 closes without a response"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_with_regex_captures_set_and_if() {
    let g = start(
        r#"
        events {}
        http {
            map $uri $section {
                default           "none";
                /exact            "EXACT";
                ~^/user/(\d+)/    "user-$1";
                ~*^/DOC/(?P<name>[a-z]+) "doc-$1";
            }
            map $http_host $site {
                hostnames;
                default        other;
                example.com    main;
                *.example.com  sub;
                www.example.*  www;
            }
            server {
                listen 127.0.0.1:0;
                location / {
                    set $greeting "hello";
                    if ($arg_who) { set $greeting "hello $arg_who"; }
                    if ($arg_who = admin) { return 403; }
                    if ($http_user_agent ~* "^curl/(\d+)") { return 200 "curl major $1"; }
                    if ($request_method !~ ^(GET|HEAD)$) { return 405; }
                    return 200 "$section|$site|$greeting";
                }
            }
        }"#,
    )
    .await;
    let a = g.addr();
    assert_eq!(get(a, "/user/42/profile").await.body, "user-42|other|hello");
    assert_eq!(get(a, "/doc/readme").await.body, "doc-readme|other|hello");
    assert_eq!(
        get(a, "/EXACT").await.body,
        "EXACT|other|hello",
        "map strings match ignoring case"
    );
    assert_eq!(
        get_host(a, "/x", "example.com").await.body,
        "none|main|hello"
    );
    assert_eq!(
        get_host(a, "/x", "api.example.com").await.body,
        "none|sub|hello"
    );
    assert_eq!(
        get_host(a, "/x", "www.example.org").await.body,
        "none|www|hello"
    );
    assert_eq!(
        get_host(a, "/x", "elsewhere.net").await.body,
        "none|other|hello"
    );
    assert_eq!(get(a, "/x?who=bob").await.body, "none|other|hello bob");
    assert_eq!(get(a, "/x?who=admin").await.status, 403);
    let r = send(
        a,
        Request::get("/")
            .header("host", "h")
            .header("user-agent", "curl/8.1")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(r.body, "curl major 8");
    let r = send(
        a,
        Request::post("/")
            .header("host", "h")
            .body(Bytes::from("x"))
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_phase_details_match_nginx() {
    let dir = temp_dir("rwdetail");
    std::fs::write(dir.join("present.txt"), "here").expect("write");
    let conf = format!(
        r#"
        events {{}}
        http {{
            server {{
                listen 127.0.0.1:0;
                root {root};
                server_tokens off;
                set $trail "${{trail}}s";
                error_page 404 /nf;
                location = /nf {{ return 200 "error page"; }}
                location /a {{ rewrite ^ /b last; }}
                location /b {{ return 200 "trail=$trail"; }}
                location /text404 {{ return 404 "kept text"; }}
                location /bare404 {{ return 404; }}
                location /f/ {{
                    if (-f $document_root/present.txt) {{ return 200 "exists:$request_filename"; }}
                    return 200 "missing";
                }}
                location /cap {{ return 200 "[$10]"; }}
                location ~ ^/cap2/(x) {{ return 200 "[$10]"; }}
            }}
        }}"#,
        root = dir.display()
    );
    let g = start(&conf).await;
    let a = g.addr();
    assert_eq!(
        get(a, "/a").await.body,
        "trail=s",
        "server rewrites do not run again after `last`"
    );
    let r = get(a, "/text404").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "kept text"),
        "return with text is not replaced by error_page"
    );
    let r = get(a, "/bare404").await;
    assert_eq!((r.status, r.body.as_str()), (404, "error page"));
    assert_eq!(
        get(a, "/f/x").await.body,
        format!("exists:{}/f/x", dir.display())
    );
    assert_eq!(
        get(a, "/cap2/x").await.body,
        "[x0]",
        "$10 is $1 followed by 0"
    );
    assert_eq!(
        get(a, "/b").await.header("server"),
        Some("raftgate"),
        "server_tokens off hides the version"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_selection_by_name_and_default_server() {
    let g = start(
        r#"
        events {}
        http {
            server { listen 127.0.0.1:0; server_name first.test; return 200 "first"; }
            server { listen 127.0.0.1:0 default_server; server_name dflt.test; return 200 "default"; }
            server { listen 127.0.0.1:0; server_name *.wild.test; return 200 "wild"; }
            server { listen 127.0.0.1:0; server_name ~^(?<app>[a-z]+)\.apps\.test$; return 200 "app-$app"; }
        }"#,
    )
    .await;
    let a = g.addr();
    assert_eq!(get_host(a, "/", "first.test").await.body, "first");
    assert_eq!(get_host(a, "/", "FIRST.test:8080").await.body, "first");
    assert_eq!(get_host(a, "/", "first.test.").await.body, "first");
    assert_eq!(get_host(a, "/", "x.wild.test").await.body, "wild");
    assert_eq!(get_host(a, "/", "unknown.test").await.body, "default");
    assert_eq!(get_host(a, "/", "shop.apps.test").await.body, "app-shop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_error_pages_and_add_header() {
    let dir = temp_dir("errpages");
    std::fs::write(dir.join("404.html"), "custom 404 page").expect("write");
    let conf = format!(
        r#"
        events {{}}
        http {{
            add_header X-Http http-level;
            server {{
                listen 127.0.0.1:0;
                root {root};
                error_page 404 /404.html;
                error_page 500 502 =200 @fallback;
                location /private/ {{ deny 127.0.0.1; allow all; }}
                location /open/ {{ allow 127.0.0.0/8; deny all; return 200 "open"; }}
                location /h {{
                    add_header X-Loc loc-level;
                    add_header X-Always yes always;
                    return 200 "h";
                }}
                location /h410 {{ add_header X-Loc no; add_header X-Always yes always; return 410; }}
                location /broken {{ proxy_pass http://127.0.0.1:1; }}
                location @fallback {{ return 200 "fallback served"; }}
            }}
        }}"#,
        root = dir.display()
    );
    let g = start(&conf).await;
    let a = g.addr();
    let r = get(a, "/private/x").await;
    assert_eq!(r.status, 403);
    assert_eq!(get(a, "/open/x").await.body, "open");
    let r = get(a, "/missing").await;
    assert_eq!((r.status, r.body.as_str()), (404, "custom 404 page"));
    let r = get(a, "/h").await;
    assert_eq!(r.header("x-loc"), Some("loc-level"));
    assert_eq!(
        r.header("x-http"),
        None,
        "a level with add_header replaces the inherited list"
    );
    let r = get(a, "/h410").await;
    assert_eq!(r.status, 410);
    assert_eq!(
        (r.header("x-loc"), r.header("x-always")),
        (None, Some("yes"))
    );
    let r = get(a, "/broken").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "fallback served"),
        "502 goes to the named location with =200"
    );
    assert_eq!(
        get(a, "/open/x").await.header("server"),
        Some(&*format!("raftgate/{}", raftgate::VERSION))
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_index_types_and_conditional_get() {
    let dir = temp_dir("static");
    std::fs::create_dir_all(dir.join("docs")).expect("mkdir");
    std::fs::write(dir.join("index.html"), "<h1>home</h1>").expect("write");
    std::fs::write(dir.join("style.CSS"), "body{}").expect("write");
    std::fs::write(dir.join("docs/readme.txt"), "read me").expect("write");
    let conf = format!(
        "events {{}} http {{ server {{ listen 127.0.0.1:0; root {}; }} }}",
        dir.display()
    );
    let g = start(&conf).await;
    let a = g.addr();
    let r = get(a, "/").await;
    assert_eq!(
        (r.status, r.body.as_str(), r.header("content-type")),
        (200, "<h1>home</h1>", Some("text/html"))
    );
    let r = get(a, "/style.CSS").await;
    assert_eq!(r.header("content-type"), Some("text/css"));
    let etag = r.header("etag").expect("etag").to_string();
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let r = send(
        a,
        Request::get("/style.CSS")
            .header("if-none-match", etag.as_str())
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (304, ""));
    let r = send(
        a,
        Request::get("/style.CSS")
            .header("if-modified-since", lm.as_str())
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, 304);
    let r = send(
        a,
        Request::get("/docs/readme.txt")
            .header("range", "bytes=2-5")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str(), r.header("content-range")),
        (206, "ad m", Some("bytes 2-5/7"))
    );
    let r = send(
        a,
        Request::get("/docs/readme.txt")
            .header("range", "bytes=-2")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (206, "me"));
    let r = send(
        a,
        Request::get("/docs/readme.txt")
            .header("range", "bytes=7-")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */7"))
    );
    let r = send(
        a,
        Request::get("/docs/readme.txt")
            .header("range", "bytes=0-1")
            .header("if-range", "\"stale\"")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "read me"),
        "If-Range with an old validator gets the whole file"
    );
    let r = send(
        a,
        Request::head("/docs/readme.txt")
            .header("range", "bytes=0-1")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!((r.status, r.header("content-length")), (206, Some("2")));
    let r = get(a, "/docs").await;
    assert_eq!(r.status, 301);
    assert!(r.header("location").is_some_and(|l| l.ends_with("/docs/")));
    assert_eq!(
        get(a, "/docs/").await.status,
        403,
        "directory without index"
    );
    assert_eq!(get(a, "/docs/readme.txt").await.body, "read me");
    assert_eq!(get(a, "/nope").await.status, 404);
    assert_eq!(get(a, "/../etc/passwd").await.status, 400);
    let r = send(
        a,
        Request::post("/docs/readme.txt")
            .body(Bytes::from("x"))
            .expect("req"),
    )
    .await;
    assert_eq!(r.status, 405);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pass_uri_rules_and_default_headers() {
    let backend = backend("b", Behave::Echo).await;
    let b = backend.addr;
    let conf = format!(
        r#"
        events {{}}
        http {{
            upstream grp {{ server {b}; }}
            server {{
                listen 127.0.0.1:0;
                location /plain/ {{ proxy_pass http://grp; }}
                location /swap/ {{ proxy_pass http://{b}/other/; }}
                location /root/ {{ proxy_pass http://grp/; }}
                location /rw/ {{ rewrite ^/rw/(.*)$ /changed/$1 break; proxy_pass http://grp/ignored/; }}
                location ~ ^/re/ {{ proxy_pass http://grp; }}
                location /hdr/ {{
                    proxy_set_header Host $host;
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_set_header X-Empty "";
                    proxy_set_header X-FF $proxy_add_x_forwarded_for;
                    proxy_pass http://grp;
                }}
                location /v11/ {{ proxy_http_version 1.1; proxy_pass http://grp; }}
            }}
        }}"#
    );
    let g = start(&conf).await;
    let a = g.addr();
    let r = get(a, "/plain/a%20b?x=1").await;
    assert_eq!(
        r.upstream_request(),
        "GET /plain/a%20b?x=1",
        "no URI part: the client's URI as it came"
    );
    assert_eq!(
        r.upstream_header("host"),
        Some("grp"),
        "default Host is $proxy_host"
    );
    assert_eq!(r.upstream_header("connection"), Some("close"));
    assert_eq!(
        get(a, "/swap/p/q?z=2").await.upstream_request(),
        "GET /other/p/q?z=2"
    );
    assert_eq!(get(a, "/root/p").await.upstream_request(), "GET /p");
    assert_eq!(
        get(a, "/rw/x").await.upstream_request(),
        "GET /changed/x",
        "a rewritten URI is sent whole"
    );
    assert_eq!(get(a, "/re/x?k").await.upstream_request(), "GET /re/x?k");
    let r = send(
        a,
        Request::get("/hdr/x")
            .header("host", "client.example")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-empty", "from-client")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "drop me")
            .header("keep-alive", "timeout=5")
            .header("x-keep", "kept")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    assert_eq!(r.upstream_header("host"), Some("client.example"));
    assert_eq!(r.upstream_header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(
        r.upstream_header("x-empty"),
        None,
        "an empty proxy_set_header removes the header"
    );
    assert_eq!(r.upstream_header("x-ff"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(
        r.upstream_header("x-hop"),
        None,
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(r.upstream_header("keep-alive"), None);
    assert_eq!(r.upstream_header("x-keep"), Some("kept"));
    assert_eq!(
        r.header("x-backend"),
        Some("b"),
        "upstream response headers pass through"
    );
    assert_eq!(
        r.header("server"),
        Some(&*format!("raftgate/{}", raftgate::VERSION))
    );
    assert_eq!(get(a, "/v11/").await.upstream_request(), "GET /v11/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_written_with_the_format() {
    let dir = temp_dir("alog");
    let log = dir.join("access.log");
    let conf = format!(
        r#"
        events {{}}
        http {{
            log_format main '$remote_addr "$request" $status $body_bytes_sent "$http_x_note" $request_id';
            log_format js escape=json '{{"uri":"$uri","note":"$http_x_note"}}';
            server {{
                listen 127.0.0.1:0;
                access_log {log} main;
                location /j {{ access_log {log} js; return 200 "json"; }}
                location /c {{ access_log {log}; return 200 "combined"; }}
                location / {{ return 200 "hello"; }}
            }}
        }}"#,
        log = log.display()
    );
    let g = start(&conf).await;
    let a = g.addr();
    send(
        a,
        Request::get("/a?b=c")
            .header("x-note", "say \"hi\"")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    send(
        a,
        Request::get("/j")
            .header("x-note", "q\"uote")
            .body(Bytes::new())
            .expect("req"),
    )
    .await;
    raftgate::http::access_log::flush_all();
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("127.0.0.1 \"GET /a?b=c HTTP/1.1\" 200 5 \"say \\x22hi\\x22\" "),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[0].rsplit(' ').next().map(str::len),
        Some(32),
        "request id"
    );
    assert_eq!(lines[1], r#"{"uri":"/j","note":"q\"uote"}"#);
    drop(g);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_closes_the_connection_after_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = start("events {} http { keepalive_requests 2; server { listen 127.0.0.1:0; return 200 \"ok\"; } }").await;
    let mut s = tokio::net::TcpStream::connect(g.addr())
        .await
        .expect("connect");
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("write");
    let mut all = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_string(&mut all),
    )
    .await;
    assert!(read.is_ok(), "the connection must be closed by the server");
    assert_eq!(all.matches("HTTP/1.1 200").count(), 2, "{all}");
    assert!(
        all.to_ascii_lowercase().contains("connection: close"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_are_computed_once_per_request() {
    let g = start("events {} http { server { listen 127.0.0.1:0; add_header X-Id $request_id; return 200 \"$request_id\"; } }").await;
    let a = g.addr();
    let r1 = get(a, "/").await;
    let r2 = get(a, "/").await;
    assert_eq!(
        r1.header("x-id"),
        Some(r1.body.as_str()),
        "one value per request, wherever it is used"
    );
    assert_eq!(r1.body.len(), 32);
    assert_ne!(r1.body, r2.body, "a new value for each request");
}
