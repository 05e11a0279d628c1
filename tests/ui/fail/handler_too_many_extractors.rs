use axum::http::{HeaderMap, Method, Uri};

#[hypertrace::handler]
async fn busy(
    _a1: HeaderMap, _a2: HeaderMap, _a3: HeaderMap, _a4: HeaderMap,
    _a5: Method, _a6: Method, _a7: Method, _a8: Method,
    _a9: Uri, _a10: Uri, _a11: Uri, _a12: Uri,
    _a13: HeaderMap, _a14: HeaderMap, _a15: HeaderMap, _a16: HeaderMap,
    _a17: Method, _a18: String,
) {}

fn main() {}
