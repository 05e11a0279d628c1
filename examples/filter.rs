//! `cargo run --example filter`: blocking filters. A body filter that blocks a JSON body carrying
//! a SQL-injection-looking string (registered for every request, with `#[hypertrace::main]`'s
//! `filters` option), and a filter that blocks a denied client address (registered on the
//! layer). The example serves on a free port of 127.0.0.1, sends four requests (two of them from
//! the denied address 127.0.0.2), prints each answer on stderr and each span as one JSON line on
//! stdout (LOGGING reporter, `examples/filter.yaml`), and exits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hypertrace::{Block, Decision, Filter, FilterRequest, Filters};
use serde_json::{json, Value};

/// Blocks a JSON body whose strings look like SQL injection. It reads the body (at most
/// `data_capture.body_max_processing_size_bytes` of it), so it says `wants_body`.
struct SqlInjection;

const SUSPICIOUS: [&str; 4] = ["' or '1'='1", "' or 1=1", "; drop table", "union select"];

/// Whether a string anywhere in `v` looks like an injection.
fn suspicious(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            let s = s.to_ascii_lowercase();
            SUSPICIOUS.iter().any(|p| s.contains(p))
        }
        Value::Array(a) => a.iter().any(suspicious),
        Value::Object(o) => o.values().any(suspicious),
        _ => false,
    }
}

impl Filter for SqlInjection {
    fn name(&self) -> &str {
        "sql-injection"
    }

    fn wants_body(&self) -> bool {
        true
    }

    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        let body = req.body().unwrap_or_default();
        // A body cut at the processing limit is not valid JSON: judged on what could be parsed.
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if is_json && suspicious(&v) => Block::new()
                .with_header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .with_body(r#"{"error":"request blocked"}"#)
                .into(),
            _ => Decision::Continue,
        }
    }
}

/// Blocks the clients of one address, before any body is read.
struct DenyAddress(IpAddr);

impl Filter for DenyAddress {
    fn name(&self) -> &str {
        "deny-address"
    }

    fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
        match req.peer() {
            Some(peer) if peer.ip() == self.0 => Block::new()
                .with_status(StatusCode::FORBIDDEN)
                .with_body("your address is denied")
                .into(),
            _ => Decision::Continue,
        }
    }
}

/// The agent's filters, for every request: `#[hypertrace::main(filters = filters)]`.
fn filters() -> Filters {
    Filters::new().with(SqlInjection)
}

const DENIED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[hypertrace::handler]
async fn search(Json(q): Json<Value>) -> Json<Value> {
    Json(json!({ "results": [], "query": q }))
}

#[hypertrace::handler]
async fn user(axum::extract::Path(id): axum::extract::Path<u32>) -> Json<Value> {
    Json(json!({ "id": id }))
}

#[hypertrace::main(config = "examples/filter.yaml", filters = filters)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new()
        .route("/search", post(search))
        .route("/users/{id}", get(user))
        .layer(hypertrace::layer().filter(DenyAddress(DENIED)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        // The peer address a filter sees comes from axum's connect info.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let base = format!("http://{addr}");
    eprintln!("filter example: app on {base}; spans follow on stdout");

    let client = reqwest::Client::builder().no_proxy().build()?;
    let denied = reqwest::Client::builder()
        .no_proxy()
        .local_address(DENIED)
        .build()?;
    let json_post = |body: Value| {
        client
            .post(format!("{base}/search"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    };
    let sends = [
        ("search", json_post(json!({ "name": "Ada" }))),
        ("injection", json_post(json!({ "name": "x' OR '1'='1" }))),
        ("user", client.get(format!("{base}/users/7"))),
        ("denied user", denied.get(format!("{base}/users/7"))),
    ];
    let mut statuses = Vec::new();
    for (what, request) in sends {
        let resp = request.send().await?;
        let status = resp.status();
        eprintln!("filter example: {what}: {status} {}", resp.text().await?);
        statuses.push(status.as_u16());
    }
    if statuses != [200, 403, 200, 403] {
        return Err(format!("unexpected answers: {statuses:?}").into());
    }
    // Returning flushes: every span above is printed before the process exits.
    Ok(())
}
