//! Running the filters of one request: in order (the agent's, then the layer's), the first block
//! wins. A sync filter cannot be pre-empted, so each runs inline under `catch_unwind` and is timed:
//! one that panics or overran `rustagent.filter_budget_ms` has failed, and the failure mode says
//! whether the request goes on (open, the default) or is blocked with 403 (closed).
//!
//! The filters that need no body run as soon as the request arrives; the run stops before the
//! first filter that wants the body, and goes on from there once its prefix has been read, so
//! the order (and which block wins) is the same as if all had run at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use super::{Block, Decision, Filter, FilterRequest, Filters};
use crate::config::{Config, FilterFailureMode};
use crate::span::exception::panic_message;

/// `block` or `continue`: what the filters decided.
pub const DECISION: &str = "hypertrace.filter.decision";
/// The name of the filter that blocked the request.
pub const NAME: &str = "hypertrace.filter.name";
/// `panic` or `timeout`: how the first failed filter failed.
pub const FAILURE: &str = "hypertrace.filter.failure";
/// The name of the first filter that failed.
pub const FAILURE_FILTER: &str = "hypertrace.filter.failure.filter";
/// The panic's message, or how long the filter took.
pub const FAILURE_MESSAGE: &str = "hypertrace.filter.failure.message";
/// `open` or `closed`: the failure mode that applied.
pub const FAILURE_MODE: &str = "hypertrace.filter.failure_mode";

/// The filters of one entry point: the agent's, then the layer's.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    global: Filters,
    local: Filters,
}

impl Chain {
    /// `None` when there is no filter at all: the caller's hot path stays as it was.
    pub(crate) fn new(global: &Filters, local: &Filters) -> Option<Chain> {
        if global.is_empty() && local.is_empty() {
            return None;
        }
        Some(Chain {
            global: global.clone(),
            local: local.clone(),
        })
    }

    fn get(&self, i: usize) -> Option<&dyn Filter> {
        match self.global.get(i) {
            Some(f) => Some(f),
            None => self.local.get(i - self.global.len()),
        }
    }
}

/// How a filter failed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Failure {
    /// It panicked, with this message.
    Panic(String),
    /// It took this long, over the budget.
    Timeout(Duration),
}

/// A blocked request: the block and the filter that decided it.
#[derive(Debug)]
pub(crate) struct Blocked {
    pub(crate) filter: String,
    pub(crate) block: Block,
}

/// Where a run stopped.
#[derive(Debug)]
pub(crate) enum Step {
    /// Every filter let the request through.
    Done,
    /// A filter blocked it (or failed, with the closed failure mode).
    Blocked(Blocked),
    /// The next filter wants the body: read its prefix, then run again.
    NeedsBody,
}

/// One request's run through its chain, across the header and the body phases.
#[derive(Debug)]
pub(crate) struct Evaluation {
    chain: Chain,
    next: usize,
    budget: Duration,
    mode: FilterFailureMode,
    failure: Option<(String, Failure)>,
}

/// `f.name()`, which is user code too.
fn name_of(f: &dyn Filter) -> String {
    catch_unwind(AssertUnwindSafe(|| f.name().to_owned()))
        .unwrap_or_else(|_| "<a filter whose name() panicked>".to_owned())
}

/// Runs one filter, contained and timed.
fn evaluate_one(
    f: &dyn Filter,
    req: &FilterRequest<'_>,
    budget: Duration,
) -> Result<Decision, Failure> {
    let started = Instant::now();
    let decision = catch_unwind(AssertUnwindSafe(|| f.evaluate(req)))
        .map_err(|p| Failure::Panic(panic_message(p.as_ref())))?;
    let took = started.elapsed();
    if took > budget {
        return Err(Failure::Timeout(took));
    }
    Ok(decision)
}

impl Evaluation {
    /// A run of `chain` with the budget and failure mode of `config`.
    pub(crate) fn new(chain: Chain, config: &Config) -> Evaluation {
        Evaluation {
            chain,
            next: 0,
            budget: config.rustagent.filter_budget,
            mode: config.rustagent.filter_failure_mode,
            failure: None,
        }
    }

    /// Runs the filters from where the last run stopped. Without `body_ready`, stops before the
    /// first filter that wants the body.
    pub(crate) fn run(&mut self, req: &FilterRequest<'_>, body_ready: bool) -> Step {
        while let Some(f) = self.chain.get(self.next) {
            let body = wants_body(f);
            if body && !body_ready {
                return Step::NeedsBody;
            }
            self.next += 1;
            let view = if body { *req } else { req.without_body() };
            match evaluate_one(f, &view, self.budget) {
                Ok(Decision::Continue) => {}
                Ok(Decision::Block(block)) => {
                    return Step::Blocked(Blocked {
                        filter: name_of(f),
                        block,
                    })
                }
                Err(failure) => {
                    let name = name_of(f);
                    let closed = self.mode == FilterFailureMode::Closed;
                    let blocked = closed.then(|| Blocked {
                        filter: name.clone(),
                        block: Block::new(),
                    });
                    self.failure.get_or_insert((name, failure));
                    if let Some(b) = blocked {
                        return Step::Blocked(b);
                    }
                }
            }
        }
        Step::Done
    }

    /// The outcome on the span: the decision, the blocking filter, the first failure. A block
    /// sets the span's status to Error unless it says otherwise.
    pub(crate) fn record(&self, cx: &Context, blocked: Option<&Blocked>) {
        let mut attrs = Vec::with_capacity(6);
        let decision = if blocked.is_some() {
            "block"
        } else {
            "continue"
        };
        attrs.push(KeyValue::new(DECISION, decision));
        if let Some(b) = blocked {
            attrs.push(KeyValue::new(NAME, b.filter.clone()));
        }
        if let Some((name, failure)) = &self.failure {
            let (kind, message) = match failure {
                Failure::Panic(m) => ("panic", m.clone()),
                Failure::Timeout(took) => (
                    "timeout",
                    format!(
                        "took {} µs, over the budget of {} µs",
                        took.as_micros(),
                        self.budget.as_micros()
                    ),
                ),
            };
            attrs.push(KeyValue::new(FAILURE, kind));
            attrs.push(KeyValue::new(FAILURE_FILTER, name.clone()));
            attrs.push(KeyValue::new(FAILURE_MESSAGE, message));
            let mode = match self.mode {
                FilterFailureMode::Open => "open",
                FilterFailureMode::Closed => "closed",
            };
            attrs.push(KeyValue::new(FAILURE_MODE, mode));
        }
        let span = cx.span();
        span.set_attributes(attrs);
        if let Some(b) = blocked.filter(|b| b.block.span_error()) {
            span.set_status(Status::error(format!("blocked by filter {:?}", b.filter)));
        }
    }
}

/// `f.wants_body()`, contained: a panic there counts as "no body" (the filter still runs and
/// fails, or not, in `evaluate`).
fn wants_body(f: &dyn Filter) -> bool {
    catch_unwind(AssertUnwindSafe(|| f.wants_body())).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Protocol;
    use http::{HeaderMap, Method, StatusCode, Uri};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A filter that counts its calls and answers as told.
    struct Probe {
        name: &'static str,
        body: bool,
        calls: Arc<AtomicUsize>,
        answer: fn(&FilterRequest<'_>) -> Decision,
    }

    impl Filter for Probe {
        fn name(&self) -> &str {
            self.name
        }
        fn wants_body(&self) -> bool {
            self.body
        }
        fn evaluate(&self, req: &FilterRequest<'_>) -> Decision {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.answer)(req)
        }
    }

    fn probe(
        name: &'static str,
        body: bool,
        answer: fn(&FilterRequest<'_>) -> Decision,
    ) -> (Probe, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Probe {
                name,
                body,
                calls: calls.clone(),
                answer,
            },
            calls,
        )
    }

    fn config(mode: FilterFailureMode) -> Config {
        let mut c = Config::defaults("t");
        c.rustagent.filter_failure_mode = mode;
        c.rustagent.filter_budget = Duration::from_millis(20);
        c
    }

    fn request_parts() -> (Method, Uri, HeaderMap) {
        (Method::POST, Uri::from_static("/x"), HeaderMap::new())
    }

    #[test]
    fn first_block_wins_and_later_filters_do_not_run() {
        let (a, a_calls) = probe("a", false, |_| Decision::Continue);
        let (b, _) = probe("b", false, |_| {
            Block::new().with_status(StatusCode::IM_A_TEAPOT).into()
        });
        let (c, c_calls) = probe("c", false, |_| Decision::block());
        let global = Filters::new().with(a);
        let local = Filters::new().with(b).with(c);
        let mut ev = Evaluation::new(
            Chain::new(&global, &local).unwrap(),
            &config(FilterFailureMode::Open),
        );
        let (m, u, h) = request_parts();
        let req = FilterRequest::new(Protocol::Http, &m, &u, &h);
        match ev.run(&req, true) {
            Step::Blocked(b) => {
                assert_eq!(b.filter, "b");
                assert_eq!(b.block.status(), StatusCode::IM_A_TEAPOT);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a_calls.load(Ordering::SeqCst), 1);
        assert_eq!(c_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn stops_before_the_first_body_filter_then_goes_on_with_the_body() {
        let (a, _) = probe("a", false, |r| {
            assert!(r.body().is_none(), "a header filter never gets the body");
            Decision::Continue
        });
        let (b, b_calls) = probe("b", true, |r| {
            if r.body() == Some(b"evil") {
                Decision::block()
            } else {
                Decision::Continue
            }
        });
        let (c, c_calls) = probe("c", false, |_| Decision::Continue);
        let local = Filters::new().with(a).with(b).with(c);
        let mut ev = Evaluation::new(
            Chain::new(&Filters::new(), &local).unwrap(),
            &config(FilterFailureMode::Open),
        );
        let (m, u, h) = request_parts();
        let req = FilterRequest::new(Protocol::Http, &m, &u, &h);
        assert!(matches!(ev.run(&req, false), Step::NeedsBody));
        assert_eq!(b_calls.load(Ordering::SeqCst), 0);
        let req = req.with_body(b"evil", false);
        assert!(matches!(ev.run(&req, true), Step::Blocked(ref x) if x.filter == "b"));
        assert_eq!(c_calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panic_or_an_overrun_is_skipped_open_and_blocks_closed() {
        let panics = |_: &FilterRequest<'_>| -> Decision { panic!("filter bug") };
        let slow = |_: &FilterRequest<'_>| -> Decision {
            std::thread::sleep(Duration::from_millis(40));
            Decision::block()
        };
        for (answer, kind) in [
            (panics as fn(&FilterRequest<'_>) -> Decision, "panic"),
            (slow, "timeout"),
        ] {
            let (m, u, h) = request_parts();
            let req = FilterRequest::new(Protocol::Http, &m, &u, &h);
            let (bad, _) = probe("bad", false, answer);
            let (next, next_calls) = probe("next", false, |_| Decision::Continue);
            let local = Filters::new().with(bad).with(next);
            let chain = Chain::new(&Filters::new(), &local).unwrap();

            let mut open = Evaluation::new(chain.clone(), &config(FilterFailureMode::Open));
            assert!(matches!(open.run(&req, true), Step::Done), "{kind}");
            assert_eq!(next_calls.load(Ordering::SeqCst), 1, "{kind}");
            let (name, failure) = open.failure.clone().unwrap();
            assert_eq!(name, "bad");
            match (kind, failure) {
                ("panic", Failure::Panic(m)) => assert_eq!(m, "filter bug"),
                ("timeout", Failure::Timeout(t)) => assert!(t >= Duration::from_millis(40)),
                (k, f) => panic!("{k}: {f:?}"),
            }

            let mut closed = Evaluation::new(chain, &config(FilterFailureMode::Closed));
            match closed.run(&req, true) {
                Step::Blocked(b) => {
                    assert_eq!(b.filter, "bad");
                    assert_eq!(b.block.status(), StatusCode::FORBIDDEN);
                }
                other => panic!("{kind}: {other:?}"),
            }
            assert_eq!(
                next_calls.load(Ordering::SeqCst),
                1,
                "{kind}: not run again"
            );
        }
    }

    #[test]
    fn no_filters_no_chain() {
        assert!(Chain::new(&Filters::new(), &Filters::new()).is_none());
    }
}
