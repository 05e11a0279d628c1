//! The tracing subscriber `#[hypertrace::main]` installs: registry + OpenTelemetry layer + a log
//! formatter honouring `RUST_LOG`, and a small layer that turns `tracing` events emitted directly
//! inside an annotated handler (no `tracing` span open) into events of the handler's span.

use std::sync::OnceLock;

use opentelemetry::trace::{SpanBuilder, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span as SdkSpan};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry};

/// What the OpenTelemetry layer sees: INFO and above, minus the crates that carry the export
/// itself (their spans would be exported, producing more export: a feedback loop), and minus
/// sqlx's per-statement log (`sqlx::query`), which the SQL spans already say as spans.
fn otel_filter() -> Targets {
    Targets::new().with_default(LevelFilter::INFO).with_targets(
        [
            "h2",
            "hyper",
            "hyper_util",
            "tonic",
            "tower",
            "reqwest",
            "opentelemetry",
            "opentelemetry_sdk",
            "opentelemetry_otlp",
            "sqlx::query",
        ]
        .map(|t| (t, LevelFilter::OFF)),
    )
}

/// The OpenTelemetry layer for apps that install their own subscriber
/// (`#[hypertrace::main(tracing_subscriber = false)]`). It follows whichever agent is installed,
/// so it may be built before or after `init`.
pub fn otel_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(CurrentTracer)
        .and_then(EventsToActiveSpan)
        .with_filter(otel_filter())
}

/// A tracer that delegates to the current agent's tracer, or records nothing when there is none
/// (or it is disabled).
#[derive(Clone, Copy, Debug)]
struct CurrentTracer;

fn off_tracer() -> &'static SdkTracer {
    static OFF: OnceLock<SdkTracer> = OnceLock::new();
    OFF.get_or_init(|| {
        SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOff)
            .build()
            .tracer("hypertrace-off")
    })
}

impl Tracer for CurrentTracer {
    type Span = SdkSpan;

    fn build_with_context(
        &self,
        builder: SpanBuilder,
        parent_cx: &opentelemetry::Context,
    ) -> SdkSpan {
        match crate::agent::current() {
            Some(a) if a.config.enabled => a.tracer.build_with_context(builder, parent_cx),
            _ => off_tracer().build_with_context(builder, parent_cx),
        }
    }
}

/// Installs the global subscriber. Returns false when one was already set (the app's own).
pub(crate) fn install() -> bool {
    use tracing_subscriber::layer::SubscriberExt;
    let fmt_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout belongs to the app and to the LOGGING reporter's JSON lines.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(fmt_filter);
    let subscriber = Registry::default().with(fmt).with(otel_layer());
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// Adds an event with no enclosing `tracing` span to the active OpenTelemetry span (the handler's).
struct EventsToActiveSpan;

impl<S> Layer<S> for EventsToActiveSpan
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.parent().is_some() || (event.is_contextual() && ctx.lookup_current().is_some()) {
            return; // the OpenTelemetry layer records it on that span
        }
        let cx = opentelemetry::Context::current();
        if !cx.has_active_span() {
            return;
        }
        let meta = event.metadata();
        let mut v = FieldsVisitor {
            attrs: vec![
                KeyValue::new("level", meta.level().as_str()),
                KeyValue::new("target", meta.target().to_owned()),
            ],
            message: None,
        };
        event.record(&mut v);
        let span = cx.span();
        if *meta.level() == tracing::Level::ERROR {
            span.set_status(Status::error(v.message.clone().unwrap_or_default()));
        }
        span.add_event(v.message.unwrap_or_else(|| meta.name().to_owned()), v.attrs);
    }
}

struct FieldsVisitor {
    attrs: Vec<KeyValue>,
    message: Option<String>,
}

impl Visit for FieldsVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.attrs
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attrs.push(KeyValue::new(
            field.name(),
            i64::try_from(value).unwrap_or(i64::MAX),
        ));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}
