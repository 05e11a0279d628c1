//! A collector's partial success: it accepted the export but rejected some spans. Per the OTLP
//! specification that is not retried (resending would duplicate the accepted spans); it is logged
//! with the rejected count, at most once per 10 s, and counted in
//! [`ExportStats::rejected_spans`](super::ExportStats::rejected_spans).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

/// Seconds since the epoch of the last partial-success line.
static LOGGED_AT: AtomicU64 = AtomicU64::new(0);

/// The rejected count and message of an `ExportTraceServiceResponse`, if it rejected anything.
/// A body that does not decode is taken as a full success: the collector said 200/OK.
pub(super) fn partial_success(body: &[u8]) -> Option<(i64, String)> {
    let resp = ExportTraceServiceResponse::decode(body).ok()?;
    let p = resp.partial_success?;
    (p.rejected_spans > 0 || !p.error_message.is_empty())
        .then_some((p.rejected_spans, p.error_message))
}

/// Reads `body`, counts and logs (rate-limited) what the collector at `endpoint` rejected.
pub(super) fn check(endpoint: &str, body: &[u8], rejected_counter: &AtomicU64) {
    let Some((rejected, msg)) = partial_success(body) else {
        return;
    };
    rejected_counter.fetch_add(rejected.max(0) as u64, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let last = LOGGED_AT.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 10 {
        return;
    }
    LOGGED_AT.store(now, Ordering::Relaxed);
    // The message is the collector's, quoted (control characters escaped).
    let msg: String = msg.chars().take(512).collect();
    eprintln!(
        "hypertrace: the collector at {endpoint} accepted the export partially: {rejected} spans rejected ({msg:?})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    #[test]
    fn partial_success_is_read_from_the_response() {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(partial_success(&body), Some((3, "too old".into())));
        let counter = AtomicU64::new(0);
        check("http://c", &body, &counter);
        check("http://c", &body, &counter);
        assert_eq!(counter.load(Ordering::Relaxed), 6);
        let ok = ExportTraceServiceResponse {
            partial_success: None,
        }
        .encode_to_vec();
        assert_eq!(partial_success(&ok), None);
        assert_eq!(partial_success(b""), None);
        assert_eq!(partial_success(b"\xff\xff garbage"), None);
    }
}
