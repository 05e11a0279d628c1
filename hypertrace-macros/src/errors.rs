//! Collecting errors: a misused attribute usually has more than one thing wrong, and reporting them all
//! at once saves the user a compile-fix-compile round per mistake (serde_derive's `Ctxt` pattern).

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Accumulates the errors found while checking one attribute and its item.
///
/// [`Ctxt::check`] must be called before it is dropped: that is the one place where the errors become a
/// `syn::Error`, so an error can't be recorded and then silently forgotten.
pub(crate) struct Ctxt {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error whose span covers `tokens` (first to last token).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, msg: M) {
        self.syn_error(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    /// Records an error at `span`.
    pub(crate) fn error_at<M: Display>(&self, span: Span, msg: M) {
        self.syn_error(syn::Error::new(span, msg));
    }

    /// Records an error produced by syn (a parse error, for instance).
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check()")
            .push(err);
    }

    /// Whether an error has been recorded so far.
    pub(crate) fn has_errors(&self) -> bool {
        self.errors
            .borrow()
            .as_ref()
            .is_some_and(|errors| !errors.is_empty())
    }

    /// Consumes the context: `Err` with every recorded error combined, or `Ok` when there was none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().expect("Ctxt checked twice");
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for err in errors {
            combined.combine(err);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("hypertrace-macros bug: Ctxt dropped without calling check()");
        }
    }
}

/// The item to emit plus the errors: keeping an item in the output (tokio's `token_stream_with_error`)
/// lets IDE completion, go-to-definition and the other uses of the function keep working while the
/// attribute is being fixed.
pub(crate) fn token_stream_with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}
