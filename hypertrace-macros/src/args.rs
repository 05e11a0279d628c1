//! The options of both attributes: `#[hypertrace::main(service_name = "checkout", ...)]` and
//! `#[hypertrace::handler(request_body = false, ...)]`.
//!
//! One `Parse` implementation ([`Args`]) reads the comma-separated `key = value` list for either
//! attribute; what differs per attribute (its keys, their value types) is an [`Options`] implementation
//! that recognises its keys with `custom_keyword!` + `lookahead1`. Errors are collected in a [`Ctxt`]
//! rather than returned, so that one pass reports every bad option, each spanned on its own token.

use std::fmt::Write as _;

use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Lookahead1, Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

use crate::errors::Ctxt;

pub(crate) mod kw {
    // #[hypertrace::main]
    syn::custom_keyword!(service_name);
    syn::custom_keyword!(config);
    syn::custom_keyword!(tracing_subscriber);
    syn::custom_keyword!(flavor);
    syn::custom_keyword!(worker_threads);
    syn::custom_keyword!(signal_watcher);
    syn::custom_keyword!(filters);
    // #[hypertrace::handler]
    syn::custom_keyword!(name);
    syn::custom_keyword!(request_headers);
    syn::custom_keyword!(response_headers);
    syn::custom_keyword!(request_body);
    syn::custom_keyword!(response_body);
}

pub(crate) const MAIN_ATTRIBUTE: &str = "#[hypertrace::main]";
pub(crate) const HANDLER_ATTRIBUTE: &str = "#[hypertrace::handler]";
const MAIN_KEYS: &[&str] = &[
    "service_name",
    "config",
    "tracing_subscriber",
    "flavor",
    "worker_threads",
    "signal_watcher",
    "filters",
];
const HANDLER_KEYS: &[&str] = &[
    "name",
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
];

/// One option as written: where its key is, and its value (`None` when the value was invalid, which
/// has already been reported).
pub(crate) struct Setting<T> {
    pub(crate) key_span: Span,
    pub(crate) value: Option<T>,
}

/// The value of an option, if it was given and valid.
pub(crate) fn value<T: Clone>(setting: Option<&Setting<T>>) -> Option<T> {
    setting.and_then(|s| s.value.clone())
}

/// An option's value as the generated code passes it to the runtime: `Some(value)` or `None`.
pub(crate) fn option_tokens<T: ToTokens>(value: Option<T>) -> proc_macro2::TokenStream {
    match value {
        Some(value) => quote::quote!(::core::option::Option::Some(#value)),
        None => quote::quote!(::core::option::Option::None),
    }
}

/// The set of options of one attribute.
pub(crate) trait Options: Default {
    /// The attribute, as the user writes it, for messages.
    const ATTRIBUTE: &'static str;
    /// Its option keys, for the "unknown option" message.
    const KEYS: &'static [&'static str];
    /// The other attribute and its keys, to tell a user who put an option on the wrong attribute.
    const OTHER: (&'static str, &'static [&'static str]);

    /// Parses one `key = value` if `lookahead` recognises the key (returns `Ok(true)`), or consumes
    /// nothing and returns `Ok(false)`. Invalid values are reported to `cx`, not returned.
    fn parse_option(
        &mut self,
        input: ParseStream<'_>,
        lookahead: &Lookahead1<'_>,
        cx: &Ctxt,
    ) -> syn::Result<bool>;
}

/// The parsed arguments of an attribute together with the errors found in them. The caller adds the
/// errors it finds in the item to `cx` and reports everything at once.
pub(crate) struct Args<O> {
    pub(crate) options: O,
    pub(crate) cx: Ctxt,
}

impl<O: Options> Parse for Args<O> {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let cx = Ctxt::new();
        let mut options = O::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            match options.parse_option(input, &lookahead, &cx) {
                Ok(true) => {}
                Ok(false) => {
                    if input.peek(Ident::peek_any) {
                        let key = Ident::parse_any(input)?;
                        cx.error_at(key.span(), unknown_option_message::<O>(&key));
                    } else {
                        cx.syn_error(lookahead.error());
                    }
                    skip_to_comma(input)?;
                }
                Err(err) => {
                    cx.syn_error(err);
                    skip_to_comma(input)?;
                }
            }
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                cx.syn_error(input.error(format!(
                    "expected `,` between the options of {}",
                    O::ATTRIBUTE
                )));
                skip_to_comma(input)?;
                if input.is_empty() {
                    break;
                }
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Args { options, cx })
    }
}

/// Skips the rest of a malformed option, up to (not including) the next top-level comma.
fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn unknown_option_message<O: Options>(key: &Ident) -> String {
    let key = key.unraw().to_string();
    let (other_attribute, other_keys) = O::OTHER;
    if other_keys.contains(&key.as_str()) {
        return format!(
            "`{key}` is an option of {other_attribute}, not of {}; the options here are {}",
            O::ATTRIBUTE,
            list(O::KEYS)
        );
    }
    let mut msg = format!(
        "unknown option `{key}` for {}; the options are {}",
        O::ATTRIBUTE,
        list(O::KEYS)
    );
    if let Some(suggestion) = suggest(&key, O::KEYS) {
        let _ = write!(msg, " (did you mean `{suggestion}`?)");
    }
    msg
}

fn list(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    quoted.join(", ")
}

/// The known key closest to a misspelt one: a small edit distance, or one contains the other
/// (`span_name` -> `name`, `threads` -> `worker_threads`, `config_file` -> `config`).
fn suggest(unknown: &str, keys: &[&'static str]) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    let by_distance = keys
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    by_distance.or_else(|| {
        keys.iter().copied().find(|k| {
            unknown.len() >= 4 && k.len() >= 4 && (unknown.contains(k) || k.contains(&*unknown))
        })
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses `key = <expr>` for the key `K` (already recognised by the lookahead), converts the value with
/// `convert`, and stores it in `slot` unless the key was given before.
fn parse_setting<K, T>(
    input: ParseStream<'_>,
    cx: &Ctxt,
    slot: &mut Option<Setting<T>>,
    key_name: &'static str,
    example: &'static str,
    convert: fn(&Ctxt, &'static str, &'static str, &Expr) -> Option<T>,
) -> syn::Result<()>
where
    K: Parse + ToTokens,
{
    let key: K = input.parse()?;
    let key_span = key.span();
    if !input.peek(Token![=]) {
        cx.error_at(
            key_span,
            format!("`{key_name}` needs a value: write `{example}`"),
        );
        return skip_to_comma(input);
    }
    input.parse::<Token![=]>()?;
    let expr: Expr = input.parse()?;
    let value = convert(cx, key_name, example, &expr);
    set_once(cx, slot, key_name, key_span, value);
    Ok(())
}

/// The one duplicate check shared by every option of both attributes.
fn set_once<T>(
    cx: &Ctxt,
    slot: &mut Option<Setting<T>>,
    key_name: &str,
    key_span: Span,
    value: Option<T>,
) {
    if slot.is_some() {
        cx.error_at(
            key_span,
            format!("`{key_name}` is given more than once; keep only one `{key_name} = ...`"),
        );
        return;
    }
    *slot = Some(Setting { key_span, value });
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn not_a_literal_note(expr: &Expr) -> &'static str {
    if literal(expr).is_some() {
        ""
    } else {
        " (the attribute reads the literal itself: constants, macros and expressions can't be used here)"
    }
}

/// A non-empty string literal.
fn string(cx: &Ctxt, key: &'static str, example: &'static str, expr: &Expr) -> Option<LitStr> {
    match literal(expr) {
        Some(Lit::Str(s)) if s.value().trim().is_empty() => {
            cx.error_spanned_by(
                s,
                format!("`{key}` can't be empty: write `{example}`, or remove `{key}`"),
            );
            None
        }
        Some(Lit::Str(s)) => Some(s.clone()),
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "`{key}` takes a string literal: write `{example}`{}",
                    not_a_literal_note(expr)
                ),
            );
            None
        }
    }
}

/// `true` or `false`.
fn boolean(cx: &Ctxt, key: &'static str, example: &'static str, expr: &Expr) -> Option<bool> {
    match literal(expr) {
        Some(Lit::Bool(b)) => Some(b.value),
        Some(Lit::Str(s)) if s.value() == "true" || s.value() == "false" => {
            cx.error_spanned_by(
                s,
                format!(
                    "`{key}` takes a bool, not a string: remove the quotes, `{key} = {}`",
                    s.value()
                ),
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "`{key}` takes `true` or `false`: write `{example}`{}",
                    not_a_literal_note(expr)
                ),
            );
            None
        }
    }
}

/// An integer of at least 1.
fn positive_int(cx: &Ctxt, key: &'static str, example: &'static str, expr: &Expr) -> Option<usize> {
    match literal(expr) {
        Some(Lit::Int(i)) => match i.base10_parse::<usize>() {
            Ok(0) => {
                cx.error_spanned_by(i, format!("`{key}` must be at least 1: write `{example}`"));
                None
            }
            Ok(n) => Some(n),
            Err(err) => {
                cx.error_spanned_by(i, format!("`{key}` takes a positive integer: {err}"));
                None
            }
        },
        Some(Lit::Str(s)) if s.value().parse::<usize>().is_ok() => {
            cx.error_spanned_by(
                s,
                format!(
                    "`{key}` takes an integer, not a string: remove the quotes, `{key} = {}`",
                    s.value()
                ),
            );
            None
        }
        _ => {
            cx.error_spanned_by(
                expr,
                format!(
                    "`{key}` takes a positive integer: write `{example}`{}",
                    not_a_literal_note(expr)
                ),
            );
            None
        }
    }
}

/// The path of a function (`filters = crate::filters`).
fn path(cx: &Ctxt, key: &'static str, example: &'static str, expr: &Expr) -> Option<syn::Path> {
    match expr {
        Expr::Path(p) if p.attrs.is_empty() && p.qself.is_none() => Some(p.path.clone()),
        _ => {
            cx.error_spanned_by(
                expr,
                format!("`{key}` takes the path of a function `fn() -> hypertrace::Filters`: write `{example}`"),
            );
            None
        }
    }
}

/// The tokio runtime flavors `#[hypertrace::main]` can build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flavor {
    MultiThread,
    CurrentThread,
}

fn flavor(cx: &Ctxt, key: &'static str, example: &'static str, expr: &Expr) -> Option<Flavor> {
    let s = string(cx, key, example, expr)?;
    match s.value().as_str() {
        "multi_thread" => Some(Flavor::MultiThread),
        "current_thread" => Some(Flavor::CurrentThread),
        other => {
            let hint = match other {
                "local" => "the `local` flavor isn't supported by #[hypertrace::main]; ",
                "single_thread" | "basic_scheduler" => "that flavor is called `current_thread`; ",
                "threaded_scheduler" | "multi_threaded" => "that flavor is called `multi_thread`; ",
                _ => "",
            };
            cx.error_spanned_by(
                &s,
                format!(
                    "unknown runtime flavor \"{other}\": {hint}use `flavor = \"multi_thread\"` (the default) or `flavor = \"current_thread\"`"
                ),
            );
            None
        }
    }
}

/// One arm per option: if the next token is the option's keyword, parse `key = value` into the
/// field (with the shared duplicate check and the example shown in errors). `Ok(false)`: not ours.
macro_rules! dispatch {
    ($self:ident, $input:ident, $lookahead:ident, $cx:ident; $($kw:ident => $field:ident, $example:literal, $parse:expr;)*) => {{
        $(
            if $lookahead.peek(kw::$kw) {
                parse_setting::<kw::$kw, _>($input, $cx, &mut $self.$field, stringify!($kw), $example, $parse)?;
                return Ok(true);
            }
        )*
        Ok(false)
    }};
}

/// `#[hypertrace::main(...)]`.
#[derive(Default)]
pub(crate) struct MainOptions {
    pub(crate) service_name: Option<Setting<LitStr>>,
    pub(crate) config: Option<Setting<LitStr>>,
    pub(crate) tracing_subscriber: Option<Setting<bool>>,
    pub(crate) flavor: Option<Setting<Flavor>>,
    pub(crate) worker_threads: Option<Setting<usize>>,
    pub(crate) signal_watcher: Option<Setting<bool>>,
    pub(crate) filters: Option<Setting<syn::Path>>,
}

impl Options for MainOptions {
    const ATTRIBUTE: &'static str = MAIN_ATTRIBUTE;
    const KEYS: &'static [&'static str] = MAIN_KEYS;
    const OTHER: (&'static str, &'static [&'static str]) = (HANDLER_ATTRIBUTE, HANDLER_KEYS);

    fn parse_option(
        &mut self,
        input: ParseStream<'_>,
        lookahead: &Lookahead1<'_>,
        cx: &Ctxt,
    ) -> syn::Result<bool> {
        dispatch!(self, input, lookahead, cx;
            service_name => service_name, "service_name = \"checkout\"", string;
            config => config, "config = \"config/agent.yaml\"", string;
            tracing_subscriber => tracing_subscriber, "tracing_subscriber = false", boolean;
            flavor => flavor, "flavor = \"current_thread\"", flavor;
            worker_threads => worker_threads, "worker_threads = 4", positive_int;
            signal_watcher => signal_watcher, "signal_watcher = false", boolean;
            filters => filters, "filters = crate::filters", path;
        )
    }
}

/// `#[hypertrace::handler(...)]`.
#[derive(Default)]
pub(crate) struct HandlerOptions {
    pub(crate) name: Option<Setting<LitStr>>,
    pub(crate) request_headers: Option<Setting<bool>>,
    pub(crate) response_headers: Option<Setting<bool>>,
    pub(crate) request_body: Option<Setting<bool>>,
    pub(crate) response_body: Option<Setting<bool>>,
}

impl Options for HandlerOptions {
    const ATTRIBUTE: &'static str = HANDLER_ATTRIBUTE;
    const KEYS: &'static [&'static str] = HANDLER_KEYS;
    const OTHER: (&'static str, &'static [&'static str]) = (MAIN_ATTRIBUTE, MAIN_KEYS);

    fn parse_option(
        &mut self,
        input: ParseStream<'_>,
        lookahead: &Lookahead1<'_>,
        cx: &Ctxt,
    ) -> syn::Result<bool> {
        dispatch!(self, input, lookahead, cx;
            name => name, "name = \"create user\"", string;
            request_headers => request_headers, "request_headers = false", boolean;
            response_headers => response_headers, "response_headers = false", boolean;
            request_body => request_body, "request_body = false", boolean;
            response_body => response_body, "response_body = false", boolean;
        )
    }
}

/// Parses the attribute's arguments. A syntax error that the parser can't step over is reported
/// through the returned context as well, with default options, so the item is still checked.
pub(crate) fn parse<O: Options>(args: proc_macro2::TokenStream) -> Args<O> {
    match syn::parse2::<Args<O>>(args) {
        Ok(args) => args,
        Err(err) => {
            let cx = Ctxt::new();
            cx.syn_error(err);
            Args {
                options: O::default(),
                cx,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("flavour", MAIN_KEYS), Some("flavor"));
        assert_eq!(suggest("span_name", HANDLER_KEYS), Some("name"));
        assert_eq!(suggest("threads", MAIN_KEYS), Some("worker_threads"));
        assert_eq!(suggest("config_file", MAIN_KEYS), Some("config"));
        assert_eq!(suggest("requestbody", HANDLER_KEYS), Some("request_body"));
        assert_eq!(suggest("xyz", HANDLER_KEYS), None);
    }

    fn parse_handler(tokens: proc_macro2::TokenStream) -> (HandlerOptions, syn::Result<()>) {
        let Args { options, cx } = parse::<HandlerOptions>(tokens);
        (options, cx.check())
    }

    #[test]
    fn handler_options() {
        let (opts, res) = parse_handler(quote::quote!(name = "x", request_body = false,));
        assert!(res.is_ok());
        assert_eq!(value(opts.name.as_ref()).unwrap().value(), "x");
        assert_eq!(value(opts.request_body.as_ref()), Some(false));
        assert_eq!(value(opts.response_body.as_ref()), None);
    }

    #[test]
    fn collects_every_error() {
        let (_, res) = parse_handler(quote::quote!(
            name = 3,
            request_body = "no",
            bogus = 1,
            response_body
        ));
        let messages: Vec<String> = res
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].contains("`name` takes a string literal"));
        assert!(messages[1].contains("`request_body` takes `true` or `false`"));
        assert!(messages[2].contains("unknown option `bogus`"));
        assert!(messages[3].contains("`response_body` needs a value"));
    }

    #[test]
    fn duplicate_after_invalid_value_is_still_reported() {
        let (_, res) = parse_handler(quote::quote!(request_body = 1, request_body = false));
        let messages: Vec<String> = res
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[1].contains("more than once"));
    }

    #[test]
    fn main_options() {
        let Args { options, cx } = parse::<MainOptions>(quote::quote!(
            service_name = "svc",
            flavor = "current_thread",
            tracing_subscriber = false
        ));
        assert!(cx.check().is_ok());
        assert_eq!(value(options.flavor.as_ref()), Some(Flavor::CurrentThread));
        assert_eq!(value(options.tracing_subscriber.as_ref()), Some(false));
    }
}
