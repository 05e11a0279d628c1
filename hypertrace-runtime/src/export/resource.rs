//! The resource every span carries.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::config::Config;

/// `service.name`, a per-process `service.instance.id`, the SDK identity, host and process, then
/// `resource_attributes` (which already include `OTEL_RESOURCE_ATTRIBUTES`, see `config::env`).
/// `service.name` is always `service_name`: the loader has already decided between it and a
/// `service.name` resource attribute, and one set in code is not allowed to contradict it.
pub(crate) fn build(config: &Config) -> Resource {
    let mut attrs = vec![
        KeyValue::new("service.name", config.service_name.clone()),
        KeyValue::new("service.instance.id", uuid_v4()),
        KeyValue::new("telemetry.sdk.name", "hypertrace"),
        KeyValue::new("telemetry.sdk.language", "rust"),
        KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new(
            "host.name",
            gethostname::gethostname().to_string_lossy().into_owned(),
        ),
        KeyValue::new("process.pid", i64::from(std::process::id())),
    ];
    attrs.extend(
        config
            .resource_attributes
            .iter()
            .filter(|(k, _)| k.as_str() != "service.name")
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    // builder_empty: the SDK's default detectors would read OTEL_SERVICE_NAME and
    // OTEL_RESOURCE_ATTRIBUTES a second time, behind the config's back.
    Resource::builder_empty().with_attributes(attrs).build()
}

/// A random (version 4) UUID from the SDK's random id generator: no extra dependency for one id.
fn uuid_v4() -> String {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let mut b = RandomIdGenerator::default().new_trace_id().to_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_contract_attributes_and_service_name_wins() {
        let mut c = Config::defaults("svc");
        c.resource_attributes
            .insert("deployment.environment".into(), "prod".into());
        c.resource_attributes
            .insert("service.name".into(), "override".into());
        let r = build(&c);
        let get = |k: &'static str| {
            r.get(&opentelemetry::Key::from_static_str(k))
                .map(|v| v.to_string())
        };
        assert_eq!(get("telemetry.sdk.name").as_deref(), Some("hypertrace"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
        assert_eq!(get("deployment.environment").as_deref(), Some("prod"));
        assert_eq!(get("service.name").as_deref(), Some("svc"));
        let id = get("service.instance.id").unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        assert_ne!(id, get_other_instance_id(&c));
        assert_eq!(get("process.pid"), Some(std::process::id().to_string()));
        assert!(get("host.name").is_some());
    }

    fn get_other_instance_id(c: &Config) -> String {
        build(c)
            .get(&opentelemetry::Key::from_static_str("service.instance.id"))
            .unwrap()
            .to_string()
    }
}
