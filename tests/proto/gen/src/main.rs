//! Compiles `tests/proto/echo.proto` into the committed tonic code and descriptor set.

use std::path::Path;

fn main() {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fds = protox::compile([proto.join("echo.proto")], [&proto]).expect("echo.proto compiles");
    // The descriptor set, imports included, as tonic-reflection (and the agent) take it.
    std::fs::write(proto.join("echo.bin"), prost::Message::encode_to_vec(&fds)).unwrap();
    let out = tempdir();
    tonic_prost_build::configure()
        .build_transport(false)
        .out_dir(&out)
        .compile_fds(fds)
        .expect("code generation");
    std::fs::copy(out.join("hypertrace.test.v1.rs"), proto.join("echo.rs")).unwrap();
    println!("wrote {}", proto.join("echo.rs").display());
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hypertrace-proto-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
