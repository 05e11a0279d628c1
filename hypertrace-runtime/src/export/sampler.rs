//! The tracer provider's sampler, from `rustagent.traces_sampler` / `OTEL_TRACES_SAMPLER`.
//!
//! The parent-based samplers follow the incoming sampled flag (W3C `traceparent` flags, B3
//! `X-B3-Sampled` or the single header's flag): a request its caller did not sample is not sampled
//! here either, and its span context, marked not sampled, still propagates to the calls it makes.
//! The batch processor exports only sampled spans.

use opentelemetry_sdk::trace::Sampler;

use crate::config::{Config, TracesSampler};

/// The SDK sampler for `config`.
pub(crate) fn build(config: &Config) -> Sampler {
    let ratio = config.rustagent.traces_sampler_arg;
    match config.rustagent.traces_sampler {
        TracesSampler::AlwaysOn => Sampler::AlwaysOn,
        TracesSampler::AlwaysOff => Sampler::AlwaysOff,
        TracesSampler::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        TracesSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        TracesSampler::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        TracesSampler::ParentBasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}
