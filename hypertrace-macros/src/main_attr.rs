//! `#[hypertrace::main]`: checks `async fn main()` and turns it into a plain `fn main()` whose body is
//! one call into the runtime, which builds the tokio runtime, starts the agent, runs the body, and
//! flushes the agent before the runtime goes away (`hypertrace-runtime/src/main_lifecycle.rs`).
//!
//! ```text
//! #[hypertrace::main(service_name = "checkout")]
//! async fn main() -> Result<(), Box<dyn Error>> { body }
//! ```
//! becomes
//! ```text
//! fn main() -> Result<(), Box<dyn Error>> {
//!     async fn main() -> Result<(), Box<dyn Error>> { body }
//!     run_main(MainOptions { service_name: Some("checkout"), .., signal_watcher: true }, main())
//! }
//! ```
//! The user's function is kept whole as a nested `async fn`, so rustc type-checks the body exactly as
//! the body of an `async fn main` (a wrong tail expression is reported on it, "expected because of
//! return type" on the user's return type; a `?` that can't convert on the `?`).
//!
//! The macro also reads the body (`body_scan.rs`): an installation of the app's own tracing
//! subscriber is an error that says the fix (it would panic at start), and signal handling of the
//! app's own turns the agent's signal watcher off.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, ToTokens};
use syn::Attribute;

use crate::args::{self, option_tokens, value, Args, Flavor, MainOptions, MAIN_ATTRIBUTE};
use crate::body_scan;
use crate::errors::{token_stream_with_error, Ctxt};
use crate::item::{self, FnItem};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let Args { options, cx } = args::parse::<MainOptions>(args);
    check_options(&cx, &options);
    let func = match item::parse_fn(item.clone(), MAIN_ATTRIBUTE, "`async fn main()`") {
        Ok(func) => func,
        Err(err) => {
            cx.syn_error(err);
            return with_errors(item, cx);
        }
    };
    let shape = check_signature(&cx, &func);
    check_body(&cx, &func, &options);
    // `#[tokio::main]` next to this attribute has been reported; emitting it again would only add
    // tokio's own error about the (now non-async) function.
    let mut func = func;
    func.attrs.retain(|attr| !is_runtime_attribute(attr));
    if !cx.has_errors() {
        cx.check().expect("no errors were recorded");
        return expand_main(&func, &options);
    }
    let fallback = match shape {
        Shape::Expandable => expand_main(&func, &options),
        Shape::Original => func.sanitized(),
        Shape::Nested => nested(&func),
    };
    with_errors(fallback, cx)
}

fn with_errors(item: TokenStream, cx: Ctxt) -> TokenStream {
    match cx.check() {
        Ok(()) => item,
        Err(err) => token_stream_with_error(item, err),
    }
}

/// What can be emitted next to the errors without rustc adding errors of its own.
enum Shape {
    /// A valid `async fn main()`: the normal expansion (with the valid options).
    Expandable,
    /// A function rustc accepts as it is (not named `main`, or a non-async `main`).
    Original,
    /// A `main` rustc would reject (arguments, generics, ...): a bare `fn main() {}` holding the
    /// function as an unused nested item, so its body is still type-checked and IDE-navigable.
    Nested,
}

fn check_options(cx: &Ctxt, options: &MainOptions) {
    if let (Some(Flavor::CurrentThread), Some(workers)) =
        (value(options.flavor.as_ref()), &options.worker_threads)
    {
        cx.error_at(
            workers.key_span,
            "`worker_threads` sets the size of the multi-threaded runtime, but `flavor = \"current_thread\"` runs everything on the main thread: remove `worker_threads`, or use `flavor = \"multi_thread\"`",
        );
    }
}

/// The app's own subscriber installation in `main`'s body would panic at start, once the agent has
/// installed its own: unless `tracing_subscriber = false` says the app keeps its own, that is an
/// error on the call, with both fixes.
fn check_body(cx: &Ctxt, func: &FnItem, options: &MainOptions) {
    if value(options.tracing_subscriber.as_ref()) == Some(false) {
        return;
    }
    if let Some(call) = body_scan::subscriber_init(&func.body.stmts) {
        cx.error_spanned_by(
            &call,
            format!(
                "{MAIN_ATTRIBUTE} installs the global tracing subscriber already, so this `{call}` would fail at start (`SetGlobalDefaultError`): to keep your own subscriber, write `#[hypertrace::main(tracing_subscriber = false)]` and add `hypertrace::otel_layer()` to it (`tracing_subscriber::registry().with(hypertrace::otel_layer()).with(tracing_subscriber::fmt::layer()).init()`) so that `tracing` spans and events inside handlers reach the request spans; or remove this line to keep the agent's subscriber (logs on stderr, filtered by `RUST_LOG`)"
            ),
        );
    }
}

fn check_signature(cx: &Ctxt, func: &FnItem) -> Shape {
    let sig = &func.sig;
    let is_main = sig.ident == "main";
    if !is_main {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "{MAIN_ATTRIBUTE} goes on the program's `main` function (it builds the tokio runtime and starts the agent for the whole program): rename `{}` to `main`, or move the attribute to `main`",
                sig.ident
            ),
        );
    }
    for attr in &func.attrs {
        if is_runtime_attribute(attr) {
            cx.error_spanned_by(
                attr,
                format!(
                    "{MAIN_ATTRIBUTE} already builds the tokio runtime: remove `#[{}]`",
                    attr.path().to_token_stream().to_string().replace(' ', "")
                ),
            );
        }
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(constness, "`main` can't be `const`: remove `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "`main` can't be `unsafe`: remove `unsafe` (use an `unsafe` block inside if needed)",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "`main` can't have an ABI: remove the `extern`");
    }
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("{MAIN_ATTRIBUTE} needs an `async fn`: add `async` before `fn` (if `#[tokio::main]` is also on this function, remove it: {MAIN_ATTRIBUTE} builds the runtime)"),
        );
    }
    let has_generics = !sig.generics.params.is_empty() || sig.generics.where_clause.is_some();
    if has_generics {
        cx.error_spanned_by(
            &sig.generics,
            "`main` can't be generic: remove the generic parameters",
        );
    }
    let has_args = !sig.inputs.is_empty() || sig.variadic.is_some();
    if has_args {
        let mut args = sig.inputs.to_token_stream();
        if let Some(variadic) = &sig.variadic {
            variadic.to_tokens(&mut args);
        }
        cx.error_spanned_by(
            args,
            "`main` takes no arguments: remove them and read the command line with `std::env::args()`",
        );
    }
    let rejected_by_rustc = has_args
        || has_generics
        || sig.constness.is_some()
        || sig.unsafety.is_some()
        || sig.abi.is_some();
    if !is_main {
        Shape::Original
    } else if rejected_by_rustc {
        Shape::Nested
    } else if sig.asyncness.is_none() {
        Shape::Original
    } else {
        Shape::Expandable
    }
}

/// `#[tokio::main]`, or this attribute a second time.
fn is_runtime_attribute(attr: &Attribute) -> bool {
    item::attribute_is(attr, &["tokio", "hypertrace", "hypertrace_macros"], "main")
}

fn nested(func: &FnItem) -> TokenStream {
    let inner = func.sanitized();
    let vis = &func.vis;
    quote! {
        #vis fn main() {
            #[allow(dead_code, clippy::all)]
            #inner
        }
    }
}

fn expand_main(func: &FnItem, options: &MainOptions) -> TokenStream {
    let attrs = &func.attrs;
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let inner_sig = &func.sig;
    let body = &func.body;
    let mut sig = func.sig.clone();
    sig.asyncness = None;

    let flavor = match value(options.flavor.as_ref()).unwrap_or(Flavor::MultiThread) {
        Flavor::MultiThread => quote!(MultiThread),
        Flavor::CurrentThread => quote!(CurrentThread),
    };
    let worker_threads =
        option_tokens(value(options.worker_threads.as_ref()).map(Literal::usize_unsuffixed));
    let service_name = option_tokens(value(options.service_name.as_ref()));
    let config_file = option_tokens(value(options.config.as_ref()));
    let tracing_subscriber = value(options.tracing_subscriber.as_ref()).unwrap_or(true);
    // The app that handles SIGINT/SIGTERM in `main` itself keeps them to itself.
    let filters = option_tokens(
        value(options.filters.as_ref()).map(|p| quote!(#p as fn() -> ::hypertrace::Filters)),
    );
    let signal_watcher = value(options.signal_watcher.as_ref())
        .unwrap_or_else(|| !body_scan::handles_signals(&func.body.stmts));

    quote! {
        #(#attrs)*
        #vis #sig {
            // `#[tokio::main] async fn main() {}` is not linted by `unused_async` either.
            #[allow(clippy::unused_async)]
            #inner_sig #body

            ::hypertrace::__private::run_main(
                ::hypertrace::__private::MainOptions {
                    service_name: #service_name,
                    config_file: #config_file,
                    tracing_subscriber: #tracing_subscriber,
                    package_name: ::core::env!("CARGO_PKG_NAME"),
                    flavor: ::hypertrace::__private::Flavor::#flavor,
                    worker_threads: #worker_threads,
                    signal_watcher: #signal_watcher,
                    filters: #filters,
                },
                #ident(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_kept_and_handed_to_run_main_with_the_options() {
        let out = expand(
            quote!(flavor = "current_thread", service_name = "s"),
            quote!(
                async fn main() -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        let file: syn::File = syn::parse2(out).unwrap();
        let syn::Item::Fn(main) = &file.items[0] else {
            panic!()
        };
        assert!(main.sig.asyncness.is_none());
        let text = main.block.to_token_stream().to_string();
        let order = [
            "async fn main ()",
            "run_main",
            "service_name : :: core :: option :: Option :: Some (\"s\")",
            "flavor : :: hypertrace :: __private :: Flavor :: CurrentThread",
            "worker_threads : :: core :: option :: Option :: None",
            "signal_watcher : true",
            "} , main () ,)",
        ];
        let positions: Vec<usize> = order.iter().map(|p| text.find(p).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    fn signal_watcher_of(args: TokenStream, item: TokenStream) -> bool {
        let text = expand(args, item).to_string();
        assert!(!text.contains("compile_error"), "{text}");
        if text.contains("signal_watcher : true") {
            true
        } else {
            assert!(text.contains("signal_watcher : false"), "{text}");
            false
        }
    }

    #[test]
    fn the_signal_watcher_is_off_when_main_handles_signals_or_says_so() {
        let plain = quote!(
            async fn main() {
                axum::serve(l, app).await.unwrap();
            }
        );
        let graceful = quote!(
            async fn main() {
                axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        tokio::signal::ctrl_c().await.ok();
                    })
                    .await
                    .unwrap();
            }
        );
        assert!(signal_watcher_of(TokenStream::new(), plain.clone()));
        assert!(!signal_watcher_of(TokenStream::new(), graceful.clone()));
        assert!(!signal_watcher_of(quote!(signal_watcher = false), plain));
        assert!(signal_watcher_of(quote!(signal_watcher = true), graceful));
    }

    #[test]
    fn the_apps_own_subscriber_is_an_error_unless_kept_on_purpose() {
        let item = quote!(
            async fn main() {
                tracing_subscriber::fmt::init();
            }
        );
        let text = expand(TokenStream::new(), item.clone()).to_string();
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("tracing_subscriber = false"), "{text}");
        // Next to the error, the expansion: the rest of the program still type-checks.
        assert!(text.contains("run_main"), "{text}");
        let text = expand(quote!(tracing_subscriber = false), item).to_string();
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn misuse_on_main_emits_a_valid_main_and_the_errors() {
        let out = expand(
            TokenStream::new(),
            quote!(
                async fn main(x: u8) {}
            ),
        );
        let text = out.to_string();
        assert!(text.starts_with("fn main () {"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
    }
}
