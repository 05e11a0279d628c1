//! The server layer: one SERVER span per gRPC call, for `tonic::transport::Server::builder()
//! .layer(..)` and for tonic services mounted in an axum `Router` (`Router::layer`).

use std::fmt::Display;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::future::ResponseFuture;
use super::options::{setters, Options};
use super::propagate;
use super::span::Side;
use super::start::{is_grpc, start, Start};

/// The layer returned by [`server_layer`](super::server_layer).
#[derive(Clone, Debug, Default)]
pub struct ServerLayer {
    opts: Options,
}

impl ServerLayer {
    setters!();
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            opts: self.opts.clone(),
        }
    }
}

/// The service of [`ServerLayer`]: requests that are not gRPC pass through untouched.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    opts: Options,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ServerService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    S::Error: Display,
    ReqB: Body<Data = Bytes>,
    ResB: Body<Data = Bytes>,
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
                let req = req.map(|b| RequestBody::new(b, Some(call)));
                ResponseFuture::new(self.inner.call(req), Some(cx), Some(pending))
            }
        }
    }
}
