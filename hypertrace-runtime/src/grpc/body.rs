//! Body wrappers of an instrumented call. Every frame passes through untouched; the messages are
//! copied on the side (at most the capture limit), the trailers are read for the status, and the
//! span ends when the response stream ends, fails, or is dropped (a cancellation).

use std::fmt::Display;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, KeyValue};

use super::message::MessageCapture;
use super::metadata;
use super::span::{self, RpcSemconv, Side};
use super::status::{
    client_error, code_name, server_error, GrpcStatus, CANCELLED, DEADLINE_EXCEEDED, UNKNOWN,
};
use crate::agent::Agent;
use crate::filter::body::{poll_replay, replay_ended, replay_size_hint, Held};

/// What the two bodies of one call share: the span, and the request's capture (a request stream
/// may still be open when the response ends, and then what it sent so far is recorded).
pub(crate) struct Call {
    pub cx: Context,
    pub side: Side,
    pub semconv: RpcSemconv,
    /// The agent whose configuration the call's capture follows.
    pub agent: Arc<Agent>,
    pub response_metadata: bool,
    /// Which metadata is recorded (`cap:0` from the caller keeps only two keys).
    pub metadata_scope: crate::capture::policy::HeaderScope,
    pub request: Mutex<Option<MessageCapture>>,
    /// From `grpc-timeout`: a call abandoned after it was given up for lost, not cancelled.
    pub deadline: Option<Instant>,
    /// When the call started, for `rpc.server.call.duration` / `rpc.client.call.duration`.
    pub started: Instant,
    /// The duration metric's attributes known at the start (`rpc.system`, `rpc.service`,
    /// `rpc.method`); empty when the agent has no metrics.
    pub metric: Vec<KeyValue>,
}

pub(crate) const REQUEST_BODY: &str = "rpc.request.body";
pub(crate) const RESPONSE_BODY: &str = "rpc.response.body";

impl Call {
    fn lock_request(&self) -> std::sync::MutexGuard<'_, Option<MessageCapture>> {
        self.request.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_request(&self, data: &[u8]) {
        if let Some(c) = self.lock_request().as_mut() {
            c.push(data);
        }
    }

    /// Records the request's messages (once).
    fn finish_request(&self) {
        let Some(capture) = self.lock_request().take() else {
            return;
        };
        let mut attrs = Vec::with_capacity(2);
        capture.finish(REQUEST_BODY, &mut attrs);
        if !attrs.is_empty() {
            self.cx.span().set_attributes(attrs);
        }
    }

    /// The status of a call abandoned before its end: DEADLINE_EXCEEDED once its deadline has
    /// passed (tonic's server drops the call then), else CANCELLED.
    pub(crate) fn abandoned(&self) -> GrpcStatus {
        match self.deadline {
            Some(d) if Instant::now() >= d => {
                GrpcStatus::new(DEADLINE_EXCEEDED, "the deadline (grpc-timeout) expired")
            }
            _ => GrpcStatus::new(CANCELLED, "the call was cancelled"),
        }
    }

    /// Ends the span with `status`.
    pub(crate) fn end(&self, status: &GrpcStatus, mut attrs: Vec<KeyValue>) {
        if let Some(c) = self.lock_request().take() {
            c.finish(REQUEST_BODY, &mut attrs);
        }
        span::end(&self.cx, self.side, self.semconv, status, attrs);
        if self.metric.is_empty() {
            return; // the agent has no metrics
        }
        let mut metric = Vec::with_capacity(self.metric.len() + 2);
        metric.extend(self.metric.iter().cloned());
        metric.push(KeyValue::new(
            "rpc.grpc.status_code",
            i64::from(status.code),
        ));
        let failed = match self.side {
            Side::Server => server_error(status.code),
            Side::Client => client_error(status.code),
        };
        if failed {
            metric.push(KeyValue::new("error.type", code_name(status.code)));
        }
        let duration = self.started.elapsed();
        match self.side {
            Side::Server => crate::metrics::rpc_server_call(duration, &metric),
            Side::Client => crate::metrics::rpc_client_call(duration, &metric),
        }
    }
}

pin_project_lite::pin_project! {
    /// The request body, as the inner service (server) or the connection (client) reads it.
    pub struct RequestBody<B: Body> {
        #[pin]
        inner: B,
        // The frames a blocking filter read ahead, yielded first.
        held: Option<Box<Held<B::Error>>>,
        // `None`: not instrumented, or already recorded.
        call: Option<Arc<Call>>,
    }

    impl<B: Body> PinnedDrop for RequestBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.finish_request();
            }
        }
    }
}

impl<B: Body> RequestBody<B> {
    pub(crate) fn new(inner: B, call: Option<Arc<Call>>) -> Self {
        RequestBody {
            inner,
            held: None,
            call,
        }
    }

    /// A body whose first frames were read ahead (by the filters): those, then the rest.
    pub(crate) fn replaying(inner: B, held: Held<B::Error>, call: Option<Arc<Call>>) -> Self {
        RequestBody {
            inner,
            held: Some(Box::new(held)),
            call,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let res = match this.held.as_deref_mut() {
            Some(held) => poll_replay(held, inner.as_mut(), cx),
            None => inner.as_mut().poll_frame(cx),
        };
        if let Some(call) = this.call.as_ref() {
            let done = match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        call.push_request(data);
                    }
                    match this.held.as_deref() {
                        Some(held) => replay_ended(held, &*inner),
                        None => inner.is_end_stream(),
                    }
                }
                Poll::Ready(_) => true,
                Poll::Pending => false,
            };
            if done {
                if let Some(call) = this.call.take() {
                    call.finish_request();
                }
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match self.held.as_deref() {
            Some(held) => replay_ended(held, &self.inner),
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.held.as_deref() {
            Some(held) => replay_size_hint(held, &self.inner),
            None => self.inner.size_hint(),
        }
    }
}

/// The response's side of an instrumented call.
pub(crate) struct ResponseState {
    pub call: Arc<Call>,
    pub capture: Option<MessageCapture>,
    /// From the response headers: a trailers-only response, or (client) a non-gRPC answer.
    pub header_status: Option<GrpcStatus>,
}

impl ResponseState {
    /// Ends the span: `trailers` when they came; `complete` when the stream ended rather than
    /// being dropped.
    fn finish(mut self, trailers: Option<&HeaderMap>, failure: Option<String>, complete: bool) {
        let mut attrs = Vec::with_capacity(8);
        if let Some(c) = self.capture.take() {
            c.finish(RESPONSE_BODY, &mut attrs);
        }
        let trailer_status = trailers.and_then(|t| {
            if self.call.response_metadata {
                let scope = self.call.metadata_scope;
                metadata::response(t, &self.call.agent.config, scope, &mut attrs);
            }
            GrpcStatus::from_headers(t)
        });
        let status = match (trailer_status, self.header_status.take(), failure) {
            (Some(s), _, _) => s,
            (None, Some(s), _) => s,
            (None, None, Some(msg)) => GrpcStatus::new(UNKNOWN, msg),
            (None, None, None) if complete => {
                GrpcStatus::new(UNKNOWN, "the response ended without a grpc-status")
            }
            (None, None, None) => self.call.abandoned(),
        };
        self.call.end(&status, attrs);
    }
}

pin_project_lite::pin_project! {
    /// The response body: ends the span at the end of the stream.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // `None`: not instrumented, or the span has ended.
        state: Option<ResponseState>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                // Dropped before its end: a cancellation, unless the headers had the status (a
                // trailers-only response, whose empty body need not be polled at all).
                state.finish(None, None, false);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, state: Option<ResponseState>) -> Self {
        ResponseBody { inner, state }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let res = inner.as_mut().poll_frame(cx);
        if this.state.is_none() {
            return res;
        }
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(state) = this.state.take() {
                        state.finish(Some(trailers), None, true);
                    }
                } else {
                    if let (Some(data), Some(state)) = (frame.data_ref(), this.state.as_mut()) {
                        if let Some(c) = state.capture.as_mut() {
                            c.push(data);
                        }
                    }
                    if inner.is_end_stream() {
                        if let Some(state) = this.state.take() {
                            state.finish(None, None, true);
                        }
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(state) = this.state.take() {
                    state.finish(None, Some(e.to_string()), true);
                }
            }
            Poll::Ready(None) => {
                if let Some(state) = this.state.take() {
                    state.finish(None, None, true);
                }
            }
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
