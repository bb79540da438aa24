//! The `raftgate` command: nginx's flags (`-c`, `-p`, `-t`, `-s`, `-v`) plus `dev`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::collections::BTreeMap;
use std::sync::Arc;

use raftgate::cluster::{Node, NodeOptions};
use raftgate::config::cluster::{ClusterConf, Overrides};
use raftgate::config::{self, Config};
use raftgate::runtime::{Runtime, Source, Stop};

const DEFAULT_CONF: &str = "/etc/raftgate/raftgate.conf";

const USAGE: &str =
    "usage: raftgate [-h] [-v] [-t] [-c FILE] [-p PREFIX] [-s stop|quit|reload|reopen]
       raftgate dev [--listen ADDR] [--data-dir DIR]
       raftgate cluster local [--nodes N] [--dir DIR] [--http-port P] [--raft-port P]

  -c FILE    configuration file (default /etc/raftgate/raftgate.conf)
  -p PREFIX  directory that relative paths in the configuration resolve against
             (default: the directory of the configuration file)
  -t         test the configuration: print every error as FILE:LINE: message, then exit
  -s SIGNAL  send SIGNAL to the running process named by the pid file
  -v         print the version
  --node-id N, --raft-listen IP:PORT, --data-dir DIR
             override the cluster block's node_id, listen and data_dir (also
             RAFTGATE_NODE_ID, RAFTGATE_RAFT_LISTEN, RAFTGATE_DATA_DIR; flags win)
  dev        single-node development mode on an embedded configuration, with three
             demo backends; data in --data-dir (default ./raftgate-dev)
  cluster local
             N nodes (default 3) as real processes on loopback, each in DIR/nN
             (default ./raftgate-local): HTTP on ports P.. (default 8081..), Raft
             on 7101..; port 0 picks free ports. Ctrl-C stops them all";

struct Cli {
    conf: Option<PathBuf>,
    prefix: Option<PathBuf>,
    test: bool,
    signal: Option<String>,
    dev: Option<raftgate::dev::DevOptions>,
    local: Option<raftgate::local::LocalOptions>,
    /// `--node-id`, `--raft-listen`, `--data-dir`: over the `cluster` block.
    cluster: Overrides,
}

fn parse_args(args: &[String]) -> Result<Option<Cli>, String> {
    let mut cli = Cli {
        conf: None,
        prefix: None,
        test: false,
        signal: None,
        dev: None,
        local: None,
        cluster: Overrides::default(),
    };
    if args.first().map(String::as_str) == Some("cluster") {
        return match args.get(1).map(String::as_str) {
            Some("local") => {
                cli.local = Some(raftgate::local::LocalOptions::parse(&args[2..])?);
                Ok(Some(cli))
            }
            _ => Err("usage: raftgate cluster local [--nodes N] [--dir DIR] [--http-port P] [--raft-port P]".into()),
        };
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "-?" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "-v" | "-V" | "--version" => {
                println!("raftgate version: raftgate/{}", raftgate::VERSION);
                return Ok(None);
            }
            "-t" | "-T" => cli.test = true,
            "-q" => {}
            "-c" => {
                cli.conf = Some(PathBuf::from(
                    it.next().ok_or("option \"-c\" requires file name")?,
                ))
            }
            "-p" => {
                cli.prefix = Some(PathBuf::from(
                    it.next().ok_or("option \"-p\" requires directory name")?,
                ))
            }
            "-s" => cli.signal = Some(it.next().ok_or("option \"-s\" requires parameter")?.clone()),
            "--node-id" => {
                let v = it.next().ok_or("--node-id requires a number")?;
                cli.cluster.node_id = Some(
                    v.parse()
                        .ok()
                        .filter(|n: &u64| *n > 0)
                        .ok_or_else(|| format!("invalid --node-id \"{v}\""))?,
                );
            }
            "--raft-listen" => {
                let v = it.next().ok_or("--raft-listen requires an address")?;
                cli.cluster.listen = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --raft-listen \"{v}\": use IP:PORT"))?,
                );
            }
            "--data-dir" => {
                cli.cluster.data_dir = Some(PathBuf::from(
                    it.next().ok_or("--data-dir requires a directory")?,
                ))
            }
            "dev" => {
                let mut d = raftgate::dev::DevOptions::default();
                while let Some(o) = it.next() {
                    match o.as_str() {
                        "--listen" => {
                            d.listen = it.next().ok_or("--listen requires an address")?.clone()
                        }
                        "--data-dir" => {
                            d.data_dir =
                                PathBuf::from(it.next().ok_or("--data-dir requires a directory")?)
                        }
                        other => return Err(format!("invalid dev option \"{other}\"")),
                    }
                }
                cli.dev = Some(d);
            }
            other => return Err(format!("invalid option: \"{other}\"")),
        }
    }
    Ok(Some(cli))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse_args(&args) {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftgate: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(l) = cli.local {
        return raftgate::local::run(l);
    }
    if let Some(d) = cli.dev {
        return run_dev(d);
    }
    let path = cli.conf.unwrap_or_else(|| PathBuf::from(DEFAULT_CONF));
    let prefix = cli.prefix.unwrap_or_else(|| {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let source = Source::File {
        path: path.clone(),
        prefix: prefix.clone(),
    };
    let loaded = source.load();
    if cli.test {
        // The start-time cluster checks (flags and environment included) belong to the
        // test too: a configuration that passes -t must start.
        let loaded = loaded.and_then(|c| {
            let o = Overrides::from_env().map_err(|e| vec![e])?;
            config::cluster::effective(&c.main, &cli.cluster.clone().or(o)).map_err(|e| vec![e])?;
            Ok(c)
        });
        return match loaded {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("raftgate: [warn] {w}");
                }
                eprintln!(
                    "raftgate: the configuration file {} syntax is ok",
                    path.display()
                );
                eprintln!(
                    "raftgate: configuration file {} test is successful",
                    path.display()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("raftgate: [emerg] {e}");
                }
                eprintln!(
                    "raftgate: configuration file {} test failed",
                    path.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("raftgate: [emerg] {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(sig) = cli.signal {
        let pid = config
            .main
            .pid
            .clone()
            .unwrap_or_else(|| config::main::default_pid_path(&prefix));
        return match raftgate::signals::send(&pid, &sig) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("raftgate: [error] {e}");
                ExitCode::FAILURE
            }
        };
    }
    let pid = config
        .main
        .pid
        .clone()
        .unwrap_or_else(|| config::main::default_pid_path(&prefix));
    let overrides = match Overrides::from_env() {
        Ok(env) => cli.cluster.or(env),
        Err(e) => {
            eprintln!("raftgate: [emerg] {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = match config::cluster::effective(&config.main, &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftgate: [emerg] {e}");
            return ExitCode::FAILURE;
        }
    };
    // Without a data_dir anywhere, the node keeps its state in `data/` under the prefix.
    let data_dir = cluster
        .data_dir
        .clone()
        .unwrap_or_else(|| prefix.join("data"));
    serve(config, source, Some(pid), None, (cluster, data_dir))
}

/// `worker_processes 1` gets a single-threaded runtime: one core's worth of work with
/// no cross-thread wake-ups, like one nginx worker. More workers share a work-stealing
/// runtime.
///
/// `auto` (or no directive) means one worker per core this process may run on — its CPU
/// affinity, as nginx's `auto` — so a node pinned to one core (`taskset`, a container's
/// cpuset) gets the single-threaded runtime too.
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.or_else(|| {
        std::thread::available_parallelism()
            .ok()
            .map(std::num::NonZeroUsize::get)
    });
    if threads == Some(1) && std::env::var_os("RAFTGATE_MULTI_THREAD").is_none() {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.build()
}

/// Binds, writes the pid file, serves until a stop signal. `banner` is printed once
/// listening (dev mode prints its URLs).
/// Starts this process's cluster node: a member of the `cluster {}` block's cluster, or a
/// single-node cluster of its own.
async fn start_node(c: &ClusterConf, data_dir: PathBuf) -> Result<Node, String> {
    let id = c.node_id.unwrap_or(raftgate_raft::SINGLE_NODE_ID);
    let members: BTreeMap<u64, String> = if c.peers.is_empty() {
        BTreeMap::from([(id, c.listen.map(|a| a.to_string()).unwrap_or_default())])
    } else {
        c.peers.clone()
    };
    let listener = match c.listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("bind() to {a} for Raft failed ({e})"))?,
        ),
        None => None,
    };
    Node::start(NodeOptions {
        id,
        listener,
        members,
        data_dir,
        raft: NodeOptions::raft_config(c.snapshot_entries, c.election_timeout)?,
        network: NodeOptions::network_config(
            c.election_timeout,
            c.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
        ),
    })
    .await
}

fn serve(
    config: Config,
    source: Source,
    pid: Option<PathBuf>,
    banner: Option<Banner>,
    cluster: (ClusterConf, PathBuf),
) -> ExitCode {
    for w in &config.warnings {
        eprintln!("raftgate: [warn] {w}");
    }
    if let Err(e) =
        raftgate::log::configure(config.main.error_log.as_deref(), config.main.error_level)
    {
        eprintln!("raftgate: [emerg] cannot open the error log: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match runtime(config.main.worker_threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftgate: [emerg] cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let (cluster, data_dir) = cluster;
        let node = match start_node(&cluster, data_dir).await {
            Ok(n) => Arc::new(n),
            Err(e) => {
                eprintln!("raftgate: [emerg] {e}");
                return ExitCode::FAILURE;
            }
        };
        raftgate::cluster::expiry::spawn(Arc::downgrade(&node));
        let commands = config.cluster_commands();
        let server = match Runtime::start_with(config, source, Some(node.clone())).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("raftgate: [emerg] bind() failed ({e})");
                return ExitCode::FAILURE;
            }
        };
        if let Some(p) = &pid {
            if let Err(e) = write_pid(p) {
                eprintln!(
                    "raftgate: [emerg] cannot write the pid file \"{}\": {e}",
                    p.display()
                );
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = raftgate::signals::install(server.clone()) {
            eprintln!("raftgate: [emerg] cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        raftgate::log_notice!(
            "raftgate/{} started, listening on {:?}",
            raftgate::VERSION,
            server.bound().iter().map(|b| b.1).collect::<Vec<_>>()
        );
        raftgate::cluster::configure(node.clone(), commands);
        if let Some(b) = banner {
            b(&server);
        }
        let (how, failure) = tokio::select! {
            how = server.stopped() => (how, None),
            why = node.failed() => (Stop::Fast, Some(why)),
        };
        if let Some(why) = &failure {
            raftgate::log_error!(
                "raft stopped ({why}): exiting so that the node restarts from its data directory"
            );
            eprintln!("raftgate: [emerg] raft stopped ({why})");
        }
        let _ = node.raft.shutdown().await;
        raftgate::http::access_log::flush_all();
        if let Some(p) = &pid {
            let _ = std::fs::remove_file(p);
        }
        if failure.is_some() {
            return ExitCode::FAILURE;
        }
        raftgate::log_notice!(
            "exiting ({})",
            if how == Stop::Graceful {
                "graceful"
            } else {
                "fast"
            }
        );
        ExitCode::SUCCESS
    })
}

/// Printed once the listeners are bound (dev mode prints its URLs).
type Banner = Box<dyn FnOnce(&Runtime) + Send>;

fn write_pid(p: &Path) -> std::io::Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(p, format!("{}\n", std::process::id()))
}

fn run_dev(opts: raftgate::dev::DevOptions) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(opts.data_dir.join("logs")) {
        eprintln!(
            "raftgate: [emerg] cannot create {}: {e}",
            opts.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let data = match std::fs::canonicalize(&opts.data_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("raftgate: [emerg] {}: {e}", opts.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    // The demo backends run on a small runtime of their own, so they keep answering
    // while the proxy is reloaded or stopped.
    let backends_rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raftgate: [emerg] cannot start the demo backends: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started: std::io::Result<Vec<std::net::SocketAddr>> = backends_rt.block_on(async {
        let mut v = Vec::new();
        for i in 1..=3 {
            v.push(raftgate::dev::demo_backend(format!("backend-{i}")).await?);
        }
        Ok(v)
    });
    let backends: [std::net::SocketAddr; 3] = match started.map(<[_; 3]>::try_from) {
        Ok(Ok(a)) => a,
        _ => {
            eprintln!("raftgate: [emerg] cannot start the demo backends");
            return ExitCode::FAILURE;
        }
    };
    let text = raftgate::dev::render(&opts.listen, &data, &backends);
    let source = Source::Text {
        name: "<dev config>".into(),
        text: text.clone(),
        prefix: data.clone(),
    };
    let config = match source.load() {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("raftgate: [emerg] {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::write(data.join("dev.conf"), &text);
    let pid = config.main.pid.clone();
    // Dev mode is a single-node cluster whose state lives in its data directory.
    let cluster = (ClusterConf::default(), data.clone());
    let banner: Banner = Box::new(move |rt: &Runtime| {
        let addr = rt
            .bound()
            .first()
            .map(|b| b.1.to_string())
            .unwrap_or_default();
        println!("raftgate {} dev mode", raftgate::VERSION);
        println!("  proxy:     http://{addr}/   (round robin over 3 demo backends)");
        println!("  health:    http://{addr}/healthz");
        println!("  api:       http://{addr}/api/2/http/keyvals/demo   (POST {{\"key\":\"value\"}} to add)");
        println!(
            "  backends:  {}",
            backends
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  data dir:  {}   (access log in logs/, config in dev.conf)",
            data.display()
        );
        println!(
            "  reload:    kill -HUP $(cat {}/raftgate.pid)",
            data.display()
        );
        println!("Press Ctrl-C to stop.");
    });
    let code = serve(config, source, pid, Some(banner), cluster);
    backends_rt.shutdown_background();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_parse_like_nginx() {
        let c = parse_args(&args("-t -c /x.conf"))
            .expect("ok")
            .expect("cli");
        assert!(c.test);
        assert_eq!(c.conf.as_deref(), Some(Path::new("/x.conf")));
        let c = parse_args(&args("-s reload -c a.conf"))
            .expect("ok")
            .expect("cli");
        assert_eq!(c.signal.as_deref(), Some("reload"));
        let c = parse_args(&args("dev --listen 127.0.0.1:0 --data-dir /tmp/d"))
            .expect("ok")
            .expect("cli");
        let d = c.dev.expect("dev");
        assert_eq!(d.listen, "127.0.0.1:0");
        assert!(parse_args(&args("-c")).is_err());
        assert!(parse_args(&args("--bogus")).is_err());
    }
}
