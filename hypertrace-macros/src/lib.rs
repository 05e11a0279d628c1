//! The proc-macros of the hypertrace agent, re-exported by the `hypertrace` crate: use them as
//! `#[hypertrace::main]` and `#[hypertrace::handler]`.
//!
//! They only arrange calls into `hypertrace-runtime` (through `::hypertrace::__private`); the behaviour
//! lives there. Layout: this file holds the entry points and their docs; `args.rs` parses the options of
//! both attributes; `item.rs` parses the annotated function; `main_attr.rs` and `handler.rs` check it
//! and generate the code; `errors.rs` collects the errors so that all of them are reported at once.

mod args;
mod body_scan;
mod errors;
mod handler;
mod item;
mod main_attr;

use proc_macro::TokenStream;

/// Sets up the agent around `async fn main()`: builds the tokio runtime (like `#[tokio::main]`), loads
/// the agent config, installs the exporter, the propagators and the tracing subscriber, runs the body,
/// and flushes and shuts down the export on the way out (return, error return or panic).
///
/// ```ignore
/// #[hypertrace::main]
/// async fn main() {
///     let app = axum::Router::new().route("/users", axum::routing::post(create_user));
///     let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await.unwrap();
///     axum::serve(listener, app)
///         .with_graceful_shutdown(hypertrace::shutdown_signal())
///         .await
///         .unwrap();
/// }
/// ```
///
/// `main` may return anything `main` can return, such as `Result<(), Box<dyn std::error::Error>>`.
///
/// # Options
///
/// | option | value | default |
/// |---|---|---|
/// | `service_name` | string: the service name, a default that the config file and `HT_SERVICE_NAME` override | the package name |
/// | `config` | string: path of the agent-config file (`.yaml`/`.yml`/`.json`), as `HT_CONFIG_FILE` | none |
/// | `tracing_subscriber` | bool: install the global tracing subscriber; `false` for apps that install their own (add `hypertrace::otel_layer()` to it) | `true` |
/// | `flavor` | `"multi_thread"` or `"current_thread"`: the tokio runtime | `"multi_thread"` |
/// | `worker_threads` | integer ≥ 1, with `multi_thread` only | the number of CPUs |
/// | `signal_watcher` | bool: on SIGINT/SIGTERM that the app doesn't handle, export the finished spans, then die of the signal as without the agent | `true`, or `false` when `main`'s body handles signals (`with_graceful_shutdown`, `tokio::signal`, ...) |
/// | `filters` | path of a `fn() -> hypertrace::Filters`: blocking filters for every request (HTTP layer, annotated handlers, gRPC server layer) | none |
///
/// A `tracing_subscriber::fmt::init()` (or any global subscriber installation) in the body is an
/// error unless `tracing_subscriber = false` is given: it would fail at start.
///
/// ```ignore
/// #[hypertrace::main(service_name = "checkout", flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(args.into(), item.into()).into()
}

/// Traces an axum handler: each request it handles becomes a SERVER span carrying the request and
/// response headers and bodies (bounded, with credentials redacted).
///
/// Put it on any `async fn` that axum accepts as a handler (zero to sixteen extractors, any return
/// type that implements `IntoResponse`) and use the function as before: `post(create_user)`. It works
/// with any router state; doc comments, visibility and other attributes (`#[tracing::instrument]`,
/// `#[axum::debug_handler]`) are kept.
///
/// ```ignore
/// #[hypertrace::handler]
/// async fn create_user(State(db): State<Db>, Json(user): Json<NewUser>) -> Result<Json<User>, ApiError> {
///     // ...
/// }
///
/// let app = Router::new().route("/users", post(create_user)).with_state(db);
/// ```
///
/// The name `create_user` becomes a unit struct implementing axum's `Handler` for every router state.
/// The app's tests call the function itself (no span) as `create_user::direct(..)`, or as before,
/// `create_user(..)`, when the handler is private to its module. Handlers are free functions: on an
/// associated function in an `impl` block this is an error.
///
/// When an extractor doesn't fit, rustc reports that `create_user` doesn't implement `Handler` at the
/// `post(create_user)` that uses it, as it does for a plain axum handler: the state type isn't known
/// where the handler is defined. Add `#[axum::debug_handler]` (axum's `macros` feature; above or
/// below this attribute) to have the offending extractor pointed at.
///
/// # Options
///
/// All optional. `false` turns that capture off for this handler whatever the config says: a login
/// handler can keep its credentials out of the spans with `request_body = false`.
///
/// | option | value | default |
/// |---|---|---|
/// | `name` | string: the span name | `"{METHOD} {route}"` |
/// | `request_headers` | bool | as the config says (`data_capture.http_headers.request`) |
/// | `response_headers` | bool | as the config says (`data_capture.http_headers.response`) |
/// | `request_body` | bool | as the config says (`data_capture.http_body.request`) |
/// | `response_body` | bool | as the config says (`data_capture.http_body.response`) |
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    handler::expand(args.into(), item.into()).into()
}
