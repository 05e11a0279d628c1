//! The instrumented client for apps on reqwest 0.12 (reqwest-middleware 0.4): the same CLIENT
//! spans, capture and propagation as the parent module's, for the older client type. The
//! middleware is the parent's source compiled against these crates, so both versions behave alike.
//!
//! ```ignore
//! // With the app's own reqwest 0.12 client (`reqwest = "0.12"` in its Cargo.toml):
//! let http = hypertrace::client::reqwest012::instrumented(reqwest::Client::new());
//! let body = http
//!     .get(format!("{upstream}/jokes/{id}"))
//!     .with_extension(hypertrace::client::Route("/jokes/{id}"))
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! ```
//!
//! Behind the cargo feature `reqwest012` (not in the default set).

// The 0.13 client's middleware source, on purpose a second time: here its `super::reqwest` and
// `super::reqwest_middleware` are the 0.12 / 0.4 crates, so one source serves both versions.
#[allow(clippy::duplicate_mod)]
#[path = "middleware.rs"]
mod middleware;

pub use super::Route;
pub use middleware::HypertraceMiddleware;
/// The crates this module's API is made of (reqwest 0.12, reqwest-middleware 0.4), under their
/// usual names, so an app needs no version of its own to match ours.
pub use reqwest012 as reqwest;
pub use reqwest_middleware04 as reqwest_middleware;
pub use reqwest_middleware04::{ClientWithMiddleware, RequestBuilder};

/// An instrumented reqwest 0.12 client: what [`instrumented`] and [`new`] return. Cheap to clone,
/// like `reqwest::Client`.
pub type Client = ClientWithMiddleware;

/// `client` (reqwest 0.12) with a [`HypertraceMiddleware`]: every call through it gets a CLIENT
/// span (when an enabled agent is installed) and carries the current trace context to the callee
/// (always). To combine it with other middleware, add [`HypertraceMiddleware`] to your own
/// `reqwest_middleware::ClientBuilder` (0.4), as with the reqwest 0.13 client.
pub fn instrumented(client: reqwest::Client) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client)
        .with(HypertraceMiddleware::new())
        .build()
}

/// An instrumented default reqwest 0.12 client (`instrumented(reqwest::Client::new())`).
pub fn new() -> ClientWithMiddleware {
    instrumented(reqwest::Client::new())
}
