//! What to capture for one request: the one place where the configuration, the caller's
//! `tracestate` capture control, a layer's or a client's overrides and a handler's options are
//! combined.
//!
//! Every entry point (the HTTP layer, the handler macro, the reqwest client, gRPC) resolves a
//! [`CapturePolicy`] once per request ([`CapturePolicy::resolve`]) and then only asks it. Later
//! sources win: the config's `data_capture` switches, then `hypertrace=cap:1` in the incoming
//! `tracestate` (everything on), then the layer's (or client's) overrides, then the handler's
//! options. `hypertrace=cap:0` comes last and only takes away: no bodies, and of the headers only
//! `content-type` and `user-agent`, whatever a source before it turned on.
//!
//! So a caller can ask for more than the config captures, but never for what the service's own code
//! turned off (`#[hypertrace::handler(request_body = false)]` on a login keeps the password off the
//! span under `cap:1`), and redaction applies either way. `rustagent.tracestate_capture_control:
//! false` ignores the caller's control altogether (a service facing untrusted callers).

use opentelemetry::trace::TraceState;

use crate::config::{Config, DataCapture, Switch};

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

/// Which headers (gRPC metadata) a policy records when its header switches are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderScope {
    /// Every header, redacted per `rustagent.redact_headers`.
    #[default]
    All,
    /// Only `content-type` and `user-agent` (no gRPC pseudo-headers): what a caller's
    /// `hypertrace=cap:0` leaves.
    Minimal,
}

/// What the caller asked for in the `hypertrace` member of its `tracestate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureControl {
    /// `cap:0`: no bodies, and no headers but `content-type` and `user-agent`.
    Minimal,
    /// `cap:1`: everything the service's code does not turn off.
    Everything,
}

impl CaptureControl {
    /// The `tracestate` list-member key this agent reads (`tracestate: hypertrace=cap:0,congo=t61`).
    pub const TRACESTATE_KEY: &'static str = "hypertrace";

    /// The control in `trace_state`, unless the config ignores it
    /// (`rustagent.tracestate_capture_control: false`).
    pub fn of(cfg: &Config, trace_state: &TraceState) -> Option<CaptureControl> {
        if cfg.rustagent.tracestate_capture_control {
            CaptureControl::from_trace_state(trace_state)
        } else {
            None
        }
    }

    /// The control in the `hypertrace` member of `trace_state`. `None` (capture as configured) when
    /// there is none, when the member is there twice (W3C forbids it, so which one counts is
    /// unknowable) or when its value is not one this agent understands: a caller's tracestate never
    /// makes a request fail. Reads the parsed list in place: nothing is allocated.
    pub fn from_trace_state(trace_state: &TraceState) -> Option<CaptureControl> {
        let mut found = None;
        for (key, value) in trace_state {
            if key == Self::TRACESTATE_KEY {
                if found.is_some() {
                    return None;
                }
                found = Some(value);
            }
        }
        CaptureControl::from_value(found?)
    }

    /// Parses our member's value: `;`-separated `name:value` sub-keys (`cap:0;x:y`), as OpenTelemetry
    /// writes its own `ot` member. Only `cap` is read, and only `0` or `1`; other sub-keys are left
    /// for whoever understands them. Anything malformed (an empty sub-key, no `:`, spaces, `cap`
    /// twice, another value) gives `None`.
    pub fn from_value(value: &str) -> Option<CaptureControl> {
        let mut cap = None;
        for sub in value.split(';') {
            let (name, v) = sub.split_once(':')?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            if name == "cap" {
                if cap.is_some() {
                    return None;
                }
                cap = Some(match v {
                    "0" => CaptureControl::Minimal,
                    "1" => CaptureControl::Everything,
                    _ => return None,
                });
            }
        }
        cap
    }
}

/// The capture switches in force for one request or call.
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
    /// Which headers the header switches record. [`HeaderScope::Minimal`] also keeps the bodies
    /// off through every later refinement.
    pub headers: HeaderScope,
}

impl CapturePolicy {
    /// Nothing at all.
    pub const NOTHING: CapturePolicy = CapturePolicy {
        request_headers: false,
        response_headers: false,
        request_body: false,
        response_body: false,
        headers: HeaderScope::All,
    };

    /// Everything on.
    pub const EVERYTHING: CapturePolicy = CapturePolicy {
        request_headers: true,
        response_headers: true,
        request_body: true,
        response_body: true,
        headers: HeaderScope::All,
    };

    /// From a pair of header (metadata) switches and a pair of body switches.
    pub fn from_switches(headers: Switch, body: Switch) -> CapturePolicy {
        CapturePolicy {
            request_headers: headers.request,
            response_headers: headers.response,
            request_body: body.request,
            response_body: body.response,
            headers: HeaderScope::All,
        }
    }

    /// The policy for one request or call: `configured` (the config's switches, [`http`](Self::http)
    /// or [`rpc`](Self::rpc)), then the caller's `control` (from its `tracestate`, see
    /// [`CaptureControl::of`]), then the entry point's overrides `ov`. A handler's options refine the
    /// result later ([`refine`](Self::refine)); a `cap:0` restriction outlasts them.
    pub fn resolve(
        configured: CapturePolicy,
        control: Option<CaptureControl>,
        ov: &Overrides,
    ) -> CapturePolicy {
        match control {
            None => configured.refine(ov),
            Some(CaptureControl::Everything) => CapturePolicy::EVERYTHING.refine(ov),
            Some(CaptureControl::Minimal) => CapturePolicy {
                headers: HeaderScope::Minimal,
                ..configured
            }
            .refine(ov),
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

    /// This policy with `ov`'s switches applied where it sets them. A [`HeaderScope::Minimal`]
    /// policy (the caller sent `cap:0`) keeps its bodies off.
    #[must_use]
    pub fn refine(self, ov: &Overrides) -> CapturePolicy {
        let pick = |set: Option<bool>, current: bool| set.unwrap_or(current);
        let bodies = self.headers == HeaderScope::All;
        CapturePolicy {
            request_headers: pick(ov.request_headers, self.request_headers),
            response_headers: pick(ov.response_headers, self.response_headers),
            request_body: bodies && pick(ov.request_body, self.request_body),
            response_body: bodies && pick(ov.response_body, self.response_body),
            headers: self.headers,
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
                headers: HeaderScope::All,
            }
        );
        assert_eq!(p.refine(&Overrides::default()), p);
    }

    fn state(header: &str) -> TraceState {
        header.parse().unwrap()
    }

    #[test]
    fn the_hypertrace_member_among_others() {
        use CaptureControl::*;
        let of = |h: &str| CaptureControl::from_trace_state(&state(h));
        assert_eq!(of("hypertrace=cap:0"), Some(Minimal));
        assert_eq!(of("hypertrace=cap:1"), Some(Everything));
        assert_eq!(of("congo=t61rcWkgMzE,hypertrace=cap:0"), Some(Minimal));
        assert_eq!(of("hypertrace=cap:1,congo=t61rcWkgMzE"), Some(Everything));
        // Other sub-keys of our value are someone else's business.
        assert_eq!(of("hypertrace=x:y;cap:0;z_2:"), Some(Minimal));
        assert_eq!(of(""), None);
        assert_eq!(of("congo=cap:0"), None);
        // Keys are exact: a tenant-prefixed or longer key is another vendor's.
        assert_eq!(of("t@hypertrace=cap:0"), None);
        assert_eq!(of("hypertrace2=cap:0"), None);
        // The member twice: W3C forbids it, and we do not guess.
        assert_eq!(of("hypertrace=cap:0,hypertrace=cap:0"), None);
        assert_eq!(CaptureControl::from_trace_state(&TraceState::NONE), None);
    }

    #[test]
    fn malformed_values_mean_as_configured() {
        for bad in [
            "cap:2",
            "cap:",
            "cap",
            "cap:00",
            "cap:0 ",
            " cap:0",
            "cap: 0",
            "CAP:0",
            "cap:0;cap:0",
            "cap:0;cap:1",
            "cap:0;",
            ";cap:0",
            "cap:0;;x:1",
            "cap=0",
            "cap:true",
            "x:1",
            "",
            "cap:0;x",
            "c-p:1;cap:0",
        ] {
            assert_eq!(CaptureControl::from_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_switch_turns_the_control_off() {
        let mut cfg = Config::defaults("t");
        let ts = state("hypertrace=cap:0");
        assert_eq!(CaptureControl::of(&cfg, &ts), Some(CaptureControl::Minimal));
        cfg.rustagent.tracestate_capture_control = false;
        assert_eq!(CaptureControl::of(&cfg, &ts), None);
    }

    #[test]
    fn cap_1_turns_on_what_the_config_left_off_but_not_what_code_turned_off() {
        let mut cfg = Config::defaults("t");
        cfg.data_capture.http_body = Switch {
            request: false,
            response: false,
        };
        cfg.data_capture.http_headers.response = false;
        let configured = CapturePolicy::http(&cfg.data_capture);
        let everything = Some(CaptureControl::Everything);
        assert_eq!(
            CapturePolicy::resolve(configured, everything, &Overrides::default()),
            CapturePolicy::EVERYTHING
        );
        // A layer's or client's opt-out holds.
        let layer = Overrides {
            response_body: Some(false),
            ..Overrides::default()
        };
        let p = CapturePolicy::resolve(configured, everything, &layer);
        assert!(p.request_body && !p.response_body && p.response_headers);
        // And so does a handler's, refined later.
        let login = Overrides {
            request_body: Some(false),
            ..Overrides::default()
        };
        let p = p.refine(&login);
        assert!(!p.request_body && p.request_headers);
        assert_eq!(
            CapturePolicy::resolve(configured, None, &Overrides::default()),
            configured
        );
    }

    #[test]
    fn cap_0_takes_away_whatever_turned_capture_on() {
        let cfg = Config::defaults("t");
        let configured = CapturePolicy::http(&cfg.data_capture);
        let minimal = Some(CaptureControl::Minimal);
        let on = Overrides {
            request_body: Some(true),
            response_body: Some(true),
            ..Overrides::default()
        };
        let p = CapturePolicy::resolve(configured, minimal, &on);
        let want = CapturePolicy {
            request_headers: true,
            response_headers: true,
            request_body: false,
            response_body: false,
            headers: HeaderScope::Minimal,
        };
        assert_eq!(p, want);
        // A handler asking for bodies does not get them either.
        assert_eq!(p.refine(&on), want);
        // Headers the config or code turned off stay off: cap:0 never adds.
        let off = Overrides {
            request_headers: Some(false),
            ..Overrides::default()
        };
        assert!(!p.refine(&off).request_headers);
        let mut cfg = Config::defaults("t");
        cfg.data_capture.http_headers.response = false;
        let p = CapturePolicy::resolve(
            CapturePolicy::http(&cfg.data_capture),
            minimal,
            &Overrides::default(),
        );
        assert!(p.request_headers && !p.response_headers);
    }
}
