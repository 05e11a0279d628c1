//! What to capture for one request: the one place where the configuration, a layer's or a client's
//! overrides and a handler's options are combined.
//!
//! Every entry point (the HTTP layer, the handler macro, the reqwest client, gRPC) resolves a
//! [`CapturePolicy`] once per request and then only asks it. Later sources win: the config's
//! `data_capture` switches, then the layer's (or client's) overrides, then the handler's options.

use crate::config::{DataCapture, Switch};

/// Per-layer, per-client or per-handler overrides: `None` follows what comes before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The span's name, instead of `"{METHOD} {route}"`.
    pub name: Option<&'static str>,
    /// Request headers on or off.
    pub request_headers: Option<bool>,
    /// Response headers on or off.
    pub response_headers: Option<bool>,
    /// The request body on or off.
    pub request_body: Option<bool>,
    /// The response body on or off.
    pub response_body: Option<bool>,
}

/// The four capture switches in force for one request or call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturePolicy {
    /// Record the request headers.
    pub request_headers: bool,
    /// Record the response headers (and, for gRPC, the trailers).
    pub response_headers: bool,
    /// Record the request body (messages, for gRPC).
    pub request_body: bool,
    /// Record the response body.
    pub response_body: bool,
}

impl CapturePolicy {
    /// Nothing at all.
    pub const NOTHING: CapturePolicy = CapturePolicy {
        request_headers: false,
        response_headers: false,
        request_body: false,
        response_body: false,
    };

    /// From a pair of header (metadata) switches and a pair of body switches.
    pub fn from_switches(headers: Switch, body: Switch) -> CapturePolicy {
        CapturePolicy {
            request_headers: headers.request,
            response_headers: headers.response,
            request_body: body.request,
            response_body: body.response,
        }
    }

    /// `data_capture.http_headers` and `data_capture.http_body`.
    pub fn http(dc: &DataCapture) -> CapturePolicy {
        CapturePolicy::from_switches(dc.http_headers, dc.http_body)
    }

    /// `data_capture.rpc_metadata` and `data_capture.rpc_body`.
    pub fn rpc(dc: &DataCapture) -> CapturePolicy {
        CapturePolicy::from_switches(dc.rpc_metadata, dc.rpc_body)
    }

    /// This policy with `ov`'s switches applied where it sets them.
    #[must_use]
    pub fn refine(self, ov: &Overrides) -> CapturePolicy {
        let pick = |set: Option<bool>, current: bool| set.unwrap_or(current);
        CapturePolicy {
            request_headers: pick(ov.request_headers, self.request_headers),
            response_headers: pick(ov.response_headers, self.response_headers),
            request_body: pick(ov.request_body, self.request_body),
            response_body: pick(ov.response_body, self.response_body),
        }
    }
}

/// The override switches as builder methods on a type with an `overrides: Overrides` field (the layer
/// and the reqwest middleware), so both offer the same API from one definition.
macro_rules! override_setters {
    // The empty call first: the list arm also matches an empty list.
    () => {
        $crate::capture::policy::override_setters! {
            /// Request headers on or off for these requests, whatever the config says.
            request_headers;
            /// Response headers on or off, whatever the config says.
            response_headers;
            /// The request body on or off, whatever the config says.
            request_body;
            /// The response body on or off, whatever the config says.
            response_body;
        }
    };
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, on: bool) -> Self {
                self.overrides.$name = Some(on);
                self
            }
        )*
    };
}
pub(crate) use override_setters;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn later_sources_win_and_unset_ones_follow() {
        let mut cfg = Config::defaults("t");
        cfg.data_capture.http_body.response = false;
        cfg.data_capture.rpc_metadata.request = false;
        let base = CapturePolicy::http(&cfg.data_capture);
        assert!(base.request_body && !base.response_body);
        assert!(!CapturePolicy::rpc(&cfg.data_capture).request_headers);

        let layer = Overrides {
            response_body: Some(true),
            request_headers: Some(false),
            ..Overrides::default()
        };
        let handler = Overrides {
            request_headers: Some(true),
            request_body: Some(false),
            ..Overrides::default()
        };
        let p = base.refine(&layer).refine(&handler);
        assert_eq!(
            p,
            CapturePolicy {
                request_headers: true,
                response_headers: true,
                request_body: false,
                response_body: true,
            }
        );
        assert_eq!(p.refine(&Overrides::default()), p);
    }
}
