//! The agent's own span, for every server span: an OpenTelemetry [`Span`] recorded straight into a
//! pooled record (`export::finished`), without the SDK's tracer, `SpanData` or `KeyValue` list.
//!
//! It does what the SDK's span does, so that nothing an application does with the server span
//! notices the difference: the configured sampler decides, with the SDK's ids and the same
//! trace-flags and trace-state rules; the SDK's default limits apply (128 attributes, events and
//! links, 128 attributes per event and link, the rest counted as dropped); a status only ever goes
//! up (Unset < Error < Ok); a span dropped without `end` ends then. Nested spans, `tracing` spans
//! and outgoing calls see it through the context as they would see an SDK span: they read its
//! `SpanContext`, and `Context::current().span().set_attribute(..)` records on it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanKind, SpanRef, Status, TraceContextExt, TraceFlags,
};
use opentelemetry::{Context, InstrumentationScope, Key, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};

use crate::export::finished::Record;
use crate::export::SpanSink;

/// The SDK's default span limits (`SpanLimits::default()`), which the agent's provider uses.
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;
const MAX_ATTRIBUTES_PER_EVENT: usize = 128;
const MAX_ATTRIBUTES_PER_LINK: usize = 128;

/// What the agent needs to record its own spans: where they go, how they are sampled, and the
/// scope they are reported under (the agent tracer's, `hypertrace`).
#[derive(Debug)]
pub(crate) struct OwnSpans {
    sink: SpanSink,
    sampler: Sampler,
    scope: InstrumentationScope,
}

impl OwnSpans {
    pub(crate) fn new(sink: SpanSink, sampler: Sampler, scope: InstrumentationScope) -> Self {
        OwnSpans {
            sink,
            sampler,
            scope,
        }
    }

    /// Starts a span as the SDK's tracer would (`build_with_context`), or `None` where the SDK's
    /// answer is an empty non-recording span (telemetry suppressed, the pipeline shut down): the
    /// caller then asks the SDK.
    ///
    /// `attrs` writes the span's first attributes, and is called only for a span that records.
    /// So the sampler sees the name but not these attributes (the SDK's would see both): the
    /// samplers the agent builds from its configuration look at neither.
    pub(crate) fn start(
        &self,
        kind: SpanKind,
        name: SpanName<'_>,
        parent: &Context,
        attrs: impl FnOnce(&mut Attributes<'_>),
        start: Option<SystemTime>,
    ) -> Option<AgentSpan> {
        if parent.is_telemetry_suppressed() || self.sink.is_shut_down() {
            return None;
        }
        // Taken before the sampler decides, so that the name is written into its buffer once;
        // a span the sampler drops hands it back.
        let mut record = self.sink.record();
        name.write_into(&mut record.data.name);
        let ids = RandomIdGenerator::default();
        let span_id = ids.new_span_id();
        let parent_span = parent.span();
        let empty = SpanContext::empty_context();
        let psc = match parent_span.span_context() {
            sc if sc.is_valid() => sc,
            _ => &empty,
        };
        let trace_id = if psc.is_valid() {
            psc.trace_id()
        } else {
            ids.new_trace_id()
        };
        let result =
            self.sampler
                .should_sample(Some(parent), trace_id, &record.data.name, &kind, &[], &[]);
        let sampled = match result.decision {
            SamplingDecision::Drop => {
                self.sink.give_back(record);
                let cx = SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default(),
                    false,
                    result.trace_state,
                );
                return Some(AgentSpan {
                    cx,
                    record: None,
                    sink: None,
                });
            }
            SamplingDecision::RecordAndSample => true,
            SamplingDecision::RecordOnly => false,
        };
        let cx = SpanContext::new(
            trace_id,
            span_id,
            psc.trace_flags().with_sampled(sampled),
            false,
            result.trace_state,
        );
        let start = start.unwrap_or_else(opentelemetry::time::now);
        let d = &mut record.data;
        d.span_context = cx.clone();
        d.parent_span_id = psc.span_id();
        d.parent_span_is_remote = psc.is_valid() && psc.is_remote();
        d.span_kind = kind;
        d.start_time = start;
        d.end_time = start;
        if d.instrumentation_scope != self.scope {
            d.instrumentation_scope = self.scope.clone();
        }
        let mut span = AgentSpan {
            cx,
            record: Some(record),
            sink: Some(self.sink.clone()),
        };
        attrs(&mut Attributes(Out::Span(&mut span)));
        for kv in result.attributes {
            span.add_attribute(kv);
        }
        Some(span)
    }
}

/// A span's name: as given, or two parts joined by a space (an HTTP span's method and route),
/// written into the pooled record's own buffer so that a name built per request costs no
/// allocation.
#[derive(Debug)]
pub(crate) enum SpanName<'a> {
    /// This name.
    Given(Cow<'static, str>),
    /// A copy of this text.
    Copied(&'a str),
    /// `"{0} {1}"`.
    Joined(&'a str, &'a str),
}

impl SpanName<'_> {
    /// The name as a value of its own, for the SDK's span builder.
    pub(crate) fn into_cow(self) -> Cow<'static, str> {
        let mut name = Cow::Borrowed("");
        self.write_into(&mut name);
        name
    }

    /// Sets `name`, reusing its buffer when it has one.
    fn write_into(self, name: &mut Cow<'static, str>) {
        let parts = match self {
            SpanName::Given(given) => return *name = given,
            SpanName::Copied(a) => [a, "", ""],
            SpanName::Joined(a, b) => [a, " ", b],
        };
        let mut buf = match std::mem::take(name) {
            Cow::Owned(mut buf) => {
                buf.clear();
                buf
            }
            Cow::Borrowed(_) => String::new(),
        };
        buf.reserve(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| buf.push_str(p));
        *name = Cow::Owned(buf);
    }
}

/// Where a starting span's first attributes are written: straight into the agent's record, or
/// into a list of `KeyValue`s (for the SDK's span builder).
#[derive(Debug)]
pub(crate) struct Attributes<'a>(Out<'a>);

#[derive(Debug)]
enum Out<'a> {
    Span(&'a mut AgentSpan),
    List(&'a mut Vec<KeyValue>),
}

impl<'a> Attributes<'a> {
    /// Attributes that go into `list`.
    pub(crate) fn list(list: &'a mut Vec<KeyValue>) -> Self {
        Attributes(Out::List(list))
    }

    /// The string attribute `key` = `value`: copied only where a `KeyValue` needs a `String` of
    /// its own (the record encodes it from the reference).
    pub(crate) fn str(&mut self, key: &'static str, value: &str) {
        match &mut self.0 {
            Out::Span(span) => span.add_str(key, value),
            Out::List(list) => list.push(KeyValue::new(key, value.to_owned())),
        }
    }

    /// Any attribute.
    pub(crate) fn kv(&mut self, kv: KeyValue) {
        match &mut self.0 {
            Out::Span(span) => span.add_attribute(kv),
            Out::List(list) => list.push(kv),
        }
    }
}

/// The attribute key that tells an [`AgentSpan`] to do what this thread staged for it.
const STAGED_KEY: &str = "\0hypertrace.staged";

/// The largest staging buffer a thread keeps between two texts.
const KEPT_STAGE: usize = 64 * 1024;

/// What [`put_text`] and [`drop_deferred_texts`] leave for the span to do.
#[derive(Debug)]
enum Staged {
    /// `owned`: the staged text is the caller's `String`, which the record may keep as it is.
    Put {
        key: Key,
        deferred: bool,
        owned: bool,
    },
    DropDeferred,
}

#[derive(Debug)]
struct Stage {
    op: Option<Staged>,
    text: String,
}

thread_local! {
    static STAGE: RefCell<Stage> = const {
        RefCell::new(Stage {
            op: None,
            text: String::new(),
        })
    };
}

/// Records `key` = `text` on `span`, which must be an [`AgentSpan`] (the caller knows: the
/// server span says whether it is, `span::server::Shared::own`): `text` is copied into the span's
/// pooled record ([`Record::push_text`]), with no `String` of its own; a large text given as a
/// `String` (a body) is kept by the record as it is ([`Record::push_owned_text`]), not copied.
///
/// Why a thread-local: the only way from the OpenTelemetry `Context` onto its span is
/// `set_attribute(KeyValue)`, which would need the text as a `String`. So the text waits in a
/// buffer this thread keeps (copied there, or, given as a `String`, moved there), and a marker
/// attribute makes the span, called synchronously on this thread, copy it (or take it) from there.
/// `deferred`: the text may still be dropped at the span's end ([`drop_deferred_texts`]).
pub(crate) fn put_text(span: &SpanRef<'_>, key: Key, text: Cow<'_, str>, deferred: bool) {
    let kept = STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        let owned = matches!(text, Cow::Owned(_));
        stage.op = Some(Staged::Put {
            key,
            deferred,
            owned,
        });
        match text {
            Cow::Owned(text) => Some(std::mem::replace(&mut stage.text, text)),
            Cow::Borrowed(text) => {
                stage.text.clear();
                stage.text.push_str(text);
                None
            }
        }
    });
    run_staged(span, kept);
}

/// Drops the texts [`put_text`] recorded as deferred on `span` (an [`AgentSpan`]).
pub(crate) fn drop_deferred_texts(span: &SpanRef<'_>) {
    STAGE.with(|stage| stage.borrow_mut().op = Some(Staged::DropDeferred));
    run_staged(span, None);
}

/// Lets the span take what is staged; `kept`: the thread's own buffer, put back afterwards (the
/// staged text, given as a `String`, is then freed).
fn run_staged(span: &SpanRef<'_>, kept: Option<String>) {
    span.set_attribute(KeyValue::new(Key::from_static_str(STAGED_KEY), true));
    STAGE.with(|stage| {
        let mut stage = stage.borrow_mut();
        // Not taken when the span does not record (ended already).
        stage.op = None;
        if let Some(kept) = kept {
            stage.text = kept;
        }
        if stage.text.capacity() > KEPT_STAGE {
            stage.text = String::new();
        }
    });
}

/// A span the agent records itself: see the module documentation.
#[derive(Debug)]
pub(crate) struct AgentSpan {
    cx: SpanContext,
    /// `None` for a span the sampler dropped, and once ended.
    record: Option<Box<Record>>,
    sink: Option<SpanSink>,
}

impl AgentSpan {
    fn add_attribute(&mut self, kv: KeyValue) {
        self.add_with(|r| r.push_attribute(kv));
    }

    fn add_str(&mut self, key: &'static str, value: &str) {
        self.add_with(|r| r.push_str(key, value));
    }

    /// Does what [`put_text`] or [`drop_deferred_texts`] staged on this thread.
    fn take_staged(&mut self) {
        STAGE.with(|stage| {
            let mut stage = stage.borrow_mut();
            let stage = &mut *stage;
            match stage.op.take() {
                Some(Staged::Put {
                    key,
                    deferred,
                    owned,
                }) => {
                    if owned {
                        // `put_text` puts the thread's own buffer back afterwards.
                        let text = std::mem::take(&mut stage.text);
                        self.add_with(|r| r.push_owned_text(key, text, deferred));
                    } else {
                        let text = &stage.text;
                        self.add_with(|r| r.push_text(key, text, deferred));
                    }
                }
                Some(Staged::DropDeferred) => {
                    if let Some(r) = &mut self.record {
                        r.drop_deferred_texts();
                    }
                }
                None => {}
            }
        });
    }

    /// Adds one attribute with `push`, or counts it dropped past the limit.
    fn add_with(&mut self, push: impl FnOnce(&mut Record)) {
        if let Some(r) = &mut self.record {
            if r.attribute_count() < MAX_ATTRIBUTES {
                push(r);
            } else {
                r.data.dropped_attributes_count += 1;
            }
        }
    }
}

impl opentelemetry::trace::Span for AgentSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let Some(r) = &mut self.record else { return };
        let events = &mut r.data.events;
        if events.events.len() < MAX_EVENTS {
            let dropped = attributes.len().saturating_sub(MAX_ATTRIBUTES_PER_EVENT);
            attributes.truncate(MAX_ATTRIBUTES_PER_EVENT);
            events
                .events
                .push(Event::new(name, timestamp, attributes, dropped as u32));
        } else {
            events.dropped_count += 1;
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.cx
    }

    fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        if attribute.key.as_str() == STAGED_KEY {
            return self.take_staged();
        }
        self.add_attribute(attribute);
    }

    fn set_status(&mut self, status: Status) {
        if let Some(r) = &mut self.record {
            if status > r.data.status {
                r.data.status = status;
            }
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(r) = &mut self.record {
            r.data.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        let Some(r) = &mut self.record else { return };
        let links = &mut r.data.links;
        if links.links.len() < MAX_LINKS {
            let dropped = attributes.len().saturating_sub(MAX_ATTRIBUTES_PER_LINK);
            attributes.truncate(MAX_ATTRIBUTES_PER_LINK);
            links
                .links
                .push(Link::new(span_context, attributes, dropped as u32));
        } else {
            links.dropped_count += 1;
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.finish(Some(timestamp));
    }
}

impl AgentSpan {
    fn finish(&mut self, timestamp: Option<SystemTime>) {
        let (Some(mut r), Some(sink)) = (self.record.take(), self.sink.take()) else {
            return;
        };
        // As the SDK: a pipeline shut down meanwhile takes no more spans.
        if sink.is_shut_down() {
            return;
        }
        match timestamp {
            Some(t) => r.data.end_time = t,
            None if r.data.end_time == r.data.start_time => {
                r.data.end_time = opentelemetry::time::now()
            }
            None => {}
        }
        sink.end(r);
    }
}

impl Drop for AgentSpan {
    /// A span dropped without `end` ends now, as the SDK's does.
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::packed::PACKED_KEY;
    use crate::config::{Config, TraceReporterType};
    use opentelemetry::trace::Span as _;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Debug, Default)]
    struct InMemorySpanExporter(Arc<Mutex<Vec<SpanData>>>);
    impl SpanExporter for InMemorySpanExporter {
        async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn agent(exporter: InMemorySpanExporter) -> crate::Agent {
        let mut config = Config::defaults("test");
        config.reporting.trace_reporter_type = TraceReporterType::None;
        config.telemetry.metrics_enabled = false;
        crate::Agent::with_exporter(config, exporter)
    }

    fn exported(agent: &crate::Agent, e: &InMemorySpanExporter) -> Vec<SpanData> {
        agent.tracer_provider().force_flush().unwrap();
        e.0.lock().unwrap().clone()
    }

    /// The agent's spans reach the exporter as the SDK's would: scope, parent, limits, status.
    #[test]
    fn an_agent_span_is_exported_like_an_sdk_span() {
        let e = InMemorySpanExporter::default();
        let agent = agent(e.clone());
        let own = agent.own_spans.as_ref().expect("own spans");
        let parent = Context::new();
        let mut span = own
            .start(
                SpanKind::Server,
                SpanName::Joined("GET", "/x"),
                &parent,
                |a| a.str("a", "1"),
                None,
            )
            .expect("recording");
        for i in 0..200 {
            span.set_attribute(KeyValue::new(format!("k{i}"), i as i64));
        }
        span.set_status(Status::Ok);
        span.set_status(Status::error("lower than Ok"));
        span.add_event("e", vec![]);
        let cx = span.span_context().clone();
        drop(span); // ends it
        let spans = exported(&agent, &e);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.span_context, cx);
        assert!(cx.is_sampled() && cx.is_valid());
        assert_eq!(s.instrumentation_scope.name(), "hypertrace");
        assert_eq!(s.name, "GET /x");
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(s.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(s.dropped_attributes_count, 201 - MAX_ATTRIBUTES as u32);
        assert_eq!(s.attributes[0], KeyValue::new("a", "1"));
        assert_eq!(s.status, Status::Ok);
        assert_eq!(s.events.len(), 1);
        assert!(s.end_time > s.start_time);
    }

    /// A name written into a record reuses its buffer; a span the sampler drops writes no
    /// attribute and exports nothing.
    #[test]
    fn names_reuse_the_buffer_and_dropped_spans_write_nothing() {
        let mut name = Cow::Owned(String::with_capacity(64));
        SpanName::Joined("POST", "/users/{id}").write_into(&mut name);
        let ptr = name.as_ptr();
        assert_eq!(name, "POST /users/{id}");
        SpanName::Copied("GET").write_into(&mut name);
        assert_eq!((name.as_ref(), name.as_ptr()), ("GET", ptr));
        assert_eq!(SpanName::Given("x".into()).into_cow(), "x");

        let e = InMemorySpanExporter::default();
        let mut config = Config::defaults("test");
        config.reporting.trace_reporter_type = TraceReporterType::None;
        config.telemetry.metrics_enabled = false;
        config.rustagent.traces_sampler = crate::config::TracesSampler::AlwaysOff;
        let agent = crate::Agent::with_exporter(config, e.clone());
        let own = agent.own_spans.as_ref().unwrap();
        let span = own
            .start(
                SpanKind::Server,
                SpanName::Copied("dropped"),
                &Context::new(),
                |_| panic!("attributes written for a dropped span"),
                None,
            )
            .unwrap();
        assert!(!span.is_recording() && span.span_context().is_valid());
        drop(span);
        assert!(exported(&agent, &e).is_empty());
    }

    /// Texts handed over by reference land in the record's own buffer and are exported as the
    /// attributes they stand for; deferred ones can still be dropped; they count toward the limit.
    #[test]
    fn texts_are_recorded_into_the_record_and_exported_as_attributes() {
        let e = InMemorySpanExporter::default();
        let agent = agent(e.clone());
        let own = agent.own_spans.as_ref().unwrap();
        let cx = Context::new().with_span(started(own, "texts"));
        let span = cx.span();
        put_text(
            &span,
            Key::from_static_str("early"),
            "dropped later".into(),
            true,
        );
        put_text(
            &span,
            Key::from_static_str("http.request.body"),
            String::from("{\"a\":1}").into(),
            false,
        );
        drop_deferred_texts(&span);
        put_text(&span, Key::from_static_str("late"), "kept".into(), true);
        span.end();
        // After its end the span takes no more, and nothing is left staged.
        put_text(&span, Key::from_static_str("after"), "x".into(), false);
        let spans = exported(&agent, &e);
        let s = spans.iter().find(|s| s.name == "texts").unwrap();
        let got: Vec<(String, String)> = s
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("http.request.body".to_owned(), "{\"a\":1}".to_owned()),
                ("late".to_owned(), "kept".to_owned()),
            ]
        );
        STAGE.with(|s| assert!(s.borrow().op.is_none()));

        // The limit counts texts like any attribute.
        let cx = Context::new().with_span(started(own, "full"));
        let span = cx.span();
        for i in 0..MAX_ATTRIBUTES {
            span.set_attribute(KeyValue::new(format!("k{i}"), i as i64));
        }
        put_text(
            &span,
            Key::from_static_str("over"),
            "the limit".into(),
            false,
        );
        span.end();
        let spans = exported(&agent, &e);
        let s = spans.iter().find(|s| s.name == "full").unwrap();
        assert_eq!(s.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(s.dropped_attributes_count, 1);
    }

    /// Encodes each batch it borrows, as the agent's OTLP exporters do.
    #[derive(Clone, Default)]
    struct Encoding(Arc<Mutex<Vec<Vec<u8>>>>);
    impl crate::BatchExporter for Encoding {
        async fn export(
            &self,
            batch: &[crate::FinishedSpan],
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            for s in batch {
                assert_eq!(s.held_texts(), (0, 0), "texts left unencoded");
            }
            let mut out = Vec::new();
            crate::TraceEncoder::new(&opentelemetry_sdk::Resource::builder_empty().build())
                .encode(batch, &mut out);
            self.0.lock().unwrap().push(out);
            Ok(())
        }
    }

    /// The texts reach the encoded batch, redacted on the export thread.
    #[test]
    fn texts_are_encoded_redacted() {
        let mut config = Config::defaults("test");
        config.reporting.trace_reporter_type = TraceReporterType::None;
        config.telemetry.metrics_enabled = false;
        let e = Encoding::default();
        let agent = crate::Agent::with_batch_exporter(config, e.clone());
        let own = agent.own_spans.as_ref().unwrap();
        let cx = Context::new().with_span(started(own, "encoded"));
        let key = crate::capture::deferred::marked_key(
            &Key::from_static_str("http.request.body"),
            crate::capture::redact::Syntax::Json,
        );
        put_text(
            &cx.span(),
            key,
            r#"{"password":"s3cr3t","a":1}"#.into(),
            false,
        );
        let mut packer = crate::capture::packed::Packer::new("http.request.header.", 64);
        packer.push("x-first", "", "one");
        packer.push("x-second", "", "two");
        let mut packed = Vec::new();
        packer.finish_into(&mut packed);
        let packed = packed[0].value.to_string();
        put_text(
            &cx.span(),
            Key::from_static_str(PACKED_KEY),
            packed.into(),
            true,
        );
        cx.span().end();
        agent.tracer_provider().force_flush().unwrap();
        let batches = e.0.lock().unwrap().clone();
        assert_eq!(batches.len(), 1);
        let out = String::from_utf8_lossy(&batches[0]).into_owned();
        assert!(out.contains("http.request.body"), "{out:?}");
        assert!(
            out.contains(r#"{"password":"[REDACTED]","a":1}"#),
            "{out:?}"
        );
        assert!(!out.contains("s3cr3t"));
        // The packed headers as one attribute each.
        assert!(out.contains("http.request.header.x-first"), "{out:?}");
        assert!(out.contains("http.request.header.x-second"), "{out:?}");
        assert!(!out.contains("hypertrace.packed"), "{out:?}");
        // And the batch is a well-formed OTLP request, the texts among its span's attributes.
        #[cfg(feature = "otlp-grpc")]
        {
            use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
            use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
            use prost::Message as _;
            let req = ExportTraceServiceRequest::decode(batches[0].as_slice()).unwrap();
            let span = &req.resource_spans[0].scope_spans[0].spans[0];
            let attrs: Vec<(String, String)> = span
                .attributes
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Any::StringValue(s)) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), v)
                })
                .collect();
            let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
            assert_eq!(
                attrs,
                [
                    pair("http.request.header.x-first", "one"),
                    pair("http.request.header.x-second", "two"),
                    pair("http.request.body", r#"{"password":"[REDACTED]","a":1}"#),
                ]
            );
        }
    }

    /// A recording root SERVER span named `name`, with no attribute yet.
    fn started(own: &OwnSpans, name: &'static str) -> AgentSpan {
        own.start(
            SpanKind::Server,
            SpanName::Copied(name),
            &Context::new(),
            |_| {},
            None,
        )
        .expect("recording")
    }

    /// A record goes back to the pool after export and serves the next span, cleared.
    #[test]
    fn records_are_reused_cleared() {
        let e = InMemorySpanExporter::default();
        let agent = agent(e.clone());
        let own = agent.own_spans.as_ref().unwrap();
        let start = |name| started(own, name);
        let mut first = start("first");
        first.set_attribute(KeyValue::new("only.on.first", true));
        first.end();
        exported(&agent, &e);
        let second = start("second");
        assert_eq!(second.record.as_ref().unwrap().attribute_count(), 0);
        drop(second);
        let spans = exported(&agent, &e);
        let second = spans.iter().find(|s| s.name == "second").unwrap();
        assert!(second.attributes.is_empty());
    }
}
