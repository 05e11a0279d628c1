//! The response future of both layers: it runs the inner call inside the call's context, and when
//! the response head arrives records its metadata and wraps its body, which ends the span.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Response, StatusCode};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;

use super::body::{Call, ResponseBody, ResponseState};
use super::message::{Encoding, MessageCapture};
use super::metadata;
use super::span::Side;
use super::status::GrpcStatus;
use crate::filter::run::Blocked;

/// What the response head needs once it arrives.
pub(crate) struct Pending {
    pub call: Arc<Call>,
    /// Capture the response messages, of this type (and streaming?) if known.
    pub response_body: Option<Option<(super::deferred::MessageType, bool)>>,
}

/// The body phase of a server call's filters (the first message read ahead, the filters that
/// want it), then the inner service's future or the block: boxed, as only calls that a body
/// filter sees take this way.
pub(crate) type Filtering<F> = Pin<Box<dyn Future<Output = Result<F, Blocked>> + Send>>;

pin_project_lite::pin_project! {
    /// Where the call is: filtered (server side), then served by the inner future.
    #[project = StageProj]
    enum Stage<F> {
        Running { #[pin] inner: F },
        Filtering { filtering: Filtering<F> },
        // Boxed: a rare path should not size every call's future.
        Blocked { blocked: Option<Box<Blocked>> },
    }
}

pin_project_lite::pin_project! {
    /// The future of an instrumented call (a named type: no boxing per call).
    pub struct ResponseFuture<F> {
        #[pin]
        stage: Stage<F>,
        // Current while the inner future is polled: the span, or (agent disabled) the parent.
        cx: Option<Context>,
        // `None`: not instrumented, or resolved.
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(p) = this.project().pending.take() {
                // Dropped before the response head came: the caller gave up.
                p.call.end(&p.call.abandoned(), Vec::new());
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, cx: Option<Context>, pending: Option<Pending>) -> Self {
        ResponseFuture {
            stage: Stage::Running { inner },
            cx,
            pending,
        }
    }

    /// The filters' body phase first.
    pub(crate) fn filtering(filtering: Filtering<F>, cx: Context, pending: Pending) -> Self {
        ResponseFuture {
            stage: Stage::Filtering { filtering },
            cx: Some(cx),
            pending: Some(pending),
        }
    }

    /// A call a filter blocked: answered with a trailers-only response.
    pub(crate) fn blocked(blocked: Blocked, cx: Context, pending: Pending) -> Self {
        ResponseFuture {
            stage: Stage::Blocked {
                blocked: Some(Box::new(blocked)),
            },
            cx: Some(cx),
            pending: Some(pending),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
    E: Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let res = {
            let _guard = this.cx.as_ref().map(|cx| cx.clone().attach());
            loop {
                match this.stage.as_mut().project() {
                    StageProj::Running { inner } => match inner.poll(task) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(res) => break res,
                    },
                    StageProj::Filtering { filtering } => {
                        let next = match filtering.as_mut().poll(task) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(inner)) => Stage::Running { inner },
                            Poll::Ready(Err(blocked)) => Stage::Blocked {
                                blocked: Some(Box::new(blocked)),
                            },
                        };
                        this.stage.set(next);
                    }
                    StageProj::Blocked { blocked } => {
                        let blocked = blocked
                            .take()
                            .expect("ResponseFuture polled after completion");
                        break Ok(crate::filter::grpc::response(*blocked));
                    }
                }
            }
        };
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(res.map(|r| r.map(|b| ResponseBody::new(b, None))));
        };
        match res {
            Ok(resp) => Poll::Ready(Ok(head(pending, resp))),
            Err(e) => {
                // No response at all (the connection failed, on the client side).
                let code = match pending.call.side {
                    Side::Client => 14, // UNAVAILABLE
                    Side::Server => 2,  // UNKNOWN
                };
                pending
                    .call
                    .end(&GrpcStatus::new(code, e.to_string()), Vec::new());
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Records the response head and wraps the body.
fn head<B>(pending: Pending, resp: Response<B>) -> Response<ResponseBody<B>> {
    let call = pending.call;
    let mut header_status = GrpcStatus::from_headers(resp.headers());
    if header_status.is_none() && resp.status() != StatusCode::OK {
        header_status = Some(GrpcStatus::from_http(resp.status()));
    }
    if call.response_metadata {
        let mut attrs = Vec::with_capacity(resp.headers().len());
        metadata::response(
            resp.headers(),
            &call.agent.config,
            call.metadata_scope,
            &mut attrs,
        );
        call.cx.span().set_attributes(attrs);
    }
    let capture = pending.response_body.map(|descriptor| {
        let encoding =
            Encoding::from_header(resp.headers().get("grpc-encoding").map(|v| v.as_bytes()));
        MessageCapture::new(&call.agent.config, encoding, descriptor)
    });
    let state = ResponseState {
        call,
        capture,
        header_status,
    };
    resp.map(|b| ResponseBody::new(b, Some(state)))
}
