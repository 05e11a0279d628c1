//! The server layer: one SERVER span per gRPC call, for `tonic::transport::Server::builder()
//! .layer(..)` and for tonic services mounted in an axum `Router` (`Router::layer`).

use std::fmt::Display;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use std::sync::Arc;

use opentelemetry::Context;

use super::body::{Call, RequestBody, ResponseBody};
use super::future::{Pending, ResponseFuture};
use super::message::Encoding;
use super::options::{setters, Options};
use super::propagate;
use super::span::Side;
use super::start::{is_grpc, start, Start};
use crate::filter::body::read_prefix;
use crate::filter::run::{Chain, Evaluation, Step};
use crate::filter::{self, Filter, Filters};

/// The layer returned by [`server_layer`](super::server_layer).
#[derive(Clone, Debug, Default)]
pub struct ServerLayer {
    opts: Options,
    /// Blocking filters of this layer, run after the agent's.
    filters: Filters,
}

impl ServerLayer {
    setters!();

    /// Adds a blocking filter for the calls of this layer (after the agent's filters and the
    /// ones added before): it sees the metadata and, if it wants the body, the first request
    /// message. See [`Filter`].
    pub fn filter(mut self, filter: impl Filter) -> Self {
        self.filters.push(std::sync::Arc::new(filter));
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            opts: self.opts.clone(),
            filters: self.filters.clone(),
        }
    }
}

/// The service of [`ServerLayer`]: requests that are not gRPC pass through untouched.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    opts: Options,
    filters: Filters,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ServerService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Error: Display,
    S::Future: Send + 'static,
    ReqB: Body<Data = Bytes> + Unpin + Send + 'static,
    ReqB::Error: Send,
    ResB: Body<Data = Bytes> + Default,
    ResB::Error: Display,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let started = if is_grpc(&req) {
            start(&self.opts, Side::Server, &req, |agent| {
                propagate::extract(agent, req.headers())
            })
        } else {
            Start::Pass
        };
        match started {
            Start::Pass => {
                let req = req.map(|b| RequestBody::new(b, None));
                ResponseFuture::new(self.inner.call(req), None, None)
            }
            Start::Context(parent) => {
                let req = req.map(|b| RequestBody::new(b, None));
                ResponseFuture::new(self.inner.call(req), Some(parent), None)
            }
            Start::Span {
                cx, call, pending, ..
            } => {
                if let Some(chain) = Chain::new(&call.agent.filters, &self.filters) {
                    return self.call_filtered(chain, req, cx, call, pending);
                }
                let req = req.map(|b| RequestBody::new(b, Some(call)));
                ResponseFuture::new(self.inner.call(req), Some(cx), Some(pending))
            }
        }
    }
}

impl<S> ServerService<S> {
    /// A call with filters: those that need no body run here; then the inner service, the
    /// block, or the body phase (the first message read ahead), which calls the inner service
    /// (the one made ready; a clone stays here) once the filters let the call through.
    fn call_filtered<ReqB, ResB>(
        &mut self,
        chain: Chain,
        req: Request<ReqB>,
        cx: Context,
        call: Arc<Call>,
        pending: Pending,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqB: Body<Data = Bytes> + Unpin + Send + 'static,
        ReqB::Error: Send,
    {
        let config = &call.agent.config;
        let mut ev = Evaluation::new(chain, config);
        let ended = req.body().is_end_stream();
        let step = {
            let view = filter::grpc::view_of(&req);
            if ended {
                ev.run(&view.with_body(&[], false), true)
            } else {
                ev.run(&view, false)
            }
        };
        match step {
            Step::Done => {
                ev.record(&cx, None);
                let req = req.map(|b| RequestBody::new(b, Some(call)));
                let inner = {
                    let _attached = cx.clone().attach();
                    self.inner.call(req)
                };
                ResponseFuture::new(inner, Some(cx), Some(pending))
            }
            Step::Blocked(blocked) => {
                ev.record(&cx, Some(&blocked));
                ResponseFuture::blocked(blocked, cx, pending)
            }
            Step::NeedsBody => {
                let limit = config.data_capture.body_max_processing_size_bytes;
                let encoding =
                    Encoding::from_header(req.headers().get("grpc-encoding").map(|v| v.as_bytes()));
                let descriptor = self
                    .opts
                    .descriptors
                    .method(req.uri().path())
                    .map(|m| m.input.clone());
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                let span_cx = cx.clone();
                let filtering = Box::pin(async move {
                    let (parts, mut body) = req.into_parts();
                    let held = read_prefix(
                        &mut body,
                        limit.saturating_add(5),
                        filter::grpc::first_message_read,
                    )
                    .await;
                    let step = {
                        let (message, truncated) = filter::grpc::first_message(
                            &held,
                            limit,
                            encoding,
                            descriptor.as_ref(),
                        );
                        let view = filter::grpc::view(
                            &parts.method,
                            &parts.uri,
                            &parts.headers,
                            &parts.extensions,
                        )
                        .with_body(&message, truncated);
                        ev.run(&view, true)
                    };
                    if let Step::Blocked(blocked) = step {
                        ev.record(&span_cx, Some(&blocked));
                        return Err(blocked);
                    }
                    ev.record(&span_cx, None);
                    let body = RequestBody::replaying(body, held, Some(call));
                    // Polled by the response future, inside the call's context.
                    Ok(ready.call(Request::from_parts(parts, body)))
                });
                ResponseFuture::filtering(filtering, cx, pending)
            }
        }
    }
}
