//! The standard attributes of HTTP spans: the Hypertrace sample span's keys (OpenTelemetry's
//! pre-1.20 HTTP conventions), or the stable ones under `OTEL_SEMCONV_STABILITY_OPT_IN`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, OriginalUri};
use http::{header, Method, Request, Version};
use opentelemetry::{KeyValue, Value};

use crate::config::Semconv;

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
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The most attributes [`request`] records under `sc`: the capacity of the list it fills.
///
/// Exact rather than generous: a `KeyValue` is 56 bytes, and a list of more than 18 of them is
/// larger than the 1,032 bytes that glibc's malloc serves from its per-thread cache; one per
/// request of that size costs the allocator's slower path, and its free more than that.
pub(crate) fn request_capacity(sc: Semconv) -> usize {
    1 + if sc.old { 9 } else { 0 } + if sc.stable { 10 } else { 0 }
}

/// Attributes known when the request arrives. `http.route` only when axum matched a route.
///
/// Per request, on the hot path: values are moved rather than cloned unless both key sets are on,
/// and the method and scheme cost no allocation.
pub(crate) fn request<B>(
    req: &Request<B>,
    route: Option<&str>,
    sc: Semconv,
    out: &mut Vec<KeyValue>,
) {
    // Under `Router::nest` the handler sees the URI without the nest's prefix: the one the client
    // sent is kept in `OriginalUri`.
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map_or(req.uri(), |o| &o.0);
    let both = sc.old && sc.stable;
    let method = method_value(req.method());
    let scheme_str = uri.scheme_str().unwrap_or("http");
    let scheme = match scheme_str {
        "http" => Value::from("http"),
        "https" => Value::from("https"),
        other => Value::from(other.to_owned()),
    };
    let mut host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    let (host_name, host_port) = match host.as_deref() {
        Some(h) => split_host_port(h),
        None => ("", None),
    };
    let host_port: Option<i64> = Some(i64::from(host_port.unwrap_or(if scheme_str == "https" {
        443
    } else {
        80
    })));
    // The stable key wants the host without its port (and an IPv6 address without brackets); the
    // old one the header as sent.
    let server_address = (sc.stable && host.is_some()).then(|| host_name.to_owned());
    let mut ua = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| text(v.as_bytes()));
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");

    if let Some(r) = route {
        out.push(KeyValue::new("http.route", r.to_owned()));
    }
    if sc.old {
        out.push(KeyValue::new("http.method", method.clone()));
        out.push(KeyValue::new("http.scheme", scheme.clone()));
        if let Some(h) = host.take() {
            out.push(KeyValue::new("http.host", h));
        }
        out.push(KeyValue::new("http.target", target.to_owned()));
        out.push(KeyValue::new("http.flavor", flavor(req.version())));
        if let Some(u) = if both { ua.clone() } else { ua.take() } {
            out.push(KeyValue::new("http.user_agent", u));
        }
        if let Some(p) = host_port {
            out.push(KeyValue::new("net.host.port", p));
        }
        if let Some(peer) = peer {
            out.push(KeyValue::new("net.peer.ip", peer.ip().to_string()));
            out.push(KeyValue::new("net.peer.port", i64::from(peer.port())));
        }
    }
    if sc.stable {
        out.push(KeyValue::new("http.request.method", method));
        out.push(KeyValue::new("url.path", uri.path().to_owned()));
        if let Some(q) = uri.query() {
            out.push(KeyValue::new("url.query", q.to_owned()));
        }
        out.push(KeyValue::new("url.scheme", scheme));
        if let Some(name) = server_address {
            out.push(KeyValue::new("server.address", name));
        }
        if let Some(p) = host_port {
            out.push(KeyValue::new("server.port", p));
        }
        out.push(KeyValue::new(
            "network.protocol.version",
            protocol_version(req.version()),
        ));
        if let Some(u) = ua {
            out.push(KeyValue::new("user_agent.original", u));
        }
        if let Some(peer) = peer {
            out.push(KeyValue::new("client.address", peer.ip().to_string()));
            out.push(KeyValue::new("client.port", i64::from(peer.port())));
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

    /// A request with everything [`request`] can record (route, host, user agent, peer, query)
    /// fills the list to its capacity and no further, under each convention.
    #[test]
    fn the_request_list_is_sized_exactly() {
        let mut req = Request::builder()
            .uri("https://example.com:8443/a/b?x=1")
            .header(header::HOST, "example.com:8443")
            .header(header::USER_AGENT, "t")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo("10.0.0.1:5000".parse::<SocketAddr>().unwrap()));
        for (old, stable) in [(true, false), (false, true), (true, true)] {
            let sc = Semconv { old, stable };
            let mut out = Vec::with_capacity(request_capacity(sc));
            let cap = out.capacity();
            request(&req, Some("/a/{id}"), sc, &mut out);
            assert_eq!(out.len(), request_capacity(sc), "{sc:?}");
            assert_eq!(out.capacity(), cap, "{sc:?}: the list grew");
        }
    }

    #[test]
    fn versions_as_each_convention_writes_them() {
        assert_eq!(flavor(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_11), "1.1");
        assert_eq!(protocol_version(Version::HTTP_2), "2");
    }
}
