//! `hypertrace::layer()`: the same capture for every route of a `Router`, as tower middleware.
//!
//! ```ignore
//! let app = Router::new().route("/users", post(create_user)).layer(hypertrace::layer().exclude("/health"));
//! ```
//! Use `Router::layer` (not `route_layer`) or either: axum inserts `MatchedPath` before calling the
//! layered route, so spans are named after the route template either way.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::server_span::{serve, Instrumented, Overrides};

/// The layer returned by [`layer`].
#[derive(Clone, Debug, Default)]
pub struct HypertraceLayer {
    overrides: Overrides,
    /// Route templates (or paths, for unmatched requests) that get no span.
    excluded: Arc<Vec<String>>,
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
    super::server_span::override_setters!();
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

#[derive(Clone, Debug)]
pub struct HypertraceService<S> {
    inner: S,
    layer: HypertraceLayer,
}

impl<S> HypertraceService<S> {
    fn excluded(&self, req: &Request) -> bool {
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

impl<S, B> Service<Request<B>> for HypertraceService<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = req.map(Body::new);
        // The clone that was polled ready is the one that must be called (tower's contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if self.excluded(&req) {
            return Box::pin(async move { Ok(inner.call(req).await.into_response()) });
        }
        let overrides = self.layer.overrides;
        Box::pin(async move {
            let resp = serve(&overrides, req, |mut req| {
                req.extensions_mut().insert(Instrumented);
                async move { inner.call(req).await.into_response() }
            })
            .await;
            Ok(resp)
        })
    }
}
