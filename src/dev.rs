//! `raftgate dev`: a single node on an embedded configuration, with three demo backends
//! started in-process so that balancing is visible from the first request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The embedded configuration; `{{...}}` are filled in at start.
pub const DEV_CONFIG: &str = r#"# raftgate dev: single node, embedded configuration.
worker_processes auto;
pid {{DATA}}/raftgate.pid;
error_log stderr notice;
events {}
http {
    log_format dev '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                   'upstream=$upstream_addr rt=$request_time';
    access_log {{DATA}}/logs/access.log dev;

    # A key-value zone, replicated (here: a single-node cluster in the data dir).
    keyval_zone zone=demo:1m;

    upstream demo {
        zone demo_upstreams 64k;
        server {{B1}};
        server {{B2}};
        server {{B3}};
        keepalive 16;
    }

    server {
        listen {{LISTEN}};
        status_zone dev;

        location / {
            proxy_pass http://demo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }

        # The NGINX Plus API v2, writable from this machine only.
        location /api {
            api write=on;
            allow 127.0.0.1;
            deny all;
        }

        # The live dashboard (embedded in the binary): http://127.0.0.1:8080/dashboard.html
        location = /dashboard.html {
        }

        location = /healthz {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
"#;

pub struct DevOptions {
    pub listen: String,
    pub data_dir: PathBuf,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("raftgate-dev"),
        }
    }
}

/// Starts a demo backend that answers every request with its name, method and URI.
pub async fn demo_backend(name: String) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let name = name.clone();
                    async move {
                        let line = format!("{} answered {} {}\n", name, req.method(), req.uri());
                        // Drain the body so keep-alive works for uploads too.
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "text/plain")
                                .header("x-backend", name.as_str())
                                .body(Full::new(Bytes::from(line)))
                                .unwrap_or_default(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The embedded configuration with addresses and the data directory filled in.
pub fn render(listen: &str, data_dir: &Path, backends: &[SocketAddr; 3]) -> String {
    DEV_CONFIG
        .replace("{{DATA}}", &data_dir.display().to_string())
        .replace("{{LISTEN}}", listen)
        .replace("{{B1}}", &backends[0].to_string())
        .replace("{{B2}}", &backends[1].to_string())
        .replace("{{B3}}", &backends[2].to_string())
}
