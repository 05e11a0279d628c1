//! The standard attributes of the server span (CONTRACT §3.3): the Hypertrace sample span's keys
//! (OTel's pre-1.20 HTTP conventions), or the stable ones under `OTEL_SEMCONV_STABILITY_OPT_IN`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use http::{header, Version};
use opentelemetry::KeyValue;

/// Which key sets to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN` (`http`: stable, `http/dup`: both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semconv {
    pub old: bool,
    pub stable: bool,
}

impl Semconv {
    pub fn from_env() -> Semconv {
        Semconv::parse(std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN").ok().as_deref())
    }

    /// The variable is a comma list; `http/dup` wins over `http`.
    pub fn parse(v: Option<&str>) -> Semconv {
        let items = || v.unwrap_or("").split(',').map(str::trim);
        if items().any(|i| i == "http/dup") {
            Semconv { old: true, stable: true }
        } else if items().any(|i| i == "http") {
            Semconv { old: false, stable: true }
        } else {
            Semconv { old: true, stable: false }
        }
    }
}

/// `http.flavor` as the old conventions write it (`1.1`, `2.0`).
pub(crate) fn flavor(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "1.1",
    }
}

/// Attributes known when the request arrives. `http.route` only when axum matched a route.
pub fn request(req: &Request, route: Option<&str>, sc: Semconv, out: &mut Vec<KeyValue>) {
    let uri = req.uri();
    let method = req.method().as_str().to_owned();
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned).or_else(|| uri.authority().map(|a| a.to_string()));
    let host_port: Option<i64> = host
        .as_deref()
        .and_then(|h| h.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .or(if scheme == "https" { Some(443) } else { Some(80) });
    let ua = req.headers().get(header::USER_AGENT).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");

    if let Some(r) = route {
        out.push(KeyValue::new("http.route", r.to_owned()));
    }
    if sc.old {
        out.push(KeyValue::new("http.method", method.clone()));
        out.push(KeyValue::new("http.scheme", scheme.clone()));
        if let Some(h) = &host {
            out.push(KeyValue::new("http.host", h.clone()));
        }
        out.push(KeyValue::new("http.target", target.to_owned()));
        out.push(KeyValue::new("http.flavor", flavor(req.version())));
        if let Some(ua) = &ua {
            out.push(KeyValue::new("http.user_agent", ua.clone()));
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
        if let Some(h) = &host {
            let name = h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n);
            out.push(KeyValue::new("server.address", name.to_owned()));
        }
        if let Some(p) = host_port {
            out.push(KeyValue::new("server.port", p));
        }
        out.push(KeyValue::new("network.protocol.version", flavor(req.version()).trim_end_matches(".0")));
        if let Some(ua) = ua {
            out.push(KeyValue::new("user_agent.original", ua));
        }
        if let Some(peer) = peer {
            out.push(KeyValue::new("client.address", peer.ip().to_string()));
            out.push(KeyValue::new("client.port", i64::from(peer.port())));
        }
    }
}

/// The status code attribute(s), as integers.
pub fn status(code: u16, sc: Semconv, out: &mut Vec<KeyValue>) {
    if sc.old {
        out.push(KeyValue::new("http.status_code", i64::from(code)));
    }
    if sc.stable {
        out.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semconv_switch() {
        assert_eq!(Semconv::parse(None), Semconv { old: true, stable: false });
        assert_eq!(Semconv::parse(Some("http")), Semconv { old: false, stable: true });
        assert_eq!(Semconv::parse(Some("database, http/dup")), Semconv { old: true, stable: true });
        assert_eq!(Semconv::parse(Some("database")), Semconv { old: true, stable: false });
    }
}
