//! Blocking filters on gRPC server calls.
