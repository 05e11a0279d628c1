//! The standard attributes of the server span (CONTRACT §3.3): the Hypertrace sample span's keys
//! (OTel's pre-1.20 HTTP conventions), or the stable ones under `OTEL_SEMCONV_STABILITY_OPT_IN`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use http::{header, Method, Version};
use opentelemetry::{KeyValue, Value};

/// Which key sets to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN` (`http`: stable, `http/dup`: both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semconv {
    pub old: bool,
    pub stable: bool,
}

impl Semconv {
    pub fn from_env() -> Semconv {
        Semconv::parse(
            std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN")
                .ok()
                .as_deref(),
        )
    }

    /// The variable is a comma list; `http/dup` wins over `http`.
    pub fn parse(v: Option<&str>) -> Semconv {
        let items = || v.unwrap_or("").split(',').map(str::trim);
        if items().any(|i| i == "http/dup") {
            Semconv {
                old: true,
                stable: true,
            }
        } else if items().any(|i| i == "http") {
            Semconv {
                old: false,
                stable: true,
            }
        } else {
            Semconv {
                old: true,
                stable: false,
            }
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

/// Attributes known when the request arrives. `http.route` only when axum matched a route.
///
/// Per request, on the hot path: values are moved rather than cloned unless both key sets are on,
/// and the method and scheme cost no allocation.
pub fn request(req: &Request, route: Option<&str>, sc: Semconv, out: &mut Vec<KeyValue>) {
    let uri = req.uri();
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
    let host_port: Option<i64> = host
        .as_deref()
        .and_then(|h| h.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .or(if scheme_str == "https" {
            Some(443)
        } else {
            Some(80)
        });
    // The stable key wants the host without its port; the old one the header as sent.
    let server_address = if sc.stable {
        host.as_deref()
            .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n).to_owned())
    } else {
        None
    };
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
            flavor(req.version()).trim_end_matches(".0"),
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
        assert_eq!(
            Semconv::parse(None),
            Semconv {
                old: true,
                stable: false
            }
        );
        assert_eq!(
            Semconv::parse(Some("http")),
            Semconv {
                old: false,
                stable: true
            }
        );
        assert_eq!(
            Semconv::parse(Some("database, http/dup")),
            Semconv {
                old: true,
                stable: true
            }
        );
        assert_eq!(
            Semconv::parse(Some("database")),
            Semconv {
                old: true,
                stable: false
            }
        );
    }
}
