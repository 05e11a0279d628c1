use std::future::Future;
use axum::extract::Request;
use axum::response::Response;

/// Per-handler options from `#[hypertrace::handler(...)]`; `None` means "as the config says".
#[derive(Debug, Clone, Copy, Default)]
pub struct HandlerOptions {
    pub name: Option<&'static str>,
    pub request_headers: Option<bool>,
    pub response_headers: Option<bool>,
    pub request_body: Option<bool>,
    pub response_body: Option<bool>,
}

pub async fn run_handler<F, Fut>(opts: &'static HandlerOptions, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send,
{
    let _ = opts;
    inner(req).await
}
