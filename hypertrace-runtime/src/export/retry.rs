//! Which failed exports are worth another try, and how long to wait before it.
//!
//! The rules are the OTLP specification's: gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `ABORTED`,
//! `CANCELLED`, `OUT_OF_RANGE` and `DATA_LOSS` are transient; HTTP 429, 502, 503 and 504 are, and so is
//! a request that got no response at all (connection refused or reset, DNS, TLS, timeout). Everything
//! else (400, `INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...) would fail the same way again.
//! `RESOURCE_EXHAUSTED` is retryable only with a `RetryInfo`, which opentelemetry-otlp's own retry
//! loop already honoured inside the attempt, so here it is final. A status that tonic made up
//! because the connection broke (whatever its code) is a transport failure, and retried.
//!
//! Exporters report failures as text (`OTelSdkError::InternalFailure`), so the classification reads
//! the shapes that opentelemetry-otlp and our Zipkin exporter produce. A failure we do not recognise
//! (an exporter of the application's own) is not retried: retrying a broken exporter forever would
//! only hide it.

use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkError;

/// The first wait after a failed attempt; it doubles per attempt up to [`MAX_BACKOFF`].
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts at one batch (a server's `Retry-After` may ask for more,
/// up to [`MAX_SERVER_DELAY`]).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A server-provided delay beyond this is cut to it, so one reply cannot stall export for long.
pub(crate) const MAX_SERVER_DELAY: Duration = Duration::from_secs(30);

/// What to do with a batch whose export failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Permanent: drop it (counted and logged).
    No,
    /// Transient: try again after the backoff, or at least after the server's delay.
    After(Option<Duration>),
}

/// Classifies an export error.
pub(crate) fn classify(err: &OTelSdkError) -> Retry {
    match err {
        OTelSdkError::AlreadyShutdown => Retry::No,
        OTelSdkError::Timeout(_) => Retry::After(None),
        OTelSdkError::InternalFailure(msg) => classify_message(msg),
    }
}

/// The text of an export failure: `... gRPC code: Unavailable ...`, `... status code: 503 ...`
/// (optionally `... retry after 2s`), or `... network error ...`.
pub(crate) fn classify_message(msg: &str) -> Retry {
    let hint = server_delay(msg);
    if let Some(code) = word_after(msg, "gRPC code: ") {
        // opentelemetry-otlp appends an error chain after the code only when tonic made the
        // status itself, because the connection failed or broke (a collector's own status comes
        // without one, its message withheld): no collector gave a verdict, so any code is
        // transient here, as a refused connection is.
        let after = &msg[msg.find("gRPC code: ").unwrap_or(0) + "gRPC code: ".len() + code.len()..];
        if after.starts_with(": ") {
            return Retry::After(hint);
        }
        return match code {
            "Unavailable" | "DeadlineExceeded" | "Aborted" | "Cancelled" | "OutOfRange"
            | "DataLoss" => Retry::After(hint),
            _ => Retry::No,
        };
    }
    if let Some(code) = word_after(msg, "status code: ") {
        return match code {
            "429" | "502" | "503" | "504" => Retry::After(hint),
            // opentelemetry-otlp's marker for "no response at all".
            "0" => Retry::After(None),
            _ => Retry::No,
        };
    }
    if msg.contains("network error") {
        return Retry::After(None);
    }
    Retry::No
}

fn word_after<'a>(msg: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &msg[msg.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// `retry after <seconds>s`, as our Zipkin exporter writes a `Retry-After` header into its error.
fn server_delay(msg: &str) -> Option<Duration> {
    let word = word_after(msg, "retry after ")?;
    let secs: u64 = word.strip_suffix('s').unwrap_or(word).parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY))
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date (RFC 9110 §10.2.3).
#[cfg_attr(not(feature = "zipkin"), allow(dead_code))] // the Zipkin reporter
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_SERVER_DELAY));
    }
    let at = parse_http_date(value)?;
    let now = std::time::SystemTime::now();
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_SERVER_DELAY),
    )
}

/// IMF-fixdate only (`Sun, 06 Nov 1994 08:49:37 GMT`), the one form servers must send.
#[cfg_attr(not(feature = "zipkin"), allow(dead_code))] // the Zipkin reporter
fn parse_http_date(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The wait before attempt `attempt + 1` (attempt 0 failed first): exponential, capped, with
/// "equal jitter" (half fixed, half random) so that many agents behind one collector that came back
/// do not all retry in the same millisecond. At least the server's delay when it gave one.
pub(crate) fn backoff(attempt: u32, server: Option<Duration>, random: u64) -> Duration {
    let exp = INITIAL_BACKOFF
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    let half = exp / 2;
    let jitter_ms = half.as_millis() as u64;
    let jitter = Duration::from_millis(if jitter_ms == 0 {
        0
    } else {
        random % (jitter_ms + 1)
    });
    let wait = half + jitter;
    match server {
        Some(s) => wait.max(s.min(MAX_SERVER_DELAY)),
        None => wait,
    }
}

/// A random number for the jitter, from the standard library's per-process random hash keys.
pub(crate) fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(s: &str) -> OTelSdkError {
        OTelSdkError::InternalFailure(s.into())
    }

    #[test]
    fn otlp_grpc_codes() {
        for code in [
            "Unavailable",
            "DeadlineExceeded",
            "Aborted",
            "Cancelled",
            "OutOfRange",
            "DataLoss",
        ] {
            let e = internal(&format!(
                "TonicTracesClient export failed with gRPC code: {code}: transport error"
            ));
            assert_eq!(classify(&e), Retry::After(None), "{code}");
        }
        for code in [
            "InvalidArgument",
            "Unauthenticated",
            "PermissionDenied",
            "ResourceExhausted",
            "Internal",
            "Unimplemented",
        ] {
            let e = internal(&format!(
                "TonicTracesClient export failed with gRPC code: {code}"
            ));
            assert_eq!(classify(&e), Retry::No, "{code}");
        }
        // A stream or connection broken under the client: tonic says Internal, but no collector
        // said so.
        let e = internal("TonicTracesClient export failed with gRPC code: Internal: transport error: http2 error: stream error received");
        assert_eq!(classify(&e), Retry::After(None));
        let e = internal("TonicTracesClient export failed with gRPC code: Unknown: error reading a body from connection: stream closed because of a broken pipe");
        assert_eq!(classify(&e), Retry::After(None));
    }

    #[test]
    fn http_status_codes_and_network_errors() {
        for code in [429, 502, 503, 504] {
            let e = internal(&format!("HTTP export failed with status code: {code}"));
            assert_eq!(classify(&e), Retry::After(None), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 500, 501] {
            let e = internal(&format!("HTTP export failed with status code: {code}"));
            assert_eq!(classify(&e), Retry::No, "{code}");
        }
        assert_eq!(
            classify(&internal("HTTP export failed: network error")),
            Retry::After(None)
        );
        assert_eq!(
            classify(&OTelSdkError::Timeout(Duration::from_secs(1))),
            Retry::After(None)
        );
        assert_eq!(classify(&OTelSdkError::AlreadyShutdown), Retry::No);
        assert_eq!(classify(&internal("my exporter broke")), Retry::No);
    }

    #[test]
    fn zipkin_retry_after_is_a_hint() {
        let e = internal(
            "zipkin export to http://h/api/v2/spans failed with status code: 503 (retry after 3s)",
        );
        assert_eq!(classify(&e), Retry::After(Some(Duration::from_secs(3))));
        let e = internal("zipkin export to x failed with status code: 429 (retry after 9999s)");
        assert_eq!(classify(&e), Retry::After(Some(MAX_SERVER_DELAY)));
    }

    #[test]
    fn retry_after_header_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_SERVER_DELAY));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            std::time::UNIX_EPOCH.checked_add(Duration::from_secs(784_111_777))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let lo: Vec<Duration> = (0..8).map(|a| backoff(a, None, 0)).collect();
        let hi: Vec<Duration> = (0..8).map(|a| backoff(a, None, u64::MAX)).collect();
        assert_eq!(lo[0], Duration::from_millis(50));
        assert_eq!(lo[1], Duration::from_millis(100));
        assert!(lo.windows(2).all(|w| w[0] <= w[1]), "{lo:?}");
        assert!(hi.iter().all(|d| *d <= MAX_BACKOFF), "{hi:?}");
        assert_eq!(lo[7], MAX_BACKOFF / 2);
        assert!(lo.iter().zip(&hi).all(|(l, h)| l <= h));
        assert_eq!(backoff(u32::MAX, None, 0), MAX_BACKOFF / 2);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(5)), 0),
            Duration::from_secs(5)
        );
        assert_ne!(random(), random());
    }
}
