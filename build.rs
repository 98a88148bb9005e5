//! Compiles the CRI v1 API (`proto/cri-api/v1/api.proto`) with a pure-Rust protobuf compiler,
//! so a fresh machine needs no `protoc`. Only the client is generated: resizelet serves no CRI.
//! Where the vendored file comes from: `proto/README.md`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/cri-api/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto/cri-api/v1"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
