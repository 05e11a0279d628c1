//! The encoder and its output buffer, kept from batch to batch by the OTLP exporters (gRPC and
//! HTTP), so that a steady stream of batches reuses one buffer.

use std::sync::Mutex;

use super::finished::FinishedSpan;
use bytes::Bytes;
use opentelemetry_sdk::Resource;

use super::encode::TraceEncoder;

#[derive(Debug, Default)]
struct Parts {
    encoder: TraceEncoder,
    buf: Vec<u8>,
}

/// A [`TraceEncoder`] and the buffer it writes into.
#[derive(Debug)]
pub(super) struct Scratch(Mutex<Parts>);

impl Scratch {
    pub(super) fn new(resource: &Resource) -> Scratch {
        Scratch(Mutex::new(Parts {
            encoder: TraceEncoder::new(resource),
            buf: Vec::new(),
        }))
    }

    pub(super) fn set_resource(&mut self, resource: &Resource) {
        self.0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .encoder
            .set_resource(resource);
    }

    /// Encodes `batch` into the buffer, then hands the buffer to `use_bytes`, which either takes
    /// it (`std::mem::take`, to send it as is; [`Scratch::give_back`] returns it) or reads it
    /// (to compress it).
    pub(super) fn encode<R>(
        &self,
        batch: &[FinishedSpan],
        use_bytes: impl FnOnce(&mut Vec<u8>) -> R,
    ) -> R {
        let mut parts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Parts { encoder, buf } = &mut *parts;
        encoder.encode(batch, buf);
        use_bytes(buf)
    }

    /// The buffer taken by [`Scratch::encode`] and sent as `body`, back for the next batch once
    /// the transport has let go of its copies; dropped otherwise.
    pub(super) fn give_back(&self, body: Bytes) {
        if let Ok(back) = body.try_into_mut() {
            let mut buf = Vec::from(back);
            buf.clear();
            self.0.lock().unwrap_or_else(|p| p.into_inner()).buf = buf;
        }
    }
}
