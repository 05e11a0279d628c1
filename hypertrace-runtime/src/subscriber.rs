//! The tracing subscriber `#[hypertrace::main]` installs: registry + OpenTelemetry layer + a log
//! formatter honouring `RUST_LOG`, and a small layer that turns `tracing` events emitted directly
//! inside an annotated handler (no `tracing` span open) into events of the handler's span.

use std::sync::OnceLock;

use opentelemetry::trace::{SpanBuilder, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span as SdkSpan};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;

use crate::span::server::ServerScope;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry};

/// The crates that carry the export itself: their spans would be exported, producing more export (a
/// feedback loop), so the OpenTelemetry layer never sees them.
const EXPORT_CRATES: [&str; 9] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// Whether `target` is `krate` or one of its modules: whole path segments, so that `hyper::proto`
/// matches `hyper` but a user crate `hyperloop` (or `tower_http`, or `hypertrace_benches`) does not.
fn in_crate(target: &str, krate: &str) -> bool {
    target
        .strip_prefix(krate)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Targets that say again what a span of the agent already says: sqlx's per-statement log
/// (`sqlx::query`), which the SQL spans record as spans.
const REPEATED_TARGETS: [&str; 1] = ["sqlx::query"];

/// What the OpenTelemetry layer sees: INFO and above, minus the export crates and the repeated
/// targets.
fn otel_filter() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::FilterFn::new(|meta| {
        let target = meta.target();
        *meta.level() <= LevelFilter::INFO
            && !EXPORT_CRATES.iter().any(|k| in_crate(target, k))
            && !REPEATED_TARGETS.iter().any(|t| in_crate(target, t))
    })
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
        .with_filter(OtelFilter)
        .and_then(EventsToActiveSpan.with_filter(otel_filter()))
}

/// [`otel_filter`], and no event that belongs to the server span rather than to the `tracing` span
/// entered around it ([`EventsToActiveSpan`] records those).
struct OtelFilter;

impl<S> tracing_subscriber::layer::Filter<S> for OtelFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &Context<'_, S>) -> bool {
        tracing_subscriber::layer::Filter::<S>::enabled(&otel_filter(), meta, cx)
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        !belongs_to_server_span(event, cx)
    }
}

/// An event emitted inside a handler while the only `tracing` span entered is one an app's own
/// middleware opened around the request (tower-http's `TraceLayer`): it belongs to the SERVER span,
/// which is the request's entry span. Spans opened inside the handler keep their events.
fn belongs_to_server_span<S>(event: &Event<'_>, cx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if !event.is_contextual() {
        return false;
    }
    let Some(current) = cx.current_span().id().cloned() else {
        return false;
    };
    opentelemetry::Context::map_current(|otel| {
        otel.get::<ServerScope>()
            .is_some_and(|scope| scope.outer_span() == Some(&current))
    })
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
        let in_a_span =
            event.parent().is_some() || (event.is_contextual() && ctx.lookup_current().is_some());
        if in_a_span && !belongs_to_server_span(event, &ctx) {
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

#[cfg(test)]
mod tests {
    use super::in_crate;

    #[test]
    fn export_crates_are_matched_by_whole_path_segments() {
        assert!(in_crate("hyper", "hyper"));
        assert!(in_crate("hyper::proto::h1", "hyper"));
        assert!(!in_crate("hyperloop", "hyper"));
        assert!(!in_crate("hypertrace_benches", "hyper"));
        assert!(!in_crate("towerdefense::game", "tower"));
        assert!(!in_crate("tower_http::trace", "tower"));
        assert!(in_crate("tower::buffer", "tower"));
    }
}
