//! Code generation from the models. Generated code reaches the runtime only through
//! `::flux::__private` (and the public `::flux` types).
//!
//! Locals of generated code use `Span::mixed_site()`, so they can never clash with the user's
//! argument names. Of the function's attributes, documentation, `cfg` and lint levels go to the
//! generated public items (and `cfg` to every generated item); all others (`#[inline]`,
//! `#[tracing::instrument]`, ...) go to the function holding the user's body.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Attribute;
use syn::spanned::Spanned;

use crate::model::{Output, TaskDef, WorkflowDef};

/// An identifier only generated code can see.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// Splits attributes into those for the public items and those for the body function.
fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>, Vec<&Attribute>) {
    const PUBLIC: &[&str] = &["doc", "allow", "warn", "deny", "forbid", "expect", "deprecated"];
    let mut public = Vec::new();
    let mut body = Vec::new();
    let mut cfg = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("cfg") {
            cfg.push(attr);
        } else if PUBLIC.iter().any(|p| attr.path().is_ident(p)) {
            public.push(attr);
        } else {
            body.push(attr);
        }
    }
    (public, body, cfg)
}

fn duration_tokens(d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// Converts the body's result into `flux::Result<T>`.
fn convert(result: TokenStream, output: &Output, kind: TokenStream) -> TokenStream {
    if output.fallible {
        let (ok, err) = (local("__flux_ok"), local("__flux_err"));
        quote! {
            match #result {
                ::core::result::Result::Ok(#ok) => ::core::result::Result::Ok(#ok),
                ::core::result::Result::Err(#err) => {
                    #[allow(unused_imports)]
                    use ::flux::__private::{ViaDisplay as _, ViaFluxError as _, ViaStdError as _};
                    ::core::result::Result::Err((&&&::flux::__private::ErrorWrap(#err)).to_flux_error(#kind))
                }
            }
        }
    } else {
        quote!(::flux::Result::Ok(#result))
    }
}

fn options_tokens(def: &TaskDef) -> TokenStream {
    let o = &def.options;
    let mut options = quote!(::flux::TaskOptions::new());
    if o.retry_max_attempts > 0 {
        let n = o.retry_max_attempts;
        options = quote!(#options.retry_max_attempts(#n));
    }
    if let Some(d) = o.retry_delay {
        let d = duration_tokens(d);
        options = quote!(#options.retry_delay(#d));
    }
    if let Some(b) = o.retry_backoff {
        options = quote!(#options.retry_backoff(#b));
    }
    if let Some(d) = o.timeout {
        let d = duration_tokens(d);
        options = quote!(#options.timeout(#d));
    }
    options
}

pub(crate) fn task(def: &TaskDef) -> TokenStream {
    let item = &def.item;
    let (public_attrs, body_attrs, cfg_attrs) = split_attrs(&item.attrs);
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let block = &item.block;
    let ret = &def.output.written;
    let out_ty = &def.output.ty;
    let name = &def.name;
    let asyncness = &item.sig.asyncness;
    let arg_idents: Vec<_> = def.args.iter().map(|a| &a.ident).collect();
    let arg_tys: Vec<_> = def.args.iter().map(|a| &a.ty).collect();
    let body_params = def.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        if a.mutable { quote!(mut #ident: #ty) } else { quote!(#ident: #ty) }
    });
    let options = options_tokens(def);
    let body_fn = local("__flux_task_body");
    let (call, args, bytes, reader, taken) =
        (local("__flux_call"), local("__flux_args"), local("__flux_bytes"), local("__flux_reader"), local("__flux_a"));

    let full_name = if def.templated {
        let lit = def.options.name.as_ref().map_or_else(|| quote!(#name), |l| quote!(#l));
        quote!(::std::format!(#lit))
    } else {
        quote!(#ident::NAME)
    };

    // The arguments are recorded as an array in declaration order; the first attempt moves
    // them in, later attempts (retries) read them back from the recorded encoding. Each
    // argument is encoded and decoded by its own call, spanned at its type, so that a type that
    // cannot be stored is reported once, at that type.
    let n = u32::try_from(def.args.len()).unwrap_or(u32::MAX);
    let encode = def.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        quote_spanned!(ty.span()=> .arg::<#ty>(&#ident))
    });
    let encoded_args = quote!(::flux::__private::Args::new(#n) #(#encode)*);
    let (take_args, unpack_args) = if def.args.is_empty() {
        (quote!(), quote!(let _ = #bytes;))
    } else {
        let decode = arg_tys.iter().map(|ty| quote_spanned!(ty.span()=> #reader.read::<#ty>()?));
        (
            quote!(let mut #args = ::core::option::Option::Some((#(#arg_idents,)*));),
            quote! {
                let (#(#arg_idents,)*) = match #args.take() {
                    ::core::option::Option::Some(#taken) => #taken,
                    ::core::option::Option::None => {
                        let mut #reader = ::flux::__private::ArgsReader::new(#bytes, #n)?;
                        (#(#decode,)*)
                    }
                };
            },
        )
    };
    let codec = quote_spanned!(out_ty.span()=> ::flux::__private::codec::<#out_ty>());

    let kind = quote!(::flux::__private::Kind::TaskFailed);
    let call_body = quote!(#body_fn(#(#arg_idents),*));
    let attempt = if def.is_async {
        let converted = convert(quote!(#call_body.await), &def.output, kind);
        quote!(async move { #converted })
    } else {
        let converted = convert(call_body, &def.output, kind);
        quote!(::flux::__private::run_blocking(move || #converted))
    };
    let companion_doc = format!("Companion of the flux task `{name}`: its name and options.");

    quote! {
        #(#cfg_attrs)*
        #[doc = #companion_doc]
        #[allow(non_camel_case_types)]
        #vis enum #ident {}

        #(#cfg_attrs)*
        #[allow(dead_code)]
        impl #ident {
            /// The task name (the template, when the name has placeholders).
            pub const NAME: &'static str = #name;
            /// The options given in the attribute.
            pub const OPTIONS: ::flux::TaskOptions = #options;
        }

        #(#cfg_attrs)*
        #(#public_attrs)*
        #vis fn #ident(#(#arg_idents: #arg_tys),*) -> impl ::core::future::Future<Output = ::flux::Result<#out_ty>> {
            #(#body_attrs)*
            #asyncness fn #body_fn(#(#body_params),*) #ret #block
            let #call = ::flux::__private::TaskCall::begin(|| (#full_name, #encoded_args));
            #take_args
            async move {
                #call
                    .run(#codec, &#ident::OPTIONS, move |#bytes: &[u8]| {
                        #unpack_args
                        ::flux::Result::Ok(#attempt)
                    })
                    .await
            }
        }
    }
}

pub(crate) fn workflow(def: &WorkflowDef) -> TokenStream {
    let item = &def.item;
    let (public_attrs, body_attrs, cfg_attrs) = split_attrs(&item.attrs);
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let name = &def.name;
    let in_ty = &def.input;
    let out_ty = &def.output.ty;
    let body_ident = format_ident!("__flux_workflow_{}", def.name_ident());
    let mut body_fn = item.clone();
    body_fn.sig.ident = body_ident.clone();
    body_fn.vis = syn::Visibility::Inherited;
    body_fn.attrs = body_attrs.into_iter().chain(cfg_attrs.iter().copied()).cloned().collect();
    let ctx = local("__flux_ctx");
    let converted =
        convert(quote!(#body_ident(#ctx).await), &def.output, quote!(::flux::__private::Kind::WorkflowFailed));

    quote! {
        #(#cfg_attrs)*
        #(#public_attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident;

        #(#cfg_attrs)*
        #[allow(dead_code)]
        impl #ident {
            /// The workflow name.
            pub const NAME: &'static str = #name;
        }

        #(#cfg_attrs)*
        impl ::flux::WorkflowDefinition for #ident {
            type Input = #in_ty;
            type Output = #out_ty;
            const NAME: &'static str = #name;
            fn body(#ctx: ::flux::ExecutionContext<#in_ty>) -> ::flux::__private::BoxFuture<::flux::Result<#out_ty>> {
                ::std::boxed::Box::pin(async move { #converted })
            }
        }

        #(#cfg_attrs)*
        impl ::core::ops::Deref for #ident {
            type Target = ::flux::Workflow<#ident>;
            fn deref(&self) -> &Self::Target {
                static WORKFLOW: ::flux::Workflow<#ident> = ::flux::Workflow::new();
                &WORKFLOW
            }
        }

        #[doc(hidden)]
        #[allow(non_snake_case)]
        #body_fn
    }
}
