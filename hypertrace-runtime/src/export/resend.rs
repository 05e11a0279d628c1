//! Sending one encoded request again within one export attempt, as the OTLP specification asks
//! for transient failures: the same bytes, after a short backoff, or after the server's own delay
//! (gRPC `RetryInfo`, HTTP `Retry-After`), within the export timeout.
//!
//! This is the quick loop inside one attempt (a few hundred milliseconds for a collector that is
//! restarting); the batch processor's retries (`batch.rs`) take over beyond it, for outages, while
//! its queue has room.

use std::future::Future;
use std::time::{Duration, Instant};

/// Resends after the first attempt, at most.
const MAX_RESENDS: u32 = 3;
/// The first wait; it doubles per resend up to [`MAX_DELAY`].
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
/// Random extra wait, so that agents behind one collector do not resend in step.
const MAX_JITTER_MS: u64 = 100;
/// A server's requested delay is honoured up to this (beyond it, the batch processor's retries
/// take over).
const MAX_SERVER_DELAY: Duration = Duration::from_secs(30);

/// What a failed send says about sending again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Again {
    /// Permanent, or not ours to decide here: give the failure to the batch processor now.
    No,
    /// Transient: resend after the backoff.
    Yes,
    /// The server asked to wait this long first.
    After(Duration),
}

/// Runs `send` until it succeeds, fails for good, runs out of resends or would pass `timeout`
/// (counted from the first send). Sleeps on the calling thread: this runs on the export thread,
/// which has nothing else to do meanwhile.
pub(super) async fn resend<T, E, F, Fut>(timeout: Duration, mut send: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, (E, Again)>>,
{
    let start = Instant::now();
    let mut delay = INITIAL_DELAY;
    let mut cap = MAX_DELAY;
    let mut resends = 0;
    loop {
        let (err, again) = match send().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if resends >= MAX_RESENDS || start.elapsed() >= timeout {
            return Err(err);
        }
        match again {
            Again::No => return Err(err),
            Again::Yes => {}
            Again::After(server) => {
                let server = server.min(MAX_SERVER_DELAY);
                if server > cap {
                    cap = MAX_SERVER_DELAY;
                }
                delay = delay.max(server);
            }
        }
        let jitter = Duration::from_millis(super::retry::random() % (MAX_JITTER_MS + 1));
        let wait = (delay + jitter).min(cap);
        if wait >= timeout.saturating_sub(start.elapsed()) {
            return Err(err);
        }
        std::thread::sleep(wait);
        delay = (delay * 2).min(cap);
        resends += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn run<T>(f: impl Future<Output = T>) -> T {
        futures_executor::block_on(f)
    }

    #[test]
    fn resends_transient_failures_then_gives_up() {
        let n = Cell::new(0);
        let r: Result<(), &str> = run(resend(Duration::from_secs(10), || {
            n.set(n.get() + 1);
            async { Err(("down", Again::Yes)) }
        }));
        assert_eq!(r, Err("down"));
        assert_eq!(n.get(), 1 + MAX_RESENDS);

        let n = Cell::new(0);
        let r = run(resend(Duration::from_secs(10), || {
            n.set(n.get() + 1);
            let ok = n.get() == 3;
            async move {
                if ok {
                    Ok(7)
                } else {
                    Err(("down", Again::Yes))
                }
            }
        }));
        assert_eq!(r, Ok(7));
        assert_eq!(n.get(), 3);
    }

    #[test]
    fn permanent_failures_are_not_resent() {
        let n = Cell::new(0);
        let r: Result<(), &str> = run(resend(Duration::from_secs(10), || {
            n.set(n.get() + 1);
            async { Err(("bad request", Again::No)) }
        }));
        assert_eq!(r, Err("bad request"));
        assert_eq!(n.get(), 1);
    }

    #[test]
    fn the_server_delay_is_honoured_within_the_timeout() {
        let start = Instant::now();
        let n = Cell::new(0);
        let r = run(resend(Duration::from_secs(5), || {
            n.set(n.get() + 1);
            let ok = n.get() == 2;
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(("slow down", Again::After(Duration::from_millis(700))))
                }
            }
        }));
        assert_eq!(r, Ok(()));
        assert!(start.elapsed() >= Duration::from_millis(700));
        // A delay past the timeout is not waited for: the failure goes back at once.
        let start = Instant::now();
        let r: Result<(), &str> = run(resend(Duration::from_millis(500), || async {
            Err(("slow down", Again::After(Duration::from_secs(3))))
        }));
        assert_eq!(r, Err("slow down"));
        assert!(start.elapsed() < Duration::from_millis(400));
    }
}
