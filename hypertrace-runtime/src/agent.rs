//! The installed agent: the configuration in force, the tracer, and the export pipeline.
//!
//! One agent is current per process. It can be swapped (tests install one per case), so the hot
//! path reads it through a `RwLock` and clones an `Arc`: a few tens of nanoseconds.

use std::sync::{Arc, RwLock};

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter};

use crate::config::Config;
use crate::export::{self, ExportError, ExportStats, Pipeline};
use crate::filter::{Filter, Filters};
use crate::metrics::Metrics;

/// A configured agent, not yet installed. Build one with [`Agent::from_config`] (the exporter the
/// config names) or [`Agent::with_exporter`] (yours), then [`Agent::install`] it.
pub struct Agent {
    pub(crate) config: Config,
    pub(crate) tracer: SdkTracer,
    /// The agent's own spans (`span::record`), which every entry point starts; `None` when
    /// nothing is exported (`enabled: false`), where the tracer's no-op spans serve.
    pub(crate) own_spans: Option<crate::span::record::OwnSpans>,
    pub(crate) propagator: TextMapCompositePropagator,
    provider: SdkTracerProvider,
    stats: Arc<ExportStats>,
    /// The spans' resource, shared by the metrics.
    resource: opentelemetry_sdk::Resource,
    /// `None`: metrics off (by the config, or an agent built with [`Agent::with_exporter`]).
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Blocking filters for every request, run before a layer's own.
    pub(crate) filters: Filters,
    /// The runtime that drives the gRPC exporter's connection, independent of the app's runtime
    /// (which may be single-threaded, or already unwinding when we flush).
    export_runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

static CURRENT: RwLock<Option<Arc<Agent>>> = RwLock::new(None);

/// The runtime of the gRPC exporters' channels.
fn export_runtime() -> Result<tokio::runtime::Runtime, ExportError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hypertrace-grpc")
        .enable_all()
        .build()
        .map_err(|e| ExportError::new(format!("cannot start the export runtime: {e}")))
}

/// The installed agent, if any.
pub fn current() -> Option<Arc<Agent>> {
    CURRENT.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Agent {
    /// Builds the exporter named by `config.reporting` behind the bounded batch processor.
    pub fn from_config(config: Config) -> Result<Agent, ExportError> {
        let needs_runtime = (config.enabled
            && config.reporting.trace_reporter_type == crate::config::TraceReporterType::Otlp)
            || crate::metrics::needs_runtime(&config);
        let export_runtime = if needs_runtime {
            Some(export_runtime()?)
        } else {
            None
        };
        let pipeline = match &export_runtime {
            Some(rt) => {
                let _enter = rt.enter();
                export::build(&config)?
            }
            None if config.enabled => export::build(&config)?,
            None => export::disabled(&config),
        };
        Agent::assemble(config, pipeline, export_runtime).with_metrics_from_config()
    }

    /// An agent exporting spans to `exporter` (through the same batch processor and resource),
    /// without metrics: add those that the config names with [`Agent::with_metrics_from_config`].
    pub fn with_exporter<E: SpanExporter + 'static>(config: Config, exporter: E) -> Agent {
        let pipeline = export::with_exporter(exporter, &config);
        Agent::assemble(config, pipeline, None)
    }

    /// As [`Agent::with_exporter`], for an exporter that borrows each batch (no copy of it per
    /// attempt; see [`BatchExporter`](crate::BatchExporter)).
    pub fn with_batch_exporter<E: crate::BatchExporter>(config: Config, exporter: E) -> Agent {
        let pipeline = export::with_borrowing_exporter(exporter, &config);
        Agent::assemble(config, pipeline, None)
    }

    /// Adds the metrics that `reporting.metric_reporter_type` and `telemetry.metrics_enabled`
    /// ask for (what [`Agent::from_config`] does), replacing any already built. Fails like
    /// `from_config` for a metric endpoint or exporter that cannot be built.
    pub fn with_metrics_from_config(mut self) -> Result<Agent, ExportError> {
        if let Some(old) = self.metrics.take() {
            old.shutdown();
        }
        if crate::metrics::needs_runtime(&self.config) && self.export_runtime.is_none() {
            self.export_runtime = Some(export_runtime()?);
        }
        let build = || Metrics::build(&self.config, self.resource.clone(), self.stats.clone());
        let metrics = match &self.export_runtime {
            Some(rt) => {
                let _enter = rt.enter();
                build()?
            }
            None => build()?,
        };
        self.metrics = metrics.map(Arc::new);
        Ok(self)
    }

    fn assemble(
        config: Config,
        pipeline: Pipeline,
        export_runtime: Option<tokio::runtime::Runtime>,
    ) -> Agent {
        let tracer = pipeline.provider.tracer("hypertrace");
        let scope = opentelemetry::InstrumentationScope::builder("hypertrace").build();
        let own_spans = pipeline
            .spans
            .map(|(sink, sampler)| crate::span::record::OwnSpans::new(sink, sampler, scope));
        Agent {
            own_spans,
            propagator: crate::propagation::build(&config.propagation_formats),
            config,
            tracer,
            provider: pipeline.provider,
            stats: pipeline.stats,
            resource: pipeline.resource,
            metrics: None,
            filters: Filters::new(),
            export_runtime,
        }
    }

    /// Adds a blocking filter for every request: the layer's and the gRPC server layer's, and
    /// those of annotated handlers without a layer. They run in the order added, before a layer's
    /// own filters. See [`Filter`].
    pub fn filter(mut self, filter: impl Filter) -> Agent {
        self.filters.push(Arc::new(filter));
        self
    }

    /// Adds these filters, in order, as [`Agent::filter`] does.
    pub fn filters(mut self, filters: &Filters) -> Agent {
        self.filters.extend(filters);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Export counters: queued, dropped (queue full), exported, failed exports.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// The OpenTelemetry tracer provider behind the agent (for an app's own OpenTelemetry spans).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// The OpenTelemetry meter provider behind the agent's metrics (for an app's own
    /// instruments), when metrics are on.
    pub fn meter_provider(&self) -> Option<&opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.metrics.as_deref().map(Metrics::provider)
    }

    /// The address the PROMETHEUS reporter's own endpoint listens on (the port actually bound,
    /// also when `metric_endpoint` asked for port 0).
    pub fn prometheus_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_deref()
            .and_then(Metrics::prometheus_address)
    }

    /// Makes this the process's agent: the handler macro and the layer use it, the OpenTelemetry
    /// globals (tracer provider, propagator) point at it. Dropping the guard flushes and shuts down.
    pub fn install(self) -> Guard {
        let agent = Arc::new(self);
        crate::span::exception::install_panic_hook();
        crate::propagation::install_global(&agent.config.propagation_formats);
        if agent.config.enabled {
            opentelemetry::global::set_tracer_provider(agent.provider.clone());
        }
        if let Some(m) = &agent.metrics {
            opentelemetry::global::set_meter_provider(m.provider().clone());
        }
        *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = Some(agent.clone());
        Guard { agent: Some(agent) }
    }
}

/// Flushes and shuts the export down when dropped (on return, error return and panic alike).
#[must_use = "dropping the guard shuts the agent down"]
pub struct Guard {
    agent: Option<Arc<Agent>>,
}

impl Guard {
    /// The installed agent.
    pub fn agent(&self) -> &Agent {
        self.agent
            .as_ref()
            .expect("guard holds its agent until dropped")
    }

    /// Exports everything queued so far and waits (up to the shutdown deadline); metrics too.
    pub fn flush(&self) {
        let agent = self.agent();
        let _ = agent.provider.force_flush();
        if let Some(m) = &agent.metrics {
            m.flush();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(agent) = self.agent.take() else {
            return;
        };
        {
            let mut cur = CURRENT.write().unwrap_or_else(|p| p.into_inner());
            if cur.as_ref().is_some_and(|a| Arc::ptr_eq(a, &agent)) {
                *cur = None;
            }
        }
        // Blocks at most `rustagent.shutdown_timeout` (the batch processor gives up then); the
        // metrics' last export runs meanwhile, bounded by the same deadline.
        std::thread::scope(|s| {
            if let Some(m) = &agent.metrics {
                s.spawn(|| m.shutdown());
            }
            let _ = agent.provider.shutdown();
        });
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(rt) = self.export_runtime.take() {
            // Never blocks, so an agent dropped inside async code does not panic.
            rt.shutdown_background();
        }
    }
}
