//! `hypertrace::layer()`: the same capture for every route of a `Router`, as tower middleware.
//!
//! ```ignore
//! let app = Router::new().route("/users", post(create_user)).layer(hypertrace::layer().exclude("/health"));
//! ```
//! Applied with `Router::layer` it also sees the requests no route matched (the fallback, a 404),
//! and, placed outermost, the ones that other middleware answered first. axum inserts `MatchedPath`
//! before calling a matched route, so spans are named after the route template.
//!
//! The service does its synchronous work in `call` (the span starts there, the inner service is
//! called there with the span's context attached) and hands the state to [`ResponseFuture`], which
//! finishes the span when the response is ready.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use http::Response;
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::server::{self, Serve};
use crate::agent;
use crate::capture::policy::Overrides;
use crate::filter::run::{Chain, Evaluation, Step};
use crate::filter::{self, Filter, Filters};

/// The layer returned by [`layer`].
#[derive(Clone, Debug, Default)]
pub struct HypertraceLayer {
    overrides: Overrides,
    /// Route templates (or paths, for unmatched requests) that get no span.
    excluded: Arc<Vec<String>>,
    /// Blocking filters of this layer, run after the agent's.
    filters: Filters,
}

/// A layer that captures every request of the router it is applied to.
pub fn layer() -> HypertraceLayer {
    HypertraceLayer::default()
}

impl HypertraceLayer {
    /// No span for this route template (`/health`, `/users/{id}`), e.g. health checks.
    pub fn exclude(mut self, route: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.excluded).push(route.into());
        self
    }
    crate::capture::policy::override_setters!();

    /// Adds a blocking filter for the requests of this layer (after the agent's filters and the
    /// ones added before). See [`Filter`].
    pub fn filter(mut self, filter: impl Filter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }
}

impl<S> Layer<S> for HypertraceLayer {
    type Service = HypertraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HypertraceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`HypertraceLayer`]: one SERVER span per request.
#[derive(Clone, Debug)]
pub struct HypertraceService<S> {
    inner: S,
    layer: HypertraceLayer,
}

impl<S> HypertraceService<S> {
    fn excluded<B>(&self, req: &Request<B>) -> bool {
        if self.layer.excluded.is_empty() {
            return false;
        }
        let key = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or(req.uri().path());
        self.layer.excluded.iter().any(|e| e == key)
    }
}

impl<S, B, ResBody> Service<Request<B>> for HypertraceService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + From<bytes::Bytes>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<server::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let agent = match agent::current() {
            Some(agent) if !self.excluded(&req) => agent,
            _ => return ResponseFuture::passthrough(self.inner.call(req.map(Body::new))),
        };
        let parent = match server::serve(&agent, &req, !self.layer.filters.is_empty()) {
            Serve::Span(parent) => parent,
            Serve::Spanless(cx) => {
                // No span, but the trace context still reaches outgoing calls made inside.
                let inner = {
                    let _attached = cx.clone().attach();
                    self.inner.call(req.map(Body::new))
                };
                return ResponseFuture::with_context(inner, cx);
            }
        };
        let (span, mut req) = server::start(&agent, &self.layer.overrides, parent, req);
        req.extensions_mut().insert(span.in_flight());
        if let Some(chain) = Chain::new(&agent.filters, &self.layer.filters) {
            return self.call_filtered(chain, agent, span, req);
        }
        let inner = {
            let _attached = span.context().clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::with_span(inner, agent, span)
    }
}

impl<S> HypertraceService<S> {
    /// A request with filters: the header phase here; then the inner service, the block, or the
    /// body phase, which calls the inner service (the one that was made ready; a clone stays
    /// here) once the filters let the request through.
    fn call_filtered<ResBody>(
        &mut self,
        chain: Chain,
        agent: Arc<agent::Agent>,
        span: crate::span::server::ServerSpan,
        req: Request<Body>,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let cx = span.context().clone();
        let mut ev = Evaluation::new(chain, &agent.config);
        match filter::http::header_phase(&mut ev, &req, &cx) {
            Step::Done => {
                let inner = {
                    let _attached = cx.attach();
                    self.inner.call(req)
                };
                ResponseFuture::with_span(inner, agent, span)
            }
            Step::Blocked(blocked) => ResponseFuture::blocked(blocked, agent, span),
            Step::NeedsBody => {
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                let limit = agent.config.data_capture.body_max_processing_size_bytes;
                let filtering = Box::pin(async move {
                    let req = filter::http::body_phase(ev, req, limit, cx).await?;
                    // Polled by the response future, inside the span's context.
                    Ok(ready.call(req))
                });
                ResponseFuture::filtering(filtering, agent, span)
            }
        }
    }
}
