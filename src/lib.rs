//! raftgate: an NGINX Plus–style reverse proxy, load balancer and web server whose
//! runtime state is shared by a cluster through Raft.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; integration tests drive
//! the same entry points in-process.

pub mod api;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod dev;
pub mod http;
pub mod jwt;
pub mod keyval;
pub mod local;
pub mod log;
pub mod metrics;
pub mod runtime;
pub mod signals;
pub mod stream;
pub mod upstream;
pub mod vars;

/// raftgate's version, also `$nginx_version` and the `Server` header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
