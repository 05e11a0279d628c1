//! The call's span: where it starts and where it ends. Every start and end of a gRPC span goes
//! through here.

use std::borrow::Cow;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};

use super::status::{client_error, code_name, server_error, GrpcStatus};
use crate::agent::Agent;

/// Which end of the call this span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Which key sets to emit (`OTEL_SEMCONV_STABILITY_OPT_IN`'s `rpc`: stable, `rpc/dup`: both). The old
/// keys are the ones the Hypertrace backend reads: `rpc.system`, `rpc.service`, `rpc.method` (the
/// method's short name), `rpc.grpc.status_code` (an integer); the stable ones `rpc.system.name`,
/// `rpc.method` (`package.Service/Method`), `rpc.response.status_code` (the code's name).
pub type RpcSemconv = crate::config::Semconv;

/// `/package.Service/Method` split into service and method; `None` for any other path.
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The attributes a span starts with, before metadata.
pub(crate) fn start_attributes(
    service: &str,
    method: &str,
    sc: RpcSemconv,
    out: &mut Vec<KeyValue>,
) {
    if sc.old {
        out.push(KeyValue::new("rpc.system", "grpc"));
        out.push(KeyValue::new("rpc.service", service.to_owned()));
        out.push(KeyValue::new("rpc.method", method.to_owned()));
    }
    if sc.stable {
        out.push(KeyValue::new("rpc.system.name", "grpc"));
        // Both sets share this key but not its meaning: with both on, the old (short) form stays,
        // which is what the Hypertrace backend reads.
        if !sc.old {
            out.push(KeyValue::new("rpc.method", format!("{service}/{method}")));
        }
    }
}

/// Starts the span `name` (`package.Service/Method`) as a child of `parent`.
pub(crate) fn start(
    agent: &Agent,
    side: Side,
    name: Cow<'static, str>,
    parent: &Context,
    attrs: Vec<KeyValue>,
) -> Context {
    let kind = match side {
        Side::Server => SpanKind::Server,
        Side::Client => SpanKind::Client,
    };
    crate::span::server::start_span(agent, kind, name, parent, attrs, None)
}

/// Records the status and ends the span, with `attrs` (trailers, captured messages) on it.
pub(crate) fn end(
    cx: &Context,
    side: Side,
    sc: RpcSemconv,
    status: &GrpcStatus,
    mut attrs: Vec<KeyValue>,
) {
    let span = cx.span();
    if sc.old {
        attrs.push(KeyValue::new(
            "rpc.grpc.status_code",
            i64::from(status.code),
        ));
    }
    if sc.stable {
        attrs.push(KeyValue::new(
            "rpc.response.status_code",
            code_name(status.code),
        ));
    }
    span.set_attributes(attrs);
    let error = match side {
        Side::Server => server_error(status.code),
        Side::Client => client_error(status.code),
    };
    if error {
        span.set_status(Status::error(status.message.clone()));
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(split_path("/pkg.Svc/Do"), Some(("pkg.Svc", "Do")));
        for bad in [
            "",
            "/",
            "/pkg.Svc",
            "/pkg.Svc/",
            "//Do",
            "/a/b/c",
            "pkg.Svc/Do",
        ] {
            assert_eq!(split_path(bad), None, "{bad}");
        }
    }
}
