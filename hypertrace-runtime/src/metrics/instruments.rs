//! The synchronous instruments (the observed ones are in `observed.rs`), built once per agent from its meter: recording one is a hash
//! lookup of its attribute set and an atomic update, with nothing to look up or allocate first.

use opentelemetry::metrics::{Histogram, Meter};

/// The bucket boundaries, in seconds, that OpenTelemetry's HTTP and RPC conventions prescribe for
/// durations. The SDK's own defaults (`0, 5, 10, ..., 10000`) are scaled for milliseconds: with
/// them every request would land in the first bucket.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The boundaries the database conventions prescribe for `db.client.operation.duration`
/// (queries are often well under 5 ms).
pub const DB_DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// `http.server.request.duration`.
pub const HTTP_SERVER_DURATION: &str = "http.server.request.duration";
/// `http.server.active_requests` (observed: see `observed.rs`).
pub const HTTP_SERVER_ACTIVE: &str = "http.server.active_requests";
/// `http.client.request.duration`.
pub const HTTP_CLIENT_DURATION: &str = "http.client.request.duration";
/// `rpc.server.call.duration`.
pub const RPC_SERVER_DURATION: &str = "rpc.server.call.duration";
/// `rpc.client.call.duration`.
pub const RPC_CLIENT_DURATION: &str = "rpc.client.call.duration";
/// `db.client.operation.duration`.
pub const DB_CLIENT_DURATION: &str = "db.client.operation.duration";

/// Every synchronous instrument of the agent.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) http_server_duration: Histogram<f64>,
    pub(crate) http_client_duration: Histogram<f64>,
    pub(crate) rpc_server_duration: Histogram<f64>,
    pub(crate) rpc_client_duration: Histogram<f64>,
    pub(crate) db_client_duration: Histogram<f64>,
}

fn seconds(
    meter: &Meter,
    name: &'static str,
    what: &'static str,
    bounds: &[f64],
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(what)
        .with_boundaries(bounds.to_vec())
        .build()
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Instruments {
        Instruments {
            http_server_duration: seconds(
                meter,
                HTTP_SERVER_DURATION,
                "Duration of HTTP server requests, until the response head is ready.",
                &DURATION_BUCKETS,
            ),
            http_client_duration: seconds(
                meter,
                HTTP_CLIENT_DURATION,
                "Duration of HTTP client requests, until the response head arrived.",
                &DURATION_BUCKETS,
            ),
            rpc_server_duration: seconds(
                meter,
                RPC_SERVER_DURATION,
                "Duration of RPCs served.",
                &DURATION_BUCKETS,
            ),
            rpc_client_duration: seconds(
                meter,
                RPC_CLIENT_DURATION,
                "Duration of outgoing RPCs.",
                &DURATION_BUCKETS,
            ),
            db_client_duration: seconds(
                meter,
                DB_CLIENT_DURATION,
                "Duration of database client operations.",
                &DB_DURATION_BUCKETS,
            ),
        }
    }
}
