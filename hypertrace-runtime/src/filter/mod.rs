//! Blocking filters: user code that sees a request as the agent captured it, before the handler
//! runs, and may answer it instead of the handler (a WAF-style rule, a denied address).
//!
//! - this file: the [`Filter`] trait, the request view ([`FilterRequest`]), the answer
//!   ([`Decision`], [`Block`]) and the ordered list of filters ([`Filters`]);
//! - `run.rs`: running the list in order (first block wins), each filter under `catch_unwind` and
//!   its time budget, the failure mode, and the span attributes of the outcome;
//! - `body.rs`: the body prefix a filter reads, and the body that hands the prefix and then the
//!   rest of the stream to the handler unchanged;
//! - `http.rs`: the HTTP glue shared by the layer and the handler entry point;
//! - `grpc.rs` (feature `grpc`): the first request message as the body, and a block as a gRPC status.
//!
//! Filters are synchronous. An asynchronous variant would serve a filter that waits on the
//! network (a reputation service); the agent leaves that to the app's own middleware (tower-http's
//! `AsyncRequireAuthorization`, placed inside `hypertrace::layer()` so that its answer is still on
//! the span), because a filter here runs on the request's path for every request, and a remote
//! call in it would make the agent the cause of the request's latency and its failures.

pub(crate) mod body;
#[cfg(feature = "grpc")]
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod run;

pub use run::{DECISION, FAILURE, FAILURE_FILTER, FAILURE_MESSAGE, FAILURE_MODE, NAME};

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use bytes::Bytes;

/// A blocking filter. It sees each request before the handler runs and says whether it goes on.
///
/// Register it on the agent ([`Agent::filter`](crate::Agent::filter), the `filters = ...` option
/// of `#[hypertrace::main]`) to see every request, or on one layer (`hypertrace::layer().filter(f)`,
/// `hypertrace::grpc::server_layer().filter(f)`). The agent's filters run first, then the layer's,
/// in the order they were added; the first that blocks decides, and the later ones do not run.
///
/// `evaluate` runs on the request's task: keep it short and never block in it. A filter that
/// panics, or takes longer than `rustagent.filter_budget_ms`, does not take the request down:
/// `rustagent.filter_failure_mode` decides (by default the request goes on).
pub trait Filter: Send + Sync + 'static {
    /// The filter's name, recorded on the span when it blocks or fails.
    fn name(&self) -> &str;

    /// Whether the filter reads the request body. Only then does the agent read a prefix of the
    /// body (at most `data_capture.body_max_processing_size_bytes`) before the handler runs; a
    /// filter that needs no body costs no buffering.
    fn wants_body(&self) -> bool {
        false
    }

    /// Decides on one request.
    fn evaluate(&self, request: &FilterRequest<'_>) -> Decision;
}

/// The protocol of a filtered request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP request.
    Http,
    /// A gRPC call: the body is its first request message.
    Grpc,
}

/// The request as a filter sees it: everything borrowed, nothing redacted.
#[derive(Clone, Copy, Debug)]
pub struct FilterRequest<'a> {
    protocol: Protocol,
    method: &'a Method,
    uri: &'a Uri,
    route: Option<&'a str>,
    peer: Option<SocketAddr>,
    headers: &'a HeaderMap,
    body: Option<&'a [u8]>,
    body_truncated: bool,
}

impl<'a> FilterRequest<'a> {
    /// A request without route, peer address or body (add them with the `with_*` methods): for
    /// the agent, and for the unit tests of a filter.
    pub fn new(
        protocol: Protocol,
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Self {
        FilterRequest {
            protocol,
            method,
            uri,
            route: None,
            peer: None,
            headers,
            body: None,
            body_truncated: false,
        }
    }

    /// With the matched route template.
    pub fn with_route(mut self, route: Option<&'a str>) -> Self {
        self.route = route;
        self
    }

    /// With the peer's address.
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// With a body prefix; `truncated` when the body goes on past it.
    pub fn with_body(mut self, body: &'a [u8], truncated: bool) -> Self {
        self.body = Some(body);
        self.body_truncated = truncated;
        self
    }

    /// HTTP or gRPC.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The request method (`POST` for every gRPC call).
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The URI as the client sent it (for gRPC, `/package.Service/Method`).
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The axum route template that matched (`/users/{id}`), when the filter runs behind the
    /// routing (the layer on a `Router`, a handler); `None` for an unmatched request.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }

    /// The peer's address, when the server gives it (axum's `ConnectInfo<SocketAddr>`, served
    /// with `into_make_service_with_connect_info::<SocketAddr>()`; tonic's remote address).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The request headers (gRPC: the request metadata), as received: the capture's redaction
    /// does not apply here.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The first bytes of the body (at most `data_capture.body_max_processing_size_bytes`), as
    /// received (not decompressed), only for a filter whose [`Filter::wants_body`] is true. For
    /// gRPC, the first request message: proto3 JSON when the layer has the method's descriptors,
    /// else the message's bytes.
    pub fn body(&self) -> Option<&'a [u8]> {
        self.body
    }

    /// Whether the body goes on past [`body`](Self::body) (or its end was not seen).
    pub fn body_truncated(&self) -> bool {
        self.body_truncated
    }

    /// The same view without the body, for a filter that does not want it.
    pub(crate) fn without_body(mut self) -> Self {
        self.body = None;
        self.body_truncated = false;
        self
    }
}

/// A filter's answer.
#[derive(Clone, Debug)]
pub enum Decision {
    /// The request goes on (to the next filter, then the handler).
    Continue,
    /// The request is answered with this, and the handler does not run.
    Block(Block),
}

impl Decision {
    /// A block with the defaults: 403, no headers, no body, span status Error.
    pub fn block() -> Decision {
        Decision::Block(Block::new())
    }
}

impl From<Block> for Decision {
    fn from(block: Block) -> Decision {
        Decision::Block(block)
    }
}

/// The answer to a blocked request. HTTP: the status, the headers and the body as given. gRPC: a
/// trailers-only response whose `grpc-status` is mapped from the status (403 → PERMISSION_DENIED,
/// 401 → UNAUTHENTICATED, 429 → RESOURCE_EXHAUSTED, ...), the body as `grpc-message`.
#[derive(Clone, Debug)]
pub struct Block {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<Bytes>,
    span_error: bool,
}

impl Default for Block {
    fn default() -> Self {
        Block::new()
    }
}

impl Block {
    /// 403, no headers, no body, span status Error.
    pub fn new() -> Block {
        Block {
            status: StatusCode::FORBIDDEN,
            headers: HeaderMap::new(),
            body: None,
            span_error: true,
        }
    }

    /// The response status.
    pub fn with_status(mut self, status: StatusCode) -> Block {
        self.status = status;
        self
    }

    /// A response header (appended: a name may be given several times).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Block {
        self.headers.append(name, value);
        self
    }

    /// The response body (set its `content-type` with [`with_header`](Self::with_header)).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Block {
        self.body = Some(body.into());
        self
    }

    /// `false`: the span's status is not set to Error for this block (a 5xx still is, by the
    /// HTTP rule for server spans).
    pub fn with_span_error(mut self, error: bool) -> Block {
        self.span_error = error;
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The response body.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// Whether the span's status is set to Error.
    pub fn span_error(&self) -> bool {
        self.span_error
    }
}

/// An ordered list of filters, cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Filters {
    list: Arc<Vec<Arc<dyn Filter>>>,
}

impl Filters {
    /// No filters.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// An empty list that is always there: a new one allocates its `Arc`, per request where
    /// an entry point has no local filters.
    pub(crate) fn none() -> &'static Filters {
        static NONE: std::sync::LazyLock<Filters> = std::sync::LazyLock::new(Filters::new);
        &NONE
    }

    /// This list with `filter` added at the end.
    pub fn with(mut self, filter: impl Filter) -> Filters {
        self.push(Arc::new(filter));
        self
    }

    /// Adds a filter at the end.
    pub fn push(&mut self, filter: Arc<dyn Filter>) {
        Arc::make_mut(&mut self.list).push(filter);
    }

    /// Adds the filters of `other` at the end.
    pub fn extend(&mut self, other: &Filters) {
        if !other.is_empty() {
            Arc::make_mut(&mut self.list).extend(other.list.iter().cloned());
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many filters.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&dyn Filter> {
        self.list.get(i).map(|f| &**f)
    }
}

impl fmt::Debug for Filters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|x| x.name().to_owned()))
            .finish()
    }
}
