//! Compiles `proto/raftgate.proto` with the protoc binary vendored by the
//! `protoc-bin-vendored` crate, so a fresh machine needs nothing but cargo (no system
//! protoc, no PATH lookups).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts run single-threaded before the crate compiles, so setting the
    // variable prost-build reads is race-free here.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/raftgate.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `bytes::Bytes` fields let a snapshot be cut into chunks without copying it.
        .bytes(".")
        .compile_protos(&["proto/raftgate.proto"], &["proto"])?;
    Ok(())
}
