//! The PROMETHEUS reporter's own HTTP endpoint: a small axum server on a thread and
//! current-thread runtime of its own (the app's runtime may be single-threaded, busy, or not
//! started yet), answering `GET <path>` with the exposition page.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::prometheus;
use crate::export::ExportError;

/// Where the exposition is served when `metric_endpoint` is not set: OpenTelemetry's default
/// Prometheus host and port, loopback only.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9464/metrics";

/// The address to listen on (`None`: the app mounts the handler, the agent listens nowhere) and
/// the path of the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listen {
    pub(crate) addr: Option<String>,
    pub(crate) path: String,
}

/// `metric_endpoint` for PROMETHEUS: `http://host:port/path`, `host:port/path`, `host:port`
/// (path `/metrics`), or a path alone (`/metrics`: no server of the agent's own).
pub(crate) fn listen(endpoint: Option<&str>) -> Result<Listen, ExportError> {
    let e = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim();
    let bad = |why: &str| {
        ExportError::new(format!(
            "reporting.metric_endpoint {e:?} for METRIC_REPORTER_TYPE_PROMETHEUS: {why} \
             (expected http://host:port/path, host:port, or a path alone for an app-mounted handler)"
        ))
    };
    if e.starts_with('/') {
        return Ok(Listen {
            addr: None,
            path: e.to_owned(),
        });
    }
    if e.starts_with("https://") {
        return Err(bad("the agent serves the page over plain HTTP only"));
    }
    let rest = e.strip_prefix("http://").unwrap_or(e);
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = match path.trim_end_matches('/') {
        "" => "/metrics",
        p => p,
    };
    let port_ok = hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !port_ok {
        return Err(bad("no host:port"));
    }
    Ok(Listen {
        addr: Some(hostport.to_owned()),
        path: path.to_owned(),
    })
}

/// The page's response.
pub(crate) fn page(text: String) -> Response {
    ([(CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

/// Runs the collection off the async worker (it waits for the reader thread), then the page.
pub(crate) async fn respond(scrape: Arc<dyn Fn() -> String + Send + Sync>) -> Response {
    match tokio::task::spawn_blocking(move || scrape()).await {
        Ok(text) => page(text),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics collection failed",
        )
            .into_response(),
    }
}

/// The running server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Binds `addr` now (so that a port already taken is known at start-up) and serves `path` on a
/// thread of its own.
pub(crate) fn start(
    addr: &str,
    path: &str,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route(
        path,
        get(move || {
            let scrape = scrape.clone();
            respond(scrape)
        }),
    );
    std::thread::Builder::new()
        .name("hypertrace-prometheus".into())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
    Ok(Server {
        addr: bound,
        _stop: stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let l = |e: Option<&str>| listen(e).map_err(|e| e.to_string());
        let ok = |addr: Option<&str>, path: &str| {
            Ok(Listen {
                addr: addr.map(str::to_owned),
                path: path.to_owned(),
            })
        };
        assert_eq!(l(None), ok(Some("localhost:9464"), "/metrics"));
        assert_eq!(
            l(Some("http://0.0.0.0:9100/prom/")),
            ok(Some("0.0.0.0:9100"), "/prom")
        );
        assert_eq!(l(Some("127.0.0.1:0")), ok(Some("127.0.0.1:0"), "/metrics"));
        assert_eq!(l(Some("[::1]:9464/m")), ok(Some("[::1]:9464"), "/m"));
        assert_eq!(l(Some("/metrics")), ok(None, "/metrics"));
        for bad in ["https://h:1/m", "localhost", "http://:9464", "h:port/x"] {
            let e = l(Some(bad)).unwrap_err();
            assert!(e.contains("reporting.metric_endpoint"), "{bad}: {e}");
        }
    }
}
