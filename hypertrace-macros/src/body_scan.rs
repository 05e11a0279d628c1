//! What the macros read in a function body, token by token (the body is never parsed as Rust):
//! - in `main`: the app's own tracing-subscriber installation, which would clash with the agent's,
//!   and the app's own signal handling, which the agent's signal watcher must leave alone;
//! - in a handler: `Self`, the sign of an associated function in an `impl` block.
//!
//! The scans look for names, so they see only what is written in the body itself, not what the
//! functions it calls do. The runtime covers the rest (see the README's set-up section).

use proc_macro2::{Delimiter, Ident, TokenStream, TokenTree};

/// The first call in `body` that installs a global tracing subscriber: `tracing_subscriber::fmt::init()`,
/// `tracing_subscriber::registry().with(..).init()`, `subscriber.try_init()`,
/// `tracing::subscriber::set_global_default(..)`. Returns the `init` / `try_init` /
/// `set_global_default` token, for the error to point at.
pub(crate) fn subscriber_init(body: &TokenStream) -> Option<Ident> {
    let tokens: Vec<TokenTree> = body.clone().into_iter().collect();
    // Idents of the current statement so far: `.init()` counts only after a subscriber-ish name,
    // not on any value that happens to have an `init` method.
    let mut statement_mentions_subscriber = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Punct(p) if p.as_char() == ';' => statement_mentions_subscriber = false,
            TokenTree::Group(g) => {
                if let Some(found) = subscriber_init(&g.stream()) {
                    return Some(found);
                }
                if g.delimiter() == Delimiter::Brace {
                    // A block ends a statement too (`if x { .. } fmt::init()` is two).
                    statement_mentions_subscriber = false;
                }
            }
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                let called = matches!(tokens.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                if called && name == "set_global_default" {
                    return Some(ident.clone());
                }
                if called
                    && (name == "init" || name == "try_init")
                    && statement_mentions_subscriber
                    && i > 0
                    && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.' || p.as_char() == ':')
                {
                    return Some(ident.clone());
                }
                if is_subscriber_name(&name) {
                    statement_mentions_subscriber = true;
                }
            }
            _ => {}
        }
    }
    None
}

fn is_subscriber_name(name: &str) -> bool {
    matches!(name, "tracing_subscriber" | "fmt" | "registry" | "Registry")
        || name.to_ascii_lowercase().contains("subscriber")
}

/// Whether `body` handles SIGINT/SIGTERM itself: a graceful shutdown (`with_graceful_shutdown`,
/// `hypertrace::shutdown_signal()`), tokio's signals (`tokio::signal`, `ctrl_c`, `SignalKind`), or
/// another signal crate (`signal_hook`, `ctrlc`).
pub(crate) fn handles_signals(body: &TokenStream) -> bool {
    let tokens: Vec<TokenTree> = body.clone().into_iter().collect();
    tokens.iter().enumerate().any(|(i, token)| match token {
        TokenTree::Group(g) => handles_signals(&g.stream()),
        TokenTree::Ident(ident) => {
            let name = ident.to_string();
            matches!(
                name.as_str(),
                "with_graceful_shutdown"
                    | "shutdown_signal"
                    | "ctrl_c"
                    | "SignalKind"
                    | "signal_hook"
                    | "signal_hook_tokio"
                    | "ctrlc"
            ) || (name == "signal" && i >= 3 && is_path_from(&tokens[..i], "tokio"))
        }
        _ => false,
    })
}

/// Whether `before` ends with `<krate> ::` (the path segment just before the current one).
fn is_path_from(before: &[TokenTree], krate: &str) -> bool {
    let n = before.len();
    matches!(&before[n - 1], TokenTree::Punct(p) if p.as_char() == ':')
        && matches!(&before[n - 2], TokenTree::Punct(p) if p.as_char() == ':')
        && matches!(&before[n - 3], TokenTree::Ident(i) if i == krate)
}

/// The first `Self` in `tokens`, outside the `impl` and `trait` blocks written inside them (whose
/// `Self` is their own).
pub(crate) fn self_type(tokens: &TokenStream) -> Option<Ident> {
    let mut after_impl_or_trait = false;
    for token in tokens.clone() {
        match token {
            TokenTree::Ident(ident) if ident == "Self" => return Some(ident),
            TokenTree::Ident(ident) if ident == "impl" || ident == "trait" => {
                after_impl_or_trait = true;
            }
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace && after_impl_or_trait => {
                after_impl_or_trait = false;
            }
            TokenTree::Group(g) => {
                if let Some(found) = self_type(&g.stream()) {
                    return Some(found);
                }
            }
            TokenTree::Punct(p) if p.as_char() == ';' => after_impl_or_trait = false,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn finds_the_common_subscriber_installations() {
        for body in [
            quote!(tracing_subscriber::fmt::init();),
            quote!(let x = 1; tracing_subscriber::fmt().with_target(false).init();),
            quote!(tracing_subscriber::registry().with(fmt::layer()).with(EnvFilter::from_default_env()).init();),
            quote!(fmt::init()),
            quote!(if verbose {
                tracing_subscriber::fmt().try_init().ok();
            }),
            quote!(let subscriber = FmtSubscriber::new(); tracing::subscriber::set_global_default(subscriber).expect("x");),
            quote!(my_subscriber.init();),
        ] {
            let found = subscriber_init(&body);
            assert!(
                found
                    .as_ref()
                    .is_some_and(|i| i == "init" || i == "try_init" || i == "set_global_default"),
                "{body}"
            );
        }
    }

    #[test]
    fn leaves_other_init_calls_alone() {
        for body in [
            quote!(env_logger::init(); db.init(); let app = App::init();),
            quote!(let fmt = 1; x.y(); pool.init();),
            quote!(tracing::subscriber::set_default(sub);),
            quote!(tracing_subscriber::registry(); state.init();),
        ] {
            assert!(subscriber_init(&body).is_none(), "{body}");
        }
    }

    #[test]
    fn sees_the_apps_own_signal_handling() {
        for body in [
            quote!(axum::serve(l, app).with_graceful_shutdown(shutdown()).await),
            quote!(tokio::select! { _ = tokio::signal::ctrl_c() => {} }),
            quote!(
                use tokio::signal::unix::{signal, SignalKind};
            ),
            quote!(let s = tokio::signal::unix::signal(k);),
            quote!(ctrlc::set_handler(|| {});),
            quote!(serve(hypertrace::shutdown_signal()).await;),
        ] {
            assert!(handles_signals(&body), "{body}");
        }
        assert!(!handles_signals(
            &quote!(axum::serve(listener, app).await.unwrap(); let signal = 3;)
        ));
    }

    #[test]
    fn finds_self_outside_nested_impls() {
        assert!(self_type(&quote!(State(s): State<Self>)).is_some());
        assert!(self_type(&quote!({ Self::helper().await })).is_some());
        assert!(self_type(&quote!({
            struct X;
            impl X {
                fn new() -> Self {
                    X
                }
            }
            X
        }))
        .is_none());
        assert!(self_type(&quote!({
            impl Trait for X {
                fn f() -> Self {
                    X
                }
            }
            Self::g()
        }))
        .is_some());
    }
}
