//! Bound histogram handles, so that recording a request is an update of its series and not a
//! search for it.
//!
//! An unbound `Histogram::record` makes the OpenTelemetry SDK find the series anew each time: it
//! hashes the whole attribute set (every key and value, with SipHash) and looks it up under a read
//! lock. A bound handle (`Histogram::bind`) has the series resolved once; recording through it is
//! the bucket search and the update under the series' own lock. Each HTTP route keeps the handles
//! of the attribute sets it has recorded in a [`BoundSet`], found by a small integer key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use opentelemetry::metrics::BoundHistogram;

/// How many attribute sets one [`BoundSet`] holds handles for. A route sees a few (method, scheme,
/// status) combinations in practice; past this many, recordings go through the unbound path, which
/// records the same values, only slower.
pub(crate) const CAPACITY: usize = 32;

/// An append-only table of bound handles by key, read without a lock: a slot below `len` is
/// always filled, and a filled slot never changes.
#[derive(Debug)]
pub(crate) struct BoundSet {
    len: AtomicUsize,
    slots: [OnceLock<(u32, BoundHistogram<f64>)>; CAPACITY],
    /// Serialises additions, so that a key is bound once and takes one slot.
    grow: Mutex<()>,
}

impl Default for BoundSet {
    fn default() -> BoundSet {
        BoundSet {
            len: AtomicUsize::new(0),
            slots: [const { OnceLock::new() }; CAPACITY],
            grow: Mutex::new(()),
        }
    }
}

impl BoundSet {
    /// The handle for `key`, bound by `bind` on its first use; `None` once the table is full.
    pub(crate) fn get_or_bind(
        &self,
        key: u32,
        bind: impl FnOnce() -> BoundHistogram<f64>,
    ) -> Option<&BoundHistogram<f64>> {
        if let Some(h) = self.find(key, self.len.load(Ordering::Acquire)) {
            return Some(h);
        }
        let _grow = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let len = self.len.load(Ordering::Acquire);
        if let Some(h) = self.find(key, len) {
            return Some(h);
        }
        let slot = self.slots.get(len)?;
        // Only this thread, holding `grow`, fills slot `len`: `set` cannot find it filled.
        let _ = slot.set((key, bind()));
        self.len.store(len + 1, Ordering::Release);
        slot.get().map(|(_, h)| h)
    }

    fn find(&self, key: u32, len: usize) -> Option<&BoundHistogram<f64>> {
        self.slots[..len]
            .iter()
            .filter_map(OnceLock::get)
            .find(|(k, _)| *k == key)
            .map(|(_, h)| h)
    }

    /// How many keys have a handle.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::prometheus::Snapshot;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
    use std::time::Duration;

    #[test]
    fn each_key_is_bound_once_and_records_into_its_own_series() {
        let page = Snapshot::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(page.clone())
                    .with_interval(Duration::from_secs(3600))
                    .build(),
            )
            .build();
        let h = provider.meter("t").f64_histogram("h").build();
        let set = BoundSet::default();
        let mut binds = 0;
        for round in 0..3 {
            for key in 0..CAPACITY as u32 {
                let bound = set.get_or_bind(key, || {
                    binds += 1;
                    h.bind(&[KeyValue::new("k", i64::from(key))])
                });
                bound.expect("room for it").record(f64::from(round));
            }
        }
        assert_eq!(binds, CAPACITY, "bound on first use only");
        assert_eq!(set.len(), CAPACITY);
        assert!(set
            .get_or_bind(CAPACITY as u32, || unreachable!("no room to bind"))
            .is_none());
        assert!(set.get_or_bind(3, || unreachable!("known")).is_some());

        // Each key's handle recorded into its own series: 3 values, 0 + 1 + 2.
        provider.force_flush().unwrap();
        let text = page.text();
        let counts: Vec<&str> = text.lines().filter(|l| l.starts_with("h_count{")).collect();
        assert_eq!(counts.len(), CAPACITY, "{text}");
        assert!(counts.iter().all(|l| l.ends_with(" 3")), "{text}");
        for key in 0..CAPACITY {
            assert!(
                text.contains(&format!("h_sum{{k=\"{key}\"}} 3\n")),
                "{text}"
            );
        }
        let _ = provider.shutdown();
    }
}
