//! `#[hypertrace::handler]`: turns an axum handler `async fn` into a unit struct of the same name that
//! implements axum's `Handler` for every router state, wrapping each call in the agent's span.
//!
//! A plain generic wrapper `fn` can't be written (it would have to name the router state), while an impl
//! `impl<S, M> Handler<(M, marker), S> for create_user` lets axum infer the state exactly as it does for
//! a function. `post(create_user)` keeps working because a unit struct's name is also a value.
//!
//! ```text
//! #[hypertrace::handler(request_body = false)]
//! /// docs
//! pub async fn create_user(State(db): State<Db>, Json(u): Json<NewUser>) -> Result<Json<User>, ApiError> { body }
//! ```
//! becomes
//! ```text
//! /// docs
//! #[allow(non_camel_case_types)]
//! #[derive(Clone, Copy, Debug)]
//! pub struct create_user;
//!
//! impl<__S, __M> Handler<(__M, create_user), __S> for create_user
//! where
//!     __S: Send + Sync + 'static,
//!     State<Db>: FromRequestParts<__S> + Send,    // spanned on the user's types, so an extractor that
//!     Json<NewUser>: FromRequest<__S, __M> + Send, // doesn't implement the trait is pointed at
//! {
//!     type Future = Pin<Box<dyn Future<Output = Response> + Send>>;
//!     fn call(self, __ht_req: Request, __ht_state: __S) -> Self::Future {
//!         async fn create_user(State(db): State<Db>, Json(u): Json<NewUser>) -> Result<..> { body }
//!         static __HT_OPTIONS: HandlerOptions = HandlerOptions { request_body: Some(false), .. };
//!         Box::pin(run_handler(&__HT_OPTIONS, __ht_req, move |__ht_req| async move {
//!             let (mut __ht_parts, __ht_body) = __ht_req.into_parts();
//!             let __ht_arg0 = match <State<Db> as FromRequestParts<__S>>::from_request_parts(&mut __ht_parts, &__ht_state).await {
//!                 Ok(value) => value,
//!                 Err(rejection) => return IntoResponse::into_response(rejection),
//!             };
//!             let __ht_req = Request::from_parts(__ht_parts, __ht_body);
//!             let __ht_arg1 = match <Json<NewUser> as FromRequest<__S, __M>>::from_request(__ht_req, &__ht_state).await { .. };
//!             let __ht_response = create_user(__ht_arg0, __ht_arg1).await;
//!             IntoResponse::into_response(__ht_response) // spanned on the return type
//!         }))
//!     }
//! }
//! ```
//! The user's function is kept unchanged (same name, so `#[tracing::instrument]` and
//! `#[axum::debug_handler]` on it keep working and naming it) as an item nested in `call`.

use proc_macro2::{Delimiter, Group, Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ReturnType, Type};

use crate::args::{self, option_tokens, value, Args, HandlerOptions, HANDLER_ATTRIBUTE};
use crate::errors::{token_stream_with_error, Ctxt};
use crate::item::{self, contains_impl_trait, FnItem};

/// axum implements `Handler` for functions of up to 16 extractors; so do we.
const MAX_EXTRACTORS: usize = 16;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let Args { options, cx } = args::parse::<HandlerOptions>(args);
    let func = match item::parse_fn(
        item.clone(),
        HANDLER_ATTRIBUTE,
        "an `async fn` (an axum handler)",
    ) {
        Ok(func) => func,
        Err(err) => {
            cx.syn_error(err);
            return with_errors(item, cx);
        }
    };
    let options_ok = !cx.has_errors();
    let signature_ok = check_signature(&cx, &func);
    if options_ok && signature_ok {
        cx.check().expect("no errors were recorded");
        return expand_handler(&func, &options);
    }
    // Next to the errors: the expansion (with the valid options) when only options were wrong, else
    // the function as written, which rustc accepts as a plain function.
    let fallback = if signature_ok {
        expand_handler(&func, &options)
    } else {
        func.sanitized()
    };
    with_errors(fallback, cx)
}

fn with_errors(item: TokenStream, cx: Ctxt) -> TokenStream {
    match cx.check() {
        Ok(()) => item,
        Err(err) => token_stream_with_error(item, err),
    }
}

/// Records every reason why the function can't be an axum handler; `true` when there is none.
fn check_signature(cx: &Ctxt, func: &FnItem) -> bool {
    let mut ok = true;
    let mut error = |tokens: TokenStream, msg: String| {
        ok = false;
        cx.error_spanned_by(tokens, msg);
    };
    let sig = &func.sig;
    for attr in &func.attrs {
        if is_handler_attribute(attr) {
            error(
                attr.to_token_stream(),
                format!("{HANDLER_ATTRIBUTE} is given twice: remove this one"),
            );
        }
    }
    if let Some(constness) = &sig.constness {
        error(
            constness.to_token_stream(),
            "a handler can't be a `const fn`: remove `const`".into(),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        error(
            unsafety.to_token_stream(),
            "a handler can't be an `unsafe fn` (axum calls it as a safe function): remove `unsafe` and use an `unsafe { }` block inside if needed".into(),
        );
    }
    if let Some(abi) = &sig.abi {
        error(
            abi.to_token_stream(),
            "a handler can't have an ABI: remove the `extern`".into(),
        );
    }
    if sig.asyncness.is_none() {
        error(
            sig.fn_token.to_token_stream(),
            format!("{HANDLER_ATTRIBUTE} goes on an `async fn`: add `async` before `fn`"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        error(
            sig.generics.to_token_stream(),
            "a handler can't be generic: use concrete extractor types (the handler already works with any router state, and `State<T>` takes the state's concrete type)".into(),
        );
    }
    if let Some(variadic) = &sig.variadic {
        error(
            variadic.to_token_stream(),
            "a handler can't be variadic: remove the `...`".into(),
        );
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => error(
                receiver.to_token_stream(),
                "a handler can't take `self`: axum calls it as a free function; move it out of the `impl` block and pass what it needs through `State`".into(),
            ),
            FnArg::Typed(pat_type) => match &*pat_type.ty {
                Type::Reference(reference) => error(
                    reference.to_token_stream(),
                    "an extractor can't be a reference (it is created from the request for each call): take an owned type, e.g. `String` instead of `&str`".into(),
                ),
                ty if contains_impl_trait(ty) => error(
                    ty.to_token_stream(),
                    "an extractor can't be an `impl Trait` (axum needs to name its type): use a concrete type".into(),
                ),
                _ => {}
            },
        }
    }
    if sig.inputs.len() > MAX_EXTRACTORS {
        let extra: TokenStream = sig
            .inputs
            .iter()
            .skip(MAX_EXTRACTORS)
            .map(ToTokens::to_token_stream)
            .collect();
        error(
            extra,
            format!(
                "a handler takes at most {MAX_EXTRACTORS} extractors (axum's limit) and this one takes {}: group some of them into a struct that implements `FromRequestParts`",
                sig.inputs.len()
            ),
        );
    }
    ok
}

/// This attribute again: `#[hypertrace::handler]` (or through the macros crate's own name).
fn is_handler_attribute(attr: &Attribute) -> bool {
    item::attribute_is(attr, &["hypertrace", "hypertrace_macros"], "handler")
}

/// Where each of the user's attributes goes.
struct SplitAttrs<'a> {
    /// Docs, `#[deprecated]`, `#[cfg]`, lint levels: they describe the handler as an item.
    on_struct: Vec<&'a Attribute>,
    /// `#[cfg]`: the impl must come and go with the struct.
    on_impl: Vec<&'a Attribute>,
    /// Everything that acts on the function itself (`#[tracing::instrument]`, `#[axum::debug_handler]`,
    /// `#[cfg_attr]`, lint levels).
    on_fn: Vec<&'a Attribute>,
}

fn split_attrs(attrs: &[Attribute]) -> SplitAttrs<'_> {
    let mut split = SplitAttrs {
        on_struct: Vec::new(),
        on_impl: Vec::new(),
        on_fn: Vec::new(),
    };
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("doc") || path.is_ident("deprecated") {
            split.on_struct.push(attr);
        } else if path.is_ident("cfg") {
            split.on_struct.push(attr);
            split.on_impl.push(attr);
        } else if ["allow", "warn", "deny", "forbid"]
            .iter()
            .any(|lint| path.is_ident(lint))
        {
            split.on_struct.push(attr);
            split.on_fn.push(attr);
        } else {
            split.on_fn.push(attr);
        }
    }
    split
}

fn expand_handler(func: &FnItem, options: &HandlerOptions) -> TokenStream {
    let attrs = split_attrs(&func.attrs);
    let on_struct = &attrs.on_struct;
    let on_impl = &attrs.on_impl;
    let on_fn = &attrs.on_fn;
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let sig = &func.sig;
    let body = &func.body;

    let axum = quote!(::hypertrace::__private::axum);
    let types: Vec<&Type> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat_type) => Some(&*pat_type.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let arg_idents: Vec<Ident> = (0..types.len())
        .map(|i| format_ident!("__ht_arg{}", i))
        .collect();

    // The return value, and the conversion whose `IntoResponse` bound rustc checks, spanned on the
    // declared return type so that a type that isn't a response is reported there.
    let return_span = match &sig.output {
        ReturnType::Default => ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let response = Ident::new("__ht_response", return_span);
    let into_response = quote_spanned! {return_span=>
        #axum::response::IntoResponse::into_response(#response)
    };

    let (impl_generics, marker, where_clauses, state_param, extract) = match types.split_last() {
        None => (
            quote!(<__S>),
            quote!(()),
            TokenStream::new(),
            quote!(_),
            TokenStream::new(),
        ),
        Some((last, parts)) => {
            let parts_idents = &arg_idents[..parts.len()];
            let last_ident = &arg_idents[parts.len()];
            let mut where_clauses = TokenStream::new();
            for ty in parts {
                where_clauses.extend(quote_spanned! {ty.span()=>
                    #ty: #axum::extract::FromRequestParts<__S> + ::core::marker::Send,
                });
            }
            where_clauses.extend(quote_spanned! {last.span()=>
                #last: #axum::extract::FromRequest<__S, __M> + ::core::marker::Send,
            });
            let rejected = quote! {
                ::core::result::Result::Err(rejection) => {
                    return #axum::response::IntoResponse::into_response(rejection);
                }
            };
            let extract_parts = if parts.is_empty() {
                TokenStream::new()
            } else {
                quote! {
                    let (mut __ht_parts, __ht_body) = __ht_req.into_parts();
                    #(
                        let #parts_idents = match <#parts as #axum::extract::FromRequestParts<__S>>::from_request_parts(&mut __ht_parts, &__ht_state).await {
                            ::core::result::Result::Ok(value) => value,
                            #rejected
                        };
                    )*
                    let __ht_req = #axum::extract::Request::from_parts(__ht_parts, __ht_body);
                }
            };
            let extract = quote! {
                #extract_parts
                let #last_ident = match <#last as #axum::extract::FromRequest<__S, __M>>::from_request(__ht_req, &__ht_state).await {
                    ::core::result::Result::Ok(value) => value,
                    #rejected
                };
            };
            (
                quote!(<__S, __M>),
                quote!(__M),
                where_clauses,
                quote!(__ht_state),
                extract,
            )
        }
    };
    let request_param = if types.is_empty() {
        quote!(_)
    } else {
        quote!(__ht_req)
    };
    let name = option_tokens(value(options.name.as_ref()));
    let request_headers = option_tokens(value(options.request_headers.as_ref()));
    let response_headers = option_tokens(value(options.response_headers.as_ref()));
    let request_body = option_tokens(value(options.request_body.as_ref()));
    let response_body = option_tokens(value(options.response_body.as_ref()));

    // Spanned on the function's name: "future cannot be sent between threads safely" (a `!Send` value
    // held across an `.await` in the body) is reported on the handler, with rustc's notes pointing
    // at the value and the `.await`.
    let future = quote_spanned! {ident.span()=>
        move |#request_param: #axum::extract::Request| async move {
            #extract
            let #response = #ident(#(#arg_idents),*).await;
            #into_response
        }
    };

    let run = quote_spanned! {ident.span()=>
        ::hypertrace::__private::run_handler(&__HT_OPTIONS, __ht_req, #future)
    };

    // The struct and the impl are spanned on the signature: when axum reports that the handler doesn't
    // implement `Handler` (an extractor that doesn't fit), rustc's notes then show the user's function
    // and its extractors rather than the attribute. (An item's span runs from its first token to its
    // last, hence the span set on the impl body's braces.)
    let struct_decl = quote_spanned! {ident.span()=>
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #ident;
    };
    let impl_header = quote_spanned! {sig.fn_token.span=>
        #[allow(deprecated)]
        impl #impl_generics #axum::handler::Handler<(#marker, #ident), __S> for #ident
        where
            __S: ::core::marker::Send + ::core::marker::Sync + 'static,
            #where_clauses
    };
    let impl_body = quote! {
        type Future = ::core::pin::Pin<::std::boxed::Box<
            dyn ::core::future::Future<Output = #axum::response::Response> + ::core::marker::Send,
        >>;

        fn call(self, __ht_req: #axum::extract::Request, #state_param: __S) -> Self::Future {
            #(#on_fn)*
            #sig #body

            static __HT_OPTIONS: ::hypertrace::__private::HandlerOptions =
                ::hypertrace::__private::HandlerOptions {
                    name: #name,
                    request_headers: #request_headers,
                    response_headers: #response_headers,
                    request_body: #request_body,
                    response_body: #response_body,
                };

            ::std::boxed::Box::pin(#run)
        }
    };
    let mut impl_body = Group::new(Delimiter::Brace, impl_body);
    impl_body.set_span(sig.paren_token.span.close());

    quote! {
        #(#on_struct)*
        #struct_decl

        #(#on_impl)*
        #impl_header #impl_body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_ok(args: TokenStream, item: TokenStream) -> syn::File {
        let out = expand(args, item);
        assert!(!out.to_string().contains("compile_error"), "{out}");
        syn::parse2(out).unwrap()
    }

    #[test]
    fn a_struct_and_its_handler_impl_for_every_arity() {
        for item in [
            quote!(
                async fn h() {}
            ),
            quote!(
                async fn h(a: A) -> R {
                    x
                }
            ),
            quote!(
                pub async fn h(a: A, b: B, c: C) -> R {
                    x
                }
            ),
        ] {
            let file = expand_ok(TokenStream::new(), item);
            assert!(matches!(&file.items[0], syn::Item::Struct(s) if s.ident == "h"));
            let syn::Item::Impl(imp) = &file.items[1] else {
                panic!("no impl")
            };
            let params = imp.generics.params.len();
            let arity = imp.generics.where_clause.as_ref().unwrap().predicates.len() - 1;
            // `__M` only when there is a last extractor to constrain it.
            assert_eq!(params, if arity == 0 { 1 } else { 2 });
        }
    }

    #[test]
    fn attributes_are_split_between_the_struct_and_the_function() {
        let file = expand_ok(
            TokenStream::new(),
            quote!(
                /// doc
                #[cfg(all())]
                #[allow(unused)]
                #[tracing::instrument]
                async fn h() {}
            ),
        );
        let syn::Item::Struct(s) = &file.items[0] else {
            panic!()
        };
        let names: Vec<String> = s
            .attrs
            .iter()
            .map(|a| a.path().to_token_stream().to_string())
            .collect();
        assert!(names.starts_with(&["doc".into(), "cfg".into(), "allow".into()]));
        let syn::Item::Impl(imp) = &file.items[1] else {
            panic!()
        };
        assert!(imp.attrs.iter().any(|a| a.path().is_ident("cfg")));
        let text = imp.to_token_stream().to_string();
        assert!(
            text.contains("# [tracing :: instrument] async fn h"),
            "{text}"
        );
    }

    #[test]
    fn options_reach_the_runtime() {
        let file = expand_ok(
            quote!(name = "n", request_body = false),
            quote!(
                async fn h() {}
            ),
        );
        let text = file.to_token_stream().to_string();
        assert!(text.contains("name : :: core :: option :: Option :: Some (\"n\")"));
        assert!(text.contains("request_body : :: core :: option :: Option :: Some (false)"));
        assert!(text.contains("response_body : :: core :: option :: Option :: None"));
    }

    #[test]
    fn misuse_keeps_the_function_next_to_the_errors() {
        let out = expand(
            TokenStream::new(),
            quote!(
                fn h<T>(t: T) {}
            ),
        );
        let text = out.to_string();
        assert!(text.starts_with("fn h < T > (t : T) { }"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 2, "{text}");
    }
}
