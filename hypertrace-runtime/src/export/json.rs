//! Span → JSON pieces shared by the LOGGING and ZIPKIN exporters.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::{Array, Value};
use serde_json::Value as Json;

/// An attribute value as JSON, keeping its type (LOGGING keeps `http.status_code` an integer).
pub(crate) fn typed(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::from(*i),
        Value::F64(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.as_str().to_owned()),
        Value::Array(a) => match a {
            Array::Bool(v) => v.iter().map(|b| Json::Bool(*b)).collect(),
            Array::I64(v) => v.iter().map(|i| Json::from(*i)).collect(),
            Array::F64(v) => v.iter().map(|f| Json::from(*f)).collect(),
            Array::String(v) => v
                .iter()
                .map(|s| Json::String(s.as_str().to_owned()))
                .collect(),
            _ => Json::String(v.to_string()),
        },
        _ => Json::String(v.to_string()),
    }
}

pub(crate) fn attributes<'a>(
    kvs: impl IntoIterator<Item = (&'a opentelemetry::Key, &'a Value)>,
) -> Json {
    Json::Object(
        kvs.into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), typed(v)))
            .collect(),
    )
}

pub(crate) fn epoch_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with microseconds, as in the Hypertrace sample span (`2021-03-12T01:30:25.440868Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let us = epoch_micros(t);
    let secs = us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        us % 1_000_000
    )
}

// Howard Hinnant's days-to-civil algorithm (public domain), to avoid a date crate for one format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2021-03-12T01:30:25.440868Z, the sample span's start time.
        let t = UNIX_EPOCH + Duration::from_micros(1_615_512_625_440_868);
        assert_eq!(rfc3339(t), "2021-03-12T01:30:25.440868Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
