//! Shared by the SQL tests (`sql_postgres.rs`, `sql_mysql.rs`): where the servers started by
//! `scripts/start-databases.sh` listen, an agent per test (serialized: one agent is current per
//! process), and one tracing subscriber per test binary that feeds the agent's OpenTelemetry layer
//! and keeps every log line, so a test can check what was logged.
//!
//! Included by the SQL tests with `#[path]`, next to `support/mod.rs`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use hypertrace::config::Config;
use hypertrace::{Agent, Guard};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::support::Spans;

/// A server's connection details, as `scripts/start-databases.sh` wrote them.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

fn env_file() -> PathBuf {
    match std::env::var_os("HT_TEST_DATABASES_ENV") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".databases/env"),
    }
}

fn read_env_file() -> Result<HashMap<String, String>, String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// The server whose variables start with `prefix` (`HT_TEST_PG`, `HT_TEST_MYSQL`), or why not.
fn server(prefix: &str) -> Result<Server, String> {
    let vars = read_env_file()?;
    let get = |k: &str| {
        vars.get(&format!("{prefix}_{k}"))
            .cloned()
            .ok_or_else(|| format!("{prefix}_{k} is not in {}", env_file().display()))
    };
    let port = get("PORT")?;
    Ok(Server {
        host: get("HOST")?,
        port: port
            .parse()
            .map_err(|_| format!("{prefix}_PORT={port:?} is not a port"))?,
        user: get("USER")?,
        password: get("PASSWORD")?,
        database: get("DATABASE")?,
    })
}

/// The server, or `None` after saying how to start it. Under `CI=true`, missing is a failure.
pub fn server_or_skip(test: &str, which: &str, prefix: &str) -> Option<Server> {
    let why = match server(prefix) {
        Ok(s) => return Some(s),
        Err(why) => why,
    };
    let how = "start it with `scripts/start-databases.sh` (stop with `scripts/stop-databases.sh`)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and the {which} test server is missing ({why}): {how}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** {test}: SKIPPED, NOT RUN: no {which} server ({why}); {how}. ***\n"
    );
    None
}

static SERIAL: Mutex<()> = Mutex::new(());

/// An installed agent exporting into memory, held for one test.
pub struct SqlAgent {
    pub guard: Guard,
    pub spans: Spans,
    _serial: MutexGuard<'static, ()>,
}

impl SqlAgent {
    /// Flushes until `pred` holds for the exported spans (or 5 s pass), then returns them all.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
        for _ in 0..500 {
            self.guard.flush();
            let got = self.spans.0.lock().unwrap().clone();
            if pred(&got) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "timed out waiting for {what}; spans: {:?}",
            names(&self.spans.0.lock().unwrap())
        );
    }

    /// Waits until a span named `name` was exported and returns the exported spans.
    pub fn wait_named(&self, name: &str) -> Vec<SpanData> {
        self.wait_for(name, |s| s.iter().any(|s| s.name == name))
    }

    /// Everything exported so far (after a flush).
    pub fn exported(&self) -> Vec<SpanData> {
        self.guard.flush();
        self.spans.0.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.guard.flush();
        self.spans.0.lock().unwrap().clear();
    }
}

/// Installs an agent (defaults, edited by `edit`) with an in-memory exporter.
pub fn agent(edit: impl FnOnce(&mut Config)) -> SqlAgent {
    init_tracing();
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut config = Config::defaults("sql-test");
    config.rustagent.scheduled_delay = Duration::from_millis(20);
    edit(&mut config);
    let spans = Spans::default();
    let guard = Agent::with_exporter(config, spans.clone()).install();
    SqlAgent {
        guard,
        spans,
        _serial: serial,
    }
}

/// Holds the serial lock for a test that installs an agent of its own (through `from_config`).
pub fn serial() -> MutexGuard<'static, ()> {
    init_tracing();
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

pub fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

pub fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let v = named(spans, name);
    assert_eq!(v.len(), 1, "one {name:?} span expected: {:?}", names(spans));
    v[0]
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

pub fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Value::I64(n) => Some(n),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

/// Everything a span says, as text: name, attributes, status, events and their attributes.
pub fn span_text(span: &SpanData) -> String {
    format!(
        "{} {:?} {:?} {:?}",
        span.name,
        span.attributes,
        span.status,
        span.events.iter().collect::<Vec<_>>()
    )
}

/// Every log line written through the test subscriber (all targets, TRACE and up).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// The log of this test binary so far.
pub fn logs() -> Logs {
    init_tracing();
    LOGS.get().expect("installed by init_tracing").clone()
}

/// The global subscriber: the agent's OpenTelemetry layer (what `#[hypertrace::main]` installs)
/// and a formatter writing every event into [`logs`].
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let logs = LOGS.get_or_init(Logs::default).clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || logs.clone());
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry()
                .with(hypertrace::otel_layer())
                .with(fmt),
        )
        .expect("no other global subscriber in this test binary");
    });
}
