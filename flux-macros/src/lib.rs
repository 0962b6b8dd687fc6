//! Attribute macros of flux: `#[task]` and `#[workflow]`.
//!
//! Use them through the `flux` crate (`#[flux::task]`, `#[flux::workflow]`), which documents
//! them. This crate only dispatches, in three passes:
//!
//! - `ast` parses the attribute and the function into a plain model of what was written, with
//!   the options recognised by the names in `symbol`;
//! - `check` judges that model and makes the checked model of `model` (option values are read
//!   by `value`);
//! - `expand` generates code from the checked model.
//!
//! Every problem found is collected (`errors`) and reported together, each at the span of the
//! token at fault. On error the original item is emitted unchanged next to the errors, so that
//! the rest of the crate still type-checks and editors keep working.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use proc_macro::TokenStream;

use crate::ast::{Input, Macro};
use crate::errors::Errors;

mod ast;
mod check;
mod duration;
mod errors;
mod expand;
mod model;
mod symbol;
mod value;

/// Turns a function into a durable task. See `flux::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item.clone());
    match task_tokens(attr.into(), item2.clone()) {
        Ok(tokens) => tokens.into(),
        Err(err) => with_original(err, item2),
    }
}

/// Turns an async function taking `ExecutionContext<I>` into a workflow. See `flux::workflow`.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item.clone());
    match workflow_tokens(attr.into(), item2.clone()) {
        Ok(tokens) => tokens.into(),
        Err(err) => with_original(err, item2),
    }
}

/// Parses, checks and expands a `#[task]`.
fn task_tokens(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let input = Input::parse(Macro::Task, attr, item, &mut errors)?;
    let def = check::task(input, errors)?;
    Ok(expand::task(&def))
}

/// Parses, checks and expands a `#[workflow]`.
fn workflow_tokens(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = Errors::default();
    let input = Input::parse(Macro::Workflow, attr, item, &mut errors)?;
    let def = check::workflow(input, errors)?;
    Ok(expand::workflow(&def))
}

/// The errors, followed by the item as written.
fn with_original(err: syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let mut out = err.to_compile_error();
    out.extend(item);
    out.into()
}
