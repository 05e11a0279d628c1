//! `cargo run --example jokes --features reqwest`: one trace across three services.
//!
//! The jokes client and API of the Hypertrace seed (a client calls the jokes API, which calls an
//! upstream joke service), as three services in one process on 127.0.0.1:
//!
//! 1. the upstream "joke service": an annotated handler, `GET /jokes/{id}`;
//! 2. the "jokes API": an annotated handler, `GET /api/jokes/{id}`, that calls the upstream with
//!    the instrumented client (`hypertrace::client`);
//! 3. the client: calls the API with the instrumented client inside a parent span
//!    (`#[tracing::instrument]`).
//!
//! Every hop's span is printed as one JSON line on stdout by the LOGGING reporter
//! (`examples/jokes.yaml`), then a summary: the five spans share one trace id, and each one's parent
//! is the span before it. Each service reports what it saw of the trace (its own span, and the
//! trace context it was called with), which is how the summary knows the ids of spans in other
//! services, as it would if they ran in other processes.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use hypertrace::client::{Client, Route};
use opentelemetry::trace::TraceContextExt as _;
use serde_json::{json, Value};

/// What a service saw of the trace: the trace and span ids of its current span (inside an
/// annotated handler, the SERVER span), and the caller's trace and span ids from the W3C
/// `traceparent` (`00-<trace>-<span>-<flags>`) or B3 (`<trace>-<span>-<sampled>`) header.
fn seen(service: &str, headers: &HeaderMap) -> Value {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    let header = |name: &str, skip: usize| {
        let v = headers.get(name)?.to_str().ok()?;
        let mut parts = v.split('-').skip(skip);
        Some(json!({ "header": name, "trace_id": parts.next()?, "span_id": parts.next()? }))
    };
    json!({
        "service": service,
        "trace_id": sc.trace_id().to_string(),
        "span_id": sc.span_id().to_string(),
        "caller": header("traceparent", 1).or_else(|| header("b3", 0)),
    })
}

// ---- 1. the upstream joke service ----

const JOKES: [(&str, &str); 3] = [
    (
        "Why do programmers prefer dark mode?",
        "Because light attracts bugs.",
    ),
    (
        "Why did the Rust developer stay calm?",
        "Nothing was ever borrowed twice.",
    ),
    (
        "How many observability engineers does it take to change a light bulb?",
        "We don't know, the span was never exported.",
    ),
];

#[hypertrace::handler]
async fn random_joke(Path(id): Path<usize>, headers: HeaderMap) -> Json<Value> {
    let (setup, punchline) = JOKES[id % JOKES.len()];
    Json(
        json!({ "id": id, "setup": setup, "punchline": punchline, "trace": seen("joke-service", &headers) }),
    )
}

// ---- 2. the jokes API ----

#[derive(Clone)]
struct Api {
    /// The instrumented client: `hypertrace::client::instrumented(reqwest::Client)`.
    http: Client,
    upstream: String,
}

#[hypertrace::handler]
async fn joke(
    State(api): State<Api>,
    Path(id): Path<usize>,
    headers: HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    let me = seen("jokes-api", &headers);
    // The server span is current here: the call's CLIENT span is its child, and the upstream gets
    // the trace context in its headers. `Route` names the span after the template, not the URL.
    let resp = api
        .http
        .get(format!("{}/jokes/{id}", api.upstream))
        .with_extension(Route("/jokes/{id}"))
        .send()
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the joke service is unreachable");
            StatusCode::BAD_GATEWAY
        })?;
    let body = resp
        .error_for_status()
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .bytes()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let upstream: Value = serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(Json(json!({
        "joke": format!("{} {}", upstream["setup"].as_str().unwrap_or(""), upstream["punchline"].as_str().unwrap_or("")),
        "trace": [me, upstream["trace"]],
    })))
}

// ---- 3. the client ----

/// The client's parent span: a `tracing` span, which the agent turns into an OpenTelemetry span.
#[tracing::instrument(name = "tell me a joke", skip(http))]
async fn tell_me_a_joke(
    http: &Client,
    api: &str,
    id: usize,
) -> Result<(Value, String), Box<dyn Error>> {
    let root = opentelemetry::Context::current()
        .span()
        .span_context()
        .span_id()
        .to_string();
    let body = http
        .get(format!("{api}/api/jokes/{id}"))
        .with_extension(Route("/api/jokes/{id}"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok((serde_json::from_slice(&body)?, root))
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(addr)
}

/// The (trace id, span id) of the caller, as a service saw it.
fn caller(v: &Value) -> Option<(&str, &str)> {
    Some((
        v["caller"]["trace_id"].as_str()?,
        v["caller"]["span_id"].as_str()?,
    ))
}

#[hypertrace::main(config = "examples/jokes.yaml")]
async fn main() -> Result<(), Box<dyn Error>> {
    let no_proxy = || reqwest::Client::builder().no_proxy().build();
    let upstream = serve(Router::new().route("/jokes/{id}", get(random_joke))).await?;
    let api = Api {
        http: hypertrace::client::instrumented(no_proxy()?),
        upstream: format!("http://{upstream}"),
    };
    let api = serve(
        Router::new()
            .route("/api/jokes/{id}", get(joke))
            .with_state(api),
    )
    .await?;
    eprintln!("jokes: joke service on {upstream}, jokes API on {api}; spans follow on stdout");

    let http = hypertrace::client::instrumented(no_proxy()?);
    let (answer, root) = tell_me_a_joke(&http, &format!("http://{api}"), 1).await?;
    eprintln!("jokes: {}", answer["joke"].as_str().unwrap_or("?"));

    // Print the spans now (a server span ends just after its response is sent), then the summary.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(agent) = hypertrace::current_agent() {
        let _ = agent.tracer_provider().force_flush();
    }

    let (api_seen, up_seen) = (&answer["trace"][0], &answer["trace"][1]);
    let (api_tp, up_tp) = (caller(api_seen), caller(up_seen));
    let (Some((t1, client1)), Some((t2, client2))) = (api_tp, up_tp) else {
        return Err("a service got no trace context header: the trace was not propagated".into());
    };
    let trace_ids = [
        t1,
        api_seen["trace_id"].as_str().unwrap_or(""),
        t2,
        up_seen["trace_id"].as_str().unwrap_or(""),
    ];
    let one_trace = trace_ids.iter().all(|t| *t == t1);
    let (server1, server2) = (
        api_seen["span_id"].as_str().unwrap_or("?"),
        up_seen["span_id"].as_str().unwrap_or("?"),
    );
    let rows = [
        ("tell me a joke", "INTERNAL", "client", root.as_str(), None),
        (
            "GET /api/jokes/{id}",
            "CLIENT",
            "client",
            client1,
            Some(root.as_str()),
        ),
        (
            "GET /api/jokes/{id}",
            "SERVER",
            "jokes-api",
            server1,
            Some(client1),
        ),
        (
            "GET /jokes/{id}",
            "CLIENT",
            "jokes-api",
            client2,
            Some(server1),
        ),
        (
            "GET /jokes/{id}",
            "SERVER",
            "joke-service",
            server2,
            Some(client2),
        ),
    ];
    println!();
    println!(
        "trace {t1}: {}",
        if one_trace {
            "one trace across the three services"
        } else {
            "SPLIT: the services are in different traces"
        }
    );
    for (depth, (name, kind, service, span, parent)) in rows.iter().enumerate() {
        let parent = parent.map_or("(root)".to_owned(), |p| format!("parent {p}"));
        let name = format!("{:indent$}{name}", "", indent = depth * 2);
        println!("  {name:<30} {kind:<8} {service:<13} span {span}  {parent}");
    }
    if !one_trace {
        return Err("the hops are not in one trace".into());
    }
    Ok(())
}
