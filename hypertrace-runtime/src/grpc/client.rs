//! The client layer: one CLIENT span per call made through a tonic `Channel` (or any service of
//! `http::Request<tonic::body::Body>`), with the trace context injected into the metadata.

use std::fmt::Display;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use tonic::body::Body as TonicBody;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::future::ResponseFuture;
use super::metadata;
use super::options::{setters, Options};
use super::propagate;
use super::span::Side;
use super::start::{start, Start};
use crate::agent;

/// The layer returned by [`client_layer`](super::client_layer).
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    opts: Options,
}

impl ClientLayer {
    setters!();
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            opts: self.opts.clone(),
        }
    }
}

/// The service of [`ClientLayer`], used where the `Channel` was (`EchoClient::new(service)`).
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    opts: Options,
}

impl<S, ResB> Service<Request<TonicBody>> for ClientService<S>
where
    S: Service<Request<TonicBody>, Response = Response<ResB>>,
    S::Error: Display,
    // Shared with the server's future, which answers a blocked call with an empty body.
    ResB: Body<Data = Bytes> + Default,
    ResB::Error: Display,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<TonicBody>) -> Self::Future {
        // The caller's context: where the call is made (an annotated handler's span, an entered
        // `tracing` span, or an attached context).
        let parent = Context::current();
        match start(&self.opts, Side::Client, &req, |_| parent.clone()) {
            Start::Pass | Start::Context(_) => {
                propagate::inject(agent::current().as_deref(), &parent, req.headers_mut());
                ResponseFuture::new(self.inner.call(req), None, None)
            }
            Start::Span {
                cx,
                call,
                pending,
                policy,
            } => {
                propagate::inject(Some(&call.agent), &cx, req.headers_mut());
                // After the injection: the span shows the metadata as sent.
                if policy.request_headers {
                    let mut attrs = Vec::with_capacity(8 + req.headers().len());
                    metadata::request(&req, &call.agent.config, policy.headers, &mut attrs);
                    cx.span().set_attributes(attrs);
                }
                let req = req.map(|b| TonicBody::new(RequestBody::new(b, Some(call))));
                ResponseFuture::new(self.inner.call(req), Some(cx), Some(pending))
            }
        }
    }
}
