//! Code generation from the models. Generated code reaches the runtime only through
//! `::flux::__private` (and the public `::flux` types).
//!
//! Locals of generated code use `Span::mixed_site()`, so they can never clash with the user's
//! argument names. Of the function's attributes, documentation, `cfg` and lint levels go to the
//! generated public items (and `cfg` to every generated item); all others (`#[inline]`,
//! `#[tracing::instrument]`, ...) go to the function holding the user's body.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, ReturnType, Type};

use crate::model::{Arg, Injected, Output, TaskDef, WorkflowDef};

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

/// The text of the `#[doc = ".."]` attributes (the doc comment), one literal per line.
fn doc_lines(attrs: &[Attribute]) -> Vec<syn::LitStr> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }),
                ..
            }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// `d` as a `core::time::Duration` expression.
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
                    use ::flux::__private::{ViaDisplay as _, ViaFluxError as _, ViaStdError as _, ViaTerminalError as _};
                    ::core::result::Result::Err((&&&::flux::__private::ErrorWrap(#err)).to_flux_error(#kind))
                }
            }
        }
    } else {
        quote!(::flux::Result::Ok(#result))
    }
}

/// The task's options as a `flux::TaskOptions` expression (usable in a `const`).
fn options_tokens(def: &TaskDef) -> TokenStream {
    let o = &def.options;
    let mut options = match &o.output_storage {
        Some(storage) => quote!(::flux::TaskOptions::stored_in(#storage)),
        None => quote!(::flux::TaskOptions::new()),
    };
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
    if o.cache {
        options = quote!(#options.cache(true));
    }
    if let Some(d) = o.cache_ttl {
        let d = duration_tokens(d);
        options = quote!(#options.cache_ttl(#d));
    }
    if let Some(n) = o.max_concurrency {
        let n = n as usize;
        options = quote!(#options.max_concurrency(#n));
    }
    options
}

/// Builds the injected parameters from the call information `call_info`.
fn injections(def: &TaskDef, call_info: &Ident) -> TokenStream {
    let lets = def.args.iter().filter_map(|a| {
        let ident = &a.ident;
        match a.injected? {
            Injected::Metadata => Some(quote!(let #ident = ::flux::__private::metadata(#call_info);)),
            Injected::Secrets => {
                let names = def.options.secret_requests.as_deref().unwrap_or_default();
                Some(quote!(let #ident = ::flux::__private::secrets(#call_info, &[#(#names),*])?;))
            }
            Injected::State => {
                let ty = &a.ty;
                Some(quote!(let #ident: #ty = ::flux::__private::state(#call_info)?;))
            }
        }
    });
    quote!(#(#lets)*)
}

/// A fallback or rollback: reads the recorded arguments, calls `path` with the task's
/// parameters, and resolves its result whether `path` is async or not.
fn handler(def: &TaskDef, path: &syn::Path, rollback: bool) -> TokenStream {
    let call_info = local("__flux_info");
    let reader = local("__flux_reader");
    let value = local("__flux_value");
    let recorded: Vec<_> = def.args.iter().filter(|a| a.injected.is_none()).collect();
    let n = u32::try_from(recorded.len()).unwrap_or(u32::MAX);
    let idents = recorded.iter().map(|a| &a.ident);
    let reads = recorded.iter().map(|a| {
        let ty = &a.ty;
        quote_spanned!(ty.span()=> #reader.read::<#ty>()?)
    });
    let inject = injections(def, &call_info);
    let params = def.args.iter().map(|a| &a.ident);
    let ret_ty = match &def.output.written {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    // The call is spanned at the path: a function with other parameters or another return
    // type than the task's is reported there.
    let called = quote_spanned!(path.span()=> #path(#(#params),*));
    let finish = if rollback {
        quote! {{
            #[allow(unused_imports)]
            use ::flux::__private::{ViaRollbackResult as _, ViaRollbackValue as _};
            (&&::flux::__private::RollbackOutcome(#value)).outcome()
        }}
    } else {
        convert(quote!(#value), &def.output, quote!(::flux::__private::Kind::TaskFailed))
    };
    let typed = if rollback { quote!() } else { quote_spanned!(path.span()=> : #ret_ty) };
    // Hygienic, but located at the path, so that the awaited expression is reported there.
    let fut = Ident::new("__flux_fut", Span::mixed_site().located_at(path.span()));
    let made_ident = local("__flux_made");
    let awaited = quote_spanned!(path.span()=> #fut.await);
    // The handler may be async or not, whatever the task is. A blocking task's handler is
    // called on the blocking pool; if it returned a future, that future is awaited here.
    let made = if def.is_async {
        quote!(::flux::__private::MaybeAsync(::core::cell::Cell::new(::core::option::Option::Some(#called))))
    } else {
        quote! {
            ::flux::__private::run_blocking(move || {
                ::flux::Result::Ok(::flux::__private::MaybeAsync(::core::cell::Cell::new(::core::option::Option::Some(#called))))
            })
            .await?
        }
    };
    let body = quote! {
        ::flux::Result::Ok(async move {
            let #made_ident = #made;
            let #fut = {
                #[allow(unused_imports)]
                use ::flux::__private::{ViaFuture as _, ViaValue as _};
                (&&#made_ident).resolve()
            };
            let #value #typed = #awaited;
            #finish
        })
    };
    quote! {
        ::core::option::Option::Some(move |#call_info: &::flux::__private::Call<'_>| {
            let mut #reader = ::flux::__private::ArgsReader::new(#call_info.args, #n)?;
            let (#(#idents,)*) = (#(#reads,)*);
            #inject
            #body
        })
    }
}

/// The code of a task: its companion struct (name, options, `map`, `call`) and the function
/// callers call.
pub(crate) fn task(def: &TaskDef) -> TokenStream {
    let item = &def.item;
    let (public_attrs, body_attrs, cfg_attrs) = split_attrs(&item.attrs);
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let out_ty = &def.output.ty;
    let name = &def.name;
    // Recorded arguments: what the caller passes.
    let recorded: Vec<&Arg> = def.args.iter().filter(|a| a.injected.is_none()).collect();
    let rec_idents: Vec<_> = recorded.iter().map(|a| &a.ident).collect();
    let rec_tys: Vec<_> = recorded.iter().map(|a| &a.ty).collect();
    let options = options_tokens(def);
    let map = map_fn(def, &rec_tys);
    let call = call_fn(def, &body_attrs, &recorded);
    let docs = doc_lines(&item.attrs);
    let companion_doc = format!(
        "Companion of the flux task `{name}`: its name and options, and `with_options(..).call(..)` to call it with other options."
    );

    quote! {
        #(#cfg_attrs)*
        #[doc = #companion_doc]
        #[allow(non_camel_case_types)]
        #vis struct #ident {
            options: ::flux::TaskOptions,
            recorded_as: ::core::option::Option<::std::string::String>,
        }

        #(#cfg_attrs)*
        #[allow(dead_code)]
        impl #ident {
            /// The task name (the template, when the name has placeholders).
            pub const NAME: &'static str = #name;
            /// The options given in the attribute.
            pub const OPTIONS: ::flux::TaskOptions = #options;

            /// The task with other options, for the calls made through it.
            pub fn with_options(options: ::flux::TaskOptions) -> Self {
                #ident { options, recorded_as: ::core::option::Option::None }
            }

            /// The calls made through this value are recorded under the name `name` (an
            /// agent's tool calls after its first turn, `{tool}_{turn}`).
            #[doc(hidden)]
            pub fn __recorded_as(mut self, name: ::std::string::String) -> Self {
                self.recorded_as = ::core::option::Option::Some(name);
                self
            }

            #map

            #call
        }

        #(#cfg_attrs)*
        #(#public_attrs)*
        #vis fn #ident(#(#rec_idents: #rec_tys),*) -> impl ::core::future::Future<Output = ::flux::Result<#out_ty>> {
            #ident::with_options(#ident::OPTIONS).call(#(#rec_idents),*)
        }

        #(#cfg_attrs)*
        ::flux::__task_tool! { #ident, [#(#docs),*], [#(#rec_idents: #rec_tys),*] }
    }
}

/// `name::map(items)`, for tasks taking one recorded argument (of type `rec_tys[0]`).
fn map_fn(def: &TaskDef, rec_tys: &[&Type]) -> TokenStream {
    let [item_ty] = rec_tys else { return quote!() };
    let ident = &def.item.sig.ident;
    let out_ty = &def.output.ty;
    let items = local("__flux_items");
    let item = local("__flux_item");
    let items_ty = format_ident!("__FluxItems", span = Span::mixed_site());
    quote! {
        /// Calls the task once per item, concurrently, and returns the outputs in item
        /// order (every item runs; the first failure in item order is returned). At most
        /// 1,024 calls run at once, the items taken from their iterator as places free up;
        /// `.max_concurrency(n)` sets another bound, `.all_results()` returns every outcome.
        /// Inside a workflow the group is a task named `map` wrapping the calls.
        pub fn map<#items_ty>(#items: #items_ty) -> ::flux::Parallel<
            impl ::core::iter::Iterator<Item = impl ::core::future::Future<Output = ::flux::Result<#out_ty>>>,
        >
        where
            #items_ty: ::core::iter::IntoIterator<Item = #item_ty>,
        {
            ::flux::__private::map(#ident::NAME, #items.into_iter().map(|#item| #ident(#item)))
        }
    }
}

/// `name.call(args)`: holds the user's body, records the call, and runs its attempts with the
/// value's options. `body_attrs` go to the body function.
fn call_fn(def: &TaskDef, body_attrs: &[&Attribute], recorded: &[&Arg]) -> TokenStream {
    let item = &def.item;
    let ident = &item.sig.ident;
    let (block, ret, asyncness) = (&item.block, &def.output.written, &item.sig.asyncness);
    let out_ty = &def.output.ty;
    let rec_idents = recorded.iter().map(|a| &a.ident);
    let rec_tys = recorded.iter().map(|a| &a.ty);
    let body_params = def.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        if a.mutable { quote!(mut #ident: #ty) } else { quote!(#ident: #ty) }
    });
    let body_fn = local("__flux_task_body");
    let (call, call_info, opts) = (local("__flux_call"), local("__flux_info"), local("__flux_options"));
    let recorded_as = local("__flux_recorded_as");
    let full_name = if def.templated {
        let name = &def.name;
        let lit = def.options.name.as_ref().map_or_else(|| quote!(#name), |l| quote!(#l));
        quote!(::std::format!(#lit))
    } else {
        quote!(#ident::NAME)
    };
    let (encoded_args, take_args, unpack_args) = arg_passing(recorded, &call_info);
    let inject = injections(def, &call_info);
    let codec = quote_spanned!(out_ty.span()=> ::flux::__private::codec::<#out_ty>());
    let attempt = attempt(def, &body_fn);
    let handlers = handlers(def);
    quote! {
        /// Calls the task with this value's options.
        pub fn call(self, #(#rec_idents: #rec_tys),*) -> impl ::core::future::Future<Output = ::flux::Result<#out_ty>> {
            #(#body_attrs)*
            #asyncness fn #body_fn(#(#body_params),*) #ret #block
            let #opts = self.options;
            let #call = match self.recorded_as {
                ::core::option::Option::None => ::flux::__private::TaskCall::begin(#ident::NAME, || (#full_name, #encoded_args)),
                ::core::option::Option::Some(#recorded_as) => ::flux::__private::TaskCall::begin(#ident::NAME, || (#recorded_as, #encoded_args)),
            };
            #take_args
            async move {
                #call
                    .run(
                        #codec,
                        &#opts,
                        move |#call_info: &::flux::__private::Call<'_>| {
                            #unpack_args
                            #inject
                            ::flux::Result::Ok(#attempt)
                        },
                        #handlers,
                    )
                    .await
            }
        }
    }
}

/// How the recorded arguments reach each attempt: their encoding for the log, the statement
/// keeping them for the first attempt, and the statement giving them to an attempt.
///
/// The arguments are recorded as an array in declaration order; the first attempt moves them
/// in, later attempts (retries) read them back from the recorded encoding. Each argument is
/// encoded and decoded by its own call, spanned at its type, so that a type that cannot be
/// stored is reported once, at that type.
fn arg_passing(recorded: &[&Arg], call_info: &Ident) -> (TokenStream, TokenStream, TokenStream) {
    let (args, reader, taken) = (local("__flux_args"), local("__flux_reader"), local("__flux_a"));
    let n = u32::try_from(recorded.len()).unwrap_or(u32::MAX);
    let encode = recorded.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        quote_spanned!(ty.span()=> .arg::<#ty>(&#ident))
    });
    let encoded_args = quote!(::flux::__private::Args::new(#n) #(#encode)*);
    if recorded.is_empty() {
        return (encoded_args, quote!(), quote!());
    }
    let rec_idents: Vec<_> = recorded.iter().map(|a| &a.ident).collect();
    let decode = recorded.iter().map(|a| {
        let ty = &a.ty;
        quote_spanned!(ty.span()=> #reader.read::<#ty>()?)
    });
    let take_args = quote!(let mut #args = ::core::option::Option::Some((#(#rec_idents,)*)););
    let unpack_args = quote! {
        let (#(#rec_idents,)*) = match #args.take() {
            ::core::option::Option::Some(#taken) => #taken,
            ::core::option::Option::None => {
                let mut #reader = ::flux::__private::ArgsReader::new(#call_info.args, #n)?;
                (#(#decode,)*)
            }
        };
    };
    (encoded_args, take_args, unpack_args)
}

/// One attempt: calls the body function `body_fn` (on the blocking pool for a plain `fn`) and
/// converts its result.
fn attempt(def: &TaskDef, body_fn: &Ident) -> TokenStream {
    let all_idents = def.args.iter().map(|a| &a.ident);
    let kind = quote!(::flux::__private::Kind::TaskFailed);
    let call_body = quote!(#body_fn(#(#all_idents),*));
    if def.is_async {
        let converted = convert(quote!(#call_body.await), &def.output, kind);
        quote!(async move { #converted })
    } else {
        let converted = convert(call_body, &def.output, kind);
        quote!(::flux::__private::run_blocking(move || #converted))
    }
}

/// The task's fallback and rollback, or none.
fn handlers(def: &TaskDef) -> TokenStream {
    let out_ty = &def.output.ty;
    let fallback = match &def.options.fallback {
        Some(path) => handler(def, path, false),
        None => quote!(::core::option::Option::None::<::flux::__private::NoHandler<#out_ty>>),
    };
    let rollback = match &def.options.rollback {
        Some(path) => handler(def, path, true),
        None => quote!(::core::option::Option::None::<::flux::__private::NoHandler<()>>),
    };
    quote!(::flux::__private::Handlers { fallback: #fallback, rollback: #rollback })
}

/// The code of a workflow: a unit struct implementing `WorkflowDefinition`, dereferencing to its
/// `Workflow`, and the function holding the user's body.
pub(crate) fn workflow(def: &WorkflowDef) -> TokenStream {
    let item = &def.item;
    let (public_attrs, body_attrs, cfg_attrs) = split_attrs(&item.attrs);
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let name = &def.name;
    let in_ty = &def.input;
    let out_ty = &def.output.ty;
    let version = def.version;
    let secret_requests = &def.secret_requests;
    let output_storage = match &def.output_storage {
        Some(storage) => quote!(::core::option::Option::Some(#storage)),
        None => quote!(::core::option::Option::None),
    };
    let schedule = match &def.schedule {
        Some(expression) => {
            let timezone = def.timezone.as_deref().unwrap_or("UTC");
            quote! {
                const SCHEDULE: ::core::option::Option<(&'static str, &'static str)> =
                    ::core::option::Option::Some((#expression, #timezone));
                fn schedule_input() -> ::core::option::Option<#in_ty> {
                    // A declared schedule starts the workflow with the input type's default.
                    ::flux::__private::scheduled_input::<#in_ty>()
                }
            }
        }
        None => quote!(),
    };
    let max_concurrency = match def.max_concurrency {
        Some(n) => {
            let n = n as usize;
            quote!(const MAX_CONCURRENCY: ::core::option::Option<usize> = ::core::option::Option::Some(#n);)
        }
        None => quote!(),
    };
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
            const VERSION: u32 = #version;
            const SECRET_REQUESTS: &'static [&'static str] = &[#(#secret_requests),*];
            const OUTPUT_STORAGE: ::core::option::Option<&'static str> = #output_storage;
            #schedule
            #max_concurrency
            fn input_schema() -> ::core::option::Option<::std::string::String> {
                // Autoref specialisation: the schema when the input derives `JsonSchema` (and
                // flux has `mcp`), else `None`.
                #[allow(unused_imports)]
                use ::flux::__private::{ViaJsonSchema as _, ViaNoSchema as _};
                (&&::flux::__private::SchemaProbe::<#in_ty>::new()).input_schema()
            }
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
