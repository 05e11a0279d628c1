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
//! const _: () = {
//!     #[allow(clippy::unused_async)]
//!     async fn create_user(State(db): State<Db>, Json(u): Json<NewUser>) -> Result<..> { body }
//!
//!     impl<__S, __M> Handler<(__M, create_user), __S> for create_user
//!     where
//!         __S: Send + Sync + 'static,
//!         State<Db>: FromRequestParts<__S> + Send,    // spanned on the user's types, so an extractor that
//!         Json<NewUser>: FromRequest<__S, __M> + Send, // doesn't implement the trait is pointed at
//!     {
//!         type Future = Pin<Box<dyn Future<Output = Response> + Send>>;
//!         fn call(self, __ht_req: Request, __ht_state: __S) -> Self::Future {
//!             static __HT_OPTIONS: HandlerOptions = HandlerOptions { request_body: Some(false), .. };
//!             Box::pin(run_handler(&__HT_OPTIONS, __ht_req, move |__ht_req| async move {
//!                 let (mut __ht_parts, __ht_body) = __ht_req.into_parts();
//!                 let __ht_arg0 = match <State<Db> as FromRequestParts<__S>>::from_request_parts(&mut __ht_parts, &__ht_state).await {
//!                     Ok(value) => value,
//!                     Err(rejection) => return IntoResponse::into_response(rejection),
//!                 };
//!                 let __ht_req = Request::from_parts(__ht_parts, __ht_body);
//!                 let __ht_arg1 = match <Json<NewUser> as FromRequest<__S, __M>>::from_request(__ht_req, &__ht_state).await { .. };
//!                 let __ht_response = create_user(__ht_arg0, __ht_arg1).await;
//!                 IntoResponse::into_response(__ht_response) // spanned on the return type
//!             }))
//!         }
//!     }
//!
//!     // For the app's tests: `create_user::direct(state, json).await` calls the function itself.
//!     impl create_user { pub async fn direct(__ht_arg0: State<Db>, __ht_arg1: Json<NewUser>) -> Result<..> { .. } }
//!     // (A private handler also dereferences to a function pointer: `create_user(state, json).await`.)
//!     impl HandlerStruct for create_user {}
//! };
//!
//! // Valid in an `impl` block too, where it fails with the macro's message (see `macro_checks.rs`).
//! fn __hypertrace_handler_probe_create_user() { let create_user = unreachable!(); assert_handler_struct(create_user); }
//! ```
//! The user's function is kept unchanged (same name, so `#[tracing::instrument]` and
//! `#[axum::debug_handler]` on it keep working and naming it) as an item of the block.

use proc_macro2::{Delimiter, Group, Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ReturnType, Type};

use crate::args::{self, option_tokens, value, Args, HandlerOptions, HANDLER_ATTRIBUTE};
use crate::body_scan;
use crate::errors::{token_stream_with_error, Ctxt};
use crate::item::{self, contains_impl_trait, FnItem};

/// An associated function can't be a handler: the macro turns the function into a struct, which an
/// `impl` block can't hold. Also said in the README for the case the macro can't see (no `Self`).
fn in_impl_block_message(name: &Ident) -> String {
    format!("{HANDLER_ATTRIBUTE} goes on a free function, and this one is inside an `impl` block (it uses `Self`): move `{name}` out of the `impl` (to the module, or a `mod` of its own), write the type's name instead of `Self`, and route it as `get({name})` instead of `get(Type::{name})`")
}

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
    // A receiver has been reported above. Without one, `Self` is what shows that the function is an
    // associated function: reported here, instead of rustc's errors about the generated struct.
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    if !has_receiver {
        let self_type = body_scan::self_type(&sig.to_token_stream())
            .or_else(|| body_scan::self_type(&func.body.stmts));
        if let Some(self_type) = self_type {
            error(
                self_type.to_token_stream(),
                in_impl_block_message(&sig.ident),
            );
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

    let direct_call = direct_call(func, &types, &arg_idents);

    // Inside an `impl` block, rustc rejects the struct (and only says so in its own words); this
    // function is valid there too, and its check then fails with the macro's message. `let #ident`
    // is a pattern naming the unit struct where the struct exists, and else a new variable of the
    // diverging expression's fallback type, which isn't a handler struct.
    let probe_name = format_ident!("__hypertrace_handler_probe_{}", ident);
    let probe = quote_spanned! {ident.span()=>
        #(#on_impl)*
        #[doc(hidden)]
        #[allow(dead_code, deprecated, non_snake_case, unreachable_code, unused_variables, clippy::diverging_sub_expression)]
        fn #probe_name() {
            let #ident = ::core::unreachable!();
            ::hypertrace::__private::assert_handler_struct(#ident);
        }
    };

    // The user's function sits in the block with the impls: under its own name (so that
    // `#[tracing::instrument]` and `#[axum::debug_handler]` on it keep working and naming it), which
    // in the block's value namespace shadows the struct's value, while `add` as a type is still the
    // struct. (A plain axum handler isn't linted by `unused_async` because it is used as a value;
    // this one is called, so the lint is silenced to match.)
    quote! {
        #(#on_struct)*
        #struct_decl

        #(#on_impl)*
        #[allow(deprecated)]
        const _: () = {
            #(#on_fn)*
            #[allow(clippy::unused_async)]
            #sig #body

            #impl_header #impl_body

            #direct_call

            impl ::hypertrace::__private::HandlerStruct for #ident {}
        };

        #probe
    }
}

/// The user's function, called directly (no span: there is no request), for the app's own tests.
///
/// `add::direct(Path((2, 3))).await`, for every handler: same arguments, same output.
///
/// `add(Path((2, 3))).await` too, when the handler is private to its module (the usual case for the
/// handlers a module routes and tests): a call auto-dereferences its callee, and the struct
/// dereferences to a function pointer that calls the user's function, boxing its future (whose
/// type can't be named; an `impl Trait` return type can't be either, so that call then gives the
/// `axum::response::Response` it makes). For a `pub` or `pub(crate)` handler the pointer's type would
/// name the argument types in a public impl, which rustc rejects (E0446) as soon as one of them is
/// less visible than the handler, so those get `direct` only.
fn direct_call(func: &FnItem, types: &[&Type], arg_idents: &[Ident]) -> TokenStream {
    let axum = quote!(::hypertrace::__private::axum);
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let direct_output = match &func.sig.output {
        ReturnType::Default => TokenStream::new(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let direct = quote! {
        impl #ident {
            /// Calls the handler's function directly, as the unannotated function would be called:
            /// no request, so no span. For the app's tests.
            #[allow(dead_code, private_interfaces, clippy::unused_async)]
            #vis async fn direct(#(#arg_idents: #types),*) #direct_output {
                #ident(#(#arg_idents),*).await
            }
        }
    };
    if !matches!(vis, syn::Visibility::Inherited) {
        return direct;
    }
    let (output, call) = match &func.sig.output {
        ReturnType::Default => (quote!(()), quote!(#ident(#(#arg_idents),*))),
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => (
            quote!(#axum::response::Response),
            quote!(async move {
                #axum::response::IntoResponse::into_response(#ident(#(#arg_idents),*).await)
            }),
        ),
        ReturnType::Type(_, ty) => (quote!(#ty), quote!(#ident(#(#arg_idents),*))),
    };
    let fn_type = quote! {
        fn(#(#types),*) -> ::core::pin::Pin<::std::boxed::Box<
            dyn ::core::future::Future<Output = #output> + ::core::marker::Send + 'static,
        >>
    };
    // Spanned on the name, like the future in `call`: a future that isn't `Send` is reported on the
    // handler.
    let boxed = quote_spanned! {ident.span()=> ::std::boxed::Box::pin(#call) };
    quote! {
        #direct

        #[allow(clippy::type_complexity)]
        const __HT_DIRECT: #fn_type = {
            fn __ht_direct(#(#arg_idents: #types),*) -> ::core::pin::Pin<::std::boxed::Box<
                dyn ::core::future::Future<Output = #output> + ::core::marker::Send + 'static,
            >> {
                #boxed
            }
            __ht_direct
        };

        impl ::core::ops::Deref for #ident {
            #[allow(clippy::type_complexity)]
            type Target = #fn_type;

            fn deref(&self) -> &Self::Target {
                &__HT_DIRECT
            }
        }
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

    /// The items of the `const _: () = { .. };` block that holds the function and the impls.
    fn block_items(file: &syn::File) -> (&syn::ItemConst, Vec<&syn::Item>) {
        let syn::Item::Const(block) = &file.items[1] else {
            panic!("no const block")
        };
        let syn::Expr::Block(expr) = &*block.expr else {
            panic!("not a block")
        };
        let items = expr
            .block
            .stmts
            .iter()
            .filter_map(|stmt| match stmt {
                syn::Stmt::Item(item) => Some(item),
                _ => None,
            })
            .collect();
        (block, items)
    }

    fn handler_impl<'a>(items: &[&'a syn::Item]) -> &'a syn::ItemImpl {
        items
            .iter()
            .find_map(|item| match item {
                syn::Item::Impl(imp)
                    if imp.trait_.as_ref().is_some_and(|(_, path, _)| {
                        path.segments.last().unwrap().ident == "Handler"
                    }) =>
                {
                    Some(imp)
                }
                _ => None,
            })
            .expect("no Handler impl")
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
            let (_, items) = block_items(&file);
            let imp = handler_impl(&items);
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
        let (block, _) = block_items(&file);
        assert!(block.attrs.iter().any(|a| a.path().is_ident("cfg")));
        let text = block.to_token_stream().to_string();
        assert!(
            text.contains(
                "# [tracing :: instrument] # [allow (clippy :: unused_async)] async fn h"
            ),
            "{text}"
        );
        // The probe comes and goes with the struct too.
        let syn::Item::Fn(probe) = &file.items[2] else {
            panic!("no probe")
        };
        assert!(probe.attrs.iter().any(|a| a.path().is_ident("cfg")));
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
    fn a_private_handler_dereferences_to_a_function_and_every_handler_has_direct() {
        let private = expand_ok(
            TokenStream::new(),
            quote!(
                async fn h(a: A) -> R {
                    x
                }
            ),
        );
        let public = expand_ok(
            TokenStream::new(),
            quote!(
                pub async fn h(a: A) -> impl IntoResponse {
                    x
                }
            ),
        );
        let derefs = |file: &syn::File| {
            let (_, items) = block_items(file);
            items.iter().any(|item| {
                matches!(item, syn::Item::Impl(imp) if imp.trait_.as_ref().is_some_and(|(_, p, _)| p.segments.last().unwrap().ident == "Deref"))
            })
        };
        let direct = |file: &syn::File| {
            let (_, items) = block_items(file);
            items.iter().any(|item| {
                matches!(item, syn::Item::Impl(imp) if imp.trait_.is_none()
                    && imp.to_token_stream().to_string().contains("async fn direct (__ht_arg0 : A)"))
            })
        };
        assert!(derefs(&private) && direct(&private));
        assert!(!derefs(&public) && direct(&public));
    }

    #[test]
    fn self_marks_an_associated_function() {
        let out = expand(
            TokenStream::new(),
            quote!(
                async fn h(State(s): State<Self>) {}
            ),
        )
        .to_string();
        assert!(out.starts_with("async fn h"), "{out}");
        assert!(out.contains("inside an `impl` block"), "{out}");
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
