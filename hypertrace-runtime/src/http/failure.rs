//! What counts as a failed HTTP exchange, per the OpenTelemetry HTTP conventions: for a SERVER span
//! only 5xx (a 4xx is the client's mistake, answered correctly); for a CLIENT span 4xx and 5xx alike
//! (the call did not get what it asked for). The description is left empty: the status code attribute
//! already says it.

use http::StatusCode;

/// The status description if a server's response with `status` is a failure.
pub(crate) fn server(status: StatusCode) -> Option<String> {
    status.is_server_error().then(String::new)
}

/// The status description if a response with `status` to an outgoing call is a failure.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // used by the outgoing-call integrations
pub(crate) fn client(status: StatusCode) -> Option<String> {
    (status.is_client_error() || status.is_server_error()).then(String::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_fails_on_5xx_client_on_4xx_too() {
        for (code, srv, cli) in [(200, false, false), (404, false, true), (503, true, true)] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(server(s).is_some(), srv, "{code}");
            assert_eq!(client(s).is_some(), cli, "{code}");
        }
    }
}
