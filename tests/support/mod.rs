//! Shared by the behaviour tests: an in-memory exporter, an agent installed per test (serialized:
//! one agent is current per process), and a real axum server on 127.0.0.1.
#![allow(dead_code)]

pub mod receivers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hypertrace::config::Config;
use hypertrace::{Agent, Guard};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[derive(Clone, Debug, Default)]
pub struct Spans(pub Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

pub struct TestAgent {
    pub guard: Guard,
    pub spans: Spans,
    _serial: MutexGuard<'static, ()>,
}

impl TestAgent {
    /// Waits until `n` spans were exported (the span of a request ends after the client has read
    /// the response, so a short wait is expected), then returns all of them.
    pub fn wait_spans(&self, n: usize) -> Vec<SpanData> {
        for _ in 0..200 {
            self.guard.flush();
            let got = self.spans.0.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "expected {n} spans, got {:?}",
            self.spans
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        );
    }

    pub fn one_span(&self) -> SpanData {
        let mut v = self.wait_spans(1);
        assert_eq!(
            v.len(),
            1,
            "spans: {:?}",
            v.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        v.pop().unwrap()
    }
}

/// What `OTEL_SEMCONV_STABILITY_OPT_IN=<value>` gives, read through the config's environment source.
pub fn semconv_from_env(value: &str) -> hypertrace::config::SemconvOptIn {
    let (config, _) = hypertrace::ConfigBuilder::new("test-service")
        .env_vars([(
            "OTEL_SEMCONV_STABILITY_OPT_IN".to_string(),
            value.to_string(),
        )])
        .load()
        .unwrap();
    config.semconv
}

pub fn agent(edit: impl FnOnce(&mut Config)) -> TestAgent {
    agent_with(edit, |a| a)
}

/// Like [`agent`], with a last touch on the built agent (e.g. the semconv switch).
pub fn agent_with(edit: impl FnOnce(&mut Config), touch: impl FnOnce(Agent) -> Agent) -> TestAgent {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::defaults("test-service");
    config.rustagent.scheduled_delay = Duration::from_millis(20);
    edit(&mut config);
    let spans = Spans::default();
    let guard = touch(Agent::with_exporter(config, spans.clone())).install();
    TestAgent {
        guard,
        spans,
        _serial: serial,
    }
}

pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// GET `url` with the test client and the body as text.
pub async fn get_text(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| kv.value.clone())
}

pub fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

pub fn has(span: &SpanData, key: &str) -> bool {
    attr(span, key).is_some()
}

/// The tracing subscriber with the agent's OpenTelemetry layer, installed once per test binary.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(hypertrace::otel_layer()),
        );
    });
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
