//! What both layers can be told: descriptors, capture switches, excluded methods, semconv keys.

use std::sync::Arc;

use super::descriptors::Descriptors;
use super::span::RpcSemconv;
use crate::capture::policy::Overrides;

/// The layers' settings. The capture overrides refine `data_capture.rpc_metadata` (as the header
/// switches) and `rpc_body` (as the body switches) through the one capture policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub descriptors: Descriptors,
    pub overrides: Overrides,
    /// Request paths (`/package.Service/Method`) or services (`package.Service`) with no span.
    pub excluded: Arc<Vec<String>>,
    /// `None`: the configuration's `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub semconv: Option<RpcSemconv>,
}

impl Options {
    /// Whether calls to `path` get no span.
    pub(crate) fn excluded(&self, path: &str) -> bool {
        !self.excluded.is_empty()
            && self.excluded.iter().any(|e| {
                e == path
                    || path
                        .strip_prefix('/')
                        .and_then(|p| p.strip_prefix(e.as_str()))
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// The builder methods of both layers (types with an `opts: Options` field).
macro_rules! setters {
    () => {
        /// The message types, for `rpc.request.body` / `rpc.response.body` as JSON; without
        /// them, messages are recorded as `<key>.base64`.
        pub fn descriptors(mut self, descriptors: $crate::grpc::Descriptors) -> Self {
            self.opts.descriptors = descriptors;
            self
        }
        /// Request metadata on or off for these calls, whatever `data_capture.rpc_metadata` says.
        pub fn request_metadata(mut self, on: bool) -> Self {
            self.opts.overrides.request_headers = Some(on);
            self
        }
        /// Response metadata (headers and trailers) on or off, whatever the config says.
        pub fn response_metadata(mut self, on: bool) -> Self {
            self.opts.overrides.response_headers = Some(on);
            self
        }
        /// Request messages on or off, whatever `data_capture.rpc_body` says.
        pub fn request_body(mut self, on: bool) -> Self {
            self.opts.overrides.request_body = Some(on);
            self
        }
        /// Response messages on or off, whatever the config says.
        pub fn response_body(mut self, on: bool) -> Self {
            self.opts.overrides.response_body = Some(on);
            self
        }
        /// No span for this method (`/grpc.health.v1.Health/Check`) or service
        /// (`grpc.health.v1.Health`).
        pub fn exclude(mut self, method_or_service: impl Into<String>) -> Self {
            std::sync::Arc::make_mut(&mut self.opts.excluded).push(method_or_service.into());
            self
        }
        /// Overrides what `OTEL_SEMCONV_STABILITY_OPT_IN` said (`"rpc"`, `"rpc/dup"`, or `None`).
        pub fn semconv_opt_in(mut self, value: Option<&str>) -> Self {
            self.opts.semconv = Some($crate::config::Semconv::parse(value, "rpc"));
            self
        }
    };
}
pub(crate) use setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusion_by_method_or_service() {
        let o = Options {
            excluded: Arc::new(vec![
                "/grpc.health.v1.Health/Check".into(),
                "pkg.Admin".into(),
            ]),
            ..Options::default()
        };
        assert!(o.excluded("/grpc.health.v1.Health/Check"));
        assert!(!o.excluded("/grpc.health.v1.Health/Watch"));
        assert!(o.excluded("/pkg.Admin/Anything"));
        assert!(!o.excluded("/pkg.AdminTools/Anything"));
    }
}
