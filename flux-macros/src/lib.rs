//! Attribute macros of flux: `#[task]` and `#[workflow]`.
//!
//! Use them through the `flux` crate (`#[flux::task]`, `#[flux::workflow]`), which documents
//! them. This crate only dispatches: `model` parses an item and its options (named in `symbol`)
//! into plain data, collecting every error (`errors`) with the span of the token at fault;
//! `expand` generates code from the model. On error the original item is emitted unchanged
//! next to the errors, so that the rest of the crate still type-checks and editors keep working.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use proc_macro::TokenStream;

mod duration;
mod errors;
mod expand;
mod model;
mod symbol;

/// Turns a function into a durable task. See `flux::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item.clone());
    match model::TaskDef::parse(attr.into(), item2.clone()) {
        Ok(def) => expand::task(&def).into(),
        Err(err) => with_original(err, item2),
    }
}

/// Turns an async function taking `ExecutionContext<I>` into a workflow. See `flux::workflow`.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item.clone());
    match model::WorkflowDef::parse(attr.into(), item2.clone()) {
        Ok(def) => expand::workflow(&def).into(),
        Err(err) => with_original(err, item2),
    }
}

fn with_original(err: syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let mut out = err.to_compile_error();
    out.extend(item);
    out.into()
}
