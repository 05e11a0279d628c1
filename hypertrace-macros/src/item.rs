//! The annotated function, parsed lazily: syn parses the attributes, the visibility and the signature;
//! the body stays a token stream, since neither attribute needs to look inside it and rust-analyzer
//! re-expands attributes on every keystroke (tokio-macros' `ItemFn` does the same).

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::token::Brace;
use syn::{braced, Attribute, Item, Signature, Type, Visibility};

/// `#[attrs] vis sig { body }`.
pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: FnBody,
}

/// `{ #![inner_attrs] stmts }`, with the statements unparsed.
pub(crate) struct FnBody {
    pub(crate) brace: Brace,
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) stmts: TokenStream,
}

impl Parse for FnItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts: TokenStream = content.parse()?;
        Ok(FnItem {
            attrs,
            vis,
            sig,
            body: FnBody {
                brace,
                inner_attrs,
                stmts,
            },
        })
    }
}

impl ToTokens for FnItem {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.body.to_tokens(tokens);
    }
}

impl ToTokens for FnBody {
    /// The body as written, inner attributes included.
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.brace.surround(tokens, |tokens| {
            for attr in &self.inner_attrs {
                attr.to_tokens(tokens);
            }
            self.stmts.to_tokens(tokens);
        });
    }
}

impl FnItem {
    /// The function with the parts removed that rustc would reject on its own (`const` on an `async
    /// fn`, an ABI, C variadics), used as the item emitted next to our errors: it keeps the IDE working
    /// without adding rustc's errors on top of ours.
    pub(crate) fn sanitized(&self) -> TokenStream {
        let mut sig = self.sig.clone();
        if sig.asyncness.is_some() {
            sig.constness = None;
            sig.abi = None;
        }
        if sig.variadic.is_some() {
            sig.variadic = None;
            // `fn f(a: u8, ...)`: drop the comma that preceded `...`.
            let inputs = std::mem::take(&mut sig.inputs);
            sig.inputs = inputs.into_iter().collect();
        }
        let FnItem {
            attrs, vis, body, ..
        } = self;
        quote!(#(#attrs)* #vis #sig #body)
    }
}

/// Parses the item an attribute is on: a function with a body, or an error that says what it is.
pub(crate) fn parse_fn(item: TokenStream, attribute: &str, wanted: &str) -> syn::Result<FnItem> {
    match syn::parse2::<FnItem>(item.clone()) {
        Ok(func) => Ok(func),
        Err(fn_error) => match syn::parse2::<Item>(item) {
            Ok(other) => Err(not_a_function(&other, attribute, wanted)),
            Err(_) => Err(fn_error),
        },
    }
}

fn not_a_function(item: &Item, attribute: &str, wanted: &str) -> syn::Error {
    fn span_of(a: &dyn ToTokens, b: &dyn ToTokens) -> TokenStream {
        let mut tokens = a.to_token_stream();
        b.to_tokens(&mut tokens);
        tokens
    }
    let (what, tokens): (&str, TokenStream) = match item {
        Item::Struct(i) => ("a struct", span_of(&i.struct_token, &i.ident)),
        Item::Enum(i) => ("an enum", span_of(&i.enum_token, &i.ident)),
        Item::Union(i) => ("a union", span_of(&i.union_token, &i.ident)),
        Item::Trait(i) => ("a trait", span_of(&i.trait_token, &i.ident)),
        Item::TraitAlias(i) => ("a trait alias", span_of(&i.trait_token, &i.ident)),
        Item::Impl(i) => ("an impl block", span_of(&i.impl_token, &i.self_ty)),
        Item::Mod(i) => ("a module", span_of(&i.mod_token, &i.ident)),
        Item::Const(i) => ("a const", span_of(&i.const_token, &i.ident)),
        Item::Static(i) => ("a static", span_of(&i.static_token, &i.ident)),
        Item::Type(i) => ("a type alias", span_of(&i.type_token, &i.ident)),
        Item::Use(i) => ("a use declaration", i.use_token.to_token_stream()),
        Item::Macro(i) => ("a macro invocation", i.mac.path.to_token_stream()),
        Item::ExternCrate(i) => ("an extern crate", span_of(&i.extern_token, &i.ident)),
        Item::ForeignMod(i) => ("an extern block", i.abi.to_token_stream()),
        _ => ("an item without a body", item.to_token_stream()),
    };
    let mut msg = format!("{attribute} goes on {wanted}, not on {what}");
    if let Item::Impl(_) = item {
        msg.push_str(
            "; handlers are free functions: move them out of the impl block and annotate each one",
        );
    }
    syn::Error::new_spanned(tokens, msg)
}

/// Whether an attribute is `#[krate::name]` for one of `crates` (with or without a leading `::`).
pub(crate) fn attribute_is(attr: &Attribute, crates: &[&str], name: &str) -> bool {
    let segments = &attr.path().segments;
    segments.len() == 2
        && crates.iter().any(|krate| segments[0].ident == krate)
        && segments[1].ident == name
}

/// Whether a type mentions `impl Trait` anywhere (in which case it can't be written in a `let`).
pub(crate) fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Array(t) => contains_impl_trait(&t.elem),
        Type::Ptr(t) => contains_impl_trait(&t.elem),
        Type::Reference(t) => contains_impl_trait(&t.elem),
        Type::Slice(t) => contains_impl_trait(&t.elem),
        Type::Paren(t) => contains_impl_trait(&t.elem),
        Type::Group(t) => contains_impl_trait(&t.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Path(t) => {
            t.qself.as_ref().is_some_and(|q| contains_impl_trait(&q.ty))
                || t.path.segments.iter().any(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().any(|arg| match arg {
                            syn::GenericArgument::Type(t) => contains_impl_trait(t),
                            syn::GenericArgument::AssocType(t) => contains_impl_trait(&t.ty),
                            _ => false,
                        })
                    }
                    syn::PathArguments::Parenthesized(args) => {
                        args.inputs.iter().any(contains_impl_trait)
                            || matches!(&args.output, syn::ReturnType::Type(_, t) if contains_impl_trait(t))
                    }
                    syn::PathArguments::None => false,
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> FnItem {
        syn::parse2(tokens).unwrap()
    }

    #[test]
    fn keeps_the_body_as_tokens() {
        let func = parse(quote!(
            /// doc
            pub async fn f(a: u8) -> u8 {
                #![allow(unused)]
                let b = a;
                b
            }
        ));
        assert_eq!(func.attrs.len(), 1);
        assert_eq!(func.body.inner_attrs.len(), 1);
        assert_eq!(func.body.stmts.to_string(), "let b = a ; b");
        assert_eq!(
            func.to_token_stream().to_string(),
            quote!(
                #[doc = r" doc"]
                pub async fn f(a: u8) -> u8 {
                    #![allow(unused)]
                    let b = a;
                    b
                }
            )
            .to_string()
        );
    }

    #[test]
    fn sanitized_drops_what_rustc_would_reject() {
        let func = parse(quote!(
            const async extern "C" fn f(a: u8, _rest: ...) {}
        ));
        let sanitized: syn::ItemFn = syn::parse2(func.sanitized()).unwrap();
        assert!(sanitized.sig.constness.is_none());
        assert!(sanitized.sig.abi.is_none());
        assert!(sanitized.sig.variadic.is_none());
        assert_eq!(sanitized.sig.inputs.len(), 1);
        assert!(!sanitized.sig.inputs.trailing_punct());
    }

    #[test]
    fn names_what_is_not_a_function() {
        let err = parse_fn(
            quote!(
                struct S;
            ),
            "#[a]",
            "an `async fn`",
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "#[a] goes on an `async fn`, not on a struct"
        );
    }

    #[test]
    fn recognises_attributes_by_crate_and_name() {
        let attr: Attribute = syn::parse_quote!(#[tokio::main]);
        assert!(attribute_is(&attr, &["tokio"], "main"));
        assert!(!attribute_is(&attr, &["tokio"], "test"));
        let attr: Attribute = syn::parse_quote!(#[main]);
        assert!(!attribute_is(&attr, &["tokio"], "main"));
    }

    #[test]
    fn finds_impl_trait() {
        let ty: Type = syn::parse_quote!(Option<Box<impl Fn()>>);
        assert!(contains_impl_trait(&ty));
        let ty: Type = syn::parse_quote!(Option<Box<dyn Fn()>>);
        assert!(!contains_impl_trait(&ty));
    }
}
