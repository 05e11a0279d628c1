//! Metadata capture: `rpc.request.metadata.<key>` / `rpc.response.metadata.<key>`, lower-case.
//!
//! The header rules and code of HTTP capture apply (`capture::headers::record_headers`): the
//! redaction list, `<key>[i]` for repeated keys. Binary metadata (`-bin` keys) travels base64-encoded
//! in HTTP/2 header values, so recording the value as sent is already its base64.

use http::{HeaderMap, Method, Request};
use opentelemetry::KeyValue;

use crate::capture::headers::{record_headers_configured, record_headers_scoped};
use crate::capture::policy::HeaderScope;
use crate::config::Config;

pub(crate) const REQUEST: &str = "rpc.request.metadata.";
pub(crate) const RESPONSE: &str = "rpc.response.metadata.";

/// The request's pseudo-headers (`:path`, `:authority`, `:method`, `:scheme`), then its headers;
/// under [`HeaderScope::Minimal`], only `content-type` and `user-agent`.
pub(crate) fn request<B>(
    req: &Request<B>,
    cfg: &Config,
    scope: HeaderScope,
    out: &mut Vec<KeyValue>,
) {
    if scope == HeaderScope::Minimal {
        record_headers_scoped(REQUEST, req.headers(), cfg, scope, out);
        return;
    }
    let uri = req.uri();
    out.push(KeyValue::new(
        "rpc.request.metadata.:path",
        uri.path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
    ));
    // HTTP/2 carries `:authority` in the URI; an HTTP/1.1 hop (grpc-web) has `host` instead.
    let authority = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
    });
    if let Some(a) = authority {
        out.push(KeyValue::new("rpc.request.metadata.:authority", a));
    }
    let method = if req.method() == Method::POST {
        "POST".to_owned()
    } else {
        req.method().as_str().to_owned()
    };
    out.push(KeyValue::new("rpc.request.metadata.:method", method));
    out.push(KeyValue::new(
        "rpc.request.metadata.:scheme",
        uri.scheme_str().unwrap_or("http").to_owned(),
    ));
    record_headers_configured(REQUEST, req.headers(), cfg, out);
}

/// Response headers or trailers, those `scope` keeps.
pub(crate) fn response(
    headers: &HeaderMap,
    cfg: &Config,
    scope: HeaderScope,
    out: &mut Vec<KeyValue>,
) {
    record_headers_scoped(RESPONSE, headers, cfg, scope, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_then_redacted_metadata() {
        let req = Request::post("http://svc.local:50051/pkg.Svc/Do")
            .header("x-tenant", "acme")
            .header("authorization", "Bearer secret")
            .header("trace-bin", "AAEC")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        let mut cfg = Config::defaults("t");
        cfg.rustagent.redact_headers = vec!["authorization".to_string()];
        request(&req, &cfg, HeaderScope::All, &mut out);
        let got: Vec<(String, String)> = crate::capture::packed::unpacked(&out)
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
            .collect();
        let want = [
            (":path", "/pkg.Svc/Do"),
            (":authority", "svc.local:50051"),
            (":method", "POST"),
            (":scheme", "http"),
            ("x-tenant", "acme"),
            ("authorization", "[REDACTED]"),
            ("trace-bin", "AAEC"),
        ];
        for (k, v) in want {
            let key = format!("rpc.request.metadata.{k}");
            assert!(
                got.contains(&(key.clone(), v.to_string())),
                "{key}={v} in {got:?}"
            );
        }
        assert_eq!(got.len(), want.len());

        let req = Request::post("http://svc.local:50051/pkg.Svc/Do")
            .header("content-type", "application/grpc")
            .header("user-agent", "grpc-rust/0.14")
            .header("x-tenant", "acme")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        request(&req, &cfg, HeaderScope::Minimal, &mut out);
        let keys: Vec<_> = crate::capture::packed::unpacked(&out)
            .iter()
            .map(|kv| kv.key.as_str().to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "rpc.request.metadata.content-type",
                "rpc.request.metadata.user-agent"
            ]
        );
    }
}
