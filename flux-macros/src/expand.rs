//! Code generation from the models. Generated code reaches the runtime only through
//! `::flux::__private` (and the public `::flux` types).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{Output, TaskDef, WorkflowDef};

fn duration_tokens(d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// Converts the body's result into `flux::Result<T>`.
fn convert(result: TokenStream, output: &Output, kind: TokenStream) -> TokenStream {
    if output.fallible {
        quote! {
            match #result {
                ::core::result::Result::Ok(__flux_ok) => ::core::result::Result::Ok(__flux_ok),
                ::core::result::Result::Err(__flux_err) => {
                    #[allow(unused_imports)]
                    use ::flux::__private::{ViaDisplay as _, ViaFluxError as _, ViaStdError as _};
                    ::core::result::Result::Err((&&&::flux::__private::ErrorWrap(__flux_err)).to_flux_error(#kind))
                }
            }
        }
    } else {
        quote!(::flux::Result::Ok(#result))
    }
}

pub(crate) fn task(def: &TaskDef) -> TokenStream {
    let item = &def.item;
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let block = &item.block;
    let ret = &def.output.written;
    let out_ty = &def.output.ty;
    let name = &def.name;
    let arg_idents: Vec<_> = def.args.iter().map(|a| &a.ident).collect();
    let arg_tys: Vec<_> = def.args.iter().map(|a| &a.ty).collect();
    let body_params = def.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        if a.mutable { quote!(mut #ident: #ty) } else { quote!(#ident: #ty) }
    });
    let asyncness = &item.sig.asyncness;

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

    let full_name = if def.templated {
        let lit = o.name.as_ref().map_or_else(|| quote!(#name), |l| quote!(#l));
        quote!(::std::format!(#lit))
    } else {
        quote!(#ident::NAME)
    };

    let kind = quote!(::flux::__private::Kind::TaskFailed);
    let call_body = quote!(__flux_task_body(#(#arg_idents),*));
    let attempt = if def.is_async {
        let converted = convert(quote!(#call_body.await), &def.output, kind);
        quote!(async move { #converted })
    } else {
        let converted = convert(call_body, &def.output, kind);
        quote!(::flux::__private::run_blocking(move || #converted))
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
        (quote!(), quote!(let _ = __flux_bytes;))
    } else {
        let decode = arg_tys.iter().map(|ty| quote_spanned!(ty.span()=> __flux_reader.read::<#ty>()?));
        (
            quote!(let mut __flux_args = ::core::option::Option::Some((#(#arg_idents,)*));),
            quote! {
                let (#(#arg_idents,)*) = match __flux_args.take() {
                    ::core::option::Option::Some(__flux_a) => __flux_a,
                    ::core::option::Option::None => {
                        let mut __flux_reader = ::flux::__private::ArgsReader::new(__flux_bytes, #n)?;
                        (#(#decode,)*)
                    }
                };
            },
        )
    };
    let codec = quote_spanned!(out_ty.span()=> ::flux::__private::codec::<#out_ty>());
    let companion_doc = format!("Companion of the flux task `{ident}`: its name and options.");

    quote! {
        #[doc = #companion_doc]
        #[allow(non_camel_case_types)]
        #vis enum #ident {}

        #[allow(dead_code)]
        impl #ident {
            /// The task name (the template, when the name has placeholders).
            pub const NAME: &'static str = #name;
            /// The options given in the attribute.
            pub const OPTIONS: ::flux::TaskOptions = #options;
        }

        #(#attrs)*
        #vis fn #ident(#(#arg_idents: #arg_tys),*) -> impl ::core::future::Future<Output = ::flux::Result<#out_ty>> {
            #asyncness fn __flux_task_body(#(#body_params),*) #ret #block
            let __flux_call = ::flux::__private::TaskCall::begin(&#full_name, #encoded_args);
            #take_args
            async move {
                __flux_call
                    .run(#codec, &#ident::OPTIONS, move |__flux_bytes: &[u8]| {
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
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let name = &def.name;
    let in_ty = &def.input;
    let out_ty = &def.output.ty;
    let body_ident = format_ident!("__flux_workflow_{}", ident);
    let mut body_fn = item.clone();
    body_fn.sig.ident = body_ident.clone();
    body_fn.vis = syn::Visibility::Inherited;
    body_fn.attrs.retain(|a| !a.path().is_ident("doc"));
    let converted =
        convert(quote!(#body_ident(__flux_ctx).await), &def.output, quote!(::flux::__private::Kind::WorkflowFailed));

    quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident;

        #[allow(dead_code)]
        impl #ident {
            /// The workflow name.
            pub const NAME: &'static str = #name;
        }

        impl ::flux::WorkflowDefinition for #ident {
            type Input = #in_ty;
            type Output = #out_ty;
            const NAME: &'static str = #name;
            fn body(__flux_ctx: ::flux::ExecutionContext<#in_ty>) -> ::flux::__private::BoxFuture<::flux::Result<#out_ty>> {
                ::std::boxed::Box::pin(async move { #converted })
            }
        }

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
