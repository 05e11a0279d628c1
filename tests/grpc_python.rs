//! A client not written in Rust: Python `grpcio` (from PyPI, installed into `.venv/` by
//! `scripts/install-grpcio.sh`) calls the instrumented tonic server; its spans are checked.
//!
//! Without the venv the test says so and how to install it; with `CI=true` that is a failure.

mod grpc_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use grpc_support::*;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use support::*;

fn python_or_skip(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import grpc, grpc_tools.protoc"])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let why = format!("{} cannot import grpc and grpc_tools", python.display());
    let how = "install them with `scripts/install-grpcio.sh` (creates .venv/ and pip-installs grpcio, grpcio-tools)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and Python grpcio is missing ({why}): {how}");
    }
    // Past the test harness's capture, so that the skip shows in a normal run.
    support::receivers::say(&format!(
        "\n*** {test}: SKIPPED, NOT RUN: Python grpcio is missing ({why}); {how}. ***\n"
    ));
    None
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_against_the_tonic_server() {
    let Some(python) = python_or_skip("python_grpcio_client_against_the_tonic_server") else {
        return;
    };
    let t = agent(|_| {});
    let addr = serve_instrumented().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/echo_client.py");
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(addr.to_string())
            .arg(traceparent)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["message"], "echo: from python");
    assert_eq!(
        lines[1]["messages"],
        serde_json::json!(["echo: py", "echo: py"])
    );
    assert_eq!(lines[2]["message"], "a+b");
    assert_eq!(
        lines[3]["messages"],
        serde_json::json!(["echo: c", "echo: d"])
    );
    assert_eq!(lines[4]["code"], "UNAVAILABLE");

    let spans = t.wait_spans(5);
    let find = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == format!("hypertrace.test.v1.Echo/{name}"))
            .collect::<Vec<_>>()
    };
    for s in &spans {
        assert_eq!(s.span_kind, SpanKind::Server);
        // Each call is a child of the client's traceparent.
        assert_eq!(s.span_context.trace_id().to_string(), TRACE);
        assert_eq!(s.parent_span_id.to_string(), PARENT);
        assert_eq!(attr_str(s, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attr_str(s, "rpc.request.metadata.x-client").as_deref(),
            Some("python")
        );
        let ua = attr_str(s, "rpc.request.metadata.user-agent").unwrap();
        assert!(ua.contains("grpc-python"), "{ua}");
        assert!(attr_str(s, "rpc.request.metadata.:authority").is_some());
    }
    let unary = find("Unary");
    assert_eq!(unary.len(), 2);
    let ok = unary
        .iter()
        .find(|s| attr(s, "rpc.grpc.status_code") == Some(Value::I64(0)))
        .unwrap();
    assert_eq!(
        attr_str(ok, "rpc.request.body").as_deref(),
        Some(r#"{"message":"from python","big":"7"}"#)
    );
    assert_eq!(
        attr_str(ok, "rpc.response.body").as_deref(),
        Some(r#"{"message":"echo: from python","big":"7"}"#)
    );
    let failed = unary
        .iter()
        .find(|s| attr(s, "rpc.grpc.status_code") == Some(Value::I64(14)))
        .unwrap();
    assert_eq!(failed.status, Status::error("try later"));
    assert_eq!(
        attr_str(find("ServerStream")[0], "rpc.response.body").as_deref(),
        Some(r#"[{"message":"echo: py"},{"message":"echo: py","index":1}]"#)
    );
    assert_eq!(
        attr_str(find("ClientStream")[0], "rpc.request.body").as_deref(),
        Some(r#"[{"message":"a"},{"message":"b"}]"#)
    );
    assert_eq!(
        attr_str(find("Bidi")[0], "rpc.response.body").as_deref(),
        Some(r#"[{"message":"echo: c"},{"message":"echo: d","index":1}]"#)
    );
}
