//! Outgoing HTTP: CLIENT spans for `reqwest` calls, with the same header and body
//! capture as the server side, and the propagation headers injected so that the callee's SERVER
//! span joins the caller's trace.
//!
//! The hook is [`reqwest_middleware`]: [`instrumented`] wraps a `reqwest::Client` with
//! [`HypertraceMiddleware`], and the result is used like the client itself.
//!
//! ```ignore
//! let http = hypertrace::client::instrumented(reqwest::Client::new());
//! // Inside an annotated handler the server span is current: the call's span is its child.
//! let joke = http
//!     .get(format!("{upstream}/jokes/{id}"))
//!     .with_extension(hypertrace::client::Route("/jokes/{id}")) // optional: names the span "GET /jokes/{id}"
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! ```
//!
//! Behind the cargo feature `reqwest` (not in the default set). Apps still on reqwest 0.12
//! (reqwest-middleware 0.4) get the same instrumentation from `reqwest012`, behind the feature
//! `reqwest012`; the two features can be on together, and [`Route`] serves both.

#[cfg(feature = "reqwest")]
mod middleware;
#[cfg(feature = "reqwest012")]
pub mod reqwest012;

#[cfg(feature = "reqwest")]
pub use middleware::HypertraceMiddleware;
/// The crates this module's API is made of, so an app needs no version of its own to match ours.
#[cfg(feature = "reqwest")]
pub use reqwest;
#[cfg(feature = "reqwest")]
pub use reqwest_middleware;
#[cfg(feature = "reqwest")]
pub use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};

/// An instrumented client: what [`instrumented`] and [`new`] return. Cheap to clone (an `Arc`
/// inside), like `reqwest::Client`: keep one in the app state and clone it into handlers.
#[cfg(feature = "reqwest")]
pub type Client = ClientWithMiddleware;

/// The route template of an outgoing call, given as a request extension; the span is then named
/// `"{METHOD} {route}"` (`GET /jokes/{id}`) instead of `"{METHOD}"`, which keeps span names few
/// when the URL carries ids.
///
/// ```ignore
/// http.get(url).with_extension(hypertrace::client::Route("/jokes/{id}")).send().await?;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route(pub &'static str);

/// `client` with a [`HypertraceMiddleware`]: every call through it gets a CLIENT span (when an
/// enabled agent is installed) and carries the current trace context to the callee (always).
///
/// To combine it with other middleware (retries, auth), add [`HypertraceMiddleware`] to your own
/// `reqwest_middleware::ClientBuilder`: added last, it sits closest to the network and records one
/// span per attempt; added first, one span for the whole exchange.
#[cfg(feature = "reqwest")]
pub fn instrumented(client: reqwest::Client) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client)
        .with(HypertraceMiddleware::new())
        .build()
}

/// An instrumented default `reqwest::Client` (`instrumented(reqwest::Client::new())`).
#[cfg(feature = "reqwest")]
pub fn new() -> ClientWithMiddleware {
    instrumented(reqwest::Client::new())
}
