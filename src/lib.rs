//! # hypertrace
//!
//! The Rust agent for Hypertrace-style API observability: every request handled by an axum handler
//! annotated with [`handler`] becomes an OpenTelemetry span carrying the request and response headers
//! and bodies (bounded, redacted where they hold credentials). [`main`] sets up the whole pipeline
//! from the Hypertrace agent-config (file, `HT_*` variables, `OTEL_*` fallbacks).
//!
//! This crate only re-exports: the behaviour lives in `hypertrace-runtime`, the code generation in
//! `hypertrace-macros`. See the README for the quickstart and the configuration table.

pub use hypertrace_macros::{handler, main};
pub use hypertrace_runtime::*;
