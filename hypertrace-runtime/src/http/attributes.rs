//! The standard attributes of HTTP spans: the Hypertrace sample span's keys (OpenTelemetry's
//! pre-1.20 HTTP conventions), or the stable ones under `OTEL_SEMCONV_STABILITY_OPT_IN`.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, OriginalUri};
use http::{header, Method, Request, Version};
use opentelemetry::{KeyValue, Value};

use crate::config::Semconv;
use crate::span::record::Attributes;

/// `http.flavor` as the old conventions write it (`1.0`, `1.1`, `2.0`).
pub(crate) fn flavor(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "1.1",
    }
}

/// `network.protocol.version` as the stable conventions write it (`1.0`, `1.1`, `2`, `3`).
pub(crate) fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// The version attribute(s) of a response to an outgoing call.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // used by the outgoing-call integrations
pub(crate) fn version(v: Version, sc: Semconv, out: &mut Vec<KeyValue>) {
    if sc.old {
        out.push(KeyValue::new("http.flavor", flavor(v)));
    }
    if sc.stable {
        out.push(KeyValue::new(
            "network.protocol.version",
            protocol_version(v),
        ));
    }
}

/// A `Host` header (or authority) split into the host and its port: `example.com:8080`,
/// `[::1]:8080` (the brackets removed from the host), `[::1]`, `example.com`.
pub(crate) fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, after)) => (addr, after.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

/// The method as an attribute value: no allocation for the standard methods.
fn method_value(m: &Method) -> Value {
    let s = match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Value::from(m.as_str().to_owned()),
    };
    Value::from(s)
}

/// Header text as is when UTF-8 (checked the fast way), lossily otherwise.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Attributes known when the request arrives. `http.route` only when axum matched a route.
///
/// Per request, on the hot path: the values are borrowed from the request (the agent's span
/// encodes them from there, without a `String` each), and the method and scheme are static.
pub(crate) fn request<B>(
    req: &Request<B>,
    route: Option<&str>,
    sc: Semconv,
    out: &mut Attributes<'_>,
) {
    // Under `Router::nest` the handler sees the URI without the nest's prefix: the one the client
    // sent is kept in `OriginalUri`.
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map_or(req.uri(), |o| &o.0);
    let method = method_value(req.method());
    let scheme_str = uri.scheme_str().unwrap_or("http");
    let scheme = match scheme_str {
        "http" => Value::from("http"),
        "https" => Value::from("https"),
        other => Value::from(other.to_owned()),
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let (host_name, host_port) = match host {
        Some(h) => split_host_port(h),
        None => ("", None),
    };
    let host_port = i64::from(host_port.unwrap_or(if scheme_str == "https" { 443 } else { 80 }));
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| text(v.as_bytes()));
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");

    if let Some(r) = route {
        out.str("http.route", r);
    }
    if sc.old {
        out.kv(KeyValue::new("http.method", method.clone()));
        out.kv(KeyValue::new("http.scheme", scheme.clone()));
        // The old key wants the header as sent.
        if let Some(h) = host {
            out.str("http.host", h);
        }
        out.str("http.target", target);
        out.kv(KeyValue::new("http.flavor", flavor(req.version())));
        if let Some(u) = &ua {
            out.str("http.user_agent", u);
        }
        out.kv(KeyValue::new("net.host.port", host_port));
        if let Some(peer) = peer {
            out.kv(KeyValue::new("net.peer.ip", peer.ip().to_string()));
            out.kv(KeyValue::new("net.peer.port", i64::from(peer.port())));
        }
    }
    if sc.stable {
        out.kv(KeyValue::new("http.request.method", method));
        out.str("url.path", uri.path());
        if let Some(q) = uri.query() {
            out.str("url.query", q);
        }
        out.kv(KeyValue::new("url.scheme", scheme));
        // The stable key wants the host without its port (and an IPv6 address without brackets).
        if host.is_some() {
            out.str("server.address", host_name);
        }
        out.kv(KeyValue::new("server.port", host_port));
        out.kv(KeyValue::new(
            "network.protocol.version",
            protocol_version(req.version()),
        ));
        if let Some(u) = &ua {
            out.str("user_agent.original", u);
        }
        if let Some(peer) = peer {
            out.kv(KeyValue::new("client.address", peer.ip().to_string()));
            out.kv(KeyValue::new("client.port", i64::from(peer.port())));
        }
    }
}

/// The status code attribute(s), as integers.
pub(crate) fn status(code: u16, sc: Semconv, out: &mut impl Extend<KeyValue>) {
    let code = i64::from(code);
    let old = sc.old.then(|| KeyValue::new("http.status_code", code));
    let stable = sc
        .stable
        .then(|| KeyValue::new("http.response.status_code", code));
    out.extend(old.into_iter().chain(stable));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_split_ipv6_too() {
        assert_eq!(
            split_host_port("example.com:8080"),
            ("example.com", Some(8080))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:8080"), ("::1", Some(8080)));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("h:bad"), ("h", None));
    }

    /// Every attribute [`request`] can record (route, host, user agent, peer, query), under each
    /// convention, as `KeyValue`s (the agent's span encodes the same values: `encode`'s tests).
    #[test]
    fn request_attributes_under_each_convention() {
        let mut req = Request::builder()
            .uri("https://example.com:8443/a/b?x=1")
            .header(header::HOST, "example.com:8443")
            .header(header::USER_AGENT, "t")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo("10.0.0.1:5000".parse::<SocketAddr>().unwrap()));
        let keys = |sc| {
            let mut out = Vec::new();
            request(&req, Some("/a/{id}"), sc, &mut Attributes::list(&mut out));
            out.into_iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect::<Vec<_>>()
        };
        let sc = |old, stable| keys(Semconv { old, stable });
        let old = sc(true, false);
        assert_eq!(old.len(), 10, "{old:?}");
        assert!(old.contains(&"http.host=example.com:8443".to_string()));
        assert!(old.contains(&"http.target=/a/b?x=1".to_string()));
        let stable = sc(false, true);
        assert_eq!(stable.len(), 11, "{stable:?}");
        assert!(stable.contains(&"server.address=example.com".to_string()));
        assert!(stable.contains(&"url.query=x=1".to_string()));
        assert_eq!(sc(true, true).len(), 20);
    }

    #[test]
    fn versions_as_each_convention_writes_them() {
        assert_eq!(flavor(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_11), "1.1");
        assert_eq!(protocol_version(Version::HTTP_2), "2");
    }
}
