//! Sampling (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) over real HTTP: which requests'
//! spans are exported, and that a request sampled out still propagates its trace context (the
//! handler answers with the `traceparent` an outgoing call made inside it would carry).

mod support;

use std::collections::HashMap;

use axum::routing::get;
use axum::Router;
use hypertrace::config::{ConfigBuilder, PropagationFormat};

/// The `traceparent` that the current context would inject into an outgoing call.
async fn outgoing_traceparent() -> String {
    let mut h = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&opentelemetry::Context::current(), &mut h)
    });
    h.remove("traceparent").unwrap_or_default()
}

/// An agent whose sampler comes from these variables, read as the agent reads its environment.
fn agent_with_sampler(vars: &[(&str, &str)]) -> support::TestAgent {
    let (loaded, _) = ConfigBuilder::new("sampling")
        .env_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .load()
        .unwrap();
    support::agent(|c| {
        c.rustagent.traces_sampler = loaded.rustagent.traces_sampler;
        c.rustagent.traces_sampler_arg = loaded.rustagent.traces_sampler_arg;
        c.propagation_formats = vec![PropagationFormat::TraceContext, PropagationFormat::B3];
    })
}

async fn app() -> String {
    let app = Router::new()
        .route("/ctx", get(outgoing_traceparent))
        .layer(hypertrace::layer());
    format!("http://{}", support::serve(app).await)
}

/// GET /ctx with these headers; the request id goes in `x-id` so spans can be told apart.
async fn get_ctx(base: &str, id: &str, headers: &[(&str, String)]) -> String {
    // One client per thread: building one (its TLS roots) costs more than a request.
    thread_local! {
        static CLIENT: reqwest::Client = support::client();
    }
    let client = CLIENT.with(|c| c.clone());
    let mut req = client.get(format!("{base}/ctx?id={id}")).header("x-id", id);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The `x-id` of every exported span, after the last request's span had time to end.
fn exported_ids(agent: &support::TestAgent, control: &str) -> Vec<String> {
    // The control request is sampled in every case: once its span is there, all earlier ones
    // that were going to be exported are too.
    for _ in 0..200 {
        agent.guard.flush();
        let ids = ids(agent);
        if ids.iter().any(|i| i == control) {
            return ids;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "the control request {control} was never exported: {:?}",
        ids(agent)
    );
}

fn ids(agent: &support::TestAgent) -> Vec<String> {
    agent
        .spans
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| support::attr_str(s, "http.request.header.x-id"))
        .collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Parts of a `traceparent`: (trace id, span id, flags).
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp:?}");
    (p[1].into(), p[2].into(), p[3].into())
}

/// The default (parentbased_always_on) follows the caller's sampled flag, W3C and B3, and a
/// request sampled out still hands its trace on, marked not sampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_sampler_honours_the_incoming_sampled_flag() {
    let agent = agent_with_sampler(&[]);
    let base = app().await;
    let w3c = |flags: &str| vec![("traceparent", format!("00-{TRACE}-{PARENT}-{flags}"))];

    let out = get_ctx(&base, "w3c-unsampled", &w3c("00")).await;
    let (trace, span, flags) = parts(&out);
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"), "{out}");
    assert_ne!(span, PARENT, "the outgoing parent is this service's span");

    get_ctx(
        &base,
        "b3-single-unsampled",
        &[("b3", format!("{TRACE}-{PARENT}-0"))],
    )
    .await;
    let out = get_ctx(
        &base,
        "b3-multi-unsampled",
        &[
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", PARENT.into()),
            ("x-b3-sampled", "0".into()),
        ],
    )
    .await;
    assert_eq!(parts(&out).0, TRACE);
    assert_eq!(parts(&out).2, "00");

    let out = get_ctx(&base, "w3c-sampled", &w3c("01")).await;
    assert_eq!(parts(&out).2, "01");
    get_ctx(
        &base,
        "b3-sampled",
        &[("b3", format!("{TRACE}-{PARENT}-1"))],
    )
    .await;
    get_ctx(&base, "root", &[]).await;

    let mut got = exported_ids(&agent, "root");
    got.sort();
    assert_eq!(got, ["b3-sampled", "root", "w3c-sampled"]);
}

/// `always_off`: nothing is exported, yet the incoming trace still propagates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_off_exports_nothing_and_still_propagates() {
    let agent = agent_with_sampler(&[("OTEL_TRACES_SAMPLER", "always_off")]);
    let base = app().await;
    let out = get_ctx(
        &base,
        "parented",
        &[("traceparent", format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await;
    assert_eq!(parts(&out).0, TRACE);
    assert_eq!(parts(&out).2, "00");
    let out = get_ctx(&base, "root", &[]).await;
    assert_eq!(parts(&out).2, "00", "a root trace is started, not sampled");
    // No control can be sampled here: wait out the export delay, then look.
    std::thread::sleep(std::time::Duration::from_millis(200));
    agent.guard.flush();
    assert_eq!(ids(&agent), Vec::<String>::new());
}

/// `always_on` ignores the caller's decision; `parentbased_always_off` keeps it but drops roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_on_and_parentbased_always_off() {
    let unsampled = vec![("traceparent", format!("00-{TRACE}-{PARENT}-00"))];
    let sampled = vec![("traceparent", format!("00-{TRACE}-{PARENT}-01"))];
    {
        let agent = agent_with_sampler(&[("OTEL_TRACES_SAMPLER", "always_on")]);
        let base = app().await;
        let out = get_ctx(&base, "unsampled-parent", &unsampled).await;
        assert_eq!(parts(&out).2, "01");
        get_ctx(&base, "control", &[]).await;
        let mut got = exported_ids(&agent, "control");
        got.sort();
        assert_eq!(got, ["control", "unsampled-parent"]);
    }
    {
        let agent = agent_with_sampler(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]);
        let base = app().await;
        let out = get_ctx(&base, "root", &[]).await;
        assert_eq!(parts(&out).2, "00");
        get_ctx(&base, "unsampled-parent", &unsampled).await;
        get_ctx(&base, "control", &sampled).await;
        assert_eq!(exported_ids(&agent, "control"), ["control"]);
    }
}

/// `traceidratio` decides from the trace id alone (the caller's flag does not matter): the SDK
/// samples when the id's low 63 bits fall below ratio × 2⁶³. `parentbased_traceidratio` follows
/// the caller and samples about `ratio` of the roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceidratio_and_parentbased_traceidratio() {
    let low = "4bf92f3577b34da60000000000000001"; // sampled at 0.5
    let high = "4bf92f3577b34da6ffffffffffffff00"; // not sampled at 0.5
    {
        let agent = agent_with_sampler(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ]);
        let base = app().await;
        let tp = |t: &str, f: &str| vec![("traceparent", format!("00-{t}-{PARENT}-{f}"))];
        get_ctx(&base, "high-sampled-parent", &tp(high, "01")).await;
        get_ctx(&base, "control", &tp(low, "00")).await;
        assert_eq!(exported_ids(&agent, "control"), ["control"]);
    }
    {
        let agent = agent_with_sampler(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        let base = app().await;
        for i in 0..200 {
            get_ctx(&base, &format!("root-{i}"), &[]).await;
        }
        let sampled_parent = vec![("traceparent", format!("00-{high}-{PARENT}-01"))];
        get_ctx(&base, "control", &sampled_parent).await;
        let got = exported_ids(&agent, "control");
        let roots = got.iter().filter(|i| i.starts_with("root-")).count();
        // Binomial(200, 0.25): mean 50, sd 6.1; 20..=80 is ~5 sd either way.
        assert!((20..=80).contains(&roots), "{roots} of 200 roots sampled");
        support::receivers::say(&format!(
            "parentbased_traceidratio 0.25: {roots} of 200 root requests exported"
        ));
    }
}
