//! The `exception` event: a panicking handler on the server side, a failed call on the client side.
//!
//! A panic's payload carries its message but not where it happened. A panic hook, chained in front of
//! whatever hook was installed before it, keeps the location (and the backtrace, when `RUST_BACKTRACE`
//! asks for one) of the last panic on each thread, and [`record_panic`] takes it after `catch_unwind`.
//! An app that installs its own hook after the agent replaces ours: its panics are then recorded with
//! their message only.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};

thread_local! {
    /// `exception.stacktrace` of this thread's last panic, until a span takes it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains the hook that remembers each panic's location. Idempotent.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut trace = match info.location() {
                Some(l) => format!("at {}:{}:{}", l.file(), l.line(), l.column()),
                None => "at an unknown location".to_owned(),
            };
            // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE: no cost unless asked for.
            let backtrace = Backtrace::capture();
            if backtrace.status() == BacktraceStatus::Captured {
                trace.push('\n');
                trace.push_str(&backtrace.to_string());
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(trace));
            previous(info);
        }));
    });
}

/// The text of a panic payload (`panic!("..")` gives a `&str` or a `String`).
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into())
}

/// An `exception` event of type `panic` with the message and, when the hook saw it, the stack trace;
/// status Error.
pub(crate) fn record_panic(cx: &Context, panic: &(dyn Any + Send)) {
    let stacktrace = LAST_PANIC.with(|p| p.borrow_mut().take());
    record(cx, "panic", panic_message(panic), stacktrace);
}

/// An `exception` event and status Error with its message.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "reqwest012")),
    allow(dead_code)
)] // used by the outgoing-call integrations
pub(crate) fn record_exception(cx: &Context, ty: &'static str, msg: String) {
    record(cx, ty, msg, None);
}

fn record(cx: &Context, ty: &'static str, msg: String, stacktrace: Option<String>) {
    let span = cx.span();
    let mut attrs = Vec::with_capacity(3);
    attrs.push(KeyValue::new("exception.type", ty));
    attrs.push(KeyValue::new("exception.message", msg.clone()));
    if let Some(trace) = stacktrace {
        attrs.push(KeyValue::new("exception.stacktrace", trace));
    }
    span.add_event("exception", attrs);
    span.set_status(Status::error(msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_keeps_the_location_of_the_panic() {
        install_panic_hook();
        let line = line!() + 1;
        let err = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(err.as_ref()), "boom 1");
        let trace = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap();
        assert!(
            trace.starts_with(&format!("at {}:{line}:", file!())),
            "{trace}"
        );
    }
}
