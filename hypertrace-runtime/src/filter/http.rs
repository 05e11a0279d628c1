//! The filters of an HTTP request, for the layer and for an annotated handler without a layer:
//! one header phase (synchronous, before the inner service is called) and, when a filter wants
//! the body, one body phase that reads its prefix first. Both record the outcome on the span.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri};
use bytes::Bytes;
use http::{Extensions, HeaderMap, Method, Request, Response, Uri};
use opentelemetry::Context;

use super::body::{read_prefix, Replay};
use super::run::{Blocked, Evaluation, Step};
use super::{FilterRequest, Protocol};

/// The request as the filters see it. The URI is the one the client sent, also under
/// `Router::nest`.
fn view<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    ext: &'a Extensions,
) -> FilterRequest<'a> {
    let uri = ext.get::<OriginalUri>().map_or(uri, |o| &o.0);
    FilterRequest::new(Protocol::Http, method, uri, headers)
        .with_route(ext.get::<MatchedPath>().map(MatchedPath::as_str))
        .with_peer(ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
}

/// The header phase: the filters up to the first one that wants the body, or all of them when
/// the body has already ended (a GET: its empty body is the whole body). The outcome is on the
/// span unless the body phase must follow.
pub(crate) fn header_phase(ev: &mut Evaluation, req: &Request<Body>, cx: &Context) -> Step {
    use http_body::Body as _;
    let view = view(req.method(), req.uri(), req.headers(), req.extensions());
    let step = if req.body().is_end_stream() {
        ev.run(&view.with_body(&[], false), true)
    } else {
        ev.run(&view, false)
    };
    match &step {
        Step::Done => ev.record(cx, None),
        Step::Blocked(b) => ev.record(cx, Some(b)),
        Step::NeedsBody => {}
    }
    step
}

/// The body phase: reads at most `limit` bytes of the body, runs the remaining filters on them,
/// records the outcome, and gives back the request whose body yields the prefix and then the rest.
pub(crate) async fn body_phase(
    mut ev: Evaluation,
    req: Request<Body>,
    limit: usize,
    cx: Context,
) -> Result<Request<Body>, Blocked> {
    let (parts, mut body) = req.into_parts();
    let held = read_prefix(&mut body, limit, |_| false).await;
    let step = {
        let (prefix, truncated) = held.prefix(limit);
        let view = view(&parts.method, &parts.uri, &parts.headers, &parts.extensions)
            .with_body(&prefix, truncated);
        ev.run(&view, true)
    };
    match step {
        Step::Blocked(b) => {
            ev.record(&cx, Some(&b));
            Err(b)
        }
        Step::Done | Step::NeedsBody => {
            ev.record(&cx, None);
            Ok(Request::from_parts(
                parts,
                Body::new(Replay::new(held, body)),
            ))
        }
    }
}

/// Both phases, for the handler entry point.
pub(crate) async fn check(
    mut ev: Evaluation,
    req: Request<Body>,
    limit: usize,
    cx: &Context,
) -> Result<Request<Body>, Blocked> {
    match header_phase(&mut ev, &req, cx) {
        Step::Done => Ok(req),
        Step::Blocked(b) => Err(b),
        Step::NeedsBody => body_phase(ev, req, limit, cx.clone()).await,
    }
}

/// The response to a blocked request: the block's status, headers and body.
pub(crate) fn response<B: From<Bytes>>(blocked: Blocked) -> Response<B> {
    let block = blocked.block;
    let status = block.status();
    let headers = block.headers().clone();
    let body = block.body().cloned().unwrap_or_default();
    let mut resp = Response::new(B::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
