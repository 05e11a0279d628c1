//! ZIPKIN reporter: Zipkin v2 JSON (`zipkin2-api.yaml`) POSTed to `/api/v2/spans`.
//!
//! Written here rather than taken from `opentelemetry-zipkin`, which is deprecated upstream.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use serde_json::{json, Map, Value as Json};

use super::json::epoch_micros;

#[derive(Debug)]
pub(crate) struct ZipkinExporter {
    client: reqwest::blocking::Client,
    endpoint: String,
    headers: Vec<(String, String)>,
    service_name: String,
}

impl ZipkinExporter {
    /// The service name comes later, from the resource (`set_resource`).
    pub(crate) fn new(
        client: reqwest::blocking::Client,
        endpoint: String,
        headers: Vec<(String, String)>,
    ) -> Self {
        ZipkinExporter {
            client,
            endpoint,
            headers,
            service_name: String::new(),
        }
    }
}

/// Tag values are strings in Zipkin; arrays are joined the way the OTel→Zipkin mapping does (JSON).
fn tag_value(v: &Value) -> String {
    match v {
        Value::Array(_) => super::json::typed(v).to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn span_json(span: &SpanData, service_name: &str) -> Json {
    let ctx = &span.span_context;
    let mut tags = Map::new();
    for kv in &span.attributes {
        tags.insert(
            kv.key.as_str().to_owned(),
            Json::String(tag_value(&kv.value)),
        );
    }
    if let Status::Error { description } = &span.status {
        tags.insert("otel.status_code".into(), "ERROR".into());
        tags.insert("error".into(), Json::String(description.to_string()));
    }
    let start = epoch_micros(span.start_time);
    let mut out = json!({
        "traceId": ctx.trace_id().to_string(),
        "id": ctx.span_id().to_string(),
        "name": span.name,
        "timestamp": start,
        "duration": epoch_micros(span.end_time).saturating_sub(start).max(1),
        "localEndpoint": { "serviceName": service_name },
        "tags": tags,
    });
    let obj = out.as_object_mut().expect("object literal");
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        obj.insert("parentId".into(), span.parent_span_id.to_string().into());
    }
    let kind = match span.span_kind {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    if let Some(k) = kind {
        obj.insert("kind".into(), k.into());
    }
    if !span.events.events.is_empty() {
        let ann: Vec<Json> = span
            .events
            .events
            .iter()
            .map(|e| json!({ "timestamp": epoch_micros(e.timestamp), "value": e.name }))
            .collect();
        obj.insert("annotations".into(), ann.into());
    }
    out
}

impl SpanExporter for ZipkinExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body: Vec<Json> = batch
            .iter()
            .map(|s| span_json(s, &self.service_name))
            .collect();
        let body =
            serde_json::to_vec(&body).map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
        let mut req = self
            .client
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        // The error text names the endpoint and status only, never header values (they hold tokens).
        // Its shape is the one `retry::classify` reads: a transport failure is a "network error",
        // a refusal names its status code and the server's `Retry-After`.
        let resp = req.send().map_err(|e| {
            let e = e.without_url();
            let mut detail = e.to_string();
            let mut next = std::error::Error::source(&e);
            while let Some(src) = next {
                detail.push_str(": ");
                detail.push_str(&src.to_string());
                next = src.source();
            }
            OTelSdkError::InternalFailure(format!(
                "zipkin export to {} failed: network error ({detail})",
                self.endpoint
            ))
        })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(super::retry::parse_retry_after)
                .map(|d| format!(" (retry after {}s)", d.as_secs()))
                .unwrap_or_default();
            Err(OTelSdkError::InternalFailure(format!(
                "zipkin export to {} failed with status code: {}{after}",
                self.endpoint,
                resp.status().as_u16()
            )))
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service_name = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
    }
}
