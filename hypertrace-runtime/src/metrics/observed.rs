//! Observable instruments, read when metrics are collected rather than on any request path: the
//! batch processor's span counters, the in-flight HTTP requests, and the process's CPU time and
//! memory (Linux, from `/proc/self`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use opentelemetry::metrics::{Meter, ObservableCounter, ObservableUpDownCounter};
#[cfg(target_os = "linux")]
use opentelemetry::KeyValue;

use super::http::ActiveRequests;
use super::instruments::HTTP_SERVER_ACTIVE;
use crate::export::ExportStats;

/// `hypertrace.agent.spans.exported`.
pub const SPANS_EXPORTED: &str = "hypertrace.agent.spans.exported";
/// `hypertrace.agent.spans.dropped`.
pub const SPANS_DROPPED: &str = "hypertrace.agent.spans.dropped";
/// `process.cpu.time`.
pub const PROCESS_CPU_TIME: &str = "process.cpu.time";
/// `process.memory.usage`.
pub const PROCESS_MEMORY_USAGE: &str = "process.memory.usage";

/// Kept for the agent's lifetime alongside the meter provider that calls them back.
#[allow(dead_code)] // held, never read: the callbacks live in the provider
#[derive(Debug)]
pub(crate) struct Observed {
    spans_exported: ObservableCounter<u64>,
    spans_dropped: ObservableCounter<u64>,
    active: ObservableUpDownCounter<i64>,
    #[cfg(target_os = "linux")]
    cpu: ObservableCounter<f64>,
    #[cfg(target_os = "linux")]
    memory: ObservableUpDownCounter<i64>,
}

impl Observed {
    pub(crate) fn register(
        meter: &Meter,
        stats: Arc<ExportStats>,
        active: Arc<ActiveRequests>,
    ) -> Observed {
        let exported = stats.clone();
        Observed {
            spans_exported: meter
                .u64_observable_counter(SPANS_EXPORTED)
                .with_unit("{span}")
                .with_description("Spans the batch processor handed to the exporter successfully.")
                .with_callback(move |o| o.observe(exported.exported.load(Ordering::Relaxed), &[]))
                .build(),
            spans_dropped: meter
                .u64_observable_counter(SPANS_DROPPED)
                .with_unit("{span}")
                .with_description("Spans dropped because the export queue was full.")
                .with_callback(move |o| o.observe(stats.dropped.load(Ordering::Relaxed), &[]))
                .build(),
            active: meter
                .i64_observable_up_down_counter(HTTP_SERVER_ACTIVE)
                .with_unit("{request}")
                .with_description("Number of HTTP server requests in flight.")
                .with_callback(move |o| active.observe(o))
                .build(),
            #[cfg(target_os = "linux")]
            cpu: meter
                .f64_observable_counter(PROCESS_CPU_TIME)
                .with_unit("s")
                .with_description("CPU time of this process, by mode.")
                .with_callback(|o| {
                    if let Some((user, system)) = proc::cpu_seconds() {
                        o.observe(user, &[KeyValue::new("cpu.mode", "user")]);
                        o.observe(system, &[KeyValue::new("cpu.mode", "system")]);
                    }
                })
                .build(),
            #[cfg(target_os = "linux")]
            memory: meter
                .i64_observable_up_down_counter(PROCESS_MEMORY_USAGE)
                .with_unit("By")
                .with_description("Resident memory of this process.")
                .with_callback(|o| {
                    if let Some(rss) = proc::resident_bytes() {
                        o.observe(rss, &[]);
                    }
                })
                .build(),
        }
    }
}

/// Readers of `/proc/self`.
#[cfg(target_os = "linux")]
pub(crate) mod proc {
    /// The kernel reports CPU times in `USER_HZ` ticks, 100 per second on every architecture that
    /// Rust's Linux targets cover (the ABI fixes it; `sysconf(_SC_CLK_TCK)` returns the same).
    const TICKS_PER_SECOND: f64 = 100.0;

    /// `(user, system)` CPU seconds from `/proc/self/stat`.
    pub(crate) fn cpu_seconds() -> Option<(f64, f64)> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The resident set size in bytes (`VmRSS` of `/proc/self/status`).
    pub(crate) fn resident_bytes() -> Option<i64> {
        parse_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
    }

    /// Fields 14 and 15 (utime, stime), counted after the command name, which is in parentheses
    /// and may itself hold spaces and parentheses: the fields start after its *last* `)`.
    pub(crate) fn parse_stat(stat: &str) -> Option<(f64, f64)> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        // `rest` starts at field 3 (state); utime is field 14.
        let utime: u64 = fields.nth(11)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some((
            utime as f64 / TICKS_PER_SECOND,
            stime as f64 / TICKS_PER_SECOND,
        ))
    }

    /// `VmRSS:     1234 kB` → bytes.
    pub(crate) fn parse_rss(status: &str) -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
        let n: i64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => Some(n * 1024),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stat_fields_after_a_command_name_with_spaces_and_parens() {
            let stat = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 1215 0 0 0 250 37 0 0 20 0 \
                        3 0 123456 12345678 2345 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
            assert_eq!(parse_stat(stat), Some((2.5, 0.37)));
            assert_eq!(parse_stat("garbage"), None);
            assert_eq!(parse_stat("1 (x) S 1 2"), None);
        }

        #[test]
        fn rss_in_bytes() {
            let status = "Name:\tapp\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
            assert_eq!(parse_rss(status), Some(5 * 1024 * 1024));
            assert_eq!(parse_rss("Name:\tapp\n"), None);
        }

        #[test]
        fn this_process_has_cpu_time_and_memory() {
            let (user, system) = cpu_seconds().expect("/proc/self/stat");
            assert!(user >= 0.0 && system >= 0.0);
            let rss = resident_bytes().expect("/proc/self/status");
            assert!(
                rss > 1024 * 1024,
                "a test binary holds more than 1 MiB: {rss}"
            );
        }
    }
}
