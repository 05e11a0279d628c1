//! What body-field redaction (`rustagent.redact_body_fields`) costs: the capture of the 1 KiB
//! JSON body of the overhead bench (`json_body()`), as the body tee does it (`BodyCapture` +
//! `push` + `finish` into span attributes), with and without redaction, in the same run. A
//! request of the overhead bench captures two such bodies (request and response).
//!
//!     cargo bench --bench body_redaction
//!
//! Rows: `a` no redaction (baseline), `b` redaction with the default list on that body (nothing to
//! redact: one scan, no copy), then the same body with three secrets in it (same length): `c` no
//! redaction, `d` redaction (scan, copy, three values replaced).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hypertrace::capture::{BodyCapture, CaptureKind, ContentEncoding};
use hypertrace::config::{DEFAULT_BODY_MAX_SIZE_BYTES, DEFAULT_REDACT_BODY_FIELDS};
use hypertrace_benches::json_body;

fn capture(body: &[u8], fields: Option<&Arc<[String]>>) -> usize {
    let mut c = BodyCapture::new(
        DEFAULT_BODY_MAX_SIZE_BYTES,
        CaptureKind::Json,
        ContentEncoding::Identity,
    );
    if let Some(f) = fields {
        c = c.redact_fields(f);
    }
    c.push(body);
    let mut out = Vec::with_capacity(2);
    c.finish("http.request.body", &mut out);
    out.len()
}

/// `json_body()` with a token, a password and an API key in place of three values of the same
/// length: the same 1 KiB, now with something to redact.
fn with_secrets(body: &[u8]) -> Vec<u8> {
    let s = std::str::from_utf8(body).unwrap();
    let s = s
        .replacen(
            r#""order_id":"ord-7f3c2a9e""#,
            r#""token":"tok-7f3c2a9e-xy""#,
            1,
        )
        .replacen(r#""name":"Ada Lovelace""#, r#""password":"Lovelace""#, 1)
        .replacen(
            r#""email":"ada@example.com""#,
            r#""api_key":"a1b2c3d4e5f6g""#,
            1,
        );
    assert_eq!(s.len(), body.len());
    s.into_bytes()
}

fn redaction(c: &mut Criterion) {
    let plain = json_body();
    let secrets = with_secrets(&plain);
    let fields: Arc<[String]> = DEFAULT_REDACT_BODY_FIELDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Preflight: the second body really has something to redact, the first does not.
    let record = |body: &[u8], f: Option<&Arc<[String]>>| {
        let mut c = BodyCapture::new(1 << 20, CaptureKind::Json, ContentEncoding::Identity);
        if let Some(f) = f {
            c = c.redact_fields(f);
        }
        c.push(body);
        let mut out = Vec::new();
        c.finish("k", &mut out);
        out[0].value.as_str().into_owned()
    };
    assert_eq!(record(&plain, Some(&fields)).as_bytes(), &plain[..]);
    assert_eq!(
        record(&secrets, Some(&fields))
            .matches("[REDACTED]")
            .count(),
        3
    );

    let mut group = c.benchmark_group("body_redaction");
    group.bench_function("a-1KiB-json-no-redaction", |b| {
        b.iter(|| capture(black_box(&plain), None))
    });
    group.bench_function("b-1KiB-json-redaction-nothing-to-redact", |b| {
        b.iter(|| capture(black_box(&plain), Some(&fields)))
    });
    group.bench_function("c-1KiB-json-3-secrets-no-redaction", |b| {
        b.iter(|| capture(black_box(&secrets), None))
    });
    group.bench_function("d-1KiB-json-3-secrets-redaction", |b| {
        b.iter(|| capture(black_box(&secrets), Some(&fields)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .noise_threshold(0.03)
}

criterion_group! { name = benches; config = config(); targets = redaction }
criterion_main!(benches);
