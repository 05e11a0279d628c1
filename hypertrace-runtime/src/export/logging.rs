//! LOGGING reporter: one JSON object per span on stdout, in the shape of the Hypertrace sample span.

use std::io::Write;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use serde_json::{json, Value as Json};

use super::json::{attributes, rfc3339};

#[derive(Debug, Default)]
pub(crate) struct LoggingExporter {
    resource: Json,
}

fn kind(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Server => "SpanKind.SERVER",
        SpanKind::Client => "SpanKind.CLIENT",
        SpanKind::Producer => "SpanKind.PRODUCER",
        SpanKind::Consumer => "SpanKind.CONSUMER",
        SpanKind::Internal => "SpanKind.INTERNAL",
    }
}

/// The JSON object for one span.
pub(crate) fn span_json(span: &SpanData, resource: &Json) -> Json {
    let ctx = &span.span_context;
    let status = match &span.status {
        Status::Unset => json!({ "status_code": "UNSET" }),
        Status::Ok => json!({ "status_code": "OK" }),
        Status::Error { description } => {
            json!({ "status_code": "ERROR", "description": description })
        }
    };
    let parent = span.parent_span_id;
    json!({
        "name": span.name,
        "context": {
            "trace_id": format!("0x{}", ctx.trace_id()),
            "span_id": format!("0x{}", ctx.span_id()),
            "trace_state": ctx.trace_state().header(),
        },
        "kind": kind(&span.span_kind),
        "parent_id": if parent == opentelemetry::trace::SpanId::INVALID { Json::Null } else { Json::String(format!("0x{parent}")) },
        "start_time": rfc3339(span.start_time),
        "end_time": rfc3339(span.end_time),
        "status": status,
        "attributes": attributes(span.attributes.iter().map(|kv| (&kv.key, &kv.value))),
        "events": span.events.events.iter().map(|e| json!({
            "name": e.name,
            "timestamp": rfc3339(e.timestamp),
            "attributes": attributes(e.attributes.iter().map(|kv| (&kv.key, &kv.value))),
        })).collect::<Vec<_>>(),
        "links": span.links.links.iter().map(|l| json!({
            "context": {
                "trace_id": format!("0x{}", l.span_context.trace_id()),
                "span_id": format!("0x{}", l.span_context.span_id()),
            },
            "attributes": attributes(l.attributes.iter().map(|kv| (&kv.key, &kv.value))),
        })).collect::<Vec<_>>(),
        "resource": resource,
    })
}

impl SpanExporter for LoggingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // One write per batch under one lock, so lines of concurrent writers never interleave.
        let mut out = String::new();
        for span in &batch {
            out.push_str(&span_json(span, &self.resource).to_string());
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        // stdout closed (a pipe reader gone) must not take the app down: drop the batch quietly.
        let _ = stdout
            .write_all(out.as_bytes())
            .and_then(|_| stdout.flush());
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = attributes(resource.iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry::KeyValue;
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Default, Clone)]
    struct Keep(Arc<Mutex<Vec<SpanData>>>);
    impl SpanExporter for Keep {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// Every field of the Hypertrace sample span, with its type.
    #[test]
    fn span_json_has_the_sample_span_shape() {
        let keep = Keep::default();
        let p = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(keep.clone())
            .build();
        let t = p.tracer("t");
        let parent = t.start("parent");
        let cx = opentelemetry::Context::current_with_span(parent);
        let mut s = t
            .span_builder("GET /x")
            .with_kind(SpanKind::Server)
            .start_with_context(&t, &cx);
        s.set_attribute(KeyValue::new("http.status_code", 500i64));
        s.add_event("boom", vec![KeyValue::new("k", "v")]);
        s.set_status(Status::error(""));
        s.end();
        cx.span().end();
        let spans = keep.0.lock().unwrap();
        let j = span_json(&spans[0], &json!({ "service.name": "svc" }));
        let parent_id = cx.span().span_context().span_id().to_string();
        assert_eq!(j["name"], "GET /x");
        assert_eq!(j["kind"], "SpanKind.SERVER");
        assert_eq!(j["parent_id"], format!("0x{parent_id}"));
        assert!(
            j["context"]["trace_id"].as_str().unwrap().starts_with("0x")
                && j["context"]["trace_id"].as_str().unwrap().len() == 34
        );
        assert_eq!(j["context"]["span_id"].as_str().unwrap().len(), 18);
        assert!(j["context"]["trace_state"].is_string());
        assert!(
            j["start_time"].as_str().unwrap().ends_with('Z')
                && j["end_time"].as_str().unwrap().ends_with('Z')
        );
        assert_eq!(j["status"]["status_code"], "ERROR");
        assert_eq!(
            j["attributes"]["http.status_code"], 500,
            "integers stay integers"
        );
        assert_eq!(j["events"][0]["name"], "boom");
        assert_eq!(j["events"][0]["attributes"]["k"], "v");
        assert!(j["links"].as_array().unwrap().is_empty());
        assert_eq!(j["resource"]["service.name"], "svc");
        let root = span_json(&spans[1], &Json::Null);
        assert!(root["parent_id"].is_null());
        assert_eq!(root["status"]["status_code"], "UNSET");
        assert_eq!(root["kind"], "SpanKind.INTERNAL");
    }
}
