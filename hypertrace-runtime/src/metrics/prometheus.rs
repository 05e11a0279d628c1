//! The Prometheus text exposition format (version 0.0.4), written by us from the SDK's collected
//! metrics (the `prometheus` crate family would bring its own registry and dependencies for what
//! is a page of formatting), and the exporter that keeps the latest page for scrapes.
//!
//! Names follow OpenTelemetry's Prometheus compatibility rules: characters outside
//! `[a-zA-Z0-9_:]` become `_`, the unit is appended (`s` → `_seconds`, `By` → `_bytes`; braced
//! annotations such as `{request}` are dropped), monotonic sums are counters ending in `_total`,
//! other sums and gauges are gauges, histograms give `_bucket` (cumulative, `le`), `_sum` and
//! `_count`. The resource is the `target_info` gauge.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;

/// The `Content-Type` of a page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Keeps the text of the latest collection: the reader writes it on every collection (its
/// interval, and each scrape, which asks for one), the scrapes read it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot(Arc<Mutex<String>>);

impl Snapshot {
    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PushMetricExporter for Snapshot {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let text = encode(metrics);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = text;
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        // Prometheus expects counters and histograms to accumulate from the process's start.
        Temporality::Cumulative
    }
}

/// The page for `rm`.
pub(crate) fn encode(rm: &ResourceMetrics) -> String {
    let mut out = String::with_capacity(4096);
    let resource: Vec<KeyValue> = rm
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if !resource.is_empty() {
        out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
        labels(&mut out, resource.iter(), None);
        out.push_str(" 1\n");
    }
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            family(&mut out, metric);
        }
    }
    out
}

fn family(out: &mut String, metric: &Metric) {
    let base = name(metric.name(), metric.unit());
    match metric.data() {
        AggregatedMetrics::F64(d) => data(out, &base, metric.description(), d),
        AggregatedMetrics::U64(d) => data(out, &base, metric.description(), d),
        AggregatedMetrics::I64(d) => data(out, &base, metric.description(), d),
    }
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
trait Sample: Copy {
    fn write(self, out: &mut String);
}
impl Sample for f64 {
    fn write(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}
impl Sample for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}
impl Sample for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

fn data<T: Sample>(out: &mut String, base: &str, help: &str, d: &MetricData<T>) {
    match d {
        MetricData::Gauge(g) => {
            header(out, base, help, "gauge");
            for p in g.data_points() {
                sample(out, base, "", p.attributes(), None, p.value());
            }
        }
        MetricData::Sum(s) => sum(out, base, help, s),
        MetricData::Histogram(h) => histogram(out, base, help, h),
        // The agent's instruments never use the exponential aggregation.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn sum<T: Sample>(out: &mut String, base: &str, help: &str, s: &Sum<T>) {
    if s.is_monotonic() {
        let name = if base.ends_with("_total") {
            base.to_owned()
        } else {
            format!("{base}_total")
        };
        header(out, &name, help, "counter");
        for p in s.data_points() {
            sample(out, &name, "", p.attributes(), None, p.value());
        }
    } else {
        header(out, base, help, "gauge");
        for p in s.data_points() {
            sample(out, base, "", p.attributes(), None, p.value());
        }
    }
}

fn histogram<T: Sample>(out: &mut String, base: &str, help: &str, h: &Histogram<T>) {
    header(out, base, help, "histogram");
    for p in h.data_points() {
        let mut cumulative = 0u64;
        let mut bounds = p.bounds();
        for count in p.bucket_counts() {
            cumulative += count;
            let mut le = String::new();
            match bounds.next() {
                Some(b) => b.write(&mut le),
                None => le.push_str("+Inf"),
            }
            sample(out, base, "_bucket", p.attributes(), Some(&le), cumulative);
        }
        sample(out, base, "_sum", p.attributes(), None, p.sum());
        sample(out, base, "_count", p.attributes(), None, p.count());
    }
}

fn header(out: &mut String, name: &str, help: &str, ty: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(ty);
    out.push('\n');
}

fn sample<'a, T: Sample>(
    out: &mut String,
    name: &str,
    suffix: &str,
    attrs: impl Iterator<Item = &'a KeyValue>,
    le: Option<&str>,
    value: T,
) {
    out.push_str(name);
    out.push_str(suffix);
    labels(out, attrs, le);
    out.push(' ');
    value.write(out);
    out.push('\n');
}

fn labels<'a>(out: &mut String, attrs: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) {
    // Sorted by label name, so that a series' text is stable whatever the attribute order.
    let mut pairs: Vec<(String, String)> = attrs
        .map(|kv| (label_name(kv.key.as_str()), value_text(&kv.value)))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    // Two keys that sanitize to the same label name would be a duplicate label (a parse error):
    // their values are joined with `;`, as OpenTelemetry's compatibility rules say.
    pairs.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1.push(';');
            kept.1.push_str(&next.1);
            true
        } else {
            false
        }
    });
    if let Some(le) = le {
        pairs.push(("le".into(), le.into()));
    }
    if pairs.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

/// `http.server.request.duration` + `s` → `http_server_request_duration_seconds`.
pub(crate) fn name(name: &str, unit: &str) -> String {
    let mut n = sanitize(name, true);
    let suffix = match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "%" => "percent",
        // `1` and braced annotations (`{request}`) carry no unit.
        u if u.is_empty() || u == "1" || u.starts_with('{') => "",
        u => return with_suffix(n, &sanitize(u, true)),
    };
    if !suffix.is_empty() {
        n = with_suffix(n, suffix);
    }
    n
}

fn with_suffix(n: String, suffix: &str) -> String {
    if suffix.is_empty() || n.ends_with(&format!("_{suffix}")) {
        n
    } else {
        format!("{n}_{suffix}")
    }
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(key: &str) -> String {
    sanitize(key, false)
}

/// Invalid characters become `_`, runs of `_` collapse, and a leading digit gets a `_` before it.
fn sanitize(s: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_unit_and_valid_characters() {
        assert_eq!(
            name("http.server.request.duration", "s"),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            name("process.memory.usage", "By"),
            "process_memory_usage_bytes"
        );
        assert_eq!(
            name("http.server.active_requests", "{request}"),
            "http_server_active_requests"
        );
        assert_eq!(
            name("hypertrace.agent.spans.dropped", "{span}"),
            "hypertrace_agent_spans_dropped"
        );
        assert_eq!(name("9lives..x-y", ""), "_9lives_x_y");
        assert_eq!(name("already_seconds", "s"), "already_seconds");
    }

    #[test]
    fn labels_are_sorted_escaped_and_merged() {
        let attrs = [
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("a\"b", "x\\y\"z\nw"),
            KeyValue::new("url_scheme", "dup"),
            KeyValue::new("http.response.status_code", 200),
        ];
        let mut out = String::new();
        labels(&mut out, attrs.iter(), Some("0.5"));
        assert_eq!(
            out,
            r#"{a_b="x\\y\"z\nw",http_response_status_code="200",url_scheme="http;dup",le="0.5"}"#
        );
    }

    #[test]
    fn special_sample_values() {
        let mut s = String::new();
        f64::INFINITY.write(&mut s);
        s.push(' ');
        f64::NAN.write(&mut s);
        s.push(' ');
        0.25f64.write(&mut s);
        assert_eq!(s, "+Inf NaN 0.25");
    }
}
