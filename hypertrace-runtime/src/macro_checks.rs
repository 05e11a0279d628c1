//! Compile-time checks in the code `#[hypertrace::handler]` generates, whose failures carry the
//! macro's own message instead of rustc's words about code the user never wrote.

/// Implemented by the struct `#[hypertrace::handler]` makes of a function.
///
/// The generated probe `fn` is also valid inside an `impl` block, where the struct can't exist (rustc
/// then rejects it): there the probe sees no struct, and this message says why and what to do.
#[diagnostic::on_unimplemented(
    message = "#[hypertrace::handler] goes on a free function, not on an associated function in an `impl` block: move the function out of the `impl` (to the module, or a `mod` of its own) and route it as `get(name)` instead of `get(Type::name)`",
    label = "this handler is inside an `impl` block"
)]
pub trait HandlerStruct {}

/// The probe's check: `value` is the handler's struct (outside an `impl` block) or `()` (inside).
pub fn assert_handler_struct<T: HandlerStruct>(_value: T) {}
