//! A SERVER span's lifecycle, the same for every server entry point:
//!
//! - **start** ([`ServerSpan::start`]): the span under the incoming remote context (never under a
//!   local span: the request is this service's entry point), with the request's attributes;
//! - **finish** ([`ServerSpan::finish`]): the response's attributes and the failure rule's verdict;
//!   the span then ends when the response body ends ([`EndSpan`]);
//! - **fail** ([`ServerSpan::fail`]): the handler panicked: an `exception` event, the span ends, and
//!   the caller resumes the panic;
//! - **cancel** (dropping a started span without finishing it): the request's future was dropped
//!   before a response existed (an outer timeout, the client gone): Error status saying so.
//!
//! An annotated handler behind the layer does not open a second span: it refines this one
//! ([`InFlight::refine`]), renaming it and applying its capture switches.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, Key, KeyValue};

use super::body::EndSpan;
use super::exception;
use super::record::{drop_deferred_texts, put_text, Attributes, SpanName};
use super::OnSpan;
use crate::agent::Agent;
use crate::capture::policy::{CapturePolicy, Overrides};
use crate::capture::AttributeSink;
use crate::metrics::ServerTimer;

/// Why a span that never got a response is an error.
pub(crate) const CANCELLED: &str =
    "cancelled: the request was dropped before a response was produced (client gone, or a timeout)";

/// What the parts of one request share: the policy in force and a handler's refinement of it.
#[derive(Debug)]
pub(crate) struct Shared {
    base: CapturePolicy,
    handler: OnceLock<&'static Overrides>,
    /// An unsampled span captures nothing, whatever a handler asks.
    sampled: bool,
    /// The span is the agent's own (`record::AgentSpan`): captured texts go into its record.
    own: bool,
}

impl Shared {
    /// Whether the span is the agent's own.
    pub(crate) fn own(&self) -> bool {
        self.own
    }

    /// The policy in force now: the entry point's, refined by the handler's options once it ran.
    pub(crate) fn policy(&self) -> CapturePolicy {
        match self.handler.get() {
            _ if !self.sampled => CapturePolicy::NOTHING,
            Some(h) => self.base.refine(h),
            None => self.base,
        }
    }
}

/// Put in the request's extensions by the layer: the span in flight, for the handler behind it.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    cx: Context,
    shared: Arc<Shared>,
}

impl InFlight {
    /// An annotated handler behind the layer: its `name` renames the span, its switches refine the
    /// capture (the layer records the request headers and the bodies when the response is ready, so
    /// that a switch turned off still applies to them). Returns what the handler turned on that the
    /// layer did not capture: the caller captures it from the request. The first handler wins.
    pub(crate) fn refine(&self, opts: &'static Overrides) -> CapturePolicy {
        let before = self.shared.policy();
        if self.shared.handler.set(opts).is_err() {
            return CapturePolicy::NOTHING;
        }
        if let Some(name) = opts.name {
            self.cx.span().update_name(name);
        }
        let after = self.shared.policy();
        CapturePolicy {
            request_headers: after.request_headers && !before.request_headers,
            response_headers: false,
            request_body: after.request_body && !before.request_body,
            response_body: false,
            headers: after.headers,
        }
    }

    /// The policy's shared cell, for the request-body tee.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The span's context.
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// Where attributes go on the span now.
    pub(crate) fn on_span(&self) -> OnSpan<'_> {
        OnSpan::new(self.cx.span(), self.shared.own)
    }
}

/// Kept in a server span's context when the request arrived inside a `tracing` span an app's own
/// middleware opened (tower-http's `TraceLayer`): the subscriber then records the handler's events
/// on the server span, not on that outer span.
#[derive(Debug)]
pub(crate) struct ServerScope {
    outer: tracing::span::Id,
}

impl ServerScope {
    /// The `tracing` span that was current when the server span started.
    pub(crate) fn outer_span(&self) -> Option<&tracing::span::Id> {
        Some(&self.outer)
    }
}

/// Whether the configured sampler will surely drop a span started under `parent`: then its
/// attributes are not worth building. Only what the parent's flag or the sampler's kind decide
/// (`always_off`, a parent-based sampler under an unsampled parent, `parentbased_always_off` at a
/// root); a ratio's verdict depends on the trace id the SDK has yet to draw, so `false` there.
/// The samplers are the configuration's (`export::sampler`), none of which looks at attributes.
pub(crate) fn surely_unsampled(agent: &Agent, parent: &Context) -> bool {
    use crate::config::TracesSampler::*;
    let parent_sampled = parent
        .has_active_span()
        .then(|| parent.span().span_context().is_sampled());
    match agent.config.rustagent.traces_sampler {
        AlwaysOff => true,
        ParentBasedAlwaysOn | ParentBasedTraceIdRatio => parent_sampled == Some(false),
        ParentBasedAlwaysOff => parent_sampled != Some(true),
        AlwaysOn | TraceIdRatio => false,
    }
}

/// The context of a request that [`surely_unsampled`] says is dropped, built without an SDK span:
/// what the SDK hands on for a dropped span (the caller's trace id, or a new one for a root; a new
/// span id; not sampled; the caller's `tracestate`), so that the calls made inside carry the same
/// `traceparent` and `tracestate` as they would under the SDK's non-recording span.
pub(crate) fn unsampled_context(parent: &Context) -> Context {
    use opentelemetry::trace::{SpanContext, TraceFlags};
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

    let ids = RandomIdGenerator::default();
    let caller = parent.span();
    let caller = caller.span_context();
    let trace_id = if caller.is_valid() {
        caller.trace_id()
    } else {
        ids.new_trace_id()
    };
    let span = SpanContext::new(
        trace_id,
        ids.new_span_id(),
        TraceFlags::default(),
        false,
        caller.trace_state().clone(),
    );
    parent.with_remote_span_context(span)
}

/// Starts a span of `kind` under `parent`, with `attrs`: see [`start_span_with`].
#[cfg_attr(
    not(any(feature = "grpc", feature = "sqlx-postgres", feature = "sqlx-mysql")),
    allow(dead_code)
)] // gRPC and SQL spans
pub(crate) fn start_span(
    agent: &Agent,
    kind: SpanKind,
    name: Cow<'static, str>,
    parent: &Context,
    attrs: Vec<KeyValue>,
    start: Option<SystemTime>,
) -> Context {
    let attrs = |out: &mut Attributes<'_>| attrs.into_iter().for_each(|kv| out.kv(kv));
    start_span_with(agent, kind, SpanName::Given(name), parent, attrs, start).0
}

/// Starts a span of `kind` under `parent`, its first attributes written by `attrs` (called only
/// when the span records): the one place every entry point starts its span. A SERVER span
/// remembers the `tracing` span an app's middleware had entered around the request
/// ([`ServerScope`]). `start`: a start time the caller read already (else the clock is read).
/// Also says whether the span is the agent's own (`record::AgentSpan`).
pub(crate) fn start_span_with(
    agent: &Agent,
    kind: SpanKind,
    name: SpanName<'_>,
    parent: &Context,
    attrs: impl FnOnce(&mut Attributes<'_>),
    start: Option<SystemTime>,
) -> (Context, bool) {
    let server = kind == SpanKind::Server;
    let mut own = false;
    let cx = match &agent.own_spans {
        Some(spans) => match spans.start(kind, name, parent, attrs, start) {
            Some(span) => {
                own = true;
                parent.with_span(span)
            }
            // Telemetry suppressed, or the pipeline shut down: the SDK's empty span.
            None => parent.with_span(agent.tracer.start_with_context("", parent)),
        },
        None => {
            let mut list = Vec::new();
            attrs(&mut Attributes::list(&mut list));
            let mut builder = agent
                .tracer
                .span_builder(name.into_cow())
                .with_kind(kind)
                .with_attributes(list);
            builder.start_time = start;
            parent.with_span(builder.start_with_context(&agent.tracer, parent))
        }
    };
    if !server {
        return (cx, own);
    }
    // Only when there is an outer span: a context value costs an allocation.
    let cx = match tracing::Span::current().id() {
        Some(outer) => cx.with_value(ServerScope { outer }),
        None => cx,
    };
    (cx, own)
}

/// Request headers waiting for the final policy. Mostly one attribute (the packed headers), kept
/// inline: no `Vec` per request for it; the rare `.truncated` marks go after it. On the agent's
/// own span the packed headers go into its record at once, marked deferred (`staged`), and are
/// dropped there at the end if the policy no longer wants them.
#[derive(Debug, Default)]
struct Deferred {
    first: Option<KeyValue>,
    rest: Vec<KeyValue>,
    staged: bool,
}

/// Where request headers are recorded: see [`Deferred`].
pub(crate) struct DeferredHeaders<'a> {
    deferred: &'a mut Deferred,
    /// The agent's own span, when it is one.
    own: Option<&'a Context>,
}

impl Extend<KeyValue> for DeferredHeaders<'_> {
    fn extend<I: IntoIterator<Item = KeyValue>>(&mut self, attrs: I) {
        self.deferred.extend(attrs);
    }
}

impl AttributeSink for DeferredHeaders<'_> {
    fn text(&mut self, key: Key, text: Cow<'_, str>) {
        match self.own {
            Some(cx) => {
                put_text(&cx.span(), key, text, true);
                self.deferred.staged = true;
            }
            None => self
                .deferred
                .extend(Some(KeyValue::new(key, text.into_owned()))),
        }
    }
}

impl Extend<KeyValue> for Deferred {
    fn extend<I: IntoIterator<Item = KeyValue>>(&mut self, attrs: I) {
        for kv in attrs {
            match self.first {
                None => self.first = Some(kv),
                Some(_) => self.rest.push(kv),
            }
        }
    }
}

/// A started SERVER span. Dropping it unfinished is the *cancel* phase.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    cx: Context,
    shared: Arc<Shared>,
    /// Attributes recorded at the end whatever the ending (request headers: the handler's options,
    /// known only later, decide whether they are kept).
    deferred: Deferred,
    /// `None` once finished or failed.
    open: bool,
    /// The request's duration metric, when the agent has metrics: it shares the span's start and
    /// end times; finishing hands it to the [`EndSpan`] (the request is recorded when the
    /// response body ends), failing records `panic`, cancelling `cancelled`.
    timer: Option<ServerTimer>,
}

impl ServerSpan {
    /// The *start* phase. An unsampled span captures nothing: its policy is [`CapturePolicy::NOTHING`].
    /// `timer`: the request's duration metric, whose start time the span takes.
    pub(crate) fn start(
        agent: &Agent,
        parent: &Context,
        name: SpanName<'_>,
        attrs: impl FnOnce(&mut Attributes<'_>),
        policy: CapturePolicy,
        timer: Option<ServerTimer>,
    ) -> ServerSpan {
        let start = timer.as_ref().map(ServerTimer::start_time);
        let (cx, own) = start_span_with(agent, SpanKind::Server, name, parent, attrs, start);
        let sampled = cx.span().span_context().is_sampled();
        ServerSpan {
            cx,
            shared: Arc::new(Shared {
                base: policy,
                handler: OnceLock::new(),
                sampled,
                own,
            }),
            deferred: Deferred::default(),
            open: true,
            timer,
        }
    }

    /// The span's context: attach it while the request is served.
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// The capture policy in force now.
    pub(crate) fn policy(&self) -> CapturePolicy {
        self.shared.policy()
    }

    /// Whether the span is sampled (recorded and exported): an unsampled one is given no attribute.
    pub(crate) fn sampled(&self) -> bool {
        self.shared.sampled
    }

    /// The policy's shared cell, for the request-body tee.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The handle the layer hands to a handler behind it.
    pub(crate) fn in_flight(&self) -> InFlight {
        InFlight {
            cx: self.cx.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Where request headers (or metadata) are recorded to be kept until the end: the final
    /// policy decides.
    pub(crate) fn deferred_headers(&mut self) -> DeferredHeaders<'_> {
        DeferredHeaders {
            deferred: &mut self.deferred,
            own: self.shared.own.then_some(&self.cx),
        }
    }

    fn record_deferred(&mut self, cx: &Context) {
        let Deferred {
            first,
            rest,
            staged,
        } = std::mem::take(&mut self.deferred);
        let kept = self.shared.policy().request_headers;
        if staged && !kept {
            drop_deferred_texts(&cx.span());
        }
        if first.is_some() && kept {
            let span = cx.span();
            span.set_attributes(first);
            if !rest.is_empty() {
                span.set_attributes(rest);
            }
        }
    }

    /// The *finish* phase: the response's attributes (its status code is `status`; `respond`
    /// records them on the span), and status Error with `failure` when the protocol's rule says
    /// the response is one. The span stays open: the returned [`EndSpan`] ends it when the
    /// response body ends, recording the body under `body_key` (and the request's duration
    /// metric).
    pub(crate) fn finish(
        mut self,
        status: u16,
        respond: impl FnOnce(&mut OnSpan<'_>),
        failure: Option<String>,
        body_key: &'static str,
    ) -> EndSpan {
        self.open = false;
        let timer = self.timer.take().map(|mut t| {
            t.respond(status);
            t
        });
        let cx = std::mem::take(&mut self.cx);
        self.record_deferred(&cx);
        let own = self.shared.own;
        respond(&mut OnSpan::new(cx.span(), own));
        let span = cx.span();
        if let Some(description) = failure {
            span.set_status(Status::error(description));
        }
        EndSpan::new(cx.clone(), body_key)
            .with_timer(timer)
            .own(own)
    }

    /// The *fail* phase: the handler panicked. Records it and ends the span; the caller resumes the
    /// unwinding.
    pub(crate) fn fail(mut self, panic: &(dyn std::any::Any + Send)) {
        self.open = false;
        if let Some(t) = self.timer.take() {
            t.fail(crate::metrics::PANIC);
        }
        let cx = std::mem::take(&mut self.cx);
        self.record_deferred(&cx);
        exception::record_panic(&cx, panic);
        cx.span().end();
    }
}

impl Drop for ServerSpan {
    /// The *cancel* phase.
    fn drop(&mut self) {
        if self.open {
            if let Some(t) = self.timer.take() {
                t.fail(crate::metrics::CANCELLED);
            }
            let cx = std::mem::take(&mut self.cx);
            self.record_deferred(&cx);
            let span = cx.span();
            span.set_status(Status::error(CANCELLED));
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TraceReporterType, TracesSampler};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn agent(sampler: TracesSampler) -> Agent {
        let mut config = Config::defaults("test");
        config.reporting.trace_reporter_type = TraceReporterType::None;
        config.telemetry.metrics_enabled = false;
        config.rustagent.traces_sampler = sampler;
        config.rustagent.traces_sampler_arg = 0.5;
        Agent::from_config(config).unwrap()
    }

    fn remote(flags: TraceFlags) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            flags,
            true,
            TraceState::default(),
        ))
    }

    /// Attributes are skipped only for spans the SDK's sampler then really drops, and they are
    /// skipped in every case where the sampler's kind and the parent's flag decide.
    #[test]
    fn only_spans_the_sampler_drops_are_surely_unsampled() {
        use TracesSampler::*;
        let parents = [
            ("root", Context::new()),
            ("sampled parent", remote(TraceFlags::SAMPLED)),
            ("unsampled parent", remote(TraceFlags::default())),
        ];
        for sampler in [
            AlwaysOn,
            AlwaysOff,
            TraceIdRatio,
            ParentBasedAlwaysOn,
            ParentBasedAlwaysOff,
            ParentBasedTraceIdRatio,
        ] {
            let agent = agent(sampler);
            for (what, parent) in &parents {
                let predicted = surely_unsampled(&agent, parent);
                let expected = matches!(
                    (sampler, *what),
                    (AlwaysOff, _)
                        | (
                            ParentBasedAlwaysOn | ParentBasedTraceIdRatio,
                            "unsampled parent"
                        )
                        | (ParentBasedAlwaysOff, "root" | "unsampled parent")
                );
                assert_eq!(predicted, expected, "{sampler:?}, {what}");
                for _ in 0..20 {
                    let cx = start_span(
                        &agent,
                        SpanKind::Server,
                        "t".into(),
                        parent,
                        Vec::new(),
                        None,
                    );
                    let sampled = cx.span().span_context().is_sampled();
                    assert!(!(predicted && sampled), "{sampler:?}, {what}: sampled");
                }
            }
        }
    }
}
