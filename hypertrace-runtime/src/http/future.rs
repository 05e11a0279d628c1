//! The response future of the layer (and of an annotated handler without a layer): it carries the
//! started span from the synchronous prelude in `call` to the *finish* phase, with the span's context
//! attached while the inner future is polled. A panic while polling is the *fail* phase; being
//! dropped before the inner future is ready is the *cancel* phase (the span's own drop).
//!
//! With blocking filters, a request whose filters want its body first goes through the body
//! phase (the prefix read and those filters), and a blocked request is answered here, with the
//! block, without the inner service.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Response;

use super::server::{self, ResponseBody};
use crate::agent::Agent;
use crate::filter::{self, run::Blocked};
use crate::span::body::Tee;
use crate::span::server::ServerSpan;

/// What a [`ResponseFuture`] does around the inner future.
enum State {
    /// A span is open: finish it with the response. Boxed: this future wraps every request's
    /// handler future (which axum boxes in turn), and the span's state inline would add ~170
    /// bytes to each; a pointer costs one small allocation instead. The gain is memory per
    /// request in flight and smaller copies of the future; in time it measured a little faster
    /// with jemalloc and no different with glibc, whose costs follow its heap's history.
    Span(Box<Open>),
    /// No span (no agent, disabled, an excluded route): only the incoming context, so that the
    /// trace still goes on through the calls the handler makes.
    Context(opentelemetry::Context),
    /// Nothing to do, or done.
    Done,
}

/// The prefix read and the filters of the body phase, then the inner service's future (or the
/// block): boxed, as only requests that a body filter sees take this way.
pub(crate) type Filtering<F> = Pin<Box<dyn Future<Output = Result<F, Blocked>> + Send>>;

/// The open span and the agent it reports to.
struct Open {
    agent: Arc<Agent>,
    span: ServerSpan,
}

impl State {
    fn span(agent: Arc<Agent>, span: ServerSpan) -> Self {
        State::Span(Box::new(Open { agent, span }))
    }
}

pin_project_lite::pin_project! {
    /// Where the request is: filtered, then served by the inner future.
    #[project = StageProj]
    enum Stage<F> {
        /// The inner service's future.
        Running { #[pin] inner: F },
        /// The body phase of the filters.
        Filtering { filtering: Filtering<F> },
        /// A filter blocked the request: it is answered without the inner service. (Boxed, as
        /// `State::Span` is: a rare path should not size every request's future.)
        Blocked { blocked: Option<Box<Blocked>> },
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`HypertraceService`](super::layer::HypertraceService).
    pub struct ResponseFuture<F> {
        #[pin]
        stage: Stage<F>,
        state: State,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn with_span(inner: F, agent: Arc<Agent>, span: ServerSpan) -> Self {
        ResponseFuture {
            stage: Stage::Running { inner },
            state: State::span(agent, span),
        }
    }

    /// The body phase of the filters runs first; then the inner future it yields, or its block.
    pub(crate) fn filtering(filtering: Filtering<F>, agent: Arc<Agent>, span: ServerSpan) -> Self {
        ResponseFuture {
            stage: Stage::Filtering { filtering },
            state: State::span(agent, span),
        }
    }

    /// A request a filter blocked: the block is the response.
    pub(crate) fn blocked(blocked: Blocked, agent: Arc<Agent>, span: ServerSpan) -> Self {
        ResponseFuture {
            stage: Stage::Blocked {
                blocked: Some(Box::new(blocked)),
            },
            state: State::span(agent, span),
        }
    }

    pub(crate) fn with_context(inner: F, cx: opentelemetry::Context) -> Self {
        ResponseFuture {
            stage: Stage::Running { inner },
            state: State::Context(cx),
        }
    }

    pub(crate) fn passthrough(inner: F) -> Self {
        ResponseFuture {
            stage: Stage::Running { inner },
            state: State::Done,
        }
    }
}

/// Polls `f`, and on a panic fails the span (if any) and resumes the panic.
fn poll_contained<T>(state: &mut State, f: impl FnOnce() -> Poll<T>) -> Poll<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(p) => p,
        Err(panic) => {
            if let State::Span(open) = std::mem::replace(state, State::Done) {
                open.span.fail(panic.as_ref());
            }
            resume_unwind(panic);
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes> + From<bytes::Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _attached = match &*this.state {
            State::Span(open) => Some(open.span.context().clone().attach()),
            State::Context(parent) => Some(parent.clone().attach()),
            State::Done => None,
        };
        let output = loop {
            match this.stage.as_mut().project() {
                StageProj::Running { inner } => {
                    match poll_contained(this.state, || inner.poll(cx)) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(output) => break output,
                    }
                }
                StageProj::Filtering { filtering } => {
                    let next = match poll_contained(this.state, || filtering.as_mut().poll(cx)) {
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
                    let resp = filter::http::response::<B>(*blocked);
                    break Ok(resp);
                }
            }
        };
        let state = std::mem::replace(this.state, State::Done);
        Poll::Ready(output.map(|resp| match state {
            State::Span(open) => {
                let Open { agent, span } = *open;
                server::finish(&agent, span, resp)
            }
            State::Context(_) | State::Done => resp.map(Tee::passthrough),
        }))
    }
}
