//! Parsing: attribute options and function items into plain models.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, Ident, ItemFn, Lit, LitStr, Meta, Pat, PathArguments, ReturnType, Token,
    Type,
};

use crate::duration;
use crate::errors::Errors;
use crate::symbol::{
    self, CACHE, CACHE_TTL, FALLBACK, METADATA, NAME, OUTPUT_STORAGE, RETRY_BACKOFF, RETRY_DELAY, RETRY_MAX_ATTEMPTS,
    ROLLBACK, SECRET_REQUESTS, Symbol, TASK_OPTIONS, TIMEOUT, WORKFLOW_OPTIONS,
};

/// What a task or workflow returns.
pub(crate) struct Output {
    /// The success type (`T` of `T` or `Result<T, E>`).
    pub(crate) ty: Type,
    /// Whether the function returns a `Result`.
    pub(crate) fallible: bool,
    /// The return type as written, for the body function.
    pub(crate) written: ReturnType,
}

/// One parameter of a task.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) mutable: bool,
    pub(crate) ty: Type,
    /// Filled by flux rather than passed by the caller (and not part of the task id).
    pub(crate) injected: Option<Injected>,
}

/// Parameters flux fills in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// `TaskMetadata`, with `metadata = true`.
    Metadata,
    /// `Secrets`, with `secret_requests = [..]`.
    Secrets,
}

/// The options of `#[flux::task(...)]`.
pub(crate) struct TaskOptions {
    /// `name`: the literal (a template if it has placeholders).
    pub(crate) name: Option<LitStr>,
    pub(crate) retry_max_attempts: u32,
    pub(crate) retry_delay: Option<Duration>,
    pub(crate) retry_backoff: Option<f64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) fallback: Option<syn::Path>,
    pub(crate) rollback: Option<syn::Path>,
    pub(crate) cache: bool,
    pub(crate) cache_ttl: Option<Duration>,
    pub(crate) metadata: bool,
    /// `secret_requests`: the names, checked to be non-empty and distinct.
    pub(crate) secret_requests: Vec<String>,
    /// `output_storage`: the name of an output storage (`None` keeps outputs inline).
    pub(crate) output_storage: Option<String>,
}

/// A parsed `#[flux::task]`.
pub(crate) struct TaskDef {
    pub(crate) item: ItemFn,
    pub(crate) is_async: bool,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
    pub(crate) options: TaskOptions,
    /// The name, and whether it is a template over the arguments.
    pub(crate) name: String,
    pub(crate) templated: bool,
}

/// A parsed `#[flux::workflow]`.
pub(crate) struct WorkflowDef {
    pub(crate) item: ItemFn,
    pub(crate) name: String,
    pub(crate) secret_requests: Vec<String>,
    pub(crate) output_storage: Option<String>,
    pub(crate) input: Type,
    pub(crate) output: Output,
}

/// The `key = value` options of `attr`, each recognised among `known` and given once.
fn parse_options(attr: TokenStream, known: &[Symbol], errors: &mut Errors) -> Vec<(Symbol, Ident, Expr)> {
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let mut out: Vec<(Symbol, Ident, Expr)> = Vec::new();
    for meta in metas {
        let Meta::NameValue(nv) = meta else {
            errors.add_spanned(&meta, format!("expected `key = value`; options are: {}", symbol::list(known)));
            continue;
        };
        let Some(key) = nv.path.get_ident().cloned() else {
            errors.add_spanned(&nv.path, format!("unknown option; options are: {}", symbol::list(known)));
            continue;
        };
        let Some(&name) = known.iter().find(|s| key == **s) else {
            errors.add(key.span(), format!("unknown option `{key}`; options are: {}", symbol::list(known)));
            continue;
        };
        if out.iter().any(|(seen, _, _)| *seen == name) {
            errors.add(key.span(), format!("option `{key}` is given twice"));
            continue;
        }
        out.push((name, key, nv.value));
    }
    out
}

fn lit_str(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s.clone()),
        other => {
            errors.add_spanned(other, format!("`{key}` must be a string literal"));
            None
        }
    }
}

/// Whether `expr` is a negative number, written as `-1` (a unary minus, or one literal when it
/// ends the attribute).
fn is_negative(expr: &Expr) -> bool {
    match expr {
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Neg(_)),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_digits().starts_with('-'),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_digits().starts_with('-'),
        _ => false,
    }
}

fn duration_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<Duration> {
    if is_negative(expr) {
        errors.add_spanned(expr, format!("`{key}` cannot be negative"));
        return None;
    }
    let parsed = match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => duration::parse(&s.value()),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => duration::parse(i.base10_digits()),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => duration::parse(f.base10_digits()),
        _ => Err(format!("`{key}` must be a duration such as \"30s\", \"1.5s\", \"2m\", or a number of seconds")),
    };
    parsed.map_err(|msg| errors.add_spanned(expr, msg)).ok()
}

fn count_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<u32> {
    if is_negative(expr) {
        errors.add_spanned(expr, format!("`{key}` cannot be negative"));
        return None;
    }
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(i.span(), format!("`{key}` must be a whole number from 0 to {}", u32::MAX));
                None
            }
        },
        other => {
            errors.add_spanned(other, format!("`{key}` must be a whole number"));
            None
        }
    }
}

fn bool_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> bool {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => b.value,
        other => {
            errors.add_spanned(other, format!("`{key}` must be `true` or `false`"));
            false
        }
    }
}

fn path_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<syn::Path> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        other => {
            errors.add_spanned(
                other,
                format!("`{key}` must name a function taking the task's arguments (`{key} = my_{key}`)"),
            );
            None
        }
    }
}

/// `"file"`: the name of an output storage; `"inline"` means the default (in the log).
fn storage_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<String> {
    let lit = lit_str(expr, key, errors)?;
    match lit.value().as_str() {
        "" => {
            errors.add(lit.span(), format!("`{key}` must name an output storage (`\"file\"`) or be `\"inline\"`"));
            None
        }
        "inline" => None,
        name => Some(name.to_string()),
    }
}

/// `["A", "B"]`: non-empty, distinct secret names.
fn names_option(expr: &Expr, key: &Ident, errors: &mut Errors) -> Vec<String> {
    let Expr::Array(array) = expr else {
        errors.add_spanned(expr, format!("`{key}` must be a list of secret names (`{key} = [\"API_KEY\"]`)"));
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
                let name = s.value();
                if name.is_empty() || name.chars().any(char::is_control) {
                    errors.add(s.span(), "a secret name must be a non-empty string of printable characters");
                } else if names.contains(&name) {
                    errors.add(s.span(), format!("secret `{name}` is requested twice"));
                } else {
                    names.push(name);
                }
            }
            other => errors.add_spanned(other, "a secret name must be a string literal"),
        }
    }
    names
}

/// Whether `ty` is (a path ending in) `name`.
fn is_named(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name))
}

fn positive_number(expr: &Expr, key: &Ident, errors: &mut Errors) -> Option<f64> {
    let value = match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() && v > 0.0 => Some(v),
        _ => {
            errors.add_spanned(expr, format!("`{key}` must be a positive number"));
            None
        }
    }
}

fn parse_fn(item: TokenStream, what: &str, errors: &mut Errors) -> syn::Result<ItemFn> {
    let item: syn::Item = syn::parse2(item)?;
    let syn::Item::Fn(f) = item else {
        let head = item_head(&item);
        return Err(syn::Error::new_spanned(
            head,
            format!(
                "`#[flux::{what}]` applies to functions: write it on an `async fn`{}",
                if what == "task" { " or a plain `fn`" } else { "" }
            ),
        ));
    };
    let sig = &f.sig;
    if let Some(c) = &sig.constness {
        errors.add(c.span(), format!("a {what} cannot be a `const fn`"));
    }
    if let Some(u) = &sig.unsafety {
        errors.add(u.span(), format!("a {what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.add_spanned(abi, format!("a {what} cannot have an `extern` ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.add_spanned(
            &sig.generics,
            format!("a {what} cannot be generic: its values are recorded with concrete types"),
        );
    }
    if let Some(v) = &sig.variadic {
        errors.add(v.span(), format!("a {what} cannot be variadic"));
    }
    Ok(f)
}

/// The tokens naming an item (`struct Fetch`), for errors about the item as a whole.
fn item_head(item: &syn::Item) -> TokenStream {
    use quote::quote;
    match item {
        syn::Item::Struct(i) => {
            let (k, n) = (&i.struct_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Enum(i) => {
            let (k, n) = (&i.enum_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Trait(i) => {
            let (k, n) = (&i.trait_token, &i.ident);
            quote!(#k #n)
        }
        syn::Item::Impl(i) => {
            let (k, t) = (&i.impl_token, &i.self_ty);
            quote!(#k #t)
        }
        other => quote!(#other),
    }
}

/// `T` and whether it is `Result<T, _>`, from a return type.
fn parse_output(ret: &ReturnType) -> Output {
    let written = ret.clone();
    match ret {
        ReturnType::Default => Output { ty: syn::parse_quote!(()), fallible: false, written },
        ReturnType::Type(_, ty) => {
            if let Type::Path(p) = &**ty
                && let Some(last) = p.path.segments.last()
                && last.ident == "Result"
                && let PathArguments::AngleBracketed(args) = &last.arguments
                && let Some(GenericArgument::Type(t)) = args.args.first()
            {
                return Output { ty: t.clone(), fallible: true, written };
            }
            Output { ty: (**ty).clone(), fallible: false, written }
        }
    }
}

fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    match ty {
        Type::Reference(r) => errors.add_spanned(
            r,
            format!("{what} must be owned so it can be recorded and replayed: use an owned type (`String`, not `&str`; `Vec<T>`, not `&[T]`)"),
        ),
        Type::ImplTrait(t) => errors.add_spanned(t, format!("{what} cannot be `impl Trait`: use a concrete type")),
        _ => {}
    }
}

/// The placeholders of a name template (`"process_{item}"` gives `item`), or an error message.
fn template_placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err("unclosed `{` in the name template".to_string()),
                    }
                }
                let name = inner.split(':').next().unwrap_or("").trim().to_string();
                if name.is_empty()
                    || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    || name.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(format!("placeholder `{{{inner}}}` must name an argument of the task"));
                }
                names.push(name);
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => return Err("unmatched `}` in the name template (write `}}` for a literal brace)".to_string()),
            _ => {}
        }
    }
    Ok(names)
}

impl TaskDef {
    pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<TaskDef> {
        let mut errors = Errors::default();
        let options = parse_options(attr, TASK_OPTIONS, &mut errors);
        let item = parse_fn(item, "task", &mut errors)?;

        let mut args = Vec::new();
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => errors.add_spanned(r, "a task cannot take `self`: make it a free function"),
                FnArg::Typed(pt) => {
                    if let Some(attr) = pt.attrs.first() {
                        errors.add_spanned(attr, "attributes on task parameters are not supported");
                    }
                    let (ident, mutable) = match &*pt.pat {
                        Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                            (pi.ident.clone(), pi.mutability.is_some())
                        }
                        // `_: T` is an argument like any other; it just has no name to use.
                        Pat::Wild(w) => (Ident::new(&format!("__flux_arg{}", args.len()), w.span()), false),
                        other => {
                            errors.add_spanned(
                                other,
                                "task arguments must be plain names (`order: Order`), not patterns",
                            );
                            continue;
                        }
                    };
                    args.push(Arg { ident, mutable, ty: (*pt.ty).clone(), injected: None });
                }
            }
        }
        let output = parse_output(&item.sig.output);
        check_owned(&output.ty, "a task's output", &mut errors);

        let mut opts = TaskOptions {
            name: None,
            retry_max_attempts: 0,
            retry_delay: None,
            retry_backoff: None,
            timeout: None,
            fallback: None,
            rollback: None,
            cache: false,
            cache_ttl: None,
            metadata: false,
            secret_requests: Vec::new(),
            output_storage: None,
        };
        let mut metadata_key = None;
        let mut secrets_key = None;
        for (name, key, value) in &options {
            match *name {
                NAME => opts.name = lit_str(value, key, &mut errors),
                RETRY_MAX_ATTEMPTS => opts.retry_max_attempts = count_option(value, key, &mut errors).unwrap_or(0),
                RETRY_DELAY => opts.retry_delay = duration_option(value, key, &mut errors),
                RETRY_BACKOFF => opts.retry_backoff = positive_number(value, key, &mut errors),
                TIMEOUT => opts.timeout = duration_option(value, key, &mut errors),
                FALLBACK => opts.fallback = path_option(value, key, &mut errors),
                ROLLBACK => opts.rollback = path_option(value, key, &mut errors),
                CACHE => opts.cache = bool_option(value, key, &mut errors),
                CACHE_TTL => opts.cache_ttl = duration_option(value, key, &mut errors),
                METADATA => {
                    opts.metadata = bool_option(value, key, &mut errors);
                    metadata_key = Some(key.clone());
                }
                SECRET_REQUESTS => {
                    opts.secret_requests = names_option(value, key, &mut errors);
                    secrets_key = Some(key.clone());
                }
                OUTPUT_STORAGE => opts.output_storage = storage_option(value, key, &mut errors),
                _ => {}
            }
        }
        for arg in &mut args {
            if is_named(&arg.ty, "Secrets") {
                if secrets_key.is_some() {
                    arg.injected = Some(Injected::Secrets);
                } else {
                    errors.add_spanned(
                        &arg.ty,
                        "a `Secrets` parameter is filled in by flux: name the secrets with `secret_requests = [\"NAME\"]`",
                    );
                }
            }
        }
        if let Some(key) = &secrets_key {
            match args.iter().filter(|a| a.injected == Some(Injected::Secrets)).count() {
                0 => errors.add(key.span(), "`secret_requests` needs a parameter of type `Secrets` to fill in"),
                1 => {}
                _ => errors.add_spanned(&item.sig.inputs, "a task can take only one `Secrets` parameter"),
            }
        }
        if let Some(ttl) = opts.cache_ttl
            && let Some((_, key, value)) = options.iter().find(|(name, _, _)| *name == CACHE_TTL)
        {
            if ttl.is_zero() {
                errors.add_spanned(value, format!("`{CACHE_TTL}` must be longer than zero"));
            }
            if options.iter().any(|(name, _, v)| {
                *name == CACHE && matches!(v, Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) if !b.value)
            }) {
                errors.add(key.span(), format!("`{CACHE_TTL}` turns the cache on; it contradicts `{CACHE} = false`"));
            }
        }
        // Injected parameters: recognised by type, and only when their option asks for them.
        for arg in &mut args {
            if is_named(&arg.ty, "TaskMetadata") {
                if opts.metadata {
                    arg.injected = Some(Injected::Metadata);
                } else {
                    errors.add_spanned(
                        &arg.ty,
                        "a `TaskMetadata` parameter is filled in by flux: add `metadata = true` to the task's options",
                    );
                }
            }
        }
        let metadata_params = args.iter().filter(|a| a.injected == Some(Injected::Metadata)).count();
        if opts.metadata && metadata_params == 0 {
            let span = metadata_key.as_ref().map_or_else(Span::call_site, Ident::span);
            errors.add(span, "`metadata = true` needs a parameter of type `TaskMetadata` to fill in");
        }
        if metadata_params > 1 {
            errors.add_spanned(&item.sig.inputs, "a task can take only one `TaskMetadata` parameter");
        }
        // Everything else is a recorded argument and must be storable.
        for arg in args.iter().filter(|a| a.injected.is_none()) {
            check_owned(&arg.ty, "a task argument", &mut errors);
        }

        let (name, templated) = match &opts.name {
            None => (item.sig.ident.unraw().to_string(), false),
            Some(lit) => {
                let text = lit.value();
                if text.trim().is_empty() {
                    errors.add(lit.span(), "a task name cannot be empty");
                }
                match template_placeholders(&text) {
                    Ok(placeholders) => {
                        for p in &placeholders {
                            if !args.iter().any(|a| a.ident == p && a.injected.is_none()) {
                                let known: Vec<String> =
                                    args.iter().filter(|a| a.injected.is_none()).map(|a| a.ident.to_string()).collect();
                                errors.add(
                                    lit.span(),
                                    format!(
                                        "the name template uses `{{{p}}}`, but the task has no argument `{p}` (arguments: {})",
                                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                                    ),
                                );
                            }
                        }
                        let templated = !placeholders.is_empty() || text.contains("{{") || text.contains("}}");
                        (text, templated)
                    }
                    Err(msg) => {
                        errors.add(lit.span(), msg);
                        (text, false)
                    }
                }
            }
        };
        errors.finish()?;
        let is_async = item.sig.asyncness.is_some();
        Ok(TaskDef { item, is_async, args, output, options: opts, name, templated })
    }
}

impl WorkflowDef {
    /// The function's name without `r#`, for generated identifiers.
    pub(crate) fn name_ident(&self) -> String {
        self.item.sig.ident.unraw().to_string()
    }

    pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<WorkflowDef> {
        let mut errors = Errors::default();
        let options = parse_options(attr, WORKFLOW_OPTIONS, &mut errors);
        let item = parse_fn(item, "workflow", &mut errors)?;
        if item.sig.asyncness.is_none() {
            errors.add(item.sig.fn_token.span(), "a workflow must be an `async fn`");
        }
        let mut name = item.sig.ident.unraw().to_string();
        let mut secret_requests = Vec::new();
        let mut output_storage = None;
        for (option, key, value) in &options {
            match *option {
                NAME => {
                    if let Some(lit) = lit_str(value, key, &mut errors) {
                        if lit.value().trim().is_empty() {
                            errors.add(lit.span(), "a workflow name cannot be empty");
                        }
                        name = lit.value();
                    }
                }
                SECRET_REQUESTS => secret_requests = names_option(value, key, &mut errors),
                OUTPUT_STORAGE => output_storage = storage_option(value, key, &mut errors),
                _ => {}
            }
        }

        const NEEDS_CTX: &str =
            "a workflow's first parameter must be `ExecutionContext<I>`, where `I` is its input type";
        let mut input = None;
        let mut params = item.sig.inputs.iter();
        match params.next() {
            None => errors.add(item.sig.paren_token.span.join(), NEEDS_CTX),
            Some(FnArg::Receiver(r)) => errors.add_spanned(r, "a workflow cannot take `self`"),
            Some(FnArg::Typed(pt)) => match context_input(&pt.ty) {
                Some(ty) => {
                    check_owned(&ty, "a workflow's input", &mut errors);
                    input = Some(ty);
                }
                None => errors.add_spanned(&pt.ty, NEEDS_CTX),
            },
        }
        for extra in params {
            errors.add_spanned(extra, "a workflow takes only its `ExecutionContext<I>`: put further inputs into `I`");
        }
        let output = parse_output(&item.sig.output);
        check_owned(&output.ty, "a workflow's output", &mut errors);
        errors.finish()?;
        let input = input.ok_or_else(|| syn::Error::new(Span::call_site(), NEEDS_CTX))?;
        Ok(WorkflowDef { item, name, secret_requests, output_storage, input, output })
    }
}

/// `I` from `ExecutionContext<I>` (any path ending in `ExecutionContext`).
fn context_input(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "ExecutionContext" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(t) if args.args.len() == 1 => Some(t.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(template_placeholders("process_{item}").unwrap(), ["item"]);
        assert_eq!(template_placeholders("{a}_{b:?}").unwrap(), ["a", "b"]);
        assert!(template_placeholders("literal_{{x}}").unwrap().is_empty());
        assert!(template_placeholders("x_{}").is_err());
        assert!(template_placeholders("x_{0}").is_err());
        assert!(template_placeholders("x_{a").is_err());
        assert!(template_placeholders("x_}").is_err());
    }
}
