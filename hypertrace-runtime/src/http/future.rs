//! The response future of the layer (and of an annotated handler without a layer): it carries the
//! started span from the synchronous prelude in `call` to the *finish* phase, with the span's context
//! attached while the inner future is polled. A panic while polling is the *fail* phase; being
//! dropped before the inner future is ready is the *cancel* phase (the span's own drop).

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;

use super::server::{self, ResponseBody};
use crate::agent::Agent;
use crate::span::body::Tee;
use crate::span::server::ServerSpan;

/// What a [`ResponseFuture`] does around the inner future.
enum State {
    /// A span is open: finish it with the response.
    Span { agent: Arc<Agent>, span: ServerSpan },
    /// No span (no agent, disabled, an excluded route): only the incoming context, so that the
    /// trace still goes on through the calls the handler makes.
    Context(opentelemetry::Context),
    /// Nothing to do, or done.
    Done,
}

pin_project_lite::pin_project! {
    /// The future returned by [`HypertraceService`](super::layer::HypertraceService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: State,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn with_span(inner: F, agent: Arc<Agent>, span: ServerSpan) -> Self {
        ResponseFuture {
            inner,
            state: State::Span { agent, span },
        }
    }

    pub(crate) fn with_context(inner: F, cx: opentelemetry::Context) -> Self {
        ResponseFuture {
            inner,
            state: State::Context(cx),
        }
    }

    pub(crate) fn passthrough(inner: F) -> Self {
        ResponseFuture {
            inner,
            state: State::Done,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _attached = match &*this.state {
            State::Span { span, .. } => Some(span.context().clone().attach()),
            State::Context(parent) => Some(parent.clone().attach()),
            State::Done => None,
        };
        let inner = this.inner;
        let output = match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => output,
            Err(panic) => {
                if let State::Span { span, .. } = std::mem::replace(this.state, State::Done) {
                    span.fail(panic.as_ref());
                }
                resume_unwind(panic);
            }
        };
        let state = std::mem::replace(this.state, State::Done);
        Poll::Ready(output.map(|resp| match state {
            State::Span { agent, span } => server::finish(&agent, span, resp),
            State::Context(_) | State::Done => resp.map(Tee::passthrough),
        }))
    }
}
